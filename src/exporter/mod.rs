//! What the watchdog shows the outside: Prometheus metrics and the HTTP endpoints.

pub mod exposition;
pub mod metrics;
pub mod page;
pub mod runbook;
pub mod server;
pub mod status;
pub mod web_config;
