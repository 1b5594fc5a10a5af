//! When the engine must be stepped even if nothing new is observed, in the spirit of
//! quinn-proto's `poll_timeout`: the driver sleeps until then and sends `Input::Tick`.
//!
//! Without it, a deadline, a retry or the end of a cooldown would only be noticed at the next
//! poll, and a slow poll interval would stretch every timer by up to one interval.

use std::time::{Duration, SystemTime};

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
            Phase::AwaitingAnswer { sent_at, .. } => sent_at
                .checked_add(policy.converge_timeout)
                .and_then(|t| t.checked_add(JUST_AFTER)),
            Phase::Converging { deadline, .. } => Some(deadline),
        });
        let grace_end = self
            .started_at
            .filter(|_| !self.started)
            .and_then(|s| s.checked_add(policy.startup_grace));
        let settle_end = self
            .no_primary_since
            .and_then(|s| s.checked_add(policy.swap_settle));
        let stall_end = self
            .stalled_until_regular_from
            .and_then(|s| s.checked_add(policy.stall_recovery()));
        let cooldown_end = self.memory.cooldown_until.map(|t| t.to_system_time());
        [
            episode_deadline,
            self.next_attempt_at,
            cooldown_end,
            grace_end,
            settle_end,
            stall_end,
        ]
        .into_iter()
        .flatten()
        .filter(|t| self.last_step.is_none_or(|last| *t > last))
        .min()
    }
}
