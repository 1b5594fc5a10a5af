//! `bt-watchdog run`: the daemon in the foreground until SIGTERM or SIGINT.

use std::path::PathBuf;

use super::exit::Exit;
use crate::daemon::{self, ConfigSource, DaemonError};

pub async fn run(path: PathBuf) -> Exit {
    match daemon::run(ConfigSource::File(path)).await {
        Ok(()) => Exit::Done,
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            match error {
                DaemonError::Config(_) => Exit::Usage,
                _ => Exit::NotDone,
            }
        }
    }
}
