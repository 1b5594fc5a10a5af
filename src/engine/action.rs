//! What the engine asks the world to do.

use serde::{Deserialize, Serialize};

use super::memory::{Memory, Outcome, Trigger};
use super::observation::{ShownCall, Slot};
use super::state::StateKind;
use crate::api::model::ClientCounts;
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
    /// The answer to a pause, resume or acknowledge: what it did (or why it did nothing), in
    /// words for the operator who asked.
    CommandDone(String),
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
    /// Whether any call of the failover left the watchdog. A failure whose calls were all
    /// held back here (no token) is counted apart from failovers the appliances refused.
    pub sent: bool,
}

impl FailoverSummary {
    /// The `outcome` label of `beyondtrust_watchdog_failovers_total`.
    pub fn metric_outcome(&self) -> &'static str {
        match (self.outcome, self.sent) {
            (Outcome::Failure, false) => "not_sent",
            (outcome, _) => outcome.as_str(),
        }
    }
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
    pub impact: Option<Box<Impact>>,
    /// Whether the plan was started (confirmed, and passed or overridden).
    pub started: bool,
    /// The confirmation named a plan that is no longer the plan (the picture changed after it
    /// was shown): nothing was started, and this report's plan is to be shown again.
    #[serde(default)]
    pub plan_changed: bool,
    /// The episode that carries the plan out, when it started: how to follow it.
    #[serde(default)]
    pub episode: Option<u64>,
    /// Refused for a reason no `override_preflight` sets aside (a demotion that would not end
    /// a split brain), so the operator is not offered the override.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_overridable: bool,
}

impl PreflightReport {
    /// The plan as the operator sees it, for a confirmation to name.
    pub fn shown(&self) -> Vec<ShownCall> {
        self.plan
            .iter()
            .map(|call| ShownCall {
                appliance: call.appliance.clone(),
                request: call.request,
            })
            .collect()
    }
}

/// The clients connected to the appliance a failover takes the primary role from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub appliance: String,
    /// Per client type, as the API names them.
    pub clients: ClientCounts,
    pub representatives: u64,
    /// When they were counted.
    pub counted_at: UtcTime,
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
    /// Something went wrong that an operator should see without looking (a failed attempt):
    /// logged at WARN rather than INFO.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}
