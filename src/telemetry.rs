//! Logs (tracing, JSON or pretty), the Prometheus metrics recorder, and build information.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};

/// Semantic version of this build (from Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Commit the binary was built from (`GIT_COMMIT` at build time, else `git rev-parse`).
pub const COMMIT: &str = env!("PRICEHUB_GIT_COMMIT");
/// CI build number (`BUILD_NUMBER` at build time, 0 for local builds).
pub const BUILD_NUMBER: &str = env!("PRICEHUB_BUILD_NUMBER");

/// The version with its build number as semver build metadata, e.g. `0.1.0+build.42`.
pub fn full_version() -> String {
    format!("{VERSION}+build.{BUILD_NUMBER}")
}

pub fn build_number() -> u64 {
    BUILD_NUMBER.parse().unwrap_or(0)
}

/// Installs the global tracing subscriber. Safe to call more than once (later calls are no-ops).
pub fn init_logging(args: &LogArgs) {
    let filter = EnvFilter::try_new(log_directives(&args.log)).unwrap_or_else(|e| {
        eprintln!("invalid log filter {:?} ({e}); using \"info\"", args.log);
        EnvFilter::new("info")
    });
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The user's filter, plus: PostgreSQL's NOTICE messages (sqlx logs them at info, e.g.
/// "relation … already exists, skipping" on every re-run migration) only from warn up,
/// unless the filter names that target itself.
fn log_directives(filter: &str) -> String {
    const NOTICES: &str = "sqlx::postgres::notice";
    if filter.contains(NOTICES) {
        filter.to_string()
    } else {
        format!("{filter},{NOTICES}=warn")
    }
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// The exposition every `/metrics` serves: the process metrics (`process_*`: resident
/// memory, CPU, open fds, start time), refreshed now, then the whole registry.
pub fn render() -> String {
    let handle = metrics_handle();
    PROCESS
        .get_or_init(|| {
            let c = metrics_process::Collector::default();
            c.describe();
            c
        })
        .collect();
    handle.render()
}

/// Latency buckets (seconds) for every `_seconds` histogram: fine below 10 ms where the
/// API lives, coarse above for batches and flushes.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("static bucket list is non-empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe_metrics();
        metrics::gauge!(
            "pricehub_build_info",
            "version" => VERSION,
            "commit" => COMMIT,
            "build" => BUILD_NUMBER
        )
        .set(1.0);
        handle
    })
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "pricehub_build_info",
        "Always 1; labels carry the version, commit and build number"
    );
    describe_counter!(
        "pricehub_http_requests_total",
        "HTTP requests answered, by route template, method and status class"
    );
    describe_histogram!(
        "pricehub_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by route template, method and status class"
    );
    describe_gauge!(
        "pricehub_http_requests_in_flight",
        "HTTP requests being processed now"
    );
    describe_gauge!(
        "pricehub_db_pool_connections",
        "Database pool connections by state (idle, in_use, max)"
    );
    describe_gauge!(
        "pricehub_ready",
        "1 when the API is ready (the same answer as /readyz), 0 when not; set at each scrape"
    );
    describe_counter!(
        "pricehub_db_errors_total",
        "Database errors that reached an API response, by kind (pool_timeout, connection, database, other)"
    );
    crate::rates::metrics::describe();
    crate::orders::metrics::describe();
    crate::feed::metrics::describe();
}

/// Values of the `kind` label of `pricehub_db_errors_total`.
pub const DB_ERROR_KINDS: &[&str] = &["pool_timeout", "connection", "database", "other"];

/// Counts a database error on its way to an API response.
pub fn count_db_error(err: &sqlx::Error) {
    let kind = match err {
        sqlx::Error::PoolTimedOut => "pool_timeout",
        sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => "connection",
        sqlx::Error::Database(_) => "database",
        _ => "other",
    };
    metrics::counter!("pricehub_db_errors_total", "kind" => kind).increment(1);
}

/// Registers the API's database error counters at 0 (called when the API starts).
pub fn register_db_errors() {
    for kind in DB_ERROR_KINDS {
        metrics::counter!("pricehub_db_errors_total", "kind" => *kind).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_notices_are_quiet_unless_asked_for() {
        assert_eq!(log_directives("info"), "info,sqlx::postgres::notice=warn");
        let explicit = "debug,sqlx::postgres::notice=info";
        assert_eq!(log_directives(explicit), explicit);
        assert!(EnvFilter::try_new(log_directives("pricehub=debug,warn")).is_ok());
    }
}
