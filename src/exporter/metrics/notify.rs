//! The notification hooks: `beyondtrust_watchdog_notification*`. A hook whose deliveries fail,
//! or that has not delivered for long, is visible here (and alerted on).

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use super::family::register;

const NOTIFICATIONS: &str = "beyondtrust_watchdog_notifications_total";
const LAST_SUCCESS: &str = "beyondtrust_watchdog_notification_last_success_timestamp_seconds";

/// Every outcome of the counter: created at zero for each hook.
pub const OUTCOMES: [&str; 6] = [
    "delivered",
    "retried",
    "failed",
    "dropped",
    "vetoed",
    "timed_out",
];

pub(super) struct NotifyMetrics {
    notifications: IntCounterVec,
    last_success: GaugeVec,
}

impl NotifyMetrics {
    pub fn new(registry: &Registry) -> Self {
        let notifications = IntCounterVec::new(
            Opts::new(
                NOTIFICATIONS,
                "Events handed to each hook, by outcome: delivered, retried (an attempt failed and is tried again), failed (every attempt failed), dropped (the hook's queue was full), and for the pre_failover hook vetoed and timed_out.",
            ),
            &["hook", "outcome"],
        );
        let last_success = GaugeVec::new(
            Opts::new(
                LAST_SUCCESS,
                "When the hook last took an event (0: never since the start).",
            ),
            &["hook"],
        );
        NotifyMetrics {
            notifications: register(registry, NOTIFICATIONS, notifications),
            last_success: register(registry, LAST_SUCCESS, last_success),
        }
    }

    pub fn register(&self, hook: &str) {
        for outcome in OUTCOMES {
            self.notifications.with_label_values(&[hook, outcome]);
        }
        self.last_success.with_label_values(&[hook]).set(0.0);
    }

    pub fn count(&self, hook: &str, outcome: &str) {
        self.notifications.with_label_values(&[hook, outcome]).inc();
    }

    pub fn succeeded(&self, hook: &str, unix_seconds: f64) {
        self.last_success
            .with_label_values(&[hook])
            .set(unix_seconds);
    }
}
