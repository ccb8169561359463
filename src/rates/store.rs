//! Rates queries for both backends: the catalog (ports, regions), the daily series of a
//! set of lanes from the derived `price_daily` table, and the change generation.

use chrono::{Datelike, NaiveDate};
use sqlx::Row;

use super::PriceRow;
use super::catalog::{Catalog, Port, Region};
use crate::db::{Db, SQLITE_ROWS_PER_INSERT};

/// Sum and number of price samples on one day (summed over all lanes asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayAgg {
    /// Days since 0001-01-01 (chrono's `num_days_from_ce`).
    pub day: i32,
    pub total: i64,
    pub samples: i64,
}

pub fn day_number(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

pub async fn load_catalog(db: &Db) -> Result<Catalog, sqlx::Error> {
    let (regions, ports) = crate::db_run!(db, |pool| {
        let regions = sqlx::query("SELECT slug, name, parent_slug FROM regions")
            .fetch_all(pool)
            .await?;
        let ports = sqlx::query("SELECT code, name, parent_slug FROM ports")
            .fetch_all(pool)
            .await?;
        (
            regions
                .iter()
                .map(|r| Region {
                    slug: r.get(0),
                    name: r.get(1),
                    parent_slug: r.get(2),
                })
                .collect(),
            ports
                .iter()
                .map(|r| Port {
                    code: r.get(0),
                    name: r.get(1),
                    parent_slug: r.get(2),
                })
                .collect(),
        )
    });
    Ok(Catalog::new(regions, ports))
}

/// The whole daily series (sum and count per day, oldest first) over every lane from any
/// of `origs` to any of `dests`.
pub async fn load_series(
    db: &Db,
    origs: &[String],
    dests: &[String],
) -> Result<Vec<DayAgg>, sqlx::Error> {
    if origs.is_empty() || dests.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(NaiveDate, i64, i64)> = match db {
        Db::Postgres(pool) => {
            // The compacted aggregate plus the raw tail above the watermark, in one
            // statement (one snapshot), so a compaction in between cannot double count.
            // The raw tail: pricehub's uncompacted batches (all of prices_ingest_raw,
            // small, no index) and rows written to `prices` itself with a batch_seq
            // before those batches had a table of their own (BRIN). The compacted
            // batches in prices_ingested are not read here.
            sqlx::query_as(
                "WITH w AS (SELECT watermark FROM rates_compaction WHERE id = 1) \
                 SELECT day, SUM(total)::bigint, SUM(samples)::bigint FROM ( \
                   SELECT day, total, samples FROM price_daily \
                   WHERE orig_code = ANY($1) AND dest_code = ANY($2) \
                   UNION ALL \
                   SELECT day, price, 1 FROM prices_ingest_raw \
                   WHERE batch_seq > (SELECT watermark FROM w) \
                     AND orig_code = ANY($1) AND dest_code = ANY($2) \
                   UNION ALL \
                   SELECT day, price, 1 FROM ONLY prices \
                   WHERE batch_seq > (SELECT watermark FROM w) \
                     AND orig_code = ANY($1) AND dest_code = ANY($2)) x \
                 GROUP BY day ORDER BY day",
            )
            .bind(origs)
            .bind(dests)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            let o = serde_json::to_string(origs).expect("strings serialize");
            let d = serde_json::to_string(dests).expect("strings serialize");
            sqlx::query_as(
                "SELECT day, SUM(total), SUM(samples) FROM price_daily \
                 WHERE orig_code IN (SELECT value FROM json_each(?1)) \
                   AND dest_code IN (SELECT value FROM json_each(?2)) \
                 GROUP BY day ORDER BY day",
            )
            .bind(o)
            .bind(d)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(day, total, samples)| DayAgg {
            day: day_number(day),
            total,
            samples,
        })
        .collect())
}

/// The change counter bumped (by triggers) on every write to prices, ports or regions.
pub async fn generation(db: &Db) -> Result<i64, sqlx::Error> {
    let q = "SELECT generation FROM rates_generation WHERE id = 1";
    crate::db_run!(db, |pool| sqlx::query_scalar(q).fetch_one(pool).await)
}

/// Row counts of the rates tables: (regions, ports, prices).
pub async fn counts(db: &Db) -> Result<(i64, i64, i64), sqlx::Error> {
    let q = "SELECT (SELECT COUNT(*) FROM regions), (SELECT COUNT(*) FROM ports), (SELECT COUNT(*) FROM prices)";
    crate::db_run!(db, |pool| sqlx::query_as(q).fetch_one(pool).await)
}

/// Escapes a value for PostgreSQL's COPY text format.
fn copy_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// One price row as a line of COPY text format; `suffix` is appended as is (e.g.
/// `"\t<batch_seq>"` for an extra column).
pub fn push_copy_line(
    buf: &mut String,
    orig_code: &str,
    dest_code: &str,
    day: chrono::NaiveDate,
    price: i32,
    suffix: &str,
) {
    use std::fmt::Write;
    copy_escape(orig_code, buf);
    buf.push('\t');
    copy_escape(dest_code, buf);
    buf.push('\t');
    super::push_day(day, buf);
    let _ = writeln!(buf, "\t{price}{suffix}");
}

/// Writes price rows into `table` (columns orig_code, dest_code, day, price, and
/// batch_seq when given) with one `COPY … FROM STDIN` inside the caller's transaction.
pub async fn pg_copy_prices(
    conn: &mut sqlx::PgConnection,
    table: &str,
    rows: &[PriceRow],
    batch_seq: Option<i64>,
) -> Result<u64, sqlx::Error> {
    let columns = if batch_seq.is_some() {
        "orig_code, dest_code, day, price, batch_seq"
    } else {
        "orig_code, dest_code, day, price"
    };
    let suffix = batch_seq.map(|s| format!("\t{s}")).unwrap_or_default();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN"))
        .await?;
    let mut buf = String::with_capacity(1 << 20);
    for chunk in rows.chunks(16_384) {
        buf.clear();
        for p in chunk {
            push_copy_line(
                &mut buf,
                &p.orig_code,
                &p.dest_code,
                p.day,
                p.price,
                &suffix,
            );
        }
        copy.send(buf.as_bytes()).await?;
    }
    copy.finish().await
}

/// Writes price rows into `table` with multi-row INSERTs inside the caller's transaction.
pub async fn sqlite_insert_prices(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    rows: &[PriceRow],
) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "INSERT INTO {table} (orig_code, dest_code, day, price) "
        ));
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(&p.orig_code)
                .push_bind(&p.dest_code)
                .push_bind(p.day)
                .push_bind(p.price);
        });
        n += qb.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(n)
}
