//! The spool belongs to its database, with real provider and collector
//! processes and real PostgreSQL databases.
//!
//! A collector writing to database A loses it (connections refused) and is stopped, so
//! what it received is spooled, labelled for A. A collector pointed at database B with
//! the same data directory refuses to start, naming both, and B gets nothing. With the
//! spool moved aside it starts clean; the moved spool replays into A.

use crate::common;

use common::free_port;
use common::process::{Proc, pricehub};

use std::path::Path;
use std::time::{Duration, Instant};

use common::pg;
use pricehub::config::{DatabaseUrl, DbArgs};
use pricehub::db::Db;
use pricehub::feed::store::count_trades;

fn collector(url: &DatabaseUrl, feed: u16, data_dir: &Path) -> Proc {
    Proc::spawn(
        pricehub()
            .args(["collector", "--provider", &format!("127.0.0.1:{feed}")])
            .args(["--database-url", url.expose()])
            .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--flush-interval-ms", "50", "--batch-size", "200"])
            .args(["--max-buffered", "10", "--shutdown-timeout", "1"])
            .args(["--db-acquire-timeout", "1"])
            .arg("--data-dir")
            .arg(data_dir),
    )
}

async fn connect(url: &DatabaseUrl) -> Db {
    let mut args = DbArgs::new(url.clone());
    args.db_acquire_timeout = 2;
    Db::connect(&args).await.unwrap()
}

/// Polls `f` for up to 60 s; false when it never held.
async fn poll_until(mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

async fn wait_until(what: &str, f: impl AsyncFnMut() -> bool) {
    assert!(poll_until(f).await, "timed out waiting for {what}");
}

fn segments(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "spool"))
            })
            .count()
        })
        .unwrap_or(0)
}

fn db_name(url: &DatabaseUrl) -> String {
    url.expose().rsplit('/').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_is_replayed_only_into_its_own_database() {
    let (Some(a_url), Some(b_url)) = (
        pg::fresh_database(true).await,
        pg::fresh_database(true).await,
    ) else {
        return;
    };
    let (a, b) = (connect(&a_url).await, connect(&b_url).await);
    let feed = free_port();
    let _provider = Proc::spawn(
        pricehub()
            .args(["provider", "--listen", &format!("127.0.0.1:{feed}")])
            .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--rate", "500", "--seed", "7"]),
    );
    let data = tempfile::tempdir().unwrap();
    let spool = data.path().join("spool");

    // Collector 1 writes to A, then A refuses connections: what it receives is spooled.
    let mut c1 = collector(&a_url, feed, data.path());
    wait_until("trades in A", async || count_trades(&a).await.unwrap() > 50).await;
    let a_name = db_name(&a_url);
    pg::admin_execute(&format!(
        "ALTER DATABASE \"{a_name}\" WITH ALLOW_CONNECTIONS false"
    ))
    .await
    .unwrap();
    pg::admin_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{a_name}' AND pid <> pg_backend_pid()"
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, log) = c1.sigterm_and_wait();
    assert!(ok, "collector 1 did not stop cleanly: {log}");
    assert!(segments(&spool) > 0, "nothing spooled: {log}");
    let label: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spool.join("identity.json")).unwrap()).unwrap();
    assert_eq!(label["database"], a_name.as_str(), "{label}");
    assert!(
        label["system_identifier"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{label}"
    );

    // Collector 2 on B with the same data directory refuses, naming both; B gets nothing.
    let b_before = count_trades(&b).await.unwrap();
    let mut c2 = collector(&b_url, feed, data.path());
    let (ok, log) = c2.wait_exit(Duration::from_secs(30));
    assert!(
        !ok,
        "collector 2 accepted a spool written for another database"
    );
    let b_name = db_name(&b_url);
    assert!(
        log.contains(&a_name) && log.contains(&b_name),
        "the error must name both databases: {log}"
    );
    assert!(log.contains("not replayed"), "{log}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count_trades(&b).await.unwrap(),
        b_before,
        "B got trades spooled for A"
    );
    assert!(segments(&spool) > 0, "the refused spool must stay");

    // Moved aside, B starts clean.
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(&spool, moved.path().join("spool")).unwrap();
    let mut c3 = collector(&b_url, feed, data.path());
    wait_until("trades in B", async || {
        count_trades(&b).await.unwrap() > b_before
    })
    .await;
    let (ok, log) = c3.sigterm_and_wait();
    assert!(ok, "{log}");

    // A is back; a collector on A with the moved spool replays it into A.
    pg::admin_execute(&format!(
        "ALTER DATABASE \"{a_name}\" WITH ALLOW_CONNECTIONS true"
    ))
    .await
    .unwrap();
    let a = connect(&a_url).await;
    let a_before = count_trades(&a).await.unwrap();
    let mut c4 = collector(&a_url, feed, moved.path());
    let moved_spool = moved.path().join("spool");
    let replayed = poll_until(async || segments(&moved_spool) == 0).await;
    let (ok, log) = c4.sigterm_and_wait();
    assert!(
        replayed,
        "timed out waiting for the moved spool replayed into A; collector 4 said:\n{log}"
    );
    assert!(ok, "{log}");
    assert!(count_trades(&a).await.unwrap() > a_before);
}
