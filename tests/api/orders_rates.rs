//! Where order prices come from and who may ask: the CoinDesk-shaped HTTP source (served
//! here by a tiny axum server from the sample document), stale rates → 503, the live
//! feed hook, per-client rate limiting in memory, and — with a real Redis — rates and
//! limits shared between two APIs.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::on_both_backends;
use chrono::{DateTime, Utc};
use common::{Backend, TestApp, fresh_db};
use pricehub::config::{HttpArgs, Secret};
use pricehub::orders::fx::LastTradePrices;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn post_order(app: &TestApp, body: Value, api_key: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/orders")).json(&body);
    if let Some(k) = api_key {
        req = req.header("x-api-key", k);
    }
    req.send().await.unwrap()
}

async fn get_orders(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url("/orders?limit=1"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Polls `f` until it is true (bounded); the condition, not the time, is what is tested.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

/// A CoinDesk stand-in: serves the sample document, or 500 while `failing`.
struct RateServer {
    url: String,
    failing: Arc<AtomicBool>,
    shutdown: CancellationToken,
}

async fn rate_server() -> Option<RateServer> {
    let dir = common::data_dir()?;
    let sample = std::fs::read(dir.join("coindesk-currentprice.json")).ok()?;
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let app = axum::Router::new().route(
        "/v1/bpi/currentprice.json",
        axum::routing::get(move || {
            let f = f.clone();
            let sample = sample.clone();
            async move {
                if f.load(Ordering::SeqCst) {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Vec::new())
                } else {
                    (axum::http::StatusCode::OK, sample)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await
            .unwrap();
    });
    Some(RateServer {
        url: format!("http://{addr}/v1/bpi/currentprice.json"),
        failing,
        shutdown,
    })
}

async fn http_source_and_stale_rates(backend: Backend) {
    let Some(server) = rate_server().await else {
        return;
    };
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut http = HttpArgs::default();
    http.orders.btc_rate_url = Some(server.url.clone());
    http.orders.btc_rate_refresh = 1;
    http.orders.btc_rate_max_age = 1;
    http.orders.rate_limit_per_minute = 0;
    let app = TestApp::start_with(db, http).await;

    // Priced at the sample's EUR rate, read as a decimal: 100 / 39612.0558 rounded up.
    let r = post_order(&app, json!({"currency": "EUR", "amount": 100}), None).await;
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["rate"], "39612.0558");
    assert_eq!(order["btc_amount"], "0.00252449"); // 0.0025244835… rounded up
    let (s, _, ready) = app.get_json("/readyz").await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["checks"]["btc_rate"]["status"], "up");
    assert_eq!(ready["checks"]["btc_rate"]["detail"]["source"], "http");

    // The source fails: once the rate is older than the maximum age, orders get 503
    // with Retry-After instead of a stale price.
    server.failing.store(true, Ordering::SeqCst);
    eventually("a stale rate is refused", || async {
        post_order(&app, json!({"currency": "EUR", "amount": 100}), None)
            .await
            .status()
            == 503
    })
    .await;
    let r = post_order(&app, json!({"currency": "USD", "amount": 1}), None).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:pricehub:problem:rate-unavailable");
    assert!(body["detail"].as_str().unwrap().contains("old"), "{body}");
    // Readiness reports it, without taking the whole API out of service.
    let (s, _, ready) = app.get_json("/readyz").await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["checks"]["btc_rate"]["status"], "stale");
    assert_eq!(ready["checks"]["btc_rate"]["detail"]["fresh"], false);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for needle in [
        "pricehub_orders_rate_fetch_errors_total{source=\"http\"}",
        "pricehub_orders_rate_age_seconds",
        "pricehub_orders_btc_total",
        "pricehub_orders_total{outcome=\"no_rate\"}",
        "pricehub_orders_total{outcome=\"created\"}",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }

    // The source recovers: orders are priced again.
    server.failing.store(false, Ordering::SeqCst);
    eventually("a fresh rate prices orders again", || async {
        post_order(&app, json!({"currency": "EUR", "amount": 100}), None)
            .await
            .status()
            == 201
    })
    .await;
    server.shutdown.cancel();
    app.stop().await;
}

on_both_backends!(http_source_and_stale_rates => http_source_and_stale_rates);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rate_source_means_503() {
    let Some(app) = TestApp::on(Backend::Sqlite).start().await else {
        return;
    };
    let r = post_order(&app, json!({"currency": "EUR", "amount": 1}), None).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("--btc-rate-url"));
    // Listing still works, and readiness does not depend on a rate nobody configured.
    let (s, _, page) = app.get_json("/orders").await;
    assert_eq!((s, page), (200, json!({"orders": [], "next_cursor": null})));
    let (s, _, ready) = app.get_json("/readyz").await;
    assert_eq!(s, 200);
    assert!(ready["checks"].get("btc_rate").is_none());
    app.stop().await;
}

