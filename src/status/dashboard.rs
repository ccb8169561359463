//! `GET /dashboard`: live prices. One tile per instrument (last price, change over the
//! last 30 minutes of trading, sparkline), a candle chart of the selected instrument, and
//! the BTC panel (cap in use, latest orders).
//!
//! Everything is rendered on the server first, so the page is useful without JavaScript
//! (tiles, sparklines as inline SVG, the candle data as a table, a form to pick the
//! instrument and interval). `dashboard.js` then applies `GET /instruments/stream`
//! events to the tiles and the chart, and refreshes the BTC panel from `/orders/cap` and
//! `/orders`. The stream works the same whether the feed runs in this process or a
//! separate collector writes to the database (see `feed::stream`), so the page does too.
//!
//! Query: `symbol` (default BTCUSD, else the first instrument) and `interval` (a candle
//! interval of `/instruments/{symbol}/candles`, default `1m`), read under the rules of
//! [`crate::http::params`]. A bad value renders the page with the defaults and the
//! problem shown on it, with its status: 400 `invalid-interval` or `duplicate-parameter`,
//! 404 `unknown-instrument`, 503 when the database is down.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};

use super::{Chrome, html};
use crate::app::AppState;
use crate::feed::routes::{interval_ms, interval_names};
use crate::feed::store;
use crate::http::params::Params;
use crate::http::problem::{Kind, Problem};
use crate::orders::cap::{self, CapView};
use crate::orders::view::OrderView;

/// The sparkline's window, ending at the instrument's latest trade.
const WINDOW_MS: i64 = 30 * 60_000;
/// Candles in the chart.
const CANDLES: i64 = 60;
const DEFAULT_INTERVAL: &str = "1m";
/// Orders in the BTC panel.
const ORDERS: usize = 10;

struct Tile {
    symbol: String,
    href: String,
    selected: bool,
    price: f64,
    price_text: String,
    change: String,
    change_class: &'static str,
    time: String,
    time_iso: String,
    /// `minute_start:open:close` triples, oldest first, for the script.
    series: String,
    /// The first price of the window (what the change is against).
    base: f64,
    /// SVG path of the sparkline in a 120×32 box.
    spark: String,
}

struct CandleRow {
    start_ms: i64,
    time: String,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    trades: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    rendered_at: String,
    errors: Vec<Problem>,
    tiles: Vec<Tile>,
    window_ms: i64,
    selected: Option<String>,
    interval: String,
    intervals: Vec<&'static str>,
    step_ms: i64,
    candles_to: i64,
    candles_span: i64,
    candles: Vec<CandleRow>,
    cap: Option<CapView>,
    orders: Vec<OrderRow>,
}

/// An order in the BTC panel; `placed` is `created_at` to the second, as the script
/// writes it too.
struct OrderRow {
    placed: String,
    order: OrderView,
}

impl From<OrderView> for OrderRow {
    fn from(order: OrderView) -> Self {
        OrderRow {
            placed: order
                .created_at
                .get(..19)
                .unwrap_or_default()
                .replace('T', " "),
            order,
        }
    }
}

fn time_of(ms: i64, format: &str) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The same drawing as `pricehubChart.sparkline` (chart.js), so the script redraws it
/// without a jump.
fn spark_path(values: &[f64]) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo == hi {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.05 } else { 1.0 };
        (lo, hi) = (lo - d, hi + d);
    }
    let pad = (hi - lo) * 0.05;
    (lo, hi) = (lo - pad, hi + pad);
    let n = (values.len() - 1) as f64;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{}{:.2} {:.2}",
                if i == 0 { "M" } else { "L" },
                i as f64 / n * 120.0,
                32.0 - (v - lo) / (hi - lo) * 32.0
            )
        })
        .collect()
}

/// The sparkline's values: the window's first price, then each minute's close (so a
/// window of one minute is still a line). `dashboard.js` draws the same.
fn spark_points(base: f64, window: &[store::Candle], last: f64) -> Vec<f64> {
    let mut points = vec![base];
    points.extend(window.iter().map(|c| c.close));
    if points.len() < 2 {
        points.push(last);
    }
    points
}

