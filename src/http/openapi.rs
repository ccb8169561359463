//! The OpenAPI document (generated from the route annotations) and a human docs page
//! that renders it with no network access beyond this server.

use axum::Json;
use axum::response::Html;
use utoipa::OpenApi;

use super::problem::{self, Kind};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pricehub",
        description = "Self-hostable price platform: freight rates, live prices, BTC buy orders.\n\nErrors are `application/problem+json` (RFC 9457) with a stable `type` of the form `urn:pricehub:problem:<kind>`.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    // Bodies of responses declared through `IntoResponses` types, which do not register
    // the schemas they name.
    components(schemas(crate::orders::view::OrderView, crate::orders::view::OrderPage)),
    tags(
        (name = "rates", description = "Freight rates between ports and regions"),
        (name = "ingest", description = "Atomic batch ingestion of prices (bearer token)"),
        (name = "feed", description = "Live price feed: instruments, stored trades, candles"),
        (name = "orders", description = "BTC buy orders under a hard cap (rate limited per client)"),
        (name = "operations", description = "Health, metrics, version and this documentation"),
        (name = "status", description = "The pages (status, live dashboard, rates explorer) and the explorer's lookups (ports, regions)")
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the write endpoints use.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// Finishes the generated document with what the route annotations cannot say: the
/// `Problem` schema's `type` is an enum of the whole catalogue, and every problem
/// response is constrained to the kinds its description names in backticks (see
/// [`super::problem`]), so a client or a fuzzer can check each error it gets.
pub fn finish(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    let all: Vec<_> = Kind::ALL.iter().map(|k| k.type_uri()).collect();
    if let Some(ty) = v.pointer_mut("/components/schemas/Problem/properties/type") {
        ty["enum"] = all.into();
    }
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for op in op.values_mut() {
                // The query rules (http::params): an empty value counts as absent.
                if let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) {
                    for p in params {
                        if p["in"] == "query" && p["required"] != true {
                            p["allowEmptyValue"] = true.into();
                        }
                    }
                }
                let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                for resp in responses.values_mut() {
                    let kinds = kinds_named(resp["description"].as_str().unwrap_or(""));
                    let Some(content) = resp.pointer_mut(&format!(
                        "/content/{}",
                        problem::CONTENT_TYPE.replace('/', "~1")
                    )) else {
                        continue;
                    };
                    let uris: Vec<_> = kinds.iter().map(|k| k.type_uri()).collect();
                    let schema = content["schema"].take();
                    content["schema"] = serde_json::json!({
                        "allOf": [schema, {"type": "object", "properties": {"type": {"type": "string", "enum": uris}}}]
                    });
                }
            }
        }
    }
    v
}

/// The kinds a response description names: every backticked token of lowercase letters
/// and hyphens is a slug (one that is not in the catalogue fails the contract test, so
/// write other code words in such descriptions with capitals, `_` or quotes).
pub fn slugs_named(description: &str) -> Vec<&str> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .collect()
}

fn kinds_named(description: &str) -> Vec<Kind> {
    slugs_named(description)
        .into_iter()
        .filter_map(Kind::from_slug)
        .collect()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(
    axum::Extension(doc): axum::Extension<std::sync::Arc<serde_json::Value>>,
) -> Json<serde_json::Value> {
    Json((*doc).clone())
}

/// Human-readable API documentation (renders `/openapi.json`; works offline).
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- BEGIN GENERATED: cargo test --lib http::openapi -->";
    const END: &str = "<!-- END GENERATED -->";

    /// Kinds no single route names in its responses: the framework's own errors and
    /// those any route can meet (they are listed in docs/api.md all the same).
    const ANY_ROUTE: &[Kind] = &[
        Kind::NotFound,
        Kind::MethodNotAllowed,
        Kind::BadRequest,
        Kind::Unprocessable,
        Kind::RequestTimeout,
        Kind::Timeout,
        Kind::Internal,
        // Served by the provider's side port, which is not part of this document.
        Kind::NoBtcPrice,
        // Shown inside the explorer's HTML page (its 404), never sent as problem+json.
        Kind::NoLocations,
    ];

    fn catalogue_table() -> String {
        let mut out = String::from(
            "\n| type (`urn:pricehub:problem:` …) | status | title | when | extra members |\n|---|---|---|---|---|\n",
        );
        for k in Kind::ALL {
            let extra = if k.extra_members().is_empty() {
                "—".to_string()
            } else {
                k.extra_members()
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {extra} |\n",
                k.slug(),
                k.status().as_u16(),
                k.title(),
                k.when()
            ));
        }
        out
    }

    /// docs/api.md lists exactly the catalogue. Regenerate with
    /// `UPDATE_DOCS=1 cargo test --lib http::openapi`.
    #[test]
    fn docs_list_exactly_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (head, rest) = doc
            .split_once(BEGIN)
            .expect("docs/api.md has the BEGIN marker");
        let (current, tail) = rest
            .split_once(END)
            .expect("docs/api.md has the END marker");
        let want = catalogue_table();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, format!("{head}{BEGIN}{want}{END}{tail}")).unwrap();
            return;
        }
        assert_eq!(
            current, want,
            "docs/api.md's problem table is not the catalogue; run UPDATE_DOCS=1 cargo test --lib http::openapi"
        );
    }

    /// A `$ref` to a schema the document does not hold makes clients and fuzzers skip
    /// that part of the contract (IntoResponses types do not register their bodies).
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = crate::http::openapi_document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "unresolvable {r}");
        }
    }

    #[test]
    fn the_problem_schema_enumerates_the_catalogue() {
        let doc = crate::http::openapi_document();
        let listed: Vec<String> = doc
            .pointer("/components/schemas/Problem/properties/type/enum")
            .and_then(|e| e.as_array())
            .expect("Problem.type has an enum")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let all: Vec<String> = Kind::ALL.iter().map(|k| k.type_uri()).collect();
        assert_eq!(listed, all);
    }

    /// Every problem response names the kinds it can carry, each of them is in the
    /// catalogue with that status, and every kind is named by some route (or can happen
    /// on any route).
    #[test]
    fn every_problem_response_names_kinds_of_its_status() {
        let doc = crate::http::openapi_document();
        let mut named = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    let at = format!("{method} {path} {status}");
                    let description = resp["description"].as_str().unwrap_or("");
                    let is_problem = resp["content"].get(problem::CONTENT_TYPE).is_some();
                    let slugs = slugs_named(description);
                    if !is_problem {
                        assert!(
                            slugs.is_empty(),
                            "{at}: names problem kinds but is no problem response"
                        );
                        continue;
                    }
                    assert!(
                        !slugs.is_empty(),
                        "{at}: names no problem kind in {description:?}"
                    );
                    for slug in slugs {
                        let kind = Kind::from_slug(slug)
                            .unwrap_or_else(|| panic!("{at}: `{slug}` is not in the catalogue"));
                        assert_eq!(kind.status().as_str(), status, "{at}: `{slug}`");
                        named.insert(kind);
                    }
                }
            }
        }
        for k in Kind::ALL {
            assert!(
                named.contains(k) || ANY_ROUTE.contains(k),
                "no route documents `{k}`"
            );
        }
    }
}
