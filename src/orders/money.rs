//! Money and BTC arithmetic: fiat amounts in cents, BTC in satoshis, exchange rates as
//! decimals with at most 8 places. Nothing here ever goes through a binary float.
//!
//! `btc = amount / rate`, rounded **up** to 8 decimal places, is computed exactly in
//! integer arithmetic on the decimal mantissas: `sats = ceil(cents · 10^6 · 10^s / m)`
//! for a rate `m / 10^s`. With amounts under 10^11 cents and `s ≤ 8` the numerator stays
//! below 10^25, far inside `i128`, so no digit is ever lost and the rounding direction is
//! decided on the exact remainder. Rounding up makes a zero-BTC order impossible: any
//! positive amount costs at least one satoshi.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Satoshis per BTC.
pub const SATS_PER_BTC: i64 = 100_000_000;
/// Decimal places of a rate (anything finer is rounded at the source).
pub const RATE_SCALE: u32 = 8;
/// Largest accepted amount is just under this (exclusive), in whole currency units.
pub const AMOUNT_LIMIT: i64 = 1_000_000_000;
/// No cap may exceed the BTC that will ever exist.
pub const MAX_CAP_BTC: i64 = 21_000_000;

/// The fiat currencies an order may be placed in (the BTC rate's quote currency).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Currency {
    #[serde(rename = "EUR")]
    Eur,
    #[serde(rename = "GBP")]
    Gbp,
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    pub const ALL: [Currency; 3] = [Currency::Eur, Currency::Gbp, Currency::Usd];

    pub fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Usd => "USD",
        }
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EUR" => Ok(Currency::Eur),
            "GBP" => Ok(Currency::Gbp),
            "USD" => Ok(Currency::Usd),
            _ => Err(format!("currency must be one of EUR, GBP, USD, got {s:?}")),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Parses a decimal literal as written in JSON or in a config value: plain (`12.5`) or
/// with an exponent (`1.25e1`). `None` for anything else, including values beyond
/// rust_decimal's 28 digits.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() || s.starts_with('+') {
        return None;
    }
    if s.contains(['e', 'E']) {
        Decimal::from_scientific(s).ok()
    } else {
        // `from_str_exact` refuses to round away digits it cannot hold.
        Decimal::from_str_exact(s).ok()
    }
}

