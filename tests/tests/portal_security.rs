//! The portal's defences, mostly with a plain HTTP client that shows what
//! a browser hides: CSRF tokens, escaping of what images carry, the
//! session id renewed at sign-in and dropped at sign-out, cookie flags,
//! Content-Security-Policy and framing, local-only redirects after
//! sign-in, robots kept out, private projects kept from anonymous users.
#![allow(clippy::unwrap_used)]

use berth_tests::browser::{decode_entities, input_value, Browser, FormClient, Page};
use berth_tests::content::{random_layer, random_suffix, to_json, OCI_CONFIG, OCI_MANIFEST};
use berth_tests::{Api, Berth, Blob};
use serde_json::json;

/// A client signed in as the administrator.
fn admin_client(berth: &Berth) -> FormClient {
    let mut http = FormClient::new(&berth.url(), berth.tls_ca());
    let page = http.sign_in("admin", berth.admin_password());
    assert_eq!(page.status, 303, "admin sign-in: {}", page.body);
    http
}

/// Percent-decodes a query value (enough for paths).
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts that `page` is the portal's answer to an anonymous visit of a
/// page that needs a login: a redirect to `/login?next=<path>`.
fn assert_sent_to_login(page: &Page, path: &str) {
    assert!(
        matches!(page.status, 302 | 303 | 307),
        "expected a redirect to the login page, got {}: {}",
        page.status,
        page.body
    );
    let location = page.location().unwrap_or_default();
    assert!(
        location.starts_with("/login?next="),
        "redirected to {location}"
    );
    assert_eq!(
        percent_decode(location.trim_start_matches("/login?next=")),
        path,
        "{location}"
    );
}

/// Asserts the headers every page carries: a Content-Security-Policy
/// whose scripts exclude inline ones, and no framing.
fn assert_safe_headers(page: &Page, what: &str) {
    let csp = page
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .map(str::to_owned)
    };
    let scripts = directive("script-src")
        .or_else(|| directive("default-src"))
        .unwrap_or_else(|| panic!("{what}: no script-src nor default-src in {csp:?}"));
    assert!(
        !scripts.contains("'unsafe-inline'"),
        "{what}: inline scripts allowed by {csp:?}"
    );
    assert!(
        !scripts.split_whitespace().any(|s| s == "*"),
        "{what}: scripts from anywhere in {csp:?}"
    );
    let frame_options = page.header("x-frame-options").unwrap_or_default();
    assert!(
        frame_options.eq_ignore_ascii_case("DENY"),
        "{what}: X-Frame-Options {frame_options:?}"
    );
}

#[test]
fn a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let mut http = admin_client(&berth);
    let page = http.get("/projects");
    assert_eq!(page.status, 200);
    let csrf = input_value(&page.body, "csrf").expect("a csrf field on /projects");

    for (what, token) in [
        ("no token", None),
        ("a wrong token", Some("0123456789abcdef")),
    ] {
        let name = format!("nocsrf{}", random_suffix());
        let mut fields = vec![("project_name", name.as_str()), ("storage_limit", "")];
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        let page = http.post_form("/projects", &fields);
        assert_eq!(
            page.status, 403,
            "create project with {what}: {}",
            page.body
        );
        assert_eq!(
            api.get(&format!("/projects/{name}")).0,
            404,
            "a project was created with {what}"
        );
    }
    // The same request with the page's token works: it was the token.
    let name = format!("withcsrf{}", random_suffix());
    let page = http.post_form(
        "/projects",
        &[
            ("project_name", &name),
            ("storage_limit", ""),
            ("csrf", &csrf),
        ],
    );
    assert!(
        matches!(page.status, 200 | 303),
        "create project with the token: {} {}",
        page.status,
        page.body
    );
    assert_eq!(api.get(&format!("/projects/{name}")).0, 200);

    // Signing out needs the token too.
    let page = http.post_form("/logout", &[]);
    assert_eq!(page.status, 403, "sign-out without a token: {}", page.body);
    assert_eq!(
        http.get("/admin/gc").status,
        200,
        "signed out without a token"
    );

    // And so does signing in.
    let mut anonymous = FormClient::new(&berth.url(), None);
    let page = anonymous.post_form(
        "/login",
        &[("username", "admin"), ("password", berth.admin_password())],
    );
    assert_eq!(page.status, 403, "sign-in without a token: {}", page.body);
    assert_sent_to_login(&anonymous.get("/admin/gc"), "/admin/gc");
}

const XSS_SCRIPT: &str = "<script>window.berthXss=1</script>";
const XSS_IMG: &str = "<img src=x onerror=\"window.berthXss=2\">";
const XSS_HISTORY: &str = "/bin/sh -c #(nop) <script>window.berthXss=3</script>";

