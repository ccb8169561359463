//! Folds raw batch rows into `price_daily` in the background (PostgreSQL).
//!
//! Batches written by pricehub are stored raw (one COPY, no per-row derived work) with a
//! `batch_seq`; readers combine `price_daily` with the raw rows above the watermark in
//! one statement. This task moves the watermark forward: it aggregates the raw rows up
//! to the highest sequence number no transaction is still writing, upserts them into
//! `price_daily`, moves them from `prices_ingest_raw` to `prices_ingested`, and advances
//! the watermark in the same transaction — so what readers compute is the same before
//! and after, only cheaper.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Batch writers hold this shared; taking it exclusively proves none is in flight.
const WRITERS_LOCK: i64 = 7301;
/// Delete/update triggers hold this shared; compaction holds it exclusively.
const COMPACTION_LOCK: i64 = 7302;

/// One compaction step. Returns the (old, new) watermark when it moved.
pub async fn compact_once(pool: &PgPool) -> Result<Option<(i64, i64, u64)>, sqlx::Error> {
    // The highest sequence number that no open transaction holds: only when no writer
    // holds the shared lock is every number up to the sequence's value committed or gone.
    let safe: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN pg_try_advisory_xact_lock($1) THEN \
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pricehub_batch_seq) END",
    )
    .bind(WRITERS_LOCK)
    .fetch_one(pool)
    .await?;
    let Some(safe) = safe else { return Ok(None) };
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(COMPACTION_LOCK)
        .execute(&mut *tx)
        .await?;
    let watermark: i64 =
        sqlx::query_scalar("SELECT watermark FROM rates_compaction WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if safe <= watermark {
        tx.rollback().await?;
        return Ok(None);
    }
    let folded = sqlx::query(
        "INSERT INTO price_daily AS d (orig_code, dest_code, day, total, samples) \
         SELECT orig_code, dest_code, day, SUM(price), COUNT(*) FROM ( \
           SELECT orig_code, dest_code, day, price FROM prices_ingest_raw \
           WHERE batch_seq > $1 AND batch_seq <= $2 \
           UNION ALL \
           SELECT orig_code, dest_code, day, price FROM ONLY prices \
           WHERE batch_seq > $1 AND batch_seq <= $2) raw \
         GROUP BY orig_code, dest_code, day \
         ORDER BY orig_code, dest_code, day \
         ON CONFLICT (orig_code, dest_code, day) \
         DO UPDATE SET total = d.total + EXCLUDED.total, samples = d.samples + EXCLUDED.samples",
    )
    .bind(watermark)
    .bind(safe)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The folded batches leave the raw child (which readers scan whole) for the
    // compacted one, in the same transaction: readers see them raw or folded, never both.
    sqlx::query("SELECT set_config('pricehub.compacting', 'on', true)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "WITH moved AS (DELETE FROM prices_ingest_raw WHERE batch_seq <= $1 \
           RETURNING orig_code, dest_code, day, price, batch_seq) \
         INSERT INTO prices_ingested (orig_code, dest_code, day, price, batch_seq) \
         SELECT * FROM moved",
    )
    .bind(safe)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE rates_compaction SET watermark = $1 WHERE id = 1")
        .bind(safe)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some((watermark, safe, folded)))
}

/// Runs compaction every `every` until `shutdown`.
pub fn spawn(
    pool: PgPool,
    every: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    super::metrics::register_compaction();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let started = Instant::now();
            match compact_once(&pool).await {
                Ok(Some((from, to, groups))) => {
                    metrics::counter!("pricehub_rates_compactions_total").increment(1);
                    metrics::histogram!("pricehub_rates_compaction_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    tracing::debug!(
                        from,
                        to,
                        groups,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "compacted price batches"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    metrics::counter!("pricehub_rates_compaction_failures_total").increment(1);
                    tracing::warn!(error = %e, "price compaction failed; will retry");
                }
            }
        }
    })
}
