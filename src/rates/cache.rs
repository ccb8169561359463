//! In-memory read model for `GET /rates`.
//!
//! Holds the catalog and, per (origin, destination) location pair asked for, the whole
//! daily series summed over the pair's lanes. A query is then a binary search and a loop
//! over the requested days: no database round trip on the hot path.
//!
//! Consistency: every write to prices/ports/regions bumps `rates_generation` and (on
//! PostgreSQL) sends `NOTIFY pricehub_rates`, both inside the writing transaction. Writers
//! in this process call [`RatesCache::invalidate`] after their commit, so their own answers
//! are fresh the moment they return; other processes are seen through LISTEN (about a
//! millisecond) with a once-a-second poll of the generation as the safety net. A load
//! that raced with an invalidation is used for its request but never cached.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use super::catalog::{Catalog, Location};
use super::store::{self, DayAgg};
use crate::db::Db;

/// Upper bound on cached day entries (about 24 bytes each) before the cache starts over.
const MAX_CACHED_DAYS: usize = 4_000_000;

#[derive(Default)]
struct Inner {
    catalog: Option<Arc<Catalog>>,
    series: HashMap<String, Arc<[DayAgg]>>,
    days: usize,
}

pub struct RatesCache {
    db: Db,
    epoch: AtomicU64,
    inner: RwLock<Inner>,
}

impl RatesCache {
    pub fn new(db: Db) -> Arc<RatesCache> {
        Arc::new(RatesCache {
            db,
            epoch: AtomicU64::new(0),
            inner: RwLock::new(Inner::default()),
        })
    }

    /// Drops everything cached. Call after committing a write to the rates tables.
    pub fn invalidate(&self) {
        let mut inner = self.inner.write();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        *inner = Inner::default();
        metrics::counter!("pricehub_rates_cache_invalidations_total").increment(1);
    }

    pub async fn catalog(&self) -> Result<Arc<Catalog>, sqlx::Error> {
        if let Some(c) = self.inner.read().catalog.clone() {
            return Ok(c);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let catalog = Arc::new(store::load_catalog(&self.db).await?);
        let mut inner = self.inner.write();
        if self.epoch.load(Ordering::SeqCst) == epoch {
            inner.catalog = Some(catalog.clone());
        }
        Ok(catalog)
    }

    /// The daily series from `orig` to `dest` (all history, oldest day first).
    pub async fn series(
        &self,
        orig: &Location,
        dest: &Location,
    ) -> Result<Arc<[DayAgg]>, sqlx::Error> {
        let key = format!("{}\u{0}{}", orig.key(), dest.key());
        if let Some(s) = self.inner.read().series.get(&key).cloned() {
            metrics::counter!("pricehub_rates_cache_hits_total").increment(1);
            return Ok(s);
        }
        metrics::counter!("pricehub_rates_cache_misses_total").increment(1);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let series: Arc<[DayAgg]> =
            store::load_series(&self.db, &orig.port_codes(), &dest.port_codes())
                .await?
                .into();
        let mut inner = self.inner.write();
        if self.epoch.load(Ordering::SeqCst) == epoch {
            if inner.days + series.len() > MAX_CACHED_DAYS {
                inner.series.clear();
                inner.days = 0;
            }
            inner.days += series.len();
            inner.series.insert(key, series.clone());
        }
        Ok(series)
    }

    /// Watches for writes made by other processes until `shutdown`.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            let poll = cache.clone().poll_generation(shutdown.clone());
            match cache.db.clone() {
                Db::Postgres(pool) => {
                    let listen = cache.clone().listen(pool, shutdown.clone());
                    tokio::join!(poll, listen);
                }
                Db::Sqlite(_) => poll.await,
            }
        })
    }

    async fn poll_generation(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match store::generation(&self.db).await {
                Ok(g) => {
                    if last.is_some_and(|l| l != g) {
                        self.invalidate();
                    }
                    last = Some(g);
                }
                Err(e) => tracing::debug!(error = %e, "cannot read rates generation"),
            }
        }
    }

    async fn listen(self: Arc<Self>, pool: sqlx::PgPool, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "rates cache cannot LISTEN; relying on polling");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if let Err(e) = listener.listen("pricehub_rates").await {
                tracing::warn!(error = %e, "LISTEN pricehub_rates failed");
                continue;
            }
            backoff = Duration::from_millis(100);
            // Anything may have changed while we were not listening.
            self.invalidate();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.try_recv() => match n {
                        Ok(Some(_)) => self.invalidate(),
                        Ok(None) => { self.invalidate(); }
                        Err(e) => {
                            tracing::warn!(error = %e, "rates cache listener lost its connection");
                            self.invalidate();
                            break;
                        }
                    }
                }
            }
        }
    }
}
