//! The simulated market the provider broadcasts.
//!
//! Pure and deterministic: the caller passes the clock (`now_ms`) in and the randomness
//! comes from a seeded `SmallRng`, so the same seed and the same timestamps give the same
//! trades (for a given build: `SmallRng`'s algorithm is not promised stable across `rand`
//! releases or platforms). Nothing here sleeps or touches a socket.
//!
//! Two models:
//! * [`Market`]: one shared market for all clients, each instrument following its own
//!   geometric Brownian motion from a realistic start price, rounded to its tick.
//! * [`LegacyMarket`]: the original provider's per-connection uniform stream, kept
//!   bit-for-bit so that old consumers and tests see exactly what they used to.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Trade;
use super::codec;

/// Seconds in the year used to scale annualised volatility and drift. Crypto and FX
/// trade around the clock and the simulation never closes, so a calendar year it is.
pub const SECONDS_PER_YEAR: f64 = 365.25 * 86_400.0;

/// Upper bound on a price in ticks. Keeping prices below 2^53 ticks keeps every grid
/// point exactly representable, and an extreme random walk cannot overflow to infinity.
const MAX_TICKS: f64 = 9_007_199_254_740_992.0;

/// Volatility given to a parsed instrument that does not state one (annualised).
pub const DEFAULT_VOLATILITY: f64 = 0.30;
/// `max_lots` given to a parsed instrument that does not state one.
pub const DEFAULT_MAX_LOTS: u32 = 10;

/// One tradable instrument and how it moves.
///
/// **Size unit.** The wire's `size` is a `u32` count of the instrument's quantity unit:
/// shares for equities and ETFs, units of the base currency for FX pairs, and
/// 0.0001 BTC (10,000 satoshi) for the BTC pairs — a fractional unit because whole
/// bitcoins would make every realistic trade size 0 or 1. A trade's size is always a
/// whole number of lots: `lots × lot_size` with `lots` in `1..=max_lots`.
///
/// **Volatility** is annualised (σ of the yearly log return, e.g. 0.25 = 25 %), the unit
/// every market quote uses; a step of `dt` seconds has log-return σ·√(dt / year).
#[derive(Clone, Debug, PartialEq)]
pub struct Instrument {
    /// Ticker on the wire (printable ASCII, 1..=32 bytes).
    pub symbol: String,
    pub start_price: f64,
    /// Price grid: every emitted price is a whole multiple of it.
    pub tick_size: f64,
    pub lot_size: u32,
    /// Annualised volatility σ (see the type docs).
    pub volatility: f64,
    /// Annualised drift μ of the price (not of its log): `E[S_t] = S_0·e^{μt}`. Zero,
    /// the default, makes the simulated price a martingale, with no trend to notice.
    pub drift: f64,
    pub max_lots: u32,
}

impl Instrument {
    /// An instrument with the parser's defaults for volatility, drift and lots.
    pub fn new(symbol: &str, start_price: f64, tick_size: f64, lot_size: u32) -> Self {
        Instrument {
            symbol: symbol.to_string(),
            start_price,
            tick_size,
            lot_size,
            volatility: DEFAULT_VOLATILITY,
            drift: 0.0,
            max_lots: DEFAULT_MAX_LOTS,
        }
    }

    fn with(mut self, volatility: f64, max_lots: u32) -> Self {
        self.volatility = volatility;
        self.max_lots = max_lots;
        self
    }

