//! Ports and the region tree, resolved in memory: a location is a port code or a region
//! slug, and a region stands for every port in it and in all its descendant regions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Region {
    pub slug: String,
    pub name: String,
    pub parent_slug: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub code: String,
    pub name: String,
    pub parent_slug: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    ports: HashSet<String>,
    /// Every region and port as stored, sorted by slug / code (for `/regions`, `/ports`).
    region_list: Vec<Region>,
    port_list: Vec<Port>,
    /// Region slug → sorted codes of every port in the region's subtree.
    region_ports: HashMap<String, Arc<[String]>>,
}

/// What a location parameter resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Port(String),
    Region { slug: String, ports: Arc<[String]> },
}

impl Location {
    /// Canonical key for caching.
    pub fn key(&self) -> &str {
        match self {
            Location::Port(c) => c,
            Location::Region { slug, .. } => slug,
        }
    }

    pub fn port_codes(&self) -> Vec<String> {
        match self {
            Location::Port(c) => vec![c.clone()],
            Location::Region { ports, .. } => ports.to_vec(),
        }
    }
}

impl Catalog {
    pub fn new(regions: Vec<Region>, ports: Vec<Port>) -> Catalog {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for r in &regions {
            if let Some(p) = r.parent_slug.as_deref() {
                children.entry(p).or_default().push(&r.slug);
            }
        }
        let mut direct_ports: HashMap<&str, Vec<&str>> = HashMap::new();
        for p in &ports {
            direct_ports
                .entry(&p.parent_slug)
                .or_default()
                .push(&p.code);
        }
        let mut region_ports = HashMap::new();
        for r in &regions {
            // Walk the subtree; `seen` guards against a cycle in hand-edited data.
            let mut seen = HashSet::new();
            let mut stack = vec![r.slug.as_str()];
            let mut codes: Vec<String> = Vec::new();
            while let Some(slug) = stack.pop() {
                if !seen.insert(slug) {
                    continue;
                }
                if let Some(ps) = direct_ports.get(slug) {
                    codes.extend(ps.iter().map(|c| c.to_string()));
                }
                if let Some(kids) = children.get(slug) {
                    stack.extend(kids.iter().copied());
                }
            }
            codes.sort();
            codes.dedup();
            region_ports.insert(r.slug.clone(), Arc::from(codes));
        }
        let mut region_list = regions;
        region_list.sort_by(|a, b| a.slug.cmp(&b.slug));
        let mut port_list = ports;
        port_list.sort_by(|a, b| a.code.cmp(&b.code));
        Catalog {
            ports: port_list.iter().map(|p| p.code.clone()).collect(),
            region_ports,
            region_list,
            port_list,
        }
    }

    /// Every region, sorted by slug.
    pub fn regions(&self) -> &[Region] {
        &self.region_list
    }

    /// Every port, sorted by code.
    pub fn ports(&self) -> &[Port] {
        &self.port_list
    }

    /// Codes of every port in a region and its descendants (sorted).
    pub fn region_ports(&self, slug: &str) -> Option<&[String]> {
        self.region_ports.get(slug).map(|p| &p[..])
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    pub fn region_count(&self) -> usize {
        self.region_ports.len()
    }

    pub fn has_port(&self, code: &str) -> bool {
        self.ports.contains(code)
    }

    /// Resolves a port code (exact, or upper-cased: port codes are upper case) or a region
    /// slug (exact).
    pub fn resolve(&self, code: &str) -> Option<Location> {
        if self.ports.contains(code) {
            return Some(Location::Port(code.to_string()));
        }
        if let Some(ports) = self.region_ports.get(code) {
            return Some(Location::Region {
                slug: code.to_string(),
                ports: ports.clone(),
            });
        }
        let upper = code.to_ascii_uppercase();
        self.ports.contains(&upper).then_some(Location::Port(upper))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(slug: &str, parent: Option<&str>) -> Region {
        Region {
            slug: slug.into(),
            name: slug.into(),
            parent_slug: parent.map(Into::into),
        }
    }
    fn port(code: &str, parent: &str) -> Port {
        Port {
            code: code.into(),
            name: code.into(),
            parent_slug: parent.into(),
        }
    }

    fn sample() -> Catalog {
        Catalog::new(
            vec![
                region("northern_europe", None),
                region("scandinavia", Some("northern_europe")),
                region("kattegat", Some("scandinavia")),
                region("baltic", Some("northern_europe")),
                region("empty", Some("baltic")),
            ],
            vec![
                port("DKCPH", "kattegat"),
                port("NOOSL", "scandinavia"),
                port("EETLL", "baltic"),
            ],
        )
    }

    #[test]
    fn regions_include_all_descendants() {
        let c = sample();
        let Some(Location::Region { ports, .. }) = c.resolve("northern_europe") else {
            panic!("region expected")
        };
        assert_eq!(
            &*ports,
            &["DKCPH".to_string(), "EETLL".into(), "NOOSL".into()]
        );
        let Some(Location::Region { ports, .. }) = c.resolve("scandinavia") else {
            panic!("region expected")
        };
        assert_eq!(&*ports, &["DKCPH".to_string(), "NOOSL".into()]);
        assert_eq!(
            c.resolve("empty").unwrap().port_codes(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn ports_resolve_case_insensitively_but_regions_do_not() {
        let c = sample();
        assert_eq!(c.resolve("dkcph"), Some(Location::Port("DKCPH".into())));
        assert_eq!(c.resolve("DKCPH"), Some(Location::Port("DKCPH".into())));
        assert_eq!(c.resolve("NORTHERN_EUROPE"), None);
        assert_eq!(c.resolve("XXXXX"), None);
    }

    #[test]
    fn survives_a_cycle() {
        let c = Catalog::new(
            vec![region("a", Some("b")), region("b", Some("a"))],
            vec![port("AAAAA", "a")],
        );
        assert_eq!(
            c.resolve("b").unwrap().port_codes(),
            vec!["AAAAA".to_string()]
        );
    }
}
