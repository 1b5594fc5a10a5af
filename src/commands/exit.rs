//! The exit codes of every command, in one table, so that scripts can tell the outcomes apart.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done (a dry run whose preflight passed counts as done).
    Done = 0,
    /// Not done, or not known to be done: an error, a cancel, a failover still in progress.
    NotDone = 1,
    /// The preflight or the daemon refused (dry run or confirmed).
    Refused = 3,
    /// A failover was carried out and failed.
    Failed = 4,
    /// sysexits.h EX_USAGE: a configuration or command line that cannot be used.
    Usage = 64,
    /// sysexits.h EX_UNAVAILABLE: no daemon answers.
    Unavailable = 69,
}

impl Exit {
    /// For the commands whose only failures are in what they were given (`simulate`, `demo`):
    /// the error is printed and is a usage error.
    pub fn done_or_usage<E: std::fmt::Display>(result: Result<(), E>) -> Exit {
        match result {
            Ok(()) => Exit::Done,
            Err(error) => {
                eprintln!("bt-watchdog: {error}");
                Exit::Usage
            }
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}
