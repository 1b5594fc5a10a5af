//! What the engine is told: polls, answers to its calls, operator commands.

use serde::{Deserialize, Serialize};

use crate::api::ErrorKind;
use crate::api::model::{
    ApplianceRecord, ClientCounts, FailoverAccepted, FailoverRequest, Health, Probe,
};

/// Appliances are addressed by their position in the site's configuration (0 or 1).
pub type Slot = usize;

/// One polling cycle's results for one appliance. `None` means "not asked this cycle".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplianceReport {
    pub probe: Option<Result<Probe, ErrorKind>>,
    pub health: Option<Result<Health, ErrorKind>>,
    pub topology: Option<Result<Vec<ApplianceRecord>, ErrorKind>>,
    /// Connected clients (`/appliance/client-count`), when asked this cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Result<ClientCounts, ErrorKind>>,
}

/// One polling cycle of a site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollReport {
    pub appliances: [ApplianceReport; 2],
}

/// How a failover call ended, as the actuator saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Accepted(FailoverAccepted),
    Failed {
        kind: ErrorKind,
        message: String,
    },
    /// The call was never sent: the daemon could not write its intent durably first (no call
    /// goes out without one). Not a failed attempt: nothing reached an appliance.
    NotSent {
        reason: String,
    },
    /// The call never left the watchdog (a token could not be had in time): the appliance did
    /// not see it. The attempt still failed, but no failover was carried out, well or badly.
    NeverLeft {
        kind: ErrorKind,
        message: String,
    },
    /// The pre-failover hook vetoed the call (or did not answer, with `on_timeout = "abort"`):
    /// it was never sent.
    Vetoed {
        reason: String,
    },
}

/// The pre-failover hook's answer to a manual failover, for its preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookAnswer {
    /// It agrees (or did not answer, with `on_timeout = "proceed"`); in words.
    Proceed { detail: String },
    /// It vetoes, and why.
    Veto { reason: String },
}

/// Operator commands (from the CLI through the daemon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Pause {
        reason: String,
        by: String,
    },
    Resume {
        by: String,
    },
    /// End a cooldown (and a "retries exhausted" block) early.
    Acknowledge {
        reason: String,
        by: String,
    },
    /// A manual failover: promote `target`. Without `confirmed` it only runs the preflight.
    Failover(ManualRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualRequest {
    /// Correlates the preflight report and outcome with the request.
    pub request_id: u64,
    pub target: Slot,
    pub data_sync_first: bool,
    pub force: bool,
    /// Ends a split brain instead: `target` stays primary and its peer, which claims primary
    /// too, is demoted (with force).
    pub demote_peer: bool,
    pub confirmed: bool,
    pub override_preflight: bool,
    pub by: String,
    /// The plan the operator confirmed, when one was shown: a confirmation is for exactly
    /// that plan, and a different one is not started.
    pub shown_plan: Option<Vec<ShownCall>>,
    /// The pre-failover hook's answer, when one is configured (the daemon asks it first).
    #[serde(default)]
    pub hook: Option<HookAnswer>,
}

// One input per poll or command: its size does not matter, boxing would only add noise.
#[allow(clippy::large_enum_variant)]
/// Serializable so that the journal records exactly what the engine was given, and replay
/// gives a new engine the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Time passed and nothing new was observed: the driver sends it at `Engine::next_wakeup`,
    /// so deadlines, retries and the ends of cooldowns act on time rather than at the next poll.
    Tick,
    Poll(PollReport),
    CallResult {
        call_id: u64,
        result: CallResult,
    },
    Command(Command),
}

/// One call of a plan as the operator was shown it: what a confirmation agrees to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownCall {
    pub appliance: String,
    pub request: FailoverRequest,
}
