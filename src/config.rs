//! Settings for every process kind, from flags and environment variables.
//!
//! The `--help` of each subcommand is the configuration reference; `docs/configuration.md`
//! is checked against it by a test, so the two cannot drift apart.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// A database URL whose password never reaches a log line or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }

    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }

    /// `sqlite://` URL for a file path.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        DatabaseUrl(format!("sqlite://{}", path.display()))
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// Any `scheme://user:password@host/…` URL (a database, Redis) with the password
/// replaced by `***`.
pub fn redact_url(s: &str) -> String {
    let s = &s.to_string();
    let Some(scheme_end) = s.find("://") else {
        return s.clone();
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}{}{}", &s[..scheme_end + 3], masked, &rest[at..])
        }
        None => s.clone(),
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = DatabaseUrl(s.trim().to_string());
        if url.is_postgres() || url.is_sqlite() {
            Ok(url)
        } else {
            Err(format!(
                "unsupported database URL {:?}: expected postgres://… or sqlite://…",
                url.redacted()
            ))
        }
    }
}

/// Parses `--database-url` without echoing the value: clap's own error would print the
/// URL, password included.
#[derive(Clone, Copy, Debug)]
pub struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DatabaseUrl, clap::Error> {
        let name = arg
            .map(|a| a.to_string())
            .unwrap_or_else(|| "--database-url".into());
        let fail = |msg: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name}: {msg}\n"),
            )
            .with_cmd(cmd)
        };
        let s = value
            .to_str()
            .ok_or_else(|| fail("not valid UTF-8".into()))?;
        s.parse().map_err(fail)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How log lines are written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, human-readable otherwise.
    Auto,
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines.
    Pretty,
}

#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "PRICEHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax (e.g. `info`, `pricehub=debug,sqlx=warn`).
    #[arg(long, env = "PRICEHUB_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// Database connection settings shared by every subcommand that touches storage.
#[derive(Args, Clone, Debug)]
pub struct DbArgs {
    /// Database URL: `postgres://user:pass@host/db` or `sqlite://path/to/file.db` (or a file named by `DATABASE_URL_FILE`).
    #[arg(long, env = "DATABASE_URL", value_parser = DatabaseUrlParser, hide_env_values = true)]
    pub database_url: DatabaseUrl,

    /// PostgreSQL password, used instead of one in the URL (or a file named by `PRICEHUB_DATABASE_PASSWORD_FILE`).
    #[arg(long, env = "PRICEHUB_DATABASE_PASSWORD", hide_env_values = true)]
    pub database_password: Option<Secret>,

    /// Maximum connections in the pool.
    #[arg(long, env = "PRICEHUB_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Seconds to wait for a pooled connection before failing a request.
    #[arg(long, env = "PRICEHUB_DB_ACQUIRE_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub db_acquire_timeout: u64,
}

impl DbArgs {
    /// The flags' defaults with this database.
    pub fn new(database_url: DatabaseUrl) -> Self {
        DbArgs {
            database_url,
            ..from_flags(&["--database-url", "sqlite::memory:"])
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.db_acquire_timeout)
    }
}

/// HTTP API settings (`pricehub serve`).
#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    /// Address the API listens on.
    #[arg(long, env = "PRICEHUB_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Seconds a request may take before it is answered with 503.
    #[arg(long, env = "PRICEHUB_REQUEST_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,

    /// Seconds to wait for in-flight requests after SIGTERM/SIGINT before exiting.
    #[arg(long, env = "PRICEHUB_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    /// Longest date range, in days, that `GET /rates` answers.
    #[arg(long, env = "PRICEHUB_RATES_MAX_DAYS", default_value_t = 3660, value_parser = clap::value_parser!(u32).range(1..))]
    pub rates_max_days: u32,

    /// Apply pending migrations at start-up (disable when a deploy job runs `pricehub migrate`).
    #[arg(long, env = "PRICEHUB_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,

    /// Log one line per request (method, route template, status, latency, bytes, request id)
    /// under the `pricehub::access` target.
    #[arg(long, env = "PRICEHUB_ACCESS_LOG", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub access_log: bool,

    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub ingest: IngestArgs,

    #[command(flatten)]
    pub orders: OrdersArgs,

    #[command(flatten)]
    pub status: StatusArgs,

    #[command(flatten)]
    pub stream: StreamArgs,
}

/// The live instrument stream (`GET /instruments/stream`, Server-Sent Events).
#[derive(Args, Clone, Debug)]
pub struct StreamArgs {
    /// Seconds without an event after which a stream gets a heartbeat comment.
    #[arg(long, env = "PRICEHUB_STREAM_HEARTBEAT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stream_heartbeat: u64,

