//! Atomic batch ingestion of prices: `POST /prices` (synchronous, one transaction) and
//! `POST /batches` (stored durably, committed by a worker), with Idempotency-Key support.
//!
//! Every row is validated before anything is written; a valid batch goes into `prices`
//! in one transaction (PostgreSQL `COPY`), the derived `price_daily` rows with it (by the
//! triggers), and the rates read model is invalidated before the answer is sent.

pub mod parse;
pub mod routes;
pub mod store;
pub mod worker;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use self::parse::{Format, Parsed, Rejection};
use crate::db::Db;
use crate::http::problem::Problem;
use crate::idempotency::{self, Claim, Key, Outcome};
use crate::rates::cache::RatesCache;
use crate::rates::catalog::Catalog;

/// What `POST /prices` answers on success (and `POST /batches` on acceptance).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAccepted {
    #[schema(value_type = String, example = "5c1d8d2e-9a0e-4a53-8f55-0f1f9f1b6a11")]
    pub batch_id: Uuid,
    /// `committed` (synchronous) or `pending` (asynchronous).
    #[schema(example = "committed")]
    pub status: &'static str,
    /// Rows stored (synchronous only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 50000)]
    pub rows: Option<usize>,
    /// Where to follow the batch.
    #[schema(example = "/batches/5c1d8d2e-9a0e-4a53-8f55-0f1f9f1b6a11")]
    pub status_url: String,
}

/// The ingestion service shared by the routes and the worker.
pub struct Ingest {
    pub db: Db,
    pub rates: Arc<RatesCache>,
    pub max_rows: usize,
    pub wake: tokio::sync::Notify,
}

/// Fault injection for tests: sleep this long before committing a batch, so a test can
/// kill the process while the transaction is open. Unset in production.
pub(crate) fn fault_delay_before_commit() -> Option<Duration> {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("PRICEHUB_FAULT_INGEST_DELAY_BEFORE_COMMIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    })
}

pub fn rejection_problem(r: &Rejection) -> Problem {
    let detail = if r.row_count == 0 || r.errors.iter().all(|e| e.index.is_none()) {
        format!(
            "{}; nothing was stored",
            r.errors
                .first()
                .map(|e| e.reason.as_str())
                .unwrap_or("invalid batch")
        )
    } else {
        format!(
            "{} problem(s) in {} row(s); nothing was stored (the first {} are listed)",
            r.error_count,
            r.row_count,
            r.errors.len()
        )
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-batch",
        "Invalid batch",
        detail,
    )
    .with("errors", &r.errors)
    .with("error_count", r.error_count)
    .with("row_count", r.row_count)
}

impl From<store::WriteError> for Problem {
    fn from(e: store::WriteError) -> Problem {
        match e {
            store::WriteError::UnknownPorts(codes) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-batch",
                "Invalid batch",
                format!(
                    "unknown port codes (removed while the batch was written): {codes}; nothing was stored"
                ),
            ),
            store::WriteError::Db(e) => e.into(),
        }
    }
}

pub fn too_many_rows(max: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-many-rows",
        "Too many rows",
        format!("a batch may have at most {max} rows; split it or raise --ingest-max-rows"),
    )
    .with("max_rows", max)
}

