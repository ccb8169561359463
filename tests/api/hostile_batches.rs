//! Hostile input against the async batch queue and the idempotent-replay storage, on both
//! backends.
//!
//! Before the fix, one batch whose rejection details held U+0000 made the worker fail
//! inside its transaction ("unsupported Unicode escape sequence" on PostgreSQL), roll back
//! its own attempt count and retry the same batch forever, so every batch behind it stayed
//! pending. Now: every hostile batch ends `rejected` with a readable reason, a batch whose
//! write the database refuses is dead-lettered, a transient failure is retried with
//! backoff and gives up after `--ingest-max-attempts`, and a valid batch posted behind all
//! of them commits within seconds. `POST /prices` and `POST /orders` under an
//! Idempotency-Key answer a retry with the same bytes.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::on_both_backends;
use common::{Backend, TestApp};
use pricehub::config::{HttpArgs, Secret};
use pricehub::db::Db;
use serde_json::Value;

const TOKEN: &str = "hostile-token";
const JSON: &str = "application/json";
const CSV: &str = "text/csv";
const MAX_ATTEMPTS: u32 = 3;

fn http() -> HttpArgs {
    let mut http = HttpArgs::default();
    http.ingest.ingest_token = Some(Secret::new(TOKEN));
    http.ingest.ingest_max_attempts = MAX_ATTEMPTS;
    http.ingest.ingest_retry_base_ms = 50;
    http.ingest.ingest_retry_max_ms = 200;
    http.orders.btc_rate_fixed = Some("EUR=50000,GBP=40000,USD=60000".parse().unwrap());
    http.orders.rate_limit_per_minute = 0;
    http
}

async fn start(backend: Backend) -> Option<TestApp> {
    TestApp::on(backend)
        .http(http())
        .with_rates_2021()
        .start()
        .await
}

