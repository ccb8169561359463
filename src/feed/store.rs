//! Feed storage for both backends: batch inserts of received trades and the read queries
//! behind `/instruments`.
//!
//! Writes: one transaction per batch. PostgreSQL gets `COPY trades … FROM STDIN (FORMAT
//! binary)`, the fastest bulk path it has; SQLite gets multi-row `INSERT`s.
//!
//! Idempotency: every trade carries its receipt key `(run_id, seq)`. On PostgreSQL the
//! batch's keys are recorded as ranges in `feed_receipts` by `pricehub_feed_commit` in the
//! same transaction, which also upserts `instruments` from per-symbol aggregates; when a
//! range was already committed (a replay of the spool after a crash, a retry after an
//! ambiguous commit) the transaction is rolled back and only the trades no committed
//! range covers are written (see the migration `20260401000001_feed_write_path.sql`).
//! SQLite keeps a unique index on the key with `ON CONFLICT DO NOTHING` and triggers for
//! `instruments`: it is the embedded backend, where per-row work is not the limit.
//! The result says how many rows were new.

use futures_util::TryStreamExt;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::Trade;
use crate::db::{Db, SQLITE_ROWS_PER_INSERT};

/// A trade as received by one collector run: the trade plus its receipt key.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// Random per collector process (see the migration for the dedupe design).
    pub run_id: i64,
    /// Arrival order within the run, from 0.
    pub seq: i64,
    /// When the collector decoded it, ms since the epoch.
    pub received_ms: i64,
    pub trade: Trade,
}

/// What one batch write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows actually inserted (duplicates of already stored receipts excluded).
    pub inserted: u64,
    /// Whether the conflict-tolerant path had to be used.
    pub replayed: bool,
}

/// Stores a batch atomically: all of it (minus rows already stored) or nothing.
pub async fn insert_batch(db: &Db, batch: &[Receipt]) -> Result<BatchOutcome, sqlx::Error> {
    if batch.is_empty() {
        return Ok(BatchOutcome {
            inserted: 0,
            replayed: false,
        });
    }
    // Two arms: PostgreSQL writes with binary COPY and `pricehub_feed_commit()` (receipt
    // ranges, instruments); SQLite with multi-row INSERTs, its unique key and triggers.
    match db {
        Db::Postgres(pool) => pg_insert_batch(pool, batch).await,
        Db::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let mut inserted = 0;
            for chunk in batch.chunks(SQLITE_ROWS_PER_INSERT) {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT INTO trades (symbol, ts_ms, price, size, run_id, seq, received_ms) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.trade.ticker.as_str())
                        .push_bind(r.trade.timestamp_ms as i64)
                        .push_bind(r.trade.price)
                        .push_bind(i64::from(r.trade.size))
                        .push_bind(r.run_id)
                        .push_bind(r.seq)
                        .push_bind(r.received_ms);
                });
                q.push(" ON CONFLICT (run_id, seq) DO NOTHING");
                inserted += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(BatchOutcome {
                inserted,
                replayed: inserted < batch.len() as u64,
            })
        }
    }
}

/// The receipt keys of a batch as maximal ranges of consecutive seqs per run, in
/// `(run_id, first_seq)` order; `None` when a key occurs twice in the batch.
#[derive(Debug, Default, PartialEq)]
struct Ranges {
    run_ids: Vec<i64>,
    firsts: Vec<i64>,
    lasts: Vec<i64>,
}

fn receipt_ranges(batch: &[Receipt]) -> Option<Ranges> {
    let mut keys: Vec<(i64, i64)> = batch.iter().map(|r| (r.run_id, r.seq)).collect();
    if !keys.is_sorted() {
        keys.sort_unstable();
    }
    let mut out = Ranges::default();
    for (run_id, seq) in keys {
        match (out.run_ids.last(), out.lasts.last_mut()) {
            (Some(&r), Some(last)) if r == run_id && seq == *last + 1 => *last = seq,
            (Some(&r), Some(last)) if r == run_id && seq <= *last => return None,
            _ => {
                out.run_ids.push(run_id);
                out.firsts.push(seq);
                out.lasts.push(seq);
            }
        }
    }
    Some(out)
}

/// Per-symbol aggregates of a batch for `instruments`: trade count and the latest trade
/// (greatest timestamp; among equal timestamps the one received last).
#[derive(Debug, Default, PartialEq)]
struct SymbolSummary {
    symbols: Vec<String>,
    counts: Vec<i64>,
    prices: Vec<f64>,
    ts_ms: Vec<i64>,
}

