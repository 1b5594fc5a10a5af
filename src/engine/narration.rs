//! Explaining: the site's state, its alerts and the decision journal, each with its reason.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::action::{Action, AlertKind, Decision};
use super::machine::Engine;
use super::state::{SiteState, StateKind};
use crate::api::time::UtcTime;

/// How many journal entries the engine keeps for `/status`.
const JOURNAL_KEPT: usize = 20;

impl Engine {
    pub(super) fn set_state(&mut self, now: SystemTime, state: SiteState, out: &mut Vec<Action>) {
        let changed = state.kind != self.state.kind || state.blocker != self.state.blocker;
        if changed {
            let decision = Decision {
                at: UtcTime::from_system_time(now),
                state: state.kind,
                message: state.reason.clone(),
                warning: false,
            };
            self.remember(decision.clone());
            out.push(Action::Journal(decision));
        }
        self.state = state;
    }

    pub(super) fn update_alerts(&mut self, out: &mut Vec<Action>) {
        let mut wanted: BTreeMap<AlertKind, String> = BTreeMap::new();
        let reason = self.state.reason.clone();
        match self.state.kind {
            StateKind::SplitBrain => {
                wanted.insert(AlertKind::SplitBrain, reason.clone());
            }
            StateKind::NoPrimary => {
                wanted.insert(AlertKind::NoPrimary, reason.clone());
            }
            StateKind::Blind => {
                wanted.insert(AlertKind::Blind, reason.clone());
            }
            StateKind::NotInFailover => {
                wanted.insert(AlertKind::NotInFailover, reason.clone());
            }
            StateKind::FailoverBlocked => {
                wanted.insert(AlertKind::FailoverBlocked, reason.clone());
            }
            _ => {}
        }
        if self.memory.gave_up.is_some() {
            wanted.insert(AlertKind::FailoverFailed, reason);
        }
        for (alert, reason) in &wanted {
            if !self.alerts.contains_key(alert) {
                out.push(Action::Alert {
                    alert: *alert,
                    raised: true,
                    reason: reason.clone(),
                });
            }
        }
        for (alert, reason) in &self.alerts {
            if !wanted.contains_key(alert) {
                out.push(Action::Alert {
                    alert: *alert,
                    raised: false,
                    reason: reason.clone(),
                });
            }
        }
        self.alerts = wanted;
    }

    pub(super) fn note(&mut self, now: SystemTime, out: &mut Vec<Action>, message: String) {
        self.journal_entry(now, out, message, false);
    }

    /// A note about something that went wrong (a failed attempt), logged at WARN.
    pub(super) fn warn(&mut self, now: SystemTime, out: &mut Vec<Action>, message: String) {
        self.journal_entry(now, out, message, true);
    }

    fn journal_entry(
        &mut self,
        now: SystemTime,
        out: &mut Vec<Action>,
        message: String,
        warning: bool,
    ) {
        let decision = Decision {
            at: UtcTime::from_system_time(now),
            state: self.state.kind,
            message,
            warning,
        };
        self.remember(decision.clone());
        out.push(Action::Journal(decision));
    }

    pub(super) fn remember(&mut self, decision: Decision) {
        if self.journal.len() >= JOURNAL_KEPT {
            self.journal.pop_front();
        }
        self.journal.push_back(decision);
    }
}
