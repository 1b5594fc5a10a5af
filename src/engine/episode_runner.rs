//! Carrying out an episode: send each call, verify its effect, retry within bounds, finish
//! with a cooldown.

use std::time::SystemTime;

use super::action::{Action, FailoverCall, FailoverSummary};
use super::episode::{Episode, Phase, Purpose, Step, describe_step};
use super::machine::Engine;
use super::memory::{FailoverRecord, Outcome, Trigger};
use super::observation::{CallResult, Slot};
use super::words::{duration, since};
use crate::api::model::FailoverRole;
use crate::api::time::UtcTime;

impl Engine {
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
        };
        self.episode = Some(episode);
        let what = match purpose {
            Purpose::Promote => "failover",
            Purpose::DemoteStale => "fencing",
        };
        self.note(now, out, format!("{} {what}: {reason}", trigger.as_str()));
        self.send_current_step(now, out);
    }

    pub(super) fn send_current_step(&mut self, now: SystemTime, out: &mut Vec<Action>) {
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

    pub(super) fn advance_episode(&mut self, now: SystemTime, out: &mut Vec<Action>) {
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
                    out.push(Action::PollSoon);
                }
            }
        }
    }

    pub(super) fn attempt_failed(&mut self, now: SystemTime, why: String, out: &mut Vec<Action>) {
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

    pub(super) fn describe_episode(&self, episode: &Episode, now: SystemTime) -> String {
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
}

impl Engine {
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
                out.push(Action::PollSoon);
            }
            CallResult::Failed { kind, message } => {
                self.attempt_failed(now, format!("the call failed ({kind}: {message})"), out);
            }
        }
    }
}
