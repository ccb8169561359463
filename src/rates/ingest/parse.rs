//! Parsing and validating a batch of prices (JSON array or CSV). Every row is checked;
//! the result is either all rows, ready to write, or the list of what is wrong.

use std::borrow::Cow;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::rates::PriceRow;
use crate::rates::catalog::Catalog;

/// At most this many row errors are reported (the total is always given).
pub const MAX_REPORTED_ERRORS: usize = 100;

const FIELDS: [&str; 4] = ["orig_code", "dest_code", "day", "price"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// From a Content-Type header; `None` for media types we do not take.
    pub fn from_content_type(ct: Option<&str>) -> Option<Format> {
        let mime = ct
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "" => Some(Format::Json),
            "text/csv" | "application/csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv",
        }
    }
}

/// One problem with one row (`index` is the 0-based position among the data rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// 0-based row index (JSON array position; CSV data row, header excluded). Null for
    /// problems with the batch as a whole.
    pub index: Option<usize>,
    /// The field at fault, when there is one.
    pub field: Option<String>,
    pub reason: String,
}

/// Why a batch was refused: the first errors and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub errors: Vec<RowError>,
    pub error_count: usize,
    pub row_count: usize,
}

impl Rejection {
    fn push(&mut self, index: Option<usize>, field: Option<&str>, reason: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(RowError {
                index,
                field: field.map(str::to_string),
                reason: reason.into(),
            });
        }
    }

    /// A rejection of the batch as a whole (no row index).
    pub fn whole(reason: impl Into<String>) -> Rejection {
        let mut r = Rejection::default();
        r.push(None, None, reason);
        r
    }

    /// True when every reported error is an unknown port: worth re-checking against a
    /// fresher catalog before refusing (a re-check that finds other errors refuses anyway).
    pub fn only_unknown_ports(&self) -> bool {
        !self.errors.is_empty()
            && self
                .errors
                .iter()
                .all(|e| e.reason.starts_with("unknown port"))
    }
}

/// Outcome of parsing: the rows, or a rejection; `TooManyRows` is a 413, not a 422.
#[derive(Debug)]
pub enum Parsed {
    Rows(Vec<PriceRow>),
    Rejected(Rejection),
    TooManyRows { max: usize },
}

/// Outcome of [`check`]: like [`Parsed`], the rows themselves having gone to the sink.
#[derive(Debug)]
pub enum Checked {
    /// Every row is valid; this many went to the sink, in order.
    Rows(usize),
    Rejected(Rejection),
    TooManyRows {
        max: usize,
    },
}

/// Where valid rows go as they are validated: a `Vec` (the rows in memory), or the
/// COPY stream of a batch being written while it is parsed.
///
/// Rows are pushed only while no error has been seen, so a rejected batch leaves a valid
/// prefix in the sink; the caller discards it. `restart` says that the rows pushed so far
/// are void because validation starts over (a JSON body the fast path could not read).
pub trait RowSink {
    fn push(&mut self, orig_code: &str, dest_code: &str, day: NaiveDate, price: i32);
    fn restart(&mut self);
}

impl RowSink for Vec<PriceRow> {
    fn push(&mut self, orig_code: &str, dest_code: &str, day: NaiveDate, price: i32) {
        self.push(PriceRow {
            orig_code: orig_code.to_string(),
            dest_code: dest_code.to_string(),
            day,
            price,
        });
    }
    fn restart(&mut self) {
        self.clear();
    }
}

/// Parses and validates every row into a `Vec`.
pub fn parse(body: &[u8], format: Format, catalog: &Catalog, max_rows: usize) -> Parsed {
    match check(body, format, catalog, max_rows, Vec::new()) {
        (Checked::Rows(_), rows) => Parsed::Rows(rows),
        (Checked::Rejected(r), _) => Parsed::Rejected(r),
        (Checked::TooManyRows { max }, _) => Parsed::TooManyRows { max },
    }
}

/// Parses and validates every row, handing valid rows to `sink` as it goes.
pub fn check<S: RowSink>(
    body: &[u8],
    format: Format,
    catalog: &Catalog,
    max_rows: usize,
    sink: S,
) -> (Checked, S) {
    let c = Checker {
        catalog,
        rejection: Rejection::default(),
        sink,
    };
    match format {
        Format::Json => parse_json(body, c, max_rows),
        Format::Csv => parse_csv(body, c, max_rows),
    }
}

struct Checker<'c, S> {
    catalog: &'c Catalog,
    rejection: Rejection,
    sink: S,
}

