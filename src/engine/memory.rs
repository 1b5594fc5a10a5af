//! What the engine must remember across restarts. The daemon persists it after every change,
//! and before every failover call (the intent); its `version` lets a newer watchdog read an
//! older file (and refuse a newer one clearly).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::clock::since;
use crate::api::model::FailoverRequest;
use crate::api::time::UtcTime;

/// Version 2: the data gate's report with its source and receipt time, the retry series, the
/// "gave up" flag and the episode in progress. Version 1 files are read and upgraded.
pub const MEMORY_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub version: u32,
    /// What the current primary last reported as `last_data_sync`, and when. The backup does
    /// not report it, so when the primary dies this is all we know about how fresh the
    /// backup's data is.
    #[serde(default)]
    pub data_sync: Option<SyncReport>,
    pub last_failover: Option<FailoverRecord>,
    pub cooldown_until: Option<UtcTime>,
    /// The appliance this watchdog promoted (or is promoting), until the pair is whole again:
    /// if the old primary comes back still claiming to be primary, this is what makes demoting
    /// it safe. It starts with the intent, before the call.
    pub promoted: Option<String>,
    pub pause: Option<PauseRecord>,
    /// The automatic attempts at the failure in hand, so that a restart grants no fresh ones.
    #[serde(default)]
    pub retries: Option<RetrySeries>,
    /// Automatic action gave up after failed attempts; only an operator's ack ends it.
    #[serde(default)]
    pub gave_up: Option<GaveUp>,
    /// The failover in progress, written before its first call: a restart resumes it (verify
    /// and converge) instead of deciding afresh.
    #[serde(default)]
    pub episode: Option<EpisodeRecord>,
    /// Version 1's newest sync time from any primary; read once, upgraded into `data_sync`.
    #[serde(default, rename = "last_data_sync", skip_serializing)]
    pub(crate) legacy_last_data_sync: Option<UtcTime>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            version: MEMORY_VERSION,
            data_sync: None,
            last_failover: None,
            cooldown_until: None,
            promoted: None,
            pause: None,
            retries: None,
            gave_up: None,
            episode: None,
            legacy_last_data_sync: None,
        }
    }
}

impl Memory {
    /// A memory read from an older file, in today's form. A version 1 sync time had no source
    /// and no receipt time: it is kept as received when it was taken, so its age only grows.
    pub fn upgraded(mut self) -> Self {
        if let Some(reported) = self.legacy_last_data_sync.take()
            && self.data_sync.is_none()
        {
            self.data_sync = Some(SyncReport {
                reported,
                received_at: reported,
                from: None,
            });
        }
        self.version = MEMORY_VERSION;
        self
    }
}

/// The primary's own word on its last data sync, as the data gate uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncReport {
    /// The `last_data_sync` the primary reported.
    pub reported: UtcTime,
    /// When this watchdog received that report.
    pub received_at: UtcTime,
    /// Which appliance reported it (absent in memories upgraded from version 1).
    pub from: Option<String>,
}

impl SyncReport {
    /// The age of the backup's data at `now`: the age reported (never below zero, whatever
    /// the primary's clock says) plus the time since it was received. A clock that went back
    /// never makes it fresher than it was when received.
    pub fn age_at(&self, now: SystemTime) -> Duration {
        let received = self.received_at.to_system_time();
        since(received, self.reported.to_system_time()).saturating_add(since(now, received))
    }
}

fn promotion() -> Purpose {
    Purpose::Promote
}

/// Failed automatic attempts at one failure; forgotten after a success, an ack, or a
/// cooldown's length without a new failure (not merely when the primary looks better for a
/// moment, or a flapping primary would earn a fresh set of attempts every time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySeries {
    /// What the failed attempts were for: a fencing's retries are not a promotion's.
    #[serde(default = "promotion")]
    pub purpose: Purpose,
    pub attempts: u32,
    pub last_failure_at: UtcTime,
    pub next_attempt_at: UtcTime,
    /// A graceful swap failed: the next plan fences the old primary first.
    pub escalate_to_fence: bool,
    /// Whether an earlier attempt's call reached the network (written only when it did, so
    /// that a state file without it still loads in an older watchdog).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_any: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaveUp {
    pub since: UtcTime,
    pub reason: String,
}

