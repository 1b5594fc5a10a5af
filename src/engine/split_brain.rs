//! Both appliances report primary: fence the stale one when this watchdog made the other
//! primary, otherwise alert and wait for a human.

use std::time::SystemTime;

use super::action::Action;
use super::episode::Step;
use super::episode_runner::EpisodeStart;
use super::machine::Engine;
use super::memory::Purpose;
use super::memory::Trigger;
use super::state::{SiteState, StateKind};

impl Engine {
    pub(super) fn split_brain(&mut self, now: SystemTime, out: &mut Vec<Action>) -> SiteState {
        let names = self.config.names.clone();
        let promoted = self
            .memory
            .promoted
            .clone()
            .and_then(|name| names.iter().position(|n| *n == name));
        let Some(ours) = promoted else {
            return SiteState::new(
                StateKind::SplitBrain,
                format!(
                    "both {} and {} report primary and this watchdog did not promote either: a human must choose (the appliance's own fix keeps the one holding the shared IP or DNS name)",
                    names[0], names[1]
                ),
            );
        };
        let stale = 1 - ours;
        let intent = format!("demote {} (role=backup, force=true)", names[stale]);
        let base = format!(
            "both appliances report primary; {} was promoted by this watchdog, {} is the old primary back",
            names[ours], names[stale]
        );
        // Fencing the stale primary completes the failover this watchdog made; it is not a new
        // failover, so the cooldown does not hold it back.
        if let Some((_, why)) = self.policy_hold(now, &intent, false) {
            return SiteState::new(StateKind::SplitBrain, format!("{base}; {why}"));
        }
        let plan = vec![Step::demote(stale, true)];
        self.start_episode(
            now,
            EpisodeStart {
                purpose: Purpose::DemoteStale,
                trigger: Trigger::Auto,
                from: Some(stale),
                target: ours,
                plan,
                reason: format!("{base}; {intent}"),
                overridden: false,
            },
            out,
        )
    }
}
