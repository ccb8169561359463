//! BTC exchange rates: where they come from ([`RateSource`]), and the cache that prices
//! orders ([`RateBook`]), refusing rates older than the maximum age.
//!
//! A poller asks the source every `--btc-rate-refresh` seconds. The result is kept in
//! memory and, with Redis configured, written to one Redis key that every replica reads
//! when it prices an order, so all replicas use the same rate. The age of a rate is the
//! time since it was fetched (for the live feed: since the oldest of the three trades).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::money::{Currency, Rate, parse_decimal};
use super::redis::Redis;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One set of BTC rates (BTC base; EUR, GBP, USD quotes) and when it was observed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub eur: Rate,
    pub gbp: Rate,
    pub usd: Rate,
    pub fetched_at: DateTime<Utc>,
    /// Which source produced it (`http`, `feed`, `fixed`).
    pub source: String,
}

impl Rates {
    pub fn get(&self, c: Currency) -> Rate {
        match c {
            Currency::Eur => self.eur,
            Currency::Gbp => self.gbp,
            Currency::Usd => self.usd,
        }
    }

    pub fn age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.fetched_at).to_std().unwrap_or(Duration::ZERO)
    }
}

/// Somewhere BTC rates come from. Object-safe so the feed can plug one in at run time.
pub trait RateSource: Send + Sync {
    /// Short name for logs and `/readyz` (`http`, `feed`, `fixed`).
    fn name(&self) -> &'static str;
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Rates>>;
}

/// The hook through which an in-process live feed offers its latest trades: price and
/// trade time of a ticker such as `BTCUSD`.
pub trait LastTradePrices: Send + Sync {
    fn latest(&self, ticker: &str) -> Option<(Decimal, DateTime<Utc>)>;
}

/// Rates from the feed's latest BTCUSD, BTCEUR and BTCGBP trades.
pub struct FeedRateSource(pub Arc<dyn LastTradePrices>);

impl RateSource for FeedRateSource {
    fn name(&self) -> &'static str {
        "feed"
    }
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Rates>> {
        Box::pin(async move {
            let get = |t: &str| -> anyhow::Result<(Rate, DateTime<Utc>)> {
                let (p, at) = self
                    .0
                    .latest(t)
                    .ok_or_else(|| anyhow::anyhow!("no {t} trade seen yet"))?;
                Ok((Rate::new(p).map_err(anyhow::Error::msg)?, at))
            };
            let (eur, t1) = get("BTCEUR")?;
            let (gbp, t2) = get("BTCGBP")?;
            let (usd, t3) = get("BTCUSD")?;
            Ok(Rates {
                eur,
                gbp,
                usd,
                fetched_at: t1.min(t2).min(t3),
                source: "feed".into(),
            })
        })
    }
}

/// Fixed rates (`--btc-rate-fixed USD=…,EUR=…,GBP=…`), always fresh: for demos and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedRates {
    pub eur: Rate,
    pub gbp: Rate,
    pub usd: Rate,
}

impl FromStr for FixedRates {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut m = HashMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected CURRENCY=RATE, got {part:?}"))?;
            let c: Currency = k.trim().parse()?;
            let d = parse_decimal(v).ok_or_else(|| format!("{v:?} is not a decimal number"))?;
            m.insert(c, Rate::new(d)?);
        }
        let get = |c: Currency| m.get(&c).copied().ok_or(format!("missing {c}=RATE"));
        Ok(FixedRates {
            eur: get(Currency::Eur)?,
            gbp: get(Currency::Gbp)?,
            usd: get(Currency::Usd)?,
        })
    }
}

impl RateSource for FixedRates {
    fn name(&self) -> &'static str {
        "fixed"
    }
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Rates>> {
        Box::pin(async move {
            Ok(Rates {
                eur: self.eur,
                gbp: self.gbp,
                usd: self.usd,
                fetched_at: Utc::now(),
                source: "fixed".into(),
            })
        })
    }
}

/// An HTTP URL serving the CoinDesk v1 `currentprice` JSON.
pub struct HttpRateSource {
    url: String,
    client: reqwest::Client,
}

impl HttpRateSource {
    pub fn new(url: &str) -> anyhow::Result<HttpRateSource> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("pricehub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpRateSource {
            url: url.to_string(),
            client,
        })
    }
}

impl RateSource for HttpRateSource {
    fn name(&self) -> &'static str {
        "http"
    }
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Rates>> {
        Box::pin(async move {
            let resp = self.client.get(&self.url).send().await?;
            let status = resp.status();
            if !status.is_success() {
                anyhow::bail!("rate source answered {status}");
            }
            let body = resp.bytes().await?;
            parse_coindesk(&body, Utc::now())
        })
    }
}

