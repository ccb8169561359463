//! Batch ingestion on both backends: tokens, 50,000-row batches, a bad row at the end,
//! CSV, limits, idempotent retries (sequential and racing), asynchronous batches, and
//! batches surviving a restart.

use crate::common;

use std::time::Duration;

use crate::common::on_both_backends;
use common::{Backend, TestApp, fresh_db, import_2021, price_count};
use pricehub::config::{HttpArgs, Secret};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-123";

fn http_with_token() -> HttpArgs {
    let mut http = HttpArgs::default();
    http.ingest.ingest_token = Some(Secret::new(TOKEN));
    http
}

async fn start(backend: Backend, http: HttpArgs) -> Option<TestApp> {
    TestApp::on(backend)
        .http(http)
        .with_rates_2021()
        .start()
        .await
}

/// `n` valid rows on a lane and month the 2021 data does not have (so /rates shows them).
fn rows(n: usize, price: impl Fn(usize) -> i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"orig_code": "CNGGZ", "dest_code": "EETLL",
                   "day": format!("2021-03-{:02}", 1 + i % 28), "price": price(i)})
        })
        .collect()
}

async fn post(
    app: &TestApp,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    app.post(path)
        .bearer(TOKEN)
        .json(body)
        .key(key)
        .send()
        .await
        .parts()
}

async fn tokens_are_checked(backend: Backend) {
    let body = json!(rows(1, |_| 100));
    // No token configured: ingestion is disabled, not open.
    let Some(app) = start(backend, HttpArgs::default()).await else {
        return;
    };
    let r = app
        .post("/prices")
        .bearer("anything")
        .json(&body)
        .send()
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    app.stop().await;

    let Some(app) = start(backend, http_with_token()).await else {
        return;
    };
    let before = price_count(&app.db.db).await;
    let r = app.post("/prices").json(&body).send().await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = app.post("/prices").bearer("wrong").json(&body).send().await;
    assert_eq!(r.status, 401);
    let r = app
        .post("/batches")
        .bearer("wrong")
        .json(&body)
        .send()
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(price_count(&app.db.db).await, before);
    app.stop().await;
}

on_both_backends!(tokens => tokens_are_checked);

async fn large_batches(backend: Backend) {
    let Some(app) = start(backend, http_with_token()).await else {
        return;
    };
    let before = price_count(&app.db.db).await;

    // 50,000 rows with one bad row at the very end: 422 naming it, nothing stored.
    let mut bad = rows(50_000, |i| 1000 + (i % 7) as i64);
    bad.push(json!({"orig_code": "CNGGZ", "dest_code": "EETLL", "day": "2021-03-01", "price": -5}));
    let (s, h, body) = post(&app, "/prices", &json!(bad), None).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(body["errors"][0]["index"], 50_000);
    assert_eq!(body["errors"][0]["field"], "price");
    assert_eq!(body["error_count"], 1);
    assert_eq!(price_count(&app.db.db).await, before);

    // The same 50,000 rows without it: 201, all stored, /rates shows them at once.
    let (s, h, body) = post(
        &app,
        "/prices",
        &json!(rows(50_000, |i| 1000 + (i % 7) as i64)),
        None,
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["rows"], 50_000);
    assert_eq!(body["status"], "committed");
    let location = h["location"].to_str().unwrap().to_string();
    assert_eq!(price_count(&app.db.db).await, before + 50_000);
    let (_, _, rates) = app
        .get_json("/rates?date_from=2021-03-01&date_to=2021-03-01&orig_code=CNGGZ&dest_code=EETLL")
        .await;
    let expected: Vec<i64> = (0..50_000)
        .filter(|i| i % 28 == 0)
        .map(|i| 1000 + (i % 7) as i64)
        .collect();
    assert_eq!(rates["rates"][0]["count"], expected.len());
    let avg = expected.iter().sum::<i64>() as f64 / expected.len() as f64;
    assert!((rates["rates"][0]["price"].as_f64().unwrap() - avg).abs() < 1e-9);
    let (s, _, status) = app.get_json(&location).await;
    assert_eq!(s, 200);
    assert_eq!(
        (status["status"].as_str(), status["rows"].as_i64()),
        (Some("committed"), Some(50_000))
    );

    // CSV, including a bad row: rejected whole, with the CSV row index.
    let mut csv = String::from("orig_code,dest_code,day,price\n");
    for i in 0..1000 {
        csv.push_str(&format!(
            "CNSGH,NOOSL,2021-04-{:02},{}\n",
            1 + i % 28,
            700 + i
        ));
    }
    let bad_csv = format!("{csv}CNSGH,NOOSL,2021-04-31,700\n");
    let r = app
        .post("/prices")
        .bearer(TOKEN)
        .body("text/csv", bad_csv)
        .send()
        .await;
    assert_eq!(r.status, 422);
    let body = r.json();
    assert_eq!(
        (
            body["errors"][0]["index"].as_i64(),
            body["errors"][0]["field"].as_str()
        ),
        (Some(1000), Some("day"))
    );
    let r = app
        .post("/prices")
        .bearer(TOKEN)
        .body("text/csv", csv)
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(price_count(&app.db.db).await, before + 51_000);

    // Wrong media type, malformed JSON.
    let r = app
        .post("/prices")
        .bearer(TOKEN)
        .body("application/xml", "<a/>")
        .send()
        .await;
    assert_eq!(r.status, 415);
    let r = app
        .post("/prices")
        .bearer(TOKEN)
        .body("application/json", "[{\"orig_code\":")
        .send()
        .await;
    assert_eq!(r.status, 422);
    app.stop().await;
}

