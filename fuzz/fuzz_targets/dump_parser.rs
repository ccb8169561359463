//! The pg_dump parser on arbitrary input: an error names a line, never a panic; whatever
//! parses is internally consistent (every port's region and every price's ports exist).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pricehub::rates::dump;

fuzz_target!(|data: &[u8]| {
    match dump::parse(data, |_| {}) {
        Ok(d) => {
            let regions: std::collections::HashSet<_> = d.regions.iter().map(|r| &r.slug).collect();
            for p in &d.ports {
                assert!(
                    regions.contains(&p.parent_slug),
                    "port {} without its region",
                    p.code
                );
            }
            let ports: std::collections::HashSet<_> = d.ports.iter().map(|p| &p.code).collect();
            for r in &d.prices {
                assert!(
                    ports.contains(&r.orig_code) && ports.contains(&r.dest_code),
                    "{r:?}"
                );
            }
        }
        Err(e) => assert!(e.line <= data.split(|&b| b == b'\n').count() + 1, "{e}"),
    }
});
