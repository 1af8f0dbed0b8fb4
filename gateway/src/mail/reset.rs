//! Password resets by mail.
//!
//! Asking names an address and always gets the same answer, whether an
//! account has it or not: the lookup and the mail happen later, in one
//! worker, off the request (so the answer's timing says nothing either).
//! Each local, enabled account with that address gets a link at the
//! address stored for it, never at the one typed; a directory (LDAP)
//! account gets a note to change its password in the directory. Links
//! are single-use, last [`LINK_TTL`], and only their hash is stored
//! (`berth_storage::password_resets`). Links are built from
//! `external_url` only: a request's Host header could name another site
//! and send the token there.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_storage::accounts::{User, UserSource};
use berth_storage::password_resets::ResetRequest;
use berth_storage::Registry;
use tokio::sync::mpsc;

use super::MailerSlot;
use crate::error::GatewayError;

/// How long a link works.
pub const LINK_TTL: Duration = Duration::from_secs(30 * 60);
/// One mail per account in this time, however often it is asked for.
const PER_ACCOUNT: Duration = Duration::from_secs(2 * 60);
/// Requests one client address may make per [`CLIENT_WINDOW`].
const PER_CLIENT: u32 = 5;
const CLIENT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Requests waiting for the worker; beyond it, new ones are dropped (and
/// logged), with the same answer: refusing would tell that the worker is
/// busy, which it is longer for addresses that have accounts.
const QUEUE: usize = 256;
/// Mails being sent at once: the worker goes on looking up addresses
/// meanwhile, so a slow mail server does not hold the queue.
const SENDING: usize = 4;
/// New passwords hashed at once (argon2 takes about 19 MiB each), and
/// how many more may wait for their turn.
const HASHING: usize = 2;
const HASH_WAITING: usize = 8;

/// What the answer to a request for a link says (API and portal alike).
pub const REQUESTED: &str = "if an account has this address, a mail with a link to set a new \
password is on its way; the link works once, for 30 minutes";

/// What a link that cannot be used any more says.
pub const LINK_INVALID: &str = "this password-reset link cannot be used: it was used already, \
a newer one was sent, or it expired (links work for 30 minutes); ask for a new one";

pub struct PasswordResets {
    mailer: MailerSlot,
    /// `external_url`, without a trailing slash.
    base: Option<String>,
    queue: mpsc::Sender<String>,
    waiting: std::sync::Mutex<Option<mpsc::Receiver<String>>>,
    per_client: moka::sync::Cache<Option<IpAddr>, Arc<AtomicU32>>,
    sending: Arc<tokio::sync::Semaphore>,
    hashing: tokio::sync::Semaphore,
    /// Hashes asked for and not finished.
    hashes: std::sync::atomic::AtomicUsize,
    registry: Arc<Registry>,
}

/// Takes one back from a count when dropped.
struct Decrement<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordResets {
    pub fn new(
        registry: Arc<Registry>,
        mailer: MailerSlot,
        external_url: Option<&str>,
    ) -> PasswordResets {
        let (queue, waiting) = mpsc::channel(QUEUE);
        PasswordResets {
            mailer,
            base: external_url.map(|u| u.trim_end_matches('/').to_owned()),
            queue,
            waiting: std::sync::Mutex::new(Some(waiting)),
            per_client: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CLIENT_WINDOW)
                .build(),
            sending: Arc::new(tokio::sync::Semaphore::new(SENDING)),
            hashing: tokio::sync::Semaphore::new(HASHING),
            hashes: std::sync::atomic::AtomicUsize::new(0),
            registry,
        }
    }

    /// Starts the worker (on the calling runtime).
    pub fn start(self: &Arc<Self>) {
        let taken = self.waiting.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(mut waiting) = taken {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(email) = waiting.recv().await {
                    me.answer(&email).await;
                }
            });
        }
    }

    /// Whether resets by mail can work here (the portal shows its link
    /// only then).
    pub fn available(&self) -> bool {
        self.mailer.load().is_some() && self.base.is_some()
    }

    /// Asks for a link for `email`. The same answer for every well-formed
    /// address; errors only for a malformed one, a client asking too often,
    /// or a registry not set up to send mail.
    pub fn request(&self, email: &str, client: Option<IpAddr>) -> Result<(), GatewayError> {
        if self.mailer.load().is_none() {
            return Err(GatewayError::NotConfigured(
                "this registry sends no mail (no mail server is set): ask an administrator to \
                 set your password"
                    .into(),
            ));
        }
        if self.base.is_none() {
            return Err(GatewayError::NotConfigured(
                "password-reset links need external_url to be set (the registry's address as \
                 users reach it): ask an administrator"
                    .into(),
            ));
        }
        let email = email.trim();
        if email.is_empty()
            || email.chars().count() > 255
            || !email.contains('@')
            || email.chars().any(char::is_control)
        {
            return Err(GatewayError::BadRequest(
                "`email` must be an email address such as alice@example.org".into(),
            ));
        }
        let count = self
            .per_client
            .get_with(client.map(berth_auth::login::client_key), || {
                Arc::new(AtomicU32::new(0))
            });
        if count.fetch_add(1, Ordering::Relaxed) >= PER_CLIENT {
            return Err(GatewayError::TooManyRequests {
                message: format!(
                    "too many password-reset requests from your address; try again in {} minutes",
                    CLIENT_WINDOW.as_secs() / 60
                ),
                retry_after_secs: CLIENT_WINDOW.as_secs(),
            });
        }
        if self.queue.try_send(email.to_owned()).is_err() {
            tracing::warn!("password reset: {QUEUE} requests are waiting; one dropped");
        }
        Ok(())
    }

    /// Hashes a new password for the link `token`, a few at a time: links
    /// are checked first, so only holders of a valid one get here, but a
    /// holder may ask many times at once. The link is checked again when
    /// its turn comes (another request may have used it meanwhile).
    pub async fn hash(&self, token: &str, password: &str) -> Result<String, GatewayError> {
        let waiting = self.hashes.fetch_add(1, Ordering::SeqCst);
        let _count = Decrement(&self.hashes);
        if waiting >= HASHING + HASH_WAITING {
            return Err(GatewayError::TooManyRequests {
                message: "too many passwords are being set at once; try again in a minute".into(),
                retry_after_secs: 60,
            });
        }
        let _turn = self
            .hashing
            .acquire()
            .await
            .map_err(|_| GatewayError::NotConfigured("shutting down".into()))?;
        if !self.registry.meta().password_reset_valid(token).await? {
            return Err(GatewayError::BadRequest(LINK_INVALID.into()));
        }
        crate::api::users::hash(password.to_owned()).await
    }

    /// The worker's part: find the accounts, store links, send mails.
    /// Failures are logged (never a token) and not retried: the user asks
    /// again.
    async fn answer(&self, email: &str) {
        let (Some(mailer), Some(base)) = (self.mailer.load_full(), self.base.as_deref()) else {
            return;
        };
        let users = match self.registry.meta().users_with_email(email).await {
            Ok(users) => users,
            Err(e) => {
                tracing::warn!(error = %e, "password reset: looking up the address failed");
                return;
            }
        };
        for user in users.into_iter().filter(|u| !u.disabled) {
            let mail = match self.prepare(base, &user).await {
                Ok(Some(mail)) => mail,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(user = %user.username, error = %e, "password reset: no mail sent");
                    continue;
                }
            };
            let Ok(turn) = self.sending.clone().acquire_owned().await else {
                return;
            };
            let mailer = mailer.clone();
            tokio::spawn(async move {
                let (to, subject, body) = mail;
                match mailer.send(&to, subject, body).await {
                    Ok(()) => tracing::info!(user = %user.username, "password reset: mail sent"),
                    Err(e) => {
                        tracing::warn!(user = %user.username, error = %e, "password reset: no mail sent")
                    }
                }
                drop(turn);
            });
        }
    }

    /// Stores a link for `user` and writes its mail (address, subject,
    /// body); `None` when there is nothing to send.
    async fn prepare(
        &self,
        base: &str,
        user: &User,
    ) -> Result<Option<(String, &'static str, String)>, GatewayError> {
        let Some(to) = user.email.clone().filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        // Stored for directory accounts too, unsent: it spaces their notes
        // the same way, and cannot set a password (only local accounts'
        // are set by a link).
        let token = crate::auth::random_token();
        let made = self
            .registry
            .meta()
            .create_password_reset(
                user.id,
                &token,
                LINK_TTL.as_secs() as i64,
                PER_ACCOUNT.as_secs() as i64,
            )
            .await?;
        if made == ResetRequest::TooSoon {
            tracing::info!(user = %user.username, "password reset: asked again too soon, no mail");
            return Ok(None);
        }
        let (subject, body) = match user.source {
            UserSource::Db => link_mail(
                &user.username,
                &format!("{base}/reset-password?token={token}"),
            ),
            UserSource::Ldap => directory_mail(&user.username),
        };
        Ok(Some((to, subject, body)))
    }
}

