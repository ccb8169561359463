//! The orders feature's metrics: their descriptions, and the series that must exist from
//! start-up (a counter that appears only on its first event cannot be alerted on).

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// Values of the `outcome` label of `pricehub_orders_total`.
pub const OUTCOMES: &[&str] = &[
    "created",
    "replayed",
    "conflict",
    "invalid",
    "no_rate",
    "cap_exceeded",
    "error",
];

pub fn describe() {
    describe_counter!(
        "pricehub_orders_total",
        "Order requests answered, by outcome (created, replayed, conflict, invalid, no_rate, cap_exceeded, error)"
    );
    describe_gauge!(
        "pricehub_orders_btc_total",
        "BTC committed by all stored orders (the cap ledger)"
    );
    describe_gauge!(
        "pricehub_orders_btc_cap",
        "The BTC cap: the most all stored orders may add up to"
    );
    describe_histogram!(
        "pricehub_orders_batch_size",
        "Orders committed per writer transaction (group commit)"
    );
    describe_counter!(
        "pricehub_orders_rate_limited_total",
        "Order requests refused with 429 by the per-client rate limit"
    );
    describe_counter!(
        "pricehub_orders_rate_limit_errors_total",
        "Rate-limit checks that could not reach Redis (this replica limited in memory instead)"
    );
    describe_gauge!(
        "pricehub_orders_rate_age_seconds",
        metrics::Unit::Seconds,
        "Age of the BTC rate that would price an order now"
    );
    describe_counter!(
        "pricehub_orders_rate_fetch_errors_total",
        "Failed fetches of the BTC rate, by source (http, feed, fixed)"
    );
    describe_counter!(
        "pricehub_orders_rate_share_errors_total",
        "Failures to share the BTC rate through Redis or to read it back"
    );
}

/// Registers the order counters at 0 (called when the orders feature starts).
pub fn register() {
    for outcome in OUTCOMES {
        metrics::counter!("pricehub_orders_total", "outcome" => *outcome).increment(0);
    }
    metrics::counter!("pricehub_orders_rate_limited_total").increment(0);
    metrics::counter!("pricehub_orders_rate_limit_errors_total").increment(0);
    metrics::counter!("pricehub_orders_rate_share_errors_total").increment(0);
    for source in ["http", "feed", "fixed"] {
        metrics::counter!("pricehub_orders_rate_fetch_errors_total", "source" => source)
            .increment(0);
    }
}

/// Counts one order answered with `label` (one of [`OUTCOMES`]).
pub(crate) fn outcome(label: &'static str) {
    metrics::counter!("pricehub_orders_total", "outcome" => label).increment(1);
}

/// Counts `n` orders answered with `label` (nothing when `n` is 0).
pub(crate) fn outcome_n(label: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("pricehub_orders_total", "outcome" => label).increment(n as u64);
    }
}

/// Sets `pricehub_orders_btc_total` from the ledger's total.
pub(crate) fn record_btc_total(total_sats: i64) {
    metrics::gauge!("pricehub_orders_btc_total").set(sats_to_btc_f64(total_sats));
}

/// Sets `pricehub_orders_btc_cap`.
pub(crate) fn record_btc_cap(cap_sats: i64) {
    metrics::gauge!("pricehub_orders_btc_cap").set(sats_to_btc_f64(cap_sats));
}

/// For gauges only (a metric is a float by nature); the books are kept in satoshis.
fn sats_to_btc_f64(sats: i64) -> f64 {
    sats as f64 / super::money::SATS_PER_BTC as f64
}
