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

use self::parse::{Checked, Format, Parsed, Rejection};
use crate::db::{Db, Tx};
use crate::http::problem::{Kind, Problem};
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
    /// How the async worker retries a failing batch.
    pub retry: worker::RetryPolicy,
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
    Problem::new(Kind::InvalidBatch, detail)
        .with("errors", &r.errors)
        .with("error_count", r.error_count)
        .with("row_count", r.row_count)
}

impl From<store::WriteError> for Problem {
    fn from(e: store::WriteError) -> Problem {
        match e {
            store::WriteError::UnknownPorts(codes) => Problem::new(
                Kind::InvalidBatch,
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
        Kind::TooManyRows,
        format!("a batch may have at most {max} rows; split it or raise --ingest-max-rows"),
    )
    .with("max_rows", max)
}

impl Ingest {
    pub fn new(
        db: Db,
        rates: Arc<RatesCache>,
        max_rows: usize,
        retry: worker::RetryPolicy,
    ) -> Arc<Ingest> {
        worker::register_metrics();
        Arc::new(Ingest {
            db,
            rates,
            max_rows,
            retry,
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
        if matches!(self.db, Db::Postgres(_))
            && let Some(resp) = self
                .ingest_streaming(key.as_ref(), body.clone(), format)
                .await?
        {
            return Ok(resp);
        }
        self.ingest_buffered(key, body, format).await
    }

    /// PostgreSQL: the body is parsed on a blocking thread while its valid rows stream
    /// into `COPY`, so the batch is written as it is read instead of after. `None` when
    /// the batch is not entirely valid: nothing is written, and the buffered path answers
    /// with the details (it parses again, which only refused batches pay for).
    async fn ingest_streaming(
        &self,
        key: Option<&Key>,
        body: Bytes,
        format: Format,
    ) -> Result<Option<Response>, Problem> {
        let started = Instant::now();
        let payload_bytes = body.len();
        let catalog = self.rates.catalog().await?;
        let mut tx = match self.begin_claimed(key).await? {
            Ok(tx) => tx,
            Err(stored) => return Ok(Some(sync_replayed(stored))),
        };
        let Tx::Postgres(t) = &mut tx else {
            return Ok(None);
        };
        let seq = store::pg_batch_begin(t).await?;
        let (chunks, mut chunk_rx) = tokio::sync::mpsc::channel::<String>(4);
        let max = self.max_rows;
        let parser = tokio::task::spawn_blocking(move || {
            let sink = store::CopySink::new(chunks, seq);
            let (checked, sink) = parse::check(&body, format, &catalog, max, sink);
            (checked, sink.finish())
        });
        let mut copy = t
            .copy_in_raw(&format!(
                "COPY {} (orig_code, dest_code, day, price, batch_seq) FROM STDIN",
                store::INGEST_TABLE
            ))
            .await?;
        while let Some(chunk) = chunk_rx.recv().await {
            copy.send(chunk.as_bytes()).await?;
        }
        let (checked, codes) = parser.await.map_err(Problem::internal)?;
        let (Checked::Rows(rows), Some(codes)) = (checked, codes) else {
            let _ = copy.abort("the batch is refused").await;
            let _ = tx.rollback().await;
            return Ok(None);
        };
        copy.finish().await?;
        let mut codes: Vec<&str> = codes.iter().map(String::as_str).collect();
        codes.sort_unstable();
        store::pg_batch_finish(t, &codes).await?;
        tracing::debug!(
            written_ms = started.elapsed().as_secs_f64() * 1e3,
            "batch parsed and written"
        );
        self.commit_batch(tx, key, format, payload_bytes, rows, started)
            .await
            .map(Some)
    }

    /// Validates the whole body first, then writes the rows (SQLite, and any batch the
    /// streaming path refused: this path names the problems and records the outcome).
    async fn ingest_buffered(
        &self,
        key: Option<Key>,
        body: Bytes,
        format: Format,
    ) -> Result<Response, Problem> {
        let started = Instant::now();
        let payload_bytes = body.len();
        let parsed = self.validate(body, format).await?;
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
        let mut tx = match self.begin_claimed(key.as_ref()).await? {
            Ok(tx) => tx,
            Err(stored) => return Ok(sync_replayed(stored)),
        };
        let refused = match parsed {
            Parsed::Rows(rows) => {
                store::insert_prices(&mut tx, &rows).await?;
                return self
                    .commit_batch(tx, key.as_ref(), format, payload_bytes, rows.len(), started)
                    .await;
            }
            Parsed::Rejected(r) => rejection_problem(&r),
            Parsed::TooManyRows { max } => too_many_rows(max),
        };
        self.commit_outcome(tx, key.as_ref(), Outcome::problem(&refused), None, started)
            .await
    }

    /// Opens the write transaction and claims the Idempotency-Key in it. `Err` carries the
    /// answer stored under a key used before (the transaction is then rolled back).
    async fn begin_claimed(&self, key: Option<&Key>) -> Result<Result<Tx, Response>, Problem> {
        let mut tx = self.db.begin().await?;
        if let Some(k) = key
            && let Claim::Replay(stored) = idempotency::claim(&mut tx, k).await?
        {
            tx.rollback().await?;
            return Ok(Err(stored));
        }
        Ok(Ok(tx))
    }

    /// Records a written batch and commits it with its 201 answer.
    async fn commit_batch(
        &self,
        mut tx: Tx,
        key: Option<&Key>,
        format: Format,
        payload_bytes: usize,
        rows: usize,
        started: Instant,
    ) -> Result<Response, Problem> {
        let id = Uuid::new_v4();
        store::record_sync_batch(&mut tx, id, format, payload_bytes, rows).await?;
        let status_url = format!("/batches/{id}");
        let body = BatchAccepted {
            batch_id: id,
            status: "committed",
            rows: Some(rows),
            status_url: status_url.clone(),
        };
        let outcome = Outcome::json(StatusCode::CREATED, &body).with_location(status_url);
        self.commit_outcome(tx, key, outcome, Some(rows), started)
            .await
    }

    /// Stores the outcome under the Idempotency-Key (if any) and commits; a written batch
    /// is visible in our own answers before the response is sent.
    async fn commit_outcome(
        &self,
        mut tx: Tx,
        key: Option<&Key>,
        outcome: Outcome,
        rows_written: Option<usize>,
        started: Instant,
    ) -> Result<Response, Problem> {
        if let Some(k) = key {
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
        let mut tx = match self.begin_claimed(key.as_ref()).await? {
            Ok(tx) => tx,
            Err(stored) => return Ok(stored),
        };
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
        // In the request's span: this line ties the request id to the batch id that the
        // worker's lines carry.
        tracing::info!(batch_id = %id, bytes = body.len(), "async batch accepted");
        self.wake.notify_one();
        Ok(outcome.into_response())
    }
}

/// Counts a synchronous batch answered from its Idempotency-Key.
fn sync_replayed(stored: Response) -> Response {
    metrics::counter!("pricehub_ingest_batches_total", "mode" => "sync", "outcome" => "replayed")
        .increment(1);
    stored
}
