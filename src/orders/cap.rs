//! `GET /orders/cap`: how much of the BTC cap the stored orders use (the dashboard's BTC
//! panel, and anyone deciding whether an order can still fit).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::money::btc_text;
use super::store;
use crate::app::AppState;
use crate::http::problem::{Problem, ProblemBody};

/// The cap and its use. Decimals are strings with 8 places (never binary floats).
#[derive(Debug, Serialize, ToSchema)]
pub struct CapView {
    /// The most BTC all orders together may buy (`--btc-cap`).
    #[schema(example = "100.00000000")]
    pub cap_btc: String,
    /// BTC bought by all stored orders.
    #[schema(example = "12.34567891")]
    pub used_btc: String,
    /// What is left for new orders.
    #[schema(example = "87.65432109")]
    pub remaining_btc: String,
    /// `used_btc / cap_btc`, from 0 to 1 (for display; the books are kept exactly).
    #[schema(example = 0.1234567891)]
    pub used_ratio: f64,
}

/// BTC cap in use: the cap, what the stored orders use, what remains.
///
/// Read from the cap ledger the order writer keeps in the same transaction as the
/// orders, so it is exact at the moment of the read. Not rate limited.
#[utoipa::path(get, path = "/orders/cap", tag = "orders",
    responses(
        (status = 200, description = "The cap and its use", body = CapView),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_cap(State(state): State<AppState>) -> Result<Json<CapView>, Problem> {
    let used = store::ledger_total(&state.orders.db).await?;
    Ok(Json(view(state.orders.cap_sats, used)))
}

pub fn view(cap_sats: i64, used_sats: i64) -> CapView {
    CapView {
        cap_btc: btc_text(i128::from(cap_sats)),
        used_btc: btc_text(i128::from(used_sats)),
        remaining_btc: btc_text(i128::from(cap_sats.saturating_sub(used_sats).max(0))),
        used_ratio: if cap_sats > 0 {
            (used_sats as f64 / cap_sats as f64).clamp(0.0, 1.0)
        } else {
            1.0
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cap_view_is_exact_and_never_negative() {
        let v = super::view(100 * 100_000_000, 1_234_567_891);
        assert_eq!(
            (
                v.cap_btc.as_str(),
                v.used_btc.as_str(),
                v.remaining_btc.as_str()
            ),
            ("100.00000000", "12.34567891", "87.65432109")
        );
        assert!((v.used_ratio - 0.1234567891).abs() < 1e-12);
        let full = super::view(100, 150);
        assert_eq!(
            (full.remaining_btc.as_str(), full.used_ratio),
            ("0.00000000", 1.0)
        );
    }
}
