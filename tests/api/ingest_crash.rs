//! The server killed with SIGKILL in the middle of a batch: afterwards none of its rows
//! exist, and an accepted asynchronous batch is committed exactly once after a restart.
//! A fault-injection variable holds the batch transaction open long enough to aim the kill.

use crate::common;

use std::time::Duration;

use crate::common::on_both_backends;
use common::process::{Proc, pricehub};
use common::{Backend, fresh_db, import_2021, price_count};
use serde_json::{Value, json};

const TOKEN: &str = "crash-token";

fn batch(n: usize) -> Value {
    json!((0..n)
        .map(|i| json!({"orig_code": "CNSGH", "dest_code": "NOOSL", "day": format!("2021-05-{:02}", 1 + i % 28), "price": 100 + i % 50}))
        .collect::<Vec<_>>())
}

fn serve(url: &str, fault: bool) -> Proc {
    serve_with(url, fault.then_some(30_000), &[])
}

/// `pricehub serve`, optionally with the commit of every batch delayed by `delay_ms`.
fn serve_with(url: &str, delay_ms: Option<u64>, extra: &[&str]) -> Proc {
    let mut cmd = pricehub();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        url,
        "--ingest-token",
        TOKEN,
    ]);
    cmd.args(extra);
    if let Some(ms) = delay_ms {
        cmd.env(
            "PRICEHUB_FAULT_INGEST_DELAY_BEFORE_COMMIT_MS",
            ms.to_string(),
        );
    }
    Proc::spawn(&mut cmd)
}

async fn killed_mid_batch(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let url = db.url.expose().to_string();
    let before = price_count(&db.db).await;
    let client = reqwest::Client::new();

    // A synchronous 50,000-row batch, killed while its transaction is open.
    let mut p = serve(&url, true);
    let addr = p.addr();
    let req = client
        .post(format!("http://{addr}/prices"))
        .bearer_auth(TOKEN)
        .json(&batch(50_000))
        .send();
    let pending = tokio::spawn(req);
    tokio::task::spawn_blocking(move || {
        p.wait_for("fault injection");
        p.kill_hard();
    })
    .await
    .unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the client saw the connection die"
    );
    assert_eq!(
        price_count(&db.db).await,
        before,
        "no row of the killed batch exists"
    );

    // An asynchronous batch: accepted (202), the worker killed before its commit...
    let mut p = serve(&url, true);
    let addr = p.addr();
    let r = client
        .post(format!("http://{addr}/batches"))
        .bearer_auth(TOKEN)
        .json(&batch(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        p.wait_for("fault injection");
        p.kill_hard();
    })
    .await
    .unwrap();
    assert_eq!(price_count(&db.db).await, before);

    // ...and committed exactly once by the next server.
    let mut p = serve(&url, false);
    let addr = p.addr();
    let mut status = Value::Null;
    for _ in 0..200 {
        status = client
            .get(format!("http://{addr}{location}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "committed", "{status}");
    assert_eq!(status["rows"], 20_000);
    assert!(status["attempts"].as_i64().unwrap() >= 1);
    assert_eq!(price_count(&db.db).await, before + 20_000);
    assert!(p.terminate().success());
}

on_both_backends!(sigkill_mid_batch => killed_mid_batch);

/// A batch that runs past `--request-timeout` is answered 503 and rolled back: the
/// dropped handler drops its transaction, and nothing of the batch appears later either.
async fn timed_out_batch_leaves_nothing(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let before = price_count(&db.db).await;
    let mut p = serve_with(db.url.expose(), Some(1500), &["--request-timeout", "1"]);
    let addr = p.addr();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/prices"))
        .bearer_auth(TOKEN)
        .json(&batch(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:pricehub:problem:timeout");
    // Longer than the injected delay: had the transaction survived, it would have committed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(price_count(&db.db).await, before);
    assert!(p.terminate().success());
}

on_both_backends!(timeout => timed_out_batch_leaves_nothing);

/// The database connection of a batch killed while its transaction is open (after the
/// streamed COPY, before COMMIT): the client gets a 503 problem, nothing is stored, and
/// the retry with the same Idempotency-Key commits the batch exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connection_lost_mid_batch_on_postgres() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    if !import_2021(&db.db).await {
        return;
    }
    let pricehub::db::Db::Postgres(pool) = &db.db else {
        unreachable!()
    };
    let before = price_count(&db.db).await;
    let mut p = serve_with(db.url.expose(), Some(2_000), &[]);
    let addr = p.addr();
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("http://{addr}/prices"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", "lost-connection-1")
            .json(&batch(30_000))
            .send()
    };
    let pending = tokio::spawn(send());
    let p = tokio::task::spawn_blocking(move || {
        p.wait_for("fault injection");
        p
    })
    .await
    .unwrap();
    let killed: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND state = 'idle in transaction' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(killed.len(), 1, "one open batch transaction");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(killed[0])
        .execute(pool)
        .await
        .unwrap();
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        price_count(&db.db).await,
        before,
        "nothing of the batch exists"
    );

    let r = send().await.unwrap();
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["rows"], 30_000);
    assert_eq!(price_count(&db.db).await, before + 30_000);
    let r = send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotency-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(price_count(&db.db).await, before + 30_000);
    let mut p = p;
    assert!(p.terminate().success());
}
