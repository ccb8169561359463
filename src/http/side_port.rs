//! The HTTP side port of the feed processes (provider and collector): `/livez`,
//! `/readyz`, `/metrics`, plus whatever routes the process adds. Same conventions as the
//! API (problem+json errors, per-route metrics), but its own small router: these
//! processes do not serve the API.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ConnArgs;
use crate::telemetry;

/// How long in-flight side-port requests (metrics scrapes, probes) may take at shutdown.
const SIDE_PORT_GRACE: Duration = Duration::from_secs(5);

/// Every route template a feed process's side port serves (the provider's and the
/// collector's); they label its metrics like the API's routes do theirs.
pub const SIDE_PORT_ROUTES: &[&str] = &["/livez", "/readyz", "/metrics", PROVIDER_COINDESK_ROUTE];
/// The provider's CoinDesk-compatible price document.
pub const PROVIDER_COINDESK_ROUTE: &str = "/v1/bpi/currentprice.json";

/// A side port's serving task: ends after shutdown, with the server's error if any.
pub type SidePortTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// [`serve_side_port`] with the routes `routes` builds, when `addr` is given; nothing
/// when it is `None` (an embedded feed process has its metrics served by the API).
pub async fn serve_side_port_if(
    name: &'static str,
    addr: Option<SocketAddr>,
    conn: &ConnArgs,
    routes: impl FnOnce() -> Router,
    shutdown: CancellationToken,
) -> anyhow::Result<(Option<SocketAddr>, Option<SidePortTask>)> {
    match addr {
        Some(addr) => {
            let (local, task) = serve_side_port(name, addr, conn, routes(), shutdown).await?;
            Ok((Some(local), Some(task)))
        }
        None => Ok((None, None)),
    }
}

/// Binds `addr` and serves `routes` (plus `/livez` and `/metrics`) until `shutdown`, with
/// the connection limits of `conn`; `name` (`provider`, `collector`) labels its metrics.
pub async fn serve_side_port(
    name: &'static str,
    addr: SocketAddr,
    conn: &ConnArgs,
    routes: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, SidePortTask)> {
    telemetry::metrics_handle();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (HTTP side port)"))?;
    let local = listener.local_addr()?;
    let app = routes
        .route("/livez", axum::routing::get(super::ops::livez))
        .route(
            "/metrics",
            axum::routing::get(async || super::ops::exposition()),
        )
        .route_layer(axum::middleware::from_fn(
            crate::http::middleware::track_metrics,
        ))
        .fallback(super::not_found);
    let opts = crate::http::ServeOptions {
        name,
        conn: conn.clone(),
        grace: SIDE_PORT_GRACE,
    };
    let task = tokio::spawn(crate::http::serve(listener, app, shutdown, opts));
    Ok((local, task))
}
