//! bt-watchdog: a failover watchdog for BeyondTrust RS/PRA appliance pairs.
//!
//! The crate is split by job, and the folder names say which job:
//! - [`api`]: talking to appliances (OAuth token cache, rate-limit budget, typed answers);
//! - [`engine`]: the sans-IO decision engine (whether and how to fail over, and why);
//! - [`commands`]: the subcommands other than `run` (check-config, status, demo, simulate);
//! - [`config`]: the configuration file;
//! - [`control`]: the local socket for manual failover and operator commands, and the audit log;
//! - [`daemon`]: the site loops, the actuator, the state store, signals and systemd;
//! - [`exporter`]: Prometheus metrics and the HTTP endpoints (`/metrics`, `/status`, …);
//! - [`sim`]: a simulated appliance pair with fault injection, for tests, `simulate` and `demo`;
//! - [`secret`]: the type that keeps client secrets out of logs and error messages.
#![forbid(unsafe_code)]

mod accept;
pub mod api;
pub(crate) mod cluster;
pub mod commands;
pub mod config;
pub mod control;
pub(crate) mod daemon;
pub(crate) mod engine;
pub(crate) mod exporter;
pub mod secret;
pub mod sim;
