//! A failover in progress: its plan (one or two calls), which call it is on, and how each
//! call's effect is verified.

use std::time::SystemTime;

use serde::Serialize;

use super::memory::Trigger;
use super::observation::Slot;
use super::view::ApplianceView;
use crate::api::model::{FailoverRequest, FailoverRole};

/// What an episode is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Make `target` the primary.
    Promote,
    /// End a split brain the watchdog caused, by demoting the stale primary.
    DemoteStale,
}

/// One call and the effect that proves it worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub appliance: Slot,
    pub request: FailoverRequest,
}

impl Step {
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
    /// The call succeeded; the roles are expected to change by `deadline`.
    Converging {
        #[serde(skip)]
        since: SystemTime,
        #[serde(skip)]
        deadline: SystemTime,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    pub purpose: Purpose,
    pub trigger: Trigger,
    pub from: Option<Slot>,
    pub target: Slot,
    pub plan: Vec<Step>,
    pub step: usize,
    pub phase: Phase,
    pub reason: String,
    pub overridden: bool,
}

impl Episode {
    pub fn current(&self) -> Option<&Step> {
        self.plan.get(self.step)
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
