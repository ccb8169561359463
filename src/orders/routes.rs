//! `POST /orders`, `GET /orders` and the published aliases `POST /place_order`,
//! `GET /get_orders?start&page_size`.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::limit::{Decision, client_id};
use super::money::{Amount, Currency, parse_decimal};
use super::{NewOrder, OrderPage, OrderView, parse_cursor};
use crate::app::AppState;
use crate::http::problem::{Problem, ProblemBody};
use crate::idempotency::Key;

/// Largest order request body.
const MAX_BODY: usize = 16 * 1024;
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// Per-client rate limiting; an extractor so that only the order routes pay for it.
pub struct RateLimited;

impl FromRequestParts<AppState> for RateLimited {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let orders = &state.orders;
        if matches!(orders.limiter, super::limit::Limiter::Off) {
            return Ok(RateLimited);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let client = client_id(&parts.headers, peer, &orders.trusted_proxies);
        match orders.limiter.check(&client).await {
            Decision::Allow => Ok(RateLimited),
            Decision::Deny { retry_after } => {
                metrics::counter!("pricehub_orders_rate_limited_total").increment(1);
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    format!("this client has used its order requests for now; retry in {secs} s"),
                )
                .with("retry_after_s", secs)
                .with_header(header::RETRY_AFTER, secs.into()))
            }
        }
    }
}

/// The body of `POST /orders`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderRequest {
    /// ISO code of the fiat currency: `EUR`, `GBP` or `USD`.
    #[schema(example = "EUR")]
    currency: Currency,
    /// Fiat amount, 0 < amount < 1,000,000,000 with at most 2 decimal places, as a JSON
    /// number or a decimal string; read exactly, never through a binary float.
    #[schema(value_type = String, example = "100.00")]
    amount: String,
}

#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow, default)]
    currency: Option<&'a RawValue>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
}

fn invalid(field: &'static str, detail: impl Into<String>) -> Problem {
    metrics::counter!("pricehub_orders_total", "outcome" => "invalid").increment(1);
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-order",
        "Invalid order",
        detail,
    )
    .with("field", field)
}

/// Validates an order body: the amount is taken from the JSON text itself.
pub fn parse_order(body: &[u8]) -> Result<NewOrder, Problem> {
    let is_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    let parsed: Result<RawOrder<'_>, String> = if is_object {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    } else {
        Err("not an object".into())
    };
    let raw = parsed.map_err(|e| {
        metrics::counter!("pricehub_orders_total", "outcome" => "invalid").increment(1);
        Problem::bad_request(
            "invalid-json",
            "Invalid JSON",
            format!("the body must be a JSON object {{\"currency\": …, \"amount\": …}}: {e}"),
        )
    })?;
    let currency = match raw.currency {
        None => {
            return Err(invalid(
                "currency",
                "currency is required (EUR, GBP or USD)",
            ));
        }
        Some(v) => match serde_json::from_str::<String>(v.get()) {
            Ok(s) => s.parse::<Currency>().map_err(|e| invalid("currency", e))?,
            Err(_) => {
                return Err(invalid(
                    "currency",
                    format!(
                        "currency must be a string (EUR, GBP or USD), got {}",
                        v.get()
                    ),
                ));
            }
        },
    };
    let amount = match raw.amount {
        None => return Err(invalid("amount", "amount is required")),
        Some(v) => {
            let text = v.get();
            let literal = if text.starts_with('"') {
                serde_json::from_str::<String>(text).ok()
            } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                Some(text.to_string())
            } else {
                None
            };
            let literal = literal.ok_or_else(|| {
                invalid(
                    "amount",
                    format!("amount must be a number or a decimal string, got {text}"),
                )
            })?;
            let d = parse_decimal(&literal).ok_or_else(|| {
                invalid(
                    "amount",
                    format!("amount must be a decimal number, got {text}"),
                )
            })?;
            Amount::from_decimal(d).map_err(|e| invalid("amount", e))?
        }
    };
    Ok(NewOrder { currency, amount })
}

async fn read_body(body: Body) -> Result<bytes::Bytes, Problem> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("an order body may be at most {MAX_BODY} bytes"),
        )
    })
}

async fn place(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let bytes = read_body(body).await?;
    let req = parse_order(&bytes)?;
    let key = Key::from_request("orders", &headers, &bytes)?;
    state.orders.place(key, req).await
}

