//! One request, one answer, each a line of JSON.

use serde::{Deserialize, Serialize};

use crate::engine::PreflightReport;
use crate::exporter::status::SiteStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Failover {
        site: String,
        to: String,
        data_sync_first: bool,
        force: bool,
        confirm: bool,
        override_preflight: bool,
        /// The login name the CLI saw (`SUDO_USER` or `USER`); the daemon adds the uid it sees.
        user: String,
    },
    Pause {
        site: String,
        reason: String,
        user: String,
    },
    Resume {
        site: String,
        user: String,
    },
    Ack {
        site: String,
        reason: String,
        user: String,
    },
    Status {
        site: String,
    },
}

impl Request {
    pub fn site(&self) -> &str {
        match self {
            Request::Failover { site, .. }
            | Request::Pause { site, .. }
            | Request::Resume { site, .. }
            | Request::Ack { site, .. }
            | Request::Status { site } => site,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// The preflight and whether the plan was started.
    Preflight {
        report: PreflightReport,
        mode: String,
    },
    /// A pause, resume or ack was applied.
    Done {
        message: String,
    },
    Status {
        status: Box<SiteStatus>,
    },
    Refused {
        message: String,
    },
}