fn symbol_summary(batch: &[Receipt]) -> SymbolSummary {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out = SymbolSummary::default();
    for r in batch {
        let ts = r.trade.timestamp_ms as i64;
        match index.get(r.trade.ticker.as_str()) {
            Some(&k) => {
                out.counts[k] += 1;
                if ts >= out.ts_ms[k] {
                    out.ts_ms[k] = ts;
                    out.prices[k] = r.trade.price;
                }
            }
            None => {
                index.insert(r.trade.ticker.as_str(), out.symbols.len());
                out.symbols.push(r.trade.ticker.clone());
                out.counts.push(1);
                out.prices.push(r.trade.price);
                out.ts_ms.push(ts);
            }
        }
    }
    out
}

const COPY_COLUMNS: &str = "(symbol, ts_ms, price, size, run_id, seq, received_ms)";

async fn pg_insert_batch(
    pool: &sqlx::PgPool,
    batch: &[Receipt],
) -> Result<BatchOutcome, sqlx::Error> {
    // Fast path: COPY everything, then check and record the ranges under the run lock.
    if let Some(ranges) = receipt_ranges(batch) {
        let mut tx = pool.begin().await?;
        pg_copy(&mut tx, batch).await?;
        if pg_commit(&mut tx, &ranges, batch).await? {
            tx.commit().await?;
            return Ok(BatchOutcome {
                inserted: batch.len() as u64,
                replayed: false,
            });
        }
        tx.rollback().await?;
    }
    // Replay: lock the runs first, then write only what no committed range covers.
    let mut tx = pool.begin().await?;
    let mut run_ids: Vec<i64> = batch.iter().map(|r| r.run_id).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    sqlx::query("SELECT pricehub_feed_lock_runs($1)")
        .bind(&run_ids)
        .execute(&mut *tx)
        .await?;
    let committed: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT run_id, first_seq, last_seq FROM feed_receipts \
         WHERE run_id = ANY($1) ORDER BY run_id, first_seq",
    )
    .bind(&run_ids)
    .fetch_all(&mut *tx)
    .await?;
    let covered = |r: &Receipt| {
        let i = committed.partition_point(|&(run, first, _)| (run, first) <= (r.run_id, r.seq));
        i > 0 && {
            let (run, _, last) = committed[i - 1];
            run == r.run_id && r.seq <= last
        }
    };
    let mut seen = std::collections::HashSet::new();
    let fresh: Vec<Receipt> = batch
        .iter()
        .filter(|r| !covered(r) && seen.insert((r.run_id, r.seq)))
        .cloned()
        .collect();
    if !fresh.is_empty() {
        let ranges = receipt_ranges(&fresh).expect("keys were deduplicated");
        pg_copy(&mut tx, &fresh).await?;
        if !pg_commit(&mut tx, &ranges, &fresh).await? {
            return Err(sqlx::Error::Protocol(
                "receipt ranges overlap committed ones while holding the run lock".into(),
            ));
        }
    }
    tx.commit().await?;
    Ok(BatchOutcome {
        inserted: fresh.len() as u64,
        replayed: true,
    })
}

async fn pg_copy(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    batch: &[Receipt],
) -> Result<u64, sqlx::Error> {
    let data = copy_binary(batch);
    let mut copy = (**tx)
        .copy_in_raw(&format!(
            "COPY trades {COPY_COLUMNS} FROM STDIN (FORMAT binary)"
        ))
        .await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await
}

/// Records the ranges and the instruments update; false (nothing written) when a range
/// was already committed.
async fn pg_commit(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    ranges: &Ranges,
    batch: &[Receipt],
) -> Result<bool, sqlx::Error> {
    let s = symbol_summary(batch);
    sqlx::query_scalar("SELECT pricehub_feed_commit($1, $2, $3, $4, $5, $6, $7)")
        .bind(&ranges.run_ids)
        .bind(&ranges.firsts)
        .bind(&ranges.lasts)
        .bind(&s.symbols)
        .bind(&s.counts)
        .bind(&s.prices)
        .bind(&s.ts_ms)
        .fetch_one(&mut **tx)
        .await
}

