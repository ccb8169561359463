//! The storage handle: one `Db` that is either PostgreSQL (production) or SQLite (the
//! embedded default), with embedded migrations per backend. Feature modules keep their
//! own queries for both backends (through [`db_run!`] / [`tx_run!`] when the SQL is the
//! same on both); only connection, migration and health live here.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, PgPool, Pool, SqlitePool};

use crate::config::DbArgs;

pub mod text;

/// Runs `$body` on whichever pool `$db` holds, with `$pool` bound to it (`&PgPool` or
/// `&SqlitePool`): for queries whose text and bindings are the same on both backends
/// (`$N` placeholders work on SQLite too). The body is compiled once per backend. Write
/// the two arms out by hand only where the SQL really differs, and say why there.
#[macro_export]
macro_rules! db_run {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}

/// [`db_run!`] for a transaction: `$tx` is bound to the backend's
/// `sqlx::Transaction` (`&mut **$tx` is its connection).
#[macro_export]
macro_rules! tx_run {
    ($tx:expr, |$t:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres($t) => $body,
            $crate::db::Tx::Sqlite($t) => $body,
        }
    };
}

pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Rows per multi-row INSERT on SQLite. A statement holds at most 32,766 bind
/// parameters; 500 rows stays under it for rows of up to 65 columns and is large enough
/// that the statement's cost is spread thin.
pub const SQLITE_ROWS_PER_INSERT: usize = 500;

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The statement for this backend, where the SQL really differs (casts, `now()`
    /// against `strftime`, locking clauses); the code around it is written once.
    pub fn sql(self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match self {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// What `/readyz` reports about the database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbHealth {
    pub reachable: bool,
    pub latency_ms: Option<f64>,
    pub applied_migrations: Option<i64>,
    pub expected_migrations: i64,
    pub error: Option<String>,
}

impl DbHealth {
    pub fn migrated(&self) -> bool {
        self.applied_migrations == Some(self.expected_migrations)
    }
}

impl Db {
    /// Opens a pool. SQLite files (and their directory) are created when missing.
    pub async fn connect(args: &DbArgs) -> anyhow::Result<Db> {
        Self::open(args, false).await
    }

    /// A pool that connects on first use: for processes that must start (and buffer)
    /// while the database is down, such as the feed collector.
    pub async fn connect_lazy(args: &DbArgs) -> anyhow::Result<Db> {
        Self::open(args, true).await
    }

    async fn open(args: &DbArgs, lazy: bool) -> anyhow::Result<Db> {
        let url = &args.database_url;
        if url.is_postgres() {
            let mut opts = PgConnectOptions::from_str(url.expose())
                .with_context(|| format!("invalid PostgreSQL URL {url}"))?;
            if let Some(password) = &args.database_password {
                opts = opts.password(password.expose());
            }
            let opts = opts
                .application_name("pricehub")
                .log_statements(tracing::log::LevelFilter::Trace)
                .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
            let pool_opts = PgPoolOptions::new()
                .max_connections(args.db_max_connections.max(1))
                .acquire_timeout(args.acquire_timeout());
            let pool = open_pool(pool_opts, opts, lazy)
                .await
                .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
            Ok(Db::Postgres(pool))
        } else {
            let opts = SqliteConnectOptions::from_str(url.expose())
                .with_context(|| format!("invalid SQLite URL {url}"))?;
            let path = opts.get_filename().to_path_buf();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create directory {}", dir.display()))?;
            }
            let opts = opts
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .log_statements(tracing::log::LevelFilter::Trace);
            let pool_opts = SqlitePoolOptions::new()
                .max_connections(args.db_max_connections.clamp(1, 8))
                .acquire_timeout(args.acquire_timeout());
            let pool = open_pool(pool_opts, opts, lazy)
                .await
                .with_context(|| format!("cannot open SQLite database {url}"))?;
            Ok(Db::Sqlite(pool))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self {
            Db::Postgres(_) => &POSTGRES_MIGRATOR,
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
        }
    }

    /// Applies pending migrations. On a PostgreSQL database loaded the original way
    /// (`psql < rates.sql`) the first migration adopts the existing tables.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = self.migrator();
        db_run!(self, |pool| migrator.run(pool).await).context("applying database migrations")
    }

    pub async fn close(&self) {
        db_run!(self, |pool| pool.close().await)
    }

    /// Pings the database and compares applied migrations with the embedded ones.
    pub async fn health(&self) -> DbHealth {
        let expected = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count() as i64;
        let started = Instant::now();
        let q = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let ping = db_run!(self, |pool| sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(pool)
            .await
            .map(|_| ()));
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(e) = ping {
            return DbHealth {
                reachable: false,
                latency_ms: None,
                applied_migrations: None,
                expected_migrations: expected,
                error: Some(e.to_string()),
            };
        }
        let applied = db_run!(self, |pool| sqlx::query_scalar::<_, i64>(q)
            .fetch_one(pool)
            .await);
        DbHealth {
            reachable: true,
            latency_ms: Some(latency_ms),
            applied_migrations: applied.as_ref().ok().copied().or(Some(0)),
            expected_migrations: expected,
            error: applied
                .err()
                .map(|_| "migrations have not been applied".to_string()),
        }
    }

    /// Publishes pool gauges (called when `/metrics` is scraped).
    pub fn record_pool_metrics(&self) {
        let (size, idle, max) = db_run!(self, |pool| (
            pool.size(),
            pool.num_idle() as u32,
            pool.options().get_max_connections(),
        ));
        let backend = self.backend().name();
        metrics::gauge!("pricehub_db_pool_connections", "backend" => backend, "state" => "idle")
            .set(idle as f64);
        metrics::gauge!("pricehub_db_pool_connections", "backend" => backend, "state" => "in_use")
            .set(size.saturating_sub(idle) as f64);
        metrics::gauge!("pricehub_db_pool_connections", "backend" => backend, "state" => "max")
            .set(max as f64);
    }
}

/// A pool that connects now, or (`lazy`) on first use.
async fn open_pool<DB: sqlx::Database>(
    pool: PoolOptions<DB>,
    opts: <DB::Connection as sqlx::Connection>::Options,
    lazy: bool,
) -> Result<Pool<DB>, sqlx::Error> {
    if lazy {
        Ok(pool.connect_lazy_with(opts))
    } else {
        pool.connect_with(opts).await
    }
}

/// A transaction on either backend. Feature modules match on it to run their queries.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Db {
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
        })
    }
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Postgres(_) => Backend::Postgres,
            Tx::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        tx_run!(self, |t| t.commit().await)
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        tx_run!(self, |t| t.rollback().await)
    }
}
