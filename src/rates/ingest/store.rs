//! Ingestion queries for both backends: writing rows, and the `ingest_batches` records.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::parse::{Format, Rejection, RowError, RowSink};
use crate::db::text::{jsonb, text};
use crate::db::{Db, Tx};
use crate::rates::PriceRow;
use crate::rates::store::{pg_copy_prices, push_copy_line, sqlite_insert_prices};

/// Why rows could not be written (the catalog changed under the batch).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("ports vanished while the batch was written: {0}")]
    UnknownPorts(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Writes validated rows into `prices` inside `tx`.
///
/// PostgreSQL: see [`pg_batch_begin`] and [`pg_batch_finish`]; the rows go into
/// [`INGEST_TABLE`] with one `COPY`.
pub async fn insert_prices(tx: &mut Tx, rows: &[PriceRow]) -> Result<u64, WriteError> {
    match tx {
        Tx::Postgres(t) => {
            let seq = pg_batch_begin(t).await?;
            let n = pg_copy_prices(t, INGEST_TABLE, rows, Some(seq)).await?;
            let mut codes: Vec<&str> = rows
                .iter()
                .flat_map(|r| [r.orig_code.as_str(), r.dest_code.as_str()])
                .collect();
            codes.sort_unstable();
            codes.dedup();
            pg_batch_finish(t, &codes).await?;
            Ok(n)
        }
        Tx::Sqlite(t) => Ok(sqlite_insert_prices(t, "prices", rows).await?),
    }
}

/// pricehub's batches go into this inheritance child of `prices`, which has no insert
/// trigger and no index; the compactor moves them on to `prices_ingested` (migration
/// `20260401000002_ingest_child.sql`).
pub const INGEST_TABLE: &str = "prices_ingest_raw";

/// Starts writing a batch on PostgreSQL: the shared advisory lock tells the compactor
/// that a batch sequence number is in flight until commit, and the batch gets its
/// `batch_seq` (rows above the compaction watermark are read raw until folded in).
pub async fn pg_batch_begin(t: &mut sqlx::PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared(7301)")
        .execute(&mut *t)
        .await?;
    sqlx::query_scalar("SELECT nextval('pricehub_batch_seq')")
        .fetch_one(&mut *t)
        .await
}

/// Finishes a batch written on PostgreSQL, before commit: locks the referenced ports
/// `FOR KEY SHARE` (what a foreign key does: they cannot be deleted or renamed until
/// commit) and checks that they all still exist, then bumps `rates_generation` and
/// notifies the readers (what the insert trigger does for other writers).
pub async fn pg_batch_finish(t: &mut sqlx::PgConnection, codes: &[&str]) -> Result<(), WriteError> {
    let locked: Vec<String> =
        sqlx::query_scalar("SELECT code FROM ports WHERE code = ANY($1) FOR KEY SHARE")
            .bind(codes)
            .fetch_all(&mut *t)
            .await?;
    if locked.len() != codes.len() {
        let missing: Vec<&str> = codes
            .iter()
            .filter(|c| !locked.iter().any(|l| l == *c))
            .copied()
            .collect();
        return Err(WriteError::UnknownPorts(missing.join(", ")));
    }
    sqlx::query("SELECT pricehub_rates_changed('prices')")
        .execute(&mut *t)
        .await?;
    Ok(())
}

/// Bytes of COPY text per chunk handed from the parsing thread to the COPY.
const COPY_CHUNK: usize = 128 << 10;

/// A [`RowSink`] that encodes valid rows as COPY text and hands them, in chunks, to the
/// task running the `COPY` — so that a batch is written while it is still being parsed.
/// Runs on a blocking thread (it blocks when the COPY is behind).
pub struct CopySink {
    buf: String,
    suffix: String,
    out: tokio::sync::mpsc::Sender<String>,
    codes: std::collections::HashSet<String>,
    /// The rows already sent are void: the parser started over (see [`RowSink`]).
    restarted: bool,
    /// The COPY side is gone (it failed); nothing more is sent.
    closed: bool,
}

impl CopySink {
    pub fn new(out: tokio::sync::mpsc::Sender<String>, batch_seq: i64) -> CopySink {
        CopySink {
            buf: String::with_capacity(COPY_CHUNK + 256),
            suffix: format!("\t{batch_seq}"),
            out,
            codes: Default::default(),
            restarted: false,
            closed: false,
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() || self.closed {
            return;
        }
        let chunk = std::mem::replace(&mut self.buf, String::with_capacity(COPY_CHUNK + 256));
        if self.out.blocking_send(chunk).is_err() {
            self.closed = true;
        }
    }

    /// Sends what is left; returns the port codes the rows use, or `None` when the rows
    /// sent are not the batch (the parser started over).
    pub fn finish(mut self) -> Option<std::collections::HashSet<String>> {
        if self.restarted {
            return None;
        }
        self.flush();
        Some(self.codes)
    }
}

impl RowSink for CopySink {
    fn push(&mut self, orig_code: &str, dest_code: &str, day: chrono::NaiveDate, price: i32) {
        if self.restarted || self.closed {
            return;
        }
        for code in [orig_code, dest_code] {
            if !self.codes.contains(code) {
                self.codes.insert(code.to_string());
            }
        }
        push_copy_line(
            &mut self.buf,
            orig_code,
            dest_code,
            day,
            price,
            &self.suffix,
        );
        if self.buf.len() >= COPY_CHUNK {
            self.flush();
        }
    }

    fn restart(&mut self) {
        self.restarted = true;
    }
}

pub async fn record_sync_batch(
    tx: &mut Tx,
    id: Uuid,
    format: Format,
    payload_bytes: usize,
    rows: usize,
) -> Result<(), sqlx::Error> {
    let sql = tx.backend().sql(
        "INSERT INTO ingest_batches (id, mode, status, content_type, payload_bytes, row_count, error_count, finished_at) \
                 VALUES ($1::uuid, 'sync', 'committed', $2, $3, $4, 0, now())",
        "INSERT INTO ingest_batches (id, mode, status, content_type, payload_bytes, row_count, error_count, finished_at) \
                 VALUES (?1, 'sync', 'committed', ?2, ?3, ?4, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    );
    crate::tx_run!(tx, |t| {
        sqlx::query(sql)
            .bind(id.to_string())
            .bind(format.content_type())
            .bind(payload_bytes as i64)
            .bind(rows as i64)
            .execute(&mut **t)
            .await?;
    });
    Ok(())
}

pub async fn insert_pending_batch(
    tx: &mut Tx,
    id: Uuid,
    format: Format,
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    let sql = tx.backend().sql(
        "INSERT INTO ingest_batches (id, mode, status, content_type, payload, payload_bytes) \
         VALUES ($1::uuid, 'async', 'pending', $2, $3, $4)",
        "INSERT INTO ingest_batches (id, mode, status, content_type, payload, payload_bytes) \
         VALUES ($1, 'async', 'pending', $2, $3, $4)",
    );
    crate::tx_run!(tx, |t| {
        sqlx::query(sql)
            .bind(id.to_string())
            .bind(format.content_type())
            .bind(payload)
            .bind(payload.len() as i64)
            .execute(&mut **t)
            .await?;
    });
    Ok(())
}

/// A pending batch claimed by a worker: its attempt is counted (committed) and its next
/// attempt pushed back, before any of its work starts.
pub struct Claimed {
    pub id: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Why the previous attempt failed, if one did.
    pub last_error: Option<String>,
}

/// Claims the oldest batch that is due, in a transaction of its own that commits: the
/// attempt is counted even if processing then fails, crashes or is killed, and the batch
/// is not due again for `retry_in`, so the batches behind it go first. On PostgreSQL a
/// batch being processed is locked (see [`lock_claimed`]) and skipped by other workers.
pub async fn claim_next(
    db: &Db,
    retry_in: impl Fn(i32) -> std::time::Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    // The first statement writes: on SQLite that takes the write lock at once (a read
    // first could not be upgraded if another connection wrote in between).
    let mut tx = db.begin().await?;
    let sql = tx.backend().sql(
        "UPDATE ingest_batches SET attempts = attempts + 1 WHERE id = ( \
                   SELECT id FROM ingest_batches WHERE status = 'pending' \
                   AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
                   ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id::text, attempts, last_error",
        "UPDATE ingest_batches SET attempts = attempts + 1 WHERE id = ( \
                   SELECT id FROM ingest_batches WHERE status = 'pending' \
                   AND (next_attempt_at IS NULL OR next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                   ORDER BY created_at LIMIT 1) \
                 RETURNING id, attempts, last_error",
    );
    let row: Option<(String, i32, Option<String>)> = crate::tx_run!(&mut tx, |t| {
        sqlx::query_as(sql).fetch_optional(&mut **t).await?
    });
    let Some((id, attempts, last_error)) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let delay_ms = retry_in(attempts).as_millis() as i64;
    let sql = tx.backend().sql(
        "UPDATE ingest_batches \
         SET next_attempt_at = now() + make_interval(secs => $2::float8 / 1000) WHERE id = $1::uuid",
        "UPDATE ingest_batches \
         SET next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('+%.3f seconds', $2 / 1000.0)) WHERE id = $1",
    );
    crate::tx_run!(&mut tx, |t| {
        sqlx::query(sql)
            .bind(&id)
            .bind(delay_ms as f64)
            .execute(&mut **t)
            .await?;
    });
    tx.commit().await?;
    Ok(Some(Claimed {
        id,
        attempts,
        last_error,
    }))
}

/// Locks a claimed batch for the transaction that processes it and reads its payload.
/// `None` when it is no longer pending or another worker holds it. On SQLite the first
/// statement is a write, which takes the database's write lock.
pub async fn lock_claimed(tx: &mut Tx, id: &str) -> Result<Option<(Format, Vec<u8>)>, sqlx::Error> {
    let sql = tx.backend().sql(
        "SELECT content_type, payload FROM ingest_batches \
         WHERE id = $1::uuid AND status = 'pending' FOR UPDATE SKIP LOCKED",
        "UPDATE ingest_batches SET status = status WHERE id = $1 AND status = 'pending' \
         RETURNING content_type, payload",
    );
    let row: Option<(String, Option<Vec<u8>>)> = crate::tx_run!(tx, |t| sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(&mut **t)
        .await?);
    Ok(row.map(|(ct, payload)| {
        (
            Format::from_content_type(Some(&ct)).unwrap_or(Format::Json),
            payload.unwrap_or_default(),
        )
    }))
}

/// Records why an attempt failed (the batch stays pending until its next attempt).
pub async fn record_failure(db: &Db, id: &str, error: &str) -> Result<(), sqlx::Error> {
    let error = text(error);
    let sql = db.backend().sql(
        "UPDATE ingest_batches SET last_error = $2 WHERE id = $1::uuid AND status = 'pending'",
        "UPDATE ingest_batches SET last_error = $2 WHERE id = $1 AND status = 'pending'",
    );
    crate::db_run!(db, |p| {
        sqlx::query(sql)
            .bind(id)
            .bind(error.as_ref())
            .execute(p)
            .await?;
    });
    Ok(())
}

/// How a claimed batch ends.
pub enum Finish<'a> {
    Committed {
        rows: usize,
    },
    /// Refused: `reason` says why in one sentence, `rejection` lists the row errors.
    Rejected {
        rows: usize,
        reason: &'a str,
        rejection: &'a Rejection,
    },
}

/// Marks a claimed batch committed or rejected and drops its payload.
pub async fn finish_batch(tx: &mut Tx, id: &str, finish: Finish<'_>) -> Result<(), sqlx::Error> {
    let (status, rows, reason, errors, error_count) = match finish {
        Finish::Committed { rows } => ("committed", rows, None, None, 0),
        Finish::Rejected {
            rows,
            reason,
            rejection,
        } => (
            "rejected",
            rows,
            Some(text(reason)),
            Some(jsonb(&rejection.errors)),
            rejection.error_count as i64,
        ),
    };
    let reason = reason.as_deref();
    let sql = tx.backend().sql(
        "UPDATE ingest_batches SET status = $2, row_count = $3, error_count = $4, errors = $5::jsonb, \
                 reason = $6, payload = NULL, next_attempt_at = NULL, finished_at = now() WHERE id = $1::uuid",
        "UPDATE ingest_batches SET status = ?2, row_count = ?3, error_count = ?4, errors = ?5, \
                 reason = ?6, payload = NULL, next_attempt_at = NULL, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
    );
    crate::tx_run!(tx, |t| {
        sqlx::query(sql)
            .bind(id)
            .bind(status)
            .bind(rows as i64)
            .bind(error_count)
            .bind(errors)
            .bind(reason)
            .execute(&mut **t)
            .await?;
    });
    Ok(())
}

/// `GET /batches/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStatus {
    #[schema(value_type = String, example = "5c1d8d2e-9a0e-4a53-8f55-0f1f9f1b6a11")]
    pub batch_id: String,
    /// `sync` (POST /prices) or `async` (POST /batches).
    pub mode: String,
    /// `pending`, `committed` or `rejected`.
    #[schema(example = "committed")]
    pub status: String,
    /// Rows in the batch (known once processed).
    pub rows: Option<i64>,
    pub error_count: Option<i64>,
    /// Why a rejected batch was refused, in one sentence.
    #[schema(example = "3 problem(s) in 10 row(s); nothing was stored (the first 3 are listed)")]
    pub reason: Option<String>,
    /// The first row errors of a rejected batch.
    pub errors: Option<Vec<RowError>>,
    pub payload_bytes: i64,
    /// Processing attempts so far (a failed attempt is retried after a growing delay).
    pub attempts: i32,
    /// Why the latest attempt failed (transient failures are retried).
    pub last_error: Option<String>,
    /// A pending batch is not tried again before this time.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

type StatusRow = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    i32,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub async fn batch_status(db: &Db, id: Uuid) -> Result<Option<BatchStatus>, sqlx::Error> {
    let sql = db.backend().sql(
        "SELECT id::text, mode, status, row_count, error_count, errors::text, payload_bytes, attempts, \
                   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                   to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                   reason, last_error, \
                   to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                 FROM ingest_batches WHERE id = $1::uuid",
        "SELECT id, mode, status, row_count, error_count, errors, payload_bytes, attempts, created_at, finished_at, \
                   reason, last_error, next_attempt_at \
                 FROM ingest_batches WHERE id = ?1",
    );
    let row: Option<StatusRow> = crate::db_run!(db, |p| {
        sqlx::query_as(sql)
            .bind(id.to_string())
            .fetch_optional(p)
            .await?
    });
    Ok(row.map(|r| BatchStatus {
        batch_id: r.0,
        mode: r.1,
        status: r.2,
        rows: r.3,
        error_count: r.4,
        reason: r.10,
        errors: r.5.and_then(|e| serde_json::from_str(&e).ok()),
        payload_bytes: r.6,
        attempts: r.7,
        last_error: r.11,
        next_attempt_at: r.12,
        created_at: r.8,
        finished_at: r.9,
    }))
}

/// Number of batches waiting for the worker.
pub async fn pending_count(db: &Db) -> Result<i64, sqlx::Error> {
    let q = "SELECT COUNT(*) FROM ingest_batches WHERE status = 'pending'";
    crate::db_run!(db, |p| sqlx::query_scalar(q).fetch_one(p).await)
}
