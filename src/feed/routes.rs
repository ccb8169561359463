//! The stored feed on the API: `GET /instruments`, `GET /instruments/{symbol}/trades`
//! and `GET /instruments/{symbol}/candles`.
//!
//! Times in queries are RFC 3339 (`2026-11-23T05:40:00Z`), a date (`2026-11-23`, midnight
//! UTC) or integer milliseconds since the epoch; `from` is inclusive and `to` exclusive.
//! Times in answers are RFC 3339 UTC with milliseconds.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::store;
use crate::app::AppState;
use crate::http::params::{Cursor, Limit, Page, Params, TimeParam, invalid_cursor, rows_to_fetch};
use crate::http::problem::{Kind, Problem, ProblemBody};

const TRADES_LIMIT: Limit = Limit {
    default: 100,
    max: 1_000,
};
const MAX_CANDLES: i64 = 10_000;
const DEFAULT_CANDLES: i64 = 500;

#[derive(Serialize, ToSchema)]
pub struct InstrumentOut {
    #[schema(example = "BTCUSD")]
    pub symbol: String,
    /// Price of the latest stored trade.
    #[schema(example = 43001.13)]
    pub last_price: f64,
    /// Time of the latest stored trade.
    #[schema(example = "2026-11-23T06:37:42.219Z")]
    pub last_time: String,
    /// Number of stored trades.
    #[schema(example = 304)]
    pub ticks: i64,
}

#[derive(Serialize, ToSchema)]
pub struct InstrumentsResponse {
    pub instruments: Vec<InstrumentOut>,
}

#[derive(Serialize, ToSchema)]
pub struct TradeOut {
    /// Storage id (ties of equal timestamps are ordered by it).
    pub id: i64,
    #[schema(example = "2026-11-23T06:37:42.219Z")]
    pub time: String,
    #[schema(example = 1795415862219i64)]
    pub timestamp_ms: i64,
    #[schema(example = 43001.13)]
    pub price: f64,
    #[schema(example = 700)]
    pub size: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TradesResponse {
    pub symbol: String,
    /// Newest first.
    pub trades: Vec<TradeOut>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A candle with its start as RFC 3339 time.
#[derive(Serialize, ToSchema)]
pub struct CandleOut {
    /// Start of the interval.
    #[schema(example = "2026-11-23T06:37:00.000Z")]
    pub time: String,
    #[serde(flatten)]
    pub candle: store::Candle,
}

#[derive(Serialize, ToSchema)]
pub struct CandlesResponse {
    pub symbol: String,
    #[schema(example = "1m")]
    pub interval: String,
    /// Oldest first; intervals without trades are absent.
    pub candles: Vec<CandleOut>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn check_range(from: i64, to: i64) -> Result<(), Problem> {
    if from > to {
        return Err(Problem::new(
            Kind::InvalidRange,
            format!("from ({}) is after to ({})", rfc3339(from), rfc3339(to)),
        )
        .with("parameter", "from"));
    }
    Ok(())
}

/// 404 unless the symbol has stored trades.
async fn known(state: &AppState, symbol: &str) -> Result<(), Problem> {
    // Checked before the query: a NUL byte, for one, is an error in PostgreSQL text.
    if super::codec::validate_ticker(symbol.as_bytes()).is_err()
        || store::instrument(&state.db, symbol).await?.is_none()
    {
        return Err(Problem::new(
            Kind::UnknownInstrument,
            format!("no trades are stored for {symbol:?}; GET /instruments lists the known ones"),
        ));
    }
    Ok(())
}

/// Every instrument with stored trades: latest price and time, and the trade count.
#[utoipa::path(get, path = "/instruments", tag = "feed",
    responses(
        (status = 200, description = "Instruments, by symbol", body = InstrumentsResponse),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_instruments(
    State(state): State<AppState>,
) -> Result<Json<InstrumentsResponse>, Problem> {
    let rows = store::list_instruments(&state.db).await?;
    Ok(Json(InstrumentsResponse {
        instruments: rows
            .into_iter()
            .map(|r| InstrumentOut {
                symbol: r.symbol,
                last_price: r.last_price,
                last_time: rfc3339(r.last_ts_ms),
                ticks: r.ticks,
            })
            .collect(),
    }))
}

/// Stored trades of one instrument, newest first, in keyset-paged pages (the cost of a
/// page does not depend on how deep it is).
#[utoipa::path(get, path = "/instruments/{symbol}/trades", tag = "feed",
    params(
        ("symbol" = String, Path, description = "Instrument symbol", example = "BTCUSD"),
        ("from" = inline(Option<TimeParam>), Query, description = "Earliest trade time (inclusive): RFC 3339, YYYY-MM-DD or epoch ms"),
        ("to" = inline(Option<TimeParam>), Query, description = "Latest trade time (exclusive); not before from"),
        ("limit" = Option<u32>, Query, description = "Trades per page (default 100)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of trades", body = TradesResponse),
        (status = 400, description = "A parameter is repeated or malformed (`duplicate-parameter`, `invalid-time`, `invalid-limit`, `invalid-cursor`) or from is after to (`invalid-range`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No trades stored for this symbol (`unknown-instrument`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_trades(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TradesResponse>, Problem> {
    let q = Params::parse(raw.as_deref(), &["from", "to", "limit", "cursor"])?;
    let from = q.time_ms("from")?.unwrap_or(i64::MIN);
    let to = q.time_ms("to")?.unwrap_or(i64::MAX);
    check_range(from, to)?;
    let limit = q.limit("limit", TRADES_LIMIT)?;
    let before = match q.cursor("cursor")? {
        None => None,
        Some(c) => Some((
            c.time,
            c.id.parse::<i64>()
                .map_err(|_| invalid_cursor("cursor", &c.encode()))?,
        )),
    };
    known(&state, &symbol).await?;
    let rows =
        store::trades_page(&state.db, &symbol, from, to, before, rows_to_fetch(limit)).await?;
    let page = Page::new(rows, limit, |r| Cursor::new(r.ts_ms, r.id));
    let next_cursor = page.next_cursor();
    let rows = page.items;
    Ok(Json(TradesResponse {
        symbol,
        trades: rows
            .into_iter()
            .map(|r| TradeOut {
                id: r.id,
                time: rfc3339(r.ts_ms),
                timestamp_ms: r.ts_ms,
                price: r.price,
                size: r.size,
            })
            .collect(),
        next_cursor,
    }))
}

/// Candle interval names and their length in milliseconds.
const INTERVALS: [(&str, i64); 9] = [
    ("1s", 1_000),
    ("5s", 5_000),
    ("15s", 15_000),
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("4h", 14_400_000),
    ("1d", 86_400_000),
];

/// The candle interval names, shortest first (the dashboard offers them too).
pub(crate) fn interval_names() -> impl Iterator<Item = &'static str> {
    INTERVALS.iter().map(|(n, _)| *n)
}

/// The length of the candle interval `name` in milliseconds, or 400 `invalid-interval`.
pub(crate) fn interval_ms(name: &str) -> Result<i64, Problem> {
    INTERVALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ms)| *ms)
        .ok_or_else(|| {
            let shown: String = name.chars().take(40).collect();
            Problem::new(
                Kind::InvalidInterval,
                format!(
                    "interval must be one of {}, got {shown:?}",
                    INTERVALS.map(|(n, _)| n).join(", ")
                ),
            )
            .with("parameter", "interval")
        })
}

/// The OpenAPI schema of `interval`: an enum of [`INTERVALS`].
struct CandleInterval;

impl utoipa::PartialSchema for CandleInterval {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(INTERVALS.iter().map(|(n, _)| *n)))
            .into()
    }
}

