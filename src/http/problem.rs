//! The catalogue of problem types: every RFC 9457 `application/problem+json` error the
//! server can send, and the only place a problem's slug, title and status are written.
//!
//! # Returning an error from a new handler
//!
//! 1. Pick the [`Kind`] that says what went wrong. If none fits, add a line to the
//!    `catalogue!` below (slug, status, title, when, extra members) — nowhere else: the
//!    OpenAPI `Problem` schema, its `type` enum and `docs/api.md` follow from it, and
//!    the tests in `src/http/openapi.rs` fail until `docs/api.md` lists the new kind
//!    (regenerate it with `UPDATE_DOCS=1 cargo test --lib http::openapi`).
//! 2. Build it with [`Problem::new`]`(Kind::…, detail)`; add the kind's declared extra
//!    members with [`Problem::with`] (an undeclared member panics in debug builds, so
//!    tests catch drift). Query-parameter errors come ready-made from
//!    [`crate::http::params`].
//! 3. In the handler's `#[utoipa::path(responses(...))]`, give every problem response
//!    `body = ProblemBody, content_type = "application/problem+json"` and name the kinds
//!    it can carry in backticks in its description, e.g.
//!    `description = "Bad parameter: `missing-parameter`, `invalid-date`"`. The OpenAPI
//!    document then constrains that response's `type` to exactly those kinds, and the
//!    contract test checks that each named kind exists and has that status.
//!
//! A failure of ours is [`Problem::internal`] (logged, never detailed to the client); a
//! dependency that is down is [`Problem::unavailable`] (503 with `Retry-After`); database
//! errors convert with `?` and pick one of the two.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Every problem's `type` is this prefix followed by the kind's slug.
pub const TYPE_PREFIX: &str = "urn:pricehub:problem:";

macro_rules! catalogue {
    ($( $variant:ident = $slug:literal, $status:ident, $title:literal,
        when $when:literal, extra [$($extra:literal),*]; )*) => {
        /// A kind of problem: the public, stable identity of an error (see `docs/api.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $( #[doc = $when] $variant, )*
        }

        impl Kind {
            /// The whole catalogue, in the order `docs/api.md` lists it.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The stable slug: the `type` member is `urn:pricehub:problem:<slug>`.
            pub const fn slug(self) -> &'static str {
                match self { $(Kind::$variant => $slug,)* }
            }

            /// The HTTP status a problem of this kind is sent with.
            pub const fn status(self) -> StatusCode {
                match self { $(Kind::$variant => StatusCode::$status,)* }
            }

            /// The `title` member: the same for every problem of this kind.
            pub const fn title(self) -> &'static str {
                match self { $(Kind::$variant => $title,)* }
            }

            /// When the server sends it (documentation).
            pub const fn when(self) -> &'static str {
                match self { $(Kind::$variant => $when,)* }
            }

            /// Members beyond `type`, `title`, `status` and `detail` a problem of this kind
            /// may carry.
            pub const fn extra_members(self) -> &'static [&'static str] {
                match self { $(Kind::$variant => &[$($extra),*],)* }
            }
        }
    };
}