impl<S: RowSink> Checker<'_, S> {
    fn code(&mut self, i: usize, field: &str, v: &str) -> bool {
        if self.catalog.has_port(v) {
            true
        } else {
            let shown: String = v.chars().take(40).collect();
            self.rejection
                .push(Some(i), Some(field), format!("unknown port code {shown:?}"));
            false
        }
    }

    fn day(&mut self, i: usize, v: &str) -> Option<NaiveDate> {
        match crate::http::params::parse_day(v) {
            Some(d) => Some(d),
            None => {
                let shown: String = v.chars().take(40).collect();
                self.rejection.push(
                    Some(i),
                    Some("day"),
                    format!("must be a real date in YYYY-MM-DD form, got {shown:?}"),
                );
                None
            }
        }
    }

    fn price(&mut self, i: usize, v: Option<i64>, shown: &dyn std::fmt::Display) -> Option<i32> {
        match v {
            Some(p) if p > 0 && p <= i64::from(i32::MAX) => Some(p as i32),
            _ => {
                self.rejection.push(
                    Some(i),
                    Some("price"),
                    format!(
                        "must be a positive integer no larger than {}, got {shown}",
                        i32::MAX
                    ),
                );
                None
            }
        }
    }

    fn row(
        &mut self,
        i: usize,
        orig: &str,
        dest: &str,
        day: &str,
        price: Option<i64>,
        shown: &dyn std::fmt::Display,
    ) {
        let o = self.code(i, "orig_code", orig);
        let d = self.code(i, "dest_code", dest);
        let day = self.day(i, day);
        let p = self.price(i, price, shown);
        if let (true, true, Some(day), Some(price)) = (o, d, day, p)
            && self.rejection.error_count == 0
        {
            self.sink.push(orig, dest, day, price);
        }
    }

    fn finish(mut self, row_count: usize) -> (Checked, S) {
        if row_count == 0 && self.rejection.error_count == 0 {
            self.rejection.push(None, None, "the batch has no rows");
        }
        if self.rejection.error_count > 0 {
            self.rejection.row_count = row_count;
            (Checked::Rejected(self.rejection), self.sink)
        } else {
            (Checked::Rows(row_count), self.sink)
        }
    }

    fn too_many(self, max: usize) -> (Checked, S) {
        (Checked::TooManyRows { max }, self.sink)
    }

    fn whole(self, reason: impl Into<String>) -> (Checked, S) {
        (Checked::Rejected(Rejection::whole(reason)), self.sink)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastRow<'a> {
    #[serde(borrow)]
    orig_code: Cow<'a, str>,
    #[serde(borrow)]
    dest_code: Cow<'a, str>,
    #[serde(borrow)]
    day: Cow<'a, str>,
    price: i64,
}

/// The JSON fast path: reads the array element by element into typed rows and checks
/// each as soon as it is read (so a sink gets rows while the rest is still being parsed).
struct FastRows<'a, 'c, S> {
    checker: &'a mut Checker<'c, S>,
    max_rows: usize,
    count: usize,
    too_many: bool,
}

impl<'de, S: RowSink> serde::de::Visitor<'de> for &mut FastRows<'_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of price rows")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<FastRow<'de>>()? {
            if self.count >= self.max_rows {
                self.too_many = true;
                return Err(serde::de::Error::custom("too many rows"));
            }
            let i = self.count;
            self.checker.row(
                i,
                &r.orig_code,
                &r.dest_code,
                &r.day,
                Some(r.price),
                &r.price,
            );
            self.count += 1;
        }
        Ok(())
    }
}

