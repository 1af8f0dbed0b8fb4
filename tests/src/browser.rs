//! Headless Chromium driven over WebDriver, for the portal tests; and a
//! plain HTTP client that keeps cookies and posts forms, for what a browser
//! hides (statuses, headers, `Set-Cookie` flags, forged requests).
//!
//! Each [`Browser`] is its own `chromedriver` (Debian's `chromium-driver`)
//! on a free port, and its own Chromium profile in a temp dir: browsers
//! share no cookies. Its methods are blocking, like the rest of this crate:
//! the WebDriver client runs on a small tokio runtime of its own. Every
//! wait polls a condition with a deadline.
//!
//! Screenshots go to the directory in `BERTH_SCREENSHOTS`, by default
//! `target/portal-screenshots` under the tests crate.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::blocking::Response;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::registry::http_client_trusting;
use crate::server::free_port;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long chromedriver may take to report ready, and Chromium to open a
/// session.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// The default deadline of [`Browser::wait_until`] and the waits built on
/// it (a page load after a click, an element to appear).
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a wait asks the browser again.
const POLL: Duration = Duration::from_millis(50);
/// The default window: a laptop screen.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// Full-page screenshots stop at this height.
const MAX_SHOT_HEIGHT: u32 = 4000;

/// How a browser starts: its languages and window size.
#[derive(Debug, Clone)]
pub struct Options {
    /// Chromium's UI language (`--lang`) and the `Accept-Language` it
    /// sends (`intl.accept_languages`), e.g. `zh-CN` or `en-US`.
    pub lang: String,
    pub width: u32,
    pub height: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            lang: "en-US".to_owned(),
            width: WIDTH,
            height: HEIGHT,
        }
    }
}

impl Options {
    /// English, 1280x900.
    pub fn new() -> Options {
        Options::default()
    }

    /// A browser whose user prefers `lang` (`zh-CN`, `en-US`).
    pub fn lang(mut self, lang: &str) -> Options {
        self.lang = lang.to_owned();
        self
    }

    pub fn window(mut self, width: u32, height: u32) -> Options {
        self.width = width;
        self.height = height;
        self
    }

    /// `intl.accept_languages`: the language, then its primary subtag
    /// (`zh-CN,zh`), as a user's browser sends it.
    fn accept_languages(&self) -> String {
        match self.lang.split_once('-') {
            Some((primary, _)) => format!("{},{primary}", self.lang),
            None => self.lang.clone(),
        }
    }
}