catalogue! {
    // Query parameters (see crate::http::params for the rules).
    MissingParameter = "missing-parameter", BAD_REQUEST, "Missing parameter",
        when "A required query parameter is absent or empty.", extra ["parameter"];
    DuplicateParameter = "duplicate-parameter", BAD_REQUEST, "Duplicate parameter",
        when "A query parameter is given more than once.", extra ["parameter"];
    InvalidDate = "invalid-date", BAD_REQUEST, "Invalid date",
        when "A day parameter is not a real calendar day in `YYYY-MM-DD` form.", extra ["parameter"];
    InvalidTime = "invalid-time", BAD_REQUEST, "Invalid time",
        when "A time parameter is not RFC 3339, `YYYY-MM-DD` or epoch milliseconds.", extra ["parameter"];
    InvalidRange = "invalid-range", BAD_REQUEST, "Invalid range",
        when "The start of a range is after its end.", extra ["parameter"];
    RangeTooLong = "range-too-long", BAD_REQUEST, "Range too long",
        when "A range covers more days (`/rates`) or intervals (candles) than one request answers.",
        extra ["parameter", "max_days", "max_intervals"];
    InvalidLimit = "invalid-limit", BAD_REQUEST, "Invalid limit",
        when "A page size (`limit`, `page_size`) is not an integer within its bounds.", extra ["parameter"];
    InvalidCursor = "invalid-cursor", BAD_REQUEST, "Invalid cursor",
        when "A paging cursor (`cursor`, `start`) is not a `next_cursor` this server sent.", extra ["parameter"];
    InvalidCode = "invalid-code", BAD_REQUEST, "Invalid location",
        when "A port code or region slug is malformed (empty, too long, or not `[A-Za-z0-9_-]`).", extra ["parameter"];
    InvalidInterval = "invalid-interval", BAD_REQUEST, "Invalid interval",
        when "A candle interval is not one of the listed names.", extra ["parameter"];
    // Lookups.
    UnknownLocation = "unknown-location", NOT_FOUND, "Unknown location",
        when "`orig_code`/`dest_code` is neither a known port code nor a region slug.", extra ["parameter"];
    UnknownInstrument = "unknown-instrument", NOT_FOUND, "Unknown instrument",
        when "No trades are stored for the instrument symbol in the path.", extra [];
    UnknownBatch = "unknown-batch", NOT_FOUND, "Unknown batch",
        when "No batch has the id in the path.", extra [];
    NoLocations = "no-locations", NOT_FOUND, "No ports yet",
        when "The explorer was opened without a query on a database with no ports or regions.", extra [];
    // Request bodies and headers.
    InvalidJson = "invalid-json", BAD_REQUEST, "Invalid JSON",
        when "An order body is not a JSON object.", extra [];
    InvalidOrder = "invalid-order", UNPROCESSABLE_ENTITY, "Invalid order",
        when "An order field is missing or invalid; `field` names it.", extra ["field"];
    InvalidBatch = "invalid-batch", UNPROCESSABLE_ENTITY, "Invalid batch",
        when "A price batch has invalid rows (listed in `errors`) or is malformed as a whole; nothing was stored.",
        extra ["errors", "error_count", "row_count"];
    UnreadableBody = "unreadable-body", BAD_REQUEST, "Unreadable body",
        when "The request body could not be read (connection cut, bad chunked encoding).", extra [];
    PayloadTooLarge = "payload-too-large", PAYLOAD_TOO_LARGE, "Payload too large",
        when "A request body is larger than the route accepts.", extra ["max_body_bytes"];
    TooManyRows = "too-many-rows", PAYLOAD_TOO_LARGE, "Too many rows",
        when "A price batch has more rows than `--ingest-max-rows`.", extra ["max_rows"];
    UnsupportedMediaType = "unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type",
        when "The body's `Content-Type` is not one the route accepts.", extra [];
    InvalidIdempotencyKey = "invalid-idempotency-key", BAD_REQUEST, "Invalid Idempotency-Key",
        when "`Idempotency-Key` is empty, longer than 255 bytes, or not visible ASCII.", extra [];
    InvalidLastEventId = "invalid-last-event-id", BAD_REQUEST, "Invalid Last-Event-ID",
        when "`Last-Event-ID` on the price stream is not an event id this stream sent.", extra ["parameter"];
    IdempotencyKeyReused = "idempotency-key-reused", CONFLICT, "Idempotency-Key reused",
        when "An `Idempotency-Key` already used with a different request.", extra [];
    // Authorisation and limits.
    Unauthorized = "unauthorized", UNAUTHORIZED, "Unauthorized",
        when "A write without a valid `Authorization: Bearer` token (`WWW-Authenticate` is set).", extra [];
    WritesDisabled = "writes-disabled", FORBIDDEN, "Writes disabled",
        when "A write to a server that has no ingest token configured.", extra [];
    RateLimited = "rate-limited", TOO_MANY_REQUESTS, "Too many requests",
        when "The client used up its order requests for now (`Retry-After` is set).", extra ["retry_after_s"];
    BtcCapExceeded = "btc-cap-exceeded", CONFLICT, "BTC cap exceeded",
        when "An order would take the sum of all orders past the BTC cap; nothing was stored.",
        extra ["btc_amount", "cap_btc", "remaining_btc"];
    // Dependencies and the server itself.
    RateUnavailable = "rate-unavailable", SERVICE_UNAVAILABLE, "BTC rate unavailable",
        when "No BTC rate fresher than `--btc-rate-max-age` (`Retry-After` is set).", extra [];
    NoBtcPrice = "no-btc-price", SERVICE_UNAVAILABLE, "No BTC price",
        when "The provider's CoinDesk endpoint has no BTCUSD/BTCEUR/BTCGBP prices yet.", extra [];
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, "Service unavailable",
        when "A dependency (usually the database) is unavailable; safe to retry (`Retry-After` is set).", extra [];
    Timeout = "timeout", SERVICE_UNAVAILABLE, "Request timed out",
        when "The request ran longer than `--request-timeout`.", extra [];
    Internal = "internal", INTERNAL_SERVER_ERROR, "Internal error",
        when "A failure of the server; the cause is logged, not sent.", extra [];
    // Errors of the HTTP framework, rewritten into problems.
    NotFound = "not-found", NOT_FOUND, "Not found",
        when "No route (or embedded asset) has this path.", extra [];
    MethodNotAllowed = "method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed",
        when "The route exists but not with this method (`Allow` is set).", extra [];
    BadRequest = "bad-request", BAD_REQUEST, "Bad request",
        when "The framework refused the request (e.g. a path segment that is not UTF-8).", extra [];
    Unprocessable = "unprocessable", UNPROCESSABLE_ENTITY, "Unprocessable content",
        when "The framework could not deserialize the request.", extra [];
    RequestTimeout = "request-timeout", REQUEST_TIMEOUT, "Request timeout",
        when "The client was too slow to send its request.", extra [];
}