    /// Events a stream client may fall behind before it is disconnected.
    #[arg(long, env = "PRICEHUB_STREAM_CLIENT_BUFFER", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub stream_client_buffer: u64,

    /// Recent events kept so that a reconnecting client (Last-Event-ID) can resume.
    #[arg(long, env = "PRICEHUB_STREAM_REPLAY", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub stream_replay: u64,

    /// Milliseconds between two reads of the instruments on SQLite when the collector runs in another process (PostgreSQL uses LISTEN/NOTIFY).
    #[arg(long, env = "PRICEHUB_STREAM_POLL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub stream_poll_ms: u64,
}

impl Default for StreamArgs {
    fn default() -> Self {
        defaults_of()
    }
}

impl Default for HttpArgs {
    fn default() -> Self {
        defaults_of()
    }
}

/// The status page (`GET /`).
#[derive(Args, Clone, Debug, Default)]
pub struct StatusArgs {
    /// Who deployed this instance, shown on the status page (the original's `USER_NAME` works too).
    #[arg(long, env = "PRICEHUB_USER_NAME")]
    pub user_name: Option<String>,

    /// Link for the deployer's name on the status page (the original's `USER_URL` works too).
    #[arg(long, env = "PRICEHUB_USER_URL")]
    pub user_url: Option<String>,

    /// Key of the HMAC that turns visitor addresses into stored ids; unset, one is generated once and kept in the database.
    #[arg(long, env = "PRICEHUB_VISIT_KEY", hide_env_values = true)]
    pub visit_key: Option<Secret>,
}

impl StatusArgs {
    /// `--user-name`, else the original app's `USER_NAME`.
    pub fn deployer_name(&self) -> Option<String> {
        self.user_name
            .clone()
            .or_else(|| std::env::var("USER_NAME").ok())
            .filter(|s| !s.trim().is_empty())
    }

    /// `--user-url`, else the original app's `USER_URL`.
    pub fn deployer_url(&self) -> Option<String> {
        self.user_url
            .clone()
            .or_else(|| std::env::var("USER_URL").ok())
            .filter(|s| !s.trim().is_empty())
    }
}

/// Connection limits and draining of an HTTP server (the API, or a feed process's side
/// port). Each process runs one HTTP server, so the same flags serve every subcommand.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct ConnArgs {
    /// Seconds a client has to send a complete request head (request line and headers) after connecting or after its first byte; then the connection is closed (slowloris guard).
    #[arg(long, env = "PRICEHUB_HTTP_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout: u64,

    /// Seconds an idle keep-alive connection (no request in progress) stays open.
    #[arg(long, env = "PRICEHUB_HTTP_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_idle_timeout: u64,

    /// Largest request head (request line and headers) in bytes; larger gets 431.
    #[arg(long, env = "PRICEHUB_HTTP_MAX_HEADER_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub http_max_header_bytes: u64,

    /// Most open connections; past it a new connection is answered 503 and closed (lowered to fit the descriptor limit).
    #[arg(long, env = "PRICEHUB_HTTP_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub http_max_connections: u64,

    /// Seconds after SIGTERM during which /readyz answers 503 "draining" while requests are still served; then the listener closes.
    #[arg(long, env = "PRICEHUB_DRAIN_DELAY", default_value_t = 0)]
    pub drain_delay: u64,
}

impl Default for ConnArgs {
    fn default() -> Self {
        defaults_of()
    }
}

impl ConnArgs {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.http_header_timeout)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.http_idle_timeout)
    }
    pub fn drain_delay(&self) -> Duration {
        Duration::from_secs(self.drain_delay)
    }
}

/// A secret setting (token, password): never printed by `Debug` or in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(Secret(s.to_string()))
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Batch ingestion of prices (`POST /prices`, `POST /batches`).
#[derive(Args, Clone, Debug)]
pub struct IngestArgs {
    /// Bearer token that authorises writes (or a file named by `PRICEHUB_INGEST_TOKEN_FILE`); with none set, ingestion is disabled (403).
    #[arg(long, env = "PRICEHUB_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<Secret>,

    /// Largest accepted batch body in bytes (413 above it).
    #[arg(long, env = "PRICEHUB_INGEST_MAX_BODY_BYTES", default_value_t = 100 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub ingest_max_body_bytes: u64,

    /// Most rows in one batch (413 above it).
    #[arg(long, env = "PRICEHUB_INGEST_MAX_ROWS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ingest_max_rows: u64,

