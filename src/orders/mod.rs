//! BTC buy orders: `POST /orders` prices a fiat amount in BTC at the current
//! rate and stores it, never letting the sum of all orders pass the BTC cap;
//! `GET /orders` lists them newest first with keyset paging.
//!
//! - [`service`]: the order service ([`service::Orders`]) and its background tasks.
//! - [`money`]: amounts, rates and the exact round-up division.
//! - [`fx`]: rate sources (CoinDesk-shaped HTTP, the live feed, fixed) and the book
//!   that refuses stale rates.
//! - [`store`]: the tables on both backends and the cap ledger.
//! - [`cap`]: `GET /orders/cap`, the ledger's state.
//! - [`limit`]: per-client rate limiting, in memory or through Redis ([`redis`]).
//! - [`writer`]: group commit — one transaction per batch of waiting orders, holding
//!   the cap ledger.
//! - [`routes`]: the HTTP handlers; [`view`]: what they answer; [`cursor`]: the list's
//!   cursor format; [`problems`]: the problems orders are refused with.
//! - [`metrics`]: metric descriptions and the counters and gauges orders update.
//!
//! Status codes: 201 created; 400 malformed JSON or bad paging parameters; 409 the cap
//! would be exceeded (`btc-cap-exceeded`) or an Idempotency-Key reused with another
//! order (`idempotency-key-reused`); 422 an invalid field (`invalid-order`, naming it);
//! 429 rate limited; 503 no fresh rate (`rate-unavailable`), both with `Retry-After`.

pub mod cap;
pub mod cursor;
pub mod fx;
pub mod limit;
pub mod metrics;
pub mod money;
pub mod problems;
pub mod redis;
pub mod routes;
pub mod service;
pub mod store;
pub mod view;
pub mod writer;
