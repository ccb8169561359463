//! The rates feature's metrics (read cache, import, batch ingestion, compaction): their
//! descriptions, and the series that must exist from start-up.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub fn describe() {
    describe_counter!(
        "pricehub_rates_cache_hits_total",
        "Port-pair daily series served from memory"
    );
    describe_counter!(
        "pricehub_rates_cache_misses_total",
        "Port-pair daily series loaded from the database"
    );
    describe_counter!(
        "pricehub_rates_cache_invalidations_total",
        "Times the rates cache was dropped because prices, ports or regions changed"
    );
    describe_counter!(
        "pricehub_import_rows_total",
        "Rows written by `pricehub import`, by table"
    );
    describe_counter!(
        "pricehub_ingest_batches_total",
        "Price batches answered, by mode (sync, async) and outcome (committed, rejected, replayed, accepted)"
    );
    describe_counter!(
        "pricehub_ingest_rows_total",
        "Price rows committed by batch ingestion, by mode"
    );
    describe_histogram!(
        "pricehub_ingest_batch_duration_seconds",
        Unit::Seconds,
        "Time from receiving (sync) or claiming (async) a batch to its commit, by mode"
    );
    describe_gauge!(
        "pricehub_ingest_pending_batches",
        "Asynchronous batches accepted and not yet processed"
    );
    describe_gauge!(
        "pricehub_ingest_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest asynchronous batch not yet processed (0 when none)"
    );
    describe_counter!(
        "pricehub_rates_compactions_total",
        "Compaction steps that folded raw batch rows into the daily aggregates (PostgreSQL)"
    );
    describe_histogram!(
        "pricehub_rates_compaction_duration_seconds",
        Unit::Seconds,
        "Time of one compaction step that folded rows"
    );
    describe_counter!(
        "pricehub_rates_compaction_failures_total",
        "Compaction steps that failed (retried on the next tick)"
    );
    describe_gauge!(
        "pricehub_rates_compaction_backlog_batches",
        "Committed batches whose rows are not yet folded into the daily aggregates"
    );
}

/// Registers the ingestion counters at 0 (called when the API starts).
pub fn register() {
    for mode in ["sync", "async"] {
        for outcome in ["committed", "rejected"] {
            metrics::counter!("pricehub_ingest_batches_total", "mode" => mode, "outcome" => outcome)
                .increment(0);
        }
        metrics::counter!("pricehub_ingest_rows_total", "mode" => mode).increment(0);
    }
}

/// Registers the compaction series (called when the compaction task starts).
pub fn register_compaction() {
    metrics::counter!("pricehub_rates_compactions_total").increment(0);
    metrics::counter!("pricehub_rates_compaction_failures_total").increment(0);
}

/// Publishes the ingestion backlog gauges from the database (called when `/metrics` is
/// scraped, so they are current even while the worker is busy with a long batch).
pub async fn record(db: &crate::db::Db) {
    use crate::db::Db;
    let sql = db.backend().sql(
        "SELECT COUNT(*), COALESCE(EXTRACT(EPOCH FROM now() - MIN(created_at))::float8, 0) \
                 FROM ingest_batches WHERE status = 'pending'",
        "SELECT COUNT(*), COALESCE((julianday('now') - julianday(MIN(created_at))) * 86400.0, 0.0) \
                 FROM ingest_batches WHERE status = 'pending'",
    );
    let pending: Result<(i64, f64), sqlx::Error> =
        crate::db_run!(db, |p| sqlx::query_as(sql).fetch_one(p).await);
    match pending {
        Ok((n, oldest)) => {
            metrics::gauge!("pricehub_ingest_pending_batches").set(n as f64);
            metrics::gauge!("pricehub_ingest_oldest_pending_seconds").set(oldest.max(0.0));
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the ingest backlog for /metrics"),
    }
    if let Db::Postgres(p) = db {
        let backlog: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT GREATEST((SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pricehub_batch_seq) \
             - (SELECT watermark FROM rates_compaction WHERE id = 1), 0)",
        )
        .fetch_one(p)
        .await;
        match backlog {
            Ok(n) => metrics::gauge!("pricehub_rates_compaction_backlog_batches").set(n as f64),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the compaction backlog for /metrics")
            }
        }
    }
}
