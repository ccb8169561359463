//! Shared middleware: per-route RED metrics, the access log, request timeouts, and the
//! guarantee that every error leaves the API as `application/problem+json`.

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

/// The route template that answered a request, left on the response by [`track_metrics`]
/// for the access log (which runs outside the router, where every request passes).
#[derive(Clone, Debug)]
pub struct RouteTemplate(pub String);

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
    let mut resp = next.run(req).await;
    in_flight.decrement(1.0);
    resp.extensions_mut().insert(RouteTemplate(route.clone()));
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

/// The access log (`--access-log`): one `pricehub::access` line per request, written when
/// the response head is ready. Outermost layer, so it sees every request (unknown routes,
/// timeouts, body-limit rejections) with its final status and the `x-request-id` that
/// the client gets back. `bytes` is the body length when known up front (absent for
/// streamed bodies).
pub async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str());
    let request_id = resp
        .headers()
        .get(super::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let bytes = axum::body::HttpBody::size_hint(resp.body()).exact();
    tracing::info!(
        target: "pricehub::access",
        method = %method,
        route,
        status = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes,
        request_id,
        "access"
    );
    resp
}

/// Answers 503 problem+json when a request runs longer than the configured timeout.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Problem::new(
            problem::Kind::Timeout,
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
    *fixed.extensions_mut() = parts.extensions;
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
