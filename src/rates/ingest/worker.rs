//! The worker that commits asynchronous batches. Several may run (one per API replica).
//!
//! A batch is first *claimed* in a short transaction of its own that commits: its
//! `attempts` goes up and its next attempt is pushed back (exponential backoff), so the
//! count survives a failed, crashed or killed attempt, and the batches behind a failing
//! one go first. It is then processed in a second transaction that locks it
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL: other workers skip it), writes its rows and
//! its final status together, and commits — so a crash or deploy in between leaves it
//! pending, never lost, never half applied.
//!
//! An attempt ends one of three ways (`pricehub_ingest_batch_attempts_total{outcome}`):
//! `committed`; `rejected` — invalid rows, or an error that retrying cannot fix, or the
//! last of `--ingest-max-attempts` attempts failed (these last two are *dead-lettered*,
//! `pricehub_ingest_batches_dead_lettered_total`); or `retry` — a transient failure
//! (database unavailable, serialization failure, lock timeout), tried again later. A
//! rejected batch keeps a one-sentence `reason` and its row errors for `GET /batches/{id}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::parse::{Parsed, Rejection};
use super::store::{self, Claimed, Finish};
use super::{Ingest, rejection_problem};
use crate::config::IngestArgs;
use crate::http::problem::{Problem, is_transient_db_error};

/// How often and how patiently a failing batch is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before a batch that keeps failing is rejected.
    pub max_attempts: i32,
    /// Delay after the first failed attempt; doubled after each further one.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
}

