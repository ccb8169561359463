//! Static assets embedded in the binary (no CDN, no network at build or run time).
//!
//! Pages link each asset by a content-hashed name (`app.3f2a9c1d0b7e.css`), served
//! `immutable` for a year: a new build changes the name, so browsers never run a stale
//! script. The plain name is served too, with an ETag and `no-cache` (revalidate). To add
//! an asset, put the file in `src/status/assets/` and add one line to [`FILES`].

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Every embedded asset: its name and contents.
const FILES: &[(&str, &[u8])] = &[
    ("app.css", include_bytes!("assets/app.css")),
    ("chart.js", include_bytes!("assets/chart.js")),
    ("dashboard.css", include_bytes!("assets/dashboard.css")),
    ("dashboard.js", include_bytes!("assets/dashboard.js")),
    ("explorer.js", include_bytes!("assets/explorer.js")),
    ("favicon.svg", include_bytes!("assets/favicon.svg")),
];

pub struct Asset {
    pub name: &'static str,
    /// `stem.<12 hex digits of SHA-256>.ext`
    pub hashed: String,
    pub etag: HeaderValue,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, body)| {
            let hash = format!("{:x}", Sha256::digest(body));
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            Asset {
                name,
                hashed: format!("{stem}.{}.{ext}", &hash[..12]),
                etag: HeaderValue::from_str(&format!("\"{}\"", &hash[..32]))
                    .expect("hex is a valid header"),
                content_type: content_type(ext),
                body,
            }
        })
        .collect()
});

fn content_type(ext: &str) -> &'static str {
    match ext {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// The URL pages use for an embedded asset. Panics on an unknown name: a template that
/// names a missing asset fails its first test, never a user.
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/assets/{}", a.hashed),
        None => panic!("no embedded asset named {name:?} (see src/status/assets.rs)"),
    }
}

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let (asset, cache) = if let Some(a) = ASSETS.iter().find(|a| a.hashed == file) {
        (a, "public, max-age=31536000, immutable")
    } else if let Some(a) = ASSETS.iter().find(|a| a.name == file) {
        (a, "no-cache")
    } else {
        return crate::http::problem::Problem::new(
            crate::http::problem::Kind::NotFound,
            format!("no asset named {file}"),
        )
        .into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let common = [
        (header::ETAG, asset.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        super::SECURITY_HEADERS,
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_follow_the_contents() {
        let css = url("app.css");
        assert!(
            css.starts_with("/assets/app.") && css.ends_with(".css"),
            "{css}"
        );
        let hash = &css["/assets/app.".len()..css.len() - ".css".len()];
        assert_eq!(hash.len(), 12);
        let expected = format!("{:x}", Sha256::digest(include_bytes!("assets/app.css")));
        assert!(expected.starts_with(hash));
    }

    #[test]
    #[should_panic(expected = "no embedded asset")]
    fn unknown_assets_are_a_programming_error() {
        url("missing.js");
    }
}
