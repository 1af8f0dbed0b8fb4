//! Mail through a real SMTP server (aiosmtpd) the tests start: password
//! resets by a mailed link (the same answer for every address, the link
//! at the stored address and built from external_url, once only, expiry,
//! sessions ended, throttling), test mails through a login, STARTTLS and
//! TLS from the start, and the portal's pages in Chromium.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use berth_tests::browser::{Browser, FormClient};
use berth_tests::smtp::{Mail, Smtp, SmtpOptions};
use berth_tests::{Api, Berth};
use serde_json::{json, Value};

const WITHIN: Duration = Duration::from_secs(30);
/// What every link starts with: external_url, never the request's Host.
const EXTERNAL: &str = "https://registry.example.org";

fn with_mail(smtp: &Smtp, extra: &[(&str, &str)]) -> Berth {
    let port = smtp.port().to_string();
    let mut env = vec![
        ("BERTH_EMAIL__SERVER", "127.0.0.1"),
        ("BERTH_EMAIL__PORT", port.as_str()),
        ("BERTH_EMAIL__FROM", "berth <registry@example.org>"),
        ("BERTH_EXTERNAL_URL", EXTERNAL),
    ];
    env.extend_from_slice(extra);
    Berth::start_with_env(&env)
}

/// The token of the reset link in a mail.
fn token_in(mail: &Mail) -> String {
    let body = mail.body();
    let prefix = format!("{EXTERNAL}/reset-password?token=");
    let start = body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no link to {prefix} in: {body}"))
        + prefix.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn to(address: &str) -> impl Fn(&Mail) -> bool + '_ {
    move |m| m.rcpt_to.iter().any(|r| r == address)
}

