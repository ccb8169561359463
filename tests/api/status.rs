//! The status page (`/`, `/status.json`), its visit counting, the page assets and the
//! rates explorer's lookups, over HTTP against real servers on both backends.

use crate::common;
use crate::common::on_both_backends;

use std::net::IpAddr;
use std::time::Duration;

use common::{Backend, TestApp, TestDb, fresh_db};
use pricehub::config::{DbArgs, HttpArgs};
use pricehub::db::Db;
use serde_json::Value;

fn trusting_loopback() -> HttpArgs {
    let mut http = HttpArgs::default();
    http.orders.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    http
}

/// GET `/status.json` as the client `ip` (sent as X-Forwarded-For).
async fn visit_as(app: &TestApp, ip: Option<&str>) -> Value {
    let mut req = app.client.get(app.url("/status.json"));
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.expect("request sent");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn counts(v: &Value) -> (i64, i64) {
    (
        v["visits"]["yours"].as_i64().expect("visits.yours"),
        v["visits"]["visitors"].as_i64().expect("visits.visitors"),
    )
}

async fn stored_visitors(db: &Db) -> Vec<(Vec<u8>, i64)> {
    let q = "SELECT visitor, visits FROM status_visitors ORDER BY visits";
    match db {
        Db::Postgres(p) => sqlx::query_as(q).fetch_all(p).await.unwrap(),
        Db::Sqlite(p) => sqlx::query_as(q).fetch_all(p).await.unwrap(),
    }
}

on_both_backends!(the_page_shows_the_facts_and_each_load_counts_once => the_page_shows_the_facts_and_each_load_counts_once);

async fn the_page_shows_the_facts_and_each_load_counts_once(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut http = HttpArgs::default();
    http.status.user_name = Some("Ada <Lovelace>".into());
    http.status.user_url = Some("https://example.org/ada?x=1&y=2".into());
    let app = TestApp::start_with(db, http).await;
    let version = app.get_json("/version").await.2;
    for n in 1..=3 {
        let resp = app.get("/").await;
        assert_eq!(resp.status(), 200, "{backend:?}");
        let h = resp.headers().clone();
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("referrer-policy"));
        let html = resp.text().await.unwrap();
        let times = if n == 1 { "time" } else { "times" };
        assert!(
            html.contains(&format!(
                "You have visited this page <strong id=\"visits-yours\">{n}</strong> {times}. Total visitors: <strong id=\"visits-total\">1</strong>"
            )),
            "{backend:?} visit {n}: {html}"
        );
        assert!(html.contains(version["version"].as_str().unwrap()));
        assert!(html.contains(version["commit"].as_str().unwrap()));
        // Escaped, and linked.
        assert!(html.contains(
            "<a href=\"https://example.org/ada?x=1&#38;y=2\" rel=\"noopener\">Ada &#60;Lovelace&#62;</a>"
        ), "{html}");
        for link in ["/dashboard", "/explorer", "/docs", "/metrics"] {
            assert!(
                html.contains(&format!("href=\"{link}\"")),
                "no link to {link}"
            );
        }
        assert!(html.contains("data-check=\"database\""));
    }
    // The same facts as JSON, by Accept or by path; each counts a visit.
    let resp = app
        .client
        .get(app.url("/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let j: Value = resp.json().await.unwrap();
    assert_eq!(counts(&j), (4, 1));
    assert_eq!(j["version"], version["version"]);
    assert_eq!(j["commit"], version["commit"]);
    assert_eq!(j["build"], version["build"]);
    assert_eq!(j["deployed_by"]["name"], "Ada <Lovelace>");
    assert_eq!(
        j["database"]["backend"],
        if backend == Backend::Postgres {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let server = j["database"]["server_version"].as_str().unwrap();
    assert!(
        server.starts_with(if backend == Backend::Postgres {
            "PostgreSQL "
        } else {
            "SQLite 3."
        }),
        "{server}"
    );
    assert_eq!(j["status"], "ready");
    assert_eq!(j["checks"]["database"]["status"], "up");
    assert!(j["uptime_seconds"].as_u64().is_some());
    assert_eq!(counts(&visit_as(&app, None).await), (5, 1));
    // Stored: a 32-byte keyed hash, never the address.
    let rows = stored_visitors(&app.db.db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.len(), 32);
    assert!(!String::from_utf8_lossy(&rows[0].0).contains("127.0.0.1"));
    assert_eq!(rows[0].1, 5);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("pricehub_status_visits_total"));
    app.stop().await;
}

on_both_backends!(concurrent_visits_are_counted_exactly => concurrent_visits_are_counted_exactly);

async fn concurrent_visits_are_counted_exactly(backend: Backend) {
    const CLIENTS: usize = 20;
    const VISITS: usize = 200;
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let app = std::sync::Arc::new(TestApp::start_with(db, trusting_loopback()).await);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        for _ in 0..VISITS {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                visit_as(&app, Some(&format!("198.51.100.{c}"))).await
            }));
        }
    }
    let mut seen = vec![Vec::new(); CLIENTS];
    for (i, t) in tasks.into_iter().enumerate() {
        let (yours, visitors) = counts(&t.await.unwrap());
        assert!((1..=CLIENTS as i64).contains(&visitors));
        seen[i / VISITS].push(yours);
    }
    // Every visit got its own number: 1..=200 for each client, none lost or repeated.
    for (c, mut s) in seen.into_iter().enumerate() {
        s.sort_unstable();
        assert_eq!(
            s,
            (1..=VISITS as i64).collect::<Vec<_>>(),
            "{backend:?} client {c}"
        );
    }
    let after = visit_as(&app, Some("198.51.100.0")).await;
    assert_eq!(
        counts(&after),
        (VISITS as i64 + 1, CLIENTS as i64),
        "{backend:?}"
    );
    let rows = stored_visitors(&app.db.db).await;
    assert_eq!(rows.len(), CLIENTS);
    assert_eq!(
        rows.iter().map(|r| r.1).sum::<i64>(),
        (CLIENTS * VISITS + 1) as i64
    );
    let app = std::sync::Arc::into_inner(app).expect("no other owner");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    // Nobody trusted: a spoofed header changes nothing, the peer is the visitor.
    let app = TestApp::start(db).await;
    assert_eq!(counts(&visit_as(&app, Some("203.0.113.1")).await), (1, 1));
    assert_eq!(counts(&visit_as(&app, Some("203.0.113.2")).await), (2, 1));
    let req = app
        .client
        .get(app.url("/status.json"))
        .header("forwarded", "for=203.0.113.3")
        .send()
        .await
        .unwrap();
    assert_eq!(counts(&req.json().await.unwrap()), (3, 1));
    let db = app.stop_keeping_db().await;
    // The loopback proxy trusted: each forwarded address is its own visitor.
    let app = TestApp::start_with(db, trusting_loopback()).await;
    assert_eq!(counts(&visit_as(&app, Some("203.0.113.1")).await), (1, 2));
    assert_eq!(counts(&visit_as(&app, Some("203.0.113.2")).await), (1, 3));
    // A client cannot prepend its way to another identity.
    assert_eq!(
        counts(&visit_as(&app, Some("203.0.113.1, 203.0.113.2")).await),
        (2, 3)
    );
    app.stop().await;
}

