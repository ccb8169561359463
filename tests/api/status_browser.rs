//! The status page, the rates explorer and the live dashboard in a real headless
//! Chromium against real servers (the dashboard's: the embedded default, and a separate
//! `serve` following a collector that writes to PostgreSQL): what a person sees, that it
//! adds up, and that the page stays on its origin with a silent console. Each page is
//! saved at desktop and phone width (`target/screenshots/`).

use crate::common;

use std::time::Duration;

use common::browser::{Browser, DESKTOP, PHONE};
use common::process::{Proc, pricehub, spawn_feed};
use common::{Backend, TestApp, fresh_db};
use fantoccini::key::Key;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_counts_each_reload_once() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::start(db).await;
    let version = app.get_json("/version").await.2;
    browser.open(&app.url("/")).await;
    assert_eq!(
        browser.text("#version").await,
        version["version"].as_str().unwrap()
    );
    assert_eq!(
        browser.text("#commit").await,
        version["commit"].as_str().unwrap()
    );
    assert_eq!(browser.text("#visits-yours").await, "1");
    assert_eq!(browser.text("#visits-total").await, "1");
    for n in 2..=4 {
        browser.client.refresh().await.unwrap();
        assert_eq!(
            browser.text("#visits-yours").await,
            n.to_string(),
            "reload {n}"
        );
        assert_eq!(browser.text("#visits-total").await, "1");
    }
    let state = browser.text("tr[data-check=database] .state").await;
    assert_eq!(state, "up");
    // Keyboard: the first Tab lands on the skip link; Enter moves focus to the content.
    browser.press(Key::Tab).await;
    let active = browser
        .js("return document.activeElement.textContent", vec![])
        .await;
    assert_eq!(active, "Skip to content");
    browser.press(Key::Return).await;
    browser
        .wait_for(
            "document.activeElement.id === 'main'",
            Duration::from_secs(5),
        )
        .await;
    // The theme follows the system; a dark scheme is defined.
    let css = app.get("/assets/app.css").await.text().await.unwrap();
    assert!(css.contains("@media (prefers-color-scheme: dark)"));
    browser.js("document.activeElement.blur()", vec![]).await;
    browser.viewport(DESKTOP).await;
    browser.screenshot("status-desktop", true).await;
    fits_a_phone(&browser, "the status page").await;
    browser.screenshot("status-phone", false).await;
    browser.assert_clean(&app.base).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_draws_the_rates_series_and_its_csv_matches() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = fresh_db(backend).await else {
            continue;
        };
        if !common::import_2021(&db.db).await {
            return;
        }
        let Some(mut browser) = Browser::start().await else {
            return;
        };
        let app = TestApp::start(db).await;
        // Open the bare page and choose the lane with the form, as a person would.
        browser.open(&app.url("/explorer")).await;
        browser
            .js(
                "document.getElementById('orig_code').value = 'china_main';
                 document.getElementById('dest_code').value = 'north_europe_main';
                 document.getElementById('date_from').value = '2021-01-01';
                 document.getElementById('date_to').value = '2021-01-31';
                 document.querySelector('form.controls button').click();",
                vec![],
            )
            .await;
        browser
            .wait_for(
                "location.search.includes('north_europe_main') && document.querySelector('#chart[data-drawn]')",
                Duration::from_secs(20),
            )
            .await;
        let q = "date_from=2021-01-01&date_to=2021-01-31&orig_code=china_main&dest_code=north_europe_main";
        let (_, _, rates) = app.get_json(&format!("/rates?{q}")).await;
        let mut rates = rates["rates"].as_array().unwrap().clone();
        rates.reverse();
        let drawn = browser
            .js(
                "const svg = document.getElementById('chart');
                 const dots = [...svg.querySelectorAll('circle.dot')].map(c => [c.dataset.day, c.dataset.price, Number(c.dataset.count)]);
                 const gaps = [...svg.querySelectorAll('rect.gap')].map(r => r.dataset.day);
                 const bars = [...svg.querySelectorAll('rect.bar')].map(r => [r.dataset.day, Number(r.dataset.count)]);
                 return {dots, gaps, bars};",
                vec![],
            )
            .await;
        let mut dots = drawn["dots"].as_array().unwrap().iter();
        let gaps: Vec<&str> = drawn["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        let bars: Vec<&Value> = drawn["bars"].as_array().unwrap().iter().collect();
        assert!(!gaps.is_empty() || rates.iter().all(|r| r["price"].is_number()));
        for r in &rates {
            let day = r["day"].as_str().unwrap();
            match r["price"].as_f64() {
                Some(price) => {
                    let d = dots
                        .next()
                        .unwrap_or_else(|| panic!("{backend:?}: no dot for {day}"));
                    assert_eq!(d[0], day);
                    // The same (fast, not always nearest) serde_json parse on both sides.
                    let drawn: f64 = serde_json::from_str(d[1].as_str().unwrap()).unwrap();
                    assert_eq!(drawn, price, "{backend:?} {day}");
                    assert_eq!(d[2], r["count"]);
                }
                None => assert!(
                    gaps.contains(&day),
                    "{backend:?}: {day} has no price but is not marked"
                ),
            }
            if let Some(c) = r["count"].as_i64() {
                assert!(
                    bars.iter().any(|b| b[0] == day && b[1] == c),
                    "{day}: no count bar"
                );
            }
        }
        assert!(dots.next().is_none(), "more dots than priced days");
        // The curl command is the same query, and the CSV link returns the drawn series.
        let curl = browser.text("#curl").await;
        assert_eq!(curl, format!("curl '{}/rates?{q}'", app.base));
        let href = browser
            .js(
                "return document.getElementById('csv').getAttribute('href')",
                vec![],
            )
            .await;
        let csv = app.get(href.as_str().unwrap()).await.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(lines.len(), rates.len());
        for (line, r) in lines.iter().zip(&rates) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f[0], r["day"].as_str().unwrap());
            assert_eq!(
                serde_json::from_str::<f64>(f[1]).ok(),
                r["price"].as_f64(),
                "{line}"
            );
            assert_eq!(f[2].parse::<i64>().ok(), r["count"].as_i64(), "{line}");
        }
        if backend == Backend::Sqlite {
            browser.viewport(DESKTOP).await;
            browser.screenshot("explorer-desktop", true).await;
            fits_a_phone(&browser, "the explorer").await;
            browser.screenshot("explorer-phone", false).await;
        }
        browser.assert_clean(&app.base).await;
        browser.close().await;
        app.stop().await;
    }
}

