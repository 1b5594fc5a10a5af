//! The data gate: how old the newest data the backup can have is, and whether that allows
//! promoting it.

use std::time::SystemTime;

use super::machine::Engine;
use super::state::Blocker;
use super::words::duration;

impl Engine {
    pub(super) fn data_text(&self, now: SystemTime) -> String {
        match self.sync_age(now) {
            Some(age) => format!("data {} old", duration(age)),
            None => "data age unknown".to_string(),
        }
    }

    /// The data-age check for promoting a backup: `None` when it passes.
    pub(super) fn sync_problem(&self, now: SystemTime) -> Option<(Blocker, String)> {
        match self.sync_age(now) {
            None => Some((
                Blocker::SyncUnknown,
                "the age of the backup's data is unknown (no primary has reported last_data_sync since this watchdog has memory); promoting it could lose data".to_string(),
            )),
            Some(age) if age > self.config.policy.max_sync_age => Some((
                Blocker::SyncStale,
                format!("the backup's data is {} old, more than max_sync_age {}; promoting it would lose that much", duration(age), duration(self.config.policy.max_sync_age)),
            )),
            Some(_) => None,
        }
    }
}