on_both_backends!(replicas_share_the_visitor_key => replicas_share_the_visitor_key);

async fn replicas_share_the_visitor_key(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let a = TestApp::start(db).await;
    let b_db = TestDb::new(
        Db::connect(&DbArgs::new(a.db.url.clone())).await.unwrap(),
        a.db.url.clone(),
        None,
    );
    let b = TestApp::start(b_db).await;
    assert_eq!(counts(&visit_as(&a, None).await), (1, 1));
    assert_eq!(counts(&visit_as(&b, None).await), (2, 1), "{backend:?}");
    assert_eq!(counts(&visit_as(&a, None).await), (3, 1));
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_the_page_renders_and_answers_503() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let url = db.url.clone();
    let name = url.expose().rsplit('/').next().unwrap().to_string();
    let mut args = DbArgs::new(url.clone());
    args.db_acquire_timeout = 1;
    let db = TestDb::new(Db::connect(&args).await.unwrap(), url, None);
    let app = TestApp::start(db).await;
    assert_eq!(counts(&visit_as(&app, None).await), (1, 1));

    common::pg::admin_execute(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await
    .unwrap();
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("Degraded: database is down"), "{html}");
    assert!(html.contains("Visits cannot be counted while the database is down."));
    assert!(html.contains("state-down"));
    // The dashboard too: rendered, saying what is missing, 503.
    let resp = app.get("/dashboard").await;
    assert_eq!(resp.status(), 503);
    let html = resp.text().await.unwrap();
    assert!(html.contains("data-problem=\"unavailable\""), "{html}");
    let (status, _, j) = app.get_json("/status.json").await;
    assert_eq!(status, 503);
    assert_eq!(j["down"], serde_json::json!(["database"]));
    assert_eq!(j["checks"]["database"]["status"], "down");
    assert!(j["visits"].is_null());
    // The facts read at start-up are still shown.
    assert!(
        j["database"]["server_version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL")
    );

    common::pg::admin_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let resp = app.get("/status.json").await;
        if resp.status() == 200 {
            let j: Value = resp.json().await.unwrap();
            assert_eq!(
                counts(&j),
                (2, 1),
                "the visit while down was not counted, nothing else lost"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_embedded_hashed_and_cached() {
    let Some(app) = TestApp::on(Backend::Sqlite).start().await else {
        return;
    };
    let html = app.get("/").await.text().await.unwrap();
    let css = html
        .split("href=\"")
        .map(|s| s.split('"').next().unwrap())
        .find(|h| h.starts_with("/assets/app.") && h.ends_with(".css"))
        .expect("the page links its stylesheet by hashed name")
        .to_string();
    let resp = app.get(&css).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let etag = resp.headers()["etag"].clone();
    assert!(resp.text().await.unwrap().contains("prefers-color-scheme"));
    let resp = app
        .client
        .get(app.url(&css))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    let plain = app.get("/assets/app.css").await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["cache-control"], "no-cache");
    assert_eq!(plain.headers()["etag"], etag);
    let (status, ct, body) = app.get_json("/assets/app.0123456789ab.css").await;
    assert_eq!(status, 404);
    assert!(ct.starts_with("application/problem+json"), "{ct} {body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_and_regions_list_the_catalog() {
    let Some(app) = TestApp::on(Backend::Postgres)
        .with_rates_2021()
        .start()
        .await
    else {
        return;
    };
    let (status, _, ports) = app.get_json("/ports").await;
    assert_eq!(status, 200);
    let ports = ports["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 143);
    let codes: Vec<&str> = ports.iter().map(|p| p["code"].as_str().unwrap()).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted);
    assert!(
        ports
            .iter()
            .all(|p| p["name"].is_string() && p["region"].is_string())
    );
    let (status, _, regions) = app.get_json("/regions").await;
    assert_eq!(status, 200);
    // Every region appears once in the tree, every port under exactly one region, and a
    // node's port_count is its subtree's ports.
    fn walk(n: &Value, slugs: &mut Vec<String>, ports: &mut Vec<String>) -> usize {
        slugs.push(n["slug"].as_str().unwrap().to_string());
        let own: Vec<String> = n["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let mut total = own.len();
        ports.extend(own);
        for c in n["children"].as_array().unwrap() {
            total += walk(c, slugs, ports);
        }
        assert_eq!(
            n["port_count"].as_u64().unwrap() as usize,
            total,
            "{}",
            n["slug"]
        );
        total
    }
    let (mut slugs, mut in_tree) = (Vec::new(), Vec::new());
    for r in regions["regions"].as_array().unwrap() {
        walk(r, &mut slugs, &mut in_tree);
    }
    assert_eq!(slugs.len(), 20);
    slugs.sort();
    slugs.dedup();
    assert_eq!(slugs.len(), 20);
    in_tree.sort();
    assert_eq!(in_tree, sorted);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_works_without_javascript_and_its_csv_is_the_series() {
    let Some(app) = TestApp::on(Backend::Sqlite).with_rates_2021().start().await else {
        return;
    };
    let q =
        "date_from=2021-01-01&date_to=2021-01-31&orig_code=china_main&dest_code=north_europe_main";
    let (_, _, rates) = app.get_json(&format!("/rates?{q}")).await;
    let rates = rates["rates"].as_array().unwrap().clone();
    assert_eq!(rates.len(), 31);
    let resp = app.get(&format!("/explorer?{q}")).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    // serde_json parses floats fast but not always to the nearest double, so numbers
    // are compared after the same parse on both sides.
    let tail = html
        .split("<tbody>")
        .nth(1)
        .expect("the page has the series table");
    let attr = |tr: &str, name: &str| -> Option<String> {
        tr.split(&format!("{name}=\""))
            .nth(1)
            .map(|v| v.split('"').next().unwrap().to_string())
            .filter(|v| !v.is_empty())
    };
    let rows: Vec<(String, Option<f64>, Option<i64>)> = tail
        .split("<tr data-day=\"")
        .skip(1)
        .map(|tr| {
            (
                tr.split('"').next().unwrap().to_string(),
                attr(tr, "data-price").map(|p| serde_json::from_str(&p).unwrap()),
                attr(tr, "data-count").map(|c| c.parse().unwrap()),
            )
        })
        .collect();
    assert_eq!(rows.len(), rates.len());
    for (row, r) in rows.iter().zip(rates.iter().rev()) {
        assert_eq!(row.0, r["day"].as_str().unwrap());
        assert_eq!(row.1, r["price"].as_f64(), "{row:?} vs {r}");
        assert_eq!(row.2, r["count"].as_i64(), "{row:?} vs {r}");
    }
    assert!(
        html.contains(&format!(
            "curl &#39;http://{}/rates?{}&#39;",
            app.base.trim_start_matches("http://"),
            q.replace('&', "&#38;")
        )),
        "{html}"
    );
    let csv = app.get(&format!("/explorer.csv?{q}")).await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"rates_china_main_north_europe_main_2021-01-01_2021-01-31.csv\""));
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("day,price,count"));
    let csv_rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let mut oldest_first = rates.clone();
    oldest_first.reverse();
    assert_eq!(csv_rows.len(), oldest_first.len());
    for (row, r) in csv_rows.iter().zip(&oldest_first) {
        assert_eq!(row[0], r["day"].as_str().unwrap());
        assert_eq!(
            serde_json::from_str::<f64>(&row[1]).ok(),
            r["price"].as_f64(),
            "{row:?} vs {r}"
        );
        assert_eq!(row[2].parse::<i64>().ok(), r["count"].as_i64());
    }
    // Bad input: shown on the page with the status /rates gives; nothing from the CSV.
    let resp = app.get("/explorer?date_from=2021-02-30&date_to=2021-03-01&orig_code=china_main&dest_code=north_europe_main").await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("Invalid date") && html.contains("2021-02-30"),
        "{html}"
    );
    let resp = app.get("/explorer?date_from=2021-01-01&date_to=2021-01-02&orig_code=atlantis&dest_code=north_europe_main").await;
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("atlantis"));
    let (status, ct, _) = app.get_json("/explorer.csv?date_from=2021-01-01").await;
    assert_eq!(status, 400);
    assert!(ct.starts_with("application/problem+json"));
    // A bare /explorer picks a pair and the last month with prices.
    let resp = app.get("/explorer").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("data-price=\""));
    app.stop().await;
}

