//! `Idempotency-Key` support shared by every write endpoint.
//!
//! The key is claimed inside the same transaction as the write it protects: the first
//! request inserts the key row, concurrent duplicates block on its primary key until that
//! transaction ends, and then find the stored outcome. So a retry (sequential or racing)
//! returns the first outcome and writes nothing; the same key with a different request is
//! a 409; a request that dies before committing leaves no key behind, so its retry runs.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::db::Tx;
use crate::db::text::text;
use crate::http::problem::Problem;

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 255;

/// A claimed key: which endpoint (`scope`), the client's key, and the request's hash.
#[derive(Debug, Clone)]
pub struct Key {
    pub scope: &'static str,
    pub key: String,
    pub request_hash: String,
}

impl Key {
    /// Reads the header; `None` when absent, 400 when malformed. The hash covers the
    /// content type and the body.
    pub fn from_request(
        scope: &'static str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<Key>, Problem> {
        let Some(v) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = v
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= MAX_KEY_LEN
                    && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
            })
            .ok_or_else(|| {
                Problem::new(
                    crate::http::problem::Kind::InvalidIdempotencyKey,
                    format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
                )
            })?;
        let mut h = Sha256::new();
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            h.update(ct.as_bytes());
        }
        h.update([0]);
        h.update(body);
        Ok(Some(Key {
            scope,
            key: key.to_string(),
            request_hash: format!("{:x}", h.finalize()),
        }))
    }
}

/// A stored outcome, replayed to retries.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub content_type: &'static str,
}

impl Outcome {
    pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Outcome {
        Outcome {
            status: status.as_u16(),
            body: serde_json::to_string(body).expect("response bodies serialize"),
            location: None,
            content_type: "application/json",
        }
    }

    pub fn problem(p: &Problem) -> Outcome {
        Outcome {
            status: p.status.as_u16(),
            body: p.body().to_string(),
            location: None,
            content_type: crate::http::problem::CONTENT_TYPE,
        }
    }

    pub fn with_location(mut self, location: String) -> Outcome {
        self.location = Some(location);
        self
    }

    fn response(self, replayed: bool) -> Response {
        let mut resp = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        if replayed {
            resp.headers_mut()
                .insert("idempotency-replayed", HeaderValue::from_static("true"));
        }
        resp
    }

    pub fn into_response(self) -> Response {
        self.response(false)
    }
}

pub enum Claim {
    /// This request owns the key; store its outcome before committing.
    Owned,
    /// An earlier request with the same key and body: answer with its outcome.
    Replay(Response),
}

fn mismatch() -> Problem {
    Problem::new(
        crate::http::problem::Kind::IdempotencyKeyReused,
        "this Idempotency-Key was already used with a different request body",
    )
}

/// Claims `key` inside `tx` (blocking while another transaction holds it).
pub async fn claim(tx: &mut Tx, key: &Key) -> Result<Claim, Problem> {
    let inserted = crate::tx_run!(tx, |t| sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response) \
             VALUES ($1, $2, $3, 0, '') ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(key.scope)
    .bind(&key.key)
    .bind(&key.request_hash)
    .execute(&mut **t)
    .await?
    .rows_affected());
    if inserted == 1 {
        return Ok(Claim::Owned);
    }
    let q = "SELECT request_hash, status_code, response, location FROM idempotency_keys WHERE scope = $1 AND key = $2";
    let row: (String, i32, String, Option<String>) = crate::tx_run!(tx, |t| {
        sqlx::query_as(q)
            .bind(key.scope)
            .bind(&key.key)
            .fetch_one(&mut **t)
            .await?
    });
    if row.0 != key.request_hash {
        return Err(mismatch());
    }
    let content_type = if row.1 >= 400 {
        crate::http::problem::CONTENT_TYPE
    } else {
        "application/json"
    };
    Ok(Claim::Replay(
        Outcome {
            status: row.1 as u16,
            body: row.2,
            location: row.3,
            content_type,
        }
        .response(true),
    ))
}

/// Records the outcome of the request that owns `key` (same transaction as the write).
///
/// The body goes through [`text`], a no-op for the JSON pricehub answers with (serde_json
/// escapes every control character), so a replay is byte-identical to the first answer
/// on both backends, whatever the request held.
pub async fn store(tx: &mut Tx, key: &Key, outcome: &Outcome) -> Result<(), sqlx::Error> {
    let body = text(&outcome.body);
    let q = "UPDATE idempotency_keys SET status_code = $1, response = $2, location = $3 WHERE scope = $4 AND key = $5";
    crate::tx_run!(tx, |t| {
        sqlx::query(q)
            .bind(i32::from(outcome.status))
            .bind(body.as_ref())
            .bind(&outcome.location)
            .bind(key.scope)
            .bind(&key.key)
            .execute(&mut **t)
            .await?;
    });
    Ok(())
}

/// Gives up a key claimed in `tx` (the request it guarded was refused and stored
/// nothing), so a retry is evaluated afresh — as if the transaction had rolled back.
pub async fn release(tx: &mut Tx, key: &Key) -> Result<(), sqlx::Error> {
    let q = "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2";
    crate::tx_run!(tx, |t| {
        sqlx::query(q)
            .bind(key.scope)
            .bind(&key.key)
            .execute(&mut **t)
            .await?;
    });
    Ok(())
}
