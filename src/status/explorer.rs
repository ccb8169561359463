//! `GET /explorer` (the rates explorer page) and `GET /explorer.csv` (its series as CSV).
//!
//! The page is a plain GET form (origin, destination, date range) answered on the
//! server: the series is an HTML table, so everything works without JavaScript; the
//! script only draws the chart from that table. Both read the same answer as
//! `GET /rates` ([`crate::rates::answer`]), so the numbers cannot differ.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate};

use super::{Chrome, SECURITY_HEADERS};
use crate::app::AppState;
use crate::http::problem::{Kind, Problem, ProblemBody};
use crate::rates::catalog::{Catalog, Location};
use crate::rates::places::{RegionNode, region_tree};
use crate::rates::query::{self, RatesQuery};
use crate::rates::{DayRate, answer};

/// Days shown when the page is opened without a query.
const DEFAULT_DAYS: u64 = 31;

struct Choice {
    value: String,
    label: String,
}

struct Row {
    day: String,
    /// The exact number `/rates` returns (JSON formatting); empty when null.
    price: String,
    shown: String,
    count: String,
}

#[derive(Template)]
#[template(path = "explorer.html")]
struct ExplorerPage {
    chrome: Chrome,
    regions: Vec<Choice>,
    ports: Vec<Choice>,
    orig: String,
    dest: String,
    date_from: String,
    date_to: String,
    error: Option<Problem>,
    rows: Vec<Row>,
    priced: usize,
    missing: usize,
    average: String,
    curl: String,
    csv_url: String,
    rates_url: String,
}

fn choices(catalog: &Catalog) -> (Vec<Choice>, Vec<Choice>) {
    fn walk(nodes: &[RegionNode], depth: usize, out: &mut Vec<Choice>) {
        for n in nodes {
            out.push(Choice {
                value: n.slug.clone(),
                label: format!(
                    "{}{} ({} ports)",
                    "\u{a0}\u{a0}\u{a0}".repeat(depth),
                    n.name,
                    n.port_count
                ),
            });
            walk(&n.children, depth + 1, out);
        }
    }
    let mut regions = Vec::new();
    walk(&region_tree(catalog), 0, &mut regions);
    let mut ports: Vec<Choice> = catalog
        .ports()
        .iter()
        .map(|p| Choice {
            value: p.code.clone(),
            label: format!("{} ({})", p.name, p.code),
        })
        .collect();
    ports.sort_by(|a, b| a.label.cmp(&b.label));
    (regions, ports)
}

/// The pair and range shown on a bare `/explorer`: two well-known demo regions when they
/// exist (else the first two top-level regions, else ports), over the last month that
/// has prices.
async fn default_query(state: &AppState, catalog: &Catalog) -> Option<RatesQuery> {
    let tree = region_tree(catalog);
    let pick = |slug: &str| catalog.resolve(slug).map(|_| slug.to_string());
    let (orig, dest) = match (pick("china_main"), pick("northern_europe")) {
        (Some(o), Some(d)) => (o, d),
        _ if tree.len() >= 2 => (tree[0].slug.clone(), tree[1].slug.clone()),
        _ if catalog.ports().len() >= 2 => (
            catalog.ports()[0].code.clone(),
            catalog.ports()[1].code.clone(),
        ),
        _ => return None,
    };
    let (Some(o), Some(d)) = (catalog.resolve(&orig), catalog.resolve(&dest)) else {
        return None;
    };
    let latest = latest_day(state, &o, &d)
        .await
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    Some(RatesQuery {
        date_from: latest - Days::new(DEFAULT_DAYS - 1),
        date_to: latest,
        orig_code: orig,
        dest_code: dest,
    })
}

async fn latest_day(state: &AppState, o: &Location, d: &Location) -> Option<NaiveDate> {
    let series = state.rates.series(o, d).await.ok()?;
    NaiveDate::from_num_days_from_ce_opt(series.last()?.day)
}

fn number(v: f64) -> String {
    serde_json::to_string(&v).expect("finite floats serialize")
}

/// Only a plain host[:port] is echoed into the copyable command.
fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("127.0.0.1:3000")
        .to_string()
}

fn query_string(q: &RatesQuery) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("date_from", &q.date_from.to_string())
        .append_pair("date_to", &q.date_to.to_string())
        .append_pair("orig_code", &q.orig_code)
        .append_pair("dest_code", &q.dest_code)
        .finish()
}

/// The raw value of one query parameter (to refill the form as the user typed it).
fn raw_param(raw: Option<&str>, name: &str) -> String {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The rates explorer: pick an origin and a destination (ports or regions) and a date
/// range; shows the daily average price and count, the days without a price, the
/// equivalent `curl` command and a CSV download. Bad input is shown on the page (with
/// the status `/rates` would answer).
#[utoipa::path(get, path = "/explorer", tag = "status",
    params(
        ("date_from" = Option<String>, Query, description = "First day, YYYY-MM-DD (all four parameters absent: a default pair and the last month with prices)"),
        ("date_to" = Option<String>, Query, description = "Last day, YYYY-MM-DD (inclusive)"),
        ("orig_code" = Option<String>, Query, description = "Origin port code or region slug"),
        ("dest_code" = Option<String>, Query, description = "Destination port code or region slug"),
    ),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html"),
        (status = 400, description = "The page, explaining which parameter is wrong", content_type = "text/html"),
        (status = 404, description = "The page, naming the unknown location", content_type = "text/html"),
        (status = 503, description = "The page, saying the database is unavailable", content_type = "text/html")))]