/// A cookie as the browser (or a `Set-Cookie` header) holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieInfo {
    pub name: String,
    pub value: String,
    pub path: Option<String>,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax` or `None`, as written.
    pub same_site: Option<String>,
    /// `Max-Age` or `Expires` was given (a `Set-Cookie` that deletes or
    /// persists); the browser reports only what it keeps.
    pub expires: bool,
    /// A `Set-Cookie` that deletes the cookie (`Max-Age=0`, an `Expires`
    /// in 1970).
    pub removes: bool,
}

impl CookieInfo {
    /// Parses one `Set-Cookie` header value.
    pub fn parse_set_cookie(header: &str) -> Option<CookieInfo> {
        let mut parts = header.split(';');
        let (name, value) = parts.next()?.trim().split_once('=')?;
        let mut cookie = CookieInfo {
            name: name.trim().to_owned(),
            value: value.trim().trim_matches('"').to_owned(),
            path: None,
            http_only: false,
            secure: false,
            same_site: None,
            expires: false,
            removes: false,
        };
        for attribute in parts {
            let (key, value) = match attribute.trim().split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (attribute.trim(), None),
            };
            match key.to_ascii_lowercase().as_str() {
                "path" => cookie.path = value.map(str::to_owned),
                "httponly" => cookie.http_only = true,
                "secure" => cookie.secure = true,
                "samesite" => cookie.same_site = value.map(str::to_owned),
                "max-age" => {
                    cookie.expires = true;
                    cookie.removes |= value
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|n| n <= 0);
                }
                "expires" => {
                    cookie.expires = true;
                    cookie.removes |= value.is_some_and(|v| v.contains("1970"));
                }
                _ => {}
            }
        }
        Some(cookie)
    }
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    /// Starts chromedriver with its log under `dir` and waits for its
    /// `/status` to say ready.
    fn start(dir: &Path) -> Driver {
        let mut last = String::new();
        // Another process may take the port between our probe and
        // chromedriver's bind: then try another one.
        for attempt in 0..4 {
            let port = free_port();
            let log = dir.join(format!("chromedriver-{attempt}.log"));
            let output = File::create(dir.join(format!("chromedriver-{attempt}.out")))
                .expect("create chromedriver output file");
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone output handle"))
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
            let mut driver = Driver { child, port, log };
            match driver.wait_ready() {
                Ok(()) => return driver,
                Err(e) => last = e,
            }
        }
        panic!("chromedriver did not start: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let http = http_client_trusting(None, None);
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = Instant::now() + START_DEADLINE;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll chromedriver") {
                return Err(format!(
                    "chromedriver exited ({status}) before it was ready; log:\n{}",
                    self.log_tail(20)
                ));
            }
            match http.get(&url).timeout(Duration::from_secs(2)).send() {
                Ok(resp) => {
                    let body: Value = resp.json().unwrap_or(Value::Null);
                    if body["value"]["ready"] == json!(true) {
                        return Ok(());
                    }
                    last = body.to_string();
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(POLL);
        }
        Err(format!(
            "chromedriver not ready within {START_DEADLINE:?} (last: {last})"
        ))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium with a profile of its own, pointed at a base URL
/// (berth's). Every method panics with the page's URL on failure.
pub struct Browser {
    base: String,
    client: Option<Client>,
    // Dropped in this order: the session is closed in `drop`, then the
    // runtime, then chromedriver is killed, then the profile removed.
    rt: tokio::runtime::Runtime,
    driver: Driver,
    dir: TempDir,
}

impl Browser {
    /// An English browser, 1280x900, for pages under `base`
    /// (`http://127.0.0.1:PORT`).
    pub fn start(base: &str) -> Browser {
        Browser::start_with(base, Options::new())
    }

    pub fn start_with(base: &str, options: Options) -> Browser {
        let dir = tempfile::Builder::new()
            .prefix("berth-browser-")
            .tempdir()
            .expect("create browser temp dir");
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("create browser profile dir");
        let driver = Driver::start(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("build the browser's tokio runtime");
        let capabilities = json!({
            "browserName": "chrome",
            // Confirm dialogs (a delete's "are you sure?") are accepted,
            // as the user who clicked would.
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--password-store=basic",
                    "--disable-features=Translate",
                    format!("--window-size={},{}", options.width, options.height),
                    format!("--user-data-dir={}", profile.display()),
                    format!("--lang={}", options.lang),
                ],
                "prefs": {"intl": {"accept_languages": options.accept_languages()}},
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = driver.url();
        let client = rt.block_on(async {
            tokio::time::timeout(
                START_DEADLINE,
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&url),
            )
            .await
        });
        let client = match client {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "cannot open a Chromium session: {e}; chromedriver log:\n{}",
                driver.log_tail(40)
            ),
            Err(_) => panic!(
                "no Chromium session within {START_DEADLINE:?}; chromedriver log:\n{}",
                driver.log_tail(40)
            ),
        };
        let browser = Browser {
            base: base.trim_end_matches('/').to_owned(),
            client: Some(client),
            rt,
            driver,
            dir,
        };
        // `--window-size` sets the outer window; make the viewport the
        // size asked for, so pages are laid out at that width.
        browser.set_viewport(options.width, options.height);
        browser
    }

    /// The base URL the paths of [`Browser::goto`] are relative to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The WebDriver client, for what these helpers do not cover; run its
    /// futures with [`Browser::block_on`].
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Runs a future of the WebDriver client to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    fn must<T>(&self, what: &str, result: Result<T, CmdError>) -> T {
        result.unwrap_or_else(|e| panic!("{what} failed at {}: {e}", self.url_or_unknown()))
    }

    fn url_or_unknown(&self) -> String {
        self.client
            .as_ref()
            .and_then(|c| self.rt.block_on(c.current_url()).ok())
            .map_or_else(|| "(unknown page)".to_owned(), |u| u.to_string())
    }

    /// `path` (starting with `/`) under the base URL; an absolute URL
    /// (`http:`, `data:`, ...) as it is.
    pub fn url_of(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            path.to_owned()
        }
    }

    /// Opens a page and waits for it to load.
    pub fn goto(&self, path: &str) {
        let url = self.url_of(path);
        let result = self.block_on(self.client().goto(&url));
        self.must(&format!("goto {url}"), result);
    }

    /// Reloads the page.
    pub fn refresh(&self) {
        let result = self.block_on(self.client().refresh());
        self.must("refresh", result);
    }

    /// The page's URL.
    pub fn current_url(&self) -> String {
        let result = self.block_on(self.client().current_url());
        self.must("current_url", result).to_string()
    }

    /// The page's path and query (`/login?next=%2Fprojects`).
    pub fn current_path(&self) -> String {
        let result = self.block_on(self.client().current_url());
        let url = self.must("current_url", result);
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The first element matching `css`, or `None`.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        self.block_on(self.client().find(Locator::Css(css))).ok()
    }

    /// The first element matching `css`; panics when there is none.
    pub fn find(&self, css: &str) -> Element {
        let result = self.block_on(self.client().find(Locator::Css(css)));
        self.must(&format!("find {css:?}"), result)
    }

    /// Every element matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let result = self.block_on(self.client().find_all(Locator::Css(css)));
        self.must(&format!("find_all {css:?}"), result)
    }

    pub fn exists(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    pub fn count(&self, css: &str) -> usize {
        self.block_on(self.client().find_all(Locator::Css(css)))
            .map_or(0, |all| all.len())
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let element = self.find(css);
        let result = self.block_on(element.text());
        self.must(&format!("text of {css:?}"), result)
    }

    /// [`Browser::text`], or `None` when there is no such element.
    pub fn try_text(&self, css: &str) -> Option<String> {
        let element = self.try_find(css)?;
        self.block_on(element.text()).ok()
    }

    /// The rendered text of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.find_all(css)
            .iter()
            .map(|e| {
                let result = self.block_on(e.text());
                self.must(&format!("text of {css:?}"), result)
            })
            .collect()
    }

    /// An attribute of the first element matching `css` as written in the
    /// HTML (`href` as written, not resolved), or `None` when the element
    /// has no such attribute.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css);
        self.execute(
            "return arguments[0].getAttribute(arguments[1]);",
            vec![element_arg(&element), json!(name)],
        )
        .as_str()
        .map(str::to_owned)
    }

    /// The attribute `name` of every element matching `css`.
    pub fn attrs(&self, css: &str, name: &str) -> Vec<Option<String>> {
        let value = self.execute(
            "return Array.from(document.querySelectorAll(arguments[0]), \
             e => e.getAttribute(arguments[1]));",
            vec![json!(css), json!(name)],
        );
        value
            .as_array()
            .map(|all| all.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The current `value` of a form field (what the user sees).
    pub fn value(&self, css: &str) -> String {
        let element = self.find(css);
        let result = self.block_on(element.prop("value"));
        self.must(&format!("value of {css:?}"), result)
            .unwrap_or_default()
    }

    /// Clears a text field and types `text` into it.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        let cleared = self.block_on(element.clear());
        self.must(&format!("clear {css:?}"), cleared);
        let typed = self.block_on(element.send_keys(text));
        self.must(&format!("type into {css:?}"), typed);
    }

    /// Picks the option with this value in a `<select>`.
    pub fn select(&self, css: &str, value: &str) {
        let element = self.find(css);
        let result = self.block_on(element.select_by_value(value));
        self.must(&format!("select {value:?} in {css:?}"), result);
    }

    /// Ticks or unticks a checkbox by clicking it, as a user would.
    pub fn set_checked(&self, css: &str, checked: bool) {
        let element = self.find(css);
        let result = self.block_on(element.is_selected());
        if self.must(&format!("state of {css:?}"), result) != checked {
            let result = self.block_on(element.click());
            self.must(&format!("click {css:?}"), result);
        }
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        let result = self.block_on(element.click());
        self.must(&format!("click {css:?}"), result);
    }

    /// Clicks the first element matching `css` and waits until a new
    /// document has loaded (a link followed, a form submitted, a redirect
    /// answered).
    pub fn click_and_wait(&self, css: &str) {
        self.mark_page();
        self.click(css);
        self.wait_new_page(&format!("a new page after clicking {css:?}"));
    }

    /// Submits a form by clicking its submit button, and waits for the
    /// answer to load.
    pub fn submit(&self, form_css: &str) {
        let button = format!(
            "{form_css} button[type=submit], {form_css} input[type=submit], \
             {form_css} button:not([type])"
        );
        self.click_and_wait(&button);
    }

    /// Marks the current document, so that [`Browser::wait_new_page`]
    /// can tell when another one has replaced it.
    pub fn mark_page(&self) {
        self.execute("window.__berthTestOldPage = true; return null;", vec![]);
    }

    /// Waits until the document marked by [`Browser::mark_page`] is
    /// replaced by a fully loaded one.
    pub fn wait_new_page(&self, what: &str) {
        self.wait_until(what, WAIT, |b| {
            let script = "return window.__berthTestOldPage === undefined \
                          && document.readyState === 'complete';";
            // While the navigation is under way the page may not answer.
            let loaded = b
                .block_on(b.client().execute(script, vec![]))
                .ok()?
                .as_bool()?;
            loaded.then_some(())
        });
    }

    /// Polls `probe` until it returns `Some` (whose value is returned) or
    /// `deadline` passes (a panic naming `what` and the page).
    pub fn wait_until<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut probe: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let until = Instant::now() + deadline;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if Instant::now() > until {
                panic!(
                    "waited {deadline:?} for {what}; page {}",
                    self.url_or_unknown()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for an element matching `css` to be present.
    pub fn wait_for(&self, css: &str) -> Element {
        self.wait_until(&format!("an element {css:?}"), WAIT, |b| b.try_find(css))
    }

    /// Waits for no element to match `css`.
    pub fn wait_gone(&self, css: &str) {
        self.wait_until(&format!("no element {css:?}"), WAIT, |b| {
            (!b.exists(css)).then_some(())
        });
    }

    /// Runs JavaScript in the page (WebDriver's, so the page's
    /// Content-Security-Policy does not apply); returns its value.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let result = self.block_on(self.client().execute(script, args));
        self.must("execute script", result)
    }

    /// The DOM serialized (`document.documentElement.outerHTML`): what the
    /// browser made of the page, not the bytes the server sent.
    pub fn source(&self) -> String {
        let result = self.block_on(self.client().source());
        self.must("page source", result)
    }

    /// `lang` of the `<html>` element.
    pub fn html_lang(&self) -> String {
        self.attr("html", "lang").unwrap_or_default()
    }

    /// The page's cookies for the current origin, HttpOnly ones included.
    pub fn cookies(&self) -> Vec<CookieInfo> {
        let result = self.block_on(self.client().get_all_cookies());
        self.must("get cookies", result)
            .iter()
            .map(|c| CookieInfo {
                name: c.name().to_owned(),
                value: c.value().to_owned(),
                path: c.path().map(str::to_owned),
                http_only: c.http_only().unwrap_or(false),
                secure: c.secure().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
                expires: c.expires().is_some() || c.max_age().is_some(),
                removes: false,
            })
            .collect()
    }

    /// The cookie `name` of the current origin.
    pub fn cookie(&self, name: &str) -> Option<CookieInfo> {
        self.cookies().into_iter().find(|c| c.name == name)
    }

    /// Sets a cookie (path `/`, `SameSite=Lax`) for the current page's
    /// host.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let result = self.block_on(self.client().current_url());
        let host = self
            .must("current_url", result)
            .host_str()
            .unwrap_or_default()
            .to_owned();
        let mut cookie = Cookie::new(name.to_owned(), value.to_owned());
        cookie.set_path("/");
        // chromedriver refuses a cookie without a domain, and one with
        // fantoccini's default SameSite=None that is not Secure. (The
        // SameSite type is not re-exported: parse one.)
        cookie.set_domain(host);
        let lax = Cookie::parse("a=b; SameSite=Lax")
            .ok()
            .and_then(|c| c.same_site());
        cookie.set_same_site(lax);
        let result = self.block_on(self.client().add_cookie(cookie));
        self.must(&format!("set cookie {name}"), result);
    }

    /// Sets the outer window size.
    pub fn set_window_size(&self, width: u32, height: u32) {
        let result = self.block_on(self.client().set_window_size(width, height));
        self.must("set window size", result);
    }

    /// The viewport's CSS size (`innerWidth`, `innerHeight`).
    pub fn viewport(&self) -> (u64, u64) {
        let value = self.execute("return [window.innerWidth, window.innerHeight];", vec![]);
        (
            value[0].as_u64().unwrap_or_default(),
            value[1].as_u64().unwrap_or_default(),
        )
    }

    /// Resizes the window so that the viewport is `width` x `height` CSS
    /// pixels (the window's frame, if any, added).
    pub fn set_viewport(&self, width: u32, height: u32) {
        self.set_window_size(width, height);
        let (inner_w, inner_h) = self.viewport();
        let extra_w = u64::from(width).saturating_sub(inner_w);
        let extra_h = u64::from(height).saturating_sub(inner_h);
        if extra_w > 0 || extra_h > 0 {
            let w = u32::try_from(u64::from(width) + extra_w).unwrap_or(width);
            let h = u32::try_from(u64::from(height) + extra_h).unwrap_or(height);
            self.set_window_size(w, h);
        }
    }

    /// Writes a PNG of the whole page (up to a height limit) as
    /// `<screenshot dir>/<name>.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create screenshot dir {}: {e}", dir.display()));
        let (width, height) = self.viewport();
        let page_height = self
            .execute(
                "return Math.max(document.documentElement.scrollHeight, \
                 document.body ? document.body.scrollHeight : 0);",
                vec![],
            )
            .as_u64()
            .unwrap_or(height);
        let shot_height = page_height.clamp(height, u64::from(MAX_SHOT_HEIGHT));
        let width = u32::try_from(width).unwrap_or(WIDTH);
        let full = u32::try_from(shot_height).unwrap_or(HEIGHT);
        let original = u32::try_from(height).unwrap_or(HEIGHT);
        if full != original {
            self.set_viewport(width, full);
        }
        let result = self.block_on(self.client().screenshot());
        if full != original {
            self.set_viewport(width, original);
        }
        let png = self.must(&format!("screenshot {name}"), result);
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "screenshot {name} is not a PNG"
        );
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png)
            .unwrap_or_else(|e| panic!("write screenshot {}: {e}", path.display()));
        path
    }

    /// The value of the first hidden `csrf` field on the page (every form
    /// of the portal carries one, the sign-out form included).
    pub fn csrf(&self) -> String {
        self.attr("input[name=csrf]", "value")
            .unwrap_or_else(|| panic!("no csrf value on {}", self.url_or_unknown()))
    }

    /// Signs in through `/login` with the form's fields and waits for the
    /// page after it; returns that page's path.
    pub fn sign_in(&self, username: &str, password: &str) -> String {
        self.goto("/login");
        self.fill_login(username, password);
        self.current_path()
    }

    /// On a login page already open: fills the form, submits it, waits for
    /// the answer.
    pub fn fill_login(&self, username: &str, password: &str) {
        self.wait_for("form#login-form");
        self.fill("input#username", username);
        self.fill("input#password", password);
        self.click_and_wait("button#login-submit");
    }

    /// Signs out with the page's `#logout` button.
    pub fn sign_out(&self) {
        self.click_and_wait("button#logout");
    }

    /// The tail of chromedriver's log (Chromium's console included).
    pub fn driver_log(&self, lines: usize) -> String {
        self.driver.log_tail(lines)
    }

    /// The temp dir of this browser (its profile and chromedriver's log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if std::thread::panicking() {
            // What the browser showed when the test failed.
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .replace("::", "-");
            let url = self
                .rt
                .block_on(client.current_url())
                .map_or_else(|e| format!("(unknown: {e})"), |u| u.to_string());
            let shot = screenshot_dir().join(format!("failed-{name}.png"));
            if let Ok(png) = self.rt.block_on(client.screenshot()) {
                let _ = std::fs::create_dir_all(screenshot_dir());
                let _ = std::fs::write(&shot, png);
            }
            eprintln!(
                "----- browser at {url} when the test failed; screenshot {} -----",
                shot.display()
            );
        }
        let _ = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), client.close()).await
        });
    }
}

