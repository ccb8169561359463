//! The PostgreSQL write path against an oracle: whatever mix of batches (raw until
//! compacted), compactions, external inserts, updates and deletes has happened, the
//! series pricehub reads equals a plain GROUP BY over `prices`.

use crate::common;

use common::{Backend, fresh_db, import_2021};
use pricehub::db::{Db, Tx};
use pricehub::rates::PriceRow;
use pricehub::rates::compaction::compact_once;
use pricehub::rates::ingest::store::insert_prices;
use pricehub::rates::store::{DayAgg, day_number, load_series};

/// Location pairs checked: ports and regions, both directions.
const PAIRS: &[(&[&str], &[&str])] = &[
    (&["CNSGH"], &["NOOSL"]),
    (&["CNGGZ"], &["EETLL"]),
    (&["CNSGH", "CNGGZ", "CNYTN"], &["NOOSL", "EETLL", "FIHEL"]),
];

async fn oracle(pool: &sqlx::PgPool, o: &[String], d: &[String]) -> Vec<DayAgg> {
    let rows: Vec<(chrono::NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT day, SUM(price)::bigint, COUNT(*) FROM prices \
         WHERE orig_code = ANY($1) AND dest_code = ANY($2) GROUP BY day ORDER BY day",
    )
    .bind(o)
    .bind(d)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(day, total, samples)| DayAgg {
            day: day_number(day),
            total,
            samples,
        })
        .collect()
}

async fn assert_consistent(db: &Db, when: &str) {
    let Db::Postgres(pool) = db else {
        unreachable!()
    };
    for (o, d) in PAIRS {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
        let got = load_series(db, &o, &d).await.unwrap();
        assert_eq!(got, oracle(pool, &o, &d).await, "{when}: {o:?} -> {d:?}");
    }
}

fn batch(seed: i32, n: usize) -> Vec<PriceRow> {
    let origs = ["CNSGH", "CNGGZ", "CNYTN"];
    let dests = ["NOOSL", "EETLL", "FIHEL"];
    (0..n)
        .map(|i| PriceRow {
            orig_code: origs[(i + seed as usize) % 3].into(),
            dest_code: dests[(i / 3) % 3].into(),
            day: chrono::NaiveDate::from_ymd_opt(2021, 1, 1 + (i % 40) as u32 % 31).unwrap(),
            price: 100 + seed * 10 + (i % 13) as i32,
        })
        .collect()
}

async fn write_batch(db: &Db, rows: &[PriceRow]) {
    let mut tx = db.begin().await.unwrap();
    insert_prices(&mut tx, rows).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_equal_an_oracle_through_batches_compactions_and_external_writes() {
    let Some(t) = fresh_db(Backend::Postgres).await else {
        return;
    };
    if !import_2021(&t.db).await {
        return;
    }
    let db = &t.db;
    let Db::Postgres(pool) = db else {
        unreachable!()
    };
    assert_consistent(db, "after import").await;

    write_batch(db, &batch(1, 5000)).await;
    assert_consistent(db, "a raw batch").await;
    let moved = compact_once(pool).await.unwrap();
    assert!(moved.is_some_and(|(from, to, _)| to > from), "{moved:?}");
    assert_consistent(db, "after compaction").await;
    assert_eq!(
        compact_once(pool).await.unwrap(),
        None,
        "nothing left to compact"
    );

    write_batch(db, &batch(2, 3000)).await;
    // External writers: an insert without batch_seq, an update across raw and compacted
    // rows, and deletes of compacted, raw and original rows.
    for sql in [
        "INSERT INTO prices (orig_code, dest_code, day, price) VALUES ('CNSGH', 'NOOSL', '2021-01-05', 999), ('CNGGZ', 'EETLL', '2021-01-05', 1)",
        "UPDATE prices SET price = price + 7 WHERE orig_code = 'CNSGH' AND dest_code = 'NOOSL' AND day = '2021-01-07'",
        "DELETE FROM prices WHERE orig_code = 'CNGGZ' AND dest_code = 'EETLL' AND day = '2021-01-03'",
        "DELETE FROM prices WHERE batch_seq IS NOT NULL AND price % 5 = 0",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
        assert_consistent(db, sql).await;
    }
    compact_once(pool).await.unwrap();
    assert_consistent(db, "after the second compaction").await;

    // Batches, compactions and deletes racing each other.
    let mut tasks = Vec::new();
    for seed in 3..9 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            write_batch(&db, &batch(seed, 2000)).await
        }));
    }
    for _ in 0..4 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                compact_once(&pool).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }));
    }
    let p = pool.clone();
    tasks.push(tokio::spawn(async move {
        for day in 10..20 {
            sqlx::query(&format!(
                "DELETE FROM prices WHERE orig_code = 'CNYTN' AND day = '2021-01-{day}'"
            ))
            .execute(&p)
            .await
            .unwrap();
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
    assert_consistent(db, "after the race").await;
    while compact_once(pool).await.unwrap().is_some() {}
    assert_consistent(db, "fully compacted").await;
    let raw: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM prices WHERE batch_seq > (SELECT watermark FROM rates_compaction)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(raw, 0);

    // Compacted batches live in prices_ingested, and the raw child is empty again.
    let (raw_child, compacted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM prices_ingest_raw), (SELECT COUNT(*) FROM prices_ingested)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(raw_child, 0);
    assert!(compacted > 0);
    // Statements addressed to the children: the raw one is the compactor's, the
    // compacted one keeps price_daily right like the parent.
    write_batch(db, &batch(10, 500)).await;
    let err = sqlx::query("DELETE FROM prices_ingest_raw")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("through prices"), "{err}");
    for sql in [
        "DELETE FROM prices_ingested WHERE price % 7 = 0",
        "UPDATE prices_ingested SET price = price + 1 WHERE day = '2021-01-02'",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
        assert_consistent(db, sql).await;
    }
    while compact_once(pool).await.unwrap().is_some() {}
    assert_consistent(db, "compacted again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referential_integrity_holds_without_per_row_foreign_keys() {
    let Some(t) = fresh_db(Backend::Postgres).await else {
        return;
    };
    if !import_2021(&t.db).await {
        return;
    }
    let Db::Postgres(pool) = &t.db else {
        unreachable!()
    };
    let err = sqlx::query("INSERT INTO prices (orig_code, dest_code, day, price) VALUES ('NOPE1', 'EETLL', '2021-01-01', 5)")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown ports: NOPE1"), "{err}");
    let err = sqlx::query("DELETE FROM ports WHERE code = 'EETLL'")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still referenced"), "{err}");
    let err = sqlx::query("UPDATE ports SET code = 'EETLX' WHERE code = 'EETLL'")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still referenced"), "{err}");
    // A port nobody refers to can go.
    sqlx::query(
        "INSERT INTO ports (code, name, parent_slug) VALUES ('ZZZZZ', 'Nowhere', 'baltic')",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM ports WHERE code = 'ZZZZZ'")
        .execute(pool)
        .await
        .unwrap();
    // pricehub's own batch path refuses a port that vanished after validation.
    let mut tx = t.db.begin().await.unwrap();
    let rows = vec![PriceRow {
        orig_code: "ZZZZZ".into(),
        dest_code: "EETLL".into(),
        day: chrono::NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
        price: 1,
    }];
    let err = insert_prices(&mut tx, &rows).await.unwrap_err();
    assert!(err.to_string().contains("ZZZZZ"), "{err}");
    if let Tx::Postgres(t) = tx {
        t.rollback().await.unwrap();
    }
}
