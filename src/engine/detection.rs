//! From polls to a picture: each appliance's view, who is primary, and how long the primary
//! has been failing.

use std::time::SystemTime;

use super::action::Action;
use super::clock::since;
use super::machine::Engine;
use super::observation::{PollReport, Slot};
use super::streak::Streak;
use super::view::{ApplianceView, Condition};
use crate::api::model::FailoverRole;

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
        self.absorb_sync_reports(now, report, out);
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
        if self.streak.as_ref().is_some_and(|s| s.slot != primary) {
            // The streak was of another primary. Even when nothing is observed of the new one,
            // the old streak must end here: while it was not the primary its own polls (a
            // healthy answer, say) were never judged against it, so resuming it later would
            // join failures that a healthy poll separated.
            self.streak = None;
        }
        if !ApplianceView::observed(&report.appliances[primary]) {
            // Nothing was observed (our budget, 429, 401, 403): the streak neither grows nor
            // ends; its time is measured to the last poll that did observe the primary.
            return;
        }
        if !self.views[primary].failing() {
            self.streak = None;
            return;
        }
        let gap_limit = self.config.policy.failover_after;
        match &mut self.streak {
            // A gap without observations longer than the failure window breaks the streak:
            // what was seen before it cannot be joined with what is seen after.
            Some(streak) if streak.slot == primary && since(now, streak.last_seen) <= gap_limit => {
                streak.polls = streak.polls.saturating_add(1);
                streak.last_seen = now;
            }
            _ => {
                self.streak = Some(Streak {
                    slot: primary,
                    since: now,
                    last_seen: now,
                    polls: 1,
                });
                // Something looks wrong: corroborate soon rather than a poll interval later.
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
        // An answering appliance's role counts only if it reported it since it came back: a
        // role from before an outage says nothing about what it believes now.
        let says = |slot: Slot, role: FailoverRole| {
            let v = &self.views[slot];
            v.answering() && v.role_is_current() && v.role() == Some(role)
        };
        for slot in 0..2 {
            if says(slot, FailoverRole::None) {
                return Situation::NotInFailover(slot);
            }
        }
        let answering_primaries: Vec<Slot> =
            (0..2).filter(|&s| says(s, FailoverRole::Primary)).collect();
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

    /// The role an appliance holds now, as far as the engine knows: what the operator and the
    /// alert rules are shown. An answering appliance's role counts once it has reported it
    /// since it came back. One that does not answer keeps its last known role, except that a
    /// `primary` it reported before an answering peer took over is history, not its role now
    /// (else every failover whose old primary stays dead looks like a split brain).
    pub fn role_now(&self, slot: Slot) -> Option<FailoverRole> {
        let view = &self.views[slot];
        if view.answering() {
            return if view.role_is_current() {
                view.role()
            } else {
                None
            };
        }
        let role = view.role()?;
        let peer = &self.views[1 - slot];
        let superseded = role == FailoverRole::Primary
            && peer.answering()
            && peer.role_is_current()
            && peer.role() == Some(FailoverRole::Primary);
        (!superseded).then_some(role)
    }

    /// How old the last role seen for an appliance is (from itself or its peer's list).
    pub fn role_age(&self, slot: Slot, now: SystemTime) -> Option<std::time::Duration> {
        self.views[slot].role.map(|seen| since(now, seen.at))
    }

    /// The primary of a whole pair, when there is one.
    pub(super) fn current_primary(&self) -> Option<Slot> {
        match self.situation() {
            Situation::Pair { primary, .. } => Some(primary),
            _ => None,
        }
    }
}