on_both_backends!(large_batches => large_batches);

/// A JSON body the fast row reader gives up on part-way (a duplicated field, which the
/// general reader takes, last value winning) after thousands of rows were already
/// streamed into COPY on PostgreSQL: the batch is stored exactly once.
async fn fast_reader_fallback_stores_once(backend: Backend) {
    let Some(app) = start(backend, http_with_token()).await else {
        return;
    };
    let before = price_count(&app.db.db).await;
    let mut body = serde_json::to_string(&rows(50_000, |_| 900)).unwrap();
    body.pop();
    body.push_str(
        r#",{"orig_code":"CNGGZ","dest_code":"EETLL","day":"2021-03-29","price":1,"price":901}]"#,
    );
    let r = app
        .post("/prices")
        .bearer(TOKEN)
        .body("application/json", body)
        .send()
        .await;
    assert_eq!(r.status, 201);
    let body = r.json();
    assert_eq!(body["rows"], 50_001);
    assert_eq!(price_count(&app.db.db).await, before + 50_001);
    let (_, _, rates) = app
        .get_json("/rates?date_from=2021-03-29&date_to=2021-03-29&orig_code=CNGGZ&dest_code=EETLL")
        .await;
    // One sample (too few for an average to be shown, as in the original).
    assert_eq!(rates["rates"][0]["count"], 1, "{rates}");
    app.stop().await;
}

on_both_backends!(fast_reader_fallback => fast_reader_fallback_stores_once);

on_both_backends!(limits => limits_are_413_problems);

async fn limits_are_413_problems(backend: Backend) {
    let mut http = http_with_token();
    http.ingest.ingest_max_body_bytes = 10_000;
    http.ingest.ingest_max_rows = 50;
    let Some(app) = start(backend, http).await else {
        return;
    };
    let before = price_count(&app.db.db).await;
    let (s, _, body) = post(&app, "/prices", &json!(rows(51, |_| 1)), None).await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["type"], "urn:pricehub:problem:too-many-rows");
    let (s, _, body) = post(&app, "/prices", &json!(rows(500, |_| 1)), None).await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["type"], "urn:pricehub:problem:payload-too-large");
    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 6000]), Ok(vec![b' '; 6000])];
    let r = app
        .post("/prices")
        .bearer(TOKEN)
        .body(
            "application/json",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .send()
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(price_count(&app.db.db).await, before);
    app.stop().await;
}

