//! Router assembly, shared middleware and the server loop with graceful shutdown.

pub mod auth;
pub mod client_ip;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod problem;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OpenAPI router with every API route; the document is generated from it, so a
/// route cannot exist without being documented.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(crate::rates::routes::get_rates))
        .routes(routes!(crate::rates::places::get_ports))
        .routes(routes!(crate::rates::places::get_regions))
        .routes(routes!(crate::rates::ingest::routes::post_prices))
        .routes(routes!(crate::rates::ingest::routes::post_batches))
        .routes(routes!(crate::rates::ingest::routes::get_batch))
        .routes(routes!(crate::feed::routes::list_instruments))
        .routes(routes!(crate::feed::routes::list_trades))
        .routes(routes!(crate::feed::routes::list_candles))
        .routes(routes!(
            crate::orders::routes::post_orders,
            crate::orders::routes::get_orders
        ))
        .routes(routes!(crate::orders::routes::place_order))
        .routes(routes!(crate::orders::routes::get_orders_alias))
        .routes(routes!(ops::livez))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::version))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(crate::status::page::status_page))
        .routes(routes!(crate::status::page::status_json))
        .routes(routes!(crate::status::explorer::explorer_page))
        .routes(routes!(crate::status::explorer::explorer_csv))
}

/// The OpenAPI document of every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.info.version = crate::telemetry::full_version();
    doc
}

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (routes, _) = api_routes().split_for_parts();
    let doc = std::sync::Arc::new(openapi_document());
    let timeout = state.http.request_timeout();
    let routes = routes
        .merge(crate::status::routes())
        .route_layer(axum::middleware::from_fn(middleware::track_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::Extension(doc));
    routes.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(middleware::problem_json))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
                }),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(axum::middleware::from_fn_with_state(timeout, middleware::timeout)),
    )
}

async fn not_found(uri: axum::http::Uri) -> problem::Problem {
    metrics::counter!("pricehub_http_requests_total", "method" => "any", "route" => "unmatched", "status" => "4xx")
        .increment(1);
    problem::Problem::not_found(
        "not-found",
        "Not found",
        format!("no route for {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> problem::Problem {
    problem::Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting and
/// gives in-flight requests up to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        res = &mut server => res?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_s = grace.as_secs(), "in-flight requests did not finish in time; exiting");
        }
    }
    Ok(())
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("can install a SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        t.cancel();
    });
    token
}
