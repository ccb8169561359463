//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, through the fantoccini crate), for the page tests.
//!
//! Every session records the browser console and every network request (Chromium's
//! `goog:loggingPrefs`), so a test can assert that nothing reached the console and no
//! request left the server's origin ([`Browser::assert_clean`]). As a safety net the
//! browser cannot resolve any host name but loopback, and its background services are
//! off, so a test never reaches the internet even when a page is wrong.
//!
//! Screenshots go to `target/screenshots/`; with `UPDATE_SCREENSHOTS=1` the desktop ones
//! also replace the committed copies in `docs/img/` (which the README shows).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// Desktop and phone viewport sizes (CSS pixels) for screenshots.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|c| {
            if c.starts_with('/') {
                std::path::Path::new(c).is_file()
            } else {
                Command::new("sh")
                    .args(["-c", &format!("command -v {c}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            }
        })
        .map(|c| c.to_string())
}

/// The browser binary (Debian's real binary behind its `/usr/bin/chromium` wrapper).
fn chromium_binary() -> Option<String> {
    find(&[
        "/usr/lib/chromium/chromium",
        "chromium",
        "chromium-browser",
        "google-chrome",
    ])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `POST /session/{id}/se/log`: ChromeDriver's log endpoint (drains the buffer).
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Console entries and request URLs seen so far (the logs drain when read).
    console: Vec<String>,
    requests: Vec<String>,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session. `None` (reported, and a
    /// failure under CI) when either is not installed.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(driver)) = (chromium_binary(), find(&["chromedriver"])) else {
            super::unavailable("chromium and chromedriver (scripts/install-deps.sh installs them)");
            return None;
        };
        let port = free_port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromedriver did not listen on {url}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--disable-extensions",
                    "--disable-quic",
                    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--hide-scrollbars",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            },
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("start a Chromium session");
        let mut browser = Browser {
            client,
            driver: child,
            _profile: profile,
            console: Vec::new(),
            requests: Vec::new(),
        };
        // The browser's own start page (chrome://new-tab-page…) is not the test's: leave
        // it and forget what it logged before the test opens anything.
        browser
            .client
            .goto("about:blank")
            .await
            .expect("open about:blank");
        browser.drain_logs().await;
        browser.console.clear();
        browser.requests.clear();
        Some(browser)
    }

    /// Navigates and waits until the page has loaded.
    pub async fn open(&mut self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Resizes the viewport to `(width, height)` CSS pixels.
    pub async fn viewport(&self, (w, h): (u32, u32)) {
        // The window has chrome around the viewport: size it, then correct by the
        // difference the page reports.
        self.client.set_window_size(w, h).await.expect("resize");
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .expect("read viewport");
        let iw = inner[0].as_u64().unwrap_or(w.into()) as u32;
        let ih = inner[1].as_u64().unwrap_or(h.into()) as u32;
        if (iw, ih) != (w, h) {
            self.client
                .set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
                .await
                .expect("resize");
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits up to `timeout` for `condition` (a JS expression) to become truthy.
    pub async fn wait_for(&self, condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(&format!("return !!({condition})"), vec![]).await;
            if v == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let body = self
                    .js(
                        "return document.body ? document.body.innerText : ''",
                        vec![],
                    )
                    .await;
                panic!("timed out waiting for `{condition}`; page text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses and releases one key (e.g. `Key::Tab`) on whatever has focus.
    pub async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let value: char = key.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.client.perform_actions(keys).await.expect("key press");
    }

    /// The text of the first element matching `selector` (trimmed).
    pub async fn text(&self, selector: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            vec![json!(selector)],
        )
        .await
        .as_str()
        .unwrap_or_else(|| panic!("no element matches {selector}"))
        .trim()
        .to_string()
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png`; with
    /// `UPDATE_SCREENSHOTS=1` and `to_docs`, also as `docs/img/<name>.png`.
    pub async fn screenshot(&self, name: &str, to_docs: bool) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        if to_docs && std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let docs = root.join("docs/img");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
        path
    }

    async fn drain_logs(&mut self) {
        let log = |kind| self.client.issue_cmd(GetLog(kind));
        let console = log("browser").await.expect("read the console log");
        let perf = log("performance").await.expect("read the performance log");
        for e in console.as_array().into_iter().flatten() {
            self.console.push(format!(
                "{} {}",
                e["level"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            ));
        }
        for e in perf.as_array().into_iter().flatten() {
            let Some(msg) = e["message"]
                .as_str()
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
            else {
                continue;
            };
            let m = &msg["message"];
            if m["method"] == "Network.requestWillBeSent" {
                if let Some(u) = m["params"]["request"]["url"].as_str() {
                    self.requests.push(u.to_string());
                }
            }
        }
    }

    /// Every request the browser made so far.
    pub async fn requests(&mut self) -> Vec<String> {
        self.drain_logs().await;
        self.requests.clone()
    }

    /// Asserts that every request so far went to `origin` (data: URLs aside) and that
    /// nothing at all reached the console (errors, warnings, CSP reports, logs).
    pub async fn assert_clean(&mut self, origin: &str) {
        self.drain_logs().await;
        let foreign: Vec<&String> = self
            .requests
            .iter()
            .filter(|u| !(u.starts_with(&format!("{origin}/")) || u.starts_with("data:")))
            .collect();
        assert!(
            foreign.is_empty(),
            "requests left the origin {origin}: {foreign:?}"
        );
        assert!(
            !self.requests.is_empty(),
            "no request was recorded at all: the request log is not working"
        );
        assert!(
            self.console.is_empty(),
            "the console is not empty: {:#?}",
            self.console
        );
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