fn message(answer: &Value) -> String {
    answer["errors"][0]["message"]
        .as_str()
        .or_else(|| answer["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_mailed_link_resets_a_password_once() {
    let smtp = Smtp::start(SmtpOptions::default());
    let berth = with_mail(&smtp, &[]);
    let admin = Api::admin(&berth);
    admin.create_user("alice", "alice-old-pw");
    admin.create_user("bob", "bob-old-pw");
    let anon = Api::anonymous(&berth);

    // Alice is signed in to the portal: the reset ends that session.
    let mut portal = FormClient::new(&berth.url(), None);
    let signed = portal.sign_in("alice", "alice-old-pw");
    assert_eq!(signed.status, 303, "sign in: {}", signed.body);
    assert_eq!(portal.get("/account").status, 200);

    // The same answer for an address nobody has and for Alice's (typed
    // in other case): nothing tells them apart.
    let (s1, _, unknown) = anon.post(
        "/users/password-reset",
        &json!({"email": "nobody@example.org"}),
    );
    let (s2, _, known) = anon.post(
        "/users/password-reset",
        &json!({"email": "ALICE@Example.org"}),
    );
    assert_eq!((s1, s2), (202, 202), "{unknown} {known}");
    assert_eq!(unknown, known);

    // One mail, to the address stored for Alice, with a link built from
    // external_url. Requests are answered in order, so the unknown
    // address's turn came first: it sent nothing.
    let mails = smtp.wait_for("Alice's reset mail", 1, WITHIN, to("alice@example.org"));
    assert_eq!(smtp.mails().len(), 1, "{:?}", smtp.mails());
    let mail = &mails[0];
    assert_eq!(mail.rcpt_to, ["alice@example.org"]);
    assert!(mail
        .header("From")
        .unwrap()
        .contains("registry@example.org"));
    assert!(mail.body().contains("`alice`"), "{}", mail.body());
    let token = token_in(mail);
    assert_eq!(token.len(), 43, "{token}");
    // Only its hash is stored.
    assert!(!berth
        .sql("SELECT token_hash FROM password_resets")
        .contains(&token));

    // Asking again at once sends Alice nothing more (and her link stays
    // the one that works); Bob's mail comes after, so Alice's turn is over
    // when it arrives.
    anon.post(
        "/users/password-reset",
        &json!({"email": "alice@example.org"}),
    );
    anon.post(
        "/users/password-reset",
        &json!({"email": "bob@example.org"}),
    );
    let bob = smtp.wait_for("Bob's reset mail", 1, WITHIN, to("bob@example.org"));
    assert_eq!(
        smtp.mails()
            .iter()
            .filter(|m| to("alice@example.org")(m))
            .count(),
        1
    );

    // A password that breaks the rules leaves the link usable.
    let (status, _, answer) = anon.put(
        "/users/password-reset",
        &json!({"token": token, "new_password": "short"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("8 to 128"), "{answer}");

    let (status, _, answer) = anon.put(
        "/users/password-reset",
        &json!({"token": token, "new_password": "alice-new-pw"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        Api::as_user(&berth, "alice", "alice-new-pw")
            .get("/users/current")
            .0,
        200
    );
    assert_eq!(
        Api::as_user(&berth, "alice", "alice-old-pw")
            .get("/users/current")
            .0,
        401
    );
    let after = portal.get("/account");
    assert_ne!(after.status, 200, "the portal session outlived the reset");

    // Once only.
    let (status, _, answer) = anon.put(
        "/users/password-reset",
        &json!({"token": token, "new_password": "alice-third-pw"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("cannot be used"), "{answer}");
    assert_eq!(
        Api::as_user(&berth, "alice", "alice-new-pw")
            .get("/users/current")
            .0,
        200
    );

    // An expired link is refused (its expiry moved into the past).
    berth.sql("UPDATE password_resets SET expires_at = 1");
    let (status, _, answer) = anon.put(
        "/users/password-reset",
        &json!({"token": token_in(&bob[0]), "new_password": "bob-new-pw!"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        Api::as_user(&berth, "bob", "bob-old-pw")
            .get("/users/current")
            .0,
        200
    );

    // Malformed input is the caller's mistake; robots may not ask.
    let (status, _, answer) =
        anon.post("/users/password-reset", &json!({"email": "not-an-address"}));
    assert_eq!(status, 400, "{answer}");
    let (_, robot_secret) = admin.create_robot(&json!({
        "name": "ci", "level": "system", "duration": -1,
        "permissions": [{"kind": "project", "namespace": "library",
            "access": [{"resource": "repository", "action": "pull"}]}]
    }));
    let robot = Api::as_user(&berth, "robot$ci", &robot_secret);
    let (status, _, answer) = robot.post(
        "/users/password-reset",
        &json!({"email": "bob@example.org"}),
    );
    assert_eq!(status, 403, "{answer}");

    // Five requests per client address per 15 minutes (four so far).
    let (status, _, _) = anon.post(
        "/users/password-reset",
        &json!({"email": "carol@example.org"}),
    );
    assert_eq!(status, 202);
    let (status, _, answer) = anon.post(
        "/users/password-reset",
        &json!({"email": "dave@example.org"}),
    );
    assert_eq!(status, 429, "{answer}");
    assert!(message(&answer).contains("try again"), "{answer}");
}

#[test]
fn test_mails_log_in_and_use_starttls() {
    let smtp = Smtp::start(SmtpOptions {
        login: Some(("berth-mail".into(), "mail-secret".into())),
        starttls: true,
        tls: false,
    });
    let berth = with_mail(
        &smtp,
        &[
            ("BERTH_EMAIL__USERNAME", "berth-mail"),
            ("BERTH_EMAIL__PASSWORD", "mail-secret"),
            ("BERTH_EMAIL__STARTTLS", "true"),
            ("BERTH_EMAIL__INSECURE", "true"),
        ],
    );
    let admin = Api::admin(&berth);
    let (status, _, answer) = admin.post("/email/ping", &json!({"email_to": "ops@example.org"}));
    assert_eq!(status, 200, "{answer}");
    let mail = &smtp.wait_for("the test mail", 1, WITHIN, to("ops@example.org"))[0];
    assert!(mail.tls, "sent without STARTTLS");
    assert_eq!(mail.login.as_deref(), Some("berth-mail"));
    assert!(mail.header("Subject").is_some());

    // Without `email_to`, the caller's own address; admin has none.
    let (status, _, answer) = admin.post("/email/ping", &json!({}));
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("email_to"), "{answer}");

    // Administrators only.
    admin.create_user("alice", "alice-pw-1");
    let (status, _, _) =
        Api::as_user(&berth, "alice", "alice-pw-1").post("/email/ping", &json!({}));
    assert_eq!(status, 403);
    let (status, _, _) = Api::anonymous(&berth).post("/email/ping", &json!({}));
    assert_eq!(status, 401);

    // The password never reaches the log.
    assert!(!berth.log_tail(10_000).contains("mail-secret"));

    // The server's self-signed certificate is refused unless `insecure`.
    let strict = with_mail(
        &smtp,
        &[
            ("BERTH_EMAIL__USERNAME", "berth-mail"),
            ("BERTH_EMAIL__PASSWORD", "mail-secret"),
            ("BERTH_EMAIL__STARTTLS", "true"),
        ],
    );
    let (status, _, answer) =
        Api::admin(&strict).post("/email/ping", &json!({"email_to": "ops@example.org"}));
    assert_eq!(status, 502, "{answer}");
    assert!(message(&answer).contains("mail server"), "{answer}");

    // A wrong password is the server's refusal, said as such.
    let wrong = with_mail(
        &smtp,
        &[
            ("BERTH_EMAIL__USERNAME", "berth-mail"),
            ("BERTH_EMAIL__PASSWORD", "not-it"),
            ("BERTH_EMAIL__STARTTLS", "true"),
            ("BERTH_EMAIL__INSECURE", "true"),
        ],
    );
    let (status, _, answer) =
        Api::admin(&wrong).post("/email/ping", &json!({"email_to": "ops@example.org"}));
    assert_eq!(status, 502, "{answer}");
    assert!(!message(&answer).contains("not-it"), "{answer}");
    assert_eq!(smtp.mails().len(), 1);
}

#[test]
fn tls_from_the_start_and_no_mail_without_settings() {
    let smtp = Smtp::start(SmtpOptions {
        tls: true,
        ..SmtpOptions::default()
    });
    let berth = with_mail(
        &smtp,
        &[
            ("BERTH_EMAIL__SSL", "true"),
            ("BERTH_EMAIL__INSECURE", "true"),
        ],
    );
    let (status, _, answer) =
        Api::admin(&berth).post("/email/ping", &json!({"email_to": "ops@example.org"}));
    assert_eq!(status, 200, "{answer}");
    assert!(smtp.wait_for("the test mail", 1, WITHIN, to("ops@example.org"))[0].tls);

    // No [email]: the API says what to set, the portal offers no link.
    let plain = Berth::start();
    let (status, _, answer) =
        Api::anonymous(&plain).post("/users/password-reset", &json!({"email": "a@example.org"}));
    assert_eq!(status, 503, "{answer}");
    let (status, _, answer) =
        Api::admin(&plain).post("/email/ping", &json!({"email_to": "a@example.org"}));
    assert_eq!(status, 503, "{answer}");
    assert!(message(&answer).contains("[email]"), "{answer}");
    let mut portal = FormClient::new(&plain.url(), None);
    assert!(!portal.get("/login").body.contains("forgot-password"));
    assert!(portal
        .get("/forgot-password")
        .body
        .contains("reset-unavailable"));
}

#[test]
fn the_portal_resets_a_forgotten_password() {
    let smtp = Smtp::start(SmtpOptions::default());
    let berth = with_mail(&smtp, &[]);
    Api::admin(&berth).create_user("alice", "alice-old-pw");

    let b = Browser::start(&berth.url());
    b.goto("/login");
    b.click_and_wait("#forgot-password");
    assert_eq!(b.current_path(), "/forgot-password");
    b.fill("#email", "alice@example.org");
    b.click_and_wait("#forgot-submit");
    b.wait_for("#reset-requested");
    let mail = smtp.wait_for("Alice's reset mail", 1, WITHIN, to("alice@example.org"));
    let token = token_in(&mail[0]);

    // The link as it would open here (external_url names the site).
    let link = format!("/reset-password?token={token}");
    b.goto(&link);
    b.fill("#new_password", "alice-new-pw");
    b.fill("#repeat_password", "alice-other-pw");
    b.click_and_wait("#reset-submit");
    assert!(b.text(".flash.error").contains("differ"));
    b.fill("#new_password", "alice-new-pw");
    b.fill("#repeat_password", "alice-new-pw");
    b.click_and_wait("#reset-submit");
    assert!(
        b.current_path().starts_with("/login"),
        "{}",
        b.current_path()
    );
    b.wait_for("#password-reset-done");
    b.sign_in("alice", "alice-new-pw");
    assert_eq!(b.current_path(), "/projects");

    // Used: the page says so and offers a new one.
    b.goto(&link);
    b.wait_for("#ask-again");
    assert!(!b.exists("#reset-form"));

    // In Chinese, and what was typed is escaped when it is shown again.
    b.sign_out();
    b.goto("/forgot-password?lang=zh-CN");
    assert_eq!(b.text("h1"), "重置密码");
    let mut form = FormClient::new(&berth.url(), None);
    let page = form.get("/forgot-password");
    let csrf = berth_tests::browser::input_value(&page.body, "csrf").unwrap();
    let page = form.post_form(
        "/forgot-password",
        &[("csrf", &csrf), ("email", "\"><b id=x>bold</b>")],
    );
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(!page.body.contains("<b id=x>"), "{}", page.body);
    assert!(
        page.body.contains("&lt;b id=x&gt;") || page.body.contains("&#60;b id=x&#62;"),
        "{}",
        page.body
    );
}

#[test]
fn clients_behind_a_trusted_proxy_are_counted_apart() {
    let smtp = Smtp::start(SmtpOptions::default());
    let berth = with_mail(&smtp, &[("BERTH_SERVER__TRUSTED_PROXIES", "127.0.0.1/32")]);
    let http = reqwest::blocking::Client::new();
    let ask = |client: &str| {
        let resp = http
            .post(format!("{}/api/v2.0/users/password-reset", berth.url()))
            .header("X-Forwarded-For", format!("{client}, 127.0.0.1"))
            .json(&json!({"email": "nobody@example.org"}))
            .send()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.headers().get("retry-after").cloned(),
        )
    };
    for _ in 0..5 {
        assert_eq!(ask("203.0.113.1").0, 202);
    }
    let (status, retry) = ask("203.0.113.1");
    assert_eq!(status, 429);
    assert_eq!(retry.unwrap(), "900");
    // Another client behind the same proxy is not held back.
    assert_eq!(ask("198.51.100.7").0, 202);
    // One IPv6 /64 is one client (a host picks freely within it).
    for i in 0..5 {
        assert_eq!(ask(&format!("2001:db8::{i}")).0, 202);
    }
    assert_eq!(ask("2001:db8::ff").0, 429);
    assert_eq!(ask("2001:db8:0:1::1").0, 202);
}
