//! A failing primary's streak: the evidence `failover_after` and `failure_threshold` judge.

use std::time::SystemTime;

use super::observation::Slot;

/// A failing primary: since when, for how many polls, and how.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Streak {
    pub(super) slot: Slot,
    pub(super) since: SystemTime,
    pub(super) polls: u32,
}
