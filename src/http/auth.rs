//! Bearer-token authorisation for write endpoints.

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use super::problem::{Kind, Problem};
use crate::config::Secret;

/// Checks `Authorization: Bearer <token>` against the configured token. No token
/// configured means the feature is disabled (403), never open.
pub fn require_bearer(
    headers: &HeaderMap,
    token: Option<&Secret>,
    what: &str,
) -> Result<(), Problem> {
    let Some(token) = token else {
        return Err(Problem::new(
            Kind::WritesDisabled,
            format!(
                "{what} is disabled: no token is configured on the server (--ingest-token / PRICEHUB_INGEST_TOKEN)"
            ),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.expose().as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            Kind::Unauthorized,
            if given.is_some() {
                "the bearer token is not valid"
            } else {
                "an Authorization: Bearer token is required"
            },
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
    }
}
