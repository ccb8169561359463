//! Parser for a plain-format `pg_dump` of the rates database (both editions: tables with
//! and without the `public.` prefix). Reads the `COPY … FROM stdin` sections of
//! `regions`, `ports` and `prices`, validates every row, and reports the first problem
//! with its line number. SQL statements outside COPY data are ignored.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use chrono::NaiveDate;

use super::catalog::{Port, Region};

pub use super::PriceRow;

/// The contents of a dump, in load order (regions parents first).
#[derive(Debug, Default)]
pub struct Dump {
    pub regions: Vec<Region>,
    pub ports: Vec<Port>,
    pub prices: Vec<PriceRow>,
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DumpError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> DumpError {
    DumpError {
        line,
        message: message.into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Table {
    Regions,
    Ports,
    Prices,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Regions => "regions",
            Table::Ports => "ports",
            Table::Prices => "prices",
        }
    }
    fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Regions => &["slug", "name", "parent_slug"],
            Table::Ports => &["code", "name", "parent_slug"],
            Table::Prices => &["orig_code", "dest_code", "day", "price"],
        }
    }
}

struct Section {
    table: Option<Table>,
    /// For each expected column, its position in the COPY column list.
    order: Vec<usize>,
    width: usize,
    start_line: usize,
}

/// Parses a `COPY [schema.]table (c1, c2, …) FROM stdin;` header.
fn parse_copy_header(line: &str, line_no: usize) -> Result<Section, DumpError> {
    let rest = line["COPY ".len()..].trim_start();
    let open = rest
        .find('(')
        .ok_or_else(|| err(line_no, "COPY statement without a column list"))?;
    // The first `)` after the `(`: one before it (`COPY a) (b) …`) is no column list end.
    let close = rest[open..]
        .find(')')
        .map(|i| open + i)
        .ok_or_else(|| err(line_no, "COPY statement with an unterminated column list"))?;
    if !rest[close..].to_ascii_lowercase().contains("from stdin") {
        return Err(err(
            line_no,
            "only COPY … FROM stdin sections are supported",
        ));
    }
    let qualified = rest[..open].trim().replace('"', "");
    let table_name = qualified.rsplit('.').next().unwrap_or("");
    let cols: Vec<String> = rest[open + 1..close]
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let table = match table_name {
        "regions" => Some(Table::Regions),
        "ports" => Some(Table::Ports),
        "prices" => Some(Table::Prices),
        _ => None,
    };
    let mut order = Vec::new();
    if let Some(t) = table {
        for want in t.columns() {
            let pos = cols.iter().position(|c| c == want).ok_or_else(|| {
                err(
                    line_no,
                    format!(
                        "COPY of {} lacks column {want} (has {})",
                        t.name(),
                        cols.join(", ")
                    ),
                )
            })?;
            order.push(pos);
        }
    }
    Ok(Section {
        table,
        order,
        width: cols.len(),
        start_line: line_no,
    })
}

/// Undoes COPY text-format escaping; `None` is SQL NULL (`\N`).
fn unescape(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    if !field.contains('\\') {
        return Some(field.to_string());
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

fn required(v: Option<String>, col: &str, line: usize) -> Result<String, DumpError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(err(line, format!("{col} is empty"))),
        None => Err(err(line, format!("{col} is NULL"))),
    }
}

fn parse_price_day(s: &str, line: usize) -> Result<NaiveDate, DumpError> {
    crate::http::params::parse_day(s)
        .ok_or_else(|| err(line, format!("day {s:?} is not a date in YYYY-MM-DD form")))
}

/// What has been read so far: the rows, with the line of each for later error messages.
#[derive(Default)]
struct Rows {
    dump: Dump,
    region_lines: HashMap<String, usize>,
    port_lines: HashMap<String, usize>,
    price_lines: Vec<usize>,
}

impl Rows {
    /// Validates one data row of `table` and keeps it.
    fn push(
        &mut self,
        table: Table,
        field: impl Fn(usize) -> Option<String>,
        line_no: usize,
    ) -> Result<(), DumpError> {
        match table {
            Table::Regions => self.push_region(field, line_no),
            Table::Ports => self.push_port(field, line_no),
            Table::Prices => self.push_price(field, line_no),
        }
    }

