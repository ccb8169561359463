//! The order service shared by the handlers ([`Orders`]): placing an order (handed to
//! the group-commit [`writer`](super::writer)), listing them, and the background tasks
//! it starts (rate poller, the writer, limiter housekeeping).

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cursor::cursor_of;
use super::fx::{FeedRateSource, HttpRateSource, LastTradePrices, RateBook, RateSource};
use super::limit::Limiter;
use super::metrics::{outcome, record_btc_cap, record_btc_total};
use super::money::{Amount, Currency};
use super::problems::no_rate;
use super::redis::Redis;
use super::store;
use super::view::{OrderPage, OrderView};
use super::writer::{self, OrderWriter, Pending};
use crate::config::OrdersArgs;
use crate::db::Db;
use crate::http::params::{Page, rows_to_fetch};
use crate::http::problem::Problem;
use crate::idempotency::Key;

/// A valid order request.
#[derive(Debug, Clone, Copy)]
pub struct NewOrder {
    pub currency: Currency,
    pub amount: Amount,
}

impl NewOrder {
    /// What makes two requests "the same order" for Idempotency-Key purposes: the
    /// currency and the amount's value, not the JSON spelling (`10`, `"10.00"`).
    fn fingerprint(&self) -> String {
        let h = Sha256::digest(format!("{}|{}", self.currency, self.amount.cents()));
        format!("{h:x}")
    }
}

/// The order service shared by the handlers.
pub struct Orders {
    pub db: Db,
    pub rates: Arc<RateBook>,
    pub limiter: Limiter,
    pub redis: Option<Redis>,
    pub cap_sats: i64,
    pub trusted_proxies: Vec<IpNet>,
    queue: mpsc::Sender<Pending>,
}

impl Orders {
    /// Connects Redis (when configured), picks the rate source, fetches the first rates
    /// and starts the background tasks (rate poller, limiter housekeeping).
    pub async fn start(
        db: Db,
        args: &OrdersArgs,
        feed: Option<Arc<dyn LastTradePrices>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<Orders>, Vec<tokio::task::JoinHandle<()>>)> {
        let redis = match &args.redis_url {
            Some(url) => Some(Redis::connect(url.expose(), &args.redis_key_prefix).await?),
            None => None,
        };
        let book = RateBook::new(
            rate_source(args, feed)?,
            redis.clone(),
            Duration::from_secs(args.btc_rate_refresh),
            Duration::from_secs(args.btc_rate_max_age),
        );
        let mut tasks = Vec::new();
        tasks.extend(start_rate_poller(&book, shutdown.clone()).await);
        let queue = spawn_writer(&db, &book, args.btc_cap.0);
        let orders = Arc::new(Orders {
            queue,
            db,
            rates: book,
            limiter: Limiter::new(args.rate_limit_per_minute, redis.clone()),
            redis,
            cap_sats: args.btc_cap.0,
            trusted_proxies: args.trusted_proxies.clone(),
        });
        if let Ok(total) = store::ledger_total(&orders.db).await {
            record_btc_total(total);
        }
        record_btc_cap(orders.cap_sats);
        tasks.push(spawn_limiter_housekeeping(orders.clone(), shutdown));
        Ok((orders, tasks))
    }

    /// `POST /orders`: hands the order to this process's writer, which commits it with
    /// whatever else is waiting (see [`writer`]).
    pub async fn place(&self, key: Option<Key>, req: NewOrder) -> Result<Response, Problem> {
        let key = key.map(|mut k| {
            k.request_hash = req.fingerprint();
            k
        });
        let rates = self.rates.current().await;
        if key.is_none()
            && let Err(why) = rates
        {
            // Nothing to replay: refuse at once.
            outcome("no_rate");
            return Err(no_rate(&self.rates, why));
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || Problem::unavailable("the order writer has stopped");
        self.queue
            .send(Pending {
                req,
                key,
                rates,
                reply,
                span: tracing::Span::current(),
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// `GET /orders`: one page, newest first.
    pub async fn list(
        &self,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: usize,
    ) -> Result<OrderPage, Problem> {
        let rows = store::list(&self.db, after, rows_to_fetch(limit)).await?;
        let page = Page::new(rows, limit, cursor_of);
        Ok(OrderPage {
            orders: page.items.iter().map(OrderView::from).collect(),
            next_cursor: page.next_cursor(),
        })
    }

    /// Refreshes the gauges that come from the database (called on `/metrics`).
    pub async fn record_metrics(&self) {
        if let Ok(total) = store::ledger_total(&self.db).await {
            record_btc_total(total);
        }
        self.rates.record_age();
    }

    /// Freshness of the rate that would price an order now, for `/readyz`.
    pub async fn rate_status(&self) -> serde_json::Value {
        let newest = self.rates.newest().await;
        let age = newest.as_ref().map(|r| r.age(Utc::now()));
        let fresh = age.is_some_and(|a| a <= self.rates.max_age);
        serde_json::json!({
            "source": self.rates.source_name(),
            "shared_through_redis": self.redis.is_some(),
            "fresh": fresh,
            "age_s": age.map(|a| a.as_secs_f64()),
            "max_age_s": self.rates.max_age.as_secs(),
            "fetched_at": newest.as_ref().map(|r| r.fetched_at),
        })
    }
}

/// The BTC rate source: `--btc-rate-url`, else `--btc-rate-fixed`, else the in-process
/// feed's latest prices; `None` when there is none.
fn rate_source(
    args: &OrdersArgs,
    feed: Option<Arc<dyn LastTradePrices>>,
) -> anyhow::Result<Option<Arc<dyn RateSource>>> {
    Ok(if let Some(url) = &args.btc_rate_url {
        Some(Arc::new(HttpRateSource::new(url)?))
    } else if let Some(fixed) = &args.btc_rate_fixed {
        Some(Arc::new(fixed.clone()))
    } else {
        feed.map(|f| Arc::new(FeedRateSource(f)) as Arc<dyn RateSource>)
    })
}

/// Fetches the first rates (waiting up to 5 s) and starts the poller, when a source is
/// configured.
async fn start_rate_poller(
    book: &Arc<RateBook>,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if book.is_configured() {
        let _ = tokio::time::timeout(Duration::from_secs(5), book.poll_once()).await;
        Some(book.spawn_poller(shutdown))
    } else {
        tracing::info!("no BTC rate source configured (--btc-rate-url): POST /orders answers 503");
        None
    }
}

/// Starts this process's order writer; returns the queue that feeds it.
fn spawn_writer(db: &Db, book: &Arc<RateBook>, cap_sats: i64) -> mpsc::Sender<Pending> {
    let (queue, rx) = mpsc::channel(4 * writer::MAX_BATCH);
    // Not a background task to await at shutdown: it ends when the last request that
    // could submit an order is gone (the channel closes).
    tokio::spawn(
        OrderWriter {
            db: db.clone(),
            rates: book.clone(),
            cap_sats,
        }
        .run(rx),
    );
    queue
}

/// Every minute, forgets the rate limiter's idle clients.
fn spawn_limiter_housekeeping(
    orders: Arc<Orders>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => orders.limiter.shrink(),
            }
        }
    })
}
