//! Router assembly, shared middleware and the server loop with graceful shutdown.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod params;
pub mod problem;
pub mod server;
pub mod side_port;

pub use server::{ServeOptions, serve, shutdown_on_signals};

use axum::Router;
use axum::http::{HeaderName, Request};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        .routes(routes!(crate::feed::stream::stream))
        .routes(routes!(
            crate::orders::routes::post_orders,
            crate::orders::routes::get_orders
        ))
        .routes(routes!(crate::orders::routes::place_order))
        .routes(routes!(crate::orders::cap::get_cap))
        .routes(routes!(crate::orders::routes::get_orders_alias))
        .routes(routes!(ops::livez))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::version))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(crate::status::page::status_page))
        .routes(routes!(crate::status::page::status_json))
        .routes(routes!(crate::status::dashboard::dashboard_page))
        .routes(routes!(crate::status::explorer::explorer_page))
        .routes(routes!(crate::status::explorer::explorer_csv))
}

/// The OpenAPI document of every route.
pub fn openapi_document() -> serde_json::Value {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.info.version = crate::telemetry::full_version();
    openapi::finish(doc)
}

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (routes, _) = api_routes().split_for_parts();
    let doc = std::sync::Arc::new(openapi_document());
    let timeout = state.http.request_timeout();
    let access_log = state.http.access_log;
    let routes = routes
        .merge(crate::status::routes())
        .route_layer(axum::middleware::from_fn(middleware::track_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::Extension(doc));
    routes.layer(
        ServiceBuilder::new()
            .option_layer(access_log.then(|| axum::middleware::from_fn(middleware::access_log)))
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

/// The fallback of every router (the API and the side ports): a `not-found` problem.
pub(crate) async fn not_found(uri: axum::http::Uri) -> problem::Problem {
    metrics::counter!("pricehub_http_requests_total", "method" => "any", "route" => "unmatched", "status" => "4xx")
        .increment(1);
    problem::Problem::new(
        problem::Kind::NotFound,
        format!("no route for {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> problem::Problem {
    problem::Problem::new(
        problem::Kind::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
