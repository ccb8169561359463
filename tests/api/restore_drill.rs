//! The restore drill of docs/operations.md, for real: a PostgreSQL database in use (the
//! 2021 rates, a synchronous and an asynchronous batch, orders, feed trades) is dumped
//! with `pg_dump --format=custom` while the API runs, restored with `pg_restore` into a
//! fresh database, and served; `/rates`, `/orders` (every page), `/instruments` and the
//! BTC ledger answer identically from the copy.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::pg::{admin_execute, admin_url, with_database};
use common::{Backend, TestApp, TestDb, fresh_db, import_2021};
use pricehub::config::{DbArgs, HttpArgs, Secret};
use pricehub::db::Db;
use pricehub::feed::Trade;
use pricehub::feed::store::{self, Receipt};
use serde_json::{Value, json};

const TOKEN: &str = "drill-token";

/// The client tools of the newest local PostgreSQL (as scripts/pg.sh picks the server).
fn pg_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http() -> HttpArgs {
    let mut h = HttpArgs::default();
    h.ingest.ingest_token = Some(Secret::new(TOKEN));
    h.orders.btc_rate_fixed = Some("USD=43216.7431,EUR=40000.5,GBP=35000.25".parse().unwrap());
    h
}

/// Everything the drill compares, read through the API (and the ledger row).
async fn snapshot(app: &TestApp) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for q in [
        "/rates?date_from=2016-01-01&date_to=2016-01-10&orig_code=CNSGH&dest_code=north_europe_main",
        "/rates?date_from=2016-01-01&date_to=2016-01-31&orig_code=china_main&dest_code=EETLL",
        "/rates?date_from=2021-03-01&date_to=2021-03-28&orig_code=CNGGZ&dest_code=EETLL",
        "/rates?date_from=2021-04-01&date_to=2021-04-05&orig_code=CNGGZ&dest_code=EETLL",
        "/instruments",
    ] {
        let (status, _, body) = app.get_json(q).await;
        assert_eq!(status, 200, "{q}: {body}");
        out.push((q.to_string(), body));
    }
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/orders?limit=3&cursor={c}"),
            None => "/orders?limit=3".to_string(),
        };
        let (status, _, body) = app.get_json(&q).await;
        assert_eq!(status, 200, "{q}: {body}");
        cursor = body["next_cursor"].as_str().map(str::to_string);
        out.push((q, body));
        pages += 1;
        if cursor.is_none() || pages > 20 {
            break;
        }
    }
    let ledger: i64 = match &app.db.db {
        Db::Postgres(p) => sqlx::query_scalar("SELECT total_sats FROM btc_ledger")
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Sqlite(_) => unreachable!("the drill runs on PostgreSQL"),
    };
    out.push(("btc_ledger.total_sats".into(), json!(ledger)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_of_a_database_in_use_restores_and_serves_identically() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let app = TestApp::start_with(db, http()).await;
    let c = &app.client;
    // A synchronous batch and an asynchronous one on a lane/month the dump lacks.
    let rows = |month: u32, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| {
                json!({"orig_code": "CNGGZ", "dest_code": "EETLL",
                       "day": format!("2021-{month:02}-{:02}", 1 + i % 28), "price": 1000 + i})
            })
            .collect()
    };
    let r = c
        .post(app.url("/prices"))
        .bearer_auth(TOKEN)
        .json(&rows(3, 300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = c
        .post(app.url("/batches"))
        .bearer_auth(TOKEN)
        .json(&rows(4, 60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let status_url = r.json::<Value>().await.unwrap()["status_url"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..200 {
        let (_, _, b) = app.get_json(&status_url).await;
        if b["status"] == "committed" {
            break;
        }
        assert_ne!(b["status"], "rejected", "{b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Orders in three currencies.
    for (i, cur) in ["USD", "EUR", "GBP", "USD", "EUR", "GBP", "USD"]
        .iter()
        .enumerate()
    {
        let r = c
            .post(app.url("/orders"))
            .json(&json!({"currency": cur, "amount": format!("{}.37", 100 + i * 911)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // Feed trades, as the collector stores them.
    let trades: Vec<Receipt> = (0..500)
        .map(|seq| Receipt {
            run_id: 77,
            seq,
            received_ms: 1_764_000_000_000 + seq,
            trade: Trade {
                timestamp_ms: 1_764_000_000_000 + seq as u64 * 250,
                ticker: ["AAPL", "BTCUSD", "EURUSD"][seq as usize % 3].into(),
                price: 100.0 + seq as f64 * 0.05,
                size: 100 * (1 + seq as u32 % 9),
            },
        })
        .collect();
    store::insert_batch(&app.db.db, &trades).await.unwrap();
    let trades_before = store::count_trades(&app.db.db).await.unwrap();
    let before = snapshot(&app).await;

    // The dump, taken while the API is serving (pg_dump reads one consistent snapshot).
    let source = app.db.url.expose().to_string();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("pricehub.dump");
    run(Command::new(pg_tool("pg_dump"))
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(&source));
    // Keep writing to the source after the dump: the copy must not see it.
    let r = c
        .post(app.url("/orders"))
        .json(&json!({"currency": "USD", "amount": "5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let restored = format!("restored_{}", std::process::id());
    admin_execute(&format!(
        "DROP DATABASE IF EXISTS {restored}; CREATE DATABASE {restored} TEMPLATE template0"
    ))
    .await
    .unwrap();
    let restored_url = with_database(&admin_url().unwrap(), &restored);
    run(Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&restored_url)
        .arg(&dump));
    let url: pricehub::config::DatabaseUrl = restored_url.parse().unwrap();
    let copy_db = Db::connect(&DbArgs::new(url.clone())).await.unwrap();
    // Migrations on the restored copy are a no-op: it is already current.
    copy_db.migrate().await.unwrap();
    let copy = TestApp::start_with(TestDb::new(copy_db, url, None), http()).await;
    let after = snapshot(&copy).await;
    assert_eq!(
        store::count_trades(&copy.db.db).await.unwrap(),
        trades_before
    );
    assert_eq!(before.len(), after.len());
    for ((q, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{q} differs after the restore");
    }
    let (_, _, ready) = copy.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    copy.stop().await;
    app.stop().await;
    let _ = admin_execute(&format!("DROP DATABASE IF EXISTS {restored}")).await;
}
