//! The engine of one site: `step(now, input) -> actions`.
//!
//! Sans-IO by construction: it reads no clock (time comes in as `now`), opens no socket,
//! touches no file and holds no global state, so every rule below is tested with a fake clock.
//! The daemon drives it; the actuator carries out its calls and reports back.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::action::{Action, AlertKind, Decision, FailoverCall, FailoverSummary};
use super::episode::{Episode, Phase, Purpose, Step};
use super::memory::{FailoverRecord, Memory, Outcome, PauseRecord, Trigger};
use super::observation::{CallResult, Command, Input, PollReport, Slot};
use super::policy::{Mode, Policy};
use super::state::{Blocker, SiteState, StateKind};
use super::view::{ApplianceView, Condition};
use super::words::{duration, since};
use crate::api::model::FailoverRole;
use crate::api::time::UtcTime;

/// How many journal entries the engine keeps for `/status`.
const JOURNAL_KEPT: usize = 20;
/// A reported sync time further in the future than this is not believed (clock skew would
/// otherwise make stale data look fresh forever).
const MAX_SYNC_SKEW: Duration = Duration::from_secs(300);

/// What the engine needs to know about its site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    pub site: String,
    /// The operator's names of the two appliances, in configuration order.
    pub names: [String; 2],
    pub mode: Mode,
    pub policy: Policy,
}

/// A failing primary: since when, for how many polls, and how.
#[derive(Debug, Clone, PartialEq)]
struct Streak {
    slot: Slot,
    since: SystemTime,
    polls: u32,
}

/// The shape of the pair, before any policy is applied.
#[derive(Debug, Clone, PartialEq)]
enum Situation {
    Blind,
    NotInFailover(Slot),
    RolesUnknown,
    SplitBrain,
    NoPrimary,
    Pair { primary: Slot, backup: Slot },
}

#[derive(Debug, Clone)]
pub struct Engine {
    config: SiteConfig,
    memory: Memory,
    views: [ApplianceView; 2],
    started_at: Option<SystemTime>,
    started: bool,
    last_step: Option<SystemTime>,
    stalled_until_regular_from: Option<SystemTime>,
    streak: Option<Streak>,
    episode: Option<Episode>,
    /// Failed automatic attempts; forgotten after a success, an ack, or a cooldown's length
    /// without a new failure (not merely when the primary looks better for a moment, or a
    /// flapping primary would earn a fresh set of attempts every time).
    failed_attempts: u32,
    last_failure_at: Option<SystemTime>,
    next_attempt_at: Option<SystemTime>,
    /// A graceful swap failed: the next plan fences the old primary first.
    escalate_to_fence: bool,
    exhausted: bool,
    no_primary_since: Option<SystemTime>,
    next_call_id: u64,
    state: SiteState,
    alerts: BTreeMap<AlertKind, String>,
    journal: VecDeque<Decision>,
}

impl Engine {
    pub fn new(config: SiteConfig, memory: Memory) -> Self {
        let views = [
            ApplianceView::new(&config.names[0]),
            ApplianceView::new(&config.names[1]),
        ];
        Engine {
            config,
            memory,
            views,
            started_at: None,
            started: false,
            last_step: None,
            stalled_until_regular_from: None,
            streak: None,
            episode: None,
            failed_attempts: 0,
            last_failure_at: None,
            next_attempt_at: None,
            escalate_to_fence: false,
            exhausted: false,
            no_primary_since: None,
            next_call_id: 1,
            state: SiteState::new(StateKind::Starting, "waiting for the first poll"),
            alerts: BTreeMap::new(),
            journal: VecDeque::new(),
        }
    }