    /// Run the worker that commits asynchronous batches (`POST /batches`) in this process.
    #[arg(long, env = "PRICEHUB_INGEST_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub ingest_worker: bool,

    /// Attempts at an async batch before one that keeps failing is rejected (dead-lettered).
    #[arg(long, env = "PRICEHUB_INGEST_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub ingest_max_attempts: u32,

    /// Delay before retrying an async batch whose attempt failed, in ms; doubled each time.
    #[arg(long, env = "PRICEHUB_INGEST_RETRY_BASE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ingest_retry_base_ms: u64,

    /// Longest delay between two attempts at an async batch, in ms.
    #[arg(long, env = "PRICEHUB_INGEST_RETRY_MAX_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ingest_retry_max_ms: u64,
}

impl Default for IngestArgs {
    fn default() -> Self {
        defaults_of()
    }
}

/// A BTC quantity from the command line, held in satoshis.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BtcCap(pub i64);

fn parse_btc_cap(s: &str) -> Result<BtcCap, String> {
    crate::orders::money::parse_btc(s).map(BtcCap)
}

/// BTC buy orders (`POST /orders`, `GET /orders`): rates, cap, rate limits, Redis.
#[derive(Args, Clone, Debug)]
pub struct OrdersArgs {
    /// URL of a CoinDesk v1 `currentprice` JSON document to take BTC rates from.
    #[arg(long, env = "PRICEHUB_BTC_RATE_URL")]
    pub btc_rate_url: Option<String>,

    /// Fixed BTC rates `USD=…,EUR=…,GBP=…` instead of a live source (demos and tests only).
    #[arg(long, env = "PRICEHUB_BTC_RATE_FIXED", conflicts_with = "btc_rate_url")]
    pub btc_rate_fixed: Option<crate::orders::fx::FixedRates>,

    /// Seconds between two fetches of the BTC rates.
    #[arg(long, env = "PRICEHUB_BTC_RATE_REFRESH", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub btc_rate_refresh: u64,

    /// Oldest BTC rate, in seconds, that may price an order; older means 503 with Retry-After.
    #[arg(long, env = "PRICEHUB_BTC_RATE_MAX_AGE", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub btc_rate_max_age: u64,

    /// Most BTC all orders together may buy (up to 8 decimal places); orders past it get 409.
    #[arg(long, env = "PRICEHUB_BTC_CAP", default_value = "100", value_parser = parse_btc_cap)]
    pub btc_cap: BtcCap,

    /// Requests per minute each client may make to the order routes (0 turns limiting off).
    #[arg(long, env = "PRICEHUB_RATE_LIMIT_PER_MINUTE", default_value_t = 60)]
    pub rate_limit_per_minute: u32,

    /// Proxy networks (comma-separated CIDRs) whose X-Forwarded-For header is believed (rate limits, status-page visitors).
    #[arg(long, env = "PRICEHUB_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Redis URL (or a file named by `REDIS_URL_FILE`); shares the BTC rate cache and the rate limits between API replicas.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Prefix of every Redis key this deployment uses.
    #[arg(long, env = "PRICEHUB_REDIS_KEY_PREFIX", default_value = "pricehub:")]
    pub redis_key_prefix: String,
}

impl Default for OrdersArgs {
    fn default() -> Self {
        defaults_of()
    }
}

impl HttpArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }
}

/// `pricehub serve`: the API and pages.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `pricehub all` (and `pricehub` with no arguments): everything in one process on SQLite.
#[derive(Args, Clone, Debug)]
pub struct AllArgs {
    /// Directory for the embedded database and other local state.
    #[arg(long, env = "PRICEHUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Use this database instead of the SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", value_parser = DatabaseUrlParser, hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Do not generate the synthetic demo data set when the database has no rates.
    #[arg(long, env = "PRICEHUB_NO_DEMO_DATA")]
    pub no_demo_data: bool,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub feed: EmbeddedFeedArgs,
}

/// The live feed inside `pricehub all`: a provider and a collector in the same process.
#[derive(Args, Clone, Debug)]
pub struct EmbeddedFeedArgs {
    /// Do not run the embedded provider and collector.
    #[arg(long, env = "PRICEHUB_NO_FEED")]
    pub no_feed: bool,

    /// Address of the embedded provider's feed (port 0: any free port).
    #[arg(long, env = "PRICEHUB_FEED_LISTEN", default_value = "127.0.0.1:0")]
    pub feed_listen: SocketAddr,

