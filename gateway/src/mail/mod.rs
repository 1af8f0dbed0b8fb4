//! Mail: what berth sends, and through which server.
//!
//! - `smtp`: the configured SMTP server (`[email]`), and a test mail.
//! - `reset`: password resets by mail: requests queued and throttled,
//!   single-use links, the new password set.

pub(crate) mod reset;
mod smtp;

pub use reset::PasswordResets;
pub use smtp::Mailer;

/// The mail server in force: set at start from `[email]`, or swapped when
/// the mail settings change at run time (`/configurations`).
pub type MailerSlot = std::sync::Arc<arc_swap::ArcSwapOption<Mailer>>;
