//! RFC 9457 `application/problem+json` errors: the only error shape the API returns.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An API error. `kind` is a stable slug; the `type` member is `urn:pricehub:problem:<kind>`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extra members merged into the body (e.g. `errors`, `parameter`).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
/// RFC 9457 problem details.
pub struct ProblemBody {
    /// Stable identifier of the problem kind, `urn:pricehub:problem:<kind>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:pricehub:problem:invalid-date")]
    pub kind: String,
    #[schema(example = "Invalid date")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    #[schema(example = "date_from must be a date in YYYY-MM-DD form, got \"2021-02-30\"")]
    pub detail: String,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            extra: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, title, detail)
    }

    pub fn not_found(kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, title, detail)
    }

    /// A failure of ours (database down, bug). The detail is logged, not sent.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed to answer this request; it has been logged",
        )
    }

    /// A dependency (usually the database) is unavailable: 503, safe to retry.
    pub fn unavailable(err: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %err, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "a dependency of this request is unavailable; retry later",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), v);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn body(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert(
            "type".into(),
            format!("urn:pricehub:problem:{}", self.kind).into(),
        );
        map.insert("title".into(), self.title.into());
        map.insert("status".into(), self.status.as_u16().into());
        map.insert("detail".into(), self.detail.clone().into());
        if let Some(extra) = &self.extra {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        serde_json::Value::Object(map)
    }
}

impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        crate::telemetry::count_db_error(&err);
        if is_transient_db_error(&err) {
            Problem::unavailable(err)
        } else {
            Problem::internal(err)
        }
    }
}

/// Whether a database error means "try again later" (a 503; the batch worker retries it)
/// rather than "this request is wrong" or "we have a bug".
pub fn is_transient_db_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => is_transient(db.code().as_deref()),
        _ => false,
    }
}

/// SQLSTATE classes (PostgreSQL) and result codes (SQLite) that mean "try again later"
/// rather than "this request is wrong" or "we have a bug".
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    matches!(&code[..code.len().min(2)], "08" | "40" | "53" | "57" | "58")
        // 55000: the database is not accepting connections (e.g. ALLOW_CONNECTIONS false).
        || code == "55000"
        // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
        || code == "5" || code == "6" || code.parse::<u32>().is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6)
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<sqlx::Error>() {
            Ok(e) => e.into(),
            Err(e) => Problem::internal(format!("{e:#}")),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (k, v) in self.headers {
            headers.insert(k, v);
        }
        resp
    }
}

/// A problem for a bare status code (used to wrap framework errors such as 405 or 413).
pub fn from_status(status: StatusCode, detail: Option<String>) -> Problem {
    let (kind, title) = match status {
        StatusCode::BAD_REQUEST => ("bad-request", "Bad request"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Payload too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", "Unprocessable content"),
        StatusCode::REQUEST_TIMEOUT => ("request-timeout", "Request timeout"),
        StatusCode::TOO_MANY_REQUESTS => ("rate-limited", "Too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "Service unavailable"),
        s if s.is_server_error() => ("internal", "Internal error"),
        _ => ("error", "Error"),
    };
    let detail = detail
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    Problem::new(status, kind, title, detail)
}