/// A price as the tiles show it (and `dashboard.js` too): the shortest form that reads
/// back as the same number, with at least two decimals.
fn price_text(p: f64) -> String {
    let s = p.to_string();
    match s.find('.') {
        None => format!("{s}.00"),
        Some(dot) if s.len() - dot == 2 => format!("{s}0"),
        Some(_) => s,
    }
}

fn change(base: f64, price: f64) -> (String, &'static str) {
    let pct = if base > 0.0 {
        (price - base) / base * 100.0
    } else {
        0.0
    };
    let class = if pct > 0.0 {
        "up"
    } else if pct < 0.0 {
        "down"
    } else {
        "flat"
    };
    (format!("{pct:+.2}%"), class)
}

fn dashboard_href(symbol: &str, interval: &str) -> String {
    format!(
        "/dashboard?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("symbol", symbol)
            .append_pair("interval", interval)
            .finish()
    )
}

/// The live dashboard: a tile per instrument (last price, change over the last 30
/// minutes of trading, sparkline), candles of the selected instrument and the BTC cap in
/// use with the latest orders, all rendered on the server; the page's script then
/// follows `GET /instruments/stream`. A bad parameter is shown on the page (rendered
/// with the defaults) with the status the API would answer.
#[utoipa::path(get, path = "/dashboard", tag = "status",
    params(
        ("symbol" = Option<String>, Query, description = "Instrument of the candle chart (default BTCUSD, else the first stored)", example = "BTCUSD"),
        ("interval" = Option<String>, Query, description = "Candle interval, one of 1s, 5s, 15s, 1m, 5m, 15m, 1h, 4h, 1d (default 1m)", example = "1m"),
    ),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html"),
        (status = 400, description = "The page, explaining that the interval is not one of the listed names or a parameter is repeated", content_type = "text/html"),
        (status = 404, description = "The page, saying that no trades are stored for the symbol", content_type = "text/html"),
        (status = 503, description = "The page, saying the database is unavailable", content_type = "text/html")))]
