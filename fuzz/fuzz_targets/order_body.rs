//! The order body and amount parsers (`POST /orders`) on arbitrary input: a problem (4xx)
//! or a valid order, never a panic; an accepted amount is in range and exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pricehub::orders::money::{Amount, parse_decimal};
use pricehub::orders::routes::parse_order;

fuzz_target!(|data: &[u8]| {
    match parse_order(data) {
        Ok(order) => {
            let c = order.amount.cents();
            assert!(c > 0 && c < 100_000_000_000, "{c}");
        }
        Err(p) => assert!(p.status.is_client_error(), "{p:?}"),
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(d) = parse_decimal(s)
        && let Ok(a) = Amount::from_decimal(d)
    {
        assert_eq!(a.to_decimal(), d);
    }
});
