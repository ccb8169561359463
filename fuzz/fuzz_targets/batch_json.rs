//! The batch JSON parser (`POST /prices`, `POST /batches`) on arbitrary bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pricehub::rates::ingest::parse::Format;

#[path = "batch_common.rs"]
mod batch_common;

fuzz_target!(|data: &[u8]| batch_common::check(data, Format::Json));