/// The price text of every tile, by symbol.
const PRICES: &str = "return Object.fromEntries([...document.querySelectorAll('#tiles li.tile')]
     .map(li => [li.dataset.symbol, li.querySelector('.price').textContent]))";

/// Waits until some tile's price text differs from `before` without the page reloading
/// (the marker set on `window` survives only in the same document); returns the prices.
async fn wait_for_a_price_change(browser: &Browser, before: &Value) -> Value {
    browser.js("window.__sameDocument = true", vec![]).await;
    browser
        .wait_for(
            &format!(
                "window.__sameDocument && (() => {{
                   const before = {before};
                   const now = (function () {{ {PRICES} }})();
                   return Object.keys(now).some(s => before[s] !== undefined && now[s] !== before[s]);
                 }})()"
            ),
            Duration::from_secs(30),
        )
        .await;
    browser.js(PRICES, vec![]).await
}

/// Phone width: nothing overflows sideways.
async fn fits_a_phone(browser: &Browser, page: &str) {
    browser.viewport(PHONE).await;
    let overflow = browser
        .js(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "{page} is {overflow} px too wide at phone width"
    );
}

/// The newcomer's setup (`pricehub all`: SQLite, the feed in the same process): the
/// dashboard's prices move by themselves, its chart and BTC panel follow, and it stays on
/// its origin with a silent console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_moves_on_the_embedded_default() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut app = Proc::spawn(
        pricehub()
            .args([
                "all",
                "--listen",
                "127.0.0.1:0",
                "--no-demo-data",
                "--feed-rate",
                "20",
                "--data-dir",
            ])
            .arg(dir.path()),
    );
    let base = format!("http://{}", app.addr());
    let client = reqwest::Client::new();
    // Trades stored, and an order placed at the live BTC rate, before the page opens.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let order: Value = loop {
        let resp = client
            .post(format!("{base}/orders"))
            .header("content-type", "application/json")
            .body(r#"{"currency":"EUR","amount":"2500.00"}"#)
            .send()
            .await
            .unwrap();
        if resp.status() == 201 {
            break resp.json().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no order could be placed: {} {}",
            resp.status(),
            resp.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    browser
        .open(&format!("{base}/dashboard?symbol=BTCUSD&interval=1s"))
        .await;
    browser
        .wait_for(
            "document.getElementById('live-status').textContent.startsWith('Live')",
            Duration::from_secs(20),
        )
        .await;
    let before = browser.js(PRICES, vec![]).await;
    assert!(
        before.as_object().unwrap().contains_key("BTCUSD"),
        "{before}"
    );
    wait_for_a_price_change(&browser, &before).await;
    // The chart is drawn and follows the stream; the sparklines are lines.
    browser
        .wait_for(
            "document.querySelectorAll('#candle-chart g.candles > g').length >= 3",
            Duration::from_secs(30),
        )
        .await;
    let spark = browser
        .js(
            "return document.querySelector('#tiles li[data-symbol=BTCUSD] svg.spark path.line').getAttribute('d')",
            vec![],
        )
        .await;
    assert!(spark.as_str().unwrap().starts_with("M0.00 "), "{spark}");
    // The BTC panel shows the order and the cap in use.
    assert_eq!(
        browser.text("#cap-used").await,
        order["btc_amount"].as_str().unwrap()
    );
    assert!(browser.text("#orders tbody").await.contains("2500.00"));
    // Keyboard: the tiles are links reached with Tab, and the form has labelled controls.
    let focusable = browser
        .js(
            "const a = document.querySelector('#tiles li.tile a'); a.focus();
             return document.activeElement === a",
            vec![],
        )
        .await;
    assert_eq!(focusable, Value::Bool(true));
    for id in ["symbol", "interval", "cap-meter"] {
        let label = browser
            .js(
                &format!("return document.querySelector('label[for={id}]').textContent"),
                vec![],
            )
            .await;
        assert!(!label.as_str().unwrap().is_empty(), "{id} has no label");
    }
    // Choosing another instrument from the form shows its candles. AAPL's tile may have
    // come from the stream after the page was rendered; its option must have come with
    // it (once, before the page added options, the select had none, submitted an empty
    // symbol and the page stayed on BTCUSD).
    const AAPL_SHOWN: &str = "location.search.includes('symbol=AAPL') && document.getElementById('candles') && document.getElementById('candles').dataset.symbol === 'AAPL'";
    browser
        .wait_for(
            "document.querySelector('#tiles li[data-symbol=AAPL]') !== null",
            Duration::from_secs(30),
        )
        .await;
    let chosen = browser
        .js(
            "const s = document.getElementById('symbol');
             s.value = 'AAPL';
             if (s.value !== 'AAPL') return s.innerHTML;
             document.querySelector('#candle-form button').click();
             return 'AAPL';",
            vec![],
        )
        .await;
    assert_eq!(chosen, Value::from("AAPL"), "the form offers no AAPL");
    browser.wait_for(AAPL_SHOWN, Duration::from_secs(15)).await;
    browser
        .open(&format!("{base}/dashboard?symbol=BTCUSD&interval=1s"))
        .await;
    // Some history for the screenshot: twenty 1-second candles.
    browser
        .wait_for(
            "document.getElementById('live-status').textContent.startsWith('Live')
             && document.querySelectorAll('#candle-chart g.candles > g').length >= 20",
            Duration::from_secs(90),
        )
        .await;
    browser.js("document.activeElement.blur()", vec![]).await;
    // The whole page at desktop width (it is longer than one screen).
    browser.viewport(DESKTOP).await;
    let height = browser
        .js("return document.documentElement.scrollHeight", vec![])
        .await
        .as_u64()
        .unwrap() as u32;
    browser
        .viewport((DESKTOP.0, height.clamp(DESKTOP.1, 2000)))
        .await;
    browser.screenshot("dashboard-desktop", true).await;
    fits_a_phone(&browser, "the dashboard").await;
    browser.screenshot("dashboard-phone", false).await;
    browser.assert_clean(&base).await;
    browser.close().await;
    assert!(app.terminate().success());
}

/// The collector in its own process writes to PostgreSQL; a separate `serve` shows the
/// dashboard, whose prices move with what the collector commits (LISTEN/NOTIFY): tiles
/// appear on a page opened before any trade, and a reloaded page keeps moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_of_a_separate_serve_follows_a_collector_on_postgres() {
    let Some(url) = common::pg::fresh_database(false).await else {
        return;
    };
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let db = url.expose();
    let dir = tempfile::tempdir().unwrap();
    let mut serve =
        Proc::spawn(pricehub().args(["serve", "--listen", "127.0.0.1:0", "--database-url", db]));
    let trigger = serve.wait_for("instrument stream running")["trigger"].clone();
    assert_eq!(trigger, "postgres LISTEN");
    let base = format!("http://{}", serve.addr());

    browser.open(&format!("{base}/dashboard")).await;
    assert!(
        browser
            .text("#no-instruments")
            .await
            .starts_with("No trades")
    );
    browser
        .wait_for(
            "document.getElementById('live-status').textContent.startsWith('Live')",
            Duration::from_secs(20),
        )
        .await;

    let (mut provider, mut collector) = spawn_feed(
        db,
        dir.path(),
        &["--rate", "20"],
        &["--flush-interval-ms", "50"],
    );

    // Tiles appear live on the page that was opened before any trade.
    browser
        .wait_for(
            "document.querySelectorAll('#tiles li.tile').length >= 3
             && document.getElementById('no-instruments').hidden",
            Duration::from_secs(30),
        )
        .await;
    let before = browser.js(PRICES, vec![]).await;
    wait_for_a_price_change(&browser, &before).await;
    browser.assert_clean(&base).await;

    // A page rendered with the stored trades keeps moving too.
    browser.open(&format!("{base}/dashboard")).await;
    browser
        .wait_for(
            "document.getElementById('live-status').textContent.startsWith('Live')",
            Duration::from_secs(20),
        )
        .await;
    let before = browser.js(PRICES, vec![]).await;
    assert!(
        before.as_object().unwrap().len() >= 3,
        "server-rendered tiles: {before}"
    );
    let after = wait_for_a_price_change(&browser, &before).await;
    // What the page shows is what is stored.
    let stored: Value = reqwest::get(format!("{base}/instruments"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // An instrument whose first trade was stored after `after` was read gets its tile
    // from the stream a moment later: every stored one must have a tile within seconds.
    let symbols: Vec<String> = stored["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["symbol"].as_str().unwrap().to_string())
        .collect();
    let mut shown = after;
    for _ in 0..40 {
        if symbols.iter().all(|s| shown[s.as_str()].is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        shown = browser.js(PRICES, vec![]).await;
    }
    for s in &symbols {
        assert!(shown[s.as_str()].is_string(), "{s} has no tile: {shown}");
    }
    browser.assert_clean(&base).await;
    browser.close().await;
    assert!(collector.terminate().success());
    assert!(provider.terminate().success());
    assert!(serve.terminate().success());
}