pub async fn dashboard_page(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let mut errors: Vec<Problem> = Vec::new();
    const KNOWN: &[&str] = &["symbol", "interval"];
    let q = Params::parse(raw.as_deref(), KNOWN).unwrap_or_else(|p| {
        errors.push(p);
        Params::parse(None, KNOWN).expect("no query, no problem")
    });
    let (interval, step) = match q.get("interval") {
        None => (DEFAULT_INTERVAL.to_string(), 60_000),
        Some(i) => match interval_ms(i) {
            Ok(step) => (i.to_string(), step),
            Err(p) => {
                errors.push(p);
                (DEFAULT_INTERVAL.to_string(), 60_000)
            }
        },
    };
    let db = &state.db;
    let rows = match store::list_instruments(db).await {
        Ok(r) => r,
        Err(e) => {
            errors.push(e.into());
            Vec::new()
        }
    };
    let wanted = q.get("symbol");
    let selected = match wanted {
        Some(s) if rows.iter().any(|r| r.symbol == s) => Some(s.to_string()),
        _ => {
            if let Some(s) = wanted
                && !rows.is_empty()
            {
                let shown: String = s.chars().take(40).collect();
                errors.push(Problem::new(
                    Kind::UnknownInstrument,
                    format!("no trades are stored for {shown:?}; showing the default instrument"),
                ));
            }
            rows.iter()
                .find(|r| r.symbol == "BTCUSD")
                .or(rows.first())
                .map(|r| r.symbol.clone())
        }
    };
    if let Some(s) = wanted
        && rows.is_empty()
        && errors.is_empty()
    {
        let shown: String = s.chars().take(40).collect();
        errors.push(Problem::new(
            Kind::UnknownInstrument,
            format!("no trades are stored for {shown:?} (nor for any instrument yet)"),
        ));
    }
    let mut tiles = Vec::with_capacity(rows.len());
    let mut candles = Vec::new();
    let mut candles_to = 0;
    for r in &rows {
        let window = store::candles(
            db,
            &r.symbol,
            r.last_ts_ms - WINDOW_MS,
            r.last_ts_ms + 1,
            60_000,
        )
        .await
        .unwrap_or_default();
        let base = window.first().map(|c| c.open).unwrap_or(r.last_price);
        let points = spark_points(base, &window, r.last_price);
        let (change, change_class) = change(base, r.last_price);
        let is_selected = selected.as_deref() == Some(r.symbol.as_str());
        if is_selected {
            candles_to = r.last_ts_ms + 1;
            let format = if step >= 86_400_000 {
                "%Y-%m-%d"
            } else {
                "%Y-%m-%d %H:%M:%S"
            };
            candles = store::candles(db, &r.symbol, candles_to - CANDLES * step, candles_to, step)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|c| CandleRow {
                    start_ms: c.start_ms,
                    time: time_of(c.start_ms, format),
                    open: c.open,
                    high: c.high,
                    low: c.low,
                    close: c.close,
                    trades: c.trades,
                })
                .collect();
        }
        tiles.push(Tile {
            href: dashboard_href(&r.symbol, &interval),
            selected: is_selected,
            price: r.last_price,
            price_text: price_text(r.last_price),
            change,
            change_class,
            time: time_of(r.last_ts_ms, "%H:%M:%S UTC"),
            time_iso: iso(r.last_ts_ms),
            series: window
                .iter()
                .map(|c| format!("{}:{}:{}", c.start_ms, c.open, c.close))
                .collect::<Vec<_>>()
                .join(" "),
            base,
            spark: spark_path(&points),
            symbol: r.symbol.clone(),
        });
    }
    let cap = match crate::orders::store::ledger_total(&state.orders.db).await {
        Ok(used) => Some(cap::view(state.orders.cap_sats, used)),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: cannot read the BTC cap ledger");
            None
        }
    };
    let orders = match state.orders.list(None, ORDERS).await {
        Ok(p) => p.orders.into_iter().map(OrderRow::from).collect(),
        Err(_) => Vec::new(),
    };
    let status = errors.first().map_or(StatusCode::OK, |p| p.status);
    let page = DashboardPage {
        chrome: Chrome::new("/dashboard"),
        rendered_at: Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        errors,
        tiles,
        window_ms: WINDOW_MS,
        selected,
        interval,
        intervals: interval_names().collect(),
        step_ms: step,
        candles_to,
        candles_span: CANDLES,
        candles,
        cap,
        orders,
    };
    let mut resp = html(status, &page);
    // Live data: a reload must show the newest prices, never a cached page.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_spans_the_box() {
        assert_eq!(spark_path(&[1.0]), "");
        let p = spark_path(&[1.0, 2.0, 3.0]);
        assert!(
            p.starts_with("M0.00 ") && p.contains("L60.00 ") && p.contains("L120.00 "),
            "{p}"
        );
        // A flat line sits in the middle.
        assert_eq!(spark_path(&[5.0, 5.0]), "M0.00 16.00L120.00 16.00");
    }

    #[test]
    fn a_one_minute_window_is_still_a_line() {
        let c = |open, close| store::Candle {
            start_ms: 0,
            open,
            high: open,
            low: close,
            close,
            volume: 100,
            trades: 2,
        };
        assert_eq!(spark_points(10.0, &[c(10.0, 11.0)], 11.0), [10.0, 11.0]);
        assert_eq!(spark_points(10.0, &[], 10.0), [10.0, 10.0]);
        assert_eq!(
            spark_points(10.0, &[c(10.0, 11.0), c(11.0, 9.0)], 9.0),
            [10.0, 11.0, 9.0]
        );
    }

    #[test]
    fn prices_show_at_least_two_decimals() {
        assert_eq!(price_text(190.0), "190.00");
        assert_eq!(price_text(43001.7), "43001.70");
        assert_eq!(price_text(1.08501), "1.08501");
        assert_eq!(price_text(149.994), "149.994");
    }

    #[test]
    fn change_is_signed_percent() {
        assert_eq!(change(100.0, 101.5), ("+1.50%".to_string(), "up"));
        assert_eq!(change(100.0, 99.0), ("-1.00%".to_string(), "down"));
        assert_eq!(change(100.0, 100.0), ("+0.00%".to_string(), "flat"));
    }
}
