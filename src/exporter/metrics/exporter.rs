//! The exporter's own defences: `beyondtrust_watchdog_exporter_*`. Counters of what a hostile
//! network tried (failed logins, connections refused at the cap) and whether the web
//! configuration in force is the file's.

use prometheus::{IntCounter, IntGauge};

use super::family::register;

const AUTH_FAILURES: &str = "beyondtrust_watchdog_exporter_auth_failures_total";
const CONNECTIONS_REFUSED: &str = "beyondtrust_watchdog_exporter_connections_refused_total";
const WEB_CONFIG_VALID: &str = "beyondtrust_watchdog_exporter_web_config_valid";
const WEB_CONFIG_FAILURES: &str = "beyondtrust_watchdog_exporter_web_config_reload_failures_total";

#[derive(Clone)]
pub struct ExporterMetrics {
    auth_failures: IntCounter,
    connections_refused: IntCounter,
    web_config_valid: IntGauge,
    web_config_failures: IntCounter,
}

impl ExporterMetrics {
    pub(super) fn new(registry: &prometheus::Registry) -> Self {
        let metrics = ExporterMetrics {
            auth_failures: register(
                registry,
                AUTH_FAILURES,
                IntCounter::new(
                    AUTH_FAILURES,
                    "Requests refused for missing or wrong basic-auth credentials.",
                ),
            ),
            connections_refused: register(
                registry,
                CONNECTIONS_REFUSED,
                IntCounter::new(
                    CONNECTIONS_REFUSED,
                    "Connections closed at once because the exporter's connection cap (overall or per client address) was reached.",
                ),
            ),
            web_config_valid: register(
                registry,
                WEB_CONFIG_VALID,
                IntGauge::new(
                    WEB_CONFIG_VALID,
                    "1 while the web configuration in force is the file's; 0 while the exporter is closed because the file became invalid.",
                ),
            ),
            web_config_failures: register(
                registry,
                WEB_CONFIG_FAILURES,
                IntCounter::new(
                    WEB_CONFIG_FAILURES,
                    "Times a changed web configuration file was invalid (the exporter closed until it is fixed).",
                ),
            ),
        };
        metrics.web_config_valid.set(1);
        metrics
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// The web configuration was (re-)read: valid or not.
    pub fn web_config_read(&self, valid: bool) {
        self.web_config_valid.set(i64::from(valid));
        if !valid {
            self.web_config_failures.inc();
        }
    }
}
