//! Query-string and cursor parsers (`GET /rates`, `GET /orders`) on arbitrary input: a
//! 400 problem or a valid query, never a panic; a cursor that parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pricehub::orders::parse_cursor;
use pricehub::rates::query;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match query::parse(Some(s), 3660) {
        Ok(q) => {
            assert!(q.date_from <= q.date_to);
            assert!((1..=3660).contains(&q.days()), "{q:?}");
        }
        Err(p) => assert_eq!(p.status.as_u16(), 400, "{p:?}"),
    }
    if let Some((t, id)) = parse_cursor(s) {
        let again = format!("{}_{}", t.timestamp_micros(), id.simple());
        assert_eq!(parse_cursor(&again), Some((t, id)));
    }
});
