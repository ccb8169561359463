//! Feed storage on both backends: batch inserts are atomic and idempotent, the derived
//! `instruments` table follows them, and the read queries page and aggregate correctly.

use crate::common;

use common::{Backend, fresh_db};
use pricehub::feed::Trade;
use pricehub::feed::store::{self, Receipt};

fn receipts(run_id: i64, from_seq: i64, n: i64) -> Vec<Receipt> {
    (from_seq..from_seq + n)
        .map(|seq| Receipt {
            run_id,
            seq,
            received_ms: 1_700_000_000_000 + seq,
            trade: Trade {
                // Two symbols; timestamps 1 s apart, with a duplicate timestamp every 10.
                timestamp_ms: (1_700_000_000_000 + (seq - seq % 10 / 9) * 1_000) as u64,
                ticker: if seq % 2 == 0 { "AAPL" } else { "BTCUSD" }.into(),
                price: 100.0 + seq as f64 * 0.25,
                size: 100 * (1 + seq as u32 % 5),
            },
        })
        .collect()
}

async fn batches_are_idempotent(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let db = &t.db;
    let all = receipts(7, 0, 5_000);
    let out = store::insert_batch(db, &all[..3_000]).await.unwrap();
    assert_eq!(out.inserted, 3_000);
    assert!(!out.replayed);
    // A replay that overlaps what is stored: only the new rows go in.
    let out = store::insert_batch(db, &all[2_000..]).await.unwrap();
    assert_eq!(out.inserted, 2_000);
    assert!(out.replayed);
    // A full duplicate inserts nothing.
    let out = store::insert_batch(db, &all).await.unwrap();
    assert_eq!(out.inserted, 0);
    assert_eq!(store::count_trades(db).await.unwrap(), 5_000);
    // Another run with the same sequence numbers is a different receipt.
    store::insert_batch(db, &receipts(8, 0, 10)).await.unwrap();
    assert_eq!(store::count_trades(db).await.unwrap(), 5_010);

    let instruments = store::list_instruments(db).await.unwrap();
    assert_eq!(instruments.len(), 2);
    let aapl = &instruments[0];
    assert_eq!(aapl.symbol, "AAPL");
    assert_eq!(aapl.ticks, 2_505);
    let last_aapl = all.iter().rev().find(|r| r.trade.ticker == "AAPL").unwrap();
    assert_eq!(aapl.last_price, last_aapl.trade.price);
    assert_eq!(aapl.last_ts_ms, last_aapl.trade.timestamp_ms as i64);
    assert_eq!(instruments[1].ticks, 2_505);

    // Keyset paging visits every AAPL trade exactly once, newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store::trades_page(db, "AAPL", 0, i64::MAX, before, 333)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| (r.ts_ms, r.id));
        seen.extend(page);
    }
    assert_eq!(seen.len(), 2_505);
    assert!(
        seen.windows(2)
            .all(|w| (w[0].ts_ms, w[0].id) > (w[1].ts_ms, w[1].id))
    );

    let candles = store::candles(db, "BTCUSD", 0, i64::MAX, 60_000)
        .await
        .unwrap();
    let total: i64 = candles.iter().map(|c| c.trades).sum();
    assert_eq!(total, 2_505);
    assert!(candles.iter().all(|c| c.low <= c.open && c.open <= c.high));
    assert!(candles.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
    t.db.close().await;
}

/// Writers racing with the same trades cut into different batches (what a spool replay
/// after a crash does next to a retry of an ambiguous commit): every trade is stored once.
async fn racing_replays_store_each_trade_once(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let all = std::sync::Arc::new(receipts(11, 0, 12_000));
    let mut writers = Vec::new();
    for k in 0..6usize {
        let (db, all) = (t.db.clone(), all.clone());
        writers.push(tokio::spawn(async move {
            let size = 700 + 900 * k;
            let mut chunks: Vec<&[Receipt]> = all.chunks(size).collect();
            if k % 2 == 1 {
                chunks.reverse();
            }
            let mut inserted = 0;
            for c in chunks {
                inserted += store::insert_batch(&db, c).await.unwrap().inserted;
            }
            inserted
        }));
    }
    let mut inserted = 0;
    for w in writers {
        inserted += w.await.unwrap();
    }
    assert_eq!(inserted, 12_000, "inserted counts add up to the trades");
    assert_eq!(store::count_trades(&t.db).await.unwrap(), 12_000);
    let distinct: i64 = match &t.db {
        pricehub::db::Db::Postgres(p) => {
            sqlx::query_scalar("SELECT COUNT(DISTINCT (run_id, seq)) FROM trades")
                .fetch_one(p)
                .await
                .unwrap()
        }
        pricehub::db::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT DISTINCT run_id, seq FROM trades)")
                .fetch_one(p)
                .await
                .unwrap()
        }
    };
    assert_eq!(distinct, 12_000);
    let ticks: i64 = store::list_instruments(&t.db)
        .await
        .unwrap()
        .iter()
        .map(|i| i.ticks)
        .sum();
    assert_eq!(ticks, 12_000);
    t.db.close().await;
}

#[tokio::test]
async fn sqlite_racing_replays_store_each_trade_once() {
    racing_replays_store_each_trade_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_racing_replays_store_each_trade_once() {
    racing_replays_store_each_trade_once(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_batches_are_idempotent() {
    batches_are_idempotent(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_batches_are_idempotent() {
    batches_are_idempotent(Backend::Postgres).await;
}
