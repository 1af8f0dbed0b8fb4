//! Local users managed with the `berth user ...` command line, against the
//! data directory of a running [`Berth`].

use std::process::Output;

use crate::server::Berth;

/// Runs `berth user <args>` on `berth`'s data directory with `stdin` as
/// standard input; returns the output whatever the exit status.
pub fn berth_user(berth: &Berth, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = berth.command(&["user"]);
    cmd.args(args);
    crate::tools::output(&mut cmd, stdin)
}

/// Runs `berth user <args>` and asserts it succeeds.
fn berth_user_ok(berth: &Berth, args: &[&str], stdin: Option<&str>) {
    let out = berth_user(berth, args, stdin);
    assert!(
        out.status.success(),
        "berth user {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `berth user add NAME [--admin]` with this password (at least 8 chars).
pub fn add_user(berth: &Berth, name: &str, password: &str, admin: bool) {
    let mut args = vec!["add", name];
    if admin {
        args.push("--admin");
    }
    berth_user_ok(berth, &args, Some(&format!("{password}\n")));
}

/// `berth user disable NAME`.
pub fn disable_user(berth: &Berth, name: &str) {
    berth_user_ok(berth, &["disable", name], None);
}

/// `berth user enable NAME`.
pub fn enable_user(berth: &Berth, name: &str) {
    berth_user_ok(berth, &["enable", name], None);
}

/// `berth user passwd NAME` with the new password.
pub fn set_password(berth: &Berth, name: &str, password: &str) {
    berth_user_ok(berth, &["passwd", name], Some(&format!("{password}\n")));
}