impl RetryPolicy {
    /// Delay before the attempt after attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: i32) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

impl From<&IngestArgs> for RetryPolicy {
    fn from(a: &IngestArgs) -> Self {
        RetryPolicy {
            max_attempts: a.ingest_max_attempts.min(i32::MAX as u32) as i32,
            base: Duration::from_millis(a.ingest_retry_base_ms),
            max: Duration::from_millis(a.ingest_retry_max_ms.max(a.ingest_retry_base_ms)),
        }
    }
}

/// Names the worker's metrics and creates their series at 0, so that rates and alerts
/// work before the first event.
pub fn register_metrics() {
    metrics::describe_counter!(
        "pricehub_ingest_batch_attempts_total",
        "Attempts of the async batch worker, by outcome (committed, rejected, retry)"
    );
    metrics::describe_counter!(
        "pricehub_ingest_batches_dead_lettered_total",
        "Async batches ended rejected after a non-transient error or too many attempts"
    );
    for outcome in ["committed", "rejected", "retry"] {
        metrics::counter!("pricehub_ingest_batch_attempts_total", "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!("pricehub_ingest_batches_dead_lettered_total").increment(0);
}

/// Why an attempt did not finish the batch.
enum Failure {
    /// Worth retrying later (the database was unavailable, a lock or serialization
    /// conflict).
    Transient(String),
    /// Retrying cannot help: the batch is rejected now.
    Permanent(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        if is_transient_db_error(&e) {
            Failure::Transient(e.to_string())
        } else {
            Failure::Permanent(format!("the database refused the batch: {e}"))
        }
    }
}

impl From<store::WriteError> for Failure {
    fn from(e: store::WriteError) -> Failure {
        match e {
            store::WriteError::Db(e) => e.into(),
            e @ store::WriteError::UnknownPorts(_) => Failure::Permanent(e.to_string()),
        }
    }
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Failure {
        if p.status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
            Failure::Transient(p.detail)
        } else {
            Failure::Permanent(p.detail)
        }
    }
}

/// What an attempt did with the batch it claimed.
enum Attempt {
    Committed(usize),
    /// Refused for its content: reason and row errors.
    Rejected(String),
    /// Another worker has it, or it is no longer pending.
    Gone,
}

impl Ingest {
    /// Processes the oldest batch that is due, if any. Returns whether there was one.
    /// `Err` only when the queue itself cannot be read or written (database down).
    pub async fn process_one(&self) -> anyhow::Result<bool> {
        let started = Instant::now();
        let retry = self.retry;
        let Some(batch) = store::claim_next(&self.db, |n| retry.delay(n)).await? else {
            return Ok(false);
        };
        // Every line about this batch carries its id (the accepting request logged the same
        // id with its request id: "async batch accepted").
        let span = tracing::Span::current();
        span.record("batch_id", tracing::field::display(&batch.id));
        span.record("attempt", batch.attempts);
        if batch.attempts > retry.max_attempts {
            // Earlier attempts never finished (the process died with the batch in hand).
            let last = batch
                .last_error
                .clone()
                .unwrap_or_else(|| "the worker stopped while processing it".into());
            let reason = format!(
                "gave up after {} attempts that did not finish; last error: {last}",
                retry.max_attempts
            );
            self.dead_letter(&batch, &reason).await?;
            return Ok(true);
        }
        match self.attempt(&batch.id, started).await {
            Ok(Attempt::Committed(rows)) => {
                self.rates.invalidate();
                metrics::counter!("pricehub_ingest_rows_total", "mode" => "async")
                    .increment(rows as u64);
                metrics::histogram!("pricehub_ingest_batch_duration_seconds", "mode" => "async")
                    .record(started.elapsed().as_secs_f64());
                count_end("committed");
                tracing::info!(batch_id = %batch.id, rows, attempts = batch.attempts, elapsed_ms = started.elapsed().as_millis() as u64, "async batch committed");
            }
            Ok(Attempt::Rejected(reason)) => {
                count_end("rejected");
                tracing::info!(batch_id = %batch.id, reason, "async batch rejected");
            }
            Ok(Attempt::Gone) => {}
            Err(Failure::Permanent(error)) => {
                self.dead_letter(&batch, &error).await?;
            }
            Err(Failure::Transient(error)) if batch.attempts >= retry.max_attempts => {
                let reason = format!(
                    "gave up after {} attempts; last error: {error}",
                    batch.attempts
                );
                self.dead_letter(&batch, &reason).await?;
            }
            Err(Failure::Transient(error)) => {
                metrics::counter!("pricehub_ingest_batch_attempts_total", "outcome" => "retry")
                    .increment(1);
                let next_in = retry.delay(batch.attempts);
                tracing::warn!(batch_id = %batch.id, attempts = batch.attempts, error, retry_in_ms = next_in.as_millis() as u64, "async batch attempt failed; it will be retried");
                store::record_failure(&self.db, &batch.id, &error).await?;
            }
        }
        Ok(true)
    }

    /// One attempt at a claimed batch, in one transaction.
    async fn attempt(&self, id: &str, started: Instant) -> Result<Attempt, Failure> {
        let mut tx = self.db.begin().await?;
        let Some((format, payload)) = store::lock_claimed(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(Attempt::Gone);
        };
        let parsed = self.validate(Bytes::from(payload), format).await?;
        let end = match parsed {
            Parsed::Rows(rows) => {
                store::insert_prices(&mut tx, &rows).await?;
                store::finish_batch(&mut tx, id, Finish::Committed { rows: rows.len() }).await?;
                Attempt::Committed(rows.len())
            }
            Parsed::Rejected(r) => {
                let reason = rejection_problem(&r).detail;
                store::finish_batch(
                    &mut tx,
                    id,
                    Finish::Rejected {
                        rows: r.row_count,
                        reason: &reason,
                        rejection: &r,
                    },
                )
                .await?;
                Attempt::Rejected(reason)
            }
            Parsed::TooManyRows { max } => {
                let reason = format!("a batch may have at most {max} rows; nothing was stored");
                let r = Rejection::whole(reason.clone());
                store::finish_batch(
                    &mut tx,
                    id,
                    Finish::Rejected {
                        rows: 0,
                        reason: &reason,
                        rejection: &r,
                    },
                )
                .await?;
                Attempt::Rejected(reason)
            }
        };
        if let Some(delay) = super::fault_delay_before_commit() {
            tracing::warn!(
                delay_ms = delay.as_millis() as u64,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "fault injection: delaying the batch commit"
            );
            tokio::time::sleep(delay).await;
        }
        tx.commit().await?;
        Ok(end)
    }

    /// Ends a batch `rejected` because of an error, not its rows: a dead letter.
    async fn dead_letter(&self, batch: &Claimed, reason: &str) -> anyhow::Result<()> {
        let rejection = Rejection::whole(reason);
        let mut tx = self.db.begin().await?;
        store::finish_batch(
            &mut tx,
            &batch.id,
            Finish::Rejected {
                rows: 0,
                reason,
                rejection: &rejection,
            },
        )
        .await?;
        tx.commit().await?;
        count_end("rejected");
        metrics::counter!("pricehub_ingest_batches_dead_lettered_total").increment(1);
        tracing::error!(batch_id = %batch.id, attempts = batch.attempts, reason, "async batch dead-lettered: rejected without being applied");
        Ok(())
    }

    /// Runs until `shutdown`, finishing the batch in hand first.
    pub fn spawn_worker(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let ingest = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let span = tracing::info_span!(
                    "ingest_batch",
                    batch_id = tracing::field::Empty,
                    attempt = tracing::field::Empty
                );
                match ingest.process_one().instrument(span).await {
                    Ok(true) => {
                        backoff = Duration::from_millis(200);
                        continue;
                    }
                    Ok(false) => {
                        if let Ok(n) = store::pending_count(&ingest.db).await {
                            metrics::gauge!("pricehub_ingest_pending_batches").set(n as f64);
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = ingest.wake.notified() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "batch worker failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
    }
}

/// Counts an attempt that ended the batch, in both the attempt and the batch metrics.
fn count_end(outcome: &'static str) {
    metrics::counter!("pricehub_ingest_batch_attempts_total", "outcome" => outcome).increment(1);
    metrics::counter!("pricehub_ingest_batches_total", "mode" => "async", "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(500),
            max: Duration::from_secs(3),
        };
        let d: Vec<u128> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(d, [500, 1000, 2000, 3000, 3000, 3000]);
        assert_eq!(p.delay(i32::MAX), Duration::from_secs(3));
        assert_eq!(p.delay(0), Duration::from_millis(500));
    }
}
