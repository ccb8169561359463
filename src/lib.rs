//! pricehub: a self-hostable price platform. See README.md and docs/architecture.md.

pub mod app;
pub mod config;
pub mod db;
pub mod feed;
pub mod healthcheck;
pub mod http;
pub mod idempotency;
pub mod orders;
pub mod rates;
pub mod run;
pub mod secret_files;
pub mod status;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