#[test]
fn markup_in_annotations_labels_and_history_shows_as_text() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("xss", true);
    let registry = berth.registry();
    let layer = random_layer(1, 512);
    let config = Blob::new(
        to_json(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.example.label": XSS_IMG}, "Cmd": [XSS_SCRIPT]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created_by": XSS_HISTORY}],
        })),
        OCI_CONFIG,
    );
    let manifest = Blob::new(
        to_json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.blob.descriptor()],
            "annotations": {
                "org.example.note": XSS_SCRIPT,
                "org.opencontainers.image.description": XSS_IMG,
            },
        })),
        OCI_MANIFEST,
    );
    registry.push_blob("xss/app", &layer.blob);
    registry.push_blob("xss/app", &config);
    registry.push_manifest("xss/app", "v1", &manifest);

    let artifact = format!(
        "/projects/xss/repositories/app/artifacts/{}",
        manifest.digest
    );
    let pages = [
        "/projects/xss/repositories".to_owned(),
        "/projects/xss/repositories/app".to_owned(),
        artifact.clone(),
    ];
    // The bytes sent: escaped, never raw markup.
    let mut http = admin_client(&berth);
    for path in &pages {
        let page = http.get(path);
        assert_eq!(page.status, 200, "GET {path}: {}", page.body);
        for raw in ["<script>window.berthXss", "<img src=x"] {
            assert!(!page.body.contains(raw), "{path} carries raw {raw:?}");
        }
    }
    // Escaped, by name (`&lt;`) or number (`&#60;`): once decoded, the
    // page holds the annotation's text.
    let page = http.get(&artifact);
    assert!(
        decode_entities(&page.body).contains(XSS_SCRIPT),
        "the annotation is not on the artifact page"
    );

    // What the browser made of it: text, and nothing ran.
    let browser = Browser::start(&berth.url());
    browser.sign_in("admin", berth.admin_password());
    for path in &pages {
        browser.goto(path);
        let ran = browser.execute("return typeof window.berthXss;", vec![]);
        assert_eq!(ran, "undefined", "markup from the image ran on {path}");
        let injected = browser.execute(
            "return Array.from(document.querySelectorAll('*')).filter(e => \
               (e.tagName === 'SCRIPT' && e.textContent.includes('berthXss')) || \
               Array.from(e.attributes).some(a => a.value.includes('berthXss'))) \
             .map(e => e.outerHTML);",
            vec![],
        );
        assert_eq!(
            injected,
            json!([]),
            "elements made from image data on {path}"
        );
    }
    browser.goto(&artifact);
    let annotations = browser.text("#annotations");
    assert!(
        annotations.contains(XSS_SCRIPT),
        "the annotation as text: {annotations:?}"
    );
    assert!(annotations.contains(XSS_IMG), "{annotations:?}");
}

#[test]
fn the_session_id_changes_at_sign_in_and_dies_at_sign_out() {
    let berth = Berth::start();

    // Whatever session cookie a visitor holds before signing in (one the
    // server gave, or one an attacker planted), it is not the one after,
    // and it does not authenticate.
    for planted in [false, true] {
        let mut http = FormClient::new(&berth.url(), None);
        if planted {
            http.set_cookie("berth_session", &format!("planted{}", random_suffix()));
        }
        let login = http.get("/login");
        assert_eq!(login.status, 200);
        let Some(before) = http.cookie("berth_session").map(str::to_owned) else {
            // No session before sign-in: nothing to carry over.
            continue;
        };
        let csrf = input_value(&login.body, "csrf").expect("csrf on /login");
        let page = http.post_form(
            "/login",
            &[
                ("username", "admin"),
                ("password", berth.admin_password()),
                ("csrf", &csrf),
            ],
        );
        assert_eq!(page.status, 303, "sign-in: {}", page.body);
        let after = http
            .cookie("berth_session")
            .expect("a session after sign-in");
        assert_ne!(
            after, before,
            "the session id survived sign-in (planted: {planted})"
        );
        assert_eq!(http.get("/admin/gc").status, 200, "the new session");
        let mut old = FormClient::new(&berth.url(), None);
        old.set_cookie("berth_session", &before);
        assert_sent_to_login(&old.get("/admin/gc"), "/admin/gc");
    }

    // The same in a browser, with a cookie set before the sign-in.
    let browser = Browser::start(&berth.url());
    browser.goto("/login");
    let before = match browser.cookie("berth_session") {
        Some(cookie) => cookie.value,
        None => {
            let planted = format!("planted{}", random_suffix());
            browser.set_cookie("berth_session", &planted);
            planted
        }
    };
    browser.goto("/login");
    browser.fill_login("admin", berth.admin_password());
    assert_eq!(browser.current_path(), "/projects");
    let after = browser
        .cookie("berth_session")
        .expect("a session cookie")
        .value;
    assert_ne!(after, before, "the browser's session id survived sign-in");

    // Sign-out ends the session on the server, not only in the browser.
    let mut http = admin_client(&berth);
    let session = http.cookie("berth_session").unwrap().to_owned();
    let page = http.get("/projects");
    let csrf = input_value(&page.body, "csrf").expect("csrf on /projects");
    let page = http.post_form("/logout", &[("csrf", &csrf)]);
    assert_eq!(page.status, 303, "sign-out: {}", page.body);
    let mut replay = FormClient::new(&berth.url(), None);
    replay.set_cookie("berth_session", &session);
    assert_sent_to_login(&replay.get("/admin/gc"), "/admin/gc");
}

