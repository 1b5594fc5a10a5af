//! The state of a site as the engine sees it, always with a reason a human can read.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// Gathering a full picture after a start.
    Starting,
    Healthy,
    /// The primary is fine but the backup is not usable (down, unhealthy, not `backup`).
    Degraded,
    /// The primary is failing, but not yet for long enough.
    PrimarySuspect,
    /// The primary has failed and a failover is needed, but something forbids it.
    FailoverBlocked,
    /// A failover call is in flight or its effect is awaited.
    FailingOver,
    /// After a failover: nothing automatic happens until it ends.
    Cooldown,
    /// Both appliances report `primary`.
    SplitBrain,
    /// Both appliances report `backup` for longer than a planned swap takes.
    NoPrimary,
    /// Neither appliance answers: the problem is more likely on the watchdog's side.
    Blind,
    /// An operator paused automatic action.
    Paused,
    /// The appliances are not in a failover relationship (`failover_role = none`).
    NotInFailover,
}

impl StateKind {
    pub const ALL: [StateKind; 12] = [
        StateKind::Starting,
        StateKind::Healthy,
        StateKind::Degraded,
        StateKind::PrimarySuspect,
        StateKind::FailoverBlocked,
        StateKind::FailingOver,
        StateKind::Cooldown,
        StateKind::SplitBrain,
        StateKind::NoPrimary,
        StateKind::Blind,
        StateKind::Paused,
        StateKind::NotInFailover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Starting => "starting",
            StateKind::Healthy => "healthy",
            StateKind::Degraded => "degraded",
            StateKind::PrimarySuspect => "primary_suspect",
            StateKind::FailoverBlocked => "failover_blocked",
            StateKind::FailingOver => "failing_over",
            StateKind::Cooldown => "cooldown",
            StateKind::SplitBrain => "split_brain",
            StateKind::NoPrimary => "no_primary",
            StateKind::Blind => "blind",
            StateKind::Paused => "paused",
            StateKind::NotInFailover => "not_in_failover",
        }
    }
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a needed failover is not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    ObserveMode,
    Paused,
    Cooldown,
    SyncStale,
    SyncUnknown,
    BackupUnusable,
    Blind,
    Stalled,
    Starting,
    RetryBackoff,
    RetriesExhausted,
    /// The last intent could not be written to the state directory.
    StateUnwritable,
    /// The pre-failover hook vetoed the failover.
    Vetoed,
    /// More representatives are connected to the answering primary than the policy allows
    /// an automatic switchover to disconnect.
    ClientsConnected,
}

impl Blocker {
    pub const ALL: [Blocker; 14] = [
        Blocker::ObserveMode,
        Blocker::Paused,
        Blocker::Cooldown,
        Blocker::SyncStale,
        Blocker::SyncUnknown,
        Blocker::BackupUnusable,
        Blocker::Blind,
        Blocker::Stalled,
        Blocker::Starting,
        Blocker::RetryBackoff,
        Blocker::RetriesExhausted,
        Blocker::StateUnwritable,
        Blocker::Vetoed,
        Blocker::ClientsConnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Blocker::ObserveMode => "observe_mode",
            Blocker::Paused => "paused",
            Blocker::Cooldown => "cooldown",
            Blocker::SyncStale => "sync_stale",
            Blocker::SyncUnknown => "sync_unknown",
            Blocker::BackupUnusable => "backup_unusable",
            Blocker::Blind => "blind",
            Blocker::Stalled => "stalled",
            Blocker::Starting => "starting",
            Blocker::RetryBackoff => "retry_backoff",
            Blocker::RetriesExhausted => "retries_exhausted",
            Blocker::StateUnwritable => "state_unwritable",
            Blocker::Vetoed => "vetoed",
            Blocker::ClientsConnected => "clients_connected",
        }
    }
}

/// The site's state: what, why, and what blocks action when something does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteState {
    pub kind: StateKind,
    pub reason: String,
    pub blocker: Option<Blocker>,
}

impl SiteState {
    pub fn new(kind: StateKind, reason: impl Into<String>) -> Self {
        SiteState {
            kind,
            reason: reason.into(),
            blocker: None,
        }
    }

    pub fn blocked(blocker: Blocker, reason: impl Into<String>) -> Self {
        SiteState {
            kind: StateKind::FailoverBlocked,
            reason: reason.into(),
            blocker: Some(blocker),
        }
    }
}
