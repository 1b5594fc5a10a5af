//! The subcommands, as library functions that return their [`exit::Exit`]: `main.rs` only
//! parses arguments and calls them.
//!
//! - [`run`]: the daemon in the foreground;
//! - [`failover`]: a manual failover, through the daemon or standalone;
//! - [`operator`]: `pause`, `resume`, `ack`, and what every command that talks to the daemon
//!   shares;
//! - [`alerts`]: the shipped alert rules with the installation's runbook and dashboard links;
//! - [`manpage`]: one man page for every subcommand;
//! - [`journal`]: the decision journal, readably; [`replay`]: the journal through the engine
//!   with another policy;
//! - [`check_config`], [`status`], [`healthcheck`], [`simulate`], [`demo`].

pub mod alerts;
pub mod check_config;
pub mod demo;
pub mod exit;
pub mod failover;
pub mod healthcheck;
pub mod journal;
pub mod manpage;
pub mod operator;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod status;

/// The configuration a command needs; one that cannot be loaded is printed and is a usage
/// error.
pub fn load_config(path: &std::path::Path) -> Result<crate::config::Config, exit::Exit> {
    crate::config::load(path).map_err(|error| {
        eprintln!("bt-watchdog: {error}");
        exit::Exit::Usage
    })
}

/// Waits for the signal that stops a command running in the foreground.
pub async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let context = |name: &str, error: std::io::Error| {
        std::io::Error::new(error.kind(), format!("cannot listen for {name}: {error}"))
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| context("SIGTERM", e))?;
    tokio::select! {
        // SIGINT - Ctrl-C at a terminal.
        result = tokio::signal::ctrl_c() => result.map_err(|e| context("SIGINT", e))?,
        // SIGTERM - sent by a supervisor or a test harness to stop.
        _ = terminate.recv() => {}
    }
    Ok(())
}