#[test]
fn cookie_flags_and_security_headers() {
    let berth = Berth::start();
    let mut http = FormClient::new(&berth.url(), None);
    let login = http.get("/login");
    assert_safe_headers(&login, "GET /login");
    let wrong = http.sign_in("admin", "not-the-password");
    assert_eq!(wrong.status, 401);
    assert_safe_headers(&wrong, "a refused sign-in");
    let page = http.sign_in("admin", berth.admin_password());
    assert_eq!(page.status, 303, "{}", page.body);
    let cookie = page
        .set_cookie("berth_session")
        .expect("Set-Cookie berth_session");
    assert!(cookie.http_only, "{cookie:?}");
    assert!(!cookie.secure, "Secure over plain HTTP: {cookie:?}");
    assert_eq!(
        cookie
            .same_site
            .as_deref()
            .map(str::to_lowercase)
            .as_deref(),
        Some("lax")
    );
    assert_eq!(cookie.path.as_deref(), Some("/"), "{cookie:?}");
    for path in [
        "/projects",
        "/projects/library",
        "/projects/library/repositories",
        "/admin/gc",
    ] {
        let page = http.get(path);
        assert_eq!(page.status, 200, "GET {path}");
        assert_safe_headers(&page, path);
    }
    let refused = http.post_form("/projects", &[("project_name", "x")]);
    assert_eq!(refused.status, 403);
    assert_safe_headers(&refused, "a refused POST");

    // Under TLS the session cookie is Secure.
    let tls = Berth::start_tls();
    let mut https = FormClient::new(&tls.url(), tls.tls_ca());
    let page = https.sign_in("admin", tls.admin_password());
    assert_eq!(page.status, 303, "{}", page.body);
    let cookie = page
        .set_cookie("berth_session")
        .expect("Set-Cookie berth_session");
    assert!(cookie.secure, "not Secure under TLS: {cookie:?}");
    assert!(cookie.http_only, "{cookie:?}");
}

#[test]
fn sign_in_goes_to_local_pages_only() {
    let berth = Berth::start();
    let sign_in_to = |next: &str| {
        let mut http = FormClient::new(&berth.url(), None);
        let login = http.get(&format!(
            "/login?next={}",
            next.replace('%', "%25")
                .replace('/', "%2F")
                .replace(':', "%3A")
                .replace('\\', "%5C")
        ));
        assert_eq!(login.status, 200);
        let csrf = input_value(&login.body, "csrf").expect("csrf on /login");
        let page = http.post_form(
            "/login",
            &[
                ("username", "admin"),
                ("password", berth.admin_password()),
                ("csrf", &csrf),
                ("next", next),
            ],
        );
        assert_eq!(page.status, 303, "sign-in with next={next}: {}", page.body);
        page.location().unwrap_or_default().to_owned()
    };
    assert_eq!(sign_in_to("/projects/library"), "/projects/library");
    for hostile in [
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example/x",
        "javascript:alert(1)",
    ] {
        let location = sign_in_to(hostile);
        assert!(
            location.starts_with('/')
                && !location.starts_with("//")
                && !location.starts_with("/\\"),
            "next={hostile} sent the user to {location}"
        );
    }
}

#[test]
fn robots_cannot_sign_in_and_anonymous_users_see_only_public_projects() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("closed", false);
    let (name, secret) = api.create_robot(&json!({
        "name": "ci",
        "level": "project",
        "duration": -1,
        "disable": false,
        "description": "",
        "permissions": [{
            "kind": "project",
            "namespace": "closed",
            "access": [{"resource": "repository", "action": "pull"}],
        }],
    }));
    assert!(name.starts_with("robot$"), "{name}");
    let mut http = FormClient::new(&berth.url(), None);
    let page = http.sign_in(&name, &secret);
    assert_ne!(page.status, 303, "a robot signed in: {:?}", page.location());
    assert!(
        matches!(page.status, 401 | 403),
        "a robot's sign-in answered {}",
        page.status
    );
    assert_sent_to_login(&http.get("/projects/closed"), "/projects/closed");

    let mut anonymous = FormClient::new(&berth.url(), None);
    let page = anonymous.get("/projects/library");
    assert_eq!(
        page.status, 200,
        "a public project, anonymously: {}",
        page.body
    );
    assert!(!page.body.contains("id=\"user-menu\""));
    assert_sent_to_login(&anonymous.get("/projects/closed"), "/projects/closed");
    assert_sent_to_login(
        &anonymous.get("/projects/closed/repositories"),
        "/projects/closed/repositories",
    );
}
