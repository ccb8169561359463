//! GET /rates end to end: the reference vectors on both backends, bad input, cache
//! freshness, and the operational endpoints.

use crate::common;

use crate::common::on_both_backends;
use common::{Backend, TestApp, fresh_db, import_2021};
use serde_json::Value;

fn close(a: f64, b: f64) -> bool {
    a == b || ((a - b).abs() / a.abs().max(b.abs())) <= 1e-9
}

fn assert_rates_equal(query: &str, got: &Value, want: &Value) {
    let g = got["rates"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: no rates in {got}"));
    let w = want["rates"].as_array().unwrap();
    assert_eq!(g.len(), w.len(), "{query}: number of days");
    for (a, b) in g.iter().zip(w) {
        assert_eq!(a["day"], b["day"], "{query}");
        assert_eq!(a["count"], b["count"], "{query} on {}", b["day"]);
        match (a["price"].as_f64(), b["price"].as_f64()) {
            (None, None) => assert!(
                a["price"].is_null(),
                "{query}: price must be null on {}",
                b["day"]
            ),
            (Some(x), Some(y)) => assert!(close(x, y), "{query} on {}: price {x} != {y}", b["day"]),
            _ => panic!(
                "{query} on {}: price {} != {}",
                b["day"], a["price"], b["price"]
            ),
        }
        assert_eq!(
            a.as_object().unwrap().len(),
            3,
            "{query}: only count, day, price"
        );
    }
}

/// Checks one expectation; returns a description of the mismatch.
fn check(query: &str, status: u16, ct: &str, body: &Value, expect: &Value) -> Result<(), String> {
    if let Some(options) = expect.get("any_of") {
        let errors: Vec<String> = options
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| check(query, status, ct, body, o).err())
            .collect();
        return if errors.len() < options.as_array().unwrap().len() {
            Ok(())
        } else {
            Err(errors.join(" / "))
        };
    }
    if let Some(allowed) = expect.get("status_in") {
        let allowed: Vec<u64> = allowed
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        if !allowed.contains(&u64::from(status)) {
            return Err(format!("status {status} not in {allowed:?}"));
        }
        if ct != "application/problem+json" {
            return Err(format!("content-type {ct:?} is not problem+json"));
        }
        for key in ["type", "title", "status", "detail"] {
            if body.get(key).is_none() {
                return Err(format!("problem body lacks {key}: {body}"));
            }
        }
        return Ok(());
    }
    let want_status = expect["status"].as_u64().unwrap();
    if u64::from(status) != want_status {
        return Err(format!("status {status}, expected {want_status}: {body}"));
    }
    std::panic::catch_unwind(|| assert_rates_equal(query, body, &expect["body"])).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "rates differ".into())
    })
}