async fn idempotent_retries(backend: Backend) {
    let Some(app) = start(backend, http_with_token()).await else {
        return;
    };
    let before = price_count(&app.db.db).await;
    let batch = json!(rows(1000, |i| 500 + i as i64));
    let (s1, h1, b1) = post(&app, "/prices", &batch, Some("key-1")).await;
    assert_eq!(s1, 201, "{b1}");
    let (s2, h2, b2) = post(&app, "/prices", &batch, Some("key-1")).await;
    assert_eq!(
        (s2, &b2),
        (201, &b1),
        "a retry answers exactly the first answer"
    );
    assert_eq!(h2["idempotency-replayed"], "true");
    assert_eq!(h2["location"], h1["location"]);
    assert_eq!(price_count(&app.db.db).await, before + 1000, "stored once");
    // Same key, different body.
    let (s, _, body) = post(&app, "/prices", &json!(rows(1000, |_| 1)), Some("key-1")).await;
    assert_eq!(s, 409, "{body}");
    // A rejected batch's outcome is stored too.
    let bad =
        json!([{"orig_code": "NOPE1", "dest_code": "EETLL", "day": "2021-03-01", "price": 1}]);
    let (s, _, b) = post(&app, "/prices", &bad, Some("key-bad")).await;
    assert_eq!(s, 422);
    let (s, h, b_again) = post(&app, "/prices", &bad, Some("key-bad")).await;
    assert_eq!((s, &b_again), (422, &b));
    assert_eq!(h["content-type"], "application/problem+json");

    // Ten clients race with one key: one batch, ten identical answers.
    let batch = json!(rows(5000, |i| 900 + i as i64));
    let before = price_count(&app.db.db).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let url = app.url("/prices");
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(TOKEN)
                .header("Idempotency-Key", "race")
                .json(&batch)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (s, b) = t.await.unwrap();
        assert_eq!(s, 201, "{b}");
        ids.insert(b["batch_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one batch for one key");
    assert_eq!(price_count(&app.db.db).await, before + 5000);
    app.stop().await;
}

on_both_backends!(idempotency => idempotent_retries);

async fn wait_for_batch(app: &TestApp, location: &str) -> Value {
    for _ in 0..300 {
        let (s, _, body) = app.get_json(location).await;
        assert_eq!(s, 200, "{body}");
        if body["status"] != "pending" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {location} stayed pending");
}

async fn async_batches(backend: Backend) {
    let Some(app) = start(backend, http_with_token()).await else {
        return;
    };
    let before = price_count(&app.db.db).await;
    let (s, h, body) = post(
        &app,
        "/batches",
        &json!(rows(20_000, |i| 300 + (i % 11) as i64)),
        Some("async-1"),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["status"], "pending");
    let location = h["location"].to_str().unwrap().to_string();
    let done = wait_for_batch(&app, &location).await;
    assert_eq!(
        (done["status"].as_str(), done["rows"].as_i64()),
        (Some("committed"), Some(20_000)),
        "{done}"
    );
    assert_eq!(price_count(&app.db.db).await, before + 20_000);
    // The retry returns the same batch.
    let (s, h2, _) = post(
        &app,
        "/batches",
        &json!(rows(20_000, |i| 300 + (i % 11) as i64)),
        Some("async-1"),
    )
    .await;
    assert_eq!(
        (s, h2["location"].to_str().unwrap()),
        (202, location.as_str())
    );
    assert_eq!(price_count(&app.db.db).await, before + 20_000);

    let mut bad = rows(100, |_| 1);
    bad[42]["day"] = json!("2021-13-01");
    let (s, h, _) = post(&app, "/batches", &json!(bad), None).await;
    assert_eq!(s, 202);
    let done = wait_for_batch(&app, h["location"].to_str().unwrap()).await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert_eq!(done["errors"][0]["index"], 42);
    assert_eq!(price_count(&app.db.db).await, before + 20_000);
    let (s, _, _) = app.get_json("/batches/not-a-uuid").await;
    assert_eq!(s, 404);
    let (s, _, _) = app
        .get_json("/batches/5c1d8d2e-9a0e-4a53-8f55-0f1f9f1b6a11")
        .await;
    assert_eq!(s, 404);
    app.stop().await;
}

on_both_backends!(async_batches => async_batches);

/// A batch accepted while no worker runs (as when the server dies right after the 202)
/// is committed by the next server that starts.
async fn accepted_batch_survives_a_restart(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let mut http = http_with_token();
    http.ingest.ingest_worker = false;
    let app = TestApp::start_with(db, http).await;
    let before = price_count(&app.db.db).await;
    let (s, h, _) = post(&app, "/batches", &json!(rows(3000, |_| 42)), None).await;
    assert_eq!(s, 202);
    let location = h["location"].to_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, st) = app.get_json(&location).await;
    assert_eq!(st["status"], "pending");
    assert_eq!(price_count(&app.db.db).await, before);
    let db = app.stop_keeping_db().await;
    let app = TestApp::start_with(db, http_with_token()).await;
    let done = wait_for_batch(&app, &location).await;
    assert_eq!(done["status"], "committed");
    assert_eq!(price_count(&app.db.db).await, before + 3000);
    app.stop().await;
}

on_both_backends!(restart => accepted_batch_survives_a_restart);
