//! `POST /orders`, `GET /orders` and the published aliases `POST /place_order`,
//! `GET /get_orders?start&page_size`.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::cursor::position;
use super::limit::{Decision, client_id};
use super::money::{Amount, Currency, parse_decimal};
use super::service::NewOrder;
use super::view::{OrderPage, OrderView};
use crate::app::AppState;
use crate::http::body::read_limited;
use crate::http::params::{Cursor, Limit, Params, invalid_cursor};
use crate::http::problem::{Kind, Problem, ProblemBody};
use crate::idempotency::Key;

/// Largest order request body.
const MAX_BODY: u64 = 16 * 1024;
const PAGE_LIMIT: Limit = Limit {
    default: 50,
    max: 500,
};

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
                    Kind::RateLimited,
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
    #[schema(schema_with = amount_schema, example = "100.00")]
    amount: String,
}

/// A decimal string or a JSON number. "Greater than 0" and "at most 2 decimals" of a
/// number are not said: JSON Schema's `multipleOf: 0.01` is a float rule, and the server
/// reads the literal exactly (`0.30000000000000004` has more than 2 decimals).
fn amount_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0.0))
                .exclusive_maximum(Some(1_000_000_000.0)),
        )
        .into()
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
    Problem::new(Kind::InvalidOrder, detail).with("field", field)
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
        Problem::new(
            Kind::InvalidJson,
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

/// The answers of the two routes that place an order.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum OrderPlaced {
    /// Stored (or, with an Idempotency-Key, stored before)
    #[response(status = 201)]
    Stored(OrderView),
    /// The body is not a JSON object (`invalid-json`), cannot be read (`unreadable-body`), or the Idempotency-Key is malformed (`invalid-idempotency-key`)
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemBody),
    /// The BTC cap would be exceeded (`btc-cap-exceeded`), or the Idempotency-Key was used with another order (`idempotency-key-reused`); nothing stored
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemBody),
    /// The body is over 16 KiB (`payload-too-large`)
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemBody),
    /// A field is missing or invalid, named in "field" (`invalid-order`)
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(ProblemBody),
    /// Rate limited; see Retry-After (`rate-limited`)
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(ProblemBody),
    /// No fresh BTC rate (`rate-unavailable`) or the database is unavailable (`unavailable`); see Retry-After
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemBody),
}

async fn place(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let bytes = read_limited(&headers, body, MAX_BODY, "an order body", "").await?;
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
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and order → the same order, stored once",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting (else its IP address)")),
    responses(OrderPlaced))]
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
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and order → the same order",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting")),
    responses(OrderPlaced))]
pub async fn place_order(
    _: RateLimited,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    place(state, headers, body).await
}

/// The answers of the two routes that list orders.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum OrderList {
    /// A page of orders
    #[response(status = 200)]
    Page(OrderPage),
    /// A paging parameter is repeated or malformed (`duplicate-parameter`, `invalid-limit`, `invalid-cursor`)
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemBody),
    /// Rate limited; see Retry-After (`rate-limited`)
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(ProblemBody),
    /// The database is unavailable; see Retry-After (`unavailable`)
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemBody),
}

/// Answers a page of orders for the paging parameters `cursor_name` and `limit_name`
/// (the two routes spell them differently).
async fn list(
    state: &AppState,
    raw: Option<&str>,
    cursor_name: &'static str,
    limit_name: &'static str,
) -> Result<Json<OrderPage>, Problem> {
    let q = Params::parse(raw, &[cursor_name, limit_name])?;
    let limit = q.limit(limit_name, PAGE_LIMIT)?;
    // The published API asks for `start=0` on the first page.
    let cursor = q
        .get(cursor_name)
        .filter(|c| cursor_name != "start" || *c != "0");
    let after = match cursor {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .as_ref()
                .and_then(position)
                .ok_or_else(|| invalid_cursor(cursor_name, c))?,
        ),
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
        ("limit" = Option<u32>, Query, description = "Orders per page (default 50)", minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page, unchanged"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting")),
    responses(OrderList))]
pub async fn get_orders(
    _: RateLimited,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrderPage>, Problem> {
    list(&state, raw.as_deref(), "cursor", "limit").await
}

/// List orders, newest first (the published path).
///
/// `page_size` is the page length (1 to 500, default 50); `start` is the `next_cursor`
/// of the previous page (empty or `0` for the first page) — a cursor, not an offset, so
/// deep pages stay as fast as the first.
#[utoipa::path(get, path = "/get_orders", tag = "orders",
    params(
        ("page_size" = Option<u32>, Query, description = "Orders per page (default 50)", minimum = 1, maximum = 500),
        ("start" = Option<String>, Query, description = "next_cursor of the previous page, unchanged; empty or 0 for the first page"),
        ("X-Api-Key" = Option<String>, Header, description = "Identifies the client for rate limiting")),
    responses(OrderList))]
pub async fn get_orders_alias(
    _: RateLimited,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrderPage>, Problem> {
    list(&state, raw.as_deref(), "start", "page_size").await
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
        for body in [
            r#"{"currency":"EUR","amount":0}"#,
            r#"{"currency":"EUR","amount":1.005}"#,
            r#"{"currency":"EUR","amount":1e9}"#,
            r#"{"currency":"EUR","amount":-3}"#,
            r#"{"currency":"EUR","amount":true}"#,
            r#"{"currency":"EUR","amount":"ten"}"#,
            r#"{"currency":"EUR"}"#,
        ] {
            assert_eq!(field(body), (422, Some("amount".into())), "{body}");
        }
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
        let position = |s: &str| {
            Cursor::decode(s)
                .as_ref()
                .and_then(super::super::cursor::position)
        };
        assert!(position("1763882102123456_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21").is_some());
        for bad in [
            "",
            "x",
            "12_",
            "_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21",
            "-1_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21",
            "99999999999999999999_0f8b6c1e3a0c4d5e9a572f1d8e6b4c21",
            "1_zz8b6c1e3a0c4d5e9a572f1d8e6b4c21",
        ] {
            assert!(position(bad).is_none(), "{bad}");
        }
    }
}
