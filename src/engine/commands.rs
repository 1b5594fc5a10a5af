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
                self.memory.gave_up = None;
                self.memory.retries = None;
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
}
