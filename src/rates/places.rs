//! `GET /ports` and `GET /regions`: the locations `/rates` accepts, for people and for
//! the rates explorer's pickers. Both come from the in-memory catalog (reloaded after
//! any write to ports or regions), so they cost no database round trip.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::catalog::Catalog;
use crate::app::AppState;
use crate::http::problem::{Problem, ProblemBody};

#[derive(Serialize, ToSchema)]
pub struct PortEntry {
    /// Five-letter port code (use it as `orig_code` / `dest_code`).
    #[schema(example = "CNSGH")]
    pub code: String,
    #[schema(example = "Shanghai")]
    pub name: String,
    /// Slug of the region the port belongs to directly.
    #[schema(example = "china_east_main")]
    pub region: String,
}

#[derive(Serialize, ToSchema)]
pub struct PortsResponse {
    /// Every port, sorted by code.
    pub ports: Vec<PortEntry>,
}

/// One region and its subtree.
#[derive(Serialize, ToSchema)]
#[schema(no_recursion)]
pub struct RegionNode {
    /// Region slug (use it as `orig_code` / `dest_code`: it means every port below it).
    #[schema(example = "china_main")]
    pub slug: String,
    #[schema(example = "China Main")]
    pub name: String,
    /// Ports directly in this region, sorted by code.
    pub ports: Vec<String>,
    /// Number of ports in this region and all its descendants.
    #[schema(example = 12)]
    pub port_count: usize,
    /// Sub-regions, sorted by name.
    pub children: Vec<RegionNode>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionsResponse {
    /// The top-level regions (those without a parent), sorted by name, each with its
    /// subtree.
    pub regions: Vec<RegionNode>,
}

/// The region forest of a catalog, each level sorted by name. A region whose parent is
/// unknown is treated as a root; regions caught in a parent cycle (hand-edited data)
/// are unreachable from any root and left out.
pub fn region_tree(catalog: &Catalog) -> Vec<RegionNode> {
    let known: HashSet<&str> = catalog.regions().iter().map(|r| r.slug.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&super::catalog::Region>> = HashMap::new();
    for r in catalog.regions() {
        let parent = r
            .parent_slug
            .as_deref()
            .filter(|p| known.contains(p) && *p != r.slug);
        children.entry(parent).or_default().push(r);
    }
    let mut direct: HashMap<&str, Vec<String>> = HashMap::new();
    for p in catalog.ports() {
        direct
            .entry(&p.parent_slug)
            .or_default()
            .push(p.code.clone());
    }
    fn build(
        parent: Option<&str>,
        catalog: &Catalog,
        children: &HashMap<Option<&str>, Vec<&super::catalog::Region>>,
        direct: &HashMap<&str, Vec<String>>,
    ) -> Vec<RegionNode> {
        let mut kids: Vec<_> = children.get(&parent).cloned().unwrap_or_default();
        kids.sort_by(|a, b| a.name.cmp(&b.name).then(a.slug.cmp(&b.slug)));
        kids.into_iter()
            .map(|r| RegionNode {
                slug: r.slug.clone(),
                name: r.name.clone(),
                ports: direct.get(r.slug.as_str()).cloned().unwrap_or_default(),
                port_count: catalog.region_ports(&r.slug).map_or(0, |p| p.len()),
                children: build(Some(&r.slug), catalog, children, direct),
            })
            .collect()
    }
    build(None, catalog, &children, &direct)
}

/// Every port: code, name and region.
#[utoipa::path(get, path = "/ports", tag = "rates",
    responses(
        (status = 200, description = "All ports, sorted by code", body = PortsResponse),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_ports(State(state): State<AppState>) -> Result<Json<PortsResponse>, Problem> {
    let catalog = state.rates.catalog().await?;
    Ok(Json(PortsResponse {
        ports: catalog
            .ports()
            .iter()
            .map(|p| PortEntry {
                code: p.code.clone(),
                name: p.name.clone(),
                region: p.parent_slug.clone(),
            })
            .collect(),
    }))
}

/// The region tree: every region with its ports and sub-regions.
#[utoipa::path(get, path = "/regions", tag = "rates",
    responses(
        (status = 200, description = "The region tree", body = RegionsResponse),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_regions(State(state): State<AppState>) -> Result<Json<RegionsResponse>, Problem> {
    let catalog = state.rates.catalog().await?;
    Ok(Json(RegionsResponse {
        regions: region_tree(&catalog),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::catalog::{Port, Region};

    #[test]
    fn regions_form_a_tree_and_cycles_are_cut() {
        let r = |slug: &str, parent: Option<&str>| Region {
            slug: slug.into(),
            name: slug.to_uppercase(),
            parent_slug: parent.map(Into::into),
        };
        let p = |code: &str, parent: &str| Port {
            code: code.into(),
            name: code.into(),
            parent_slug: parent.into(),
        };
        let catalog = Catalog::new(
            vec![
                r("europe", None),
                r("north", Some("europe")),
                r("baltic", Some("north")),
                r("orphan", Some("nowhere")),
                r("loop_a", Some("loop_b")),
                r("loop_b", Some("loop_a")),
            ],
            vec![p("AAAAA", "baltic"), p("BBBBB", "europe")],
        );
        let tree = region_tree(&catalog);
        let roots: Vec<&str> = tree.iter().map(|n| n.slug.as_str()).collect();
        assert_eq!(roots, ["europe", "orphan"]);
        let europe = &tree[0];
        assert_eq!(europe.ports, ["BBBBB"]);
        assert_eq!(europe.port_count, 2);
        assert_eq!(europe.children[0].slug, "north");
        assert_eq!(europe.children[0].children[0].ports, ["AAAAA"]);
    }
}
