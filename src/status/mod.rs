//! The human pages: the status page (`/`), the rates explorer (`/explorer`) and the
//! live dashboard (`/dashboard`, see `dashboard.rs`), on one shared layout.
//!
//! Pages are rendered on the server from askama templates (`src/status/templates/`,
//! checked at compile time) and hold their facts as plain HTML, so they are useful
//! without JavaScript; scripts only draw charts and update in place. Scripts, styles and
//! icons are embedded in the binary ([`assets`]) and every page answers with a strict
//! Content-Security-Policy (`default-src 'self'`): no inline script or style, nothing
//! from another origin.

pub mod assets;
pub mod dashboard;
pub mod explorer;
pub mod page;
pub mod visits;

pub use page::Status;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::telemetry;

/// Headers every page and asset carries.
pub const SECURITY_HEADERS: [(HeaderName, HeaderValue); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
];

/// The pages in the main navigation, in order: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Status"),
    ("/dashboard", "Dashboard"),
    ("/explorer", "Rates explorer"),
    ("/docs", "API docs"),
    ("/metrics", "Metrics"),
];

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the shared layout (`layout.html`) needs: every page template has a
/// `chrome: Chrome` field.
pub struct Chrome {
    pub version: String,
    pub commit: &'static str,
    current: &'static str,
}

impl Chrome {
    /// The layout for the page at `current` (one of the navigation paths).
    pub fn new(current: &'static str) -> Chrome {
        Chrome {
            version: telemetry::full_version(),
            commit: telemetry::COMMIT,
            current,
        }
    }

    /// The content-hashed URL of an embedded asset.
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .map(|&(href, label)| NavItem {
                href,
                label,
                current: href == self.current,
            })
            .collect()
    }
}

/// Renders a page template as an HTML response with the security headers.
pub fn html(status: StatusCode, page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            SECURITY_HEADERS,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => crate::http::problem::Problem::internal(format!("rendering a page: {e}"))
            .into_response(),
    }
}

/// Page routes that are not part of the OpenAPI document (assets).
pub fn routes() -> Router<AppState> {
    Router::new().route("/assets/{file}", get(assets::serve))
}
