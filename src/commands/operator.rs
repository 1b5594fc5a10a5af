//! What every operator command shares when it talks to a running daemon over the control
//! socket, and `pause`, `resume` and `ack`, which only ever go through the daemon.

use std::time::Duration;

use super::exit::Exit;
use crate::config::Config;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Answer, Request};

/// How long the CLI waits for the daemon's answer to one request: longer than the daemon
/// waits for a site loop (twice 10 s) and than the control socket waits for the daemon (30 s),
/// so that the daemon, not the CLI, says what happened.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(35);

/// The login name of whoever runs the CLI (through sudo: the one who ran sudo).
pub fn local_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_default()
}

/// Sends a request and keeps the answer `wanted` accepts; anything else is printed and becomes
/// its exit code. `no_daemon` says what to do when no daemon listens.
pub(crate) async fn ask<T>(
    config: &Config,
    request: &Request,
    no_daemon: impl FnOnce(&ClientError) -> String,
    wanted: impl FnOnce(Answer) -> Result<T, Answer>,
) -> Result<T, Exit> {
    match client::send(&config.control_socket, request, ANSWER_TIMEOUT).await {
        Ok(Answer::Refused { message }) => {
            eprintln!("bt-watchdog: refused: {message}");
            Err(Exit::Refused)
        }
        Ok(answer) => wanted(answer).map_err(|other| {
            eprintln!("bt-watchdog: unexpected answer: {other:?}");
            Exit::NotDone
        }),
        Err(error @ ClientError::NoDaemon { .. }) => {
            eprintln!("bt-watchdog: {}", no_daemon(&error));
            Err(Exit::Unavailable)
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            Err(Exit::NotDone)
        }
    }
}

/// `pause`, `resume`, `ack`.
pub async fn simple(config: &Config, request: Request) -> Exit {
    let done = ask(
        config,
        &request,
        |error| format!("{error}; pause, resume and ack act on a running daemon"),
        |answer| match answer {
            Answer::Done { message } => Ok(message),
            other => Err(other),
        },
    )
    .await;
    match done {
        Ok(message) => {
            println!("{message}");
            Exit::Done
        }
        Err(exit) => exit,
    }
}

/// The site a command names, checked against the configuration before a daemon is asked.
pub fn check_site(config: &Config, site: &str) -> Result<(), String> {
    if config.sites.iter().any(|s| s.name == site) {
        return Ok(());
    }
    let names: Vec<&str> = config.sites.iter().map(|s| s.name.as_str()).collect();
    Err(format!(
        "no site named {site:?} in the configuration (it has: {})",
        names.join(", ")
    ))
}
