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
    /// sysexits.h EX_NOPERM: the daemon answers but refuses who asks (the exporter's basic
    /// auth).
    Unauthorized = 77,
}

impl Exit {
    /// Every exit code with its meaning, as `--help`, the man page and the README show it.
    pub const TABLE: &'static str = "Exit codes:
  0  done (a dry run whose preflight passed, a command carried out, a failover verified)
  1  not done or not known to be done (an error, a cancel, a failover still in progress)
  3  refused (by the preflight or the daemon); nothing was changed
  4  a failover was carried out and failed
  64 usage: a command line or configuration that cannot be used (an unknown site, contradictory options)
  69 unavailable: no daemon answers, or it went away while a failover was followed
  77 unauthorized: the exporter answers but refuses the credentials (status)";

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