impl Kind {
    /// The `type` member: `urn:pricehub:problem:<slug>`.
    pub fn type_uri(self) -> String {
        format!("{TYPE_PREFIX}{}", self.slug())
    }

    /// The kind whose slug this is.
    pub fn from_slug(slug: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.slug() == slug)
    }
}

/// So that tests can compare a kind with its slug: `assert_eq!(p.kind, "invalid-date")`.
impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.slug() == *other
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

/// An API error of one [`Kind`].
#[derive(Debug, Clone)]
pub struct Problem {
    /// Usually `kind.status()`; only a framework error of a status the catalogue does
    /// not name keeps its own (see [`from_status`]).
    pub status: StatusCode,
    pub kind: Kind,
    pub detail: String,
    /// Extra members merged into the body (each declared by the kind).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
/// RFC 9457 problem details. `type` is one of the kinds listed in `docs/api.md`; each
/// response names the kinds it can carry. Some kinds carry extra members (`parameter`,
/// `field`, `errors`, …).
pub struct ProblemBody {
    /// Stable identifier of the problem kind, `urn:pricehub:problem:<slug>`.
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
    /// A problem of `kind`, with its status and title.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Problem {
            status: kind.status(),
            kind,
            detail: detail.into(),
            extra: None,
            headers: Vec::new(),
        }
    }

    /// A failure of ours (database down, bug). The detail is logged, not sent.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            Kind::Internal,
            "the server failed to answer this request; it has been logged",
        )
    }

    /// A dependency (usually the database) is unavailable: 503, safe to retry.
    pub fn unavailable(err: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %err, "dependency unavailable");
        Self::new(
            Kind::Unavailable,
            "a dependency of this request is unavailable; retry later",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// A request body over `limit` bytes; `hint` says what to do instead.
    pub fn payload_too_large(what: &str, limit: u64, hint: &str) -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            format!("{what} may be at most {limit} bytes{hint}"),
        )
        .with("max_body_bytes", limit)
    }

    /// Adds the extra member `key`, which the kind must declare.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        debug_assert!(
            self.kind.extra_members().contains(&key),
            "problem kind {} does not declare the member {key:?} (see http::problem)",
            self.kind
        );
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

    pub fn title(&self) -> &'static str {
        self.kind.title()
    }

    pub fn body(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("type".into(), self.kind.type_uri().into());
        map.insert("title".into(), self.kind.title().into());
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
            self.kind.title(),
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

/// A problem for a bare status code: how the middleware rewrites the framework's own
/// errors (unknown route, 405, extractor rejections) into the catalogue. A status the
/// catalogue has no framework kind for becomes `bad-request` (4xx) or `internal` (5xx)
/// and keeps its status code.
pub fn from_status(status: StatusCode, detail: Option<String>) -> Problem {
    let kind = [
        Kind::BadRequest,
        Kind::NotFound,
        Kind::MethodNotAllowed,
        Kind::PayloadTooLarge,
        Kind::UnsupportedMediaType,
        Kind::Unprocessable,
        Kind::RequestTimeout,
        Kind::RateLimited,
        Kind::Unavailable,
    ]
    .into_iter()
    .find(|k| k.status() == status)
    .unwrap_or(if status.is_server_error() {
        Kind::Internal
    } else {
        Kind::BadRequest
    });
    let detail = detail
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut p = Problem::new(kind, detail);
    p.status = status;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for k in Kind::ALL {
            assert!(seen.insert(k.slug()), "{k} is listed twice");
            assert!(
                k.slug()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{k}"
            );
            assert!(k.status().is_client_error() || k.status().is_server_error());
            assert_eq!(Kind::from_slug(k.slug()), Some(*k));
        }
    }

    #[test]
    fn framework_statuses_map_onto_the_catalogue() {
        assert_eq!(from_status(StatusCode::NOT_FOUND, None).kind, "not-found");
        assert_eq!(
            from_status(StatusCode::PAYLOAD_TOO_LARGE, None).kind,
            "payload-too-large"
        );
        let odd = from_status(StatusCode::LENGTH_REQUIRED, None);
        assert_eq!((odd.kind, odd.status.as_u16()), (Kind::BadRequest, 411));
        assert_eq!(
            from_status(StatusCode::BAD_GATEWAY, None).kind,
            Kind::Internal
        );
    }

    #[test]
    #[should_panic(expected = "does not declare")]
    #[cfg(debug_assertions)]
    fn undeclared_members_are_caught() {
        let _ = Problem::new(Kind::UnknownBatch, "x").with("parameter", "id");
    }
}
