//! The local control channel between the CLI (`failover`, `pause`, `resume`, `ack`) and a
//! running daemon: a Unix socket, mode 0600, that also checks the caller's uid.
//!
//! It is deliberately not on the exporter's TCP listener: only someone who could already act as
//! the watchdog's user on this machine can fail a site over. Automatic and manual actions meet
//! in the same engine, which serializes them.
//!
//! - [`protocol`]: the request and answer types (one JSON line each way);
//! - [`server`]: the daemon side;
//! - [`client`]: the CLI side;
//! - [`audit`]: the audit log every manual action writes;
//! - [`lock`]: the state directory lock shared by the daemon and `--standalone`;
//! - [`ownership`]: files written there stay the state directory owner's, whoever runs.

pub mod audit;
pub mod client;
pub mod lock;
pub mod ownership;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

/// Where the socket is when the configuration does not say.
pub fn default_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}
