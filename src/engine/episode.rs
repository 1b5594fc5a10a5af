//! A failover in progress: its plan (one or two calls), which call it is on, and how each
//! call's effect is verified.

use std::time::SystemTime;

use serde::Serialize;

use super::memory::{EpisodeRecord, Purpose, RecordedStep, RetrySeries, Trigger};
use super::observation::Slot;
use super::view::ApplianceView;
use crate::api::model::{FailoverRequest, FailoverRole};
use crate::api::time::UtcTime;

/// One call and the effect that proves it worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub appliance: Slot,
    pub request: FailoverRequest,
}

impl Step {
    /// Whether the roles, reported since `since`, show that this step's call was never
    /// received: neither its effect nor a swap under way, with both roles freshly known (or the
    /// peer silent).
    pub fn not_received(&self, views: &[ApplianceView; 2], since: SystemTime) -> bool {
        let me = &views[self.appliance];
        let other = &views[1 - self.appliance];
        let fresh_role = |v: &ApplianceView| v.role.filter(|r| r.at >= since).map(|r| r.role);
        let Some(mine) = fresh_role(me) else {
            return false;
        };
        let theirs = fresh_role(other);
        let swapping = mine == FailoverRole::Backup && theirs == Some(FailoverRole::Backup);
        let peer_known = theirs.is_some() || !other.answering();
        mine != self.request.role && !swapping && peer_known
    }

    pub fn promote(appliance: Slot, data_sync_first: bool) -> Self {
        Step {
            appliance,
            request: FailoverRequest {
                role: FailoverRole::Primary,
                data_sync_first,
                force: false,
            },
        }
    }

    pub fn demote(appliance: Slot, force: bool) -> Self {
        Step {
            appliance,
            request: FailoverRequest {
                role: FailoverRole::Backup,
                data_sync_first: false,
                force,
            },
        }
    }