#[test]
fn visitor_ids_do_not_depend_on_how_the_address_arrived() {
    let key = b"0123456789abcdef0123456789abcdef";
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let id = pricehub::status::visits::Visits::visitor_id(key, v4);
    let mapped = pricehub::http::client_ip::client_ip(
        &axum::http::HeaderMap::new(),
        "::ffff:192.0.2.1".parse().unwrap(),
        &[],
    );
    assert_eq!(
        pricehub::status::visits::Visits::visitor_id(key, mapped),
        id
    );
}

/// Stores `n` trades per symbol, 10 s apart, ending at `end_ms`; prices climb by 0.5.
async fn store_trades(db: &Db, symbols: &[(&str, f64)], n: i64, end_ms: i64) {
    let mut batch = Vec::new();
    for (k, (symbol, start)) in symbols.iter().enumerate() {
        for i in 0..n {
            batch.push(pricehub::feed::store::Receipt {
                run_id: 7,
                seq: k as i64 * n + i,
                received_ms: end_ms,
                trade: pricehub::feed::Trade {
                    timestamp_ms: (end_ms - (n - 1 - i) * 10_000) as u64,
                    ticker: symbol.to_string(),
                    price: start + i as f64 * 0.5,
                    size: 100,
                },
            });
        }
    }
    pricehub::feed::store::insert_batch(db, &batch)
        .await
        .expect("store trades");
}

