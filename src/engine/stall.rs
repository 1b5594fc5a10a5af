//! Recognising a stalled loop: a frozen process or a clock that jumped makes time-based
//! evidence worthless, so action waits until steps have been regular again.

use std::time::SystemTime;

use super::action::Action;
use super::clock::since;
use super::machine::Engine;
use super::words::duration;

impl Engine {
    pub(super) fn track_time(&mut self, now: SystemTime, out: &mut Vec<Action>) {
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

    pub(super) fn stalled(&self) -> bool {
        self.stalled_until_regular_from.is_some()
    }
}
