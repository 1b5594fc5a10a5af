//! What the engine is told: polls, answers to its calls, operator commands.

use crate::api::ErrorKind;
use crate::api::model::{ApplianceRecord, FailoverAccepted, Health, Probe};

/// Appliances are addressed by their position in the site's configuration (0 or 1).
pub type Slot = usize;

/// One polling cycle's results for one appliance. `None` means "not asked this cycle".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplianceReport {
    pub probe: Option<Result<Probe, ErrorKind>>,
    pub health: Option<Result<Health, ErrorKind>>,
    pub topology: Option<Result<Vec<ApplianceRecord>, ErrorKind>>,
}

/// One polling cycle of a site.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollReport {
    pub appliances: [ApplianceReport; 2],
}

/// How a failover call ended, as the actuator saw it.
#[derive(Debug, Clone, PartialEq)]
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
}

/// Operator commands (from the CLI through the daemon; with `[cluster]`, through etcd to the
/// instance that leads the site).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManualRequest {
    /// Correlates the preflight report and outcome with the request.
    pub request_id: u64,
    pub target: Slot,
    pub data_sync_first: bool,
    pub force: bool,
    pub confirmed: bool,
    pub override_preflight: bool,
    pub by: String,
}

// One input per poll or command: its size does not matter, boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
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
