//! `POST /prices`, `POST /batches`, `GET /batches/{id}`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::BatchAccepted;
use super::parse::{Format, RowError};
use super::store::{self, BatchStatus};
use crate::app::AppState;
use crate::http::auth::require_bearer;
use crate::http::body::read_limited;
use crate::http::problem::{Kind, Problem, ProblemBody};
use crate::idempotency::Key;

/// One price in a JSON batch.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PriceInput {
    /// Origin port code (must exist).
    #[schema(example = "CNSGH")]
    orig_code: String,
    /// Destination port code (must exist).
    #[schema(example = "NOOSL")]
    dest_code: String,
    /// Day, YYYY-MM-DD.
    #[schema(example = "2021-01-31", format = Date)]
    day: String,
    /// Positive integer price.
    #[schema(example = 1200, minimum = 1, maximum = 2147483647)]
    price: i64,
}

/// The 422 body: a problem with the offending rows.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchRejected {
    #[schema(example = "urn:pricehub:problem:invalid-batch")]
    r#type: String,
    title: String,
    status: u16,
    detail: String,
    /// The first 100 problems.
    errors: Vec<RowError>,
    error_count: usize,
    row_count: usize,
}

/// Checks auth, media type and size, and reads the body.
async fn read_batch(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<(Format, Bytes), Problem> {
    let cfg = &state.http.ingest;
    require_bearer(headers, cfg.ingest_token.as_ref(), what)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_content_type(ct).ok_or_else(|| {
        Problem::new(
            Kind::UnsupportedMediaType,
            format!(
                "send application/json or text/csv, not {}",
                ct.unwrap_or("")
            ),
        )
    })?;
    let bytes = read_limited(
        headers,
        body,
        cfg.ingest_max_body_bytes,
        "a batch body",
        "; split it or raise --ingest-max-body-bytes",
    )
    .await?;
    Ok((format, bytes))
}

/// Ingest a batch of prices atomically.
///
/// A JSON array of `{orig_code, dest_code, day, price}` objects, or CSV with the header
/// `orig_code,dest_code,day,price`. Every row is validated; one bad row rejects the whole
/// batch (422, listing up to 100 offending rows) and nothing is stored. A valid batch is
/// committed in one transaction and is visible to `GET /rates` as soon as the 201 is sent.
/// With an `Idempotency-Key`, a retry returns the first outcome without writing again.
#[utoipa::path(post, path = "/prices", tag = "ingest",
    request_body(description = "The batch", content(
        (Vec<PriceInput> = "application/json"),
        (String = "text/csv", example = "orig_code,dest_code,day,price\nCNSGH,NOOSL,2021-01-31,1200\n"))),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body → same answer, stored once",
        min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Committed", body = BatchAccepted, headers(("Location" = String, description = "/batches/{id}"))),
        (status = 400, description = "The body cannot be read (`unreadable-body`) or the Idempotency-Key is malformed (`invalid-idempotency-key`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token (`unauthorized`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Ingestion disabled: no token configured (`writes-disabled`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with a different body (`idempotency-key-reused`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over --ingest-max-body-bytes (`payload-too-large`) or rows over --ingest-max-rows (`too-many-rows`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV (`unsupported-media-type`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid rows, listed in errors; nothing stored (`invalid-batch`)", body = BatchRejected, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; see Retry-After (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn post_prices(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let (format, bytes) = read_batch(&state, &headers, body, "price ingestion").await?;
    let key = Key::from_request("prices", &headers, &bytes)?;
    state.ingest.ingest_now(key, bytes, format).await
}

/// Submit a (large) batch for asynchronous, atomic ingestion.
///
/// The batch is stored durably and answered with 202 and `Location: /batches/{id}`; a
/// worker validates and commits it in one transaction. A crash or deploy in between does
/// not lose or half-apply it: it is picked up again.
#[utoipa::path(post, path = "/batches", tag = "ingest",
    request_body(description = "The batch (same formats as POST /prices)", content(
        (Vec<PriceInput> = "application/json"),
        (String = "text/csv"))),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body → the same batch",
        min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted; follow Location. The rows are validated by the worker: GET /batches/{id} tells committed or rejected", body = BatchAccepted, headers(("Location" = String, description = "/batches/{id}"))),
        (status = 400, description = "The body cannot be read (`unreadable-body`) or the Idempotency-Key is malformed (`invalid-idempotency-key`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token (`unauthorized`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Ingestion disabled: no token configured (`writes-disabled`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with a different body (`idempotency-key-reused`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over --ingest-max-body-bytes (`payload-too-large`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV (`unsupported-media-type`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; see Retry-After (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn post_batches(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let (format, bytes) = read_batch(&state, &headers, body, "batch ingestion").await?;
    let key = Key::from_request("batches", &headers, &bytes)?;
    state.ingest.submit(key, bytes, format).await
}

/// The state of a batch: `pending`, `committed` (with its row count) or `rejected` (with
/// the row errors).
#[utoipa::path(get, path = "/batches/{id}", tag = "ingest",
    params(("id" = String, Path, description = "Batch id (a UUID)")),
    responses(
        (status = 200, description = "The batch", body = BatchStatus),
        (status = 404, description = "No such batch (`unknown-batch`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; see Retry-After (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BatchStatus>, Problem> {
    let not_found = || Problem::new(Kind::UnknownBatch, format!("there is no batch {id:?}"));
    let uuid = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    store::batch_status(&state.db, uuid)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}