    /// Trades per second of the embedded provider (`--feed-rate` is an alias).
    #[arg(long, visible_alias = "feed-rate", env = "PRICEHUB_FEED_TRADES_PER_SECOND", default_value_t = 2.0, value_parser = parse_trades_per_second)]
    pub feed_trades_per_second: f64,
}

impl Default for EmbeddedFeedArgs {
    fn default() -> Self {
        defaults_of()
    }
}

impl Default for LogArgs {
    fn default() -> Self {
        defaults_of()
    }
}

/// `pricehub import`.
#[derive(Args, Clone, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The pg_dump file of the rates database (either edition).
    pub file: PathBuf,
}

/// `pricehub migrate`.
#[derive(Args, Clone, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

/// How the provider generates trades.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FeedMode {
    /// One shared market (random walks) broadcast to every client.
    Broadcast,
    /// The original provider: an independent uniform stream per connection, 0.2–3 s apart.
    Legacy,
}

/// `pricehub provider`: serves the live feed on TCP.
#[derive(Args, Clone, Debug)]
pub struct ProviderArgs {
    /// Address the feed (binary frames over TCP) is served on.
    #[arg(
        long,
        env = "PRICEHUB_PROVIDER_LISTEN",
        default_value = "127.0.0.1:5555"
    )]
    pub listen: SocketAddr,

    /// Address of the HTTP side port (/livez, /readyz, /metrics, /v1/bpi/currentprice.json).
    #[arg(
        long,
        env = "PRICEHUB_PROVIDER_HTTP_LISTEN",
        default_value = "127.0.0.1:5556"
    )]
    pub http_listen: SocketAddr,

    /// Trades per second of the shared market (broadcast mode); up to millions for benchmarks (`--rate` is an alias).
    #[arg(long, visible_alias = "rate", env = "PRICEHUB_PROVIDER_TRADES_PER_SECOND", default_value_t = 2.0, value_parser = parse_trades_per_second)]
    pub trades_per_second: f64,

    /// Seed of the random market, for reproducible streams (random when absent).
    #[arg(long, env = "PRICEHUB_PROVIDER_SEED")]
    pub seed: Option<u64>,

    /// Instrument list `SYMBOL:start_price:tick:lot[:volatility[:max_lots[:drift]]],…` (default: AAPL, GOOG, MSFT, SPY, BTCUSD, BTCEUR, BTCGBP, EURUSD, GBPUSD, USDJPY).
    #[arg(long, env = "PRICEHUB_PROVIDER_INSTRUMENTS")]
    pub instruments: Option<String>,

    /// broadcast: one market for all clients; legacy: the original per-connection stream.
    #[arg(long, env = "PRICEHUB_PROVIDER_MODE", value_enum, default_value_t = FeedMode::Broadcast)]
    pub mode: FeedMode,

    /// Frames a client may fall behind before it is disconnected (broadcast mode).
    #[arg(long, env = "PRICEHUB_PROVIDER_CLIENT_BUFFER", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
    pub client_buffer: u64,

    /// Stop generating after this many trades (connections stay open); for tests and benchmarks.
    #[arg(long, env = "PRICEHUB_PROVIDER_MAX_TRADES")]
    pub max_trades: Option<u64>,

    /// Start the market only once this many clients are connected (broadcast mode).
    #[arg(long, env = "PRICEHUB_PROVIDER_WAIT_FOR_CLIENTS", default_value_t = 0)]
    pub wait_for_clients: usize,

    #[command(flatten)]
    pub conn: ConnArgs,
}

fn parse_trades_per_second(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e8 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate: expected trades per second, above 0 and at most 1e8"
        )),
    }
}

impl Default for ProviderArgs {
    fn default() -> Self {
        defaults_of()
    }
}

