//! `pricehub import`: loads a parsed rates dump into either backend in one transaction.
//!
//! Idempotent by construction: regions and ports are upserted, and prices are treated as
//! a multiset — a row is inserted only as many times as the dump has it beyond what the
//! database already holds for that lane, day and price. Importing the same dump twice, or
//! importing it into a database loaded with `psql < rates.sql`, writes nothing.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{Postgres, Sqlite, Transaction};

use super::dump::{self, Dump};
use super::store;
use crate::db::{Db, SQLITE_ROWS_PER_INSERT, Tx};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub regions: usize,
    pub regions_written: u64,
    pub ports: usize,
    pub ports_written: u64,
    pub prices: usize,
    pub prices_inserted: u64,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "regions: {} in file, {} written; ports: {} in file, {} written; prices: {} in file, {} inserted",
            self.regions,
            self.regions_written,
            self.ports,
            self.ports_written,
            self.prices,
            self.prices_inserted
        )
    }
}

/// Parses `path` (with a progress bar when stderr is a terminal) and loads it.
pub async fn import_file(db: &Db, path: &Path) -> anyhow::Result<ImportReport> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("parsing");
    let shown = path.display().to_string();
    let parse_bar = bar.clone();
    let dump = tokio::task::spawn_blocking(move || {
        dump::parse(BufReader::with_capacity(1 << 20, file), |b| {
            parse_bar.set_position(b)
        })
    })
    .await
    .context("parser task failed")?
    .map_err(|e| anyhow::anyhow!("{shown}:{}: {} (nothing was imported)", e.line, e.message))?;
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
    );
    bar.set_message(format!("loading {} prices", dump.prices.len()));
    bar.enable_steady_tick(Duration::from_millis(100));
    let result = load(db, &dump).await;
    bar.finish_and_clear();
    result.with_context(|| format!("importing {shown} failed; the database was left as it was"))
}

/// Loads a dump in one transaction.
pub async fn load(db: &Db, dump: &Dump) -> Result<ImportReport, sqlx::Error> {
    let started = Instant::now();
    let mut report = ImportReport::default();
    let mut tx = db.begin().await?;
    for (places, n) in [Places::regions(dump), Places::ports(dump)]
        .iter()
        .zip([&mut report.regions_written, &mut report.ports_written])
    {
        if places.keys.is_empty() {
            continue;
        }
        *n = match &mut tx {
            Tx::Postgres(t) => pg_upsert_places(t, places).await?,
            Tx::Sqlite(t) => sqlite_upsert_places(t, places).await?,
        };
    }
    if !dump.prices.is_empty() {
        report.prices_inserted = match &mut tx {
            Tx::Postgres(t) => pg_add_prices(t, dump).await?,
            Tx::Sqlite(t) => sqlite_add_prices(t, dump).await?,
        };
    }
    tx.commit().await?;
    report.regions = dump.regions.len();
    report.ports = dump.ports.len();
    report.prices = dump.prices.len();
    for (table, n) in [
        ("regions", report.regions_written),
        ("ports", report.ports_written),
        ("prices", report.prices_inserted),
    ] {
        metrics::counter!("pricehub_import_rows_total", "table" => table).increment(n);
    }
    tracing::info!(%report, elapsed_ms = started.elapsed().as_millis() as u64, "import committed");
    Ok(report)
}

/// The rows of `regions` (keyed by `slug`) or `ports` (keyed by `code`) as columns:
/// both tables are upserted the same way.
struct Places<'a> {
    table: &'static str,
    key: &'static str,
    keys: Vec<&'a str>,
    names: Vec<&'a str>,
    parents: Vec<Option<&'a str>>,
}

impl<'a> Places<'a> {
    fn regions(dump: &'a Dump) -> Places<'a> {
        let r = &dump.regions;
        Places {
            table: "regions",
            key: "slug",
            keys: r.iter().map(|r| r.slug.as_str()).collect(),
            names: r.iter().map(|r| r.name.as_str()).collect(),
            parents: r.iter().map(|r| r.parent_slug.as_deref()).collect(),
        }
    }

    fn ports(dump: &'a Dump) -> Places<'a> {
        let p = &dump.ports;
        Places {
            table: "ports",
            key: "code",
            keys: p.iter().map(|p| p.code.as_str()).collect(),
            names: p.iter().map(|p| p.name.as_str()).collect(),
            parents: p.iter().map(|p| Some(p.parent_slug.as_str())).collect(),
        }
    }
}

/// Upserts `places`; returns the rows written (inserted or changed).
async fn pg_upsert_places(
    tx: &mut Transaction<'_, Postgres>,
    places: &Places<'_>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(&format!(
        "INSERT INTO {t} ({k}, name, parent_slug) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
         ON CONFLICT ({k}) DO UPDATE SET name = EXCLUDED.name, parent_slug = EXCLUDED.parent_slug \
         WHERE ({t}.name, {t}.parent_slug) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.parent_slug)",
        t = places.table,
        k = places.key,
    ))
    .bind(&places.keys)
    .bind(&places.names)
    .bind(&places.parents)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Upserts `places` in multi-row statements; returns the rows written.