impl utoipa::ToSchema for CandleInterval {}

/// OHLC candles with volume for charts, oldest first.
#[utoipa::path(get, path = "/instruments/{symbol}/candles", tag = "feed",
    params(
        ("symbol" = String, Path, description = "Instrument symbol", example = "BTCUSD"),
        ("interval" = inline(Option<CandleInterval>), Query, description = "Candle length (default 1m)"),
        ("from" = inline(Option<TimeParam>), Query, description = "Start (inclusive); default: 500 intervals before to"),
        ("to" = inline(Option<TimeParam>), Query, description = "End (exclusive); default: now; at most 10,000 intervals after from"),
    ),
    responses(
        (status = 200, description = "Candles", body = CandlesResponse),
        (status = 400, description = "A parameter is repeated or malformed (`duplicate-parameter`, `invalid-interval`, `invalid-time`), from is after to (`invalid-range`) or the range holds more than 10,000 intervals (`range-too-long`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No trades stored for this symbol (`unknown-instrument`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_candles(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CandlesResponse>, Problem> {
    let q = Params::parse(raw.as_deref(), &["interval", "from", "to"])?;
    let interval = q.get("interval").unwrap_or("1m");
    let step = interval_ms(interval)?;
    let to = q
        .time_ms("to")?
        .unwrap_or_else(|| super::now_ms() as i64 + 1);
    let from = q
        .time_ms("from")?
        .unwrap_or(to.saturating_sub(DEFAULT_CANDLES * step));
    check_range(from, to)?;
    let count = (to as i128 - from as i128) / step as i128;
    if count > MAX_CANDLES as i128 {
        return Err(Problem::new(
            Kind::RangeTooLong,
            format!("{count} intervals of {interval} requested; at most {MAX_CANDLES} per request"),
        )
        .with("parameter", "from")
        .with("max_intervals", MAX_CANDLES));
    }
    known(&state, &symbol).await?;
    let candles = store::candles(&state.db, &symbol, from, to, step).await?;
    Ok(Json(CandlesResponse {
        symbol,
        interval: interval.to_string(),
        candles: candles
            .into_iter()
            .map(|candle| CandleOut {
                time: rfc3339(candle.start_ms),
                candle,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_answer_in_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_795_415_862_219), "2026-11-23T06:37:42.219Z");
    }
}