/// The page from the first `start` up to the next `end` (one element, roughly).
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the page:\n{html}"));
    let rest = &html[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

on_both_backends!(the_dashboard_works_without_javascript => the_dashboard_works_without_javascript);

async fn the_dashboard_works_without_javascript(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut http = HttpArgs::default();
    http.orders.btc_rate_fixed = Some("EUR=40000,GBP=35000,USD=43216.7431".parse().unwrap());
    let app = TestApp::start_with(db, http).await;

    // No trades yet: the page says so, and names no instrument.
    let resp = app.get("/dashboard").await;
    assert_eq!(resp.status(), 200, "{backend:?}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"no-instruments\""), "{html}");
    assert!(!html.contains("<li class=\"tile"), "{html}");

    // 31 trades per symbol, the last at `end`; the 30-minute window holds them all.
    let end = 1_796_000_000_000i64;
    store_trades(&app.db.db, &[("AAPL", 190.0), ("BTCUSD", 43000.0)], 31, end).await;
    let (status, _, order) = {
        let resp = app
            .client
            .post(app.url("/orders"))
            .header("content-type", "application/json")
            .body(r#"{"currency":"USD","amount":"1000.00"}"#)
            .send()
            .await
            .unwrap();
        (resp.status(), (), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 201, "{order}");

    let resp = app.get("/dashboard").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style=\""),
        "nothing inline"
    );
    // One tile per instrument: last price, change over the window, a sparkline.
    let aapl = section(&html, "data-symbol=\"AAPL\"", "</li>");
    assert!(
        aapl.contains("<data class=\"price\" value=\"205\">205.00</data>"),
        "{aapl}"
    );
    assert!(aapl.contains("class=\"change up\">+7.89%<"), "{aapl}");
    assert!(
        aapl.contains("<path class=\"line\" vector-effect=\"non-scaling-stroke\" d=\"M0.00 "),
        "{aapl}"
    );
    assert!(
        aapl.contains("datetime=\"2026-11-30T00:53:20.000Z\">00:53:20 UTC<"),
        "{aapl}"
    );
    let btc = section(&html, "data-symbol=\"BTCUSD\"", "</li>");
    assert!(
        html.contains("<li class=\"tile selected\" data-symbol=\"BTCUSD\""),
        "BTCUSD is the default selection"
    );
    assert!(btc.contains("value=\"43015\">43015.00<"), "{btc}");
    // The selected instrument's candles, as a table (1-minute candles: 31 trades
    // 10 s apart fill six minutes).
    let candles = section(&html, "id=\"candles\"", "</section>");
    assert!(
        candles.contains("data-symbol=\"BTCUSD\" data-interval=\"1m\""),
        "{candles}"
    );
    let rows = candles.matches("<tr data-start-ms=").count();
    assert!((6..=7).contains(&rows), "{rows} candle rows:\n{candles}");
    assert!(
        candles.contains("<label for=\"symbol\">") && candles.contains("<label for=\"interval\">")
    );
    // The BTC panel: the cap in use and the order just placed.
    let panel = section(&html, "id=\"btc\"", "</section>");
    let btc_amount = order["btc_amount"].as_str().unwrap();
    assert!(
        panel.contains(&format!("<strong id=\"cap-used\">{btc_amount}</strong>")),
        "{panel}"
    );
    assert!(
        panel.contains("<span id=\"cap-cap\">100.00000000</span>"),
        "{panel}"
    );
    assert!(panel.contains("<td class=\"num\">1000.00</td>"), "{panel}");
    assert!(
        panel.contains("id=\"no-orders\" class=\"muted\" hidden"),
        "{panel}"
    );
    // The same numbers as the API.
    let (_, _, cap) = app.get_json("/orders/cap").await;
    assert_eq!(cap["used_btc"], btc_amount);

    // Another instrument and interval; the tiles link there.
    assert!(html.contains("href=\"/dashboard?symbol=AAPL&#38;interval=1m\""));
    let resp = app.get("/dashboard?symbol=AAPL&interval=5m").await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(
            "id=\"candles\" data-symbol=\"AAPL\" data-interval=\"5m\" data-step-ms=\"300000\""
        ),
        "{html}"
    );
    assert!(html.contains("<option value=\"5m\" selected>"));
    assert!(!html.contains("role=\"alert\""));

    // Bad input: the page with the defaults, the problem shown, the API's status.
    for (query, status, kind, shown) in [
        ("symbol=NOPE", 404, "unknown-instrument", "NOPE"),
        ("symbol=%00", 404, "unknown-instrument", "\\0"),
        ("interval=2m", 400, "invalid-interval", "2m"),
        (
            "symbol=AAPL&symbol=SPY",
            400,
            "duplicate-parameter",
            "symbol",
        ),
    ] {
        let resp = app.get(&format!("/dashboard?{query}")).await;
        assert_eq!(resp.status(), status, "{query}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = resp.text().await.unwrap();
        let banner = section(&html, "class=\"banner\"", "</section>");
        assert!(
            banner.contains(&format!("data-problem=\"{kind}\"")),
            "{query}: {banner}"
        );
        assert!(banner.contains(shown), "{query}: {banner}");
        assert!(
            html.contains("data-symbol=\"AAPL\"") && html.contains("data-symbol=\"BTCUSD\""),
            "{query}: the tiles are still shown"
        );
        assert!(
            html.contains("id=\"candles\" data-symbol=\"BTCUSD\" data-interval=\"1m\""),
            "{query}: defaults"
        );
    }
    app.stop().await;
}
