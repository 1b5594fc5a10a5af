//! One request, one answer, each a line of JSON.

use serde::{Deserialize, Serialize};

use crate::engine::PreflightReport;
use crate::exporter::status::SiteStatus;

/// A manual failover as the operator asked for it. The same value travels to a daemon over the
/// socket and to the in-process site of `failover --standalone`, so both read it alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    pub site: String,
    /// The appliance to make primary.
    pub to: String,
    pub data_sync_first: bool,
    pub force: bool,
    /// Ends a split brain: this appliance, which claims primary, is demoted (with force) and
    /// `to`, its peer, stays primary. Absent from ordinary failovers, so that a daemon that
    /// does not know it refuses the request (unknown field) rather than promoting `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demote: Option<String>,
    /// Carry the plan out; without it the engine only answers its preflight.
    pub confirm: bool,
    pub override_preflight: bool,
    /// The login name the CLI saw (`SUDO_USER` or `USER`); the daemon adds the uid it sees.
    pub user: String,
    /// With `confirm`: the plan the operator was shown and agreed to; the engine starts
    /// nothing if its plan is now a different one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_plan: Option<Vec<crate::engine::ShownCall>>,
}

impl FailoverRequest {
    /// The same request, carried out as `shown` (after the operator typed the site name).
    pub fn confirmed(&self, shown: Vec<crate::engine::ShownCall>) -> FailoverRequest {
        FailoverRequest {
            confirm: true,
            shown_plan: Some(shown),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Failover(FailoverRequest),
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
            Request::Failover(FailoverRequest { site, .. })
            | Request::Pause { site, .. }
            | Request::Resume { site, .. }
            | Request::Ack { site, .. }
            | Request::Status { site } => site,
        }
    }

    /// The login name the CLI saw, for the requests that change something.
    pub fn user(&self) -> &str {
        match self {
            Request::Failover(FailoverRequest { user, .. })
            | Request::Pause { user, .. }
            | Request::Resume { user, .. }
            | Request::Ack { user, .. } => user,
            Request::Status { .. } => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// The preflight and whether the plan was started.
    Preflight {
        /// Boxed: the other answers are small (the wire form is the same).
        report: Box<PreflightReport>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form stays what older CLIs and daemons send: one flat object with its tag.
    #[test]
    fn a_failover_request_is_one_flat_json_object() {
        let line = r#"{"command":"failover","site":"hq","to":"west","data_sync_first":true,"force":false,"confirm":false,"override_preflight":false,"user":"alice"}"#;
        let request: Request = serde_json::from_str(line).unwrap();
        assert_eq!(request.site(), "hq");
        assert_eq!(serde_json::to_string(&request).unwrap(), line);
        let unknown = line.replace("\"user\"", "\"extra\":1,\"user\"");
        assert!(serde_json::from_str::<Request>(&unknown).is_err());
    }
}

/// What the site loop answers an operator command (with `[cluster]`, also through etcd from
/// the leader to the instance the command was given to).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAnswer {
    /// A manual failover's preflight (and whether it started).
    Preflight(PreflightReport),
    /// A pause, resume or ack: what it did and what the site does now.
    Done(String),
    /// Not carried out, and why (with `[cluster]`: no instance leads the site, or etcd is out
    /// of reach).
    Refused(String),
}
