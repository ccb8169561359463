//! The integration tests: one binary (`cargo test --test api`), one module per area, and
//! one harness (`common`: real PostgreSQL and Redis, the `TestApp`, processes, the
//! browser). Run one area with `cargo test --test api rates_api::`.

mod common;

mod browser;
mod cli;
mod connection_limits;
mod container_cli;
mod docs;
mod feed_api;
mod feed_pipeline;
mod feed_store;
mod hostile_batches;
mod import;
mod ingest;
mod ingest_crash;
mod migrate_lock;
mod observability;
mod orders;
mod orders_rates;
mod prometheus;
mod rates_api;
mod rates_consistency;
mod restore_drill;
mod secrets;
mod spool_identity;
mod status;
mod status_browser;
mod stream;
