//! BTC buy orders: `POST /orders` prices a fiat amount in BTC at the current
//! rate and stores it, never letting the sum of all orders pass the BTC cap;
//! `GET /orders` lists them newest first with keyset paging.
//!
//! - [`money`]: amounts, rates and the exact round-up division.
//! - [`rates`]: rate sources (CoinDesk-shaped HTTP, the live feed, fixed) and the cache
//!   that refuses stale rates.
//! - [`store`]: the tables on both backends and the cap ledger.
//! - [`limit`]: per-client rate limiting, in memory or through Redis.
//! - [`writer`]: group commit — one transaction per batch of waiting orders, holding
//!   the cap ledger.
//! - [`routes`]: the HTTP handlers.
//!
//! Status codes: 201 created; 400 malformed JSON or bad paging parameters; 409 the cap
//! would be exceeded (`btc-cap-exceeded`) or an Idempotency-Key reused with another
//! order (`idempotency-key-reused`); 422 an invalid field (`invalid-order`, naming it);
//! 429 rate limited; 503 no fresh rate (`rate-unavailable`), both with `Retry-After`.

pub mod cap;
pub mod fx;
pub mod limit;
pub mod metrics;
pub mod money;
pub mod redis;
pub mod routes;
pub mod store;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use self::fx::{FeedRateSource, HttpRateSource, LatestPrices, NoRate, RateBook, RateSource};
use self::limit::Limiter;
use self::money::{Amount, Currency};
use self::redis::Redis;
use self::store::Order;
use self::writer::{Pending, Writer};
use crate::config::OrdersArgs;
use crate::db::Db;
use crate::http::params::{Cursor, Page, rows_to_fetch};
use crate::http::problem::{Kind, Problem};
use crate::idempotency::Key;

/// An order as the API shows it. Decimals are strings so no client parses them as
/// binary floats.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    #[schema(value_type = String, example = "0f8b6c1e-3a0c-4d5e-9a57-2f1d8e6b4c21")]
    pub id: Uuid,
    /// When the order was stored (UTC, always six fractional digits).
    #[schema(example = "2026-11-23T07:15:02.123456Z")]
    pub created_at: String,
    #[schema(example = "EUR")]
    pub currency: Currency,
    /// Fiat amount, two decimal places.
    #[schema(value_type = String, example = "100.00")]
    pub amount: String,
    /// BTC price in the order's currency (BTC base, fiat quote).
    #[schema(value_type = String, example = "39612.0558")]
    pub rate: String,
    /// `amount / rate` rounded up to 8 decimal places.
    #[schema(value_type = String, example = "0.00252449")]
    pub btc_amount: String,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        OrderView {
            id: o.id,
            created_at: o
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            currency: o.currency,
            amount: o.amount.to_string(),
            rate: o.rate.to_string(),
            btc_amount: format!("{:.8}", o.btc_amount()),
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    #[schema(example = "MTc2Mzg4MjEwMjEyMzQ1NjowZjhiNmMxZTNhMGM0ZDVlOWE1NzJmMWQ4ZTZiNGMyMQ")]
    pub next_cursor: Option<String>,
}

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

pub(crate) fn outcome(label: &'static str) {
    ::metrics::counter!("pricehub_orders_total", "outcome" => label).increment(1);
}

/// Orders are listed by (created_at, id): the cursor holds microseconds and the UUID.
pub fn cursor_of(o: &Order) -> Cursor {
    Cursor::new(o.created_at.timestamp_micros(), o.id.simple())
}

/// The keyset position of a cursor, if it is one of an order list.
pub fn position(c: &Cursor) -> Option<(DateTime<Utc>, Uuid)> {
    if c.time < 0 || c.id.len() != 32 {
        return None;
    }
    let t = DateTime::from_timestamp_micros(c.time)?;
    Some((t, Uuid::try_parse(&c.id).ok()?))
}

fn retry_after(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs_f64().ceil().max(1.0) as u64)
}

