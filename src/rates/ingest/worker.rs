//! The worker that commits asynchronous batches. Several may run (one per API replica):
//! each batch is claimed with a row lock inside the transaction that commits it, so a
//! crash or deploy in between releases the claim and the batch is simply picked up again —
//! never lost, never half applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::parse::{Parsed, Rejection};
use super::{Ingest, store};

/// After this many claims that did not finish (crashes), a batch is rejected instead of
/// being retried forever.
const MAX_ATTEMPTS: i32 = 5;

impl Ingest {
    /// Processes the oldest pending batch, if any. Returns whether there was one.
    pub async fn process_one(&self) -> anyhow::Result<bool> {
        let started = Instant::now();
        let mut tx = self.db.begin().await?;
        let Some(batch) = store::claim_pending(&mut tx).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // Every line about this batch carries its id (the accepting request logged the same
        // id with its request id: "async batch accepted").
        let span = tracing::Span::current();
        span.record("batch_id", tracing::field::display(&batch.id));
        span.record("attempt", batch.attempts);
        let parsed = if batch.attempts > MAX_ATTEMPTS {
            Parsed::Rejected(Rejection::whole(format!(
                "processing did not finish after {MAX_ATTEMPTS} attempts"
            )))
        } else {
            self.validate(Bytes::from(batch.payload), batch.format)
                .await
                .map_err(|p| anyhow::anyhow!("{p}"))?
        };
        let committed = match &parsed {
            Parsed::Rows(rows) => {
                store::insert_prices(&mut tx, rows).await?;
                store::finish_batch(&mut tx, &batch.id, rows.len(), None).await?;
                Some(rows.len())
            }
            Parsed::Rejected(r) => {
                store::finish_batch(&mut tx, &batch.id, r.row_count, Some(r)).await?;
                None
            }
            Parsed::TooManyRows { max } => {
                let r = Rejection::whole(format!("a batch may have at most {max} rows"));
                store::finish_batch(&mut tx, &batch.id, 0, Some(&r)).await?;
                None
            }
        };
        if let Some(delay) = super::fault_delay_before_commit() {
            tracing::warn!(
                delay_ms = delay.as_millis() as u64,
                "fault injection: delaying the batch commit"
            );
            tokio::time::sleep(delay).await;
        }
        tx.commit().await?;
        let outcome = match committed {
            Some(n) => {
                self.rates.invalidate();
                metrics::counter!("pricehub_ingest_rows_total", "mode" => "async")
                    .increment(n as u64);
                metrics::histogram!("pricehub_ingest_batch_duration_seconds", "mode" => "async")
                    .record(started.elapsed().as_secs_f64());
                "committed"
            }
            None => "rejected",
        };
        metrics::counter!("pricehub_ingest_batches_total", "mode" => "async", "outcome" => outcome)
            .increment(1);
        tracing::info!(batch_id = %batch.id, outcome, rows = ?committed, elapsed_ms = started.elapsed().as_millis() as u64, "async batch processed");
        Ok(true)
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
