//! Two `pricehub migrate` processes started together on one fresh PostgreSQL database
//! (two replicas' init containers, or the migration Job racing a manual run) must both
//! succeed and leave the schema applied exactly once. `pricehub migrate` holds
//! PostgreSQL's advisory lock for the migrator while it applies migrations; without it
//! the second process fails on the migrations table or half-created objects.

use crate::common;

use std::process::Output;
use std::sync::{Arc, Barrier};

use common::{pg, process::pricehub};
use pricehub::db::POSTGRES_MIGRATOR;

const ROUNDS: usize = 4;

fn migrate(url: &str, start: &Barrier) -> Output {
    let mut cmd = pricehub();
    cmd.args(["migrate", "--database-url", url]);
    start.wait();
    cmd.output().expect("run pricehub migrate")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_migrations_at_once_on_a_fresh_database_are_safe() {
    let expected: Vec<i64> = POSTGRES_MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    assert!(!expected.is_empty());

    for round in 0..ROUNDS {
        let Some(url) = pg::fresh_database(false).await else {
            return;
        };
        let url = url.expose().to_string();
        // Both processes are released by one barrier so they connect and reach the
        // migrator at the same moment, every round.
        let start = Arc::new(Barrier::new(2));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                std::thread::spawn(move || migrate(&url, &start))
            })
            .collect();
        for (i, run) in runs.into_iter().enumerate() {
            let out = run.join().unwrap();
            assert!(
                out.status.success(),
                "round {round}, process {i}: pricehub migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        let versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
        assert_eq!(
            versions, expected,
            "round {round}: each migration once, in order"
        );
        assert!(
            applied.iter().all(|(_, ok)| *ok),
            "round {round}: {applied:?}"
        );
        for table in ["ports", "regions", "prices", "orders"] {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(exists, "round {round}: table {table} missing after migrate");
        }
        pool.close().await;
        // A third run on the migrated database has nothing left to do and succeeds.
        let third = migrate(&url, &Barrier::new(1));
        assert!(
            third.status.success(),
            "{}",
            String::from_utf8_lossy(&third.stderr)
        );
    }
}