fn parse_json<S: RowSink>(body: &[u8], mut c: Checker<'_, S>, max_rows: usize) -> (Checked, S) {
    // Fast path: well-formed rows straight into typed structs.
    let mut fast = FastRows {
        checker: &mut c,
        max_rows,
        count: 0,
        too_many: false,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = serde::Deserializer::deserialize_seq(&mut de, &mut fast).and_then(|()| de.end());
    let (count, too_many) = (fast.count, fast.too_many);
    if too_many {
        return c.too_many(max_rows);
    }
    if read.is_ok() {
        return c.finish(count);
    }
    // Slow path: find and name every problem.
    c.sink.restart();
    c.rejection = Rejection::default();
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return c.whole(format!("the body is not valid JSON: {e}")),
    };
    let Some(items) = value.as_array() else {
        return c.whole(
            "the body must be a JSON array of {\"orig_code\",\"dest_code\",\"day\",\"price\"} objects",
        );
    };
    if items.len() > max_rows {
        return c.too_many(max_rows);
    }
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            c.rejection.push(Some(i), None, "must be an object");
            continue;
        };
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) {
                let shown: String = key.chars().take(40).collect();
                c.rejection.push(Some(i), Some(&shown), "unexpected field");
            }
        }
        let mut text = |field: &'static str| -> Option<String> {
            match obj.get(field) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    c.rejection.push(
                        Some(i),
                        Some(field),
                        format!("must be a string, got {other}"),
                    );
                    None
                }
                None => {
                    c.rejection.push(Some(i), Some(field), "is missing");
                    None
                }
            }
        };
        let (orig, dest, day) = (text("orig_code"), text("dest_code"), text("day"));
        let price = obj.get("price");
        if price.is_none() {
            c.rejection.push(Some(i), Some("price"), "is missing");
        }
        let price_val = price.and_then(|p| p.as_i64());
        let shown = price.map(|p| p.to_string()).unwrap_or_default();
        match (orig, dest, day, price) {
            (Some(o), Some(d), Some(day), Some(_)) => c.row(i, &o, &d, &day, price_val, &shown),
            (o, d, day, p) => {
                // Report what else is wrong with the fields that are present.
                if let Some(o) = o {
                    c.code(i, "orig_code", &o);
                }
                if let Some(d) = d {
                    c.code(i, "dest_code", &d);
                }
                if let Some(day) = day {
                    c.day(i, &day);
                }
                if p.is_some() {
                    c.price(i, price_val, &shown);
                }
            }
        }
    }
    c.finish(items.len())
}

