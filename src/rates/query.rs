//! Validating `GET /rates` parameters (read under the rules of [`crate::http::params`]).
//! Every failure is a 400 problem that names the parameter; unknown locations are
//! resolved (404) by the catalog later.

use chrono::NaiveDate;

use crate::http::params::Params;
use crate::http::problem::{Kind, Problem};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesQuery {
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub orig_code: String,
    pub dest_code: String,
}

impl RatesQuery {
    /// Number of days answered (both ends inclusive).
    pub fn days(&self) -> i64 {
        (self.date_to - self.date_from).num_days() + 1
    }
}

/// Longest accepted port code or region slug.
const MAX_CODE_LEN: usize = 64;

/// Parses the raw query string. `max_days` bounds the range (configurable).
pub fn parse(raw: Option<&str>, max_days: u32) -> Result<RatesQuery, Problem> {
    let q = Params::parse(raw, &["date_from", "date_to", "orig_code", "dest_code"])?;
    let date_from = q.required_day("date_from")?;
    let date_to = q.required_day("date_to")?;
    let orig_code = parse_code("orig_code", q.required("orig_code")?)?;
    let dest_code = parse_code("dest_code", q.required("dest_code")?)?;
    if date_from > date_to {
        return Err(Problem::new(
            Kind::InvalidRange,
            format!("date_from ({date_from}) is after date_to ({date_to})"),
        )
        .with("parameter", "date_from"));
    }
    let q = RatesQuery {
        date_from,
        date_to,
        orig_code,
        dest_code,
    };
    if q.days() > i64::from(max_days) {
        return Err(Problem::new(
            Kind::RangeTooLong,
            format!(
                "the range covers {} days; at most {max_days} are answered",
                q.days()
            ),
        )
        .with("parameter", "date_to")
        .with("max_days", max_days));
    }
    Ok(q)
}

fn parse_code(name: &'static str, value: &str) -> Result<String, Problem> {
    let ok = !value.is_empty()
        && value.len() <= MAX_CODE_LEN
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if ok {
        Ok(value.to_string())
    } else {
        let shown: String = value.chars().take(40).collect();
        Err(Problem::new(
            Kind::InvalidCode,
            format!(
                "{name} must be a port code (e.g. CNSGH) or a region slug (e.g. north_europe_main), got {shown:?}"
            ),
        )
        .with("parameter", name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<RatesQuery, Problem> {
        parse(Some(s), 3660)
    }

    #[test]
    fn parses_a_valid_query() {
        let r =
            q("date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL").unwrap();
        assert_eq!(r.days(), 31);
        assert_eq!(r.orig_code, "CNGGZ");
    }

    #[test]
    fn rejects_bad_dates_with_the_parameter_named() {
        for (query, param, kind) in [
            (
                "date_to=2021-01-31&orig_code=A&dest_code=B",
                "date_from",
                "missing-parameter",
            ),
            (
                "date_from=2021-13-01&date_to=2021-01-31&orig_code=A&dest_code=B",
                "date_from",
                "invalid-date",
            ),
            (
                "date_from=2021-02-01&date_to=2021-02-30&orig_code=A&dest_code=B",
                "date_to",
                "invalid-date",
            ),
            (
                "date_from=abc&date_to=2021-01-31&orig_code=A&dest_code=B",
                "date_from",
                "invalid-date",
            ),
            (
                "date_from=2021-1-1&date_to=2021-01-31&orig_code=A&dest_code=B",
                "date_from",
                "invalid-date",
            ),
            (
                "date_from=+2021-01-01&date_to=2021-01-31&orig_code=A&dest_code=B",
                "date_from",
                "invalid-date",
            ),
            (
                "date_from=2021-01-31&date_to=2021-01-01&orig_code=A&dest_code=B",
                "date_from",
                "invalid-range",
            ),
        ] {
            let p = q(query).unwrap_err();
            assert_eq!(p.status.as_u16(), 400, "{query}");
            assert_eq!(p.kind, kind, "{query}");
            assert_eq!(p.body()["parameter"], param, "{query}");
        }
    }

    #[test]
    fn rejects_injection_and_oversized_codes() {
        let p = q("date_from=2021-01-01&date_to=2021-01-03&orig_code=CNGGZ%27%20OR%20%271%27%3D%271&dest_code=EETLL").unwrap_err();
        assert_eq!(p.kind, "invalid-code");
        let long = "A".repeat(65);
        let p = q(&format!(
            "date_from=2021-01-01&date_to=2021-01-03&orig_code={long}&dest_code=EETLL"
        ))
        .unwrap_err();
        assert_eq!(p.kind, "invalid-code");
        let p =
            q("date_from=2021-01-01&date_to=2021-01-03&orig_code=&dest_code=EETLL").unwrap_err();
        assert_eq!(
            p.kind, "missing-parameter",
            "an empty value counts as absent"
        );
    }

    #[test]
    fn bounds_the_range_and_rejects_duplicates() {
        let p = parse(
            Some("date_from=2021-01-01&date_to=2021-01-11&orig_code=A&dest_code=B"),
            10,
        )
        .unwrap_err();
        assert_eq!(p.kind, "range-too-long");
        assert!(
            parse(
                Some("date_from=2021-01-01&date_to=2021-01-10&orig_code=A&dest_code=B"),
                10
            )
            .is_ok()
        );
        let p = q(
            "date_from=2021-01-01&date_from=2021-01-02&date_to=2021-01-10&orig_code=A&dest_code=B",
        )
        .unwrap_err();
        assert_eq!(p.kind, "duplicate-parameter");
    }
}
