//! Shared middleware: per-route RED metrics, request timeouts, and the guarantee that
//! every error leaves the API as `application/problem+json`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::{self, Problem};

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Records `pricehub_http_requests_total` and `pricehub_http_request_duration_seconds`
/// labelled by route template (never the raw path: no unbounded label values).
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let in_flight = metrics::gauge!("pricehub_http_requests_in_flight");
    in_flight.increment(1.0);
    let resp = next.run(req).await;
    in_flight.decrement(1.0);
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status_class(resp.status()).to_owned()),
    ];
    metrics::counter!("pricehub_http_requests_total", &labels).increment(1);
    metrics::histogram!("pricehub_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// Answers 503 problem+json when a request runs longer than the configured timeout.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
            format!("the request did not finish within {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Rewrites any error response that is not already JSON (framework rejections, 404 for
/// unknown routes, 405, 413 from the body limit) into problem+json, keeping its message.
pub async fn problem_json(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.starts_with("text/html"));
    // Pages render their own errors (the status page names what is down).
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let detail = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .filter(|s| !s.trim_start().starts_with('<'))
            .map(|s| s.trim().to_owned()),
        Err(_) => None,
    };
    let mut fixed = problem::from_status(status, detail).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// Turns a panic inside a handler into a 500 problem (the panic itself is logged).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    Problem::internal(format!("handler panicked: {msg}")).into_response()
}