fn parse_csv<S: RowSink>(body: &[u8], mut c: Checker<'_, S>, max_rows: usize) -> (Checked, S) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let header = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return c.whole(format!("cannot read the CSV header: {e}")),
    };
    let names: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).to_ascii_lowercase())
        .collect();
    let mut pos = [0usize; 4];
    for (k, field) in FIELDS.iter().enumerate() {
        match names.iter().position(|n| n == field) {
            Some(p) => pos[k] = p,
            None => {
                return c.whole(format!(
                    "the CSV header must be orig_code,dest_code,day,price; {field} is missing (got {})",
                    names.join(",")
                ));
            }
        }
    }
    if names.len() != 4 {
        return c.whole(format!(
            "the CSV header must be exactly orig_code,dest_code,day,price (got {})",
            names.join(",")
        ));
    }
    let mut record = csv::ByteRecord::new();
    let mut i = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                c.rejection
                    .push(Some(i), None, format!("unreadable CSV: {e}"));
                break;
            }
        }
        if i >= max_rows {
            return c.too_many(max_rows);
        }
        if record.len() != 4 {
            c.rejection.push(
                Some(i),
                None,
                format!("has {} fields, expected 4", record.len()),
            );
            i += 1;
            continue;
        }
        let field = |k: usize| std::str::from_utf8(&record[pos[k]]).unwrap_or("\u{fffd}");
        let price_s = field(3);
        let price = if !price_s.is_empty() && price_s.bytes().all(|b| b.is_ascii_digit()) {
            price_s.parse::<i64>().ok()
        } else {
            None
        };
        c.row(
            i,
            field(0),
            field(1),
            field(2),
            price,
            &format_args!("{price_s:?}"),
        );
        i += 1;
    }
    c.finish(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::catalog::{Port, Region};

    fn catalog() -> Catalog {
        Catalog::new(
            vec![Region {
                slug: "r".into(),
                name: "R".into(),
                parent_slug: None,
            }],
            ["CNSGH", "NOOSL"]
                .iter()
                .map(|c| Port {
                    code: c.to_string(),
                    name: c.to_string(),
                    parent_slug: "r".into(),
                })
                .collect(),
        )
    }

    fn rows(p: Parsed) -> Vec<PriceRow> {
        match p {
            Parsed::Rows(r) => r,
            other => panic!("expected rows, got {other:?}"),
        }
    }

    fn rejected(p: Parsed) -> Rejection {
        match p {
            Parsed::Rejected(r) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn accepts_json_and_csv() {
        let json = br#"[{"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":1200},
                        {"price":900,"day":"2021-01-02","dest_code":"CNSGH","orig_code":"NOOSL"}]"#;
        let r = rows(parse(json, Format::Json, &catalog(), 10));
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].orig_code, "NOOSL");
        let csv = b"orig_code,dest_code,day,price\nCNSGH,NOOSL,2021-01-01,1200\r\nNOOSL,CNSGH,2021-01-02,900\n";
        assert_eq!(rows(parse(csv, Format::Csv, &catalog(), 10)), r);
        let reordered = b"day,price,orig_code,dest_code\n2021-01-01,1200,CNSGH,NOOSL\n";
        assert_eq!(rows(parse(reordered, Format::Csv, &catalog(), 10))[0], r[0]);
    }

    #[test]
    fn names_every_bad_row_and_field() {
        let json = br#"[{"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":1200},
            {"orig_code":"XXXXX","dest_code":"NOOSL","day":"2021-02-30","price":-1},
            {"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01"},
            {"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":1.5,"extra":1},
            {"orig_code":7,"dest_code":"NOOSL","day":"2021-01-01","price":"12"},
            "nope"]"#;
        let r = rejected(parse(json, Format::Json, &catalog(), 10));
        let has = |i: usize, f: Option<&str>, needle: &str| {
            r.errors
                .iter()
                .any(|e| e.index == Some(i) && e.field.as_deref() == f && e.reason.contains(needle))
        };
        assert!(
            has(1, Some("orig_code"), "unknown port code \"XXXXX\""),
            "{r:?}"
        );
        assert!(has(1, Some("day"), "real date"));
        assert!(has(1, Some("price"), "positive integer"));
        assert!(has(2, Some("price"), "is missing"));
        assert!(has(3, Some("price"), "got 1.5"));
        assert!(has(3, Some("extra"), "unexpected field"));
        assert!(has(4, Some("orig_code"), "must be a string"));
        assert!(has(4, Some("price"), "got \"12\""));
        assert!(has(5, None, "must be an object"));
        assert!(
            !r.errors.iter().any(|e| e.index == Some(0)),
            "row 0 is fine"
        );
        assert_eq!(r.row_count, 6);
        assert_eq!(r.error_count, r.errors.len());
    }

    #[test]
    fn a_bad_row_at_the_end_of_a_large_batch_rejects_it_all() {
        let mut rows: Vec<String> = (0..50_000)
            .map(|i| {
                format!(
                    r#"{{"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":{}}}"#,
                    i + 1
                )
            })
            .collect();
        rows.push(
            r#"{"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":0}"#.into(),
        );
        let body = format!("[{}]", rows.join(","));
        let r = rejected(parse(body.as_bytes(), Format::Json, &catalog(), 100_000));
        assert_eq!(r.error_count, 1);
        assert_eq!(r.errors[0].index, Some(50_000));
    }

    #[test]
    fn reports_at_most_100_errors_but_counts_all() {
        let body = format!(
            "[{}]",
            vec![r#"{"orig_code":"A","dest_code":"NOOSL","day":"2021-01-01","price":1}"#; 250]
                .join(",")
        );
        let r = rejected(parse(body.as_bytes(), Format::Json, &catalog(), 1000));
        assert_eq!(r.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(r.error_count, 250);
        assert!(r.only_unknown_ports());
    }

    #[test]
    fn whole_batch_problems() {
        for (body, fmt, needle) in [
            (&b"{\"a\":1}"[..], Format::Json, "must be a JSON array"),
            (b"[1,2", Format::Json, "not valid JSON"),
            (b"[]", Format::Json, "no rows"),
            (
                b"orig_code,dest_code,day\nA,B,2021-01-01\n",
                Format::Csv,
                "price is missing",
            ),
            (b"orig_code,dest_code,day,price,x\n", Format::Csv, "exactly"),
            (b"orig_code,dest_code,day,price\n", Format::Csv, "no rows"),
        ] {
            let r = rejected(parse(body, fmt, &catalog(), 10));
            assert!(r.errors[0].reason.contains(needle), "{:?}", r.errors);
            assert_eq!(r.errors[0].index, None);
        }
        let r = rejected(parse(
            b"orig_code,dest_code,day,price\nCNSGH,NOOSL,2021-01-01\nCNSGH,NOOSL,2021-01-01,1e3\n",
            Format::Csv,
            &catalog(),
            10,
        ));
        assert!(r.errors[0].reason.contains("3 fields"));
        assert_eq!(r.errors[1].field.as_deref(), Some("price"));
    }

    #[test]
    fn too_many_rows_is_its_own_outcome() {
        let body = br#"[{"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":1},{"orig_code":"CNSGH","dest_code":"NOOSL","day":"2021-01-01","price":1}]"#;
        assert!(matches!(
            parse(body, Format::Json, &catalog(), 1),
            Parsed::TooManyRows { max: 1 }
        ));
        let csv =
            b"orig_code,dest_code,day,price\nCNSGH,NOOSL,2021-01-01,1\nCNSGH,NOOSL,2021-01-01,1\n";
        assert!(matches!(
            parse(csv, Format::Csv, &catalog(), 1),
            Parsed::TooManyRows { max: 1 }
        ));
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::from_content_type(None), Some(Format::Json));
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("text/csv")),
            Some(Format::Csv)
        );
        assert_eq!(Format::from_content_type(Some("text/plain")), None);
    }
}
