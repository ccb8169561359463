//! The status page and the rates explorer in a real headless Chromium against a real
//! server: what a person sees, that it adds up, and that the page stays on its origin
//! with a silent console.

use crate::common;

use std::time::Duration;

use common::browser::{Browser, DESKTOP, PHONE};
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
    browser.viewport(PHONE).await;
    // Nothing overflows sideways at phone width.
    let overflow = browser
        .js(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "page is {overflow} px too wide at phone width"
    );
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
            browser.viewport(PHONE).await;
            let overflow = browser
                .js(
                    "return document.documentElement.scrollWidth - window.innerWidth",
                    vec![],
                )
                .await;
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "explorer is {overflow} px too wide at phone width"
            );
            browser.screenshot("explorer-phone", false).await;
        }
        browser.assert_clean(&app.base).await;
        browser.close().await;
        app.stop().await;
    }
}