fn valid_row(price: i64) -> String {
    format!(r#"{{"orig_code":"CNGGZ","dest_code":"EETLL","day":"2021-03-01","price":{price}}}"#)
}

/// Hostile batch bodies: (what, content type, body).
fn hostile() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let row = |orig: &str, dest: &str, day: &str, price: &str| {
        format!(r#"[{{"orig_code":"{orig}","dest_code":"{dest}","day":"{day}","price":{price}}}]"#)
            .into_bytes()
    };
    let mut many_nul_keys = String::from("[");
    for i in 0..150 {
        if i > 0 {
            many_nul_keys.push(',');
        }
        many_nul_keys.push_str(&format!(
            r#"{{"orig_code":"CNGGZ","dest_code":"EETLL","day":"2021-03-01","price":1,"x\u0000{i}":"\u0000"}}"#
        ));
    }
    many_nul_keys.push(']');
    vec![
        ("NUL escape in a key", JSON, br#"[{"orig_code\u0000":"CNGGZ","dest_code":"EETLL","day":"2021-03-01","price":1}]"#.to_vec()),
        ("NUL escape in a port code", JSON, row("CN\\u0000GZ", "EETLL", "2021-03-01", "1")),
        ("NUL escape as the day", JSON, row("CNGGZ", "EETLL", "\\u0000", "1")),
        ("NUL in a string price", JSON, row("CNGGZ", "EETLL", "2021-03-01", "\"\\u0000\"")),
        ("150 rows with NUL keys and values", JSON, many_nul_keys.into_bytes()),
        ("surrogate pair", JSON, row("\\ud83d\\ude00", "EETLL", "2021-03-01", "1")),
        ("lone high surrogate", JSON, row("\\ud800", "EETLL", "2021-03-01", "1")),
        ("lone low surrogate", JSON, row("CNGGZ", "\\udfff", "2021-03-01", "1")),
        ("lone surrogate in a key", JSON, br#"[{"\udc00":1}]"#.to_vec()),
        ("raw NUL byte in JSON", JSON, b"[{\"orig_code\":\"CN\0GZ\"}]".to_vec()),
        ("invalid UTF-8 in JSON", JSON, b"[{\"orig_code\":\"\xff\xfe\",\"dest_code\":\"EETLL\",\"day\":\"2021-03-01\",\"price\":1}]".to_vec()),
        ("huge exponent", JSON, row("CNGGZ", "EETLL", "2021-03-01", "1e400")),
        ("huge integer", JSON, row("CNGGZ", "EETLL", "2021-03-01", "123456789012345678901234567890123456789")),
        ("negative zero", JSON, row("CNGGZ", "EETLL", "2021-03-01", "-0")),
        ("deeply nested JSON", JSON, format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
        ("deeply nested objects", JSON, format!("[{}1{}]", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes()),
        ("0-byte JSON body", JSON, Vec::new()),
        ("JSON null", JSON, b"null".to_vec()),
        ("a JSON string with NUL", JSON, b"\"\\u0000\"".to_vec()),
        ("0-byte CSV body", CSV, Vec::new()),
        ("invalid UTF-8 CSV header", CSV, b"orig_code,dest_code,day,pr\xffice\nCNGGZ,EETLL,2021-03-01,1\n".to_vec()),
        ("invalid UTF-8 CSV fields", CSV, b"orig_code,dest_code,day,price\n\xff\xfe,\xed\xa0\x80,2021-03-01,1\n".to_vec()),
        ("NUL byte in the CSV header", CSV, b"orig_code\0,dest_code,day,price\nCNGGZ,EETLL,2021-03-01,1\n".to_vec()),
        ("NUL bytes in CSV fields", CSV, b"orig_code,dest_code,day,price\nCN\0GZ,EETLL,2021-03-01,1\0\n".to_vec()),
        ("CSV huge price", CSV, b"orig_code,dest_code,day,price\nCNGGZ,EETLL,2021-03-01,99999999999999999999999999\n".to_vec()),
        ("CSV unbalanced quotes", CSV, b"orig_code,dest_code,day,price\n\"CNGGZ,EETLL,2021-03-01,1\n".to_vec()),
        ("binary garbage as CSV", CSV, (0u8..=255).cycle().take(4096).collect()),
    ]
}

async fn post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let a = app
        .post(path)
        .bearer(TOKEN)
        .body(content_type, body)
        .key(key)
        .send()
        .await;
    (a.status, a.headers, a.bytes)
}

/// Posts an async batch; returns its status URL.
async fn submit(app: &TestApp, what: &str, content_type: &str, body: Vec<u8>) -> String {
    let (s, h, b) = post(app, "/batches", content_type, body, None).await;
    assert_eq!(s, 202, "{what}: {}", String::from_utf8_lossy(&b));
    h["location"].to_str().unwrap().to_string()
}

/// Waits until the batch is no longer pending; returns its status document.
async fn settled(app: &TestApp, location: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (s, _, body) = app.get_json(location).await;
        assert_eq!(s, 200, "{body}");
        if body["status"] != "pending" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "batch {location} still pending after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_rejected_with_reason(what: &str, b: &Value) {
    assert_eq!(b["status"], "rejected", "{what}: {b}");
    let reason = b["reason"].as_str().unwrap_or("");
    assert!(!reason.trim().is_empty(), "{what}: no reason: {b}");
    let errors = b["errors"].as_array().map(Vec::len).unwrap_or(0);
    assert!(errors > 0, "{what}: no row errors: {b}");
    assert!(
        b["attempts"].as_i64().unwrap() >= 1,
        "{what}: attempts not counted: {b}"
    );
}

async fn hostile_async_batches(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    let mut posted = Vec::new();
    for (what, ct, body) in hostile() {
        posted.push((what, submit(&app, what, ct, body).await));
    }
    let valid = submit(
        &app,
        "valid",
        JSON,
        format!("[{},{}]", valid_row(4321), valid_row(4322)).into_bytes(),
    )
    .await;
    let done = settled(&app, &valid, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "committed", "{done}");
    assert_eq!(done["rows"], 2, "{done}");
    for (what, location) in &posted {
        let b = settled(&app, location, Duration::from_secs(5)).await;
        assert_rejected_with_reason(what, &b);
    }
    let (_, _, metrics) = post_get_text(&app, "/metrics").await;
    assert!(
        metrics.contains("pricehub_ingest_batch_attempts_total{outcome=\"rejected\"}"),
        "{metrics}"
    );
    app.stop().await;
}

async fn post_get_text(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app.get(path).await;
    let s = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (s, ct, r.text().await.unwrap())
}

/// Makes the database itself refuse some rows, as a constraint added by an operator
/// would: price 6666 fails for good, price 7777 (PostgreSQL only) fails with a
/// serialization failure, which is transient.
async fn poison(db: &Db) {
    match db {
        Db::Postgres(p) => {
            sqlx::raw_sql(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF NEW.price = 6666 THEN RAISE EXCEPTION 'poisoned row' USING ERRCODE = 'check_violation'; END IF; \
                   IF NEW.price = 7777 THEN RAISE EXCEPTION 'try again' USING ERRCODE = 'serialization_failure'; END IF; \
                   RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON prices_ingest_raw FOR EACH ROW EXECUTE FUNCTION poison();",
            )
            .execute(p)
            .await
            .unwrap();
        }
        Db::Sqlite(p) => {
            sqlx::raw_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON prices WHEN NEW.price = 6666 \
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
            )
            .execute(p)
            .await
            .unwrap();
        }
    }
}

async fn failing_batches_are_dead_lettered(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    poison(&app.db.db).await;
    let refused = submit(
        &app,
        "refused",
        JSON,
        format!("[{}]", valid_row(6666)).into_bytes(),
    )
    .await;
    let transient = if backend == Backend::Postgres {
        Some(
            submit(
                &app,
                "transient",
                JSON,
                format!("[{}]", valid_row(7777)).into_bytes(),
            )
            .await,
        )
    } else {
        None
    };
    let valid = submit(
        &app,
        "valid",
        JSON,
        format!("[{}]", valid_row(4444)).into_bytes(),
    )
    .await;
    let done = settled(&app, &valid, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "committed", "{done}");

    let b = settled(&app, &refused, Duration::from_secs(10)).await;
    assert_rejected_with_reason("refused by the database", &b);
    assert_eq!(b["attempts"], 1, "a permanent error is not retried: {b}");
    assert!(
        b["reason"].as_str().unwrap().contains("poisoned row"),
        "{b}"
    );
    if let Some(t) = transient {
        let b = settled(&app, &t, Duration::from_secs(20)).await;
        assert_rejected_with_reason("transient failures", &b);
        assert_eq!(b["attempts"], MAX_ATTEMPTS, "{b}");
        let reason = b["reason"].as_str().unwrap();
        assert!(reason.contains("gave up after 3 attempts"), "{b}");
        assert!(reason.contains("try again"), "{b}");
    }
    let (_, _, metrics) = post_get_text(&app, "/metrics").await;
    let value = |line: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line} not in /metrics:\n{metrics}"))
    };
    let dead = if backend == Backend::Postgres {
        2.0
    } else {
        1.0
    };
    assert!(value("pricehub_ingest_batches_dead_lettered_total ") >= dead);
    if backend == Backend::Postgres {
        assert!(value("pricehub_ingest_batch_attempts_total{outcome=\"retry\"} ") >= 2.0);
    }
    assert!(value("pricehub_ingest_batch_attempts_total{outcome=\"committed\"} ") >= 1.0);
    app.stop().await;
}

/// The sync path and the order API under an Idempotency-Key: whatever the body, the retry
/// gets the first answer byte for byte.
async fn hostile_replays(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    for (i, (what, ct, body)) in hostile().into_iter().enumerate() {
        let key = format!("prices-{i}");
        let first = post(&app, "/prices", ct, body.clone(), Some(&key)).await;
        assert!(
            (400..500).contains(&first.0),
            "{what}: {} {}",
            first.0,
            String::from_utf8_lossy(&first.2)
        );
        let again = post(&app, "/prices", ct, body, Some(&key)).await;
        assert_eq!((again.0, &again.2), (first.0, &first.2), "{what}");
        assert_eq!(
            again
                .1
                .get("idempotency-replayed")
                .map(|v| v.to_str().unwrap()),
            Some("true"),
            "{what}: not a replay"
        );
    }
    // Orders: hostile bodies are refused the same way twice; a valid order carrying
    // hostile extras is stored once and replayed byte for byte.
    let orders: Vec<(&str, Vec<u8>)> = vec![
        (
            "NUL currency",
            br#"{"currency":"EU\u0000R","amount":"10"}"#.to_vec(),
        ),
        (
            "NUL key",
            br#"{"currency\u0000":"EUR","amount":"10"}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"currency":"\ud800","amount":"10"}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"currency\":\"\xff\",\"amount\":\"10\"}".to_vec(),
        ),
        (
            "huge amount",
            br#"{"currency":"EUR","amount":1e400}"#.to_vec(),
        ),
        (
            "huge digits",
            br#"{"currency":"EUR","amount":123456789012345678901234567890}"#.to_vec(),
        ),
        (
            "deep nesting",
            format!(
                "{{\"currency\":{}1{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
        ),
        ("0-byte body", Vec::new()),
    ];
    for (i, (what, body)) in orders.into_iter().enumerate() {
        let key = format!("orders-{i}");
        let first = post(&app, "/orders", JSON, body.clone(), Some(&key)).await;
        assert!((400..500).contains(&first.0), "{what}: {}", first.0);
        let again = post(&app, "/orders", JSON, body, Some(&key)).await;
        assert_eq!((again.0, &again.2), (first.0, &first.2), "{what}");
    }
    let extras = br#"{"currency":"EUR","amount":"10","note\u0000":"\u0000 \ud83d\ude00","deep":[[[[[[[[[[1]]]]]]]]]]}"#.to_vec();
    let first = post(&app, "/orders", JSON, extras.clone(), Some("orders-extras")).await;
    assert_eq!(first.0, 201, "{}", String::from_utf8_lossy(&first.2));
    let again = post(&app, "/orders", JSON, extras, Some("orders-extras")).await;
    assert_eq!((again.0, &again.2), (first.0, &first.2));
    assert_eq!(
        again
            .1
            .get("idempotency-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    // Async batches under a key: the 202 is replayed and names the same batch.
    let (s1, _, b1) = post(
        &app,
        "/batches",
        JSON,
        b"[{\"\\u0000\":1}]".to_vec(),
        Some("batch-nul"),
    )
    .await;
    let (s2, _, b2) = post(
        &app,
        "/batches",
        JSON,
        b"[{\"\\u0000\":1}]".to_vec(),
        Some("batch-nul"),
    )
    .await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1, b2);
    app.stop().await;
}

on_both_backends!(hostile_async_batches => hostile_async_batches);

on_both_backends!(dead_letters => failing_batches_are_dead_lettered);

on_both_backends!(hostile_replays => hostile_replays);
