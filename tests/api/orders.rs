//! BTC buy orders on both backends: exact rounding, validation, the cap under 64
//! concurrent clients, idempotent retries (sequential and racing), keyset paging through
//! thousands of orders, and the aliases.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use crate::common::on_both_backends;
use common::{Backend, TestApp, fresh_db};
use pricehub::config::{BtcCap, HttpArgs};
use pricehub::db::Db;
use serde_json::{Value, json};

/// EUR: a huge rate (so 0.01 EUR is a fraction of a satoshi); GBP: 3 (thirds never
/// terminate); USD: the sample document's rate.
const RATES: &str = "EUR=99999999999,GBP=3,USD=43216.7431";

fn http(cap_btc: i64) -> HttpArgs {
    let mut h = HttpArgs::default();
    h.orders.btc_rate_fixed = Some(RATES.parse().unwrap());
    h.orders.rate_limit_per_minute = 0;
    h.orders.btc_cap = BtcCap(cap_btc * 100_000_000);
    h
}

async fn start(backend: Backend, http: HttpArgs) -> Option<TestApp> {
    TestApp::on(backend).http(http).start().await
}

async fn post(
    app: &TestApp,
    body: Value,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    post_raw(app, "/orders", body.to_string(), key).await
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    body: String,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    app.post(path)
        .body("application/json", body)
        .key(key)
        .send()
        .await
        .parts()
}

async fn count_orders(db: &Db) -> i64 {
    let q = "SELECT COUNT(*) FROM orders";
    match db {
        Db::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await.unwrap(),
        Db::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await.unwrap(),
    }
}

/// Sum of btc_amount over all orders and the ledger total, both in satoshis.
async fn sums(db: &Db) -> (i64, i64) {
    match db {
        Db::Postgres(p) => {
            let sum: i64 = sqlx::query_scalar(
                "SELECT COALESCE(SUM(btc_amount * 100000000), 0)::bigint FROM orders",
            )
            .fetch_one(p)
            .await
            .unwrap();
            let ledger: i64 = sqlx::query_scalar("SELECT total_sats FROM btc_ledger")
                .fetch_one(p)
                .await
                .unwrap();
            (sum, ledger)
        }
        Db::Sqlite(p) => {
            let sum: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(btc_sats), 0) FROM orders")
                .fetch_one(p)
                .await
                .unwrap();
            let ledger: i64 = sqlx::query_scalar("SELECT total_sats FROM btc_ledger")
                .fetch_one(p)
                .await
                .unwrap();
            (sum, ledger)
        }
    }
}

