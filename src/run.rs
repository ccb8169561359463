//! What each subcommand runs (`serve`, `all`, `import`, `migrate`, `provider`,
//! `collector`); `main.rs` parses the command line and calls one of these. The API they
//! start is assembled in [`crate::app`].

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::app::{start_api, start_api_with_feed_and_commits};
use crate::config::{
    AllArgs, CollectorArgs, DatabaseUrl, DbArgs, ImportArgs, MigrateArgs, ProviderArgs, ServeArgs,
};
use crate::db::Db;
use crate::orders::fx::LastTradePrices;
use crate::{feed, http, rates, telemetry};

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
        .map(|(_, collector)| Arc::new(collector.latest.clone()) as Arc<dyn LastTradePrices>);
    let commits = feed.as_ref().map(|(_, c)| c.committed.clone());
    let api =
        start_api_with_feed_and_commits(db.clone(), args.http, shutdown, hook, commits).await?;
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
