//! `GET /instruments…` on both backends: the JSON shapes, keyset paging, candles, and
//! problem+json for bad input.

use crate::common;

use common::{Backend, TestApp, fresh_db};
use pricehub::feed::Trade;
use pricehub::feed::store::{self, Receipt};

const T0: i64 = 1_795_399_980_000; // 2026-11-23T02:13:00Z, a whole minute

async fn app_with_trades(backend: Backend) -> Option<TestApp> {
    let t = fresh_db(backend).await?;
    // 250 BTCUSD trades 10 s apart (with one pair sharing a timestamp), 3 AAPL trades.
    let mut receipts: Vec<Receipt> = (0..250)
        .map(|i| Receipt {
            run_id: 1,
            seq: i,
            received_ms: T0,
            trade: Trade {
                timestamp_ms: (T0 + (i - i64::from(i == 100)) * 10_000) as u64,
                ticker: "BTCUSD".into(),
                price: 43_000.0 + i as f64,
                size: 100,
            },
        })
        .collect();
    for (i, price) in [190.0, 191.5, 189.25].into_iter().enumerate() {
        receipts.push(Receipt {
            run_id: 1,
            seq: 1_000 + i as i64,
            received_ms: T0,
            trade: Trade {
                timestamp_ms: (T0 + i as i64 * 1_000) as u64,
                ticker: "AAPL".into(),
                price,
                size: 700,
            },
        });
    }
    store::insert_batch(&t.db, &receipts).await.unwrap();
    Some(TestApp::start(t).await)
}

async fn instruments_trades_candles(backend: Backend) {
    let Some(app) = app_with_trades(backend).await else {
        return;
    };
    let (s, _, body) = app.get_json("/instruments").await;
    assert_eq!(s, 200, "{body}");
    let list = body["instruments"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["symbol"], "AAPL");
    assert_eq!(list[0]["last_price"], 189.25);
    assert_eq!(list[0]["last_time"], "2026-11-23T02:13:02.000Z");
    assert_eq!(list[0]["ticks"], 3);
    assert_eq!(list[1]["symbol"], "BTCUSD");
    assert_eq!(list[1]["ticks"], 250);
    assert_eq!(list[1]["last_price"], 43_249.0);

    // Keyset pages: every trade once, newest first, ties in id order.
    let mut seen = Vec::new();
    let mut path = "/instruments/BTCUSD/trades?limit=60".to_string();
    loop {
        let (s, _, body) = app.get_json(&path).await;
        assert_eq!(s, 200, "{body}");
        seen.extend(body["trades"].as_array().unwrap().iter().map(|t| {
            (
                t["timestamp_ms"].as_i64().unwrap(),
                t["id"].as_i64().unwrap(),
            )
        }));
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/instruments/BTCUSD/trades?limit=60&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
    // The plain `<ms>:<id>` cursor earlier versions sent still pages the same; an empty
    // value counts as absent (docs/api.md).
    let (ts, id) = seen[59];
    let (_, _, old) = app
        .get_json(&format!(
            "/instruments/BTCUSD/trades?limit=60&cursor={ts}:{id}"
        ))
        .await;
    assert_eq!(old["trades"][0]["id"], seen[60].1);
    let (s, _, body) = app
        .get_json("/instruments/BTCUSD/trades?limit=&from=&cursor=")
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["trades"].as_array().unwrap().len(), 100);

    // A time window: from inclusive, to exclusive.
    let (s, _, body) = app
        .get_json(&format!(
            "/instruments/BTCUSD/trades?from={}&to=2026-11-23T02:13:30Z",
            T0 + 10_000
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    let times: Vec<i64> = body["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["timestamp_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(times, [T0 + 20_000, T0 + 10_000]);
    assert!(body["next_cursor"].is_null());

    let (s, _, body) = app
        .get_json(&format!(
            "/instruments/BTCUSD/candles?interval=1m&from={T0}&to={}",
            T0 + 120_000
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    let c = body["candles"].as_array().unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["time"], "2026-11-23T02:13:00.000Z");
    assert_eq!(c[0]["open"], 43_000.0);
    assert_eq!(c[0]["close"], 43_005.0);
    assert_eq!(c[0]["high"], 43_005.0);
    assert_eq!(c[0]["low"], 43_000.0);
    assert_eq!(c[0]["trades"], 6);
    assert_eq!(c[0]["volume"], 600);
    assert_eq!(c[1]["trades"], 6);
    let (s, _, body) = app
        .get_json("/instruments/BTCUSD/candles?interval=1d&from=2026-11-01&to=2026-12-01")
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["candles"][0]["trades"], 250);

    for (path, status, kind) in [
        ("/instruments/NOPE/trades", 404, "unknown-instrument"),
        ("/instruments/NOPE/candles", 404, "unknown-instrument"),
        ("/instruments/BTCUSD/trades?limit=0", 400, "invalid-limit"),
        ("/instruments/BTCUSD/trades?limit=abc", 400, "invalid-limit"),
        (
            "/instruments/BTCUSD/trades?limit=1001",
            400,
            "invalid-limit",
        ),
        (
            "/instruments/BTCUSD/trades?from=yesterday",
            400,
            "invalid-time",
        ),
        (
            "/instruments/BTCUSD/trades?cursor=xyz",
            400,
            "invalid-cursor",
        ),
        (
            "/instruments/BTCUSD/trades?from=2026-02-01&to=2026-01-01",
            400,
            "invalid-range",
        ),
        (
            "/instruments/BTCUSD/trades?limit=1&limit=2",
            400,
            "duplicate-parameter",
        ),
        (
            "/instruments/BTCUSD/candles?interval=7m",
            400,
            "invalid-interval",
        ),
        (
            "/instruments/BTCUSD/candles?interval=1s&from=2020-01-01&to=2026-01-01",
            400,
            "range-too-long",
        ),
        ("/instruments/%00%FF/trades", 400, "bad-request"),
        ("/instruments/A%00B/trades", 404, "unknown-instrument"),
        ("/instruments/%20/candles", 404, "unknown-instrument"),
    ] {
        let (s, ct, body) = app.get_json(path).await;
        assert_eq!(s, status, "{path}: {body}");
        assert_eq!(ct, "application/problem+json", "{path}");
        assert_eq!(
            body["type"],
            format!("urn:pricehub:problem:{kind}"),
            "{path}"
        );
    }

    let (_, _, doc) = app.get_json("/openapi.json").await;
    for p in [
        "/instruments",
        "/instruments/{symbol}/trades",
        "/instruments/{symbol}/candles",
    ] {
        assert!(
            doc["paths"][p]["get"].is_object(),
            "{p} missing from OpenAPI"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn sqlite_instruments_trades_candles() {
    instruments_trades_candles(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_instruments_trades_candles() {
    instruments_trades_candles(Backend::Postgres).await;
}
