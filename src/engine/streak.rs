//! A failing primary's streak: the evidence `failover_after` and `failure_threshold` judge.

use std::time::SystemTime;

use super::observation::Slot;

/// A failing primary: since when, until the last poll that observed it failing, and for how
/// many such polls. Polls that observed nothing are not counted.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Streak {
    pub(super) slot: Slot,
    pub(super) since: SystemTime,
    pub(super) last_seen: SystemTime,
    pub(super) polls: u32,
}

impl Streak {
    /// How long the primary was observed failing.
    pub(super) fn observed_for(&self) -> std::time::Duration {
        super::clock::since(self.last_seen, self.since)
    }
}
