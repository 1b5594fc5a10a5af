//! Carrying out an episode: write the intent, send each call, verify its effect, retry within
//! bounds, finish with a cooldown.
//!
//! The intent (the episode record, the cooldown and the fencing authority that start with it)
//! is handed to the daemon to persist *before* each call: a crash at any point then resumes
//! the episode instead of deciding afresh and calling a second time for the same failure.

use std::time::SystemTime;

use super::action::{Action, FailoverCall, FailoverSummary};
use super::clock::{later, since};
use super::episode::{Episode, IntentUndo, Phase, Step, describe_step};
use super::machine::Engine;
use super::memory::{FailoverRecord, GaveUp, Outcome, Purpose, RetrySeries, Trigger};
use super::observation::{CallResult, Slot};
use super::policy::Mode;
use super::state::{SiteState, StateKind};
use super::words::duration;
use crate::api::model::FailoverRole;
use crate::api::time::UtcTime;

/// What starts an episode, besides its plan.
pub(super) struct EpisodeStart {
    pub purpose: Purpose,
    pub trigger: Trigger,
    pub from: Option<Slot>,
    pub target: Slot,
    pub plan: Vec<Step>,
    pub reason: String,
    pub overridden: bool,
}

impl Engine {
    /// Starts an episode and sends its first call; the state it puts the site in.
    pub(super) fn start_episode(
        &mut self,
        now: SystemTime,
        start: EpisodeStart,
        out: &mut Vec<Action>,
    ) -> SiteState {
        // Automatic attempts at the same failure carry their count into the new episode.
        let (attempts, sent_any) = match start.trigger {
            // Only attempts at the same kind of action continue a series.
            Trigger::Auto => self
                .memory
                .retries
                .as_ref()
                .filter(|r| r.purpose == start.purpose)
                .map_or((0, false), |r| (r.attempts, r.sent_any)),
            Trigger::Manual => (0, false),
        };
        let what = match start.purpose {
            Purpose::Promote => "failover",
            Purpose::DemoteStale => "fencing",
        };
        let undo = IntentUndo {
            cooldown_until: self.memory.cooldown_until,
            promoted: self.memory.promoted.clone(),
            retries: self.memory.retries.clone(),
        };
        let attempt = if attempts > 0 {
            format!(
                "attempt {} of {}; ",
                attempts.saturating_add(1),
                self.config.policy.max_attempts.max(1)
            )
        } else {
            String::new()
        };
        self.note(
            now,
            out,
            format!(
                "{} {what}: {attempt}{}",
                start.trigger.as_str(),
                start.reason
            ),
        );
        let promoted_before = self.memory.promoted.clone();
        if start.purpose == Purpose::Promote {
            // The cooldown and the authority to fence start with the intent, not with the
            // verified outcome: a crash in between must not allow a second failover.
            self.memory.cooldown_until = Some(UtcTime::from_system_time(later(
                now,
                self.config.policy.cooldown,
            )));
            self.memory.promoted = Some(self.config.names[start.target].clone());
        }
        if start.trigger == Trigger::Manual {
            self.memory.retries = None;
        }
        self.episode = Some(Episode {
            id: episode_id(now),
            purpose: start.purpose,
            trigger: start.trigger,
            from: start.from,
            target: start.target,
            plan: start.plan,
            step: 0,
            phase: Phase::Resuming,
            reason: start.reason,
            overridden: start.overridden,
            attempts,
            resumed_step: None,
            started_at: now,
            promoted_before,
            undo: Some(undo),
            sent_any,
            roles_reported_at_start: [self.views[0].role_reports, self.views[1].role_reports],
        });
        self.send_current_step(now, out);
        let description = self
            .episode
            .as_ref()
            .map(|e| self.describe_episode(e, now))
            .unwrap_or_default();
        SiteState::new(StateKind::FailingOver, description)
    }

    /// Persists the intent, then asks for the current step's call.
    fn send_current_step(&mut self, now: SystemTime, out: &mut Vec<Action>) {
        let call_id = self.next_call_id;
        self.next_call_id = self.next_call_id.wrapping_add(1);
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
        let first = episode.step == 0;
        let call = FailoverCall {
            vetoable: first
                && episode.trigger == Trigger::Auto
                && episode.purpose == Purpose::Promote,
            first,
            call_id,
            appliance: step.appliance,
            appliance_name: self.config.names[step.appliance].clone(),
            request: step.request,
            trigger: episode.trigger,
            reason: episode.reason.clone(),
        };
        self.memory.episode = Some(episode.record(&self.config.names));
        out.push(Action::Persist(self.memory.clone()));
        out.push(Action::CallFailover(call));
    }