/// Collector behaviour (everything but the database and the HTTP port).
#[derive(Args, Clone, Debug)]
pub struct CollectorOptions {
    /// Provider to connect to, HOST:PORT.
    #[arg(
        long,
        env = "PRICEHUB_COLLECTOR_PROVIDER",
        default_value = "127.0.0.1:5555"
    )]
    pub provider: String,

    /// Trades per database write (a batch is also flushed when --flush-interval-ms passes).
    #[arg(long, env = "PRICEHUB_COLLECTOR_BATCH_SIZE", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: u64,

    /// Longest time a received trade waits before it is written, in milliseconds.
    #[arg(long, env = "PRICEHUB_COLLECTOR_FLUSH_INTERVAL_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub flush_interval_ms: u64,

    /// Directory of the on-disk spool used while the database is unreachable.
    #[arg(
        long,
        env = "PRICEHUB_COLLECTOR_DATA_DIR",
        default_value = "./data/collector"
    )]
    pub data_dir: PathBuf,

    /// Batch writes in flight at once (each on its own database connection).
    #[arg(long, env = "PRICEHUB_COLLECTOR_MAX_INFLIGHT", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub max_inflight: u64,

    /// Trades kept in memory while the database is unreachable before spilling to the spool.
    #[arg(long, env = "PRICEHUB_COLLECTOR_MAX_BUFFERED", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_buffered: u64,

    /// Size at which a spool segment is closed (fsynced) and a new one started, in bytes.
    #[arg(long, env = "PRICEHUB_COLLECTOR_SPOOL_SEGMENT_BYTES", default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub spool_segment_bytes: u64,

    /// Seconds to keep trying the database on SIGTERM before spooling what is left.
    #[arg(
        long,
        env = "PRICEHUB_COLLECTOR_SHUTDOWN_TIMEOUT",
        default_value_t = 10
    )]
    pub shutdown_timeout: u64,

    /// Apply pending migrations when the database is first reached.
    #[arg(long, env = "PRICEHUB_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,

    /// Connection limits of the HTTP side port.
    #[command(flatten)]
    pub conn: ConnArgs,
}

impl CollectorOptions {
    pub fn new(provider: impl Into<String>, data_dir: PathBuf) -> Self {
        CollectorOptions {
            provider: provider.into(),
            batch_size: 20_000,
            flush_interval_ms: 200,
            data_dir,
            max_inflight: 2,
            max_buffered: 200_000,
            spool_segment_bytes: 16 << 20,
            shutdown_timeout: 10,
            migrate: true,
            conn: ConnArgs::default(),
        }
    }
}

/// `pricehub collector`: stores the live feed.
#[derive(Args, Clone, Debug)]
pub struct CollectorArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address of the HTTP side port (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "PRICEHUB_COLLECTOR_HTTP_LISTEN",
        default_value = "127.0.0.1:5557"
    )]
    pub http_listen: SocketAddr,

    #[command(flatten)]
    pub collector: CollectorOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let u: DatabaseUrl = "postgres://app:s3cret@db.example:5432/rates?sslmode=require"
            .parse()
            .unwrap();
        assert_eq!(
            u.redacted(),
            "postgres://app:***@db.example:5432/rates?sslmode=require"
        );
        assert!(!format!("{u:?}").contains("s3cret"));
        assert!(!format!("{u}").contains("s3cret"));
        let u: DatabaseUrl = "postgres://app@db/rates".parse().unwrap();
        assert_eq!(u.redacted(), "postgres://app@db/rates");
        let u: DatabaseUrl = "sqlite://data/x.db".parse().unwrap();
        assert_eq!(u.redacted(), "sqlite://data/x.db");
    }

    #[test]
    fn rejects_unknown_schemes() {
        let err = "mysql://root:pw@x/y".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.contains("unsupported database URL"));
        assert!(!err.contains("pw"), "{err}");
    }
}

/// A settings struct as its flags' declared defaults: the one place a default is written
/// is its `#[arg(default_value…)]`, and `Default` impls come from here. Environment
/// variables are ignored (a default is not what this shell happens to export).
pub fn defaults_of<T: clap::Args + clap::FromArgMatches>() -> T {
    from_flags(&[])
}

/// A settings struct parsed from `flags` alone (no environment), for defaults with the
/// few required values filled in.
pub fn from_flags<T: clap::Args + clap::FromArgMatches>(flags: &[&str]) -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|a| a.env(None::<&str>));
    let matches = cmd
        .try_get_matches_from(flags)
        .unwrap_or_else(|e| panic!("the declared defaults do not parse: {e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("the declared defaults: {e}"))
}

#[cfg(test)]
mod defaults_tests {
    use super::*;

    /// `Default` is the flags' declared defaults (spot checks across the structs).
    #[test]
    fn defaults_are_the_declared_flag_defaults() {
        let h = HttpArgs::default();
        assert_eq!(h.listen, "127.0.0.1:3000".parse::<SocketAddr>().unwrap());
        assert_eq!(h.rates_max_days, 3660);
        assert!(h.migrate);
        assert_eq!(h.conn.http_max_connections, 4096);
        assert_eq!(h.stream.stream_replay, 1024);
        let p = ProviderArgs::default();
        assert_eq!(p.listen, "127.0.0.1:5555".parse::<SocketAddr>().unwrap());
        assert_eq!(p.client_buffer, 65_536);
        assert_eq!(
            DbArgs::new(DatabaseUrl::sqlite_file(std::path::Path::new("/x"))).db_max_connections,
            16
        );
    }
}
