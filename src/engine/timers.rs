//! When the engine must be stepped even if nothing new is observed, in the spirit of
//! quinn-proto's `poll_timeout`: the driver sleeps until then and sends `Input::Tick`.
//!
//! Without it, a deadline, a retry or the end of a cooldown would only be noticed at the next
//! poll, and a slow poll interval would stretch every timer by up to one interval.

use std::time::{Duration, SystemTime};

use super::clock::later;

use super::episode::Phase;
use super::machine::Engine;

/// Deadlines compared with `>` fire one tick after the instant itself.
const JUST_AFTER: Duration = Duration::from_millis(1);

impl Engine {
    /// The earliest time after the last step at which something may change by time alone:
    /// a call's answer overdue, roles not converged by their deadline, the next retry, the end
    /// of a cooldown, of the start-up grace, of a swap's settle time or of a stall's recovery.
    pub fn next_wakeup(&self) -> Option<SystemTime> {
        let policy = &self.config.policy;
        let episode_deadline = self.episode.as_ref().and_then(|e| match e.phase {
            Phase::AwaitingAnswer { sent_at, .. } => {
                Some(later(later(sent_at, policy.converge_timeout), JUST_AFTER))
            }
            Phase::Converging { deadline, .. } => Some(deadline),
            Phase::RetryAt { at } => Some(at),
            Phase::Resuming => None,
            Phase::Verifying {
                check_at, deadline, ..
            } => Some(if self.last_step.is_some_and(|l| l >= check_at) {
                deadline
            } else {
                check_at
            }),
        });
        let next_attempt = self
            .memory
            .retries
            .as_ref()
            .map(|r| r.next_attempt_at.to_system_time());
        let grace_end = self
            .started_at
            .filter(|_| !self.started)
            .map(|s| later(s, policy.startup_grace));
        let settle_end = self.no_primary_since.map(|s| later(s, policy.swap_settle));
        let stall_end = self
            .stalled_until_regular_from
            .map(|s| later(s, policy.stall_recovery()));
        let cooldown_end = self.memory.cooldown_until.map(|t| t.to_system_time());
        let unwritable_end = self.intent_unwritable.as_ref().map(|(until, _)| *until);
        let veto_end = self.vetoed.as_ref().map(|(until, _)| *until);
        [
            episode_deadline,
            next_attempt,
            cooldown_end,
            grace_end,
            settle_end,
            stall_end,
            unwritable_end,
            veto_end,
        ]
        .into_iter()
        .flatten()
        .filter(|t| self.last_step.is_none_or(|last| *t > last))
        .min()
    }
}
