//! What the unit tests and the integration tests (`tests/api`) share: where the
//! reference data is, and what it means when something a test needs is missing. One
//! rule for both: a missing dependency is said loudly and skips the test on a laptop,
//! and fails it under CI (`CI=true`), so CI can never pass by skipping.
//! Not part of the product's interface.

use std::path::PathBuf;

/// The files of the reference data directory that the tests read.
const REFERENCE_FILES: [&str; 6] = [
    "rates-2016.sql",
    "rates-2021.sql",
    "rates-vectors.json",
    "feed-capture.bin",
    "feed-capture.json",
    "coindesk-currentprice.json",
];

/// Whether the tests run under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Says loudly that something the test needs is missing; fails under CI.
pub fn unavailable(what: &str) {
    if in_ci() {
        panic!("{what} is not available, and CI=true makes that a failure");
    }
    eprintln!("\n!!! SKIPPED: {what} is not available (set CI=true to make this a failure) !!!\n");
}

/// The reference data directory: `PRICEHUB_TEST_DATA`, else `../shared/data` next to
/// the repository. `None` (after [`unavailable`]) when it lacks any of the files the
/// tests read.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PRICEHUB_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let missing: Vec<&str> = REFERENCE_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Some(dir)
    } else {
        unavailable(&format!(
            "reference data in {} (missing {}; set PRICEHUB_TEST_DATA)",
            dir.display(),
            missing.join(", ")
        ));
        None
    }
}
