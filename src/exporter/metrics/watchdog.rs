//! What the watchdog decided for each site, and the watchdog itself: `beyondtrust_watchdog_*`.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use super::SiteSample;
use super::family::{Family, Gauge, Reading, bool_value, register};
use crate::api::LocalFault;
use crate::engine::{AlertKind, Blocker, Outcome, StateKind, Trigger};

const ALERTS: [AlertKind; 6] = [
    AlertKind::SplitBrain,
    AlertKind::NoPrimary,
    AlertKind::Blind,
    AlertKind::FailoverBlocked,
    AlertKind::FailoverFailed,
    AlertKind::NotInFailover,
];

/// The site gauges read from each step's sample; a new one is one more entry.
const GAUGES: &[Gauge<SiteSample>] = &[
    Gauge {
        name: "beyondtrust_watchdog_state",
        // One series per state, as the product's metric contract says: dashboards never see
        // a site's state series appear and vanish.
        help: "1 for the site's current state, 0 for the others.",
        reading: Reading::OneOf {
            label: "state",
            values: || StateKind::ALL.map(StateKind::as_str).to_vec(),
            holds: |s, state| s.state.as_str() == state,
        },
    },
    Gauge {
        name: "beyondtrust_watchdog_failover_blocked",
        help: "1 for what blocks a needed failover (no series while nothing does).",
        reading: Reading::Current {
            label: "blocker",
            values: || Blocker::ALL.map(Blocker::as_str).to_vec(),
            holds: |s, blocker| s.blocker.is_some_and(|b| b.as_str() == blocker),
        },
    },
    Gauge {
        name: "beyondtrust_watchdog_alert",
        help: "1 while the engine raises this alert for the site (no series otherwise).",
        reading: Reading::Current {
            label: "alert",
            values: || ALERTS.map(AlertKind::as_str).to_vec(),
            holds: |s, alert| s.alerts.iter().any(|a| a.as_str() == alert),
        },
    },
    Gauge {
        name: "beyondtrust_watchdog_last_failover_timestamp_seconds",
        help: "When the last failover ended.",
        // 0 means "never": the series exists from the start, so dashboards and alerts can
        // rely on it.
        reading: Reading::Value(|s| Some(s.last_failover_seconds.unwrap_or(0.0))),
    },
    Gauge {
        name: "beyondtrust_watchdog_cooldown_remaining_seconds",
        help: "Seconds left in the cooldown after a failover.",
        reading: Reading::Value(|s| Some(s.cooldown_remaining_seconds)),
    },
    Gauge {
        name: "beyondtrust_watchdog_paused",
        help: "1 while an operator has paused automatic action.",
        reading: Reading::Value(|s| Some(bool_value(s.paused))),
    },
    Gauge {
        name: "beyondtrust_watchdog_auto_enabled",
        help: "1 when the watchdog may fail over on its own (mode auto).",
        reading: Reading::Value(|s| Some(bool_value(s.auto_enabled))),
    },
    Gauge {
        name: "beyondtrust_watchdog_max_sync_age_seconds",
        help: "The policy's max_sync_age: the oldest data a promoted backup may have.",
        reading: Reading::Value(|s| Some(s.max_sync_age_seconds)),
    },
    Gauge {
        name: "beyondtrust_site_backup_data_age_seconds",
        help: "The age the data gate uses: the current primary's latest last_data_sync report plus the time since (NaN when unknown).",
        reading: Reading::Value(|s| Some(s.backup_data_age_seconds.unwrap_or(f64::NAN))),
    },
    Gauge {
        name: "beyondtrust_watchdog_state_writable",
        help: "1 while the site's state file can be written; 0 after a failed write, until one succeeds (no failover call is made meanwhile).",
        reading: Reading::Value(|s| Some(bool_value(s.state_writable))),
    },
    Gauge {
        name: "beyondtrust_watchdog_journal_writable",
        help: "1 while the site's decision journal is being written; 0 after a failed write or dropped lines, until a write succeeds.",
        reading: Reading::Value(|s| Some(bool_value(s.journal_writable))),
    },
    Gauge {
        name: "beyondtrust_watchdog_last_poll_timestamp_seconds",
        help: "When the site was last polled.",
        reading: Reading::Value(|s| Some(s.last_poll_seconds)),
    },
];

const FAILOVERS: &str = "beyondtrust_watchdog_failovers_total";
const BUILD_INFO: &str = "beyondtrust_watchdog_build_info";
const STATE_WRITE_ERRORS: &str = "beyondtrust_watchdog_state_write_errors_total";
const LOCAL_ERRORS: &str = "beyondtrust_watchdog_local_errors_total";
const JOURNAL_WRITE_ERRORS: &str = "beyondtrust_watchdog_journal_write_errors_total";