#[derive(Deserialize)]
struct CoinDesk<'a> {
    #[serde(borrow)]
    bpi: HashMap<String, CoinDeskRate<'a>>,
}

#[derive(Deserialize)]
struct CoinDeskRate<'a> {
    #[serde(borrow, default)]
    rate_float: Option<&'a RawValue>,
    #[serde(default)]
    rate: Option<String>,
}

/// Reads `bpi.{EUR,GBP,USD}` from a CoinDesk v1 `currentprice` document as decimals:
/// the literal text of `rate_float` (never a binary float), else the `rate` string
/// (`"43,216.7431"`).
pub fn parse_coindesk(body: &[u8], fetched_at: DateTime<Utc>) -> anyhow::Result<Rates> {
    let doc: CoinDesk<'_> = serde_json::from_slice(body)
        .map_err(|e| anyhow::anyhow!("not a CoinDesk currentprice document: {e}"))?;
    let get = |code: &str| -> anyhow::Result<Rate> {
        let r = doc
            .bpi
            .get(code)
            .ok_or_else(|| anyhow::anyhow!("bpi.{code} is missing"))?;
        let from_float = r.rate_float.and_then(|raw| parse_decimal(raw.get()));
        let from_text = || {
            r.rate
                .as_deref()
                .and_then(|t| parse_decimal(&t.replace(',', "")))
        };
        let d = from_float
            .or_else(from_text)
            .ok_or_else(|| anyhow::anyhow!("bpi.{code} has no usable rate_float or rate"))?;
        Rate::new(d).map_err(|e| anyhow::anyhow!("bpi.{code}: {e}"))
    };
    Ok(Rates {
        eur: get("EUR")?,
        gbp: get("GBP")?,
        usd: get("USD")?,
        fetched_at,
        source: "http".into(),
    })
}

/// Why no rate can be used right now.
#[derive(Debug, Clone)]
pub enum NoRate {
    /// No source is configured in this process.
    NotConfigured,
    /// No rate has been fetched yet.
    Missing,
    /// The newest rate is older than the maximum age.
    Stale { age: Duration },
}

/// The rate cache behind order pricing.
pub struct RateBook {
    source: Option<Arc<dyn RateSource>>,
    local: RwLock<Option<Rates>>,
    redis: Option<Redis>,
    pub refresh: Duration,
    pub max_age: Duration,
}

const REDIS_KEY: &str = "btc_rates";

impl RateBook {
    pub fn new(
        source: Option<Arc<dyn RateSource>>,
        redis: Option<Redis>,
        refresh: Duration,
        max_age: Duration,
    ) -> Arc<RateBook> {
        Arc::new(RateBook {
            source,
            local: RwLock::new(None),
            redis,
            refresh,
            max_age,
        })
    }

