//! The stored feed on the API: `GET /instruments`, `GET /instruments/{symbol}/trades`
//! and `GET /instruments/{symbol}/candles`.
//!
//! Times in queries are RFC 3339 (`2026-11-23T05:40:00Z`), a date (`2026-11-23`, midnight
//! UTC) or integer milliseconds since the epoch; `from` is inclusive and `to` exclusive.
//! Times in answers are RFC 3339 UTC with milliseconds.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::store;
use crate::app::AppState;
use crate::http::problem::{Problem, ProblemBody};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1_000;
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

#[derive(Serialize, ToSchema)]
pub struct CandleOut {
    /// Start of the interval.
    #[schema(example = "2026-11-23T06:37:00.000Z")]
    pub time: String,
    pub start_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Sum of the trade sizes.
    pub volume: i64,
    /// Number of trades.
    pub trades: i64,
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

/// The query string as a map; a parameter given twice is an error, not a guess.
fn query_map(raw: Option<&str>) -> Result<HashMap<String, String>, Problem> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Problem::bad_request(
                "duplicate-parameter",
                "Duplicate parameter",
                format!("{k} is given more than once"),
            )
            .with("parameter", k.as_ref()));
        }
    }
    Ok(map)
}

fn parse_time(name: &'static str, value: &str) -> Result<i64, Problem> {
    let v = value.trim();
    let parsed = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse::<i64>().ok()
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        Some(t.timestamp_millis())
    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
    } else {
        None
    };
    parsed.ok_or_else(|| {
        Problem::bad_request(
            "invalid-time",
            "Invalid time",
            format!(
                "{name} must be an RFC 3339 time, a YYYY-MM-DD date or milliseconds since the epoch, got {value:?}"
            ),
        )
        .with("parameter", name)
    })
}

fn time_param(q: &HashMap<String, String>, name: &'static str) -> Result<Option<i64>, Problem> {
    q.get(name).map(|v| parse_time(name, v)).transpose()
}

fn check_range(from: i64, to: i64) -> Result<(), Problem> {
    if from > to {
        return Err(Problem::bad_request(
            "invalid-range",
            "Invalid range",
            format!("from ({}) is after to ({})", rfc3339(from), rfc3339(to)),
        ));
    }
    Ok(())
}

/// 404 unless the symbol has stored trades.
async fn known(state: &AppState, symbol: &str) -> Result<(), Problem> {
    // Checked before the query: a NUL byte, for one, is an error in PostgreSQL text.
    if super::codec::validate_ticker(symbol.as_bytes()).is_err()
        || store::instrument(&state.db, symbol).await?.is_none()
    {
        return Err(Problem::not_found(
            "unknown-instrument",
            "Unknown instrument",
            format!("no trades are stored for {symbol:?}; GET /instruments lists the known ones"),
        ));
    }
    Ok(())
}

/// Every instrument with stored trades: latest price and time, and the trade count.
#[utoipa::path(get, path = "/instruments", tag = "feed",
    responses(
        (status = 200, description = "Instruments, by symbol", body = InstrumentsResponse),
        (status = 503, description = "Database unavailable", body = ProblemBody, content_type = "application/problem+json"),
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

fn parse_cursor(v: &str) -> Result<(i64, i64), Problem> {
    v.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid-cursor",
                "Invalid cursor",
                format!("cursor {v:?} is not a next_cursor value from a previous page"),
            )
            .with("parameter", "cursor")
        })
}

/// Stored trades of one instrument, newest first, in keyset-paged pages (the cost of a
/// page does not depend on how deep it is).
#[utoipa::path(get, path = "/instruments/{symbol}/trades", tag = "feed",
    params(
        ("symbol" = String, Path, description = "Instrument symbol", example = "BTCUSD"),
        ("from" = Option<String>, Query, description = "Earliest trade time (inclusive): RFC 3339, YYYY-MM-DD or epoch ms"),
        ("to" = Option<String>, Query, description = "Latest trade time (exclusive)"),
        ("limit" = Option<i64>, Query, description = "Trades per page, 1..=1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of trades", body = TradesResponse),
        (status = 400, description = "Malformed time, limit or cursor, or from after to", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No trades stored for this symbol", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_trades(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TradesResponse>, Problem> {
    let q = query_map(raw.as_deref())?;
    let from = time_param(&q, "from")?.unwrap_or(i64::MIN);
    let to = time_param(&q, "to")?.unwrap_or(i64::MAX);
    check_range(from, to)?;
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid-limit",
                    "Invalid limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}, got {v:?}"),
                )
                .with("parameter", "limit")
            })?,
    };
    let before = q.get("cursor").map(|v| parse_cursor(v)).transpose()?;
    known(&state, &symbol).await?;
    let mut rows = store::trades_page(&state.db, &symbol, from, to, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| format!("{}:{}", r.ts_ms, r.id)))
        .flatten();
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

