//! The OpenAPI document (generated from the route annotations) and a human docs page
//! that renders it with no network access beyond this server.

use axum::Json;
use axum::response::Html;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pricehub",
        description = "Self-hostable price platform: freight rates, live prices, BTC buy orders.\n\nErrors are `application/problem+json` (RFC 9457) with a stable `type` of the form `urn:pricehub:problem:<kind>`.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "rates", description = "Freight rates between ports and regions"),
        (name = "ingest", description = "Atomic batch ingestion of prices (bearer token)"),
        (name = "feed", description = "Live price feed: instruments, stored trades, candles"),
        (name = "orders", description = "BTC buy orders under a hard cap (rate limited per client)"),
        (name = "operations", description = "Health, metrics, version and this documentation"),
        (name = "status", description = "The status page and the rates explorer's lookups (ports, regions)")
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the write endpoints use.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(
    axum::Extension(doc): axum::Extension<std::sync::Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}

/// Human-readable API documentation (renders `/openapi.json`; works offline).
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
