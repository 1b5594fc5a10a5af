//! One line of the journal, typed.
//!
//! A `step` line holds the input the engine was given (with its `now`, to the nanosecond) and
//! every action it answered with, so that replay gives a fresh engine exactly the same and
//! compares what comes out. `start` and `reconfigure` lines hold the configuration (names,
//! mode, policy) and, for `start`, the memory the engine began with; `checkpoint` lines open
//! each rotated file with the latest of both, so that a file on its own can be replayed.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::api::model::FailoverRequest;
use crate::api::time::UtcTime;
use crate::engine::{Action, Input, Memory, SiteConfig};

/// The journal's format version; a reader refuses lines from a newer one by name.
pub const JOURNAL_VERSION: u32 = 1;

/// One line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// When, readably (UTC, RFC 3339).
    pub at: UtcTime,
    /// When, exactly: nanoseconds since the Unix epoch (the engine's `now`).
    pub ns: u64,
    pub site: String,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// The daemon started this site's engine with this configuration and memory.
    Start { config: SiteConfig, memory: Memory },
    /// The configuration was reloaded; memory and observations carry on.
    Reconfigure { config: SiteConfig },
    /// The first line of a rotated file: the latest configuration and persisted memory.
    Checkpoint { config: SiteConfig, memory: Memory },
    /// One engine step.
    Step(Step),
    /// Lines that could not be handed to the writer (its queue was full): replay across this
    /// point is not exact.
    Gap { lost: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What the engine was given; absent when `repeat` says it was the same poll as the
    /// previous full one in this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
    /// Everything the engine answered, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionRecord>,
    /// The site's state after the step.
    pub state: String,
}

/// An engine action as the journal keeps it: for reading and for replay's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionRecord {
    /// A state change or a decision, with its reasons.
    Decision {
        state: String,
        message: String,
    },
    /// `POST /failover-role`.
    Call {
        call_id: u64,
        appliance: String,
        request: FailoverRequest,
        trigger: String,
        reason: String,
    },
    /// A failover ended.
    Finished {
        trigger: String,
        outcome: String,
        from: Option<String>,
        to: String,
        reason: String,
    },
    Alert {
        alert: String,
        raised: bool,
        reason: String,
    },
    /// The memory written to the state file.
    Persist {
        memory: Box<Memory>,
    },
    /// The answer to a manual failover request.
    Preflight {
        report: Box<crate::engine::PreflightReport>,
    },
    PollSoon,
    /// What an operator command did, in words.
    CommandDone {
        message: String,
    },
}

impl ActionRecord {
    pub fn from_action(action: &Action) -> ActionRecord {
        match action {
            Action::Journal(decision) => ActionRecord::Decision {
                state: decision.state.as_str().to_string(),
                message: decision.message.clone(),
            },
            Action::CallFailover(call) => ActionRecord::Call {
                call_id: call.call_id,
                appliance: call.appliance_name.clone(),
                request: call.request,
                trigger: call.trigger.as_str().to_string(),
                reason: call.reason.clone(),
            },
            Action::FailoverFinished(summary) => ActionRecord::Finished {
                trigger: summary.trigger.as_str().to_string(),
                outcome: summary.outcome.as_str().to_string(),
                from: summary.from.clone(),
                to: summary.to.clone(),
                reason: summary.reason.clone(),
            },
            Action::Alert {
                alert,
                raised,
                reason,
            } => ActionRecord::Alert {
                alert: alert.as_str().to_string(),
                raised: *raised,
                reason: reason.clone(),
            },
            Action::Persist(memory) => ActionRecord::Persist {
                memory: Box::new(memory.clone()),
            },
            Action::Preflight(report) => ActionRecord::Preflight {
                report: Box::new(report.clone()),
            },
            Action::PollSoon => ActionRecord::PollSoon,
            Action::CommandDone(message) => ActionRecord::CommandDone {
                message: message.clone(),
            },
        }
    }
}

impl Record {
    pub fn new(site: &str, now: SystemTime, body: Body) -> Record {
        Record {
            v: JOURNAL_VERSION,
            at: UtcTime::from_system_time(now),
            ns: nanos(now),
            site: site.to_string(),
            body,
        }
    }

    /// The engine's `now` for this line, exactly.
    pub fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.ns)
    }
}

/// Nanoseconds since the epoch; 0 before it, saturating in the year 2554.
pub fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
