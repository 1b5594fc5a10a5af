//! The rules a site's engine follows, with safe defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether the watchdog may act on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decide and report what would be done; never call `/failover-role` automatically.
    Observe,
    /// Carry out automatic failovers.
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Auto => "auto",
        }
    }
}

/// The site's `policy` table. Serializable for the journal, which records the policy a run
/// decided with so that replay can use it (or change it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// How long the primary must fail before a failover.
    pub failover_after: Duration,
    /// How many consecutive failed polls of the primary are needed as well.
    pub failure_threshold: u32,
    /// The newest data the backup can have must be at most this old to promote it.
    pub max_sync_age: Duration,
    /// After a failover (or a failover that finally failed), nothing automatic happens for this long.
    pub cooldown: Duration,
    /// How long after a successful call the roles may take to change.
    pub converge_timeout: Duration,
    /// How long both appliances may read `backup` (a planned swap) before that is "no primary".
    pub swap_settle: Duration,
    /// Attempts at one automatic failover before giving up (first try included).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles for each further one.
    pub retry_backoff: Duration,
    /// How long a fresh start may wait for a full picture before deciding with what it has.
    pub startup_grace: Duration,
    /// The expected time between polls, to recognise a stalled loop.
    pub poll_interval: Duration,
    /// A gap between two steps longer than this is a stall (frozen process, clock jump).
    pub stall_tolerance: Duration,
    /// An automatic failover while the primary still answers (its users are still connected)
    /// is refused when more representatives than this are connected to it. Never applied to
    /// a primary that does not answer.
    pub max_representatives_for_switchover: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            failover_after: Duration::from_secs(30),
            failure_threshold: 3,
            max_sync_age: Duration::from_secs(15 * 60),
            cooldown: Duration::from_secs(30 * 60),
            converge_timeout: Duration::from_secs(120),
            swap_settle: Duration::from_secs(120),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(30),
            startup_grace: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            stall_tolerance: Duration::from_secs(30),
            max_representatives_for_switchover: None,
        }
    }
}

impl Policy {
    /// After a stall, action stays disabled until steps have again been regular for this long:
    /// twice the failure window, so that a fresh failure streak is seen whole before acting.
    pub fn stall_recovery(&self) -> Duration {
        self.failover_after
            .saturating_mul(2)
            .max(self.poll_interval.saturating_mul(3))
    }

    /// Backoff before attempt `attempt` (2 is the first retry).
    pub fn backoff_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(8);
        self.retry_backoff.saturating_mul(2u32.pow(doublings))
    }
}
