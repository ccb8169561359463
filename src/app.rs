//! The API assembly: its shared state ([`AppState`]), and starting it ([`start_api`]) with
//! its background tasks. What each subcommand runs is in [`crate::run`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::HttpArgs;
use crate::db::Db;
use crate::orders::fx::LastTradePrices;
use crate::orders::service::Orders;
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
    feed: Option<Arc<dyn LastTradePrices>>,
) -> anyhow::Result<RunningApi> {
    start_api_with_feed_and_commits(db, http, shutdown, feed, None).await
}

/// The API with, optionally, the in-process feed's latest prices (orders) and its commit
/// notifications (the instrument stream).
pub async fn start_api_with_feed_and_commits(
    db: Db,
    http: HttpArgs,
    shutdown: CancellationToken,
    feed: Option<Arc<dyn LastTradePrices>>,
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
    let (state, background) = start_features(db, http, shutdown, feed, commits).await?;
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

/// The features behind the API (rates read model, ingestion, orders, status pages,
/// instrument stream) and their background tasks, which stop on `shutdown`.
async fn start_features(
    db: Db,
    http: HttpArgs,
    shutdown: CancellationToken,
    feed: Option<Arc<dyn LastTradePrices>>,
    commits: Option<Arc<tokio::sync::Notify>>,
) -> anyhow::Result<(AppState, Vec<tokio::task::JoinHandle<()>>)> {
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
    Ok((state, background))
}