async fn sqlite_upsert_places(
    tx: &mut Transaction<'_, Sqlite>,
    places: &Places<'_>,
) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    let rows: Vec<usize> = (0..places.keys.len()).collect();
    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
        let mut qb = sqlx::QueryBuilder::<Sqlite>::new(format!(
            "INSERT INTO {} ({}, name, parent_slug) ",
            places.table, places.key
        ));
        qb.push_values(chunk, |mut b, &i| {
            b.push_bind(places.keys[i])
                .push_bind(places.names[i])
                .push_bind(places.parents[i]);
        });
        qb.push(format!(
            " ON CONFLICT ({k}) DO UPDATE SET name = excluded.name, parent_slug = excluded.parent_slug \
             WHERE {t}.name IS NOT excluded.name OR {t}.parent_slug IS NOT excluded.parent_slug",
            t = places.table,
            k = places.key,
        ));
        n += qb.build().execute(&mut **tx).await?.rows_affected();
    }
    Ok(n)
}

/// Inserts the dump's prices that the database does not hold yet, counted as a
/// multiset (a second import of the same dump adds nothing); returns the rows added.
async fn pg_add_prices(
    tx: &mut Transaction<'_, Postgres>,
    dump: &Dump,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "CREATE TEMP TABLE import_prices (orig_code text NOT NULL, dest_code text NOT NULL, \
         day date NOT NULL, price integer NOT NULL) ON COMMIT DROP",
    )
    .execute(&mut **tx)
    .await?;
    store::pg_copy_prices(tx, "import_prices", &dump.prices, None).await?;
    // Hash joins against the lanes and days the dump touches; no index on prices needed.
    Ok(sqlx::query(
        "INSERT INTO prices (orig_code, dest_code, day, price) \
         SELECT s.orig_code, s.dest_code, s.day, s.price \
         FROM (SELECT orig_code, dest_code, day, price, COUNT(*) AS n \
               FROM import_prices GROUP BY orig_code, dest_code, day, price) s \
         LEFT JOIN (SELECT p.orig_code, p.dest_code, p.day, p.price, COUNT(*) AS m \
                    FROM prices p \
                    JOIN (SELECT DISTINCT orig_code, dest_code, day FROM import_prices) k \
                      ON k.orig_code = p.orig_code AND k.dest_code = p.dest_code AND k.day = p.day \
                    GROUP BY p.orig_code, p.dest_code, p.day, p.price) e \
           ON e.orig_code = s.orig_code AND e.dest_code = s.dest_code AND e.day = s.day AND e.price = s.price \
         CROSS JOIN LATERAL generate_series(1, s.n - COALESCE(e.m, 0)) \
         WHERE s.n > COALESCE(e.m, 0)",
    )
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// [`pg_add_prices`] on SQLite.
async fn sqlite_add_prices(
    tx: &mut Transaction<'_, Sqlite>,
    dump: &Dump,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS import_prices (orig_code TEXT NOT NULL, dest_code TEXT NOT NULL, \
         day DATE NOT NULL, price INTEGER NOT NULL)",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM temp.import_prices")
        .execute(&mut **tx)
        .await?;
    store::sqlite_insert_prices(tx, "temp.import_prices", &dump.prices).await?;
    // How many more copies of each (lane, day, price) the dump has than the database,
    // materialised before inserting so the counts cannot see the rows being added.
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS import_need (orig_code TEXT, dest_code TEXT, day DATE, price INTEGER, k INTEGER)",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM temp.import_need")
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO temp.import_need (orig_code, dest_code, day, price, k) \
         SELECT s.orig_code, s.dest_code, s.day, s.price, s.n - \
           (SELECT COUNT(*) FROM prices p WHERE p.orig_code = s.orig_code AND p.dest_code = s.dest_code \
              AND p.day = s.day AND p.price = s.price) \
         FROM (SELECT orig_code, dest_code, day, price, COUNT(*) AS n FROM temp.import_prices \
               GROUP BY orig_code, dest_code, day, price) s",
    )
    .execute(&mut **tx)
    .await?;
    let added = sqlx::query(
        "WITH RECURSIVE copies(orig_code, dest_code, day, price, k) AS ( \
           SELECT orig_code, dest_code, day, price, k FROM temp.import_need WHERE k > 0 \
           UNION ALL SELECT orig_code, dest_code, day, price, k - 1 FROM copies WHERE k > 1) \
         INSERT INTO prices (orig_code, dest_code, day, price) \
         SELECT orig_code, dest_code, day, price FROM copies",
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DROP TABLE temp.import_prices")
        .execute(&mut **tx)
        .await?;
    sqlx::query("DROP TABLE temp.import_need")
        .execute(&mut **tx)
        .await?;
    Ok(added)
}
