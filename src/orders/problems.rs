//! The problems orders are refused with: `rate-unavailable` and `btc-cap-exceeded`.

use std::time::Duration;

use axum::http::{HeaderValue, header};

use super::fx::{NoRate, RateBook};
use super::money::btc_text;
use crate::http::problem::{Kind, Problem};

fn retry_after(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs_f64().ceil().max(1.0) as u64)
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
