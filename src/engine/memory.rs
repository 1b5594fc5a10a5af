//! What the engine must remember across restarts. The daemon persists it after every change;
//! its `version` lets a newer watchdog read an older file (and refuse a newer one clearly).

use serde::{Deserialize, Serialize};

use crate::api::time::UtcTime;

pub const MEMORY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub version: u32,
    /// The newest `last_data_sync` any primary reported. The backup does not report it, so
    /// when the primary dies this is all we know about how fresh the backup's data is.
    pub last_data_sync: Option<UtcTime>,
    pub last_failover: Option<FailoverRecord>,
    pub cooldown_until: Option<UtcTime>,
    /// The appliance this watchdog last promoted, until the pair is whole again: if the old
    /// primary comes back still claiming to be primary, this is what makes demoting it safe.
    pub promoted: Option<String>,
    pub pause: Option<PauseRecord>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            version: MEMORY_VERSION,
            last_data_sync: None,
            last_failover: None,
            cooldown_until: None,
            promoted: None,
            pause: None,
        }
    }
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
            last_data_sync: UtcTime::parse("2026-11-23T05:00:00Z").ok(),
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
}
