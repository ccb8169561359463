//! Observability contracts: the label sets `/metrics` exposes are bounded and carry no
//! client identifier; the access log writes one line per request; the request id
//! reaches the order writer's and the ingest worker's log lines.

use crate::common;

use std::collections::{BTreeSet, HashMap};

use common::process::{Proc, pricehub};
use common::{Backend, TestApp, fresh_db};
use pricehub::config::{HttpArgs, Secret};

const TOKEN: &str = "obs-token-secret-1";
const RATES: &str = "EUR=40000,GBP=35000,USD=43216.7431";

/// Every label name any process may expose, with its allowed values (`None`: checked
/// by a rule of its own below).
fn allowed_labels() -> HashMap<&'static str, Option<Vec<&'static str>>> {
    let status = vec!["1xx", "2xx", "3xx", "4xx", "5xx"];
    let methods = vec![
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "any",
        "other",
    ];
    // Orders' outcomes, plus the ingest outcomes (batches and worker attempts).
    let mut outcome = pricehub::orders::metrics::OUTCOMES.to_vec();
    outcome.extend(["committed", "rejected", "replayed", "accepted", "retry"]);
    let mut reason = pricehub::feed::metrics::REJECT_REASONS.to_vec();
    reason.push("lagged");
    HashMap::from([
        ("method", Some(methods)),
        ("route", None),
        ("status", Some(status)),
        ("backend", Some(vec!["postgres", "sqlite"])),
        ("state", Some(vec!["idle", "in_use", "max"])),
        ("outcome", Some(outcome)),
        ("mode", Some(vec!["sync", "async"])),
        ("kind", Some(pricehub::telemetry::DB_ERROR_KINDS.to_vec())),
        (
            "source",
            Some(vec!["memory", "spool", "http", "feed", "fixed"]),
        ),
        ("server", Some(vec!["api", "provider", "collector"])),
        ("table", Some(vec!["regions", "ports", "prices"])),
        // Build info: one value per deployed build.
        ("version", None),
        ("commit", None),
        ("build", None),
        // Histogram buckets.
        ("le", None),
        ("quantile", None),
        ("reason", Some(reason)),
    ])
}

