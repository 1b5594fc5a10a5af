//! Operator commands: pause, resume, acknowledge, manual failover.

use std::time::{Duration, SystemTime};

use super::action::Action;
use super::machine::Engine;
use super::memory::PauseRecord;
use super::observation::Command;
use crate::api::time::UtcTime;

impl Engine {
    pub(super) fn on_command(&mut self, now: SystemTime, command: Command, out: &mut Vec<Action>) {
        match command {
            Command::Pause { reason, by } => {
                let in_flight = if self.episode.is_some() {
                    "; the failover in progress is finished first (abandoning it halfway could leave no primary)"
                } else {
                    ""
                };
                let answer = match self.memory.pause.as_mut() {
                    // Already paused: the pause keeps its start; a new reason is said aloud,
                    // not swapped in silently.
                    Some(pause) if pause.reason == reason => format!(
                        "already paused by {} since {} ({}): nothing changed",
                        pause.by, pause.since, pause.reason
                    ),
                    Some(pause) => {
                        let answer = format!(
                            "already paused by {} since {} ({}); the reason is now {reason:?} (by {by})",
                            pause.by, pause.since, pause.reason
                        );
                        pause.reason = reason.clone();
                        pause.by = by.clone();
                        out.push(Action::Persist(self.memory.clone()));
                        self.note(now, out, format!("pause reason changed by {by}: {reason}"));
                        answer
                    }
                    None => {
                        self.memory.pause = Some(PauseRecord {
                            reason: reason.clone(),
                            by: by.clone(),
                            since: UtcTime::from_system_time(now),
                        });
                        out.push(Action::Persist(self.memory.clone()));
                        self.note(now, out, format!("paused by {by}: {reason}{in_flight}"));
                        format!("paused: no automatic failover until `resume`{in_flight}")
                    }
                };
                out.push(Action::CommandDone(answer));
            }
            Command::Resume { by } => {
                let answer = if let Some(pause) = self.memory.pause.take() {
                    out.push(Action::Persist(self.memory.clone()));
                    self.note(now, out, format!("resumed by {by}"));
                    format!(
                        "resumed (it was paused by {} since {}: {}): automatic failover is active again",
                        pause.by, pause.since, pause.reason
                    )
                } else {
                    self.note(
                        now,
                        out,
                        format!("{by} asked to resume, but the site was not paused"),
                    );
                    "nothing to resume: the site was not paused".to_string()
                };
                out.push(Action::CommandDone(answer));
            }
            Command::Acknowledge { reason, by } => {
                let cooldown = self.cooldown_remaining(now);
                let mut done = Vec::new();
                if cooldown > Duration::ZERO {
                    done.push(format!(
                        "the cooldown ({} left) ended early",
                        super::words::duration(cooldown)
                    ));
                }
                if let Some(gave_up) = &self.memory.gave_up {
                    done.push(format!(
                        "the hold after automatic action gave up ({}) is lifted: the watchdog may try again at once if the primary is still failing",
                        gave_up.reason
                    ));
                } else if self.memory.retries.is_some() {
                    done.push("the failed attempts so far are forgotten".to_string());
                }
                let answer = if done.is_empty() {
                    self.note(
                        now,
                        out,
                        format!("{by} acknowledged ({reason}), but there was no cooldown and no failed failover to acknowledge"),
                    );
                    "nothing to acknowledge: no cooldown is running and no failover failed"
                        .to_string()
                } else {
                    self.memory.cooldown_until = None;
                    self.memory.gave_up = None;
                    self.memory.retries = None;
                    out.push(Action::Persist(self.memory.clone()));
                    let what = done.join("; ");
                    self.note(now, out, format!("acknowledged by {by} ({reason}): {what}"));
                    format!("acknowledged: {what}")
                };
                out.push(Action::CommandDone(answer));
            }
            Command::Failover(request) => super::manual::handle(self, now, request, out),
        }
    }
}
