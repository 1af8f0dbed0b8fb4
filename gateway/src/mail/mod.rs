//! Mail: what berth sends, and through which server.
//!
//! - `smtp`: the configured SMTP server (`[email]`), and a test mail.
//! - `reset`: password resets by mail: requests queued and throttled,
//!   single-use links, the new password set.

pub(crate) mod reset;
mod smtp;

pub use reset::PasswordResets;
pub use smtp::Mailer;
