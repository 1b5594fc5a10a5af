//! The decision: from the picture of the pair to a state, and to a failover when one is
//! needed and nothing holds it back.

use std::time::{Duration, SystemTime};

use super::action::Action;
use super::clock::since;
use super::detection::Situation;
use super::episode::{Step, describe_plan};
use super::episode_runner::EpisodeStart;
use super::machine::Engine;
use super::memory::Purpose;
use super::memory::Trigger;
use super::observation::Slot;
use super::policy::Mode;
use super::state::{Blocker, SiteState, StateKind};
use super::view::Condition;
use super::words::duration;
use crate::api::model::FailoverRole;

impl Engine {
    pub(super) fn evaluate(&mut self, now: SystemTime, out: &mut Vec<Action>) -> SiteState {
        if self.episode.is_some() {
            self.advance_episode(now, out);
            if let Some(episode) = &self.episode {
                return SiteState::new(StateKind::FailingOver, self.describe_episode(episode, now));
            }
        }
        if !self.started {
            let both_seen = self
                .views
                .iter()
                .all(|v| v.condition != Condition::Unknown && (v.role.is_some() || !v.answering()));
            let grace_over = self
                .started_at
                .is_some_and(|s| since(now, s) >= self.config.policy.startup_grace);
            if both_seen || grace_over {
                self.started = true;
            } else {
                let missing: Vec<&str> = self
                    .views
                    .iter()
                    .filter(|v| v.condition == Condition::Unknown)
                    .map(|v| v.name.as_str())
                    .collect();
                let reason = if missing.is_empty() {
                    "waiting for both appliances to report their roles".to_string()
                } else {
                    format!("waiting for a first answer from {}", missing.join(" and "))
                };
                return SiteState::new(StateKind::Starting, reason);
            }
        }
        let situation = self.situation();
        if situation != Situation::NoPrimary {
            self.no_primary_since = None;
        }
        match situation {
            Situation::Blind => SiteState::new(
                StateKind::Blind,
                format!(
                    "neither appliance answers ({}: {}; {}: {}): the fault is more likely in the watchdog's own network; never acting while blind",
                    self.views[0].name,
                    self.views[0].condition.describe(),
                    self.views[1].name,
                    self.views[1].condition.describe()
                ),
            ),
            Situation::NotInFailover(slot) => SiteState::new(
                StateKind::NotInFailover,
                format!(
                    "{} reports failover_role none: it is not in a failover relationship, so there is nothing to fail over to",
                    self.views[slot].name
                ),
            ),
            Situation::RolesUnknown => SiteState::new(
                StateKind::Starting,
                format!(
                    "the roles are not known yet ({}: {}; {}: {})",
                    self.views[0].name,
                    self.role_text(0),
                    self.views[1].name,
                    self.role_text(1)
                ),
            ),
            Situation::NoPrimary => {
                let since_when = *self.no_primary_since.get_or_insert(now);
                let for_how_long = since(now, since_when);
                if for_how_long < self.config.policy.swap_settle {
                    SiteState::new(
                        StateKind::Degraded,
                        format!(
                            "both appliances report backup for {}: a planned swap is probably completing (allowed for {})",
                            duration(for_how_long),
                            duration(self.config.policy.swap_settle)
                        ),
                    )
                } else {
                    SiteState::new(
                        StateKind::NoPrimary,
                        format!(
                            "both appliances report backup for {}: no appliance accepts clients; choose one and run a manual failover",
                            duration(for_how_long)
                        ),
                    )
                }
            }
            Situation::SplitBrain => self.split_brain(now, out),
            Situation::Pair { primary, backup } => self.pair(now, primary, backup, out),
        }
    }

    pub(super) fn role_text(&self, slot: Slot) -> String {
        match self.views[slot].role() {
            Some(role) => role.to_string(),
            None => "unknown".to_string(),
        }
    }

