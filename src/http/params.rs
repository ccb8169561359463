//! Query parameters: one rule set, one day parser, one limit rule, one cursor format
//! and one page type for every route.
//!
//! # The rules (public API, listed in `docs/api.md`)
//!
//! - A parameter the route reads, given more than once, is 400 `duplicate-parameter`
//!   naming it — never a guess at which one was meant.
//! - An empty value (`limit=`) counts as absent, as HTML forms send empty fields.
//! - Parameters the route does not read are ignored (caches and tracing add their own).
//! - Days are exactly `YYYY-MM-DD` and a real calendar day; times are RFC 3339, a day
//!   (midnight UTC) or integer milliseconds since the epoch.
//! - A page size is an integer from 1 to the route's maximum.
//! - A cursor is opaque: the `next_cursor` of the previous page, passed back unchanged.
//!
//! # Reading parameters in a new handler
//!
//! ```ignore
//! pub async fn list_things(State(s): State<AppState>, RawQuery(raw): RawQuery)
//!     -> Result<Json<ThingsPage>, Problem> {
//!     let q = Params::parse(raw.as_deref(), &["day", "limit", "cursor"])?;
//!     let day = q.day("day")?;                          // Option<NaiveDate>
//!     let limit = q.limit("limit", Limit { default: 50, max: 500 })?;
//!     let after = q.cursor("cursor")?;                  // Option<Cursor>
//!     let rows = store::things(&s.db, day, after.as_ref(), rows_to_fetch(limit)).await?;
//!     let page = Page::new(rows, limit, |t| Cursor::new(t.ts_ms, t.id));
//!     Ok(Json(ThingsPage { next_cursor: page.next_cursor(), things: page.items }))
//! }
//! ```
//!
//! Every error is a [`Problem`] of the catalogue with a `parameter` member naming the
//! culprit. In the `#[utoipa::path]` annotation, state what is enforced so the OpenAPI
//! document is honest: `("limit" = Option<u32>, Query, minimum = 1, maximum = 500)`,
//! `("day" = Option<String>, Query, format = Date)`, `required` parameters as plain
//! types, and a 400 response naming the kinds (see [`super::problem`]).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;

use super::problem::{Kind, Problem};

/// The parameters a route reads, parsed under the rules above.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<&'static str, String>,
    known: Vec<&'static str>,
}

impl Params {
    /// Parses a raw query string, keeping the parameters named in `known`.
    pub fn parse(raw: Option<&str>, known: &[&'static str]) -> Result<Params, Problem> {
        let mut values = HashMap::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let Some(name) = known.iter().copied().find(|k| *k == key) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            if values.insert(name, value.into_owned()).is_some() {
                return Err(Problem::new(
                    Kind::DuplicateParameter,
                    format!("{name} is given more than once"),
                )
                .with("parameter", name));
            }
        }
        Ok(Params {
            values,
            known: known.to_vec(),
        })
    }