/// The failover outcome when every call was held back in the watchdog (see
/// `FailoverSummary`).
const NOT_SENT: &str = "not_sent";

/// Every (trigger, outcome) label pair of the failover counter.
fn failover_labels() -> impl Iterator<Item = [&'static str; 2]> {
    [Trigger::Auto, Trigger::Manual]
        .into_iter()
        .flat_map(|trigger| {
            [
                Outcome::Success.as_str(),
                Outcome::Failure.as_str(),
                NOT_SENT,
            ]
            .map(|outcome| [trigger.as_str(), outcome])
        })
}

pub(super) struct WatchdogMetrics {
    gauges: Family<SiteSample>,
    failovers: IntCounterVec,
    state_write_errors: IntCounterVec,
    journal_write_errors: IntCounterVec,
    local_errors: IntCounterVec,
}

impl WatchdogMetrics {
    pub fn new(registry: &Registry) -> Self {
        let build_info = GaugeVec::new(
            Opts::new(BUILD_INFO, "Build of the watchdog (always 1)."),
            &["version"],
        );
        register(registry, BUILD_INFO, build_info)
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        let failovers = IntCounterVec::new(
            Opts::new(FAILOVERS, "Failovers carried out, by trigger and outcome."),
            &["site", "trigger", "outcome"],
        );
        let state_write_errors = IntCounterVec::new(
            Opts::new(
                STATE_WRITE_ERRORS,
                "Writes of the site's state file that failed (a full or read-only state_dir).",
            ),
            &["site"],
        );
        let journal_write_errors = IntCounterVec::new(
            Opts::new(
                JOURNAL_WRITE_ERRORS,
                "Decision journal lines that could not be written or synced, or were dropped because the writer could not keep up.",
            ),
            &["site"],
        );
        let local_errors = IntCounterVec::new(
            Opts::new(
                LOCAL_ERRORS,
                "Requests that failed on the watchdog's own side (descriptors, resolver, local address or route, memory, its TLS setup); they never count against an appliance.",
            ),
            &["site", "appliance", "kind"],
        );
        WatchdogMetrics {
            gauges: Family::new(registry, &["site"], GAUGES),
            failovers: register(registry, FAILOVERS, failovers),
            state_write_errors: register(registry, STATE_WRITE_ERRORS, state_write_errors),
            journal_write_errors: register(registry, JOURNAL_WRITE_ERRORS, journal_write_errors),
            local_errors: register(registry, LOCAL_ERRORS, local_errors),
        }
    }

    /// Creates the failover counters of calls made at zero, so that `increase()` sees the
    /// first success or failure. `not_sent` and the error counters (state and journal
    /// writes, local faults) appear with their first occurrence instead: 14 series per pair
    /// that would read 0 for the life of most installations; the alerts on the error
    /// counters also fire on a series that is new (see alerts.yml).
    pub fn register(&self, site: &str, _appliances: &[String; 2]) {
        for [trigger, outcome] in failover_labels() {
            if outcome != NOT_SENT {
                self.failovers.with_label_values(&[site, trigger, outcome]);
            }
        }
    }

    pub fn count_state_write_error(&self, site: &str) {
        self.state_write_errors.with_label_values(&[site]).inc();
    }

    pub fn count_journal_write_error(&self, site: &str) {
        self.journal_write_errors.with_label_values(&[site]).inc();
    }

    pub fn count_local_error(&self, site: &str, appliance: &str, fault: LocalFault) {
        self.local_errors
            .with_label_values(&[site, appliance, fault.label()])
            .inc();
    }

    pub fn set(&self, site: &str, sample: &SiteSample) {
        self.gauges.set(&[site], sample);
    }

    pub fn count_failover(&self, site: &str, trigger: Trigger, outcome: &str) {
        self.failovers
            .with_label_values(&[site, trigger.as_str(), outcome])
            .inc();
    }

    /// An appliance's own series (renamed or removed); the site's stay.
    pub fn forget_appliance(&self, site: &str, appliance: &str) {
        for fault in LocalFault::ALL {
            let _ = self
                .local_errors
                .remove_label_values(&[site, appliance, fault.label()]);
        }
    }

    pub fn forget(&self, site: &str, appliances: &[String; 2]) {
        self.gauges.forget(&[site]);
        let _ = self.state_write_errors.remove_label_values(&[site]);
        let _ = self.journal_write_errors.remove_label_values(&[site]);
        for appliance in appliances {
            self.forget_appliance(site, appliance);
        }
        for [trigger, outcome] in failover_labels() {
            let _ = self
                .failovers
                .remove_label_values(&[site, trigger, outcome]);
        }
    }
}
