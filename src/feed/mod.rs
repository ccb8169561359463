//! Live price feed: the wire codec and the market model behind `pricehub provider` and
//! `pricehub collector`.
//!
//! The wire format (docs/feed.md) has to stay byte-compatible with the original Python
//! provider, so it lives in one place, [`codec`], and both sides use the same
//! [`codec::TradeCodec`]: the provider cannot emit a frame the collector would reject.
//! [`market`] is pure and deterministic (no clock, no I/O, seeded randomness) so that a
//! `--seed` reproduces a stream exactly and the model can be tested without a socket.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

pub mod codec;
pub mod collector;
pub mod market;
pub mod metrics;
pub mod provider;
pub mod routes;
pub mod spool;
pub mod store;
pub mod stream;

/// One trade as it travels on the wire and is stored by the collector.
///
/// Field names are part of the contract: they match the reference decoding
/// (`feed-capture.json`) and the JSON the rest of the system serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    /// Milliseconds since the Unix epoch, UTC, as stamped by the provider.
    pub timestamp_ms: u64,
    /// Printable ASCII, 1..=32 bytes (see [`codec::validate_ticker`]).
    pub ticker: String,
    /// Finite and strictly positive (see [`codec::validate_price`]).
    pub price: f64,
    /// Quantity in the instrument's unit (see [`market::Instrument`]).
    pub size: u32,
}

impl Trade {
    /// Checks the invariants every frame on the wire must satisfy, so a trade built in
    /// code (or read back from a spool) is held to the same rules as a decoded one.
    pub fn validate(&self) -> Result<(), codec::FrameError> {
        codec::validate_ticker(self.ticker.as_bytes())?;
        codec::validate_price(self.price)
    }
}

/// The latest price of one instrument and when it traded.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatestPrice {
    pub price: f64,
    pub timestamp_ms: u64,
}

/// Latest price per instrument, shared between the task that sees the trades (provider
/// market, collector reader) and whoever reads them (HTTP handlers, the order service).
/// Cheap to clone; writers update once per batch of trades, not per trade.
#[derive(Clone, Debug, Default)]
pub struct LatestPrices(Arc<RwLock<HashMap<String, LatestPrice>>>);

impl LatestPrices {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a batch of trades; a trade older than what is known for its symbol does
    /// not move the price back.
    pub fn update<'a>(&self, trades: impl IntoIterator<Item = &'a Trade>) {
        let mut trades = trades.into_iter().peekable();
        if trades.peek().is_none() {
            return;
        }
        let mut map = self.0.write();
        for t in trades {
            let next = LatestPrice {
                price: t.price,
                timestamp_ms: t.timestamp_ms,
            };
            match map.get_mut(t.ticker.as_str()) {
                Some(p) if p.timestamp_ms > t.timestamp_ms => {}
                Some(p) => *p = next,
                None => {
                    map.insert(t.ticker.clone(), next);
                }
            }
        }
    }

    pub fn get(&self, symbol: &str) -> Option<LatestPrice> {
        self.0.read().get(symbol).copied()
    }

    /// Every instrument's latest price, sorted by symbol.
    pub fn snapshot(&self) -> Vec<(String, LatestPrice)> {
        let mut v: Vec<_> = self.0.read().iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