impl Ingest {
    pub fn new(db: Db, rates: Arc<RatesCache>, max_rows: usize) -> Arc<Ingest> {
        Arc::new(Ingest {
            db,
            rates,
            max_rows,
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Parses and validates off the async threads; unknown ports are re-checked against
    /// a catalog fresh from the database before the batch is refused for them.
    pub async fn validate(&self, body: Bytes, format: Format) -> Result<Parsed, Problem> {
        let catalog = self.rates.catalog().await?;
        let max = self.max_rows;
        let run = |catalog: Arc<Catalog>, body: Bytes| {
            tokio::task::spawn_blocking(move || parse::parse(&body, format, &catalog, max))
        };
        let parsed = run(catalog, body.clone())
            .await
            .map_err(Problem::internal)?;
        if let Parsed::Rejected(r) = &parsed
            && r.only_unknown_ports()
        {
            let fresh = Arc::new(crate::rates::store::load_catalog(&self.db).await?);
            return run(fresh, body).await.map_err(Problem::internal);
        }
        Ok(parsed)
    }

    /// `POST /prices`: all rows in one transaction, or none.
    pub async fn ingest_now(
        &self,
        key: Option<Key>,
        body: Bytes,
        format: Format,
    ) -> Result<Response, Problem> {
        let started = Instant::now();
        let payload_bytes = body.len();
        let parsed = self.validate(body, format).await?;
        let validated_at = started.elapsed();
        if key.is_none() {
            match parsed {
                Parsed::Rejected(r) => {
                    metrics::counter!("pricehub_ingest_batches_total", "mode" => "sync", "outcome" => "rejected").increment(1);
                    return Err(rejection_problem(&r));
                }
                Parsed::TooManyRows { max } => return Err(too_many_rows(max)),
                Parsed::Rows(_) => {}
            }
        }
        let mut tx = self.db.begin().await?;
        if let Some(k) = &key
            && let Claim::Replay(resp) = idempotency::claim(&mut tx, k).await?
        {
            tx.rollback().await?;
            metrics::counter!("pricehub_ingest_batches_total", "mode" => "sync", "outcome" => "replayed").increment(1);
            return Ok(resp);
        }
        let (outcome, rows_written) = match parsed {
            Parsed::Rejected(r) => (Outcome::problem(&rejection_problem(&r)), None),
            Parsed::TooManyRows { max } => (Outcome::problem(&too_many_rows(max)), None),
            Parsed::Rows(rows) => {
                let id = Uuid::new_v4();
                store::insert_prices(&mut tx, &rows).await?;
                tracing::debug!(
                    validate_ms = validated_at.as_secs_f64() * 1e3,
                    written_ms = started.elapsed().as_secs_f64() * 1e3,
                    "batch written"
                );
                store::record_sync_batch(&mut tx, id, format, payload_bytes, rows.len()).await?;
                let status_url = format!("/batches/{id}");
                let body = BatchAccepted {
                    batch_id: id,
                    status: "committed",
                    rows: Some(rows.len()),
                    status_url: status_url.clone(),
                };
                (
                    Outcome::json(StatusCode::CREATED, &body).with_location(status_url),
                    Some(rows.len()),
                )
            }
        };
        if let Some(k) = &key {
            idempotency::store(&mut tx, k, &outcome).await?;
        }
        if let Some(delay) = fault_delay_before_commit() {
            tracing::warn!(
                delay_ms = delay.as_millis() as u64,
                "fault injection: delaying the batch commit"
            );
            tokio::time::sleep(delay).await;
        }
        tx.commit().await?;
        let outcome_label = if let Some(n) = rows_written {
            // Our own answers must show the batch the moment the 201 is out.
            self.rates.invalidate();
            metrics::counter!("pricehub_ingest_rows_total", "mode" => "sync").increment(n as u64);
            metrics::histogram!("pricehub_ingest_batch_duration_seconds", "mode" => "sync")
                .record(started.elapsed().as_secs_f64());
            tracing::info!(
                rows = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch committed"
            );
            "committed"
        } else {
            "rejected"
        };
        metrics::counter!("pricehub_ingest_batches_total", "mode" => "sync", "outcome" => outcome_label).increment(1);
        Ok(outcome.into_response())
    }

    /// `POST /batches`: stores the batch durably and answers 202; the worker commits it.
    pub async fn submit(
        &self,
        key: Option<Key>,
        body: Bytes,
        format: Format,
    ) -> Result<Response, Problem> {
        let mut tx = self.db.begin().await?;
        if let Some(k) = &key
            && let Claim::Replay(resp) = idempotency::claim(&mut tx, k).await?
        {
            tx.rollback().await?;
            return Ok(resp);
        }
        let id = Uuid::new_v4();
        store::insert_pending_batch(&mut tx, id, format, &body).await?;
        let status_url = format!("/batches/{id}");
        let outcome = Outcome::json(
            StatusCode::ACCEPTED,
            &BatchAccepted {
                batch_id: id,
                status: "pending",
                rows: None,
                status_url: status_url.clone(),
            },
        )
        .with_location(status_url);
        if let Some(k) = &key {
            idempotency::store(&mut tx, k, &outcome).await?;
        }
        tx.commit().await?;
        metrics::counter!("pricehub_ingest_batches_total", "mode" => "async", "outcome" => "accepted").increment(1);
        self.wake.notify_one();
        Ok(outcome.into_response())
    }
}
