//! `GET /` (the status page) and `GET /status.json` (the same facts as JSON).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::RwLock;
use serde::Serialize;
use utoipa::ToSchema;

use super::visits::{VisitCounts, VisitError, Visits};
use super::{Chrome, SECURITY_HEADERS};
use crate::app::AppState;
use crate::config::StatusArgs;
use crate::db::Db;
use crate::http::client_ip::client_ip;
use crate::http::ops::{Check, Ready, readiness};
use crate::telemetry;

/// How long the readiness checks shown on the page may be reused: the page stays one
/// database statement per visit however often it is loaded.
const CHECKS_TTL: Duration = Duration::from_secs(1);

/// State of the status page: facts read once at start-up (or on reconnect), never per
/// request.
pub struct Status {
    started: Instant,
    started_at: DateTime<Utc>,
    deployer: Option<Deployer>,
    pub visits: Visits,
    server: RwLock<ServerVersion>,
    checks: tokio::sync::Mutex<Option<(Instant, Ready)>>,
}

#[derive(Default)]
struct ServerVersion {
    version: Option<String>,
    /// The database failed since the version was read: read it again once it answers.
    stale: bool,
}

/// Two arms: each backend reports its version through its own function.
async fn server_version(db: &Db) -> Result<String, sqlx::Error> {
    Ok(match db {
        Db::Postgres(p) => {
            let v: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(p)
                .await?;
            format!("PostgreSQL {v}")
        }
        Db::Sqlite(p) => {
            let v: String = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(p)
                .await?;
            format!("SQLite {v}")
        }
    })
}

impl Status {
    /// Reads the database server's version and registers the visit counter.
    pub async fn start(db: &Db, args: &StatusArgs) -> Arc<Status> {
        metrics::describe_counter!(
            "pricehub_status_visits_total",
            "Status page visits counted (one per GET / or /status.json that reached the database)"
        );
        metrics::counter!("pricehub_status_visits_total").increment(0);
        let version = server_version(db).await;
        if let Err(e) = &version {
            tracing::warn!(error = %e, "cannot read the database server version; will retry on reconnect");
        }
        Arc::new(Status {
            started: Instant::now(),
            started_at: Utc::now(),
            deployer: args.deployer_name().map(|name| Deployer {
                name,
                url: args.deployer_url(),
            }),
            visits: Visits::start(db, args.visit_key.as_ref()),
            server: RwLock::new(ServerVersion {
                stale: version.is_err(),
                version: version.ok(),
            }),
            checks: tokio::sync::Mutex::new(None),
        })
    }

    async fn checks(&self, state: &AppState) -> Ready {
        let mut cached = self.checks.lock().await;
        if let Some((at, ready)) = cached.as_ref() {
            if at.elapsed() < CHECKS_TTL {
                return ready.clone();
            }
        }
        let ready = readiness(state).await;
        *cached = Some((Instant::now(), ready.clone()));
        ready
    }

    /// After a visit reached the database: re-read the server version if the database
    /// was lost since it was read (a restart may have upgraded it).
    async fn reconnected(&self, db: &Db) {
        if !self.server.read().stale {
            return;
        }
        if let Ok(v) = server_version(db).await {
            *self.server.write() = ServerVersion {
                version: Some(v),
                stale: false,
            };
        }
    }

    async fn report(
        &self,
        state: &AppState,
        visit: Result<VisitCounts, VisitError>,
    ) -> StatusReport {
        let mut ready = self.checks(state).await;
        let visits = match visit {
            Ok(v) => {
                self.reconnected(&state.db).await;
                Some(v)
            }
            Err(e) => {
                tracing::warn!(error = %e, "status page: cannot count the visit");
                self.server.write().stale = true;
                *self.checks.lock().await = None;
                ready.checks.insert(
                    "database",
                    Check {
                        status: "down",
                        detail: Some(serde_json::json!({
                            "backend": state.db.backend().name(),
                            "reachable": false,
                            "error": e.to_string(),
                        })),
                    },
                );
                ready.status = "not_ready";
                None
            }
        };
        let down: Vec<String> = ready
            .checks
            .iter()
            .filter(|(_, c)| c.status == "down")
            .map(|(name, _)| name.to_string())
            .collect();
        if !down.is_empty() {
            ready.status = "not_ready";
        }
        StatusReport {
            product: "pricehub",
            version: telemetry::full_version(),
            build: telemetry::build_number(),
            commit: telemetry::COMMIT,
            deployed_by: self.deployer.clone(),
            database: Database {
                backend: state.db.backend().name(),
                server_version: self.server.read().version.clone(),
            },
            started_at: self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            uptime_seconds: self.started.elapsed().as_secs(),
            status: ready.status,
            down,
            checks: ready
                .checks
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            visits,
            links: Links::default(),
        }
    }
}