    fn push_region(
        &mut self,
        field: impl Fn(usize) -> Option<String>,
        line_no: usize,
    ) -> Result<(), DumpError> {
        let slug = required(field(0), "slug", line_no)?;
        let name = required(field(1), "name", line_no)?;
        let parent_slug = field(2).filter(|p| !p.is_empty());
        if self.region_lines.insert(slug.clone(), line_no).is_some() {
            return Err(err(line_no, format!("region {slug:?} appears twice")));
        }
        self.dump.regions.push(Region {
            slug,
            name,
            parent_slug,
        });
        Ok(())
    }

    fn push_port(
        &mut self,
        field: impl Fn(usize) -> Option<String>,
        line_no: usize,
    ) -> Result<(), DumpError> {
        let code = required(field(0), "code", line_no)?;
        let name = required(field(1), "name", line_no)?;
        let parent_slug = required(field(2), "parent_slug", line_no)?;
        if self.port_lines.insert(code.clone(), line_no).is_some() {
            return Err(err(line_no, format!("port {code:?} appears twice")));
        }
        self.dump.ports.push(Port {
            code,
            name,
            parent_slug,
        });
        Ok(())
    }

    fn push_price(
        &mut self,
        field: impl Fn(usize) -> Option<String>,
        line_no: usize,
    ) -> Result<(), DumpError> {
        let orig_code = required(field(0), "orig_code", line_no)?;
        let dest_code = required(field(1), "dest_code", line_no)?;
        let day = parse_price_day(&required(field(2), "day", line_no)?, line_no)?;
        let price_s = required(field(3), "price", line_no)?;
        let price: i32 = price_s
            .parse()
            .map_err(|_| err(line_no, format!("price {price_s:?} is not an integer")))?;
        self.price_lines.push(line_no);
        self.dump.prices.push(PriceRow {
            orig_code,
            dest_code,
            day,
            price,
        });
        Ok(())
    }