    pub(super) fn advance_episode(&mut self, now: SystemTime, out: &mut Vec<Action>) {
        let blind = self.blind_now();
        let Some(episode) = &mut self.episode else {
            return;
        };
        let timeout = self.config.policy.converge_timeout;
        match episode.phase {
            Phase::Resuming => {
                // Long enough for an accepted call's effect to show in fresh roles: a few polls,
                // and a quarter of the convergence allowance (at most RESUME_CHECK_MAX).
                let settle = self
                    .config
                    .policy
                    .poll_interval
                    .saturating_mul(3)
                    .max((timeout / 4).min(RESUME_CHECK_MAX));
                episode.phase = Phase::Verifying {
                    since: now,
                    check_at: later(now, settle),
                    deadline: later(now, timeout),
                };
                let step = episode
                    .current()
                    .map(|s| describe_step(s, &self.config.names))
                    .unwrap_or_default();
                let message = format!(
                    "resumed episode {} after restart: verifying {step}; its call may have left before the restart, so it is sent again only if the roles show it never arrived; because {}",
                    episode.id, episode.reason
                );
                self.note(now, out, message);
                out.push(Action::PollSoon);
            }
            Phase::Verifying {
                since: from,
                check_at,
                deadline,
            } => {
                let Some(step) = episode.current().copied() else {
                    return;
                };
                if step.converged(&self.views, from) {
                    // It arrived: carry on as after an accepted call.
                    episode.phase = Phase::Converging {
                        since: from,
                        deadline,
                    };
                    self.advance_episode(now, out);
                } else if now >= check_at && step.not_received(&self.views, from) && !blind {
                    // The call before the restart may have been received and refused; the
                    // resend is counted as an attempt either way, so restarts cannot add calls
                    // beyond max_attempts.
                    episode.resumed_step = None;
                    episode.attempts = episode.attempts.saturating_add(1);
                    if episode.attempts >= self.config.policy.max_attempts.max(1) {
                        let why = format!(
                            "after the restart the roles show the call ({}) had no effect, and {} attempts are spent",
                            describe_step(&step, &self.config.names),
                            episode.attempts
                        );
                        self.finish_episode(now, Outcome::Failure, Some(why), out);
                        return;
                    }
                    let message = format!(
                        "resumed episode {}: the roles show the call ({}) never reached {} before the restart; sending it now",
                        episode.id,
                        describe_step(&step, &self.config.names),
                        self.config.names[step.appliance]
                    );
                    self.note(now, out, message);
                    self.send_step_if_still_sound(now, out);
                } else if now >= deadline {
                    let why = format!(
                        "{} did not report {} within {} after the restart",
                        self.config.names[step.appliance],
                        step.request.role,
                        duration(timeout)
                    );
                    self.attempt_failed(now, why, out);
                } else {
                    out.push(Action::PollSoon);
                }
            }
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
                    let done = episode.step.saturating_add(1) >= episode.plan.len();
                    let name = self.config.names[step.appliance].clone();
                    let role = step.request.role;
                    self.note(now, out, format!("{name} now reports {role}"));
                    if done {
                        self.finish_episode(now, Outcome::Success, None, out);
                    } else if let Some(episode) = &mut self.episode {
                        episode.step += 1;
                        self.send_step_if_still_sound(now, out);
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
                    out.push(Action::PollSoon);
                }
            }
            Phase::RetryAt { at } => {
                // Mode and stall still hold an automatic call back; a pause does not (a
                // failover in progress is finished, or the pair is left with no primary).
                let automatic = episode.trigger == Trigger::Auto;
                // Whatever started it, no call goes out on a picture where neither appliance
                // answers.
                let held =
                    blind || (automatic && (self.config.mode == Mode::Observe || self.stalled()));
                if now >= at && !held {
                    self.send_step_if_still_sound(now, out);
                }
            }
        }
    }

    /// The backup was checked when the failover was decided; it must still be a healthy
    /// backup when the promotion is actually sent.
    fn send_step_if_still_sound(&mut self, now: SystemTime, out: &mut Vec<Action>) {
        let problem = self
            .episode
            .as_ref()
            .and_then(|e| e.current().copied())
            .filter(|s| s.request.role == FailoverRole::Primary)
            .and_then(|s| self.backup_problem(s.appliance));
        match problem {
            Some(problem) => {
                self.attempt_failed(now, format!("not promoting after all: {problem}"), out)
            }
            None => self.send_current_step(now, out),
        }
    }

    pub(super) fn attempt_failed(&mut self, now: SystemTime, why: String, out: &mut Vec<Action>) {
        let Some(mut episode) = self.episode.take() else {
            return;
        };
        if episode.trigger == Trigger::Manual {
            self.episode = Some(episode);
            self.finish_episode(now, Outcome::Failure, Some(why), out);
            return;
        }
        if episode.resumed_step == Some(episode.step) {
            self.episode = Some(episode);
            let why = format!(
                "{why}; the call may have been sent before the restart, so it is not sent again"
            );
            self.finish_episode(now, Outcome::Failure, Some(why), out);
            return;
        }
        let graceful = episode.current().is_some_and(|s| s.request.data_sync_first);
        episode.attempts = episode.attempts.saturating_add(1);
        let max = self.config.policy.max_attempts.max(1);
        if episode.attempts >= max {
            self.episode = Some(episode);
            self.finish_episode(now, Outcome::Failure, Some(why), out);
            return;
        }
        let wait = self
            .config
            .policy
            .backoff_before(episode.attempts.saturating_add(1));
        let at = later(now, wait);
        if episode.step > 0 {
            // Earlier steps changed the roles (the old primary is fenced): abandoning now would
            // leave no primary, so this episode retries its step.
            let step = episode
                .current()
                .map(|s| describe_step(s, &self.config.names))
                .unwrap_or_default();
            let message = format!(
                "attempt {} of {max} failed: {why}; {step} again in {} (earlier steps already took effect)",
                episode.attempts,
                duration(wait)
            );
            episode.phase = Phase::RetryAt { at };
            self.memory.episode = Some(episode.record(&self.config.names));
            self.episode = Some(episode);
            out.push(Action::Persist(self.memory.clone()));
            self.warn(now, out, message);
            return;
        }
        let escalate = graceful
            || self
                .memory
                .retries
                .as_ref()
                .is_some_and(|r| r.escalate_to_fence);
        self.memory.retries = Some(RetrySeries {
            purpose: episode.purpose,
            attempts: episode.attempts,
            last_failure_at: UtcTime::from_system_time(now),
            next_attempt_at: UtcTime::from_system_time(at),
            escalate_to_fence: escalate,
            sent_any: episode.sent_any,
        });
        self.memory.episode = None;
        self.hand_back_authority(&episode);
        out.push(Action::Persist(self.memory.clone()));
        let next = if graceful {
            "; the next attempt fences the old primary first"
        } else {
            ""
        };
        self.warn(
            now,
            out,
            format!(
                "attempt {} of {max} failed: {why}; trying again in {}{next}",
                episode.attempts,
                duration(wait)
            ),
        );
    }

    pub(super) fn finish_episode(
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
        self.memory.episode = None;
        self.memory.retries = None;
        if outcome == Outcome::Success {
            self.streak = None;
        }
        let gave_up = |reason: &str| GaveUp {
            since: UtcTime::from_system_time(now),
            reason: reason.to_string(),
        };
        match (episode.purpose, outcome) {
            (Purpose::DemoteStale, Outcome::Success) => {
                out.push(Action::Persist(self.memory.clone()));
                let message = format!(
                    "split brain ended: {} is backup again; {to} stays primary",
                    from.clone().unwrap_or_default()
                );
                self.note(now, out, message);
                return;
            }
            (Purpose::DemoteStale, Outcome::Failure) => {
                let message = format!(
                    "could not demote {}: {}",
                    from.clone().unwrap_or_default(),
                    why.unwrap_or_default()
                );
                self.memory.gave_up = Some(gave_up(&message));
                out.push(Action::Persist(self.memory.clone()));
                self.warn(now, out, message);
                return;
            }
            _ => {}
        }
        let reason = match &why {
            None => episode.reason.clone(),
            Some(why) => format!("{why} (after: {})", episode.reason),
        };
        let cooldown = self.config.policy.cooldown;
        self.memory.cooldown_until = Some(UtcTime::from_system_time(later(now, cooldown)));
        self.memory.last_failover = Some(FailoverRecord {
            at: UtcTime::from_system_time(now),
            from: from.clone(),
            to: to.clone(),
            trigger: episode.trigger,
            outcome,
            reason: reason.clone(),
            overridden: episode.overridden,
        });
        // An operator's demotion ending a split brain: `to` stayed primary throughout.
        let demotion = episode.demotes_only();
        let demoted = from.clone().unwrap_or_default();
        match outcome {
            Outcome::Success => {
                self.memory.gave_up = None;
                self.memory.promoted = Some(to.clone());
                let message = if demotion {
                    format!(
                        "{demoted} demoted: {to} is the only primary; cooldown for {}",
                        duration(cooldown)
                    )
                } else {
                    format!("failover to {to} done; cooldown for {}", duration(cooldown))
                };
                self.note(now, out, message);
            }
            Outcome::Failure => {
                self.hand_back_authority(&episode);
                let what = if demotion {
                    format!("demotion of {demoted}")
                } else {
                    format!("failover to {to}")
                };
                let message = format!(
                    "{what} failed: {}; cooldown for {}",
                    why.unwrap_or_default(),
                    duration(cooldown)
                );
                // Holding still after a failed failover is what stops a retry storm; it lasts
                // until an operator acknowledges, across restarts.
                if episode.trigger == Trigger::Auto {
                    self.memory.gave_up = Some(gave_up(&message));
                }
                self.warn(now, out, message);
            }
        }
        out.push(Action::Persist(self.memory.clone()));
        out.push(Action::FailoverFinished(FailoverSummary {
            trigger: episode.trigger,
            outcome,
            from,
            to,
            reason,
            sent: episode.sent_any,
        }));
    }

    /// Neither appliance answers now: the watchdog's own network is the likelier fault, and
    /// no call is sent on such a picture (a later step or a resend waits).
    fn blind_now(&self) -> bool {
        !self.views.iter().any(|v| v.answering())
    }

    /// The authority to fence came with the intent; an episode that failed without its target
    /// becoming primary hands it back (a later split brain is then not ours to "fix" by force).
    fn hand_back_authority(&mut self, episode: &Episode) {
        if episode.purpose != Purpose::Promote {
            return;
        }
        let target = &self.views[episode.target];
        let became_primary = target.role_reports > episode.roles_reported_at_start[episode.target]
            && target.answering()
            && target.role_is_current()
            && target.role() == Some(FailoverRole::Primary);
        // A demotion's target was primary all along: only its success grants the authority.
        if !became_primary || episode.demotes_only() {
            self.memory.promoted = episode.promoted_before.clone();
        }
    }

    pub(super) fn describe_episode(&self, episode: &Episode, now: SystemTime) -> String {
        let total = episode.plan.len();
        let step = episode.current();
        let what = step
            .map(|s| {
                format!(
                    "{} {}",
                    describe_step(s, &self.config.names),
                    if total > 1 {
                        format!("(step {} of {total})", episode.step.saturating_add(1))
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
            Phase::RetryAt { at } => format!(
                "attempt {} failed, trying again in {}",
                episode.attempts,
                duration(since(at, now))
            ),
            Phase::Resuming => "resuming after a restart".to_string(),
            Phase::Verifying { since: from, .. } => format!(
                "resumed after a restart {} ago, verifying whether its call arrived",
                duration(since(now, from))
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

    pub(super) fn on_call_result(
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
        if !matches!(
            result,
            CallResult::NotSent { .. } | CallResult::Vetoed { .. }
        ) {
            // A call went out: what it may have done cannot be undone any more.
            episode.undo = None;
        }
        match result {
            CallResult::Accepted(accepted) => {
                episode.sent_any = true;
                let timeout = self.config.policy.converge_timeout;
                episode.phase = Phase::Converging {
                    since: now,
                    deadline: later(now, timeout),
                };
                let appliance = episode
                    .current()
                    .map(|s| self.config.names[s.appliance].clone())
                    .unwrap_or_default();
                let completes_later = if accepted.completes_later {
                    "; the role change completes later"
                } else {
                    ""
                };
                let message = format!(
                    "{appliance} accepted the call ({}){completes_later}; waiting up to {} for the roles to change",
                    accepted.message,
                    duration(timeout)
                );
                self.note(now, out, message);
                out.push(Action::PollSoon);
            }
            CallResult::Failed { kind, message } => {
                episode.sent_any = true;
                self.attempt_failed(now, format!("the call failed ({kind}: {message})"), out);
            }
            CallResult::NeverLeft { kind, message } => {
                self.attempt_failed(
                    now,
                    format!("the call could not be sent ({kind}: {message})"),
                    out,
                );
            }
            CallResult::NotSent { reason } => self.call_not_sent(now, reason, out),
            CallResult::Vetoed { reason } => self.call_vetoed(now, reason, out),
        }
    }

    /// The pre-failover hook said no: nothing was sent, the intent is undone (no cooldown, no
    /// attempt counted), and automatic action holds for `retry_backoff` before the hook is
    /// asked again (if the failure lasts).
    fn call_vetoed(&mut self, now: SystemTime, reason: String, out: &mut Vec<Action>) {
        let Some(mut episode) = self.episode.take() else {
            return;
        };
        let wait = self.config.policy.retry_backoff;
        let step = episode
            .current()
            .map(|s| describe_step(s, &self.config.names))
            .unwrap_or_default();
        self.vetoed = Some((later(now, wait), reason.clone()));
        if let Some(undo) = episode.undo.take() {
            self.memory.cooldown_until = undo.cooldown_until;
            self.memory.promoted = undo.promoted;
            self.memory.retries = undo.retries;
        }
        self.memory.episode = None;
        out.push(Action::Persist(self.memory.clone()));
        let message = format!(
            "{} failover vetoed by the pre-failover hook: {reason}; the call ({step}) was not sent, no cooldown started; asking again in {} if the failure lasts",
            episode.trigger.as_str(),
            duration(wait)
        );
        self.note(now, out, message);
    }

    /// The daemon could not write the intent durably, so it did not send the call. Nothing
    /// reached an appliance: this is not a failed attempt and starts no cooldown. An episode
    /// that had sent nothing yet is undone as if it never started; one whose earlier steps
    /// took effect keeps its place and sends the step again later. Automatic action then
    /// holds for `retry_backoff`, after which the next write is tried again.
    fn call_not_sent(&mut self, now: SystemTime, reason: String, out: &mut Vec<Action>) {
        let Some(mut episode) = self.episode.take() else {
            return;
        };
        let wait = self.config.policy.retry_backoff;
        let what = match episode.purpose {
            Purpose::Promote => "failover",
            Purpose::DemoteStale => "fencing",
        };
        let step = episode
            .current()
            .map(|s| describe_step(s, &self.config.names))
            .unwrap_or_default();
        let trigger = episode.trigger;
        if trigger == Trigger::Auto {
            self.intent_unwritable = Some((later(now, wait), reason.clone()));
        }
        let retry = match trigger {
            Trigger::Auto => format!("; trying again in {} at the earliest", duration(wait)),
            Trigger::Manual => {
                "; nothing was sent: ask again once the intent can be saved (the state directory, or etcd when clustered)".to_string()
            }
        };
        match episode.undo.take() {
            Some(undo) => {
                self.memory.cooldown_until = undo.cooldown_until;
                self.memory.promoted = undo.promoted;
                self.memory.retries = undo.retries;
                self.memory.episode = None;
                // Written as soon as the directory can be: an intent that reached the disk
                // after all must not be resumed as if its call had gone out.
                out.push(Action::Persist(self.memory.clone()));
                let message = format!(
                    "{} {what} not carried out: its intent could not be written ({reason}), so the call ({step}) was not sent; nothing reached the appliances, no cooldown started{retry}",
                    trigger.as_str()
                );
                self.note(now, out, message);
            }
            None => {
                // Earlier steps changed the roles: the episode keeps them and retries its step.
                episode.phase = Phase::RetryAt {
                    at: later(now, wait),
                };
                self.episode = Some(episode);
                let message = format!(
                    "{} {what}: the intent of the next call could not be written ({reason}), so {step} was not sent; again in {}",
                    trigger.as_str(),
                    duration(wait)
                );
                self.note(now, out, message);
            }
        }
    }
}

/// After a restart, the longest the roles are watched before a step whose call shows no sign of
/// having arrived is sent.
const RESUME_CHECK_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// An episode's id: the millisecond it started (one site never starts two in one ms).
fn episode_id(now: SystemTime) -> u64 {
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}