#[derive(Clone, Serialize, ToSchema)]
pub struct Deployer {
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "https://example.org/ada")]
    pub url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Database {
    /// `postgres` or `sqlite`.
    #[schema(example = "postgres")]
    pub backend: &'static str,
    /// Read at start-up and again after the database comes back; `null` while unknown.
    #[schema(example = "PostgreSQL 15.10")]
    pub server_version: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Links {
    dashboard: &'static str,
    explorer: &'static str,
    docs: &'static str,
    metrics: &'static str,
    readyz: &'static str,
    version: &'static str,
}

impl Default for Links {
    fn default() -> Links {
        Links {
            dashboard: "/dashboard",
            explorer: "/explorer",
            docs: "/docs",
            metrics: "/metrics",
            readyz: "/readyz",
            version: "/version",
        }
    }
}

/// The status page's facts.
#[derive(Serialize, ToSchema)]
pub struct StatusReport {
    #[schema(example = "pricehub")]
    pub product: &'static str,
    /// Semantic version with the build number as build metadata.
    #[schema(example = "0.1.0+build.42")]
    pub version: String,
    #[schema(example = 42)]
    pub build: u64,
    #[schema(example = "3f2a9c1d0b7e")]
    pub commit: &'static str,
    /// `USER_NAME` / `USER_URL` (or `--user-name` / `--user-url`); `null` when unset.
    pub deployed_by: Option<Deployer>,
    pub database: Database,
    #[schema(example = "2026-12-01T21:00:00Z")]
    pub started_at: String,
    #[schema(example = 3600)]
    pub uptime_seconds: u64,
    /// `ready` or `not_ready` (then the answer is 503).
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The names of the checks that are down.
    pub down: Vec<String>,
    /// The `/readyz` checks.
    pub checks: BTreeMap<String, Check>,
    /// This visit's counts; `null` when the database could not count it.
    pub visits: Option<VisitCounts>,
    pub links: Links,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    chrome: Chrome,
    r: &'a StatusReport,
    uptime: String,
    rows: Vec<CheckRow>,
}

struct CheckRow {
    name: String,
    status: &'static str,
    note: String,
}

fn check_rows(checks: &BTreeMap<String, Check>) -> Vec<CheckRow> {
    checks
        .iter()
        .map(|(name, c)| {
            let d = c.detail.as_ref();
            let note = d
                .and_then(|d| d.get("error"))
                .and_then(|e| e.as_str())
                .map(str::to_string)
                .or_else(|| {
                    d.and_then(|d| d.get("latency_ms"))
                        .and_then(|l| l.as_f64())
                        .map(|l| format!("{l:.1} ms"))
                })
                .or_else(|| {
                    d.and_then(|d| d.get("age_seconds"))
                        .and_then(|a| a.as_f64())
                        .map(|a| format!("rate {a:.0} s old"))
                })
                .unwrap_or_default();
            CheckRow {
                name: name.clone(),
                status: c.status,
                note,
            }
        })
        .collect()
}

/// `3 d 4 h`, `2 h 5 min`, `4 min 10 s`, `9 s`.
fn human_duration(s: u64) -> String {
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

async fn visit_and_report(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> StatusReport {
    let ip = client_ip(headers, peer.ip(), &state.http.orders.trusted_proxies);
    let visit = state.status.visits.record(ip).await;
    state.status.report(state, visit).await
}

fn code(r: &StatusReport) -> StatusCode {
    if r.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

fn json(r: StatusReport) -> Response {
    no_store((code(&r), SECURITY_HEADERS, Json(r)).into_response())
}

/// The status page: version, deployer, database, uptime, dependency checks and the
/// visit count (each request counts one visit of the client). HTML for browsers;
/// `Accept: application/json` gets the JSON of `/status.json`. 503 when a dependency is
/// down — the page still renders and names it.
#[utoipa::path(get, path = "/", tag = "status",
    responses(
        (status = 200, description = "Status page (HTML), or its facts with `Accept: application/json`",
            content((StatusReport = "application/json"), (String = "text/html"))),
        (status = 503, description = "A dependency is down; the page names it",
            content((StatusReport = "application/json"), (String = "text/html")))))]
pub async fn status_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let r = visit_and_report(&state, peer, &headers).await;
    if wants_json(&headers) {
        return json(r);
    }
    let page = StatusPage {
        chrome: Chrome::new("/"),
        uptime: human_duration(r.uptime_seconds),
        rows: check_rows(&r.checks),
        r: &r,
    };
    no_store(super::html(code(&r), &page))
}

/// The status page's facts as JSON (counts a visit, like `/`).
#[utoipa::path(get, path = "/status.json", tag = "status",
    responses(
        (status = 200, description = "Everything is up", body = StatusReport),
        (status = 503, description = "A dependency is down (the report names it under down)", body = StatusReport)))]
pub async fn status_json(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    json(visit_and_report(&state, peer, &headers).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human_duration(9), "9 s");
        assert_eq!(human_duration(250), "4 min 10 s");
        assert_eq!(human_duration(7500), "2 h 5 min");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600 + 59), "3 d 4 h");
    }

    #[test]
    fn json_only_when_asked_for_and_html_is_not() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(wants_json(&h));
        h.insert(
            header::ACCEPT,
            "text/html,application/xhtml+xml,application/json;q=0.9"
                .parse()
                .unwrap(),
        );
        assert!(!wants_json(&h));
    }
}
