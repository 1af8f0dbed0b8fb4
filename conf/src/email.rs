//! `[email]`: the SMTP server berth sends mail through (password resets,
//! test mails), Harbor's `email_*` settings with the same meanings.

use crate::error::ConfError;
use crate::secret::Secret;
use crate::settings::Settings;

const DEFAULT_PORT: u16 = 25;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailSecurity {
    /// TLS from the first byte (`ssl = true`, usually port 465).
    Tls,
    /// STARTTLS, required: a server that does not offer it is refused
    /// (`starttls = true`, usually port 587).
    StartTls,
    /// STARTTLS when the server offers it, plain otherwise (Harbor's
    /// behaviour with `email_ssl = false`).
    Opportunistic,
}

/// `[email]`, set when its section is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// Host name or address of the SMTP server.
    pub server: String,
    /// Default 25.
    pub port: u16,
    /// Set with `password`: berth logs in (SMTP AUTH).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `name <address>` or a bare address; checked by the
    /// gateway, which parses it as a mailbox at start.
    pub from: String,
    pub security: EmailSecurity,
    /// Accept any certificate (self-signed, other host name). Default false.
    pub insecure: bool,
}

pub(crate) fn email(s: &Settings) -> Result<Option<EmailConfig>, ConfError> {
    if !s.has_section("email") {
        return Ok(None);
    }
    let reason = "[email] is set";
    let server = s
        .non_empty("email.server")?
        .ok_or_else(|| s.missing("email.server", reason))?
        .to_owned();
    let from = s
        .non_empty("email.from")?
        .ok_or_else(|| s.missing("email.from", reason))?
        .to_owned();
    if !from.contains('@') {
        return Err(s.invalid(
            "email.from",
            format!(
                "`{from}` is not an address; give one such as \"berth <registry@example.org>\""
            ),
        ));
    }
    let port = match s.integer("email.port") {
        None => DEFAULT_PORT,
        Some(n) => u16::try_from(n)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| s.invalid("email.port", format!("must be 1 to 65535, found {n}")))?,
    };
    // Harbor writes unset values as empty strings.
    let username = s.text("email.username").filter(|u| !u.is_empty());
    let password = s
        .text("email.password")
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    if password.is_some() && username.is_none() {
        return Err(s.missing("email.username", "email.password is set"));
    }
    if username.is_some() && password.is_none() {
        return Err(s.missing("email.password", "email.username is set"));
    }
    let ssl = s.bool("email.ssl").unwrap_or(false);
    let starttls = s.bool("email.starttls").unwrap_or(false);
    let security = match (ssl, starttls) {
        (true, true) => {
            return Err(s.invalid(
                "email.starttls",
                "cannot be used with email.ssl, which is TLS from the start; \
                 set one of them (ssl for port 465, starttls for 587)"
                    .to_owned(),
            ))
        }
        (true, false) => EmailSecurity::Tls,
        (false, true) => EmailSecurity::StartTls,
        (false, false) => EmailSecurity::Opportunistic,
    };
    Ok(Some(EmailConfig {
        server,
        port,
        username: username.map(str::to_owned),
        password,
        from,
        security,
        insecure: s.bool("email.insecure").unwrap_or(false),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tempfile::TempDir;

    use super::*;
    use crate::load::load;

    fn file(text: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).expect("write config");
        (dir, path)
    }

    fn error(text: &str) -> String {
        let (_dir, path) = file(text);
        load(Some(&path), &[])
            .expect_err("config must be rejected")
            .to_string()
    }

    #[test]
    fn unset_section_means_no_mail() {
        assert_eq!(load(None, &[]).expect("defaults").email, None);
    }

    #[test]
    fn harbor_settings_are_read_with_defaults() {
        let (_dir, path) = file(
            "[email]\nserver = \"smtp.example.org\"\nfrom = \"berth <r@example.org>\"\n\
             username = \"r@example.org\"\npassword = \"mail-pw\"\nstarttls = true\n",
        );
        let email = load(Some(&path), &[]).expect("valid").email.expect("set");
        assert_eq!(email.server, "smtp.example.org");
        assert_eq!(email.port, 25);
        assert_eq!(email.username.as_deref(), Some("r@example.org"));
        assert_eq!(email.password.as_ref().map(Secret::expose), Some("mail-pw"));
        assert_eq!(email.security, EmailSecurity::StartTls);
        assert!(!email.insecure);
    }

    #[test]
    fn env_alone_configures_mail_and_secrets_stay_hidden() {
        let env: Vec<(String, String)> = [
            ("BERTH_EMAIL__SERVER", "127.0.0.1"),
            ("BERTH_EMAIL__PORT", "465"),
            ("BERTH_EMAIL__FROM", "r@example.org"),
            ("BERTH_EMAIL__USERNAME", "r"),
            ("BERTH_EMAIL__PASSWORD", "mail-pw"),
            ("BERTH_EMAIL__SSL", "true"),
            ("BERTH_EMAIL__INSECURE", "true"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = load(None, &env).expect("valid");
        let email = config.email.clone().expect("set");
        assert_eq!((email.port, email.security), (465, EmailSecurity::Tls));
        assert!(email.insecure);
        let redacted = config.redacted();
        assert!(!format!("{config:?}").contains("mail-pw"));
        assert!(!redacted.contains("mail-pw"), "{redacted}");
        assert!(redacted.contains("[email]\nserver = \"127.0.0.1\"\nport = 465\n"));
        assert!(redacted.contains("password = \"<redacted>\""));
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            ("[email]\nport = 25\n", "email.server"),
            ("[email]\nserver = \"s\"\n", "email.from"),
            ("[email]\nserver = \"s\"\nfrom = \"nobody\"\n", "email.from"),
            (
                "[email]\nserver = \"s\"\nfrom = \"a@b\"\nport = 70000\n",
                "email.port",
            ),
            (
                "[email]\nserver = \"s\"\nfrom = \"a@b\"\npassword = \"p\"\n",
                "email.username",
            ),
            (
                "[email]\nserver = \"s\"\nfrom = \"a@b\"\nusername = \"u\"\n",
                "email.password",
            ),
            (
                "[email]\nserver = \"s\"\nfrom = \"a@b\"\nssl = true\nstarttls = true\n",
                "email.starttls",
            ),
            (
                "[email]\nserver = \"s\"\nfrom = \"a@b\"\nidentity = \"x\"\n",
                "email.identity",
            ),
        ];
        for (text, key) in cases {
            let message = error(text);
            assert!(message.contains(key), "{text:?}: {message}");
        }
    }
}