/// Milliseconds of a candle interval name.
fn interval_ms(name: &str) -> Option<i64> {
    Some(match name {
        "1s" => 1_000,
        "5s" => 5_000,
        "15s" => 15_000,
        "1m" => 60_000,
        "5m" => 300_000,
        "15m" => 900_000,
        "1h" => 3_600_000,
        "4h" => 14_400_000,
        "1d" => 86_400_000,
        _ => return None,
    })
}

/// OHLC candles with volume for charts, oldest first.
#[utoipa::path(get, path = "/instruments/{symbol}/candles", tag = "feed",
    params(
        ("symbol" = String, Path, description = "Instrument symbol", example = "BTCUSD"),
        ("interval" = Option<String>, Query, description = "1s, 5s, 15s, 1m (default), 5m, 15m, 1h, 4h or 1d"),
        ("from" = Option<String>, Query, description = "Start (inclusive); default: 500 intervals before `to`"),
        ("to" = Option<String>, Query, description = "End (exclusive); default: now"),
    ),
    responses(
        (status = 200, description = "Candles", body = CandlesResponse),
        (status = 400, description = "Unknown interval, malformed time, from after to, or more than 10,000 intervals", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No trades stored for this symbol", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_candles(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CandlesResponse>, Problem> {
    let q = query_map(raw.as_deref())?;
    let interval = q.get("interval").map(String::as_str).unwrap_or("1m");
    let step = interval_ms(interval).ok_or_else(|| {
        Problem::bad_request(
            "invalid-interval",
            "Invalid interval",
            format!(
                "interval must be one of 1s, 5s, 15s, 1m, 5m, 15m, 1h, 4h, 1d, got {interval:?}"
            ),
        )
        .with("parameter", "interval")
    })?;
    let to = time_param(&q, "to")?.unwrap_or_else(|| super::now_ms() as i64 + 1);
    let from = time_param(&q, "from")?.unwrap_or(to.saturating_sub(DEFAULT_CANDLES * step));
    check_range(from, to)?;
    let count = (to as i128 - from as i128) / step as i128;
    if count > MAX_CANDLES as i128 {
        return Err(Problem::bad_request(
            "range-too-long",
            "Range too long",
            format!("{count} intervals of {interval} requested; at most {MAX_CANDLES} per request"),
        ));
    }
    known(&state, &symbol).await?;
    let candles = store::candles(&state.db, &symbol, from, to, step).await?;
    Ok(Json(CandlesResponse {
        symbol,
        interval: interval.to_string(),
        candles: candles
            .into_iter()
            .map(|c| CandleOut {
                time: rfc3339(c.start_ms),
                start_ms: c.start_ms,
                open: c.open,
                high: c.high,
                low: c.low,
                close: c.close,
                volume: c.volume,
                trades: c.trades,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(parse_time("from", "0").unwrap(), 0);
        assert_eq!(
            parse_time("from", "1795415862219").unwrap(),
            1_795_415_862_219
        );
        assert_eq!(
            parse_time("from", "2026-11-23T06:37:42.219Z").unwrap(),
            1_795_415_862_219
        );
        assert_eq!(parse_time("from", "1970-01-02").unwrap(), 86_400_000);
        for bad in ["", "yesterday", "2026-13-01", "-5", "99999999999999999999"] {
            assert_eq!(
                parse_time("from", bad).unwrap_err().kind,
                "invalid-time",
                "{bad}"
            );
        }
        assert_eq!(rfc3339(1_795_415_862_219), "2026-11-23T06:37:42.219Z");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(
            parse_cursor("1795415862219:42").unwrap(),
            (1_795_415_862_219, 42)
        );
        for bad in ["", "1", "a:b", "1:2:3"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