/// The intent of a failover: what it is for, its calls, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeRecord {
    pub id: u64,
    pub purpose: Purpose,
    pub trigger: Trigger,
    pub from: Option<String>,
    pub target: String,
    pub plan: Vec<RecordedStep>,
    /// The step whose call may have been sent: after a restart it is verified, never re-sent.
    pub step: usize,
    /// Failed attempts within this episode (a promotion retried after its fence worked).
    pub attempts: u32,
    pub reason: String,
    pub overridden: bool,
    pub started_at: UtcTime,
    /// Who held the authority to fence before this episode: handed back if it fails.
    #[serde(default)]
    pub promoted_before: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedStep {
    pub appliance: String,
    pub request: FailoverRequest,
}

/// What an episode is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Make `target` the primary.
    Promote,
    /// End a split brain the watchdog caused, by demoting the stale primary.
    DemoteStale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Auto,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Auto => "auto",
            Trigger::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRecord {
    pub at: UtcTime,
    pub from: Option<String>,
    pub to: String,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub reason: String,
    /// A manual failover whose failed preflight the operator overrode.
    #[serde(default)]
    pub overridden: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRecord {
    pub reason: String,
    pub by: String,
    pub since: UtcTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let memory = Memory {
            data_sync: Some(SyncReport {
                reported: UtcTime::parse("2026-11-23T05:00:00Z").unwrap(),
                received_at: UtcTime::parse("2026-11-23T05:00:02Z").unwrap(),
                from: Some("east".into()),
            }),
            cooldown_until: UtcTime::parse("2026-11-23T06:00:00Z").ok(),
            promoted: Some("west".into()),
            pause: Some(PauseRecord {
                reason: "maintenance".into(),
                by: "alice".into(),
                since: UtcTime::parse("2026-11-23T04:00:00Z").unwrap(),
            }),
            last_failover: Some(FailoverRecord {
                at: UtcTime::parse("2026-11-23T05:30:00Z").unwrap(),
                from: Some("east".into()),
                to: "west".into(),
                trigger: Trigger::Auto,
                outcome: Outcome::Success,
                reason: "primary east down".into(),
                overridden: false,
            }),
            ..Memory::default()
        };
        let text = serde_json::to_string(&memory).unwrap();
        assert_eq!(serde_json::from_str::<Memory>(&text).unwrap(), memory);
    }

    #[test]
    fn a_version_1_file_is_upgraded_and_its_age_only_grows() {
        let v1 = r#"{"version":1,"last_data_sync":"2026-11-23T05:00:00Z","last_failover":null,
            "cooldown_until":null,"promoted":null,"pause":null}"#;
        let memory = serde_json::from_str::<Memory>(v1).unwrap().upgraded();
        assert_eq!(memory.version, MEMORY_VERSION);
        let report = memory.data_sync.clone().expect("upgraded");
        assert_eq!(report.from, None);
        let at = UtcTime::parse("2026-11-23T05:10:00Z")
            .unwrap()
            .to_system_time();
        assert_eq!(report.age_at(at), Duration::from_secs(600));
        let text = serde_json::to_string(&memory).unwrap();
        assert!(!text.contains("last_data_sync"), "{text}");
    }

    #[test]
    fn the_age_is_the_reported_age_plus_the_time_since_and_never_fresher() {
        let report = SyncReport {
            reported: UtcTime::parse("2026-11-23T05:00:00Z").unwrap(),
            received_at: UtcTime::parse("2026-11-23T05:02:00Z").unwrap(),
            from: Some("east".into()),
        };
        let received = report.received_at.to_system_time();
        assert_eq!(report.age_at(received), Duration::from_secs(120));
        let later = received + Duration::from_secs(60);
        assert_eq!(report.age_at(later), Duration::from_secs(180));
        // The wall clock went back: the age stays what it was at receipt.
        let earlier = received - Duration::from_secs(600);
        assert_eq!(report.age_at(earlier), Duration::from_secs(120));
    }
}