/// A fiat amount: 0 < amount < 1,000,000,000 with at most 2 decimal places, in cents.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    /// From an exact decimal; the error says what is wrong, for the `amount` field.
    pub fn from_decimal(d: Decimal) -> Result<Amount, String> {
        let d = d.normalize();
        if d <= Decimal::ZERO {
            return Err(format!("amount must be greater than 0, got {d}"));
        }
        if d >= Decimal::from(AMOUNT_LIMIT) {
            return Err(format!("amount must be less than 1000000000, got {d}"));
        }
        if d.scale() > 2 {
            return Err(format!("amount may have at most 2 decimal places, got {d}"));
        }
        // Scale ≤ 2 and below 10^9, so this is an exact integer that fits.
        let cents = i64::try_from(d * Decimal::ONE_HUNDRED).map_err(|e| e.to_string())?;
        Ok(Amount(cents))
    }

    pub fn from_cents(cents: i64) -> Option<Amount> {
        (cents > 0 && cents < AMOUNT_LIMIT * 100).then_some(Amount(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Always two decimal places (`10.50`).
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// A BTC exchange rate (BTC base, fiat quote): positive, at most 8 decimal places.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Rate(Decimal);

impl Rate {
    /// Rounds to 8 places (half-even, as the decimal source already had that precision
    /// or more); refuses zero, negatives and absurd magnitudes.
    pub fn new(d: Decimal) -> Result<Rate, String> {
        let d = d
            .round_dp_with_strategy(RATE_SCALE, RoundingStrategy::MidpointNearestEven)
            .normalize();
        if d <= Decimal::ZERO {
            return Err(format!("a rate must be positive, got {d}"));
        }
        if d >= Decimal::from(1_000_000_000_000i64) {
            return Err(format!("a rate of {d} is not plausible"));
        }
        Ok(Rate(d))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Rate {
    type Error = String;
    fn try_from(d: Decimal) -> Result<Self, Self::Error> {
        Rate::new(d)
    }
}

impl From<Rate> for Decimal {
    fn from(r: Rate) -> Decimal {
        r.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `amount / rate` in satoshis, rounded up: exact, never zero for a positive amount.
pub fn btc_sats(amount: Amount, rate: Rate) -> i128 {
    let r = rate.0;
    let m = r.mantissa(); // rate = m / 10^s, m > 0
    let s = r.scale();
    // sats = amount · 10^8 / rate = cents · 10^6 · 10^s / m
    let num = i128::from(amount.0) * 10i128.pow(6 + s);
    let q = num / m;
    if num % m == 0 { q } else { q + 1 }
}

/// Satoshis as a BTC decimal with 8 places (`0.00000001`).
pub fn sats_to_btc(sats: i64) -> Decimal {
    Decimal::new(sats, 8)
}

/// A BTC quantity given in configuration (`--btc-cap`), in satoshis.
pub fn parse_btc(s: &str) -> Result<i64, String> {
    let d = parse_decimal(s).ok_or_else(|| format!("{s:?} is not a decimal number"))?;
    let d = d.normalize();
    if d < Decimal::ZERO {
        return Err("must not be negative".into());
    }
    if d.scale() > 8 {
        return Err("BTC has at most 8 decimal places".into());
    }
    if d > Decimal::from(MAX_CAP_BTC) {
        return Err(format!("at most {MAX_CAP_BTC} BTC"));
    }
    let sats = d * Decimal::from(SATS_PER_BTC);
    i64::try_from(sats.trunc()).map_err(|e| e.to_string())
}

/// A BTC amount in satoshis as the API spells it: 8 decimal places.
pub fn btc_text(sats: i128) -> String {
    format!(
        "{:.8}",
        rust_decimal::Decimal::from_i128_with_scale(sats, 8)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(s: &str) -> Amount {
        Amount::from_decimal(parse_decimal(s).unwrap()).unwrap()
    }
    fn rate(s: &str) -> Rate {
        Rate::new(parse_decimal(s).unwrap()).unwrap()
    }

    #[test]
    fn amounts() {
        assert_eq!(amount("10").cents(), 1000);
        assert_eq!(amount("10.5").cents(), 1050);
        assert_eq!(amount("10.50").cents(), 1050);
        assert_eq!(amount("10.500").cents(), 1050);
        assert_eq!(amount("0.01").cents(), 1);
        assert_eq!(amount("999999999.99").cents(), 99_999_999_999);
        assert_eq!(amount("1.5e2").cents(), 15000);
        for bad in ["0", "0.00", "-1", "0.001", "1000000000", "1e9", "12.345"] {
            assert!(
                Amount::from_decimal(parse_decimal(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
        for junk in ["", "abc", "1,5", "+1", "1e400", "NaN", "1.2.3"] {
            assert!(parse_decimal(junk).is_none(), "{junk}");
        }
        assert_eq!(amount("10.5").to_string(), "10.50");
    }

    #[test]
    fn btc_rounding_table() {
        // (amount, rate, btc) computed by hand.
        let table = [
            ("100", "50000", "0.00200000"),        // exact
            ("1", "3", "0.33333334"),              // 0.333333333… rounds up
            ("10", "43216.7431", "0.00023140"),    // 0.000231392… up
            ("0.01", "1000000", "0.00000001"),     // 1e-8 exactly
            ("0.01", "99999999999", "0.00000001"), // 1e-13 → never zero
            ("999999999.99", "0.01", "99999999999.00000000"),
            ("50", "0.00000007", "714285714.28571429"),
            ("20000", "40000", "0.50000000"),
            ("20000.01", "40000", "0.50000025"), // 0.500000250 exact
            ("1", "39612.0558", "0.00002525"),   // 0.0000252448… up
        ];
        for (a, r, want) in table {
            let sats = btc_sats(amount(a), rate(r));
            let got = Decimal::from_i128_with_scale(sats, 8);
            assert_eq!(got.to_string(), want, "{a} / {r}");
        }
    }

    #[test]
    fn matches_decimal_division_when_representable() {
        // Cross-check with rust_decimal's own division + round-up where its 28 digits
        // are enough.
        for (a, r) in [("10", "43216.7431"), ("1234.56", "34385.2109"), ("1", "7")] {
            let want = (parse_decimal(a).unwrap() / parse_decimal(r).unwrap())
                .round_dp_with_strategy(8, RoundingStrategy::AwayFromZero);
            let got = Decimal::from_i128_with_scale(btc_sats(amount(a), rate(r)), 8);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn caps() {
        assert_eq!(parse_btc("100").unwrap(), 10_000_000_000);
        assert_eq!(parse_btc("0.00000001").unwrap(), 1);
        assert_eq!(parse_btc("0").unwrap(), 0);
        assert!(parse_btc("-1").is_err());
        assert!(parse_btc("0.000000001").is_err());
        assert!(parse_btc("21000001").is_err());
    }

    proptest::proptest! {
        #[test]
        fn rounding_is_the_smallest_upper_bound(cents in 1i64..100_000_000_000, m in 1i64..10_000_000_000_000, s in 0u32..=8) {
            let a = Amount::from_cents(cents).unwrap();
            let Ok(r) = Rate::new(Decimal::new(m, s)) else { return Ok(()); };
            let sats = btc_sats(a, r);
            proptest::prop_assert!(sats >= 1);
            // sats·rate ≥ amount > (sats−1)·rate, all exact in i128 (scaled by 10^8·10^s).
            let rm = r.value().mantissa();
            let rs = r.value().scale();
            let amount_scaled = i128::from(cents) * 10i128.pow(6 + rs);
            proptest::prop_assert!(sats * rm >= amount_scaled);
            proptest::prop_assert!((sats - 1) * rm < amount_scaled);
        }
    }
}