/// The live feed's latest trades, as the feed will offer them.
struct Trades(parking_lot::Mutex<HashMap<String, (Decimal, DateTime<Utc>)>>);

impl LastTradePrices for Trades {
    fn latest(&self, ticker: &str) -> Option<(Decimal, DateTime<Utc>)> {
        self.0.lock().get(ticker).copied()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_prices_orders_when_no_url_is_set() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let trades = Arc::new(Trades(Default::default()));
    let mut http = HttpArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    http.orders.rate_limit_per_minute = 0;
    http.orders.btc_rate_refresh = 1;
    let api = pricehub::app::start_api_with_feed(
        db.db.clone(),
        http,
        CancellationToken::new(),
        Some(trades.clone() as Arc<dyn LastTradePrices>),
    )
    .await
    .unwrap();
    let base = format!("http://{}", api.addr);
    let client = reqwest::Client::new();
    let post = || async {
        client
            .post(format!("{base}/orders"))
            .json(&json!({"currency": "GBP", "amount": 50}))
            .send()
            .await
            .unwrap()
    };
    // No BTCGBP trade yet: no price.
    assert_eq!(post().await.status(), 503);
    {
        let mut t = trades.0.lock();
        let now = Utc::now();
        t.insert("BTCUSD".into(), ("43216.7431".parse().unwrap(), now));
        t.insert("BTCEUR".into(), ("39612.0558".parse().unwrap(), now));
        t.insert("BTCGBP".into(), ("25000".parse().unwrap(), now));
    }
    // The poller picks the trades up within a refresh interval.
    let mut order = Value::Null;
    for _ in 0..300 {
        let r = post().await;
        if r.status() == 201 {
            order = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(order["rate"], "25000");
    assert_eq!(order["btc_amount"], "0.00200000");
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_in_memory() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut http = HttpArgs::default();
    http.orders.btc_rate_fixed = Some("EUR=40000,GBP=30000,USD=50000".parse().unwrap());
    http.orders.rate_limit_per_minute = 3;
    let app = TestApp::start_with(db, http).await;
    let key = [("x-api-key", "client-a-secret")];
    // POST and GET share one allowance per client.
    assert_eq!(get_orders(&app, &key).await.status(), 200);
    assert_eq!(
        post_order(
            &app,
            json!({"currency": "EUR", "amount": 1}),
            Some("client-a-secret")
        )
        .await
        .status(),
        201
    );
    assert_eq!(get_orders(&app, &key).await.status(), 200);
    let r = get_orders(&app, &key).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:pricehub:problem:rate-limited");
    assert_eq!(
        post_order(
            &app,
            json!({"currency": "EUR", "amount": 1}),
            Some("client-a-secret")
        )
        .await
        .status(),
        429
    );
    // Other clients are not affected: another key, and the bare IP.
    assert_eq!(
        get_orders(&app, &[("x-api-key", "client-b")])
            .await
            .status(),
        200
    );
    assert_eq!(get_orders(&app, &[]).await.status(), 200);
    // Without trusted proxies X-Forwarded-For is ignored: still the same IP client.
    for (forwarded, status) in [
        ("203.0.113.9", 200),
        ("203.0.113.10", 200),
        ("203.0.113.11", 429),
    ] {
        assert_eq!(
            get_orders(&app, &[("x-forwarded-for", forwarded)])
                .await
                .status(),
            status,
            "{forwarded}"
        );
    }
    // Operational endpoints are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/livez").await.status(), 200);
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    // No client identifier becomes a metric label.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("pricehub_orders_rate_limited_total"));
    assert!(!metrics.contains("client-a") && !metrics.contains("203.0.113"));
    app.stop().await;

    // Behind a trusted proxy, X-Forwarded-For names the client.
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut http = HttpArgs::default();
    http.orders.rate_limit_per_minute = 1;
    http.orders.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = TestApp::start_with(db, http).await;
    let a = [("x-forwarded-for", "203.0.113.1")];
    assert_eq!(get_orders(&app, &a).await.status(), 200);
    assert_eq!(get_orders(&app, &a).await.status(), 429);
    assert_eq!(
        get_orders(&app, &[("x-forwarded-for", "203.0.113.2")])
            .await
            .status(),
        200
    );
    app.stop().await;
}

fn redis_http(redis_url: &str, prefix: &str) -> HttpArgs {
    let mut http = HttpArgs::default();
    http.orders.redis_url = Some(Secret::new(redis_url));
    http.orders.redis_key_prefix = prefix.to_string();
    http.orders.btc_rate_refresh = 3600;
    http
}

/// Two APIs sharing one Redis hold one limit per client between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_through_redis() {
    let Some(url) = common::redis::url() else {
        return;
    };
    let prefix = common::redis::fresh_prefix();
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let mut http = redis_http(&url, &prefix);
    http.orders.rate_limit_per_minute = 5;
    http.orders.btc_rate_fixed = Some("EUR=40000,GBP=30000,USD=50000".parse().unwrap());
    // Two replicas on the same database and Redis.
    let db2 = common::TestDb::new(db.db.clone(), db.url.clone(), None);
    let a = TestApp::start_with(db, http.clone()).await;
    let b = TestApp::start_with(db2, http).await;
    let key = [("x-api-key", "shared-client")];
    let mut statuses = Vec::new();
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(get_orders(app, &key).await.status().as_u16());
    }
    assert_eq!(statuses, vec![200; 5]);
    for app in [&a, &b] {
        let r = get_orders(app, &key).await;
        assert_eq!(r.status(), 429, "the sixth request, on either replica");
        assert!(r.headers().contains_key("retry-after"));
    }
    // Another client still has its own allowance on both.
    assert_eq!(
        get_orders(&b, &[("x-api-key", "other")]).await.status(),
        200
    );
    let (s, _, ready) = a.get_json("/readyz").await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["checks"]["redis"]["status"], "up");
    a.stop().await;
    b.stop().await;
}

