//! The query-parameter rules (`http::params`: every list route) and the `GET /rates`
//! query on arbitrary query strings: a 400 problem or a valid value, never a panic;
//! every cursor that decodes round-trips through its encoding, and an order cursor's
//! position survives it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pricehub::http::params::{Cursor, Limit, Params};
use pricehub::rates::query;

const KNOWN: &[&str] = &["date_from", "date_to", "from", "to", "limit", "cursor"];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match query::parse(Some(s), 3660) {
        Ok(q) => {
            assert!(q.date_from <= q.date_to);
            assert!((1..=3660).contains(&q.days()), "{q:?}");
            assert!(!q.orig_code.is_empty() && !q.dest_code.is_empty(), "{q:?}");
        }
        Err(p) => assert_eq!(p.status.as_u16(), 400, "{p:?}"),
    }
    match Params::parse(Some(s), KNOWN) {
        Ok(q) => {
            let bad = |r: Result<_, pricehub::http::problem::Problem>| match r {
                Ok(_) => {}
                Err(p) => assert_eq!(p.status.as_u16(), 400, "{p:?}"),
            };
            bad(q.day("date_from").map(drop));
            bad(q.time_ms("from").map(drop));
            bad(q.time_ms("to").map(drop));
            match q.limit(
                "limit",
                Limit {
                    default: 50,
                    max: 500,
                },
            ) {
                Ok(n) => assert!((1..=500).contains(&n), "{n}"),
                Err(p) => assert_eq!(p.status.as_u16(), 400, "{p:?}"),
            }
            bad(q.cursor("cursor").map(drop));
        }
        Err(p) => assert_eq!(p.status.as_u16(), 400, "{p:?}"),
    }
    // The cursor text alone, as a client would pass back `next_cursor`.
    if let Some(c) = Cursor::decode(s) {
        let again = Cursor::decode(&c.encode());
        assert_eq!(again.as_ref(), Some(&c));
        if let Some(pos) = pricehub::orders::cursor::position(&c) {
            assert_eq!(pricehub::orders::cursor::position(&again.unwrap()), Some(pos));
        }
    }
});