/// `(metric, label, value)` of every sample in a text exposition.
fn label_pairs(exposition: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some(open) = line.find('{') else { continue };
        let close = line.rfind('}').expect("closing brace");
        let name = &line[..open];
        let mut rest = &line[open + 1..close];
        while !rest.is_empty() {
            let eq = rest.find('=').expect("label=value");
            let label = rest[..eq].trim_start_matches(',').to_string();
            let after = &rest[eq + 2..];
            let mut end = 0;
            let bytes = after.as_bytes();
            while bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            out.push((name.to_string(), label, after[..end].to_string()));
            rest = after[end + 1..].trim_start_matches(',');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_are_bounded_and_carry_no_client_identifier() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut http = HttpArgs::default();
    http.ingest.ingest_token = Some(Secret::new(TOKEN));
    http.orders.btc_rate_fixed = Some(RATES.parse().unwrap());
    http.orders.rate_limit_per_minute = 2;
    let app = TestApp::start_with(db, http).await;
    let c = &app.client;
    // Values that must never become label values.
    let secrets = [
        "7f3e0c52-obs-batch",
        "client-key-obs-42",
        "203.0.113.77",
        "obs-unknown-path-9",
        "ZZZZZ",
        "FROBNICATE",
        TOKEN,
    ];
    app.get("/rates?date_from=2021-01-01&date_to=2021-01-02&orig_code=ZZZZZ&dest_code=B")
        .await;
    app.get("/nope/obs-unknown-path-9").await;
    app.get("/batches/7f3e0c52-obs-batch").await;
    let m = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    c.request(m, app.url("/rates")).send().await.unwrap();
    for _ in 0..4 {
        c.post(app.url("/orders"))
            .header("x-api-key", "client-key-obs-42")
            .header("x-forwarded-for", "203.0.113.77")
            .json(&serde_json::json!({"currency": "USD", "amount": "10"}))
            .send()
            .await
            .unwrap();
    }
    c.post(app.url("/prices"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!([{"orig_code": "ZZZZZ", "dest_code": "B", "day": "2021-01-01", "price": 1}]))
        .send()
        .await
        .unwrap();
    c.post(app.url("/prices"))
        .bearer_auth("wrong-token")
        .body("[]")
        .send()
        .await
        .unwrap();
    let body = app.get("/metrics").await.text().await.unwrap();
    let routes: BTreeSet<String> = pricehub::http::openapi_document()["paths"]
        .as_object()
        .expect("the OpenAPI document has paths")
        .keys()
        .cloned()
        .chain(["unmatched".to_string()])
        // The side ports of the feed processes, which tests in this binary also run (the
        // metrics recorder is one per process).
        .chain(
            pricehub::http::side_port::SIDE_PORT_ROUTES
                .iter()
                .map(|r| r.to_string()),
        )
        .collect();
    let allowed = allowed_labels();
    let pairs = label_pairs(&body);
    assert!(
        pairs.iter().any(|(n, _, _)| n == "pricehub_orders_total"),
        "the traffic above left no order metrics:\n{body}"
    );
    for (name, label, value) in &pairs {
        for s in secrets {
            assert!(
                !value.contains(s),
                "{name}{{{label}={value:?}}} carries a client-supplied value"
            );
        }
        let Some(rule) = allowed.get(label.as_str()) else {
            panic!("{name} has label {label:?}, which is not in the allow-list");
        };
        match (label.as_str(), rule) {
            ("route", _) => assert!(
                routes.contains(value),
                "{name}{{route={value:?}}} is not a route template"
            ),
            ("le" | "quantile", _) => {
                assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{value}")
            }
            (_, Some(values)) => assert!(
                values.contains(&value.as_str()),
                "{name}{{{label}={value:?}}}: value not in the allow-list {values:?}"
            ),
            (_, None) => {}
        }
    }
    app.stop().await;
}

/// `pricehub serve` on a fresh SQLite file with `env` set; returns it and its address.
fn serve(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> (Proc, String) {
    let db = format!("sqlite://{}", dir.path().join("obs.db").display());
    let mut cmd = pricehub();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .env("PRICEHUB_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(&mut cmd);
    let addr = p.addr();
    (p, addr)
}

#[tokio::test]
async fn access_log_writes_one_line_per_request_when_switched_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, addr) = serve(&dir, &[("PRICEHUB_ACCESS_LOG", "true")]);
    let c = reqwest::Client::new();
    let r = c
        .get(format!(
            "http://{addr}/rates?date_from=2021-01-01&date_to=2021-01-03&orig_code=ZZZZZ&dest_code=YYYYY"
        ))
        .header("x-request-id", "obs-access-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let len = r.bytes().await.unwrap().len() as u64;
    let line = p.wait_for("access");
    assert_eq!(line["target"], "pricehub::access", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["route"], "/rates", "{line}");
    assert_eq!(line["status"], 404, "{line}");
    assert_eq!(line["request_id"], "obs-access-1", "{line}");
    assert_eq!(line["bytes"], len, "{line}");
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0, "{line}");
    // A path no route matches is logged too, under its template "unmatched", with the
    // request id the server generated (the one the client got back).
    let r = c
        .get(format!("http://{addr}/no/such/obs-path"))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let line = p.wait_for("access");
    assert_eq!(line["route"], "unmatched", "{line}");
    assert_eq!(line["status"], 404, "{line}");
    assert_eq!(line["request_id"], id.as_str(), "{line}");
    assert!(
        !line.to_string().contains("obs-path"),
        "the raw path is not logged: {line}"
    );
    assert!(p.terminate().success());
}

#[tokio::test]
async fn access_log_is_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, addr) = serve(&dir, &[]);
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(p.terminate().success());
    let lines = p.drain();
    assert!(
        lines.iter().any(|l| l.contains("SIGTERM received")),
        "the log was not read to its end: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("pricehub::access")),
        "access log lines without --access-log: {lines:?}"
    );
}

#[tokio::test]
async fn request_id_reaches_the_order_writer_and_the_ingest_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, addr) = serve(
        &dir,
        &[
            ("PRICEHUB_BTC_RATE_FIXED", RATES),
            ("PRICEHUB_INGEST_TOKEN", TOKEN),
        ],
    );
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://{addr}/orders"))
        .header("x-request-id", "obs-order-1")
        .json(&serde_json::json!({"currency": "USD", "amount": "100"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let line = p.wait_for("order answered");
    assert_eq!(line["span"]["request_id"], "obs-order-1", "{line}");
    assert_eq!(line["status"], 201, "{line}");

    let r = c
        .post(format!("http://{addr}/batches"))
        .bearer_auth(TOKEN)
        .header("x-request-id", "obs-batch-1")
        .json(&serde_json::json!([{"orig_code": "NOPE1", "dest_code": "NOPE2", "day": "2021-01-01", "price": 5}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    let batch_id = body["batch_id"].as_str().unwrap().to_string();
    let accepted = p.wait_for("async batch accepted");
    assert_eq!(accepted["span"]["request_id"], "obs-batch-1", "{accepted}");
    assert_eq!(accepted["batch_id"], batch_id.as_str(), "{accepted}");
    let processed = p.wait_for("async batch rejected");
    assert_eq!(processed["span"]["name"], "ingest_batch", "{processed}");
    assert_eq!(
        processed["span"]["batch_id"],
        batch_id.as_str(),
        "{processed}"
    );
    assert!(p.terminate().success());
}
