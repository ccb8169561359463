//! Shared by the batch targets: a small catalog, and the checks every outcome must pass.

use pricehub::rates::catalog::{Catalog, Port, Region};
use pricehub::rates::ingest::parse::{self, Format, Parsed};

pub fn catalog() -> Catalog {
    let region = |slug: &str, parent: Option<&str>| Region {
        slug: slug.into(),
        name: slug.into(),
        parent_slug: parent.map(Into::into),
    };
    let port = |code: &str, parent: &str| Port {
        code: code.into(),
        name: code.into(),
        parent_slug: parent.into(),
    };
    Catalog::new(
        vec![
            region("china_main", None),
            region("north_europe_main", None),
        ],
        vec![
            port("CNSGH", "china_main"),
            port("CNNBO", "china_main"),
            port("NOOSL", "north_europe_main"),
            port("GBFXT", "north_europe_main"),
        ],
    )
}

/// Parses `body`: never panics; a refusal lists at least one error and row indices that
/// exist; accepted rows are all within the limits the database relies on.
pub fn check(body: &[u8], format: Format) {
    let catalog = catalog();
    match parse::parse(body, format, &catalog, 1000) {
        Parsed::Rows(rows) => {
            assert!(rows.len() <= 1000);
            for r in rows {
                assert!(catalog.has_port(&r.orig_code) && catalog.has_port(&r.dest_code));
                assert!(r.price > 0);
            }
        }
        Parsed::Rejected(r) => {
            assert!(
                r.error_count >= r.errors.len() && !r.errors.is_empty(),
                "{r:?}"
            );
            // Rejections are stored as jsonb and shown to clients: they must serialize.
            serde_json::to_string(&r).expect("a rejection serializes");
        }
        Parsed::TooManyRows { max } => assert_eq!(max, 1000),
    }
}