    pub(super) fn pair(
        &mut self,
        now: SystemTime,
        primary: Slot,
        backup: Slot,
        out: &mut Vec<Action>,
    ) -> SiteState {
        let p = &self.views[primary];
        let b = &self.views[backup];
        if !p.failing() && !p.role_is_current() && p.answering() {
            return SiteState::new(
                StateKind::Starting,
                format!("{} answers again; waiting to learn its role", p.name),
            );
        }
        if !p.failing() {
            let backup_problem = self.backup_problem(backup);
            let mut changed = false;
            if let Some(retries) = self.memory.retries.as_mut().filter(|r| r.escalate_to_fence) {
                // The primary answers well again: a later failure starts gracefully again.
                retries.escalate_to_fence = false;
                changed = true;
            }
            if backup_problem.is_none() && self.memory.promoted.is_some() {
                // The pair is whole again, whoever is primary (an operator may have failed back
                // by hand): the authority to fence that came with our promotion ends here.
                self.memory.promoted = None;
                changed = true;
            }
            if changed {
                out.push(Action::Persist(self.memory.clone()));
            }
            let base = match &backup_problem {
                None => format!(
                    "primary {} healthy; backup {} healthy; {}",
                    p.name,
                    b.name,
                    self.data_text(now)
                ),
                Some(problem) => format!("primary {} healthy; {problem}", p.name),
            };
            if let Some(pause) = &self.memory.pause {
                return SiteState::new(
                    StateKind::Paused,
                    format!("paused by {} ({}); {base}", pause.by, pause.reason),
                );
            }
            let cooldown = self.cooldown_remaining(now);
            if cooldown > Duration::ZERO {
                return SiteState::new(
                    StateKind::Cooldown,
                    format!(
                        "cooldown for {} more after the last failover; {base}",
                        duration(cooldown)
                    ),
                );
            }
            if backup_problem.is_some() {
                return SiteState::new(StateKind::Degraded, base);
            }
            // Stale data with a healthy primary breaks nothing yet, but the next failure could
            // not be failed over: said now, while there is time to fix the sync.
            return match self.sync_problem(now) {
                Some((Blocker::SyncStale, problem)) => SiteState::new(
                    StateKind::Degraded,
                    format!(
                        "primary {} healthy; backup {} healthy; {problem}: a failover would be refused until the data syncs again",
                        p.name, b.name
                    ),
                ),
                _ => SiteState::new(StateKind::Healthy, base),
            };
        }

        let (failing_for, polls) = match &self.streak {
            Some(streak) if streak.slot == primary => (streak.observed_for(), streak.polls),
            _ => (Duration::ZERO, 0),
        };
        let how = p.condition.describe();
        let failing = format!(
            "primary {} {how} for {} ({polls} polls)",
            p.name,
            duration(failing_for)
        );
        let policy = &self.config.policy;
        if let Some((from, kind)) = p.no_information {
            // The latest polls observed nothing: they neither prove nor disprove the failure.
            return SiteState::new(
                StateKind::PrimarySuspect,
                format!(
                    "{failing}; no information from {} for {} ({}): these polls do not count toward failing over",
                    p.name,
                    duration(since(now, from)),
                    kind.label()
                ),
            );
        }
        if polls < policy.failure_threshold || failing_for < policy.failover_after {
            return SiteState::new(
                StateKind::PrimarySuspect,
                format!(
                    "{failing}; failing over after {} and {} polls",
                    duration(policy.failover_after),
                    policy.failure_threshold
                ),
            );
        }
        self.failover_needed(now, primary, backup, failing, out)
    }