/// An element as a script argument.
fn element_arg(element: &Element) -> Value {
    serde_json::to_value(element).expect("serialize an element reference")
}

/// Where screenshots go: `BERTH_SCREENSHOTS`, or
/// `target/portal-screenshots` under the tests crate.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("BERTH_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portal-screenshots"),
    }
}

/// A plain HTTP client of the portal that keeps its cookies (one jar, one
/// origin), follows no redirect and posts forms: for statuses, headers and
/// requests a browser would not send.
pub struct FormClient {
    base: String,
    http: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

/// What the portal answered.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// The `Set-Cookie` headers, parsed.
    pub set_cookies: Vec<CookieInfo>,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Location`, for redirects.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The `Set-Cookie` of `name`, if this answer set it.
    pub fn set_cookie(&self, name: &str) -> Option<&CookieInfo> {
        self.set_cookies.iter().find(|c| c.name == name)
    }
}

impl FormClient {
    /// A client of the portal at `base`, trusting `ca` when given (HTTPS).
    pub fn new(base: &str, ca: Option<&Path>) -> FormClient {
        FormClient {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client_trusting(None, ca),
            cookies: BTreeMap::new(),
        }
    }

    /// The value of a cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Puts a cookie in the jar (a browser's, or a forged one).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    pub fn remove_cookie(&mut self, name: &str) {
        self.cookies.remove(name);
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.get_with(path, &[])
    }

    /// GET with extra headers (`Accept-Language`...).
    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, &format!("GET {path}"))
    }

    /// POSTs `fields` as `application/x-www-form-urlencoded`.
    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(fields);
        self.send(request, &format!("POST {path}"))
    }

    /// Signs in through the login form (its csrf and, if any, its `next`);
    /// returns the answer to the POST.
    pub fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let page = self.get("/login");
        assert_eq!(page.status, 200, "GET /login: {}", page.body);
        let csrf = input_value(&page.body, "csrf").expect("a csrf field on /login");
        self.post_form(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
    }

    fn send(&mut self, mut request: reqwest::blocking::RequestBuilder, what: &str) -> Page {
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", header);
        }
        let resp = request.send().unwrap_or_else(|e| panic!("{what}: {e}"));
        self.read(resp, what)
    }

    fn read(&mut self, resp: Response, what: &str) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let set_cookies: Vec<CookieInfo> = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(CookieInfo::parse_set_cookie)
            .collect();
        for cookie in &set_cookies {
            if cookie.removes || cookie.value.is_empty() {
                self.cookies.remove(&cookie.name);
            } else {
                self.cookies
                    .insert(cookie.name.clone(), cookie.value.clone());
            }
        }
        let body = resp
            .text()
            .unwrap_or_else(|e| panic!("{what}: read body: {e}"));
        Page {
            status,
            headers,
            body,
            set_cookies,
        }
    }
}

/// The `value` of the first `<input>` named `name` in an HTML page, with
/// the usual character references decoded.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    tags(html, "input")
        .into_iter()
        .find(|attrs| attrs.get("name").map(String::as_str) == Some(name))
        .and_then(|attrs| attrs.get("value").cloned())
}

/// The attributes of every `<tag ...>` in an HTML page, by name (lower
/// case), values decoded. Enough for the portal's own markup; not a
/// general HTML parser.
pub fn tags(html: &str, tag: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{tag}");
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&open) {
        let start = from + at + open.len();
        from = start;
        // `<input` but not `<inputs`.
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
            continue;
        }
        let (attrs, end) = parse_attributes(&html[start..]);
        found.push(attrs);
        from = start + end;
    }
    found
}

/// Parses `name="value" name='value' name=value name` up to the closing
/// `>`; returns them and the offset after the `>`.
fn parse_attributes(text: &str) -> (BTreeMap<String, String>, usize) {
    let bytes = text.as_bytes();
    let mut attrs = BTreeMap::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i].is_ascii_whitespace() || bytes[*i] == b'/') {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= bytes.len() {
            return (attrs, i);
        }
        if bytes[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < bytes.len() && !b" \t\r\n=>/".contains(&bytes[i]) {
            i += 1;
        }
        let name = text[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let value_start = i + 1;
                i = value_start;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                value = decode_entities(&text[value_start..i.min(bytes.len())]);
                i += 1;
            } else {
                let value_start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&text[value_start..i]);
            }
        }
        if !name.is_empty() {
            attrs.entry(name).or_insert(value);
        }
    }
}

/// Decodes `&amp; &lt; &gt; &quot; &#39; &#x27; &#NN;` in an attribute.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{decode_entities, input_value, tags, CookieInfo};

    #[test]
    fn set_cookie_flags_are_parsed() {
        let c = CookieInfo::parse_set_cookie(
            "berth_session=abc123; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600",
        )
        .expect("a cookie");
        assert_eq!(c.name, "berth_session");
        assert_eq!(c.value, "abc123");
        assert_eq!(c.path.as_deref(), Some("/"));
        assert!(c.http_only);
        assert!(!c.secure);
        assert_eq!(c.same_site.as_deref(), Some("Lax"));
        assert!(c.expires);
    }

    #[test]
    fn input_values_are_found_in_any_attribute_order() {
        let html = r#"<form><input type="hidden" value="t&amp;k" name="csrf">
            <inputs name="csrf" value="no"><INPUT name=next value='/projects/x'></form>"#;
        assert_eq!(input_value(html, "csrf").as_deref(), Some("t&k"));
        assert_eq!(input_value(html, "next").as_deref(), Some("/projects/x"));
        assert_eq!(input_value(html, "other"), None);
        assert_eq!(tags(html, "input").len(), 2);
        assert_eq!(decode_entities("&lt;script&gt;&#39;&#x41;&"), "<script>'A&");
    }
}
