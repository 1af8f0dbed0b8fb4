//! The SMTP server of `[email]`, through lettre. One connection per mail:
//! berth sends a few mails an hour, and a pooled connection would only
//! meet a server that closed it.

use std::time::Duration;

use berth_conf::{EmailConfig, EmailSecurity};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::GatewayError;

/// How long connecting, each command and the whole mail may take.
const TIMEOUT: Duration = Duration::from_secs(15);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for messages.
    server: String,
}

impl Mailer {
    /// Checks what the config crate cannot (the sender as a mailbox, the
    /// TLS settings); the error names the key.
    pub fn new(c: &EmailConfig) -> Result<Mailer, String> {
        let from: Mailbox = c.from.parse().map_err(|e| {
            format!(
                "email.from: `{}` is not a mailbox ({e}); give one such as \"berth <registry@example.org>\"",
                c.from
            )
        })?;
        let params = TlsParameters::builder(c.server.clone())
            .dangerous_accept_invalid_certs(c.insecure)
            .dangerous_accept_invalid_hostnames(c.insecure)
            .build_rustls()
            .map_err(|e| format!("email: cannot set up TLS for `{}`: {e}", c.server))?;
        let tls = match c.security {
            EmailSecurity::Tls => Tls::Wrapper(params),
            EmailSecurity::StartTls => Tls::Required(params),
            EmailSecurity::Opportunistic => Tls::Opportunistic(params),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.server)
            .port(c.port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{}", c.server, c.port),
        })
    }

    /// Warns, when a mail server is put in force, that its login may
    /// travel unencrypted.
    pub fn warn_if_unencrypted(c: &EmailConfig) {
        if c.username.is_some() && c.security == EmailSecurity::Opportunistic {
            tracing::warn!(
                "the mail server has a username and password but neither ssl nor starttls: to a \
                 server that offers no STARTTLS they go unencrypted; set starttls (or ssl)"
            );
        }
    }

    /// Sends a plain-text mail to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), GatewayError> {
        let to: Mailbox = to.parse().map_err(|e| {
            GatewayError::BadRequest(format!("`{to}` is not an email address ({e})"))
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| GatewayError::BadRequest(format!("the mail cannot be built: {e}")))?;
        let sending = self.transport.send(message);
        match tokio::time::timeout(TIMEOUT * 2, sending).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(GatewayError::MailFailed(format!("{}: {e}", self.server))),
            Err(_) => Err(GatewayError::MailFailed(format!(
                "{}: no answer within {} s",
                self.server,
                (TIMEOUT * 2).as_secs()
            ))),
        }
    }
}