impl Orders {
    /// Connects Redis (when configured), picks the rate source, fetches the first rates
    /// and starts the background tasks (rate poller, limiter housekeeping).
    pub async fn start(
        db: Db,
        args: &OrdersArgs,
        feed: Option<Arc<dyn LatestPrices>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<Orders>, Vec<tokio::task::JoinHandle<()>>)> {
        let redis = match &args.redis_url {
            Some(url) => Some(Redis::connect(url.expose(), &args.redis_key_prefix).await?),
            None => None,
        };
        let source: Option<Arc<dyn RateSource>> = if let Some(url) = &args.btc_rate_url {
            Some(Arc::new(HttpRateSource::new(url)?))
        } else if let Some(fixed) = &args.btc_rate_fixed {
            Some(Arc::new(fixed.clone()))
        } else {
            feed.map(|f| Arc::new(FeedRateSource(f)) as Arc<dyn RateSource>)
        };
        let book = RateBook::new(
            source,
            redis.clone(),
            Duration::from_secs(args.btc_rate_refresh),
            Duration::from_secs(args.btc_rate_max_age),
        );
        let mut tasks = Vec::new();
        if book.is_configured() {
            let _ = tokio::time::timeout(Duration::from_secs(5), book.poll_once()).await;
            tasks.push(book.spawn_poller(shutdown.clone()));
        } else {
            tracing::info!(
                "no BTC rate source configured (--btc-rate-url): POST /orders answers 503"
            );
        }
        let (queue, rx) = mpsc::channel(4 * writer::MAX_BATCH);
        // Not a background task to await at shutdown: it ends when the last request that
        // could submit an order is gone (the channel closes).
        tokio::spawn(
            Writer {
                db: db.clone(),
                rates: book.clone(),
                cap_sats: args.btc_cap.0,
            }
            .run(rx),
        );
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
            ::metrics::gauge!("pricehub_orders_btc_total").set(sats_to_btc_f64(total));
        }
        ::metrics::gauge!("pricehub_orders_btc_cap").set(sats_to_btc_f64(orders.cap_sats));
        let o = orders.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => o.limiter.shrink(),
                }
            }
        }));
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
            ::metrics::gauge!("pricehub_orders_btc_total").set(sats_to_btc_f64(total));
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

pub(crate) fn no_rate(book: &RateBook, why: NoRate) -> Problem {
    let detail = match why {
        NoRate::NotConfigured => {
            "no BTC rate source is configured on this server (--btc-rate-url)".to_string()
        }
        NoRate::Missing => "no BTC rate has been fetched yet; retry shortly".to_string(),
        NoRate::Stale { age } => format!(
            "the newest BTC rate is {} s old, more than the {} s allowed; retry shortly",
            age.as_secs(),
            book.max_age.as_secs()
        ),
    };
    Problem::new(Kind::RateUnavailable, detail)
        .with_header(header::RETRY_AFTER, retry_after(book.refresh))
}

pub(crate) fn cap_exceeded(cap_sats: i64, sats: i128, total: Option<i64>) -> Problem {
    let mut p = Problem::new(
        Kind::BtcCapExceeded,
        format!(
            "this order of {} BTC would take the total of all orders past the cap of {} BTC",
            btc_text(sats),
            btc_text(i128::from(cap_sats))
        ),
    )
    .with("btc_amount", btc_text(sats))
    .with("cap_btc", btc_text(i128::from(cap_sats)));
    if let Some(t) = total {
        p = p.with(
            "remaining_btc",
            btc_text(i128::from(cap_sats.saturating_sub(t).max(0))),
        );
    }
    p
}

pub(crate) fn btc_text(sats: i128) -> String {
    format!(
        "{:.8}",
        rust_decimal::Decimal::from_i128_with_scale(sats, 8)
    )
}

/// For gauges only (a metric is a float by nature); the books are kept in satoshis.
pub(crate) fn sats_to_btc_f64(sats: i64) -> f64 {
    sats as f64 / money::SATS_PER_BTC as f64
}