/// The batch in PostgreSQL's binary COPY format: exact doubles, no text parsing.
fn copy_binary(batch: &[Receipt]) -> Vec<u8> {
    // Header, then per row: field count, and per field its length and big-endian bytes.
    let mut out = Vec::with_capacity(19 + batch.len() * 80 + 2);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0u32.to_be_bytes()); // flags
    out.extend_from_slice(&0u32.to_be_bytes()); // header extension length
    for r in batch {
        out.extend_from_slice(&7i16.to_be_bytes());
        let ticker = r.trade.ticker.as_bytes();
        out.extend_from_slice(&(ticker.len() as i32).to_be_bytes());
        out.extend_from_slice(ticker);
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&(r.trade.timestamp_ms as i64).to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&r.trade.price.to_be_bytes());
        for v in [i64::from(r.trade.size), r.run_id, r.seq, r.received_ms] {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// Checks that the database accepts writes (not a read-only replica, not refusing
/// connections): what the collector's readiness means by "database writable".
pub async fn probe_writable(db: &Db) -> Result<(), sqlx::Error> {
    // Two arms: PostgreSQL can be a read-only standby (asked); SQLite is writable when
    // its write lock can be taken.
    match db {
        Db::Postgres(pool) => {
            let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
                .fetch_one(pool)
                .await?;
            if read_only == "on" {
                return Err(sqlx::Error::Protocol(
                    "the database is read-only (a standby?)".into(),
                ));
            }
            Ok(())
        }
        Db::Sqlite(pool) => {
            // BEGIN IMMEDIATE takes the write lock; nothing is written.
            let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            tx.rollback().await
        }
    }
}

/// One row of `GET /instruments`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct InstrumentRow {
    pub symbol: String,
    pub last_price: f64,
    pub last_ts_ms: i64,
    pub ticks: i64,
}

pub async fn list_instruments(db: &Db) -> Result<Vec<InstrumentRow>, sqlx::Error> {
    let q = "SELECT symbol, last_price, last_ts_ms, ticks FROM instruments ORDER BY symbol";
    crate::db_run!(db, |pool| sqlx::query_as(q).fetch_all(pool).await)
}

pub async fn instrument(db: &Db, symbol: &str) -> Result<Option<InstrumentRow>, sqlx::Error> {
    let q = "SELECT symbol, last_price, last_ts_ms, ticks FROM instruments WHERE symbol = $1";
    crate::db_run!(db, |pool| sqlx::query_as(q)
        .bind(symbol)
        .fetch_optional(pool)
        .await)
}

/// One stored trade as the API serves it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TradeRow {
    pub id: i64,
    pub ts_ms: i64,
    pub price: f64,
    pub size: i64,
}