    pub fn source_name(&self) -> &'static str {
        self.source.as_ref().map(|s| s.name()).unwrap_or("none")
    }

    pub fn is_configured(&self) -> bool {
        self.source.is_some()
    }

    /// Asks the source once; keeps the result locally and shares it through Redis.
    pub async fn poll_once(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        match source.fetch().await {
            Ok(rates) => {
                if let Some(r) = &self.redis {
                    let json = serde_json::to_string(&rates).expect("rates serialize");
                    let mut conn = r.conn.clone();
                    // Only a newer observation replaces the shared one, so a replica
                    // with a slow fetch cannot put an older rate back.
                    let res: redis::RedisResult<i32> = SET_IF_NEWER
                        .key(r.key(REDIS_KEY))
                        .arg(json)
                        .arg(rates.fetched_at.timestamp_micros())
                        .invoke_async(&mut conn)
                        .await;
                    if let Err(e) = res {
                        metrics::counter!("pricehub_orders_rate_share_errors_total").increment(1);
                        tracing::warn!(error = %e, "cannot share the BTC rate through Redis");
                    }
                }
                *self.local.write() = Some(rates);
                self.record_age();
                true
            }
            Err(e) => {
                metrics::counter!("pricehub_orders_rate_fetch_errors_total", "source" => source.name())
                    .increment(1);
                tracing::warn!(
                    source = source.name(),
                    error = format!("{e:#}"),
                    "fetching BTC rates failed"
                );
                false
            }
        }
    }

    /// Polls until `shutdown`.
    pub fn spawn_poller(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let book = self.clone();
        tokio::spawn(async move {
            // The first poll ran at start-up. After a failed poll (no trade seen yet, source
            // down) try again within a second rather than a whole refresh interval.
            let mut ok = book.local.read().is_some();
            loop {
                let wait = if ok {
                    book.refresh
                } else {
                    book.refresh.min(Duration::from_secs(1))
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => { ok = book.poll_once().await; }
                }
            }
        })
    }

    /// The newest rates known: the shared ones in Redis when configured (falling back
    /// to this process's own when Redis cannot be read), else this process's.
    pub async fn newest(&self) -> Option<Rates> {
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let got: redis::RedisResult<Option<String>> = redis::cmd("GET")
                .arg(r.key(REDIS_KEY))
                .query_async(&mut conn)
                .await;
            match got {
                Ok(Some(json)) => match serde_json::from_str::<Rates>(&json) {
                    Ok(rates) => return Some(rates),
                    Err(e) => tracing::warn!(error = %e, "unreadable BTC rates in Redis"),
                },
                Ok(None) => {}
                Err(e) => {
                    metrics::counter!("pricehub_orders_rate_share_errors_total").increment(1);
                    tracing::warn!(error = %e, "cannot read the shared BTC rate from Redis; using this replica's");
                }
            }
        }
        self.local.read().clone()
    }

    /// Rates fit to price an order now.
    pub async fn current(&self) -> Result<Rates, NoRate> {
        if self.source.is_none() && self.redis.is_none() {
            return Err(NoRate::NotConfigured);
        }
        let rates = self.newest().await.ok_or(if self.source.is_none() {
            NoRate::NotConfigured
        } else {
            NoRate::Missing
        })?;
        let age = rates.age(Utc::now());
        metrics::gauge!("pricehub_orders_rate_age_seconds").set(age.as_secs_f64());
        if age > self.max_age {
            return Err(NoRate::Stale { age });
        }
        Ok(rates)
    }

    /// Sets the age gauge from this process's own newest rate (cheap; no Redis).
    pub fn record_age(&self) {
        if let Some(r) = self.local.read().as_ref() {
            metrics::gauge!("pricehub_orders_rate_age_seconds")
                .set(r.age(Utc::now()).as_secs_f64());
        }
    }
}

/// KEYS[1] = rates key; ARGV[1] = JSON; ARGV[2] = its fetched_at in µs. The observation
/// time goes into a second key so the comparison needs no JSON parsing in Lua.
static SET_IF_NEWER: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SET_IF_NEWER_LUA));

const SET_IF_NEWER_LUA: &str = r#"
local at_key = KEYS[1] .. ':at'
local cur = tonumber(redis.call('GET', at_key) or '0')
local new = tonumber(ARGV[2])
if new >= cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
  redis.call('SET', at_key, ARGV[2], 'EX', 86400)
  return 1
end
return 0
"#;

/// The in-process live feed's latest trades as a BTC rate hook (the embedded default).
impl LastTradePrices for crate::feed::LatestPrices {
    fn latest(&self, ticker: &str) -> Option<(Decimal, DateTime<Utc>)> {
        let p = self.get(ticker)?;
        // Feed prices are tick-rounded; their shortest decimal form is the exact price.
        let price: Decimal = p.price.to_string().parse().ok()?;
        let at = DateTime::<Utc>::from_timestamp_millis(i64::try_from(p.timestamp_ms).ok()?)?;
        Some((price, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sample_document_as_decimals() {
        let body = br#"{"bpi":{"USD":{"rate":"43,216.7431","rate_float":43216.7431},
            "GBP":{"rate":"34,385.2109","rate_float":34385.2109},
            "EUR":{"rate":"39,612.0558"}}}"#;
        let r = parse_coindesk(body, Utc::now()).unwrap();
        assert_eq!(r.usd.to_string(), "43216.7431");
        assert_eq!(r.gbp.to_string(), "34385.2109");
        assert_eq!(r.eur.to_string(), "39612.0558");
        assert!(parse_coindesk(b"{}", Utc::now()).is_err());
        assert!(parse_coindesk(br#"{"bpi":{"USD":{"rate_float":-1}}}"#, Utc::now()).is_err());
    }

    #[test]
    fn fixed_rates_parse() {
        let f: FixedRates = "USD=43216.7431, EUR=39612.0558,GBP=34385.2109"
            .parse()
            .unwrap();
        assert_eq!(f.eur.to_string(), "39612.0558");
        assert!("USD=1,EUR=2".parse::<FixedRates>().is_err());
        assert!("USD=0,EUR=2,GBP=3".parse::<FixedRates>().is_err());
        assert!("XXX=1".parse::<FixedRates>().is_err());
    }
}
