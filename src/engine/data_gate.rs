//! The data gate: how old the newest data the backup can have is, and whether that allows
//! promoting it.
//!
//! It judges from the *current* primary's latest report of `last_data_sync` and the time the
//! watchdog received it: a lower value replaces a higher one (a sync that stalled after a
//! restore, a corrected clock), a report from an appliance that is no longer the primary is no
//! longer evidence, and after a restart the age only grows.

use std::time::{Duration, SystemTime};

use super::action::Action;
use super::clock::{later, since as since_time};
use super::machine::Engine;
use super::memory::SyncReport;
use super::observation::PollReport;
use super::state::Blocker;
use super::words::duration;
use crate::api::ErrorKind;
use crate::api::model::FailoverRole;
use crate::api::time::UtcTime;

/// A reported sync time further in the future than this is not believed (clock skew would
/// otherwise make stale data look fresh forever).
const MAX_SYNC_SKEW: Duration = Duration::from_secs(300);

impl Engine {
    /// Only a sync time in this very answer, from an appliance saying in it that it is the
    /// primary, counts: a remembered value must not be re-read later as if it were news.
    pub(super) fn absorb_sync_reports(
        &mut self,
        now: SystemTime,
        report: &PollReport,
        out: &mut Vec<Action>,
    ) {
        for (slot, appliance) in report.appliances.iter().enumerate() {
            let Some(Ok(health)) = &appliance.health else {
                continue;
            };
            let base = health.base();
            let (Some(FailoverRole::Primary), Some(reported)) =
                (base.failover_role, base.last_data_sync)
            else {
                continue;
            };
            if reported.to_system_time() > later(now, MAX_SYNC_SKEW) {
                continue;
            }
            let from = &self.config.names[slot];
            let known = self.memory.data_sync.as_ref();
            // The same value again changes nothing: its age is the same whenever it was read.
            if known.is_some_and(|k| k.reported == reported && k.from.as_ref() == Some(from)) {
                continue;
            }
            self.memory.data_sync = Some(SyncReport {
                reported,
                received_at: UtcTime::from_system_time(now),
                from: Some(from.clone()),
            });
            out.push(Action::Persist(self.memory.clone()));
        }
    }

    /// The report the gate may use: the current primary's, or none.
    pub fn sync_evidence(&self) -> Option<&SyncReport> {
        let report = self.memory.data_sync.as_ref()?;
        // A memory upgraded from version 1 does not say who reported; it stands until the
        // current primary reports anew.
        let Some(from) = &report.from else {
            return Some(report);
        };
        let slot = self.config.names.iter().position(|n| n == from)?;
        if let Some(primary) = self.current_primary() {
            return (primary == slot).then_some(report);
        }
        // No whole pair: the report stands unless its source now says it is not primary.
        let source = &self.views[slot];
        let demoted = source.role_is_current() && source.role() != Some(FailoverRole::Primary);
        (!demoted).then_some(report)
    }

    /// The age of the newest data the backup can have, when known.
    pub fn sync_age(&self, now: SystemTime) -> Option<Duration> {
        self.sync_evidence().map(|r| r.age_at(now))
    }

    pub(super) fn data_text(&self, now: SystemTime) -> String {
        match self.sync_evidence() {
            Some(report) => format!(
                "data {} old (last_data_sync {} reported by {})",
                duration(report.age_at(now)),
                report.reported,
                report.from.as_deref().unwrap_or("the primary")
            ),
            None => "data age unknown".to_string(),
        }
    }

    /// The data-age check for promoting a backup: `None` when it passes. When the data looks
    /// old because the watchdog itself has not been reading the primary (its own request
    /// budget, or a 429 it is honouring), the reason says so rather than blaming the data.
    pub(super) fn sync_problem(&self, now: SystemTime) -> Option<(Blocker, String)> {
        self.sync_problem_by_data(now).map(|(blocker, reason)| {
            // Only the primary's reads bring last_data_sync.
            let primary = self.views.iter().filter(|v| v.role() == Some(FailoverRole::Primary));
            let throttled = primary.into_iter().find_map(|view| match view.health_held_back {
                Some((since, kind @ (ErrorKind::Budget | ErrorKind::RateLimited))) => {
                    Some((view.name.clone(), since, kind))
                }
                _ => None,
            });
            match throttled {
                Some((name, since, kind)) => {
                    let why = if kind == ErrorKind::Budget {
                        "the watchdog's own request budget held its reads back"
                    } else {
                        "the watchdog is honouring a 429 from it"
                    };
                    (
                        blocker,
                        format!(
                            "{reason}; but {name} has not been read for {} ({why}), so the data may be fresher than that",
                            duration(since_time(now, since))
                        ),
                    )
                }
                None => (blocker, reason),
            }
        })
    }

    fn sync_problem_by_data(&self, now: SystemTime) -> Option<(Blocker, String)> {
        let max = self.config.policy.max_sync_age;
        match self.sync_evidence() {
            None => Some((
                Blocker::SyncUnknown,
                "the age of the backup's data is unknown (the current primary has not reported last_data_sync since this watchdog has memory); promoting it could lose data".to_string(),
            )),
            Some(report) if report.age_at(now) > max => Some((
                Blocker::SyncStale,
                format!(
                    "the backup's data is {} old (last_data_sync {} reported by {}), more than max_sync_age {}; promoting it would lose that much",
                    duration(report.age_at(now)),
                    report.reported,
                    report.from.as_deref().unwrap_or("the primary"),
                    duration(max)
                ),
            )),
            Some(_) => None,
        }
    }
}