    /// The value of `name`, if given (and not empty).
    pub fn get(&self, name: &'static str) -> Option<&str> {
        debug_assert!(
            self.known.contains(&name),
            "{name} is not among the parameters this route declared"
        );
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name`, or 400 `missing-parameter`.
    pub fn required(&self, name: &'static str) -> Result<&str, Problem> {
        self.get(name).ok_or_else(|| {
            Problem::new(Kind::MissingParameter, format!("{name} is required"))
                .with("parameter", name)
        })
    }

    /// A `YYYY-MM-DD` day, if given.
    pub fn day(&self, name: &'static str) -> Result<Option<NaiveDate>, Problem> {
        self.get(name).map(|v| day(name, v)).transpose()
    }

    /// A required `YYYY-MM-DD` day.
    pub fn required_day(&self, name: &'static str) -> Result<NaiveDate, Problem> {
        day(name, self.required(name)?)
    }

    /// A time as epoch milliseconds, if given: RFC 3339, `YYYY-MM-DD` (midnight UTC) or
    /// integer milliseconds.
    pub fn time_ms(&self, name: &'static str) -> Result<Option<i64>, Problem> {
        self.get(name).map(|v| time_ms(name, v)).transpose()
    }

    /// A page size under `rule` (its default when absent).
    pub fn limit(&self, name: &'static str, rule: Limit) -> Result<usize, Problem> {
        let Some(v) = self.get(name) else {
            return Ok(rule.default);
        };
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=rule.max).contains(n))
            .ok_or_else(|| {
                let shown: String = v.chars().take(40).collect();
                Problem::new(
                    Kind::InvalidLimit,
                    format!(
                        "{name} must be an integer from 1 to {}, got {shown:?}",
                        rule.max
                    ),
                )
                .with("parameter", name)
            })
    }

    /// A cursor from an earlier page, if given.
    pub fn cursor(&self, name: &'static str) -> Result<Option<Cursor>, Problem> {
        self.get(name)
            .map(|v| Cursor::decode(v).ok_or_else(|| invalid_cursor(name, v)))
            .transpose()
    }
}

/// 400 `invalid-cursor`: for a cursor that decodes but names no position of this list.
pub fn invalid_cursor(name: &'static str, value: &str) -> Problem {
    let shown: String = value.chars().take(80).collect();
    Problem::new(
        Kind::InvalidCursor,
        format!("{name} must be a next_cursor value from an earlier page, got {shown:?}"),
    )
    .with("parameter", name)
}

/// Parses exactly `YYYY-MM-DD` naming a real day: the one day parser (query strings,
/// batch rows, dumps). Hand-rolled because it runs for every row of a batch, where
/// chrono's format-string parser is the single largest cost.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn day(name: &'static str, value: &str) -> Result<NaiveDate, Problem> {
    parse_day(value).ok_or_else(|| {
        let shown: String = value.chars().take(40).collect();
        Problem::new(
            Kind::InvalidDate,
            format!("{name} must be a real date in YYYY-MM-DD form, got {shown:?}"),
        )
        .with("parameter", name)
    })
}

fn time_ms(name: &'static str, v: &str) -> Result<i64, Problem> {
    let parsed = if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse::<i64>().ok()
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        Some(t.timestamp_millis())
    } else {
        parse_day(v)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
    };
    parsed.ok_or_else(|| {
        let shown: String = v.chars().take(40).collect();
        Problem::new(
            Kind::InvalidTime,
            format!(
                "{name} must be an RFC 3339 time, a YYYY-MM-DD date or milliseconds since the epoch, got {shown:?}"
            ),
        )
        .with("parameter", name)
    })
}

/// The OpenAPI schema of a time parameter: `("from" = Option<inline(TimeParam)>, Query)`.
pub struct TimeParam;

impl utoipa::PartialSchema for TimeParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
        };
        let string = || ObjectBuilder::new().schema_type(Type::String);
        AnyOfBuilder::new()
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
            .item(string().pattern(Some("^[0-9]{1,18}$")))
            .description(Some(
                "RFC 3339 time, YYYY-MM-DD (midnight UTC) or milliseconds since the epoch",
            ))
            .into()
    }
}

impl utoipa::ToSchema for TimeParam {}

/// The bounds of a page-size parameter.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub default: usize,
    pub max: usize,
}

/// A keyset position: the sort time of the last item of a page and its tie-breaking id.
/// Sent as base64url text, so clients treat it as opaque and the format can change
/// behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    /// `[0-9a-z]+`: an integer id or a UUID in simple form.
    pub id: String,
}

impl Cursor {
    pub fn new(time: i64, id: impl std::fmt::Display) -> Cursor {
        Cursor {
            time,
            id: id.to_string(),
        }
    }

    /// The `next_cursor` text.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.time, self.id))
    }

    /// Reads [`Cursor::encode`]'s text, and the two plain forms earlier versions sent
    /// (`<ms>:<id>` on the feed, `<µs>_<uuid>` on orders), which clients may still hold.
    pub fn decode(s: &str) -> Option<Cursor> {
        let text = URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        text.and_then(|t| Cursor::plain(&t, ':'))
            .or_else(|| Cursor::plain(s, ':'))
            .or_else(|| Cursor::plain(s, '_'))
    }

    fn plain(text: &str, sep: char) -> Option<Cursor> {
        let (time, id) = text.split_once(sep)?;
        let digits = time.strip_prefix('-').unwrap_or(time);
        let ok = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        if !ok {
            return None;
        }
        Some(Cursor {
            time: time.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One page of a keyset-paged list: fetch [`rows_to_fetch`]`(limit)` rows (one more than
/// the page holds) and the extra row tells whether another page follows.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// How many rows to fetch for a [`Page`] of `limit`: one more, to learn whether another
/// page follows.
pub fn rows_to_fetch(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}

impl<T> Page<T> {
    /// Cuts `rows` (fetched with [`rows_to_fetch`]) to `limit`; the cursor points after the
    /// last item kept when more rows exist.
    pub fn new(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page { items: rows, next }
    }

    pub fn next_cursor(&self) -> Option<String> {
        self.next.as_ref().map(Cursor::encode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> Result<Params, Problem> {
        Params::parse(Some(raw), &["a", "b"])
    }

    #[test]
    fn one_rule_set() {
        let q = p("a=1&zzz=2&zzz=3&b=").unwrap();
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), None, "an empty value counts as absent");
        let e = p("a=1&a=2").unwrap_err();
        assert_eq!(
            (e.kind, e.body()["parameter"].clone()),
            (Kind::DuplicateParameter, "a".into())
        );
        assert!(p("a=&a=2").is_ok(), "an empty repeat is no repeat");
        let e = p("").unwrap().required("a").unwrap_err();
        assert_eq!(e.kind, "missing-parameter");
        assert_eq!(p("a=x%20y").unwrap().get("a"), Some("x y"));
    }

    #[test]
    fn limits() {
        let rule = Limit {
            default: 50,
            max: 500,
        };
        assert_eq!(p("").unwrap().limit("a", rule).unwrap(), 50);
        assert_eq!(p("a=500").unwrap().limit("a", rule).unwrap(), 500);
        for bad in [
            "0",
            "501",
            "-1",
            "x",
            "1.5",
            " 5",
            "99999999999999999999999",
        ] {
            let e = p(&format!("a={}", bad.replace(' ', "%20")))
                .unwrap()
                .limit("a", rule)
                .unwrap_err();
            assert_eq!(e.kind, "invalid-limit", "{bad}");
        }
    }

    #[test]
    fn days_and_times() {
        for s in ["2021-01-31", "2020-02-29", "0001-01-01", "9999-12-31"] {
            assert_eq!(
                parse_day(s),
                Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
            );
        }
        for bad in [
            "2021-02-29",
            "2021-13-01",
            "2021-00-10",
            "2021-1-01",
            "2021/01/01",
            "+021-01-01",
            "２０２1-01-01",
            "",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        assert_eq!(day("d", "2021-1-1").unwrap_err().kind, "invalid-date");
        assert_eq!(time_ms("t", "0").unwrap(), 0);
        assert_eq!(time_ms("t", "1970-01-02").unwrap(), 86_400_000);
        assert_eq!(
            time_ms("t", "2026-11-23T06:37:42.219Z").unwrap(),
            1_795_415_862_219
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "-5",
            "99999999999999999999",
            "1970-1-2",
        ] {
            assert_eq!(time_ms("t", bad).unwrap_err().kind, "invalid-time", "{bad}");
        }
    }

    #[test]
    fn cursors_are_opaque_and_read_the_old_forms() {
        let c = Cursor::new(1_795_415_862_219, 42);
        let text = c.encode();
        assert!(!text.contains(':'), "{text}");
        assert_eq!(Cursor::decode(&text), Some(c.clone()));
        assert_eq!(Cursor::decode("1795415862219:42"), Some(c));
        assert_eq!(
            Cursor::decode("1763882102123456_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21"),
            Some(Cursor::new(
                1_763_882_102_123_456,
                "0f8b6c1e3a0c4d5e9a572f1d8e6b4c21"
            ))
        );
        for bad in [
            "",
            "x",
            "1",
            "a:b",
            "1:2:3",
            "12_",
            "_ab",
            "1:AB",
            "99999999999999999999:1",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_cut_at_the_limit() {
        let page = Page::new((0..4).collect::<Vec<i64>>(), 3, |i| Cursor::new(*i, i));
        assert_eq!(page.items, [0, 1, 2]);
        assert_eq!(page.next, Some(Cursor::new(2, 2)));
        let last = Page::new(vec![7i64], 3, |i| Cursor::new(*i, i));
        assert_eq!((last.items.len(), last.next), (1, None));
        assert_eq!(rows_to_fetch(3), 4);
    }
}