/// Place a BTC buy order.
///
/// Prices the fiat amount at the current BTC rate of its currency: `btc_amount` =
/// `amount / rate` rounded **up** to 8 decimal places (so never zero). The sum of all
/// orders never exceeds the configured cap (default 100 BTC); an order that would pass
/// it is refused with 409 `btc-cap-exceeded` and nothing is stored. With an
/// `Idempotency-Key`, a retry of the same order returns the first answer (same `id`)
/// and stores nothing; the same key with a different order is 409
/// `idempotency-key-reused`. A rate older than the maximum age is never used: 503 with
/// `Retry-After`. Rate limited per client (429 with `Retry-After`).
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body(content = OrderRequest, content_type = "application/json",
        example = json!({"currency": "EUR", "amount": "100.00"})),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and order → the same order, stored once"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting (else its IP address)")),
    responses(
        (status = 201, description = "Stored", body = OrderView),
        (status = 400, description = "Body is not a JSON object", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "BTC cap would be exceeded, or Idempotency-Key reused with another order", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (named in `field`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "No fresh BTC rate; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn post_orders(
    _: RateLimited,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    place(state, headers, body).await
}

/// Place a BTC buy order (the published path; same as `POST /orders`).
#[utoipa::path(post, path = "/place_order", tag = "orders",
    request_body(content = OrderRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and order → the same order"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting")),
    responses(
        (status = 201, description = "Stored", body = OrderView),
        (status = 409, description = "Cap exceeded or key reused", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "No fresh BTC rate", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn place_order(
    _: RateLimited,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    place(state, headers, body).await
}

fn bad_param(name: &'static str, detail: String) -> Problem {
    Problem::bad_request("invalid-parameter", "Invalid parameter", detail).with("parameter", name)
}

/// Reads the paging parameters under the given names.
fn paging(
    uri: &Uri,
    cursor_name: &'static str,
    limit_name: &'static str,
) -> Result<(Option<String>, usize), Problem> {
    let mut cursor = None;
    let mut limit = None;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == cursor_name {
            cursor = Some(v.into_owned());
        } else if k == limit_name {
            limit = Some(v.into_owned());
        }
    }
    let limit = match limit.filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad_param(
                    limit_name,
                    format!("{limit_name} must be an integer from 1 to {MAX_LIMIT}, got {l:?}"),
                )
            })?,
    };
    Ok((cursor.filter(|c| !c.is_empty()), limit))
}

async fn list(
    state: &AppState,
    cursor: Option<String>,
    limit: usize,
    name: &'static str,
) -> Result<Json<OrderPage>, Problem> {
    let after = match cursor {
        None => None,
        Some(c) => Some(parse_cursor(&c).ok_or_else(|| {
            bad_param(
                name,
                format!("{name} must be a next_cursor value from an earlier page, got {c:?}"),
            )
        })?),
    };
    Ok(Json(state.orders.list(after, limit).await?))
}

/// List orders, newest first.
///
/// Keyset paging: pass the `next_cursor` of a page as `cursor` to get the next (older)
/// page; `next_cursor` is `null` on the last page. Every page costs the same however
/// deep it is. Rate limited per client.
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(
        ("limit" = Option<usize>, Query, description = "Orders per page, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting")),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_orders(
    _: RateLimited,
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<OrderPage>, Problem> {
    let (cursor, limit) = paging(&uri, "cursor", "limit")?;
    list(&state, cursor, limit, "cursor").await
}

/// List orders, newest first (the published path).
///
/// `page_size` is the page length (1 to 500, default 50); `start` is the `next_cursor`
/// of the previous page (empty or `0` for the first page) — a cursor, not an offset, so
/// deep pages stay as fast as the first.
#[utoipa::path(get, path = "/get_orders", tag = "orders",
    params(
        ("page_size" = Option<usize>, Query, description = "Orders per page, 1 to 500 (default 50)"),
        ("start" = Option<String>, Query, description = "`next_cursor` of the previous page; empty or 0 for the first")),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Bad page_size or start", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_orders_alias(
    _: RateLimited,
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<OrderPage>, Problem> {
    let (cursor, limit) = paging(&uri, "start", "page_size")?;
    list(&state, cursor.filter(|c| c != "0"), limit, "start").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_bodies() {
        let ok = |b: &str| parse_order(b.as_bytes()).unwrap();
        let field = |b: &str| {
            let p = parse_order(b.as_bytes()).unwrap_err();
            (
                p.status.as_u16(),
                p.body()["field"].as_str().map(String::from),
            )
        };
        assert_eq!(
            ok(r#"{"currency":"EUR","amount":10.5}"#).amount.cents(),
            1050
        );
        assert_eq!(
            ok(r#"{"currency":"USD","amount":"0.01"}"#).amount.cents(),
            1
        );
        // 0.1 + 0.2 style literals are read exactly, never through f64.
        assert_eq!(
            ok(r#"{"currency":"GBP","amount":999999999.99}"#)
                .amount
                .cents(),
            99_999_999_999
        );
        assert_eq!(
            field(r#"{"currency":"EUR","amount":0}"#),
            (422, Some("amount".into()))
        );
        assert_eq!(
            field(r#"{"currency":"EUR","amount":1.005}"#),
            (422, Some("amount".into()))
        );
        assert_eq!(
            field(r#"{"currency":"EUR","amount":1e9}"#),
            (422, Some("amount".into()))
        );
        assert_eq!(
            field(r#"{"currency":"EUR","amount":-3}"#),
            (422, Some("amount".into()))
        );
        assert_eq!(
            field(r#"{"currency":"EUR","amount":true}"#),
            (422, Some("amount".into()))
        );
        assert_eq!(
            field(r#"{"currency":"EUR","amount":"ten"}"#),
            (422, Some("amount".into()))
        );
        assert_eq!(field(r#"{"currency":"EUR"}"#), (422, Some("amount".into())));
        assert_eq!(
            field(r#"{"currency":"JPY","amount":1}"#),
            (422, Some("currency".into()))
        );
        assert_eq!(
            field(r#"{"currency":1,"amount":1}"#),
            (422, Some("currency".into()))
        );
        assert_eq!(field(r#"{"amount":1}"#), (422, Some("currency".into())));
        assert_eq!(field(r#"[1,2]"#).0, 400);
        assert_eq!(field(r#"not json"#).0, 400);
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        assert!(parse_cursor("1763882102123456_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21").is_some());
        for bad in [
            "",
            "x",
            "12_",
            "_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21",
            "-1_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21",
            "99999999999999999999_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21",
            "1_zz8b6c1e3a0c4d5e9a572f1d8e6b4c21",
        ] {
            assert!(parse_cursor(bad).is_none(), "{bad}");
        }
    }
}