    /// Why the backup cannot take over, if it cannot.
    pub(super) fn backup_problem(&self, backup: Slot) -> Option<String> {
        let b = &self.views[backup];
        if !b.healthy() {
            return Some(format!("backup {} is {}", b.name, b.condition.describe()));
        }
        if !b.role_is_current() {
            return Some(format!(
                "backup {} has not reported its role since it started answering",
                b.name
            ));
        }
        match b.role() {
            Some(FailoverRole::Backup) => None,
            other => Some(format!(
                "{} reports role {} instead of backup",
                b.name,
                other
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "unknown".into())
            )),
        }
    }

    pub(super) fn failover_needed(
        &mut self,
        now: SystemTime,
        primary: Slot,
        backup: Slot,
        failing: String,
        out: &mut Vec<Action>,
    ) -> SiteState {
        if self.memory.retries.as_ref().is_some_and(|r| {
            since(now, r.last_failure_at.to_system_time()) >= self.config.policy.cooldown
        }) {
            // A cooldown's length without a new failure: a later failure is a new one.
            self.memory.retries = None;
            out.push(Action::Persist(self.memory.clone()));
        }
        let plan = self.automatic_plan(primary, backup);
        let target = &self.config.names[backup];
        let intent = describe_plan(&plan, &self.config.names);
        // The cooldown started with the first attempt at this failure; it does not hold back
        // the retries of that same failure (their own backoff and count do).
        let retrying = self
            .memory
            .retries
            .as_ref()
            .is_some_and(|r| r.purpose == Purpose::Promote);
        let hold = self.policy_hold(now, &intent, !retrying);
        // A stalled loop's picture is not to be trusted, so it is named first.
        if let Some((Blocker::Stalled, why)) = &hold {
            return SiteState::blocked(Blocker::Stalled, format!("{failing}; {why}"));
        }
        if let Some(problem) = self.backup_problem(backup) {
            return SiteState::blocked(
                Blocker::BackupUnusable,
                format!("{failing}; cannot fail over: {problem}"),
            );
        }
        if let Some((blocker, problem)) = self.sync_problem(now) {
            return SiteState::blocked(
                blocker,
                format!(
                    "{failing}; backup {target} healthy; not promoting: {problem}; a manual failover with --override-preflight can"
                ),
            );
        }
        let data = format!(
            "{}; {}",
            self.data_text(now),
            self.impact_text(primary, now)
        );
        if let Some((blocker, why)) = hold {
            return SiteState::blocked(
                blocker,
                format!("{failing}; backup {target} healthy; {data}; {why}"),
            );
        }
        if let Some(why) = self.too_many_representatives(primary) {
            return SiteState::blocked(
                Blocker::ClientsConnected,
                format!(
                    "{failing}; backup {target} healthy; {data}; {why}: would {intent}; a manual failover can"
                ),
            );
        }
        let reason = format!("{failing}; backup {target} healthy; {data}; {intent}");
        self.start_episode(
            now,
            EpisodeStart {
                purpose: Purpose::Promote,
                trigger: Trigger::Auto,
                from: Some(primary),
                target: backup,
                plan,
                reason,
                overridden: false,
            },
            out,
        )
    }

    /// Why an automatic action the engine wants (`intent`) must wait, if it must: the holds
    /// failovers and fencing share, in the order they are reported. The cooldown holds back
    /// failovers only: fencing a stale primary completes the last failover.
    pub(super) fn policy_hold(
        &self,
        now: SystemTime,
        intent: &str,
        honour_cooldown: bool,
    ) -> Option<(Blocker, String)> {
        let policy = &self.config.policy;
        if self.stalled() {
            let why = format!(
                "the watchdog's own loop stalled recently: not acting until it has run regularly for {}",
                duration(policy.stall_recovery())
            );
            return Some((Blocker::Stalled, why));
        }
        if let Some((until, why)) = &self.intent_unwritable
            && now < *until
        {
            let why = format!(
                "the state directory could not be written ({why}): no call is made without its intent on disk; trying again in {}: would {intent}",
                duration(since(*until, now))
            );
            return Some((Blocker::StateUnwritable, why));
        }
        if let Some((until, why)) = &self.vetoed
            && now < *until
        {
            let why = format!(
                "the pre-failover hook vetoed it ({why}); asking again in {}: would {intent}",
                duration(since(*until, now))
            );
            return Some((Blocker::Vetoed, why));
        }
        if let Some(gave_up) = &self.memory.gave_up {
            let why = format!(
                "automatic action gave up at {} ({}); waiting for an operator (ack to allow another try)",
                gave_up.since, gave_up.reason
            );
            return Some((Blocker::RetriesExhausted, why));
        }
        if let Some(pause) = &self.memory.pause {
            return Some((
                Blocker::Paused,
                format!("paused by {} ({}): would {intent}", pause.by, pause.reason),
            ));
        }
        let cooldown = self.cooldown_remaining(now);
        if honour_cooldown && cooldown > Duration::ZERO {
            let why = format!(
                "in cooldown for {} more after the last failover: would {intent}",
                duration(cooldown)
            );
            return Some((Blocker::Cooldown, why));
        }
        if self.config.mode == Mode::Observe {
            return Some((
                Blocker::ObserveMode,
                format!("observe mode: would {intent}"),
            ));
        }
        if let Some(retries) = &self.memory.retries {
            let at = retries.next_attempt_at.to_system_time();
            if now < at {
                let why = format!(
                    "attempt {} of {} failed; next attempt in {}",
                    retries.attempts,
                    policy.max_attempts,
                    duration(since(at, now))
                );
                return Some((Blocker::RetryBackoff, why));
            }
        }
        None
    }

    /// The calls an automatic failover makes, by how the primary is failing.
    pub(super) fn automatic_plan(&self, primary: Slot, backup: Slot) -> Vec<Step> {
        let p = &self.views[primary];
        let sync_broken = p
            .last_data_sync_status
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("success") && !s.is_empty());
        if !p.answering() {
            // It does not answer: promote the backup and watch for the old primary's return.
            vec![Step::promote(backup, false)]
        } else if self
            .memory
            .retries
            .as_ref()
            .is_some_and(|r| r.escalate_to_fence)
            || sync_broken
        {
            // It answers but cannot reach its peer: fence it first, or it stays primary too.
            vec![Step::demote(primary, true), Step::promote(backup, false)]
        } else {
            // It answers: a graceful swap that syncs its latest data first.
            vec![Step::promote(backup, true)]
        }
    }
}