/// Replicas with different sources price identically: the newest rate in Redis wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_are_shared_through_redis() {
    let Some(url) = common::redis::url() else {
        return;
    };
    let prefix = common::redis::fresh_prefix();
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let db2 = common::TestDb::new(db.db.clone(), db.url.clone(), None);
    let mut first = redis_http(&url, &prefix);
    first.orders.rate_limit_per_minute = 0;
    first.orders.btc_rate_fixed = Some("EUR=10000,GBP=10000,USD=10000".parse().unwrap());
    let a = TestApp::start_with(db, first).await;
    let mut second = redis_http(&url, &prefix);
    second.orders.rate_limit_per_minute = 0;
    second.orders.btc_rate_fixed = Some("EUR=20000,GBP=20000,USD=20000".parse().unwrap());
    let b = TestApp::start_with(db2, second).await;
    for app in [&a, &b] {
        let r = post_order(app, json!({"currency": "EUR", "amount": 100}), None).await;
        assert_eq!(r.status(), 201);
        let o: Value = r.json().await.unwrap();
        assert_eq!(
            (o["rate"].as_str(), o["btc_amount"].as_str()),
            (Some("20000"), Some("0.00500000"))
        );
    }
    a.stop().await;
    b.stop().await;

    // A replica with no source of its own prices from Redis, and refuses a stale rate.
    let prefix = common::redis::fresh_prefix();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let old = Utc::now() - chrono::Duration::minutes(10);
    let rates = json!({"eur": "30000", "gbp": "30000", "usd": "30000", "fetched_at": old, "source": "http"});
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}btc_rates"))
        .arg(rates.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut http = redis_http(&url, &prefix);
    http.orders.rate_limit_per_minute = 0;
    let c = TestApp::start_with(db, http).await;
    let r = post_order(&c, json!({"currency": "EUR", "amount": 100}), None).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let (s, _, ready) = c.get_json("/readyz").await;
    assert_eq!(s, 200);
    assert_eq!(ready["checks"]["btc_rate"]["status"], "stale");
    assert_eq!(
        ready["checks"]["btc_rate"]["detail"]["shared_through_redis"],
        true
    );
    // A fresh shared rate prices the order.
    let fresh = json!({"eur": "30000", "gbp": "30000", "usd": "30000", "fetched_at": Utc::now(), "source": "http"});
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}btc_rates"))
        .arg(fresh.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = post_order(&c, json!({"currency": "EUR", "amount": 100}), None).await;
    assert_eq!(r.status(), 201);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_fails_start_up_clearly() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut http = HttpArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    // A port nothing listens on (bound and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    http.orders.redis_url = Some(Secret::new(format!("redis://:hunter2@127.0.0.1:{port}/")));
    let err = match pricehub::app::start_api(db.db.clone(), http, CancellationToken::new()).await {
        Ok(_) => panic!("started without its Redis"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("cannot connect to Redis"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}
