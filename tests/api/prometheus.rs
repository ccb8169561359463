//! A real Prometheus scrapes the API's /metrics: the exposition parses, the target is up,
//! and the metrics we promise are queryable.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestApp};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_api() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        common::unavailable("prometheus (scripts/install-deps.sh installs it)");
        return;
    }
    let Some(app) = TestApp::on(Backend::Sqlite).start().await else {
        return;
    };
    app.get("/rates?date_from=2021-01-01&date_to=2021-01-02&orig_code=A&dest_code=B")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let target = app.base.trim_start_matches("http://").to_string();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pricehub\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let client = reqwest::Client::new();
    let query = |q: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            v["data"]["result"]
                .as_array()
                .filter(|a| !a.is_empty())
                .cloned()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = query("up{job=\"pricehub\"} == 1").await {
            assert_eq!(r.len(), 1);
            break;
        }
        // A scrape that fails to parse shows up as a health error on the target.
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
            .send()
            .await
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            let err = &v["data"]["activeTargets"][0]["lastError"];
            assert!(
                err.as_str().unwrap_or("").is_empty()
                    || err.as_str().unwrap().contains("connection refused"),
                "prometheus cannot scrape /metrics: {err}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the API"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for q in [
        "pricehub_build_info",
        "pricehub_http_requests_total{route=\"/rates\",status=\"4xx\"}",
        "pricehub_http_request_duration_seconds_bucket{route=\"/rates\"}",
        "pricehub_db_pool_connections{state=\"max\"}",
    ] {
        assert!(query(q).await.is_some(), "prometheus has no series for {q}");
    }
    app.stop().await;
}