pub async fn explorer_page(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let raw = raw.filter(|r| !r.is_empty());
    let catalog = state.rates.catalog().await;
    let (regions, ports) = catalog.as_ref().map(|c| choices(c)).unwrap_or_default();
    let parsed: Result<RatesQuery, Problem> = match (&catalog, raw.as_deref()) {
        (Err(e), _) => Err(Problem::unavailable(e)),
        (Ok(c), None) => default_query(&state, c).await.ok_or_else(|| {
            Problem::new(
                Kind::NoLocations,
                "the database has no ports or regions: load some with `pricehub import`",
            )
        }),
        (Ok(_), Some(r)) => query::parse(Some(r), state.http.rates_max_days),
    };
    let result = match &parsed {
        Ok(q) => answer(&state.rates, q).await,
        Err(p) => Err(p.clone()),
    };
    let (orig, dest, date_from, date_to) = match &parsed {
        Ok(q) => (
            q.orig_code.clone(),
            q.dest_code.clone(),
            q.date_from.to_string(),
            q.date_to.to_string(),
        ),
        Err(_) => (
            raw_param(raw.as_deref(), "orig_code"),
            raw_param(raw.as_deref(), "dest_code"),
            raw_param(raw.as_deref(), "date_from"),
            raw_param(raw.as_deref(), "date_to"),
        ),
    };
    let (status, rows, error) = match result {
        Ok(mut days) => {
            days.reverse();
            (StatusCode::OK, days.iter().map(row).collect(), None)
        }
        Err(p) => (p.status, Vec::new(), Some(p)),
    };
    let prices: Vec<f64> = rows
        .iter()
        .filter_map(|r: &Row| r.price.parse().ok())
        .collect();
    let (curl, csv_url, rates_url) = match &parsed {
        Ok(q) if error.is_none() => {
            let qs = query_string(q);
            (
                format!("curl '{}://{}/rates?{qs}'", "http", host_of(&headers)),
                format!("/explorer.csv?{qs}"),
                format!("/rates?{qs}"),
            )
        }
        _ => Default::default(),
    };
    let page = ExplorerPage {
        chrome: Chrome::new("/explorer"),
        regions,
        ports,
        orig,
        dest,
        date_from,
        date_to,
        error,
        priced: prices.len(),
        missing: rows.len() - prices.len(),
        average: if prices.is_empty() {
            String::new()
        } else {
            format!("{:.2}", prices.iter().sum::<f64>() / prices.len() as f64)
        },
        rows,
        curl,
        csv_url,
        rates_url,
    };
    super::html(status, &page)
}

fn row(d: &DayRate) -> Row {
    Row {
        day: d.day.to_string(),
        price: d.price.map(number).unwrap_or_default(),
        shown: d.price.map(|p| format!("{p:.2}")).unwrap_or_default(),
        count: d.count.map(|c| c.to_string()).unwrap_or_default(),
    }
}

/// The explorer's series as CSV (`day,price,count`, oldest day first; empty fields for
/// null). Same parameters and errors as `GET /rates`.
#[utoipa::path(get, path = "/explorer.csv", tag = "status",
    params(
        ("date_from" = String, Query, description = "First day, YYYY-MM-DD", example = "2021-01-01"),
        ("date_to" = String, Query, description = "Last day, YYYY-MM-DD (inclusive)", example = "2021-01-31"),
        ("orig_code" = String, Query, description = "Origin port code or region slug", example = "china_main"),
        ("dest_code" = String, Query, description = "Destination port code or region slug", example = "northern_europe"),
    ),
    responses(
        (status = 200, description = "The series as CSV (a download)", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter is missing, repeated or malformed (`missing-parameter`, `duplicate-parameter`, `invalid-date`, `invalid-code`), date_from is after date_to (`invalid-range`) or the range is too long (`range-too-long`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown port or region (`unknown-location`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn explorer_csv(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let q = query::parse(raw.as_deref(), state.http.rates_max_days)?;
    let mut days = answer(&state.rates, &q).await?;
    days.reverse();
    let mut out = String::with_capacity(24 * days.len() + 16);
    out.push_str("day,price,count\n");
    for d in days.iter().map(row) {
        out.push_str(&format!("{},{},{}\n", d.day, d.price, d.count));
    }
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let filename = format!(
        "rates_{}_{}_{}_{}.csv",
        safe(&q.orig_code),
        safe(&q.dest_code),
        q.date_from,
        q.date_to
    );
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .expect("sanitised file name is a valid header");
    Ok((
        SECURITY_HEADERS,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response())
}