    /// Orders the regions and checks that every port's region and every price's ports
    /// exist (each only when the dump has the table referred to).
    fn check_references(&mut self, seen_tables: &HashSet<&'static str>) -> Result<(), DumpError> {
        order_regions(&mut self.dump.regions, &self.region_lines)?;
        for p in &self.dump.ports {
            if seen_tables.contains("regions") && !self.region_lines.contains_key(&p.parent_slug) {
                return Err(err(
                    self.port_lines[&p.code],
                    format!(
                        "port {:?} belongs to unknown region {:?}",
                        p.code, p.parent_slug
                    ),
                ));
            }
        }
        if seen_tables.contains("ports") {
            for (row, line) in self.dump.prices.iter().zip(&self.price_lines) {
                for code in [&row.orig_code, &row.dest_code] {
                    if !self.port_lines.contains_key(code) {
                        return Err(err(*line, format!("price refers to unknown port {code:?}")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The parser's state between lines: the rows so far and the COPY section it is in.
#[derive(Default)]
struct Reader {
    rows: Rows,
    seen_tables: HashSet<&'static str>,
    section: Option<Section>,
}

impl Reader {
    /// One line (without its line ending): a COPY header, a section's end, a data row,
    /// or SQL outside COPY data (ignored).
    fn line(&mut self, line: &str, line_no: usize) -> Result<(), DumpError> {
        let Some(sec) = self.section.as_ref() else {
            if line.starts_with("COPY ") {
                self.open_section(line, line_no)?;
            }
            return Ok(());
        };
        if line == "\\." {
            self.section = None;
            return Ok(());
        }
        let Some(table) = sec.table else {
            return Ok(());
        };
        let raw: Vec<&str> = line.split('\t').collect();
        if raw.len() != sec.width {
            return Err(err(
                line_no,
                format!(
                    "{} row has {} fields, expected {}",
                    table.name(),
                    raw.len(),
                    sec.width
                ),
            ));
        }
        let field = |i: usize| unescape(raw[sec.order[i]]);
        self.rows.push(table, field, line_no)
    }

    fn open_section(&mut self, line: &str, line_no: usize) -> Result<(), DumpError> {
        let sec = parse_copy_header(line, line_no)?;
        if let Some(t) = sec.table
            && !self.seen_tables.insert(t.name())
        {
            return Err(err(
                line_no,
                format!("second COPY section for {}", t.name()),
            ));
        }
        self.section = Some(sec);
        Ok(())
    }

    /// After the last line: the dump must be complete and consistent.
    fn finish(mut self, line_no: usize) -> Result<Dump, DumpError> {
        if let Some(sec) = &self.section {
            return Err(err(
                line_no,
                format!(
                    "the COPY section started on line {} is not terminated by \\. (truncated file?)",
                    sec.start_line
                ),
            ));
        }
        if self.seen_tables.is_empty() {
            return Err(err(
                line_no,
                "no COPY data for regions, ports or prices: is this a pg_dump of the rates database?",
            ));
        }
        self.rows.check_references(&self.seen_tables)?;
        Ok(self.rows.dump)
    }
}

/// Parses and validates a whole dump. `on_progress` gets the bytes read so far.
pub fn parse<R: BufRead>(
    mut input: R,
    mut on_progress: impl FnMut(u64),
) -> Result<Dump, DumpError> {
    let mut reader = Reader::default();
    let mut buf = String::new();
    let mut line_no = 0usize;
    let mut bytes = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_line(&mut buf)
            .map_err(|e| err(line_no + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        bytes += n as u64;
        if line_no % 4096 == 0 {
            on_progress(bytes);
        }
        let line = buf.strip_suffix('\n').unwrap_or(&buf);
        let line = line.strip_suffix('\r').unwrap_or(line);
        reader.line(line, line_no)?;
    }
    on_progress(bytes);
    reader.finish(line_no)
}

/// Sorts regions so every parent precedes its children; reports unknown parents and cycles.
fn order_regions(regions: &mut [Region], lines: &HashMap<String, usize>) -> Result<(), DumpError> {
    let by_slug: HashMap<&str, &Region> = regions.iter().map(|r| (r.slug.as_str(), r)).collect();
    for r in regions.iter() {
        if let Some(p) = &r.parent_slug
            && !by_slug.contains_key(p.as_str())
        {
            return Err(err(
                lines[&r.slug],
                format!("region {:?} has unknown parent {p:?}", r.slug),
            ));
        }
    }
    let mut depth: HashMap<String, usize> = HashMap::new();
    for r in regions.iter() {
        let mut d = 0;
        let mut cur = r;
        while let Some(p) = &cur.parent_slug {
            d += 1;
            if d > by_slug.len() {
                return Err(err(
                    lines[&r.slug],
                    format!("region {:?} is part of a parent cycle", r.slug),
                ));
            }
            cur = by_slug[p.as_str()];
        }
        depth.insert(r.slug.clone(), d);
    }
    regions.sort_by_key(|r| (depth[&r.slug], lines[&r.slug]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "SET statement_timeout = 0;\n\nCREATE TABLE public.ports (code text);\n";

    fn dump(body: &str) -> Result<Dump, DumpError> {
        parse(std::io::Cursor::new(format!("{HEADER}{body}")), |_| {})
    }

    const GOOD: &str = "COPY public.ports (code, name, parent_slug) FROM stdin;\n\
        CNSGH\tShanghai\tchina_east_main\n\
        NOOSL\tOslo\tscandinavia\n\
        \\.\n\
        COPY public.prices (orig_code, dest_code, day, price) FROM stdin;\n\
        CNSGH\tNOOSL\t2021-01-01\t1200\n\
        CNSGH\tNOOSL\t2021-01-01\t1200\n\
        \\.\n\
        COPY public.regions (slug, name, parent_slug) FROM stdin;\n\
        scandinavia\tScandinavia\tnorthern_europe\n\
        china_east_main\tChina East Main\tchina_main\n\
        china_main\tChina Main\t\\N\n\
        northern_europe\tNorthern Europe\t\\N\n\
        \\.\n";

    #[test]
    fn parses_and_orders_regions_parents_first() {
        let d = dump(GOOD).unwrap();
        assert_eq!(d.ports.len(), 2);
        assert_eq!(
            d.prices.len(),
            2,
            "duplicate price rows are data, not errors"
        );
        let slugs: Vec<&str> = d.regions.iter().map(|r| r.slug.as_str()).collect();
        assert_eq!(
            slugs,
            [
                "china_main",
                "northern_europe",
                "scandinavia",
                "china_east_main"
            ]
        );
    }

    #[test]
    fn accepts_the_unprefixed_edition_and_reordered_columns() {
        let body = GOOD
            .replace("public.", "")
            .replace(
                "(orig_code, dest_code, day, price)",
                "(day, price, orig_code, dest_code)",
            )
            .replace(
                "CNSGH\tNOOSL\t2021-01-01\t1200",
                "2021-01-01\t1200\tCNSGH\tNOOSL",
            );
        let d = dump(&body).unwrap();
        assert_eq!(d.prices[0].orig_code, "CNSGH");
        assert_eq!(d.prices[0].price, 1200);
    }

    fn line_of(body: &str, needle: &str) -> usize {
        format!("{HEADER}{body}")
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    }

    #[test]
    fn names_the_line_of_a_bad_row() {
        for (bad, good, msg) in [
            (
                "CNSGH\tNOOSL\t2021-02-30\t9",
                "CNSGH\tNOOSL\t2021-01-01\t1200",
                "is not a date",
            ),
            (
                "CNSGH\tNOOSL\t2021-01-01\tabc",
                "CNSGH\tNOOSL\t2021-01-01\t1200",
                "is not an integer",
            ),
            (
                "CNSGH\tNOOSL\t2021-01-01",
                "CNSGH\tNOOSL\t2021-01-01\t1200",
                "has 3 fields",
            ),
            (
                "CNSGH\tXXXXX\t2021-01-01\t5",
                "CNSGH\tNOOSL\t2021-01-01\t1200",
                "unknown port \"XXXXX\"",
            ),
            (
                "NOOSL\tOslo\tnowhere",
                "NOOSL\tOslo\tscandinavia",
                "unknown region \"nowhere\"",
            ),
        ] {
            let body = GOOD.replacen(good, bad, 1);
            let e = dump(&body).unwrap_err();
            assert_eq!(e.line, line_of(&body, bad), "{bad}: {e}");
            assert!(e.to_string().contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn reports_truncation_and_non_dumps() {
        let row = "CNSGH\tNOOSL\t2021-01-01\t1200\n";
        let end_of_rows = GOOD.find(&format!("{row}\\.")).unwrap() + row.len();
        let e = dump(&GOOD[..end_of_rows]).unwrap_err();
        assert!(e.to_string().contains("not terminated"), "{e}");
        // Cut in the middle of a row: the partial row itself is the error.
        let e = dump(&GOOD[..end_of_rows - 10]).unwrap_err();
        assert!(e.to_string().contains("fields, expected 4"), "{e}");
        let e = parse(std::io::Cursor::new("hello\nworld\n"), |_| {}).unwrap_err();
        assert!(e.to_string().contains("no COPY data"), "{e}");
    }

    /// Found by the `dump_parser` fuzz target: a mangled `COPY regions` line makes the
    /// regions table absent, and the ports then name regions the dump does not hold.
    /// That is a partial dump, accepted on purpose (the import's foreign keys check the
    /// references against the database); the same ports with a regions section present
    /// are refused.
    #[test]
    fn checks_references_only_against_tables_the_dump_holds() {
        let regions_at = GOOD.find("COPY public.regions").unwrap();
        let without_regions = &GOOD[..regions_at];
        let d = dump(without_regions).unwrap();
        assert!(d.regions.is_empty());
        assert_eq!(d.ports.len(), 2);
        let mangled = GOOD.replace("COPY public.regions", "COPY public.r\x01egions");
        let d = dump(&mangled).unwrap();
        assert!(d.regions.is_empty(), "{:?}", d.regions);
        let empty_regions = format!(
            "{without_regions}COPY public.regions (slug, name, parent_slug) FROM stdin;\n\\.\n"
        );
        let e = dump(&empty_regions).unwrap_err();
        assert!(e.to_string().contains("unknown region"), "{e}");
        // Prices without a ports table: their codes are the database's business too.
        let prices_only = &GOOD[GOOD.find("COPY public.prices").unwrap()..regions_at];
        assert_eq!(dump(prices_only).unwrap().prices.len(), 2);
    }

    /// Found by the `dump_parser` fuzz target: a `)` before the column list's `(` made
    /// the header parser slice backwards and panic.
    #[test]
    fn a_closing_parenthesis_before_the_column_list_is_not_a_panic() {
        for header in [
            "COPY g) (slug) FROM stdin;",
            "COPY g)ons (slug, name, parent_slFIKTK prices (orig_c\0ode, dest_code, day, price) FROM stdin;",
            "COPY ) ( FROM stdin;",
        ] {
            let body = format!("{header}\n\\.\n");
            // An unknown table or a malformed header: an error naming a line, no panic.
            let e = dump(&body).unwrap_err();
            assert!(e.line <= line_of(&body, "\\."), "{e}");
        }
        let e = dump("COPY ports) (code FROM stdin;\n\\.\n").unwrap_err();
        assert!(e.to_string().contains("unterminated column list"), "{e}");
    }

    #[test]
    fn unescapes_copy_text() {
        assert_eq!(unescape("\\N"), None);
        assert_eq!(unescape("a\\tb\\\\c").as_deref(), Some("a\tb\\c"));
    }
}
