//! `berth user ...`: manage local users from the command line, against the
//! same database the server uses (SQLite in WAL mode allows both at once).
//! A running server may keep a cached login valid for up to a minute.

use berth_auth::password;
use berth_storage::changes::Change;
use berth_storage::meta::Meta;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a local user; the password is read from standard input.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Make the user a system administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Set a local user's password (read from standard input).
    Passwd { username: String },
    /// Disable a user: logins and refresh tokens stop working.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
}

/// Runs a user command; the message is what to print on success.
pub async fn run(
    meta: &Meta,
    cmd: UserCommand,
    stdin_password: impl FnOnce() -> std::io::Result<String>,
) -> Result<String, String> {
    let read_password =
        |read: Box<dyn FnOnce() -> std::io::Result<String>>| -> Result<String, String> {
            let pw =
                read().map_err(|e| format!("reading the password from standard input: {e}"))?;
            let pw = pw.trim_end_matches(['\n', '\r']).to_owned();
            if pw.len() < 8 {
                return Err("the password must be at least 8 characters".into());
            }
            Ok(pw)
        };
    match cmd {
        UserCommand::Add {
            username,
            email,
            admin,
        } => {
            if username.is_empty() || username.starts_with("robot$") || username.contains(':') {
                return Err(format!(
                    "`{username}` is not a valid user name (no `:`, not starting with `robot$`)"
                ));
            }
            let pw = read_password(Box::new(stdin_password))?;
            let hash = password::hash(&pw).map_err(|e| e.to_string())?;
            match meta
                .create_user(&username, &hash, email.as_deref(), admin)
                .await
            {
                Ok(Some(_)) => Ok(format!("created user `{username}`")),
                Ok(None) => Err(format!("user `{username}` already exists")),
                Err(e) => Err(e.to_string()),
            }
        }
        UserCommand::Passwd { username } => {
            let pw = read_password(Box::new(stdin_password))?;
            let hash = password::hash(&pw).map_err(|e| e.to_string())?;
            match meta.set_password_hash(&username, &hash).await {
                Ok(true) => {
                    announce_access(meta).await;
                    Ok(format!("password of `{username}` changed"))
                }
                Ok(false) => Err(format!("no user `{username}`")),
                Err(e) => Err(e.to_string()),
            }
        }
        UserCommand::Disable { username } | UserCommand::Enable { username }
            if username == "admin" =>
        {
            Err("the `admin` user cannot be disabled or enabled".into())
        }
        UserCommand::Disable { username } => set_disabled(meta, &username, true).await,
        UserCommand::Enable { username } => set_disabled(meta, &username, false).await,
    }
}

async fn set_disabled(meta: &Meta, username: &str, disabled: bool) -> Result<String, String> {
    match meta.set_user_disabled(username, disabled).await {
        Ok(true) => {
            announce_access(meta).await;
            Ok(format!(
                "user `{username}` {}",
                if disabled { "disabled" } else { "enabled" }
            ))
        }
        Ok(false) => Err(format!("no user `{username}`")),
        Err(e) => Err(e.to_string()),
    }
}

/// Tells running servers sharing a PostgreSQL database to drop cached
/// logins now. The change itself is committed; a failed announcement
/// only delays it until their caches expire, so it is a warning.
async fn announce_access(meta: &Meta) {
    if let Err(e) = meta.announce(&Change::Access).await {
        eprintln!("warning: running servers could not be told at once ({e}); they see the change within their login cache lifetime");
    }
}
