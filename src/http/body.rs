//! Reading a request body under a size limit: the one way handlers that take a raw
//! `Body` read it, so every route answers an oversized body with the same 413.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::problem::{Kind, Problem};

/// Reads `body` whole, refusing more than `limit` bytes: at once when `Content-Length`
/// declares more, else as soon as the stream passes it. `what` names the body in the
/// 413's detail ("an order body") and `hint` is appended to it. A body that cannot be
/// read for another reason (connection cut, bad chunked encoding) is `unreadable-body`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &str,
    hint: &str,
) -> Result<Bytes, Problem> {
    let too_large = || Problem::payload_too_large(what, limit, hint);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                Problem::new(
                    Kind::UnreadableBody,
                    format!("the request body could not be read: {e}"),
                )
            }
        })
}