/// The link mail, in English and Simplified Chinese (the portal's two
/// languages; who asked in which is not known here).
fn link_mail(username: &str, link: &str) -> (&'static str, String) {
    (
        "Reset your berth password / 重置您的 berth 密码",
        format!(
            "Someone asked to reset the password of the berth account `{username}`.\n\
             To set a new password, open this link within 30 minutes (it works once):\n\n\
             {link}\n\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n\n\
             有人请求重置 berth 账号 `{username}` 的密码。\n\
             请在 30 分钟内打开上面的链接设置新密码（链接只能使用一次）。\n\
             如果不是您本人的请求，请忽略此邮件，您的密码不会改变。\n"
        ),
    )
}

fn directory_mail(username: &str) -> (&'static str, String) {
    (
        "Your berth password / 您的 berth 密码",
        format!(
            "Someone asked to reset the password of the berth account `{username}`.\n\
             This account signs in with the organisation's directory (LDAP): berth does not \
             keep its password. Change it where you change your directory password, or ask \
             your administrator.\n\n\
             有人请求重置 berth 账号 `{username}` 的密码。\n\
             此账号通过组织的目录服务（LDAP）登录，berth 不保存其密码。\n\
             请在修改目录密码的地方修改，或联系管理员。\n"
        ),
    )
}
