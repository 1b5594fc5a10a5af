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
//! - [`journal`]: the decision journal (every input and decision of every engine), read back
//!   by `bt-watchdog journal` and replayed through the engine by `bt-watchdog replay`;
//! - [`notify`]: the notification hooks (webhooks, programs) and the pre-failover veto hook;
//! - [`sim`]: a simulated appliance pair with fault injection, for tests, `simulate` and `demo`;
//! - [`fatal`]: a panic anywhere ends the process with a failure;
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
pub mod fatal;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod journal;
pub(crate) mod notify;
pub mod secret;
pub mod sim;
