//! What the API shows of orders: [`OrderView`] and the list page [`OrderPage`].

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::money::Currency;
use super::store::Order;

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
