//! What the engine asks the world to do.

use serde::{Deserialize, Serialize};

use super::memory::{Memory, Outcome, Trigger};
use super::observation::Slot;
use super::state::StateKind;
use crate::api::model::FailoverRequest;
use crate::api::time::UtcTime;

// A handful of actions per step: boxing the memory would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call `POST /failover-role` on `appliance`; answer with `Input::CallResult(call_id)`.
    CallFailover(FailoverCall),
    /// Poll both appliances soon instead of waiting for the next cycle: as soon as half a poll
    /// interval has passed since the last poll started (corroboration, convergence).
    PollSoon,
    /// An alert condition started (`raised`) or ended.
    Alert {
        alert: AlertKind,
        raised: bool,
        reason: String,
    },
    /// The persisted memory changed; write this copy.
    Persist(Memory),
    /// A failover (all its calls) ended.
    FailoverFinished(FailoverSummary),
    /// The answer to a manual failover request.
    Preflight(PreflightReport),
    /// A line for the decision journal: every state change and every decision, with its reason.
    Journal(Decision),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverCall {
    pub call_id: u64,
    pub appliance: Slot,
    pub appliance_name: String,
    pub request: FailoverRequest,
    pub trigger: Trigger,
    pub reason: String,
    /// The first call of an automatic failover: the pre-failover hook is asked, and may veto
    /// it (answered with `CallResult::Vetoed`).
    pub vetoable: bool,
    /// The first call of a failover (automatic or manual): the decision was just taken.
    pub first: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverSummary {
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    SplitBrain,
    NoPrimary,
    Blind,
    FailoverBlocked,
    FailoverFailed,
    NotInFailover,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::SplitBrain => "split_brain",
            AlertKind::NoPrimary => "no_primary",
            AlertKind::Blind => "blind",
            AlertKind::FailoverBlocked => "failover_blocked",
            AlertKind::FailoverFailed => "failover_failed",
            AlertKind::NotInFailover => "not_in_failover",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightReport {
    pub request_id: u64,
    pub passed: bool,
    /// Every failed check, in words.
    pub problems: Vec<String>,
    /// Things worth knowing that do not refuse the request (cooldown, pause, mode).
    pub notes: Vec<String>,
    /// The calls that will be made, in order.
    pub plan: Vec<PlannedCall>,
    /// Who the failover disconnects: the clients last counted on the current primary.
    #[serde(default)]
    pub impact: Option<Box<super::impact::Impact>>,
    /// Whether the plan was started (confirmed, and passed or overridden).
    pub started: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCall {
    pub appliance: String,
    pub request: FailoverRequest,
    pub effect: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub at: UtcTime,
    pub state: StateKind,
    pub message: String,
}
