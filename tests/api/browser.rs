//! Pages checked in a real headless Chromium: the API docs page renders the OpenAPI
//! document with no network access beyond the server.

use crate::common;

use std::process::Command;

use common::{Backend, TestApp};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Loads `url` headless, lets scripts and fetches run, and returns the resulting DOM.
pub fn rendered_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_renders_every_route_in_a_browser() {
    let Some(browser) = chromium() else {
        common::unavailable("chromium (scripts/install-deps.sh installs it)");
        return;
    };
    let Some(app) = TestApp::on(Backend::Sqlite).start().await else {
        return;
    };
    let url = app.url("/docs");
    let dom = tokio::task::spawn_blocking(move || rendered_dom(browser, &url))
        .await
        .unwrap();
    assert!(
        dom.contains("data-ready=\"true\""),
        "the page never finished rendering:\n{dom:.2000}"
    );
    assert!(
        dom.contains("<p id=\"error\"></p>"),
        "the page reported an error: {dom:.2000}"
    );
    for path in common::documented_routes() {
        assert!(
            dom.contains(&format!(">{path}<")),
            "the rendered docs lack {path}"
        );
    }
    assert!(dom.contains("orig_code"), "parameters are rendered");
    app.stop().await;
}
