//! Application builders: what each subcommand runs, and the shared state of the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{
    AllArgs, CollectorArgs, DatabaseUrl, DbArgs, HttpArgs, ImportArgs, MigrateArgs, ProviderArgs,
    ServeArgs,
};
use crate::db::Db;
use crate::orders::Orders;
use crate::orders::fx::LatestPrices;
use crate::rates::cache::RatesCache;
use crate::rates::ingest::Ingest;
use crate::{feed, http, rates, telemetry};

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub rates: Arc<RatesCache>,
    pub ingest: Arc<Ingest>,
    pub orders: Arc<Orders>,
    pub stream: Arc<feed::stream::StreamHub>,
    pub http: Arc<HttpArgs>,
    pub status: Arc<crate::status::Status>,
}

/// A running API: its address and a way to stop it.
pub struct RunningApi {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningApi {
    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server and its background tasks end (after `shutdown` is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await.context("server task panicked")?;
        // The batch worker finishes the batch in hand before it stops.
        self.shutdown.cancel();
        for t in self.background {
            let _ = t.await;
        }
        served
    }
}

/// Starts the API on an already-migrated database. `listen` may use port 0.
pub async fn start_api(
    db: Db,
    http: HttpArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningApi> {
    start_api_with_feed(db, http, shutdown, None).await
}

/// [`start_api`] with the latest prices of an in-process live feed, which price BTC
/// orders when no `--btc-rate-url` is configured.
pub async fn start_api_with_feed(
    db: Db,
    http: HttpArgs,
    shutdown: CancellationToken,
    feed: Option<Arc<dyn LatestPrices>>,
) -> anyhow::Result<RunningApi> {
    start(db, http, shutdown, feed, None).await
}

/// The API with, optionally, the in-process feed's latest prices (orders) and its commit
/// notifications (the instrument stream).
async fn start(
    db: Db,
    http: HttpArgs,
    shutdown: CancellationToken,
    feed: Option<Arc<dyn LatestPrices>>,
    commits: Option<Arc<tokio::sync::Notify>>,
) -> anyhow::Result<RunningApi> {
    telemetry::metrics_handle();
    rates::metrics::register();
    telemetry::register_db_errors();
    crate::orders::metrics::register();
    let listener = TcpListener::bind(http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", http.listen))?;
    let addr = listener.local_addr()?;
    // Background work keeps running while the listener drains.
    let signal = shutdown.clone();
    let shutdown = http::server::after_drain(&signal, http.conn.drain_delay());
    let rates = RatesCache::new(db.clone());
    let mut background = vec![rates.spawn_watcher(shutdown.clone())];
    if let Db::Postgres(pool) = &db {
        background.push(rates::compaction::spawn(
            pool.clone(),
            Duration::from_secs(1),
            shutdown.clone(),
        ));
    }
    let ingest = Ingest::new(
        db.clone(),
        rates.clone(),
        http.ingest.ingest_max_rows as usize,
        (&http.ingest).into(),
    );
    if http.ingest.ingest_worker {
        background.push(ingest.spawn_worker(shutdown.clone()));
    }
    let (orders, tasks) = Orders::start(db.clone(), &http.orders, feed, shutdown.clone()).await?;
    background.extend(tasks);
    let status = crate::status::Status::start(&db, &http.status).await;
    let stream = feed::stream::StreamHub::new(http.stream.clone(), shutdown.clone());
    background.extend(stream.spawn(db.clone(), feed::stream::Trigger::for_db(&db, commits)));
    let state = AppState {
        db,
        rates,
        ingest,
        orders,
        stream,
        http: Arc::new(http),
        status,
    };
    let app = http::router(state.clone());
    let opts = http::ServeOptions {
        name: "api",
        conn: state.http.conn.clone(),
        grace: state.http.shutdown_timeout(),
    };
    let task = tokio::spawn(http::serve(listener, app, signal.clone(), opts));
    Ok(RunningApi {
        addr,
        state,
        shutdown: signal,
        task,
        background,
    })
}

async fn open_db(args: &DbArgs, migrate: bool) -> anyhow::Result<Db> {
    let db = Db::connect(args).await?;
    if migrate {
        db.migrate().await?;
    }
    Ok(db)
}

/// `pricehub serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let shutdown = http::shutdown_on_signals();
    let db = open_db(&args.db, args.http.migrate).await?;
    let api = start_api(db.clone(), args.http, shutdown).await?;
    tracing::info!(
        addr = %api.addr,
        database = %args.db.database_url,
        version = %telemetry::full_version(),
        startup_ms = started.elapsed().as_millis() as u64,
        "pricehub API listening"
    );
    api.wait().await?;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `pricehub all` / `pricehub` with no arguments: everything in one process, SQLite in the
/// data directory by default, demo data on first start.
pub async fn all(args: AllArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let shutdown = http::shutdown_on_signals();
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => DatabaseUrl::sqlite_file(&args.data_dir.join("pricehub.db")),
    };
    let db = open_db(&DbArgs::new(url.clone()), true).await?;
    if !args.no_demo_data {
        seed_demo_data(&db).await?;
    }
    let feed = if args.feed.no_feed {
        None
    } else {
        Some(start_embedded_feed(&args, db.clone(), shutdown.clone()).await?)
    };
    // With no rate URL configured, orders are priced from the embedded feed's BTC trades.
    let hook = feed
        .as_ref()
        .map(|(_, collector)| Arc::new(collector.latest.clone()) as Arc<dyn LatestPrices>);
    let commits = feed.as_ref().map(|(_, c)| c.committed.clone());
    let api = start(db.clone(), args.http, shutdown, hook, commits).await?;
    tracing::info!(
        addr = %api.addr,
        database = %url,
        version = %telemetry::full_version(),
        startup_ms = started.elapsed().as_millis() as u64,
        "pricehub API listening (all-in-one); try: curl 'http://{}/rates?date_from={}&date_to={}&orig_code=china_main&dest_code=northern_europe'",
        api.addr,
        chrono::Utc::now().date_naive() - chrono::Days::new(6),
        chrono::Utc::now().date_naive(),
    );
    if feed.is_some() {
        tracing::info!(
            "live prices: curl http://{}/instruments (the embedded collector stores the embedded provider's trades)",
            api.addr
        );
    }
    api.wait().await?;
    if let Some((provider, collector)) = feed {
        // The token is cancelled by now: the collector flushes what it holds.
        collector.wait().await?;
        provider.wait().await?;
    }
    db.close().await;
    Ok(())
}

/// The embedded default's live feed: a provider on `--feed-listen` and a collector that
/// stores its trades in the same database (spool under the data directory).
async fn start_embedded_feed(
    args: &AllArgs,
    db: Db,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    feed::provider::RunningProvider,
    feed::collector::RunningCollector,
)> {
    let provider_args = ProviderArgs {
        listen: args.feed.feed_listen,
        trades_per_second: args.feed.feed_trades_per_second,
        ..ProviderArgs::default()
    };
    let provider = feed::provider::start(&provider_args, None, shutdown.clone()).await?;
    let opts = crate::config::CollectorOptions::new(
        provider.addr.to_string(),
        args.data_dir.join("collector"),
    );
    let collector = feed::collector::start(opts, db, None, shutdown).await?;
    tracing::info!(provider = %provider.addr, trades_per_second = args.feed.feed_trades_per_second, "embedded live feed running");
    Ok((provider, collector))
}

/// Loads the synthetic data set when the database has no prices yet.
pub async fn seed_demo_data(db: &Db) -> anyhow::Result<()> {
    let (_, _, prices) = rates::store::counts(db).await?;
    if prices > 0 {
        return Ok(());
    }
    let started = Instant::now();
    let today = chrono::Utc::now().date_naive();
    let dump = rates::demo::generate(today, 120, 2021);
    let report = rates::import::load(db, &dump).await?;
    tracing::info!(%report, elapsed_ms = started.elapsed().as_millis() as u64, "generated demo rates data (120 days)");
    Ok(())
}

/// `pricehub import`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = open_db(&args.db, true).await?;
    let report = rates::import::import_file(&db, &args.file).await?;
    db.close().await;
    println!(
        "imported {} in {:.2} s: {report}",
        args.file.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `pricehub migrate`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let db = open_db(&args.db, true).await?;
    let (regions, ports, prices) = rates::store::counts(&db).await?;
    db.close().await;
    println!(
        "migrations applied to {} ({} regions, {} ports, {} prices)",
        args.db.database_url, regions, ports, prices
    );
    Ok(())
}

/// `pricehub provider`: the live feed on TCP plus its HTTP side port, until SIGTERM.
pub async fn provider(args: ProviderArgs) -> anyhow::Result<()> {
    let shutdown = http::shutdown_on_signals();
    let provider = feed::provider::start(&args, Some(args.http_listen), shutdown).await?;
    provider.wait().await?;
    tracing::info!("provider stopped");
    Ok(())
}

/// `pricehub collector`: stores the feed. Starts (and buffers) even while the database
/// is down; on SIGTERM it stops reading, flushes, and exits 0.
pub async fn collector(args: CollectorArgs) -> anyhow::Result<()> {
    let shutdown = http::shutdown_on_signals();
    let db = Db::connect_lazy(&args.db).await?;
    let collector = feed::collector::start(
        args.collector.clone(),
        db.clone(),
        Some(args.http_listen),
        shutdown,
    )
    .await?;
    tracing::info!(database = %args.db.database_url, "collector running");
    let result = collector.wait().await;
    db.close().await;
    result
}