    /// Whether the roles now show this step's effect. Roles seen before `since` do not count.
    pub fn converged(&self, views: &[ApplianceView; 2], since: SystemTime) -> bool {
        let me = &views[self.appliance];
        let other = &views[1 - self.appliance];
        let fresh_role = |v: &ApplianceView| v.role.filter(|r| r.at >= since).map(|r| r.role);
        match self.request.role {
            FailoverRole::Primary => {
                fresh_role(me) == Some(FailoverRole::Primary)
                    && (!other.answering() || fresh_role(other) == Some(FailoverRole::Backup))
            }
            FailoverRole::Backup => fresh_role(me) == Some(FailoverRole::Backup),
            FailoverRole::None => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The call was handed to the actuator; its answer is awaited.
    AwaitingAnswer {
        call_id: u64,
        #[serde(skip)]
        sent_at: SystemTime,
    },
    /// The call succeeded (or, after a restart, may have been sent); the roles are expected to
    /// change by `deadline`.
    Converging {
        #[serde(skip)]
        since: SystemTime,
        #[serde(skip)]
        deadline: SystemTime,
    },
    /// A later step failed after earlier ones had already changed the roles (the old primary
    /// was fenced): the episode owns the state it made and sends the step again at `at`.
    RetryAt {
        #[serde(skip)]
        at: SystemTime,
    },
    /// Restored from memory after a restart; becomes `Verifying` at the first step.
    Resuming,
    /// After a restart: the step's call may or may not have left before the crash. The roles
    /// tell: its effect (or a swap under way) means it was received; roles freshly reported
    /// at `check_at` that show neither mean it never left, and it is sent then, once.
    Verifying {
        #[serde(skip)]
        since: SystemTime,
        #[serde(skip)]
        check_at: SystemTime,
        #[serde(skip)]
        deadline: SystemTime,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// Names the episode in the journal, the log and the state file (its start, in ms).
    pub id: u64,
    pub purpose: Purpose,
    pub trigger: Trigger,
    pub from: Option<Slot>,
    pub target: Slot,
    pub plan: Vec<Step>,
    pub step: usize,
    pub phase: Phase,
    pub reason: String,
    pub overridden: bool,
    /// Failed attempts within this episode.
    pub attempts: u32,
    /// The step that may have been in flight when the watchdog restarted: verified, never
    /// sent again (a second call for the same failure is what the intent record prevents).
    pub resumed_step: Option<usize>,
    #[serde(skip)]
    pub started_at: SystemTime,
    /// Who held the authority to fence before this episode took it: handed back if the
    /// episode fails without its target becoming primary.
    pub promoted_before: Option<String>,
    /// What the memory held before this episode's intent, while none of its calls has been
    /// sent: a first call that could not be sent (its intent was not written) is undone as if
    /// the episode never started, so that no cooldown or fencing authority outlives it.
    #[serde(skip)]
    pub undo: Option<IntentUndo>,
    /// Whether any call of this episode (or of the attempts before it) reached an appliance:
    /// when none did, a failure is counted as `not_sent`, not as a failed failover.
    pub sent_any: bool,
    /// Each appliance's count of role reports when the episode started: "its target reported
    /// primary since" is told by order of events, not by a wall clock that may step.
    #[serde(skip)]
    pub roles_reported_at_start: [u64; 2],
}

/// The parts of the memory an episode's intent changes before its first call.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentUndo {
    pub cooldown_until: Option<UtcTime>,
    pub promoted: Option<String>,
    pub retries: Option<RetrySeries>,
}

impl Episode {
    pub fn current(&self) -> Option<&Step> {
        self.plan.get(self.step)
    }

    /// A plan that only demotes (an operator ending a split brain): its target was primary
    /// before it started.
    pub fn demotes_only(&self) -> bool {
        !self.plan.is_empty()
            && self
                .plan
                .iter()
                .all(|step| step.request.role == FailoverRole::Backup)
    }

    /// The intent as the state file keeps it (appliances by name, so that a reordered
    /// configuration cannot change its meaning).
    pub(super) fn record(&self, names: &[String; 2]) -> EpisodeRecord {
        EpisodeRecord {
            id: self.id,
            purpose: self.purpose,
            trigger: self.trigger,
            from: self.from.map(|s| names[s].clone()),
            target: names[self.target].clone(),
            plan: self
                .plan
                .iter()
                .map(|s| RecordedStep {
                    appliance: names[s.appliance].clone(),
                    request: s.request,
                })
                .collect(),
            step: self.step,
            attempts: self.attempts,
            reason: self.reason.clone(),
            overridden: self.overridden,
            started_at: UtcTime::from_system_time(self.started_at),
            promoted_before: self.promoted_before.clone(),
        }
    }

    /// An episode restored from its record; `None` when it names an appliance that is no
    /// longer configured (the caller says so).
    pub(super) fn restore(record: &EpisodeRecord, names: &[String; 2]) -> Option<Episode> {
        let slot = |name: &str| names.iter().position(|n| n == name);
        let plan = record
            .plan
            .iter()
            .map(|s| {
                slot(&s.appliance).map(|appliance| Step {
                    appliance,
                    request: s.request,
                })
            })
            .collect::<Option<Vec<Step>>>()?;
        let from = match &record.from {
            Some(name) => Some(slot(name)?),
            None => None,
        };
        Some(Episode {
            id: record.id,
            purpose: record.purpose,
            trigger: record.trigger,
            from,
            target: slot(&record.target)?,
            step: record.step.min(plan.len().saturating_sub(1)),
            plan,
            phase: Phase::Resuming,
            reason: record.reason.clone(),
            overridden: record.overridden,
            attempts: record.attempts,
            resumed_step: Some(record.step),
            started_at: record.started_at.to_system_time(),
            promoted_before: record.promoted_before.clone(),
            undo: None,
            // Its call may have gone out before the restart.
            sent_any: true,
            // A fresh process has seen no role yet: every report it gets is since the start.
            roles_reported_at_start: [0, 0],
        })
    }
}
pub(super) fn describe_step(step: &Step, names: &[String; 2]) -> String {
    let name = &names[step.appliance];
    let r = step.request;
    format!(
        "{}: role={}, data_sync_first={}, force={}",
        name, r.role, r.data_sync_first, r.force
    )
}

pub(super) fn describe_plan(plan: &[Step], names: &[String; 2]) -> String {
    let parts: Vec<String> = plan
        .iter()
        .map(
            |s| match (s.request.role, s.request.data_sync_first, s.request.force) {
                (FailoverRole::Primary, true, _) => format!(
                    "switch over gracefully to {} (data_sync_first)",
                    names[s.appliance]
                ),
                (FailoverRole::Primary, false, _) => format!("promote {}", names[s.appliance]),
                (FailoverRole::Backup, _, true) => {
                    format!("demote {} with force", names[s.appliance])
                }
                (FailoverRole::Backup, _, false) => format!("demote {}", names[s.appliance]),
                (FailoverRole::None, _, _) => "do nothing".to_string(),
            },
        )
        .collect();
    parts.join(", then ")
}