/// Trades of `symbol` with `from_ms <= ts_ms < to_ms`, newest first (ties by id), strictly
/// after the keyset position `before` = (ts_ms, id) when given, at most `limit` rows.
pub async fn trades_page(
    db: &Db,
    symbol: &str,
    from_ms: i64,
    to_ms: i64,
    before: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<TradeRow>, sqlx::Error> {
    let (bts, bid) = before.unwrap_or((i64::MAX, i64::MAX));
    let q = "SELECT id, ts_ms, price, size FROM trades \
             WHERE symbol = $1 AND ts_ms >= $2 AND ts_ms < $3 AND (ts_ms, id) < ($4, $5) \
             ORDER BY ts_ms DESC, id DESC LIMIT $6";
    crate::db_run!(db, |pool| {
        sqlx::query_as(q)
            .bind(symbol)
            .bind(from_ms)
            .bind(to_ms)
            .bind(bts)
            .bind(bid)
            .bind(limit)
            .fetch_all(pool)
            .await
    })
}

/// One OHLC candle; `start_ms` is the bucket start (a multiple of the interval).
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Candle {
    pub start_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Sum of the trade sizes.
    pub volume: i64,
    /// Number of trades.
    pub trades: i64,
}

/// Folds trades (in time order) into candles; the same code serves both backends.
#[derive(Default)]
struct CandleFold {
    interval_ms: i64,
    out: Vec<Candle>,
}

impl CandleFold {
    fn push(&mut self, ts_ms: i64, price: f64, size: i64) {
        let start_ms = ts_ms - ts_ms.rem_euclid(self.interval_ms);
        match self.out.last_mut() {
            Some(c) if c.start_ms == start_ms => {
                c.high = c.high.max(price);
                c.low = c.low.min(price);
                c.close = price;
                c.volume += size;
                c.trades += 1;
            }
            _ => self.out.push(Candle {
                start_ms,
                open: price,
                high: price,
                low: price,
                close: price,
                volume: size,
                trades: 1,
            }),
        }
    }
}

/// Candles of `symbol` over `from_ms <= ts_ms < to_ms`, oldest first; buckets without
/// trades are absent. Streams the rows, so memory is bounded by the number of candles.
pub async fn candles(
    db: &Db,
    symbol: &str,
    from_ms: i64,
    to_ms: i64,
    interval_ms: i64,
) -> Result<Vec<Candle>, sqlx::Error> {
    let q = "SELECT ts_ms, price, size FROM trades \
             WHERE symbol = $1 AND ts_ms >= $2 AND ts_ms < $3 ORDER BY ts_ms, id";
    let mut fold = CandleFold {
        interval_ms: interval_ms.max(1),
        out: Vec::new(),
    };
    crate::db_run!(db, |pool| {
        let mut rows = sqlx::query_as::<_, (i64, f64, i64)>(q)
            .bind(symbol)
            .bind(from_ms)
            .bind(to_ms)
            .fetch(pool);
        while let Some((ts, price, size)) = rows.try_next().await? {
            fold.push(ts, price, size);
        }
    });
    Ok(fold.out)
}

/// Number of stored trades (all symbols); for tests, benchmarks and logs.
pub async fn count_trades(db: &Db) -> Result<i64, sqlx::Error> {
    let q = "SELECT COUNT(*) FROM trades";
    crate::db_run!(db, |pool| sqlx::query_scalar(q).fetch_one(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candles_fold_open_high_low_close_volume() {
        let mut f = CandleFold {
            interval_ms: 60_000,
            out: Vec::new(),
        };
        for (ts, p, s) in [
            (60_000, 10.0, 1),
            (60_500, 12.0, 2),
            (119_999, 9.0, 3),
            (180_000, 11.0, 4),
        ] {
            f.push(ts, p, s);
        }
        assert_eq!(f.out.len(), 2);
        let c = &f.out[0];
        assert_eq!(
            (
                c.start_ms, c.open, c.high, c.low, c.close, c.volume, c.trades
            ),
            (60_000, 10.0, 12.0, 9.0, 9.0, 6, 3)
        );
        assert_eq!(f.out[1].start_ms, 180_000);
    }

    fn receipt(run_id: i64, seq: i64, ticker: &str, ts: u64, price: f64) -> Receipt {
        Receipt {
            run_id,
            seq,
            received_ms: 0,
            trade: Trade {
                timestamp_ms: ts,
                ticker: ticker.into(),
                price,
                size: 1,
            },
        }
    }

    #[test]
    fn receipt_ranges_are_maximal_per_run_and_refuse_repeats() {
        let keys = [(2, 5), (1, 3), (1, 1), (1, 2), (2, 6), (1, 7)];
        let batch: Vec<Receipt> = keys
            .iter()
            .map(|&(run, seq)| receipt(run, seq, "A", 1, 1.0))
            .collect();
        assert_eq!(
            receipt_ranges(&batch),
            Some(Ranges {
                run_ids: vec![1, 1, 2],
                firsts: vec![1, 7, 5],
                lasts: vec![3, 7, 6],
            })
        );
        let repeated = [receipt(1, 4, "A", 1, 1.0), receipt(1, 4, "A", 1, 1.0)];
        assert_eq!(receipt_ranges(&repeated), None);
    }

    #[test]
    fn symbol_summary_counts_and_takes_the_latest_trade() {
        let batch = [
            receipt(1, 0, "A", 10, 1.0),
            receipt(1, 1, "B", 10, 2.0),
            receipt(1, 2, "A", 12, 3.0),
            receipt(1, 3, "A", 11, 4.0),
            receipt(1, 4, "A", 12, 5.0),
        ];
        assert_eq!(
            symbol_summary(&batch),
            SymbolSummary {
                symbols: vec!["A".into(), "B".into()],
                counts: vec![4, 1],
                prices: vec![5.0, 2.0],
                ts_ms: vec![12, 10],
            }
        );
    }

    #[test]
    fn copy_binary_layout() {
        let r = Receipt {
            run_id: 1,
            seq: 2,
            received_ms: 3,
            trade: Trade {
                timestamp_ms: 4,
                ticker: "AAPL".into(),
                price: 1.5,
                size: 700,
            },
        };
        let b = copy_binary(&[r]);
        // header 19 + field count 2 + ticker 4+4 + six 8-byte fields of 4+8 + trailer 2
        assert_eq!(b.len(), 19 + 2 + 8 + 6 * 12 + 2);
        assert_eq!(&b[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&b[b.len() - 2..], &[0xff, 0xff]);
    }
}