    pub fn state(&self) -> &SiteState {
        &self.state
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn views(&self) -> &[ApplianceView; 2] {
        &self.views
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    pub fn episode(&self) -> Option<&Episode> {
        self.episode.as_ref()
    }

    pub fn journal(&self) -> impl Iterator<Item = &Decision> {
        self.journal.iter()
    }

    pub fn alerts(&self) -> &BTreeMap<AlertKind, String> {
        &self.alerts
    }

    /// Applies a new configuration (a reload) without losing memory or observations.
    pub fn reconfigure(&mut self, config: SiteConfig) {
        if config.names != self.config.names {
            self.views = [
                ApplianceView::new(&config.names[0]),
                ApplianceView::new(&config.names[1]),
            ];
            self.streak = None;
        }
        self.config = config;
    }

    /// Seconds of cooldown left at `now`.
    pub fn cooldown_remaining(&self, now: SystemTime) -> Duration {
        self.memory
            .cooldown_until
            .map(|until| {
                until
                    .to_system_time()
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::ZERO)
    }

    /// The age of the newest data the backup can have, when known.
    pub fn sync_age(&self, now: SystemTime) -> Option<Duration> {
        self.memory.last_data_sync.map(|t| t.age_at(now))
    }

    pub fn step(&mut self, now: SystemTime, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.track_time(now, &mut out);
        match input {
            Input::Tick => {}
            Input::Poll(report) => self.absorb(now, &report, &mut out),
            Input::CallResult { call_id, result } => {
                self.on_call_result(now, call_id, result, &mut out)
            }
            Input::Command(command) => self.on_command(now, command, &mut out),
        }
        let state = self.evaluate(now, &mut out);
        self.set_state(now, state, &mut out);
        self.update_alerts(&mut out);
        out
    }

    // ---- time -------------------------------------------------------------------------

    fn track_time(&mut self, now: SystemTime, out: &mut Vec<Action>) {
        self.started_at.get_or_insert(now);
        if let Some(last) = self.last_step {
            let gap = now.duration_since(last);
            let stalled = match gap {
                Ok(gap) => gap > self.config.policy.stall_tolerance,
                Err(_) => true, // the clock went backwards
            };
            if stalled {
                let what = match gap {
                    Ok(gap) => format!(
                        "{} passed between two steps (expected about {})",
                        duration(gap),
                        duration(self.config.policy.poll_interval)
                    ),
                    Err(back) => format!("the clock went back by {}", duration(back.duration())),
                };
                self.note(now, out, format!("the watchdog's loop stalled: {what}; failure timers restart and no action is taken until it has run regularly for {}", duration(self.config.policy.stall_recovery())));
                self.stalled_until_regular_from = Some(now);
                // Time-based evidence gathered across the gap cannot be trusted.
                self.streak = None;
            } else if let Some(from) = self.stalled_until_regular_from
                && since(now, from) >= self.config.policy.stall_recovery()
            {
                self.stalled_until_regular_from = None;
                self.note(
                    now,
                    out,
                    "the watchdog's loop has run regularly again; action is possible".to_string(),
                );
            }
        }
        self.last_step = Some(now);
    }

    fn stalled(&self) -> bool {
        self.stalled_until_regular_from.is_some()
    }

    // ---- observations -----------------------------------------------------------------

    fn absorb(&mut self, now: SystemTime, report: &PollReport, out: &mut Vec<Action>) {
        for slot in 0..2 {
            let appliance = &report.appliances[slot];
            self.views[slot].absorb(appliance, now);
            if self.views[slot].came_back(now) {
                // Back after a silence: learn what it believes now, without waiting.
                out.push(Action::PollNow);
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

    fn update_streak(&mut self, now: SystemTime, report: &PollReport, out: &mut Vec<Action>) {
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
                out.push(Action::PollNow);
            }
        }
    }

    /// Who is primary, from what each appliance says (or, if it cannot, what its peer says).
    fn situation(&self) -> Situation {
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

    // ---- call results -----------------------------------------------------------------

    fn on_call_result(
        &mut self,
        now: SystemTime,
        call_id: u64,
        result: CallResult,
        out: &mut Vec<Action>,
    ) {
        let Some(episode) = &mut self.episode else {
            self.note(
                now,
                out,
                format!("ignored the answer to call {call_id}: no failover is in progress"),
            );
            return;
        };
        let Phase::AwaitingAnswer {
            call_id: expected, ..
        } = episode.phase
        else {
            self.note(
                now,
                out,
                format!("ignored a second answer to call {call_id}"),
            );
            return;
        };
        if expected != call_id {
            self.note(
                now,
                out,
                format!(
                    "ignored the answer to call {call_id}: call {expected} is the one in flight"
                ),
            );
            return;
        }
        match result {
            CallResult::Accepted(accepted) => {
                let deadline = now + self.config.policy.converge_timeout;
                episode.phase = Phase::Converging {
                    since: now,
                    deadline,
                };
                let appliance = episode
                    .current()
                    .map(|s| self.config.names[s.appliance].clone())
                    .unwrap_or_default();
                let later = if accepted.completes_later {
                    "; the role change completes later"
                } else {
                    ""
                };
                let message = format!(
                    "{appliance} accepted the call ({}){later}; waiting up to {} for the roles to change",
                    accepted.message,
                    duration(self.config.policy.converge_timeout)
                );
                self.note(now, out, message);
                out.push(Action::PollNow);
            }
            CallResult::Failed { kind, message } => {
                self.attempt_failed(now, format!("the call failed ({kind}: {message})"), out);
            }
        }
    }

    // ---- commands ---------------------------------------------------------------------

    fn on_command(&mut self, now: SystemTime, command: Command, out: &mut Vec<Action>) {
        match command {
            Command::Pause { reason, by } => {
                self.memory.pause = Some(PauseRecord {
                    reason: reason.clone(),
                    by: by.clone(),
                    since: UtcTime::from_system_time(now),
                });
                out.push(Action::Persist(self.memory.clone()));
                let in_flight = if self.episode.is_some() {
                    "; the failover in progress is finished first (abandoning it halfway could leave no primary)"
                } else {
                    ""
                };
                self.note(now, out, format!("paused by {by}: {reason}{in_flight}"));
            }
            Command::Resume { by } => {
                if self.memory.pause.take().is_some() {
                    out.push(Action::Persist(self.memory.clone()));
                    self.note(now, out, format!("resumed by {by}"));
                } else {
                    self.note(
                        now,
                        out,
                        format!("{by} asked to resume, but the site was not paused"),
                    );
                }
            }
            Command::Acknowledge { reason, by } => {
                let had_cooldown = self.cooldown_remaining(now) > Duration::ZERO;
                self.memory.cooldown_until = None;
                self.exhausted = false;
                self.failed_attempts = 0;
                self.next_attempt_at = None;
                self.escalate_to_fence = false;
                out.push(Action::Persist(self.memory.clone()));
                let what = if had_cooldown {
                    "cooldown ended early"
                } else {
                    "acknowledged (no cooldown was running)"
                };
                self.note(now, out, format!("{what} by {by}: {reason}"));
            }
            Command::Failover(request) => super::manual::handle(self, now, request, out),
        }
    }

    // ---- the decision -----------------------------------------------------------------

    fn evaluate(&mut self, now: SystemTime, out: &mut Vec<Action>) -> SiteState {
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

    fn role_text(&self, slot: Slot) -> String {
        match self.views[slot].role() {
            Some(role) => role.to_string(),
            None => "unknown".to_string(),
        }
    }

    fn pair(
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
            self.escalate_to_fence = false;
            self.exhausted = false;
            let backup_problem = self.backup_problem(backup);
            if backup_problem.is_none()
                && self.memory.promoted.as_deref() == Some(self.config.names[primary].as_str())
            {
                // The pair is whole again with the appliance we promoted as primary.
                self.memory.promoted = None;
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
            return match backup_problem {
                None => SiteState::new(StateKind::Healthy, base),
                Some(_) => SiteState::new(StateKind::Degraded, base),
            };
        }

        let (failing_for, polls) = match &self.streak {
            Some(streak) if streak.slot == primary => (since(now, streak.since), streak.polls),
            _ => (Duration::ZERO, 0),
        };
        let how = p.condition.describe();
        let failing = format!(
            "primary {} {how} for {} ({polls} polls)",
            p.name,
            duration(failing_for)
        );
        let policy = &self.config.policy;
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
    fn backup_problem(&self, backup: Slot) -> Option<String> {
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

    fn data_text(&self, now: SystemTime) -> String {
        match self.sync_age(now) {
            Some(age) => format!("data {} old", duration(age)),
            None => "data age unknown".to_string(),
        }
    }

    /// The data-age check for promoting a backup: `None` when it passes.
    pub(super) fn sync_problem(&self, now: SystemTime) -> Option<(Blocker, String)> {
        match self.sync_age(now) {
            None => Some((
                Blocker::SyncUnknown,
                "the age of the backup's data is unknown (no primary has reported last_data_sync since this watchdog has memory); promoting it could lose data".to_string(),
            )),
            Some(age) if age > self.config.policy.max_sync_age => Some((
                Blocker::SyncStale,
                format!("the backup's data is {} old, more than max_sync_age {}; promoting it would lose that much", duration(age), duration(self.config.policy.max_sync_age)),
            )),
            Some(_) => None,
        }
    }

    fn failover_needed(
        &mut self,
        now: SystemTime,
        primary: Slot,
        backup: Slot,
        failing: String,
        out: &mut Vec<Action>,
    ) -> SiteState {
        if self
            .last_failure_at
            .is_some_and(|at| since(now, at) >= self.config.policy.cooldown)
        {
            self.failed_attempts = 0;
            self.last_failure_at = None;
        }
        let plan = self.automatic_plan(primary, backup);
        let target = &self.config.names[backup];
        let intent = describe_plan(&plan, &self.config.names);
        let hold = self.policy_hold(now, &intent, true);
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
        let data = self.data_text(now);
        if let Some((blocker, why)) = hold {
            return SiteState::blocked(
                blocker,
                format!("{failing}; backup {target} healthy; {data}; {why}"),
            );
        }
        let reason = format!("{failing}; backup {target} healthy; {data}; {intent}");
        self.start_episode(
            now,
            Purpose::Promote,
            Trigger::Auto,
            Some(primary),
            backup,
            plan,
            reason,
            false,
            out,
        );
        let episode = self
            .episode
            .as_ref()
            .map(|e| self.describe_episode(e, now))
            .unwrap_or_default();
        SiteState::new(StateKind::FailingOver, episode)
    }

    /// Why an automatic action the engine wants (`intent`) must wait, if it must: the holds
    /// failovers and fencing share, in the order they are reported. The cooldown holds back
    /// failovers only: fencing a stale primary completes the last failover.
    fn policy_hold(
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
        if self.exhausted {
            let why = format!(
                "the last automatic action failed {} times; waiting for an operator (ack to allow another try)",
                policy.max_attempts
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
        if let Some(at) = self.next_attempt_at.filter(|at| now < *at) {
            let why = format!(
                "attempt {} of {} failed; next attempt in {}",
                self.failed_attempts,
                policy.max_attempts,
                duration(since(at, now))
            );
            return Some((Blocker::RetryBackoff, why));
        }
        None
    }

    /// The calls an automatic failover makes, by how the primary is failing.
    fn automatic_plan(&self, primary: Slot, backup: Slot) -> Vec<Step> {
        let p = &self.views[primary];
        let sync_broken = p
            .last_data_sync_status
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("success") && !s.is_empty());
        if !p.answering() {
            // It does not answer: promote the backup and watch for the old primary's return.
            vec![Step::promote(backup, false)]
        } else if self.escalate_to_fence || sync_broken {
            // It answers but cannot reach its peer: fence it first, or it stays primary too.
            vec![Step::demote(primary, true), Step::promote(backup, false)]
        } else {
            // It answers: a graceful swap that syncs its latest data first.
            vec![Step::promote(backup, true)]
        }
    }

    fn split_brain(&mut self, now: SystemTime, out: &mut Vec<Action>) -> SiteState {
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
            Purpose::DemoteStale,
            Trigger::Auto,
            Some(stale),
            ours,
            plan,
            format!("{base}; {intent}"),
            false,
            out,
        );
        let episode = self
            .episode
            .as_ref()
            .map(|e| self.describe_episode(e, now))
            .unwrap_or_default();
        SiteState::new(StateKind::FailingOver, episode)
    }

    // ---- episodes ---------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_episode(
        &mut self,
        now: SystemTime,
        purpose: Purpose,
        trigger: Trigger,
        from: Option<Slot>,
        target: Slot,
        plan: Vec<Step>,
        reason: String,
        overridden: bool,
        out: &mut Vec<Action>,
    ) {
        let episode = Episode {
            purpose,
            trigger,
            from,
            target,
            plan,
            step: 0,
            phase: Phase::Converging {
                since: now,
                deadline: now,
            },
            reason: reason.clone(),
            overridden,
            started_at: now,
        };
        self.episode = Some(episode);
        let what = match purpose {
            Purpose::Promote => "failover",
            Purpose::DemoteStale => "fencing",
        };
        self.note(now, out, format!("{} {what}: {reason}", trigger.as_str()));
        self.send_current_step(now, out);
    }

    fn send_current_step(&mut self, now: SystemTime, out: &mut Vec<Action>) {
        let call_id = self.next_call_id;
        self.next_call_id += 1;
        let Some(episode) = &mut self.episode else {
            return;
        };
        let Some(step) = episode.current().copied() else {
            return;
        };
        episode.phase = Phase::AwaitingAnswer {
            call_id,
            sent_at: now,
        };
        let call = FailoverCall {
            call_id,
            appliance: step.appliance,
            appliance_name: self.config.names[step.appliance].clone(),
            request: step.request,
            trigger: episode.trigger,
            reason: episode.reason.clone(),
        };
        out.push(Action::CallFailover(call));
    }

    fn advance_episode(&mut self, now: SystemTime, out: &mut Vec<Action>) {
        let Some(episode) = &self.episode else { return };
        let timeout = self.config.policy.converge_timeout;
        match episode.phase {
            Phase::AwaitingAnswer { sent_at, .. } => {
                // The actuator bounds every call by its timeout; a missing answer is a bug
                // somewhere, and must not wedge the site forever.
                if since(now, sent_at) > timeout {
                    self.attempt_failed(
                        now,
                        format!("no answer to the call within {}", duration(timeout)),
                        out,
                    );
                }
            }
            Phase::Converging {
                since: from,
                deadline,
            } => {
                let Some(step) = episode.current().copied() else {
                    return;
                };
                if step.converged(&self.views, from) {
                    let done = episode.step + 1 >= episode.plan.len();
                    let name = self.config.names[step.appliance].clone();
                    let role = step.request.role;
                    self.note(now, out, format!("{name} now reports {role}"));
                    if done {
                        self.finish_episode(now, Outcome::Success, None, out);
                    } else if let Some(episode) = &mut self.episode {
                        episode.step += 1;
                        let next = episode.current().copied();
                        // The backup was checked when the failover was decided; it must still
                        // be a healthy backup when the promotion is actually sent.
                        let problem = next
                            .filter(|s| s.request.role == FailoverRole::Primary)
                            .and_then(|s| self.backup_problem(s.appliance));
                        match problem {
                            Some(problem) => self.attempt_failed(
                                now,
                                format!("not promoting after all: {problem}"),
                                out,
                            ),
                            None => self.send_current_step(now, out),
                        }
                    }
                } else if now >= deadline {
                    let why = format!(
                        "{} did not report {} within {}",
                        self.config.names[step.appliance],
                        step.request.role,
                        duration(timeout)
                    );
                    self.attempt_failed(now, why, out);
                } else {
                    out.push(Action::PollNow);
                }
            }
        }
    }

    fn attempt_failed(&mut self, now: SystemTime, why: String, out: &mut Vec<Action>) {
        let Some(episode) = self.episode.take() else {
            return;
        };
        let graceful = episode.current().is_some_and(|s| s.request.data_sync_first);
        if episode.trigger == Trigger::Manual {
            self.episode = Some(episode);
            self.finish_episode(now, Outcome::Failure, Some(why), out);
            return;
        }
        self.failed_attempts += 1;
        self.last_failure_at = Some(now);
        let max = self.config.policy.max_attempts.max(1);
        if self.failed_attempts >= max {
            self.episode = Some(episode);
            self.finish_episode(now, Outcome::Failure, Some(why), out);
            return;
        }
        if graceful {
            self.escalate_to_fence = true;
        }
        let wait = self.config.policy.backoff_before(self.failed_attempts + 1);
        self.next_attempt_at = Some(now + wait);
        let next = if graceful {
            "; the next attempt fences the old primary first"
        } else {
            ""
        };
        self.note(
            now,
            out,
            format!(
                "attempt {} of {max} failed: {why}; trying again in {}{next}",
                self.failed_attempts,
                duration(wait)
            ),
        );
    }

    fn finish_episode(
        &mut self,
        now: SystemTime,
        outcome: Outcome,
        why: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let Some(episode) = self.episode.take() else {
            return;
        };
        let names = &self.config.names;
        let from = episode.from.map(|s| names[s].clone());
        let to = names[episode.target].clone();
        self.next_attempt_at = None;
        self.escalate_to_fence = false;
        if outcome == Outcome::Success {
            self.streak = None;
        }
        match (episode.purpose, outcome) {
            (Purpose::DemoteStale, Outcome::Success) => {
                self.failed_attempts = 0;
                let message = format!(
                    "split brain ended: {} is backup again; {to} stays primary",
                    from.clone().unwrap_or_default()
                );
                self.note(now, out, message);
                return;
            }
            (Purpose::DemoteStale, Outcome::Failure) => {
                self.exhausted = true;
                let message = format!(
                    "could not demote {}: {}",
                    from.clone().unwrap_or_default(),
                    why.unwrap_or_default()
                );
                self.note(now, out, message);
                return;
            }
            _ => {}
        }
        let reason = match &why {
            None => episode.reason.clone(),
            Some(why) => format!("{why} (after: {})", episode.reason),
        };
        self.memory.cooldown_until =
            Some(UtcTime::from_system_time(now + self.config.policy.cooldown));
        self.memory.last_failover = Some(FailoverRecord {
            at: UtcTime::from_system_time(now),
            from: from.clone(),
            to: to.clone(),
            trigger: episode.trigger,
            outcome,
            reason: reason.clone(),
            overridden: episode.overridden,
        });
        match outcome {
            Outcome::Success => {
                self.failed_attempts = 0;
                self.exhausted = false;
                self.memory.promoted = Some(to.clone());
                self.note(
                    now,
                    out,
                    format!(
                        "failover to {to} done; cooldown for {}",
                        duration(self.config.policy.cooldown)
                    ),
                );
            }
            Outcome::Failure => {
                // Holding still after a failed failover is what stops a retry storm.
                self.exhausted = episode.trigger == Trigger::Auto;
                self.failed_attempts = 0;
                self.note(
                    now,
                    out,
                    format!(
                        "failover to {to} failed: {}; cooldown for {}",
                        why.unwrap_or_default(),
                        duration(self.config.policy.cooldown)
                    ),
                );
            }
        }
        out.push(Action::Persist(self.memory.clone()));
        out.push(Action::FailoverFinished(FailoverSummary {
            trigger: episode.trigger,
            outcome,
            from,
            to,
            reason,
        }));
    }

    fn describe_episode(&self, episode: &Episode, now: SystemTime) -> String {
        let total = episode.plan.len();
        let step = episode.current();
        let what = step
            .map(|s| {
                format!(
                    "{} {}",
                    describe_step(s, &self.config.names),
                    if total > 1 {
                        format!("(step {} of {total})", episode.step + 1)
                    } else {
                        String::new()
                    }
                )
            })
            .unwrap_or_default();
        let phase = match episode.phase {
            Phase::AwaitingAnswer { sent_at, .. } => {
                format!("call sent {} ago", duration(since(now, sent_at)))
            }
            Phase::Converging {
                since: from,
                deadline,
            } => format!(
                "accepted {} ago, waiting for the roles to change (up to {} more)",
                duration(since(now, from)),
                duration(since(deadline, now))
            ),
        };
        let what_kind = match episode.purpose {
            Purpose::Promote => "failover",
            Purpose::DemoteStale => "fencing",
        };
        format!(
            "{} {what_kind} in progress: {}; {phase}; because {}",
            episode.trigger.as_str(),
            what.trim_end(),
            episode.reason
        )
    }

    // ---- state, alerts, journal -------------------------------------------------------

    fn set_state(&mut self, now: SystemTime, state: SiteState, out: &mut Vec<Action>) {
        let changed = state.kind != self.state.kind || state.blocker != self.state.blocker;
        if changed {
            let decision = Decision {
                at: UtcTime::from_system_time(now),
                state: state.kind,
                message: state.reason.clone(),
            };
            self.remember(decision.clone());
            out.push(Action::Journal(decision));
        }
        self.state = state;
    }

    fn update_alerts(&mut self, out: &mut Vec<Action>) {
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
        if self.exhausted {
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
        let decision = Decision {
            at: UtcTime::from_system_time(now),
            state: self.state.kind,
            message,
        };
        self.remember(decision.clone());
        out.push(Action::Journal(decision));
    }

    fn remember(&mut self, decision: Decision) {
        if self.journal.len() >= JOURNAL_KEPT {
            self.journal.pop_front();
        }
        self.journal.push_back(decision);
    }

    // ---- for the manual failover module -------------------------------------------------

    pub(super) fn current_primary(&self) -> Option<Slot> {
        match self.situation() {
            Situation::Pair { primary, .. } => Some(primary),
            _ => None,
        }
    }

    pub(super) fn is_stalled(&self) -> bool {
        self.stalled()
    }

    pub(super) fn backup_problem_of(&self, slot: Slot) -> Option<String> {
        self.backup_problem(slot)
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