    /// Rejects instruments that could produce a frame the codec refuses, a size that
    /// overflows `u32`, or a price that leaves the tick grid.
    pub fn validate(&self) -> Result<(), InstrumentError> {
        let invalid = |reason: String| InstrumentError::Invalid {
            entry: self.to_string(),
            reason,
        };
        codec::validate_ticker(self.symbol.as_bytes())
            .map_err(|e| invalid(format!("symbol: {e}")))?;
        if !(self.tick_size.is_finite() && self.tick_size > 0.0) {
            return Err(invalid(format!(
                "tick size {} must be a positive number",
                self.tick_size
            )));
        }
        if !(self.start_price.is_finite() && self.start_price >= self.tick_size) {
            return Err(invalid(format!(
                "start price {} must be at least one tick ({})",
                self.start_price, self.tick_size
            )));
        }
        if self.start_price / self.tick_size > MAX_TICKS {
            return Err(invalid(format!(
                "start price {} is more than 2^53 ticks of {}",
                self.start_price, self.tick_size
            )));
        }
        if !(self.volatility.is_finite() && self.volatility >= 0.0) {
            return Err(invalid(format!(
                "volatility {} must be a non-negative number",
                self.volatility
            )));
        }
        if !self.drift.is_finite() {
            return Err(invalid(format!("drift {} must be finite", self.drift)));
        }
        if self.lot_size == 0 || self.max_lots == 0 {
            return Err(invalid("lot size and max lots must be at least 1".into()));
        }
        if self.lot_size.checked_mul(self.max_lots).is_none() {
            return Err(invalid(format!(
                "lot size {} × max lots {} overflows the wire's u32 size",
                self.lot_size, self.max_lots
            )));
        }
        Ok(())
    }

    /// Snaps a price to the tick grid, never below one tick.
    ///
    /// When the tick is 1/n for a whole n (0.01, 0.00001, …) the result is computed as
    /// `ticks / n`, which is the double nearest the decimal value: prices print as
    /// `190.01`, not `190.01000000000002`, in JSON, logs and the database.
    pub fn round_to_tick(&self, price: f64) -> f64 {
        let tick = self.tick_size;
        let ticks = (price / tick).round().clamp(1.0, MAX_TICKS);
        let per_unit = (1.0 / tick).round();
        if per_unit >= 1.0 && ((per_unit * tick) - 1.0).abs() < 1e-12 {
            ticks / per_unit
        } else {
            ticks * tick
        }
    }
}

/// `SYMBOL:start_price:tick_size:lot_size:volatility:max_lots`, the long form of the
/// list syntax, so any list can be printed and parsed back unchanged (drift is omitted
/// when zero and then appended as a seventh field).
impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}:{}",
            self.symbol,
            self.start_price,
            self.tick_size,
            self.lot_size,
            self.volatility,
            self.max_lots
        )?;
        if self.drift != 0.0 {
            write!(f, ":{}", self.drift)?;
        }
        Ok(())
    }
}

/// Why an instrument list was refused; every message names the offending entry.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InstrumentError {
    #[error("invalid instrument {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },
    #[error("instrument {symbol:?} is listed more than once")]
    Duplicate { symbol: String },
    #[error("the instrument list is empty")]
    Empty,
}

/// Parses one entry: `SYMBOL:start_price:tick_size:lot_size[:volatility[:max_lots[:drift]]]`.
impl FromStr for Instrument {
    type Err = InstrumentError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let entry = entry.trim();
        let invalid = |reason: String| InstrumentError::Invalid {
            entry: entry.to_string(),
            reason,
        };
        let fields: Vec<&str> = entry.split(':').map(str::trim).collect();
        if !(4..=7).contains(&fields.len()) {
            return Err(invalid(format!(
                "expected SYMBOL:start_price:tick_size:lot_size[:volatility[:max_lots[:drift]]], \
                 got {} field(s)",
                fields.len()
            )));
        }
        fn num<T: FromStr>(
            fields: &[&str],
            i: usize,
            name: &str,
            invalid: &dyn Fn(String) -> InstrumentError,
        ) -> Result<Option<T>, InstrumentError> {
            fields
                .get(i)
                .map(|s| {
                    s.parse()
                        .map_err(|_| invalid(format!("{name} {s:?} is not a valid number")))
                })
                .transpose()
        }
        let mut instrument = Instrument::new(
            fields[0],
            num(&fields, 1, "start price", &invalid)?.expect("checked length"),
            num(&fields, 2, "tick size", &invalid)?.expect("checked length"),
            num(&fields, 3, "lot size", &invalid)?.expect("checked length"),
        );
        if let Some(v) = num(&fields, 4, "volatility", &invalid)? {
            instrument.volatility = v;
        }
        if let Some(n) = num(&fields, 5, "max lots", &invalid)? {
            instrument.max_lots = n;
        }
        if let Some(d) = num(&fields, 6, "drift", &invalid)? {
            instrument.drift = d;
        }
        instrument.validate().map_err(|e| match e {
            InstrumentError::Invalid { reason, .. } => invalid(reason),
            other => other,
        })?;
        Ok(instrument)
    }
}

