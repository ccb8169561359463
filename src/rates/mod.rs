//! Freight rates: locations (ports and regions), `GET /rates`, the read cache, the dump
//! importer and the demo data generator.

pub mod cache;
pub mod catalog;
pub mod compaction;
pub mod demo;
pub mod dump;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod places;
pub mod query;
pub mod routes;
pub mod store;

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use store::{DayAgg, day_number};

/// One row of the `prices` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    pub orig_code: String,
    pub dest_code: String,
    pub day: NaiveDate,
    pub price: i32,
}

/// Appends `YYYY-MM-DD` (years 0–9999) without going through `Display`.
pub fn push_day(d: NaiveDate, out: &mut String) {
    use chrono::Datelike;
    let (y, m, day) = (d.year().clamp(0, 9999) as u32, d.month(), d.day());
    let digits = [
        y / 1000,
        y / 100 % 10,
        y / 10 % 10,
        y % 10,
        10,
        m / 10,
        m % 10,
        10,
        day / 10,
        day % 10,
    ];
    out.extend(digits.iter().map(|&n| {
        if n == 10 {
            '-'
        } else {
            char::from(b'0' + n as u8)
        }
    }));
}

/// The days of `GET /rates` for a parsed query, newest first: resolves both locations
/// (404 when one is unknown) and reads the pair's daily series (cached).
pub async fn answer(
    cache: &cache::RatesCache,
    q: &query::RatesQuery,
) -> Result<Vec<DayRate>, crate::http::problem::Problem> {
    use crate::http::problem::{Kind, Problem};
    let catalog = cache.catalog().await?;
    let resolve = |name: &'static str, code: &str| {
        catalog.resolve(code).ok_or_else(|| {
            Problem::new(
                Kind::UnknownLocation,
                format!("{name} {code:?} is neither a known port code nor a region slug"),
            )
            .with("parameter", name)
        })
    };
    let orig = resolve("orig_code", &q.orig_code)?;
    let dest = resolve("dest_code", &q.dest_code)?;
    let series = cache.series(&orig, &dest).await?;
    Ok(daily_rates(&series, q.date_from, q.date_to))
}

/// Fewer samples than this on a day and its `price` is null (the original's rule).
pub const MIN_SAMPLES: i64 = 3;

/// One day of `GET /rates` (keys in the original's order).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DayRate {
    /// Number of prices that day; null when there are none.
    #[schema(example = 3)]
    pub count: Option<i64>,
    #[schema(value_type = String, format = Date, example = "2021-01-31")]
    pub day: NaiveDate,
    /// Average price that day; null when fewer than 3 prices exist.
    #[schema(example = 1154.3333333333333)]
    pub price: Option<f64>,
}

/// One entry per day from `to` back to `from` (newest first) out of a series sorted by day.
pub fn daily_rates(series: &[DayAgg], from: NaiveDate, to: NaiveDate) -> Vec<DayRate> {
    let first = day_number(from);
    let last = day_number(to);
    let start = series.partition_point(|d| d.day < first);
    let end = series.partition_point(|d| d.day <= last);
    let mut hits = series[start..end].iter().rev().peekable();
    let mut out = Vec::with_capacity((last - first + 1).max(0) as usize);
    let mut day = to;
    loop {
        let n = day_number(day);
        let agg = hits.next_if(|d| d.day == n);
        out.push(match agg {
            Some(a) if a.samples > 0 => DayRate {
                count: Some(a.samples),
                day,
                price: (a.samples >= MIN_SAMPLES).then(|| a.total as f64 / a.samples as f64),
            },
            _ => DayRate {
                count: None,
                day,
                price: None,
            },
        });
        if day <= from {
            break;
        }
        day = day - Days::new(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn fills_every_day_newest_first_with_the_null_rules() {
        let series = [
            DayAgg {
                day: day_number(d("2021-01-01")),
                total: 3463,
                samples: 3,
            },
            DayAgg {
                day: day_number(d("2021-01-03")),
                total: 200,
                samples: 2,
            },
            DayAgg {
                day: day_number(d("2021-01-09")),
                total: 10,
                samples: 5,
            },
        ];
        let r = daily_rates(&series, d("2020-12-31"), d("2021-01-04"));
        let days: Vec<String> = r.iter().map(|x| x.day.to_string()).collect();
        assert_eq!(
            days,
            [
                "2021-01-04",
                "2021-01-03",
                "2021-01-02",
                "2021-01-01",
                "2020-12-31"
            ]
        );
        assert_eq!(
            r[0],
            DayRate {
                count: None,
                day: d("2021-01-04"),
                price: None
            }
        );
        assert_eq!(
            r[1],
            DayRate {
                count: Some(2),
                day: d("2021-01-03"),
                price: None
            }
        );
        assert_eq!(r[3].count, Some(3));
        assert_eq!(r[3].price, Some(3463.0 / 3.0));
        assert_eq!(r[4].count, None);
    }

    #[test]
    fn prints_days_like_chrono() {
        for s in [
            "2021-01-31",
            "2020-02-29",
            "0001-01-01",
            "9999-12-31",
            "1999-10-05",
        ] {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
            let mut out = String::new();
            push_day(d, &mut out);
            assert_eq!(out, s);
        }
    }

    #[test]
    fn a_single_day_and_an_empty_series() {
        assert_eq!(daily_rates(&[], d("2021-01-15"), d("2021-01-15")).len(), 1);
        let r = daily_rates(&[], d("2020-02-27"), d("2020-03-01"));
        assert_eq!(r.len(), 4, "leap day included");
    }

    #[test]
    fn serializes_like_the_original() {
        let r = DayRate {
            count: Some(3),
            day: d("2021-01-28"),
            price: Some(1155.0),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"count":3,"day":"2021-01-28","price":1155.0}"#
        );
    }
}
