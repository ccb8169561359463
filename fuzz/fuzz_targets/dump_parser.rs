//! The pg_dump parser on arbitrary input: an error names a line, never a panic; whatever
//! parses is internally consistent. A dump may leave out a table (the import then checks
//! its references against the database), so references are checked within the dump only
//! where the referenced table is in it: every port's region when there are regions,
//! every price's ports when there are ports; regions come parents first.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use pricehub::rates::dump;

fuzz_target!(|data: &[u8]| {
    match dump::parse(data, |_| {}) {
        Ok(d) => {
            let mut seen = HashSet::new();
            for r in &d.regions {
                if let Some(p) = &r.parent_slug {
                    assert!(seen.contains(p), "region {} before its parent {p}", r.slug);
                }
                seen.insert(&r.slug);
            }
            if !d.regions.is_empty() {
                for p in &d.ports {
                    assert!(
                        seen.contains(&p.parent_slug),
                        "port {} without its region",
                        p.code
                    );
                }
            }
            if !d.ports.is_empty() {
                let ports: HashSet<_> = d.ports.iter().map(|p| &p.code).collect();
                for r in &d.prices {
                    assert!(
                        ports.contains(&r.orig_code) && ports.contains(&r.dest_code),
                        "{r:?}"
                    );
                }
            }
        }
        Err(e) => assert!(e.line <= data.split(|&b| b == b'\n').count() + 1, "{e}"),
    }
});