async fn vectors(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let dir = common::data_dir().unwrap();
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rates-vectors.json")).unwrap())
            .unwrap();
    let app = TestApp::start(db).await;
    let mut failures = Vec::new();
    let list = vectors["vectors"].as_array().unwrap();
    assert!(list.len() >= 30, "the vector file has all its queries");
    for v in list {
        let query = v["query"].as_str().unwrap();
        let (status, ct, body) = app.get_json(&format!("/rates?{query}")).await;
        if let Err(e) = check(query, status, &ct, &body, &v["expect"]) {
            failures.push(format!("{query}: {e}"));
        }
        // Where the original answered a port query correctly, we match it too.
        if let Some(orig) = v["original"].as_object()
            && v["expect"].get("status") == Some(&Value::from(200))
            && orig["status"] == 200
            && v["expect"]["body"] == orig["body"]
        {
            assert_rates_equal(query, &body, &orig["body"].clone());
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) failed on {backend:?}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}

on_both_backends!(reference_vectors => vectors);

async fn bad_requests_never_break_the_next_one(backend: Backend) {
    let Some(app) = TestApp::on(backend).with_rates_2021().start().await else {
        return;
    };
    let good = "/rates?date_from=2021-01-15&date_to=2021-01-15&orig_code=CNGGZ&dest_code=EETLL";
    let bad = [
        (
            "/rates?date_from=2021-02-30&date_to=2021-03-01&orig_code=CNGGZ&dest_code=EETLL",
            400,
            "invalid-date",
        ),
        ("/rates?date_from=2021-01-01", 400, "missing-parameter"),
        ("/rates", 400, "missing-parameter"),
        (
            "/rates?date_from=2021-01-01&date_to=2021-01-02&orig_code=NOPE1&dest_code=EETLL",
            404,
            "unknown-location",
        ),
        (
            "/rates?date_from=2021-01-01&date_to=2021-01-02&orig_code=%00%FF&dest_code=EETLL",
            400,
            "invalid-code",
        ),
        (
            "/rates?date_from=1900-01-01&date_to=2100-01-01&orig_code=CNGGZ&dest_code=EETLL",
            400,
            "range-too-long",
        ),
        (
            "/rates?date_from=99999-01-01&date_to=2021-01-01&orig_code=CNGGZ&dest_code=EETLL",
            400,
            "invalid-date",
        ),
        ("/rates?%%%=&&&date_from", 400, "missing-parameter"),
    ];
    for (path, status, kind) in bad {
        let (s, ct, body) = app.get_json(path).await;
        assert_eq!(s, status, "{path}: {body}");
        assert_eq!(ct, "application/problem+json", "{path}");
        assert_eq!(
            body["type"],
            format!("urn:pricehub:problem:{kind}"),
            "{path}"
        );
        assert_eq!(body["status"], status, "{path}");
        let (s, _, body) = app.get_json(good).await;
        assert_eq!(s, 200, "the request after {path} failed: {body}");
        assert_eq!(body["rates"][0]["price"], 1155.0);
    }
    // Unknown routes and methods are problem+json too, never HTML.
    let (s, ct, _) = app.get_json("/no/such/route").await;
    assert_eq!((s, ct.as_str()), (404, "application/problem+json"));
    let resp = app.client.delete(app.url("/rates")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

on_both_backends!(bad_requests => bad_requests_never_break_the_next_one);

/// A write made behind the API's back (another process, psql) shows up in answers:
/// immediately through LISTEN/NOTIFY on PostgreSQL, within the poll interval on SQLite.
async fn answers_follow_external_writes(backend: Backend) {
    let Some(app) = TestApp::on(backend).with_rates_2021().start().await else {
        return;
    };
    let path = "/rates?date_from=2021-01-15&date_to=2021-01-15&orig_code=CNGGZ&dest_code=EETLL";
    let (_, _, before) = app.get_json(path).await;
    assert_eq!(before["rates"][0]["count"], 3);
    // Another connection adds a price, as psql would.
    let insert = "INSERT INTO prices (orig_code, dest_code, day, price) VALUES ('CNGGZ', 'EETLL', '2021-01-15', 1255)";
    match &app.db.db {
        pricehub::db::Db::Postgres(_) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(app.db.url.expose())
                .await
                .unwrap();
            sqlx::query(insert).execute(&mut conn).await.unwrap();
        }
        pricehub::db::Db::Sqlite(_) => {
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(app.db.url.expose())
                    .await
                    .unwrap();
            sqlx::query(insert).execute(&mut conn).await.unwrap();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, _, body) = app.get_json(path).await;
        if body["rates"][0]["count"] == 4 {
            assert_eq!(body["rates"][0]["price"], (1155.0 * 3.0 + 1255.0) / 4.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new price never showed up: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

on_both_backends!(external_writes_show_up => answers_follow_external_writes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_endpoints() {
    let Some(app) = TestApp::on(Backend::Sqlite).start().await else {
        return;
    };
    let (s, _, body) = app.get_json("/livez").await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));
    let (s, _, body) = app.get_json("/readyz").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "up");
    let (s, _, body) = app.get_json("/version").await;
    assert_eq!(s, 200);
    assert_eq!(
        body["build"], 0,
        "local builds are build 0 unless BUILD_NUMBER is set"
    );
    assert!(
        body["version"]
            .as_str()
            .unwrap()
            .starts_with(env!("CARGO_PKG_VERSION"))
    );
    assert!(body["commit"].as_str().is_some_and(|c| !c.is_empty()));
    let resp = app.get("/livez").await;
    assert!(resp.headers().contains_key("x-request-id"));
    app.get("/rates?date_from=x").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for needle in [
        "pricehub_http_requests_total{method=\"GET\",route=\"/rates\",status=\"4xx\"}",
        "pricehub_http_request_duration_seconds_bucket",
        "pricehub_build_info{",
        "pricehub_db_pool_connections{",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    // The served OpenAPI document is the generated one, the router answers every path it
    // documents (a path it does not serve gets the fallback's "no route"), and the docs
    // page renders it offline.
    let (s, _, doc) = app.get_json("/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc, pricehub::http::openapi_document());
    for path in common::documented_routes() {
        let concrete: Vec<&str> = path
            .split('/')
            .map(|seg| match seg {
                "{id}" => "00000000-0000-0000-0000-000000000000",
                s if s.starts_with('{') => "X",
                s => s,
            })
            .collect();
        let concrete = concrete.join("/");
        // Headers only: `/instruments/stream` never ends.
        let resp = app.get(&concrete).await;
        let status = resp.status();
        let body = if status == 404 {
            resp.text().await.unwrap()
        } else {
            String::new()
        };
        assert!(
            !body.contains("no route for"),
            "{path} is documented but not served: {status} {body}"
        );
    }
    let page = app.get("/docs").await.text().await.unwrap();
    assert!(
        page.contains("/openapi.json") && !page.contains("https://"),
        "docs page must not load anything remote"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_an_unmigrated_database() {
    let Some((url, dir)) = common::fresh_database_url(Backend::Sqlite).await else {
        return;
    };
    let db = pricehub::db::Db::connect(&pricehub::config::DbArgs::new(url.clone()))
        .await
        .unwrap();
    let app = TestApp::start(common::TestDb::new(db, url, dir)).await;
    let (s, ct, body) = app.get_json("/readyz").await;
    assert_eq!(s, 503, "{body}");
    assert!(ct.starts_with("application/json"));
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "down");
    assert_eq!(
        body["checks"]["database"]["detail"]["migrations_applied"],
        0
    );
    let (s, _, _) = app.get_json("/livez").await;
    assert_eq!(s, 200, "liveness does not depend on the database");
    app.stop().await;
}

/// The database going away: readiness says so (503 with detail), requests that need the
/// database get a 503 problem, and everything recovers when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_reported_and_recovered() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let name = db.url.expose().rsplit('/').next().unwrap().to_string();
    let app = TestApp::start(db).await;
    let (s, _, _) = app.get_json("/readyz").await;
    assert_eq!(s, 200);
    common::pg::admin_execute(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await
    .unwrap();
    let (s, _, body) = app.get_json("/readyz").await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["checks"]["database"]["detail"]["reachable"], false);
    // Not cached yet, so this needs the database: a clean 503, not a hang or a 500.
    let (s, ct, body) = app
        .get_json(
            "/rates?date_from=2021-01-01&date_to=2021-01-02&orig_code=china_main&dest_code=baltic",
        )
        .await;
    assert_eq!(
        (s, ct.as_str()),
        (503, "application/problem+json"),
        "{body}"
    );
    common::pg::admin_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let (s, _, body) = app
        .get_json(
            "/rates?date_from=2021-01-01&date_to=2021-01-02&orig_code=china_main&dest_code=baltic",
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, _, _) = app.get_json("/readyz").await;
    assert_eq!(s, 200);
    app.stop().await;
}
