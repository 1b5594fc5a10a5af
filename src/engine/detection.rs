//! From polls to a picture: each appliance's view, who is primary, and how long the primary
//! has been failing.

use std::time::{Duration, SystemTime};

use super::action::Action;
use super::machine::Engine;
use super::observation::{PollReport, Slot};
use super::streak::Streak;
use super::view::{ApplianceView, Condition};
use crate::api::model::FailoverRole;

/// A reported sync time further in the future than this is not believed (clock skew would
/// otherwise make stale data look fresh forever).
const MAX_SYNC_SKEW: Duration = Duration::from_secs(300);

/// The shape of the pair, before any policy is applied.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Situation {
    Blind,
    NotInFailover(Slot),
    RolesUnknown,
    SplitBrain,
    NoPrimary,
    Pair { primary: Slot, backup: Slot },
}

impl Engine {
    pub(super) fn absorb(&mut self, now: SystemTime, report: &PollReport, out: &mut Vec<Action>) {
        for slot in 0..2 {
            let appliance = &report.appliances[slot];
            self.views[slot].absorb(appliance, now);
            if self.views[slot].came_back(now) {
                // Back after a silence: learn what it believes now, without waiting.
                out.push(Action::PollSoon);
            }
        }
        // A peer's list tells the role of an appliance that cannot tell it itself this cycle.
        for slot in 0..2 {
            let other = 1 - slot;
            let other_spoke = matches!(report.appliances[other].health, Some(Ok(_)));
            if let Some(Ok(records)) = &report.appliances[slot].topology
                && !other_spoke
            {
                let peer = self.views[slot].clone();
                self.views[other].learn_from_peer(records, &peer, now);
            }
        }
        // Only a sync time in this very answer, from an appliance saying in it that it is the
        // primary, counts: a remembered value must not be re-read later as if it were news.
        for appliance in &report.appliances {
            let Some(Ok(health)) = &appliance.health else {
                continue;
            };
            let base = health.base();
            let (Some(FailoverRole::Primary), Some(reported)) =
                (base.failover_role, base.last_data_sync)
            else {
                continue;
            };
            let believable = reported.to_system_time() <= now + MAX_SYNC_SKEW;
            if believable
                && self
                    .memory
                    .last_data_sync
                    .is_none_or(|known| reported > known)
            {
                self.memory.last_data_sync = Some(reported);
                out.push(Action::Persist(self.memory.clone()));
            }
        }
        self.update_streak(now, report, out);
    }

    pub(super) fn update_streak(
        &mut self,
        now: SystemTime,
        report: &PollReport,
        out: &mut Vec<Action>,
    ) {
        let Situation::Pair { primary, .. } = self.situation() else {
            self.streak = None;
            return;
        };
        if !ApplianceView::report_has_evidence(&report.appliances[primary]) {
            return;
        }
        if !self.views[primary].failing() {
            self.streak = None;
            return;
        }
        match &mut self.streak {
            Some(streak) if streak.slot == primary => streak.polls += 1,
            _ => {
                self.streak = Some(Streak {
                    slot: primary,
                    since: now,
                    polls: 1,
                });
                // Something looks wrong: corroborate now rather than a poll interval later.
                out.push(Action::PollSoon);
            }
        }
    }

    /// Who is primary, from what each appliance says (or, if it cannot, what its peer says).
    pub(super) fn situation(&self) -> Situation {
        let [a, b] = &self.views;
        if matches!(a.condition, Condition::Down { .. })
            && matches!(b.condition, Condition::Down { .. })
        {
            return Situation::Blind;
        }
        for slot in 0..2 {
            if self.views[slot].answering() && self.views[slot].role() == Some(FailoverRole::None) {
                return Situation::NotInFailover(slot);
            }
        }
        let answering_primaries: Vec<Slot> = (0..2)
            .filter(|&s| {
                self.views[s].answering() && self.views[s].role() == Some(FailoverRole::Primary)
            })
            .collect();
        match answering_primaries.as_slice() {
            [_, _] => return Situation::SplitBrain,
            [p] => {
                return Situation::Pair {
                    primary: *p,
                    backup: 1 - p,
                };
            }
            _ => {}
        }
        let known_primaries: Vec<Slot> = (0..2)
            .filter(|&s| {
                !self.views[s].answering() && self.views[s].role() == Some(FailoverRole::Primary)
            })
            .collect();
        if let [p] = known_primaries.as_slice() {
            return Situation::Pair {
                primary: *p,
                backup: 1 - p,
            };
        }
        if a.role() == Some(FailoverRole::Backup) && b.role() == Some(FailoverRole::Backup) {
            return Situation::NoPrimary;
        }
        Situation::RolesUnknown
    }

    /// The primary of a whole pair, when there is one.
    pub(super) fn current_primary(&self) -> Option<Slot> {
        match self.situation() {
            Situation::Pair { primary, .. } => Some(primary),
            _ => None,
        }
    }
}
