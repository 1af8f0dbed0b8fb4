//! The browser harness itself, against a page of the test's own (a tiny
//! HTTP server that echoes the request) rather than berth: when these
//! fail, the portal tests' failures say nothing about the portal.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use berth_tests::browser::{Browser, Options};

/// Serves, on a free port, a page showing the request's `Accept-Language`
/// and query, with a form that GETs itself, and sets an HttpOnly cookie.
/// Returns its base URL; the server lives as long as the test process.
fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut accept_language = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("accept-language") {
                        accept_language = value.trim().to_owned();
                    }
                }
            }
            let target = request_line.split_whitespace().nth(1).unwrap_or("/");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
            let body = format!(
                "<!doctype html><html lang=\"en\"><head><title>echo</title></head><body>\
                 <h1>Echo</h1><p id=\"accept-language\">{}</p><p id=\"query\">{}</p>\
                 <form id=\"search\" method=\"get\" action=\"/echo\">\
                 <label for=\"q\">q</label><input id=\"q\" name=\"q\">\
                 <input type=\"checkbox\" id=\"flag\" name=\"flag\" value=\"true\">\
                 <select id=\"size\" name=\"size\"><option value=\"10\">10</option>\
                 <option value=\"50\">50</option></select>\
                 <button type=\"submit\">Go</button></form></body></html>",
                escape(&accept_language),
                escape(query)
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Set-Cookie: probe=1; Path=/; HttpOnly; SameSite=Lax\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[test]
fn the_harness_fills_and_submits_forms_reads_cookies_and_takes_screenshots() {
    let base = echo_server();
    let browser = Browser::start(&base);

    browser.goto("data:text/html,<p id=hello>Hello, harness</p>");
    assert_eq!(browser.text("#hello"), "Hello, harness");

    browser.goto("/echo");
    assert_eq!(browser.text("h1"), "Echo");
    assert_eq!(browser.html_lang(), "en");
    let languages = browser.text("#accept-language");
    assert!(
        languages.starts_with("en-US"),
        "Accept-Language {languages}"
    );
    assert_eq!(browser.viewport().0, 1280, "viewport width");

    browser.fill("#q", "hello world");
    browser.set_checked("#flag", true);
    browser.select("#size", "50");
    browser.submit("form#search");
    assert_eq!(
        browser.current_path(),
        "/echo?q=hello+world&flag=true&size=50"
    );
    assert_eq!(browser.text("#query"), "q=hello+world&flag=true&size=50");
    // The fields were rendered afresh: the typed text is gone.
    assert_eq!(browser.value("#q"), "");
    assert_eq!(
        browser.attrs("form#search option", "value"),
        vec![Some("10".to_owned()), Some("50".to_owned())]
    );

    let probe = browser.cookie("probe").expect("the server's cookie");
    assert_eq!(probe.value, "1");
    assert!(probe.http_only, "{probe:?}");
    assert!(!probe.secure, "{probe:?}");
    assert_eq!(probe.same_site.as_deref(), Some("Lax"), "{probe:?}");
    assert_eq!(probe.path.as_deref(), Some("/"), "{probe:?}");

    let shot = browser.screenshot("harness-echo");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{}", shot.display());
}

#[test]
fn the_harness_can_be_a_narrow_chinese_browser() {
    let base = echo_server();
    let browser = Browser::start_with(&base, Options::new().lang("zh-CN").window(360, 740));
    browser.goto("/echo");
    let languages = browser.text("#accept-language");
    assert!(
        languages.starts_with("zh-CN"),
        "Accept-Language {languages}"
    );
    assert_eq!(browser.viewport(), (360, 740), "viewport");
    let languages = browser.execute("return navigator.languages;", vec![]);
    assert_eq!(languages[0], "zh-CN", "navigator.languages {languages}");

    browser.set_viewport(1024, 700);
    assert_eq!(browser.viewport(), (1024, 700), "viewport after resize");
}