/// Parses a comma-separated instrument list such as
/// `AAPL:190.5:0.01:100,BTCUSD:43000:0.01:1` (whitespace and empty entries ignored, so a
/// list can be wrapped over lines or end with a comma). Rejects duplicates and an empty
/// list, since either would be a configuration mistake rather than an intent.
pub fn parse_instruments(list: &str) -> Result<Vec<Instrument>, InstrumentError> {
    let instruments = list
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Instrument>, _>>()?;
    check_list(&instruments)?;
    Ok(instruments)
}

/// Formats a list in the syntax [`parse_instruments`] reads (e.g. for `--help` defaults).
pub fn format_instruments(instruments: &[Instrument]) -> String {
    instruments
        .iter()
        .map(Instrument::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn check_list(instruments: &[Instrument]) -> Result<(), InstrumentError> {
    if instruments.is_empty() {
        return Err(InstrumentError::Empty);
    }
    let mut seen = HashSet::new();
    for i in instruments {
        i.validate()?;
        if !seen.insert(i.symbol.as_str()) {
            return Err(InstrumentError::Duplicate {
                symbol: i.symbol.clone(),
            });
        }
    }
    Ok(())
}

/// The provider's default list: the original's four tickers, the BTC rates the order API
/// needs, and the FX majors.
///
/// Start prices are one consistent snapshot: the BTC crosses are derived from BTCUSD and
/// the FX rates (BTCEUR = BTCUSD / EURUSD), so the order API sees coherent rates at
/// start. The walks are independent afterwards, so the crosses drift apart slowly
/// (about σ·√t); fine for a simulation, not an arbitrage model.
pub fn default_instruments() -> Vec<Instrument> {
    const EURUSD: f64 = 1.085;
    const GBPUSD: f64 = 1.27;
    const USDJPY: f64 = 150.0;
    const BTCUSD: f64 = 43_000.0;
    let cross = |symbol: &str, price: f64| {
        let i = Instrument::new(symbol, price, 0.01, 100).with(0.60, 50);
        Instrument {
            start_price: i.round_to_tick(price),
            ..i
        }
    };
    vec![
        // US equities and the S&P 500 ETF: shares, cent ticks, round lots of 100, up to
        // 9,900 shares like the original.
        Instrument::new("AAPL", 190.0, 0.01, 100).with(0.25, 99),
        Instrument::new("GOOG", 140.0, 0.01, 100).with(0.30, 99),
        Instrument::new("MSFT", 410.0, 0.01, 100).with(0.25, 99),
        Instrument::new("SPY", 500.0, 0.01, 100).with(0.15, 99),
        // BTC in units of 0.0001 BTC: lots of 0.01 BTC, up to 0.5 BTC per trade.
        cross("BTCUSD", BTCUSD),
        cross("BTCEUR", BTCUSD / EURUSD),
        cross("BTCGBP", BTCUSD / GBPUSD),
        // FX in units of the base currency: micro lots of 1,000, up to 1,000,000;
        // 0.1-pip ticks (0.00001, or 0.001 for yen pairs).
        Instrument::new("EURUSD", EURUSD, 0.00001, 1_000).with(0.07, 1_000),
        Instrument::new("GBPUSD", GBPUSD, 0.00001, 1_000).with(0.08, 1_000),
        Instrument::new("USDJPY", USDJPY, 0.001, 1_000).with(0.09, 1_000),
    ]
}

/// A standard normal variate by Box–Muller; one of the pair is dropped, which keeps the
/// generator stateless and the sequence easy to reason about.
fn standard_normal(rng: &mut SmallRng) -> f64 {
    // 1 - U is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[derive(Clone, Debug)]
struct Quote {
    instrument: Instrument,
    /// The unrounded GBM state. Rounding only what is emitted matters: if the rounded
    /// price were fed back, every move smaller than half a tick (most moves at high
    /// trade rates) would be undone and the price would never move.
    fair: f64,
    /// Last emitted (rounded) price, the start price before the first trade.
    last: f64,
    /// When `fair` was last advanced; `None` until the first trade.
    updated_ms: Option<u64>,
}

/// One shared market: every client sees the same trades.
#[derive(Clone, Debug)]
pub struct Market {
    quotes: Vec<Quote>,
    rng: SmallRng,
}

impl Market {
    /// A market over `instruments` whose trades are fully determined by `seed` and the
    /// timestamps passed to [`Market::next_trade`].
    pub fn new(instruments: Vec<Instrument>, seed: u64) -> Result<Self, InstrumentError> {
        check_list(&instruments)?;
        let quotes = instruments
            .into_iter()
            .map(|instrument| {
                let last = instrument.round_to_tick(instrument.start_price);
                Quote {
                    fair: instrument.start_price,
                    last,
                    updated_ms: None,
                    instrument,
                }
            })
            .collect();
        Ok(Market {
            quotes,
            rng: SmallRng::seed_from_u64(seed),
        })
    }

    /// The next trade at time `now_ms`: a uniformly chosen instrument, its price advanced
    /// by an exact GBM step over the time since its previous trade (none on its first
    /// trade, nor if the clock went backwards) and rounded to its tick.
    pub fn next_trade(&mut self, now_ms: u64) -> Trade {
        let index = self.rng.random_range(0..self.quotes.len());
        let quote = &mut self.quotes[index];
        let instrument = &quote.instrument;
        let dt_ms = quote
            .updated_ms
            .map_or(0, |then| now_ms.saturating_sub(then));
        // Draw even when dt is 0 so the random stream does not depend on timing.
        let z = standard_normal(&mut self.rng);
        if dt_ms > 0 {
            let t = dt_ms as f64 / 1000.0 / SECONDS_PER_YEAR;
            let sigma = instrument.volatility;
            let log_return = (instrument.drift - 0.5 * sigma * sigma) * t + sigma * t.sqrt() * z;
            let next = quote.fair * log_return.exp();
            // Keep the walk on the representable grid; an absurd step (e.g. a clock jump
            // of centuries) saturates instead of producing 0 or infinity.
            quote.fair = if next.is_nan() {
                quote.fair
            } else {
                next.clamp(instrument.tick_size, instrument.tick_size * MAX_TICKS)
            };
        }
        quote.updated_ms = Some(now_ms.max(quote.updated_ms.unwrap_or(0)));
        quote.last = instrument.round_to_tick(quote.fair);
        let lots = self.rng.random_range(1..=instrument.max_lots);
        Trade {
            timestamp_ms: now_ms,
            ticker: instrument.symbol.clone(),
            price: quote.last,
            // Cannot overflow: validated when the market was built.
            size: lots * instrument.lot_size,
        }
    }

    /// The last traded price of `symbol` (its rounded start price before its first
    /// trade), so a rate endpoint has an answer from the first moment.
    pub fn latest_price(&self, symbol: &str) -> Option<f64> {
        self.quotes
            .iter()
            .find(|q| q.instrument.symbol == symbol)
            .map(|q| q.last)
    }

    /// Every instrument's latest price, in list order.
    pub fn latest_prices(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.quotes
            .iter()
            .map(|q| (q.instrument.symbol.as_str(), q.last))
    }

    pub fn instruments(&self) -> impl Iterator<Item = &Instrument> + '_ {
        self.quotes.iter().map(|q| &q.instrument)
    }
}

/// The original provider's stream, one per connection: a uniformly chosen ticker among
/// the original four, price `90 + k·0.05` with `k` uniform in `0..400` (computed in the
/// same double arithmetic as the original's Python, so the values are bit-identical),
/// size `100·n` with `n` uniform in `1..=99`, and a pause uniform in 0.2–3.0 s between
/// trades. Prices do not walk; each trade is independent of the last.
///
/// Each connection must get its own generator (the original's "independent random
/// stream"): give every connection a distinct seed, e.g. from `rand::random()`, or
/// `base_seed + connection_number` for reproducible runs.
#[derive(Clone, Debug)]
pub struct LegacyMarket {
    rng: SmallRng,
}

impl LegacyMarket {
    pub const TICKERS: [&'static str; 4] = ["AAPL", "GOOG", "MSFT", "SPY"];
    pub const MIN_DELAY: Duration = Duration::from_millis(200);
    pub const MAX_DELAY: Duration = Duration::from_millis(3000);

    pub fn new(seed: u64) -> Self {
        LegacyMarket {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn next_trade(&mut self, now_ms: u64) -> Trade {
        let ticker = Self::TICKERS[self.rng.random_range(0..Self::TICKERS.len())];
        let k: u32 = self.rng.random_range(0..400);
        let lots: u32 = self.rng.random_range(1..=99);
        Trade {
            timestamp_ms: now_ms,
            ticker: ticker.to_string(),
            price: 90.0 + f64::from(k) * 0.05,
            size: 100 * lots,
        }
    }

    /// How long to wait before the next trade. Returned rather than slept so the caller
    /// owns the clock (and tests need none).
    pub fn next_delay(&mut self) -> Duration {
        Duration::from_secs_f64(
            self.rng
                .random_range(Self::MIN_DELAY.as_secs_f64()..=Self::MAX_DELAY.as_secs_f64()),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn price_of(instruments: &[Instrument], symbol: &str) -> f64 {
        instruments
            .iter()
            .find(|i| i.symbol == symbol)
            .unwrap()
            .start_price
    }

    fn on_grid(price: f64, tick: f64) -> bool {
        let ticks = price / tick;
        (ticks - ticks.round()).abs() < 1e-6
    }

    #[test]
    fn default_list_is_valid_and_consistent() {
        let list = default_instruments();
        check_list(&list).unwrap();
        let symbols: Vec<_> = list.iter().map(|i| i.symbol.as_str()).collect();
        for s in [
            "AAPL", "GOOG", "MSFT", "SPY", "BTCUSD", "BTCEUR", "BTCGBP", "EURUSD", "GBPUSD",
            "USDJPY",
        ] {
            assert!(symbols.contains(&s), "{s} missing");
        }
        let p = |s| price_of(&list, s);
        let implied_eur = p("BTCUSD") / p("EURUSD");
        let implied_gbp = p("BTCUSD") / p("GBPUSD");
        assert!((p("BTCEUR") / implied_eur - 1.0).abs() < 1e-6);
        assert!((p("BTCGBP") / implied_gbp - 1.0).abs() < 1e-6);
        for i in &list {
            assert!(on_grid(i.start_price, i.tick_size), "{i}");
            // The original's size range for its four tickers.
            if LegacyMarket::TICKERS.contains(&i.symbol.as_str()) {
                assert_eq!((i.lot_size, i.max_lots), (100, 99));
            }
        }
    }

    #[test]
    fn list_round_trips_through_its_text_form() {
        let mut list = default_instruments();
        list[0].drift = 0.07;
        let text = format_instruments(&list);
        assert_eq!(parse_instruments(&text).unwrap(), list);
    }

    #[test]
    fn parses_short_and_long_entries() {
        let list =
            parse_instruments(" AAPL:190.5:0.01:100,\n BTCUSD:43000:0.01:1:0.6:5:0.1 ,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], Instrument::new("AAPL", 190.5, 0.01, 100));
        assert_eq!(list[1].volatility, 0.6);
        assert_eq!(list[1].max_lots, 5);
        assert_eq!(list[1].drift, 0.1);
    }

    #[test]
    fn parse_errors_name_the_bad_entry() {
        for (input, needle) in [
            (
                "AAPL:190.5:0.01:100,GOOG:abc:0.01:100",
                "\"GOOG:abc:0.01:100\"",
            ),
            ("AAPL:190.5:0.01", "got 3 field(s)"),
            ("AAPL:190.5:0:100", "tick size 0"),
            ("AAPL:-1:0.01:100", "start price -1"),
            ("AAPL:0.001:0.01:100", "at least one tick"),
            ("AAPL:1:0.01:0", "lot size"),
            ("AAPL:1:0.01:-5", "lot size \"-5\""),
            ("AAPL:1:0.01:100000:0.2:100000", "overflows"),
            ("AAPL:1:0.01:100:-0.2", "volatility -0.2"),
            ("AAPL:1:0.01:100:NaN", "volatility NaN"),
            ("A PL:1:0.01:100", "symbol"),
            (":1:0.01:100", "symbol"),
        ] {
            let err = parse_instruments(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        assert_eq!(
            parse_instruments("A:1:1:1,B:1:1:1,A:2:1:1").unwrap_err(),
            InstrumentError::Duplicate { symbol: "A".into() }
        );
        assert_eq!(
            parse_instruments(" , ").unwrap_err(),
            InstrumentError::Empty
        );
        assert!(Market::new(Vec::new(), 1).is_err());
    }

    #[test]
    fn rounding_gives_clean_decimals_and_never_zero() {
        let aapl = Instrument::new("AAPL", 190.0, 0.01, 100);
        assert_eq!(aapl.round_to_tick(190.0149).to_string(), "190.01");
        assert_eq!(aapl.round_to_tick(0.000001), 0.01);
        let fx = Instrument::new("EURUSD", 1.085, 0.00001, 1000);
        assert_eq!(fx.round_to_tick(1.0850049).to_string(), "1.085");
        assert_eq!(fx.round_to_tick(1.0850051).to_string(), "1.08501");
        let odd = Instrument::new("ODD", 10.0, 0.25, 1);
        assert_eq!(odd.round_to_tick(10.13), 10.25);
    }

    fn run(seed: u64, n: usize) -> Vec<Trade> {
        let mut m = Market::new(default_instruments(), seed).unwrap();
        (0..n as u64)
            .map(|i| m.next_trade(1_700_000_000_000 + i * 250))
            .collect()
    }

    #[test]
    fn same_seed_same_trades_other_seed_other_trades() {
        let a = run(42, 2_000);
        assert_eq!(a, run(42, 2_000));
        assert_ne!(a, run(43, 2_000));
        let a = LegacyMarket::new(7);
        let b = LegacyMarket::new(7);
        let (mut a, mut b) = (a, b.clone());
        for i in 0..1_000 {
            assert_eq!(a.next_trade(i), b.next_trade(i));
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn prices_stay_on_the_grid_positive_and_valid() {
        let list = default_instruments();
        let by_symbol: HashMap<_, _> = list.iter().map(|i| (i.symbol.clone(), i)).collect();
        let mut m = Market::new(list.clone(), 1).unwrap();
        let mut seen = BTreeSet::new();
        // Minutes between trades so prices really move.
        for i in 0..20_000u64 {
            let t = m.next_trade(i * 60_000);
            let inst = by_symbol[&t.ticker];
            t.validate().unwrap();
            assert!(t.price >= inst.tick_size, "{t:?}");
            assert!(on_grid(t.price, inst.tick_size), "{t:?}");
            assert_eq!(t.size % inst.lot_size, 0);
            assert!((1..=inst.max_lots).contains(&(t.size / inst.lot_size)));
            assert_eq!(m.latest_price(&t.ticker), Some(t.price));
            seen.insert(t.ticker);
        }
        assert_eq!(seen.len(), list.len(), "every instrument trades");
        assert!(m.latest_prices().all(|(_, p)| p > 0.0));
        assert_eq!(m.latest_price("NOPE"), None);
    }

    #[test]
    fn latest_price_starts_at_the_start_price() {
        let m = Market::new(default_instruments(), 3).unwrap();
        assert_eq!(m.latest_price("AAPL"), Some(190.0));
        assert_eq!(m.instruments().count(), default_instruments().len());
    }

    #[test]
    fn tiny_steps_still_move_the_price() {
        // A millisecond apart, σ·√dt is far below a tick; the unrounded state must
        // accumulate the moves instead of being snapped back every time.
        let inst = Instrument::new("X", 100.0, 0.01, 1).with(0.5, 1);
        let mut m = Market::new(vec![inst], 9).unwrap();
        let prices: BTreeSet<u64> = (0..1_000_000u64)
            .map(|i| m.next_trade(i).price.to_bits())
            .collect();
        assert!(prices.len() > 5, "{} distinct prices", prices.len());
    }

    #[test]
    fn extreme_inputs_stay_finite_and_positive() {
        let inst = Instrument::new("X", 1.0, 0.01, 1).with(50.0, 1);
        let mut m = Market::new(vec![inst], 5).unwrap();
        for i in 0..2_000u64 {
            // Clock jumping by decades and back.
            let now = if i % 2 == 0 { i * 1_000_000_000_000 } else { i };
            let t = m.next_trade(now);
            t.validate().unwrap();
            assert!(t.price >= 0.01 && t.price.is_finite());
        }
    }

    /// Log returns over a fixed step should have mean (μ − σ²/2)·dt and standard
    /// deviation σ·√dt. The seed is fixed, so these loose bounds (several standard errors
    /// wide) make the test deterministic, not flaky.
    #[test]
    fn gbm_drift_and_volatility_match_their_parameters() {
        // 40,000 daily steps is ~110 years: parameters chosen so the walk stays far from the
        // one-tick floor and the 2^53-tick ceiling, where clamping would distort it.
        for (sigma, mu) in [(0.2, 0.0), (0.8, 0.3), (0.05, -0.05)] {
            let mut inst = Instrument::new("X", 1_000.0, 0.000_001, 1).with(sigma, 1);
            inst.drift = mu;
            let mut m = Market::new(vec![inst], 2024).unwrap();
            let step_ms = 86_400_000u64; // one day
            let dt = step_ms as f64 / 1000.0 / SECONDS_PER_YEAR;
            let n = 40_000;
            let prices: Vec<f64> = (0..=n as u64)
                .map(|i| m.next_trade(i * step_ms).price)
                .collect();
            let r: Vec<f64> = prices.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
            let mean = r.iter().sum::<f64>() / n as f64;
            let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let sd = var.sqrt();
            let want_sd = sigma * dt.sqrt();
            let want_mean = (mu - 0.5 * sigma * sigma) * dt;
            let se_mean = want_sd / (n as f64).sqrt();
            assert!(
                (sd / want_sd - 1.0).abs() < 0.03,
                "σ={sigma}: sd {sd} want {want_sd}"
            );
            assert!(
                (mean - want_mean).abs() < 4.0 * se_mean,
                "σ={sigma} μ={mu}: mean {mean} want {want_mean} ± {se_mean}"
            );
        }
    }

    #[test]
    fn legacy_stream_matches_the_original_ranges_exactly() {
        let mut m = LegacyMarket::new(11);
        let (mut ks, mut lots, mut tickers) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let (mut min_delay, mut max_delay) = (Duration::MAX, Duration::ZERO);
        for i in 0..200_000 {
            let t = m.next_trade(i);
            assert_eq!(t.timestamp_ms, i);
            tickers.insert(t.ticker.clone());
            let k = ((t.price - 90.0) / 0.05).round() as i64;
            assert!((0..400).contains(&k), "{t:?}");
            assert_eq!(t.price.to_bits(), (90.0 + k as f64 * 0.05).to_bits());
            ks.insert(k);
            assert_eq!(t.size % 100, 0);
            lots.insert(t.size / 100);
            let d = m.next_delay();
            min_delay = min_delay.min(d);
            max_delay = max_delay.max(d);
        }
        assert_eq!(ks, (0..400).collect());
        assert_eq!(lots, (1..=99).collect());
        let tickers: Vec<_> = tickers.iter().map(String::as_str).collect();
        assert_eq!(tickers, ["AAPL", "GOOG", "MSFT", "SPY"]);
        assert!(min_delay >= LegacyMarket::MIN_DELAY && max_delay <= LegacyMarket::MAX_DELAY);
        assert!(min_delay < Duration::from_millis(210));
        assert!(max_delay > Duration::from_millis(2990));
    }

    /// The capture from the original provider fits the legacy model bit for bit, which
    /// pins down the price formula (`90 + k * 0.05` in doubles, not a rounded decimal).
    #[test]
    fn legacy_model_reproduces_the_captured_original() {
        let Some(dir) = crate::testing::data_dir() else {
            return;
        };
        let json = std::fs::read(dir.join("feed-capture.json")).unwrap();
        let trades: Vec<Trade> = serde_json::from_slice(&json).unwrap();
        assert!(!trades.is_empty());
        for t in &trades {
            assert!(LegacyMarket::TICKERS.contains(&t.ticker.as_str()), "{t:?}");
            let k = ((t.price - 90.0) / 0.05).round();
            assert!((0.0..400.0).contains(&k));
            assert_eq!(t.price.to_bits(), (90.0 + k * 0.05).to_bits(), "{t:?}");
            assert!(t.size % 100 == 0 && (100..=9900).contains(&t.size), "{t:?}");
        }
        for w in trades.windows(2) {
            let gap = w[1].timestamp_ms - w[0].timestamp_ms;
            assert!((200..=3_100).contains(&gap), "gap {gap} ms");
        }
    }
}