async fn rounding_and_validation(backend: Backend) {
    let Some(app) = start(backend, http(100)).await else {
        return;
    };
    // (currency, amount as sent, stored amount, rate, btc_amount) — worked by hand.
    let table: &[(&str, Value, &str, &str, &str)] = &[
        // Zero BTC is impossible: 0.01 EUR at 99,999,999,999 EUR/BTC is 1e-13 BTC,
        // rounded up to one satoshi.
        ("EUR", json!(0.01), "0.01", "99999999999", "0.00000001"),
        (
            "EUR",
            json!("999999999.99"),
            "999999999.99",
            "99999999999",
            "0.01000000",
        ),
        ("GBP", json!(1), "1.00", "3", "0.33333334"),
        ("GBP", json!("3"), "3.00", "3", "1.00000000"),
        ("GBP", json!(0.01), "0.01", "3", "0.00333334"),
        ("USD", json!(10), "10.00", "43216.7431", "0.00023140"),
        ("USD", json!("100.0"), "100.00", "43216.7431", "0.00231392"),
        ("USD", json!(0.01), "0.01", "43216.7431", "0.00000024"),
    ];
    for (currency, amount, stored, rate, btc) in table {
        let (s, h, body) = post(&app, json!({"currency": currency, "amount": amount}), None).await;
        assert_eq!(s, 201, "{body}");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(body["currency"], *currency);
        assert_eq!(body["amount"], *stored, "{body}");
        assert_eq!(body["rate"], *rate, "{body}");
        assert_eq!(body["btc_amount"], *btc, "{currency} {amount} at {rate}");
        assert!(body["id"].as_str().is_some_and(|id| id.len() == 36));
        assert!(body["created_at"].as_str().is_some());
    }
    // Amounts are read from the JSON text: a literal a binary float cannot hold exactly
    // is still exact (and 0.1 + 0.2 style noise never appears).
    let (s, _, body) = post_raw(
        &app,
        "/orders",
        r#"{"currency":"GBP","amount":0.30}"#.into(),
        None,
    )
    .await;
    assert_eq!((s, body["btc_amount"].as_str()), (201, Some("0.10000000")));
    // The stored values are exact decimals.
    let stored: (String, String, String) = match &app.db.db {
        Db::Postgres(p) => sqlx::query_as(
            "SELECT amount::text, rate::text, btc_amount::text FROM orders WHERE currency = 'GBP' AND amount = 1",
        )
        .fetch_one(p)
        .await
        .unwrap(),
        Db::Sqlite(p) => sqlx::query_as(
            "SELECT CAST(amount_cents AS TEXT), rate, CAST(btc_sats AS TEXT) FROM orders WHERE currency = 'GBP' AND amount_cents = 100",
        )
        .fetch_one(p)
        .await
        .unwrap(),
    };
    match backend {
        Backend::Postgres => assert_eq!(
            stored,
            ("1.00".into(), "3.00000000".into(), "0.33333334".into())
        ),
        Backend::Sqlite => assert_eq!(stored, ("100".into(), "3".into(), "33333334".into())),
    }

    let before = count_orders(&app.db.db).await;
    // Invalid fields: 422 problem+json naming the field; nothing stored.
    let cases: &[(&str, &str)] = &[
        (r#"{"currency":"EUR","amount":0}"#, "amount"),
        (r#"{"currency":"EUR","amount":-1}"#, "amount"),
        (r#"{"currency":"EUR","amount":1000000000}"#, "amount"),
        (r#"{"currency":"EUR","amount":"1000000000.00"}"#, "amount"),
        (r#"{"currency":"EUR","amount":1.001}"#, "amount"),
        (r#"{"currency":"EUR","amount":"1,5"}"#, "amount"),
        (r#"{"currency":"EUR","amount":null}"#, "amount"),
        (r#"{"currency":"EUR","amount":1e400}"#, "amount"),
        (r#"{"currency":"EUR"}"#, "amount"),
        (r#"{"currency":"JPY","amount":1}"#, "currency"),
        (r#"{"currency":"eur","amount":1}"#, "currency"),
        (r#"{"amount":1}"#, "currency"),
    ];
    for (body, field) in cases {
        let (s, h, problem) = post_raw(&app, "/orders", body.to_string(), None).await;
        assert_eq!(s, 422, "{body}: {problem}");
        assert_eq!(h["content-type"], "application/problem+json");
        assert_eq!(problem["field"], *field, "{body}");
        assert_eq!(problem["type"], "urn:pricehub:problem:invalid-order");
    }
    for body in ["", "nope", "[1]", "{\"currency\":"] {
        let (s, h, problem) = post_raw(&app, "/orders", body.to_string(), None).await;
        assert_eq!(s, 400, "{body}: {problem}");
        assert_eq!(h["content-type"], "application/problem+json");
    }
    let (s, _, problem) = post_raw(
        &app,
        "/orders",
        format!("{{\"pad\":\"{}\"}}", "x".repeat(20_000)),
        None,
    )
    .await;
    assert_eq!(s, 413, "{problem}");
    assert_eq!(count_orders(&app.db.db).await, before);

    // The published alias places orders the same way.
    let (s, _, body) = post_raw(
        &app,
        "/place_order",
        r#"{"currency":"GBP","amount":"6"}"#.into(),
        None,
    )
    .await;
    assert_eq!((s, body["btc_amount"].as_str()), (201, Some("2.00000000")));
    app.stop().await;
}

on_both_backends!(rounding_and_validation => rounding_and_validation);

/// 64 clients race for the last BTC: exactly the orders that fit succeed.
async fn cap_race(backend: Backend) {
    let Some(app) = start(backend, http(10)).await else {
        return;
    };
    let app = Arc::new(app);
    // 9 BTC first (3 GBP = 1 BTC at the GBP rate of 3).
    for _ in 0..9 {
        let (s, _, b) = post(&app, json!({"currency": "GBP", "amount": 3}), None).await;
        assert_eq!(s, 201, "{b}");
    }
    // The last BTC: 64 clients each want 0.25 BTC, so exactly 4 can have it.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            post(&app, json!({"currency": "GBP", "amount": "0.75"}), None).await
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, h, body) = t.await.unwrap();
        match s {
            201 => created += 1,
            409 => {
                refused += 1;
                assert_eq!(h["content-type"], "application/problem+json");
                assert_eq!(body["type"], "urn:pricehub:problem:btc-cap-exceeded");
                assert_eq!(body["cap_btc"], "10.00000000");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (4, 60));
    let (sum, ledger) = sums(&app.db.db).await;
    assert_eq!(
        sum,
        10 * 100_000_000,
        "orders must add up to exactly the cap"
    );
    assert_eq!(ledger, sum, "the ledger agrees with the orders");
    // Full: even one satoshi is refused, and says how much is left.
    let (s, _, body) = post(&app, json!({"currency": "EUR", "amount": 0.01}), None).await;
    assert_eq!(
        (s, body["remaining_btc"].as_str()),
        (409, Some("0.00000000")),
        "{body}"
    );
    // An order larger than the whole cap is refused before touching the ledger.
    let (s, _, _) = post(&app, json!({"currency": "GBP", "amount": 31}), None).await;
    assert_eq!(s, 409);
    assert_eq!(count_orders(&app.db.db).await, 13);
    Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(cap_race => cap_race);

async fn idempotency(backend: Backend) {
    let Some(app) = start(backend, http(100)).await else {
        return;
    };
    let app = Arc::new(app);
    let (s, h1, first) = post(&app, json!({"currency": "USD", "amount": 10}), Some("k-1")).await;
    assert_eq!(s, 201);
    assert!(h1.get("idempotency-replayed").is_none());
    // A retry — even spelled differently — is the same order, stored once.
    let (s, h2, again) = post_raw(
        &app,
        "/orders",
        r#"{ "amount": "10.00", "currency": "USD" }"#.into(),
        Some("k-1"),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(h2["idempotency-replayed"], "true");
    assert_eq!(again, first);
    assert_eq!(count_orders(&app.db.db).await, 1);
    // The same key for another order: 409.
    let (s, h, body) = post(&app, json!({"currency": "USD", "amount": 11}), Some("k-1")).await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(body["type"], "urn:pricehub:problem:idempotency-key-reused");
    // A bad key is a 400.
    let (s, _, _) = post(&app, json!({"currency": "USD", "amount": 11}), Some("")).await;
    assert_eq!(s, 400);

    // 32 concurrent duplicates: one order, every answer the same.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            post(
                &app,
                json!({"currency": "EUR", "amount": "5.5"}),
                Some("race"),
            )
            .await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let (s, _, body) = t.await.unwrap();
        assert_eq!(s, 201, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "concurrent duplicates must make one order");
    assert_eq!(count_orders(&app.db.db).await, 2);
    let (sum, ledger) = sums(&app.db.db).await;
    assert_eq!(sum, ledger);
    Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(idempotency => idempotency);

async fn paging(backend: Backend) {
    let Some(app) = start(backend, http(1000)).await else {
        return;
    };
    let app = Arc::new(app);
    const N: usize = 3000;
    // 16 concurrent writers, so many orders share a created_at millisecond.
    let mut tasks = Vec::new();
    for w in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..N).step_by(16) {
                let amount = format!("{}.{:02}", 1 + i / 100, i % 100);
                let (s, _, b) =
                    post(&app, json!({"currency": "USD", "amount": amount}), None).await;
                assert_eq!(s, 201, "{b}");
                ids.push(b["id"].as_str().unwrap().to_string());
            }
            ids
        }));
    }
    let mut placed = HashSet::new();
    for t in tasks {
        placed.extend(t.await.unwrap());
    }
    assert_eq!(placed.len(), N);

    // Walk every page; nothing repeated, nothing missing, strictly newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/orders?limit=97&cursor={c}"),
            None => "/orders?limit=97".to_string(),
        };
        let (s, _, page) = app.get_json(&path).await;
        assert_eq!(s, 200, "{page}");
        let orders = page["orders"].as_array().unwrap();
        assert!(orders.len() <= 97);
        for o in orders {
            seen.push((
                o["created_at"].as_str().unwrap().to_string(),
                o["id"].as_str().unwrap().to_string(),
            ));
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(orders.len(), 97, "only a full page has a next page");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(pages, N.div_ceil(97));
    assert_eq!(seen.len(), N);
    let ids: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids, placed, "no duplicates, no gaps");
    for w in seen.windows(2) {
        assert!(
            w[0] > w[1],
            "not strictly newest first: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    // The default page is 50; the alias pages the same way.
    let (_, _, page) = app.get_json("/orders").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 50);
    let (_, _, alias) = app.get_json("/get_orders?start=0&page_size=50").await;
    assert_eq!(alias, page);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, _, a2) = app
        .get_json(&format!("/get_orders?start={next}&page_size=50"))
        .await;
    let (_, _, p2) = app.get_json(&format!("/orders?cursor={next}")).await;
    assert_eq!(a2, p2);
    assert_eq!(p2["orders"][0]["id"].as_str().unwrap(), seen[50].1);
    // Bad parameters: 400 naming the parameter.
    for (path, param) in [
        ("/orders?limit=0", "limit"),
        ("/orders?limit=501", "limit"),
        ("/orders?limit=ten", "limit"),
        ("/orders?cursor=garbage", "cursor"),
        ("/orders?cursor=1_2", "cursor"),
        ("/get_orders?page_size=-1", "page_size"),
        ("/get_orders?start=xyz", "start"),
    ] {
        let (s, ct, body) = app.get_json(path).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["parameter"], param, "{path}");
    }
    // The query rules of every route (docs/api.md): a repeat is an error (the last one
    // used to win here), an empty value is absent, unknown parameters are ignored.
    for path in [
        "/orders?limit=5&limit=6",
        "/get_orders?page_size=5&page_size=6",
    ] {
        let (s, _, body) = app.get_json(path).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(body["type"], "urn:pricehub:problem:duplicate-parameter");
    }
    let (_, _, blank) = app.get_json("/orders?limit=&cursor=&utm_source=x").await;
    assert_eq!(blank, page);
    // Cursors are opaque, and the plain form earlier versions sent still works.
    assert!(!next.contains('_'), "{next}");
    let last = &seen[49];
    let micros = chrono::DateTime::parse_from_rfc3339(&last.0)
        .unwrap()
        .timestamp_micros();
    let old = format!("{micros}_{}", last.1.replace('-', ""));
    let (_, _, p_old) = app.get_json(&format!("/orders?cursor={old}")).await;
    assert_eq!(p_old, p2);
    Arc::into_inner(app).unwrap().stop().await;
}

on_both_backends!(paging => paging);

/// Two API replicas on one PostgreSQL, 64 clients split between them, one key raced on
/// both: the cap and idempotency hold across processes' writers, not just within one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cap_and_idempotency_hold_across_two_replicas() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let db2 = common::TestDb::new(db.db.clone(), db.url.clone(), None);
    // 3 BTC and one satoshi: room for twelve 0.25 BTC orders and the one-satoshi one.
    let mut cfg = http(0);
    cfg.orders.btc_cap = BtcCap(3 * 100_000_000 + 1);
    let a = Arc::new(TestApp::start_with(db, cfg.clone()).await);
    let b = Arc::new(TestApp::start_with(db2, cfg).await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        // 0.25 BTC each: 12 fit in 3 BTC.
        tasks.push(tokio::spawn(async move {
            post(&app, json!({"currency": "GBP", "amount": "0.75"}), None)
                .await
                .0
        }));
    }
    for i in 0..16 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            post(
                &app,
                json!({"currency": "EUR", "amount": "1"}),
                Some("both"),
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let created = statuses[..64].iter().filter(|&&s| s == 201).count();
    assert!(
        statuses[..64].iter().all(|&s| s == 201 || s == 409),
        "{statuses:?}"
    );
    assert!(statuses[64..].iter().all(|&s| s == 201), "{statuses:?}");
    assert_eq!(created, 12);
    let (sum, ledger) = sums(&a.db.db).await;
    assert_eq!(sum, 3 * 100_000_000 + 1, "exactly the cap");
    assert_eq!(sum, ledger);
    assert_eq!(count_orders(&a.db.db).await, created as i64 + 1);
    Arc::into_inner(b).unwrap().stop().await;
    Arc::into_inner(a).unwrap().stop().await;
}
