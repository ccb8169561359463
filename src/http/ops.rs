//! Operational endpoints: liveness, readiness, Prometheus metrics, version.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::telemetry;

#[derive(Serialize, ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process is up and serving HTTP. Checks no dependency.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Live)))]
pub async fn livez() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[derive(Clone, Serialize, ToSchema)]
pub struct Check {
    /// `up` or `down` (`stale` for a BTC rate past its maximum age, which does not fail
    /// readiness).
    #[schema(example = "up")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// One entry per dependency.
    pub checks: std::collections::BTreeMap<&'static str, Check>,
}

/// Readiness: the database is reachable and fully migrated, and Redis (when configured)
/// answers. 503 with per-dependency detail when not. The BTC rate is reported too
/// (`up` when fresh, `stale` otherwise) but does not make the process unready: a stale
/// rate is the same for every replica and only order creation refuses it (503).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "A dependency is not ready", body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let ready = readiness(&state).await;
    let status = if ready.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ready))
}

/// The readiness checks (`/readyz`; the status page shows them too).
pub async fn readiness(state: &AppState) -> Ready {
    let mut checks = std::collections::BTreeMap::new();
    let db = state.db.health().await;
    let db_up = db.reachable && db.migrated();
    checks.insert(
        "database",
        Check {
            status: if db_up { "up" } else { "down" },
            detail: Some(serde_json::json!({
                "backend": state.db.backend().name(),
                "reachable": db.reachable,
                "latency_ms": db.latency_ms,
                "migrations_applied": db.applied_migrations,
                "migrations_expected": db.expected_migrations,
                "error": db.error,
            })),
        },
    );
    if let Some(redis) = &state.orders.redis {
        let h = redis.health().await;
        checks.insert(
            "redis",
            Check {
                status: if h.reachable { "up" } else { "down" },
                detail: serde_json::to_value(&h).ok(),
            },
        );
    }
    if state.orders.rates.is_configured() || state.orders.redis.is_some() {
        let detail = state.orders.rate_status().await;
        checks.insert(
            "btc_rate",
            Check {
                status: if detail["fresh"] == true {
                    "up"
                } else {
                    "stale"
                },
                detail: Some(detail),
            },
        );
    }
    let all_up = checks.values().all(|c| c.status != "down");
    Ready {
        status: if all_up { "ready" } else { "not_ready" },
        checks,
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.db.record_pool_metrics();
    state.orders.record_metrics().await;
    crate::rates::metrics::record(&state.db).await;
    // The same answer /readyz gives, as a gauge: "not ready" is visible to Prometheus
    // even where no orchestrator probes the process.
    let ready = readyz(State(state.clone()))
        .await
        .into_response()
        .status()
        .is_success();
    metrics::gauge!("pricehub_ready").set(if ready { 1.0 } else { 0.0 });
    exposition()
}

/// The process-wide registry in Prometheus' text format (the API's `/metrics` and the
/// feed processes' side ports).
pub fn exposition() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::render(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct Version {
    /// Semantic version with the build number as build metadata.
    #[schema(example = "0.1.0+build.42")]
    version: String,
    /// Commit the binary was built from.
    #[schema(example = "3f2a9c1d0b7e")]
    commit: &'static str,
    /// CI build number (0 for local builds).
    #[schema(example = 42)]
    build: u64,
}

/// The running build: version, commit and CI build number.
#[utoipa::path(get, path = "/version", tag = "operations",
    responses((status = 200, description = "Build information", body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        version: telemetry::full_version(),
        commit: telemetry::COMMIT,
        build: telemetry::build_number(),
    })
}
