//! Every metric the watchdog publishes, in one place.
//!
//! Conventions (those of the Prometheus exporters): one `beyondtrust_` prefix, base units,
//! counters ending in `_total`, `*_timestamp_seconds` for times, `*_info` gauges of 1 for
//! metadata, and roles and states as 0/1 gauges with one series per possible value, so that
//! dashboards never see series appear and vanish. Values are set by the site loops after each
//! poll; a scrape only encodes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder as _, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::api::Endpoint;
use crate::api::model::{ClusterRole, FailoverRole};
use crate::api::observer::{ApiObserver, TokenOutcome};
use crate::engine::{AlertKind, Blocker, Outcome, StateKind, Trigger};

/// What the appliance-level gauges are set from.
#[derive(Debug, Clone, Default)]
pub struct ApplianceSample {
    pub up: bool,
    pub healthy: bool,
    pub failover_role: Option<FailoverRole>,
    pub cluster_role: Option<ClusterRole>,
    pub info: Option<ApplianceInfoLabels>,
    pub last_data_sync_seconds: Option<f64>,
    pub data_sync_age_seconds: Option<f64>,
    pub data_sync_ok: Option<bool>,
    pub ratelimit_limit: Option<u64>,
    pub ratelimit_remaining: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApplianceInfoLabels {
    pub version: String,
    pub build: String,
    pub hostname: String,
    pub appliance_id: String,
    pub product: String,
    pub api: String,
}

/// What the site-level gauges are set from.
#[derive(Debug, Clone)]
pub struct SiteSample {
    pub state: StateKind,
    pub blocker: Option<Blocker>,
    pub alerts: BTreeSet<AlertKind>,
    pub cooldown_remaining_seconds: f64,
    pub paused: bool,
    pub auto_enabled: bool,
    pub last_failover_seconds: Option<f64>,
    pub max_sync_age_seconds: f64,
    pub last_poll_seconds: f64,
}

const ALERTS: [AlertKind; 6] = [
    AlertKind::SplitBrain,
    AlertKind::NoPrimary,
    AlertKind::Blind,
    AlertKind::FailoverBlocked,
    AlertKind::FailoverFailed,
    AlertKind::NotInFailover,
];

pub struct Metrics {
    registry: Registry,
    appliance_up: GaugeVec,
    appliance_healthy: GaugeVec,
    failover_role: GaugeVec,
    cluster_role: GaugeVec,
    appliance_info: GaugeVec,
    last_data_sync: GaugeVec,
    data_sync_age: GaugeVec,
    data_sync_ok: GaugeVec,
    ratelimit_limit: GaugeVec,
    ratelimit_remaining: GaugeVec,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    token_requests: IntCounterVec,
    state: GaugeVec,
    blocker: GaugeVec,
    alert: GaugeVec,
    failovers: IntCounterVec,
    last_failover: GaugeVec,
    cooldown_remaining: GaugeVec,
    paused: GaugeVec,
    auto_enabled: GaugeVec,
    max_sync_age: GaugeVec,
    last_poll: GaugeVec,
    /// Label sets with free-form values, to remove them when they change or a site goes.
    info_labels: Mutex<BTreeMap<(String, String), ApplianceInfoLabels>>,
    request_labels: Mutex<BTreeSet<[String; 4]>>,
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(vec.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    vec
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(vec.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    vec
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl Metrics {
    // The metric definitions are constants of this program: a failure to register one is a
    // programming error caught by every test, so it panics.
    pub fn new() -> Self {
        let r = Registry::new();
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "beyondtrust_api_request_duration_seconds",
                "Duration of API requests to the appliances, by endpoint.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["site", "appliance", "endpoint"],
        )
        .unwrap_or_else(|e| panic!("request duration histogram: {e}"));
        r.register(Box::new(request_duration.clone()))
            .unwrap_or_else(|e| panic!("request duration histogram: {e}"));
        let build_info = gauge(
            &r,
            "beyondtrust_watchdog_build_info",
            "Build of the watchdog (always 1).",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        Metrics {
            appliance_up: gauge(
                &r,
                "beyondtrust_appliance_up",
                "1 when the appliance answers the watchdog at all.",
                &["site", "appliance"],
            ),
            appliance_healthy: gauge(
                &r,
                "beyondtrust_appliance_healthy",
                "1 when the appliance reports itself healthy.",
                &["site", "appliance"],
            ),
            failover_role: gauge(
                &r,
                "beyondtrust_appliance_failover_role",
                "1 for the appliance's current failover role, 0 for the others.",
                &["site", "appliance", "role"],
            ),
            cluster_role: gauge(
                &r,
                "beyondtrust_appliance_cluster_role",
                "1 for the appliance's current cluster role, 0 for the others.",
                &["site", "appliance", "role"],
            ),
            appliance_info: gauge(
                &r,
                "beyondtrust_appliance_info",
                "Appliance metadata (always 1).",
                &[
                    "site",
                    "appliance",
                    "version",
                    "build",
                    "hostname",
                    "appliance_id",
                    "product",
                    "api",
                ],
            ),
            last_data_sync: gauge(
                &r,
                "beyondtrust_appliance_last_data_sync_timestamp_seconds",
                "When the primary last synced its data to the backup (as it reported).",
                &["site", "appliance"],
            ),
            data_sync_age: gauge(
                &r,
                "beyondtrust_appliance_data_sync_age_seconds",
                "Age of the newest data the backup can have, at the last poll.",
                &["site", "appliance"],
            ),
            data_sync_ok: gauge(
                &r,
                "beyondtrust_appliance_data_sync_ok",
                "1 when the primary reports its last data sync as successful.",
                &["site", "appliance"],
            ),
            ratelimit_limit: gauge(
                &r,
                "beyondtrust_api_ratelimit_limit",
                "The appliance's hourly API request limit (X-RateLimit-Limit).",
                &["site", "appliance"],
            ),
            ratelimit_remaining: gauge(
                &r,
                "beyondtrust_api_ratelimit_remaining",
                "API requests left this hour (X-RateLimit-Remaining).",
                &["site", "appliance"],
            ),
            requests: counter(
                &r,
                "beyondtrust_api_requests_total",
                "API requests made, by endpoint and HTTP status code (or error kind when there was no answer).",
                &["site", "appliance", "endpoint", "code"],
            ),
            request_duration,
            token_requests: counter(
                &r,
                "beyondtrust_api_token_requests_total",
                "OAuth token requests, by outcome.",
                &["site", "appliance", "outcome"],
            ),
            state: gauge(
                &r,
                "beyondtrust_watchdog_state",
                "1 for the site's current state, 0 for the others.",
                &["site", "state"],
            ),
            blocker: gauge(
                &r,
                "beyondtrust_watchdog_failover_blocked",
                "1 for what blocks a needed failover, 0 for the other blockers.",
                &["site", "blocker"],
            ),
            alert: gauge(
                &r,
                "beyondtrust_watchdog_alert",
                "1 while the engine raises this alert for the site.",
                &["site", "alert"],
            ),
            failovers: counter(
                &r,
                "beyondtrust_watchdog_failovers_total",
                "Failovers carried out, by trigger and outcome.",
                &["site", "trigger", "outcome"],
            ),
            last_failover: gauge(
                &r,
                "beyondtrust_watchdog_last_failover_timestamp_seconds",
                "When the last failover ended.",
                &["site"],
            ),
            cooldown_remaining: gauge(
                &r,
                "beyondtrust_watchdog_cooldown_remaining_seconds",
                "Seconds left in the cooldown after a failover.",
                &["site"],
            ),
            paused: gauge(
                &r,
                "beyondtrust_watchdog_paused",
                "1 while an operator has paused automatic action.",
                &["site"],
            ),
            auto_enabled: gauge(
                &r,
                "beyondtrust_watchdog_auto_enabled",
                "1 when the watchdog may fail over on its own (mode auto).",
                &["site"],
            ),
            max_sync_age: gauge(
                &r,
                "beyondtrust_watchdog_max_sync_age_seconds",
                "The policy's max_sync_age: the oldest data a promoted backup may have.",
                &["site"],
            ),
            last_poll: gauge(
                &r,
                "beyondtrust_watchdog_last_poll_timestamp_seconds",
                "When the site was last polled.",
                &["site"],
            ),
            info_labels: Mutex::new(BTreeMap::new()),
            request_labels: Mutex::new(BTreeSet::new()),
            registry: r,
        }
    }

    /// Creates the series of a site at zero, so that they exist before anything happens.
    pub fn register_site(&self, site: &str, appliances: &[String; 2]) {
        for trigger in [Trigger::Auto, Trigger::Manual] {
            for outcome in [Outcome::Success, Outcome::Failure] {
                self.failovers
                    .with_label_values(&[site, trigger.as_str(), outcome.as_str()]);
            }
        }
        for appliance in appliances {
            for outcome in TokenOutcome::ALL {
                self.token_requests
                    .with_label_values(&[site, appliance, outcome.label()]);
            }
        }
    }

    pub fn set_appliance(&self, site: &str, appliance: &str, sample: &ApplianceSample) {
        let l = [site, appliance];
        self.appliance_up
            .with_label_values(&l)
            .set(bool_value(sample.up));
        self.appliance_healthy
            .with_label_values(&l)
            .set(bool_value(sample.healthy));
        for role in FailoverRole::ALL {
            self.failover_role
                .with_label_values(&[site, appliance, role.as_str()])
                .set(bool_value(sample.failover_role == Some(role)));
        }
        for role in ClusterRole::ALL {
            self.cluster_role
                .with_label_values(&[site, appliance, role.as_str()])
                .set(bool_value(sample.cluster_role == Some(role)));
        }
        if let Some(info) = &sample.info {
            let key = (site.to_string(), appliance.to_string());
            let mut known = self.info_labels.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = known.get(&key)
                && old != info
            {
                let _ = self
                    .appliance_info
                    .remove_label_values(&info_values(site, appliance, old));
            }
            self.appliance_info
                .with_label_values(&info_values(site, appliance, info))
                .set(1.0);
            known.insert(key, info.clone());
        }
        set_optional(&self.last_data_sync, &l, sample.last_data_sync_seconds);
        set_optional(&self.data_sync_age, &l, sample.data_sync_age_seconds);
        set_optional(&self.data_sync_ok, &l, sample.data_sync_ok.map(bool_value));
        set_optional(
            &self.ratelimit_limit,
            &l,
            sample.ratelimit_limit.map(|v| v as f64),
        );
        set_optional(
            &self.ratelimit_remaining,
            &l,
            sample.ratelimit_remaining.map(|v| v as f64),
        );
    }

    pub fn set_site(&self, site: &str, sample: &SiteSample) {
        for state in StateKind::ALL {
            self.state
                .with_label_values(&[site, state.as_str()])
                .set(bool_value(sample.state == state));
        }
        for blocker in Blocker::ALL {
            self.blocker
                .with_label_values(&[site, blocker.as_str()])
                .set(bool_value(sample.blocker == Some(blocker)));
        }
        for alert in ALERTS {
            self.alert
                .with_label_values(&[site, alert.as_str()])
                .set(bool_value(sample.alerts.contains(&alert)));
        }
        self.cooldown_remaining
            .with_label_values(&[site])
            .set(sample.cooldown_remaining_seconds);
        self.paused
            .with_label_values(&[site])
            .set(bool_value(sample.paused));
        self.auto_enabled
            .with_label_values(&[site])
            .set(bool_value(sample.auto_enabled));
        self.max_sync_age
            .with_label_values(&[site])
            .set(sample.max_sync_age_seconds);
        self.last_poll
            .with_label_values(&[site])
            .set(sample.last_poll_seconds);
        // 0 means "never": the series exists from the start, so dashboards and alerts can
        // rely on it.
        self.last_failover
            .with_label_values(&[site])
            .set(sample.last_failover_seconds.unwrap_or(0.0));
    }

    pub fn count_failover(&self, site: &str, trigger: Trigger, outcome: Outcome) {
        self.failovers
            .with_label_values(&[site, trigger.as_str(), outcome.as_str()])
            .inc();
    }

    /// Removes every series of a site (it was removed from the configuration).
    pub fn forget_site(&self, site: &str, appliances: &[String; 2]) {
        for appliance in appliances {
            let l = [site, appliance.as_str()];
            for vec in [
                &self.appliance_up,
                &self.appliance_healthy,
                &self.last_data_sync,
                &self.data_sync_age,
                &self.data_sync_ok,
                &self.ratelimit_limit,
                &self.ratelimit_remaining,
            ] {
                let _ = vec.remove_label_values(&l);
            }
            for role in FailoverRole::ALL {
                let _ = self
                    .failover_role
                    .remove_label_values(&[site, appliance, role.as_str()]);
            }
            for role in ClusterRole::ALL {
                let _ = self
                    .cluster_role
                    .remove_label_values(&[site, appliance, role.as_str()]);
            }
            for outcome in TokenOutcome::ALL {
                let _ =
                    self.token_requests
                        .remove_label_values(&[site, appliance, outcome.label()]);
            }
            for endpoint in Endpoint::ALL {
                let _ =
                    self.request_duration
                        .remove_label_values(&[site, appliance, endpoint.label()]);
            }
            if let Some(info) = self
                .info_labels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(site.to_string(), appliance.clone()))
            {
                let _ = self
                    .appliance_info
                    .remove_label_values(&info_values(site, appliance, &info));
            }
        }
        let mut requests = self
            .request_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        requests.retain(|labels| {
            if labels[0] == site {
                let _ = self
                    .requests
                    .remove_label_values(&[&labels[0], &labels[1], &labels[2], &labels[3]]);
                false
            } else {
                true
            }
        });
        for state in StateKind::ALL {
            let _ = self.state.remove_label_values(&[site, state.as_str()]);
        }
        for blocker in Blocker::ALL {
            let _ = self.blocker.remove_label_values(&[site, blocker.as_str()]);
        }
        for alert in ALERTS {
            let _ = self.alert.remove_label_values(&[site, alert.as_str()]);
        }
        for trigger in [Trigger::Auto, Trigger::Manual] {
            for outcome in [Outcome::Success, Outcome::Failure] {
                let _ =
                    self.failovers
                        .remove_label_values(&[site, trigger.as_str(), outcome.as_str()]);
            }
        }
        for vec in [
            &self.last_failover,
            &self.cooldown_remaining,
            &self.paused,
            &self.auto_enabled,
            &self.max_sync_age,
            &self.last_poll,
        ] {
            let _ = vec.remove_label_values(&[site]);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        buffer
    }

    fn record_request(
        &self,
        site: &str,
        appliance: &str,
        endpoint: Endpoint,
        code: &str,
        elapsed: Duration,
    ) {
        self.requests
            .with_label_values(&[site, appliance, endpoint.label(), code])
            .inc();
        self.request_duration
            .with_label_values(&[site, appliance, endpoint.label()])
            .observe(elapsed.as_secs_f64());
        let labels = [
            site.to_string(),
            appliance.to_string(),
            endpoint.label().to_string(),
            code.to_string(),
        ];
        let mut known = self
            .request_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !known.contains(&labels) {
            known.insert(labels);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn info_values<'a>(
    site: &'a str,
    appliance: &'a str,
    info: &'a ApplianceInfoLabels,
) -> [&'a str; 8] {
    [
        site,
        appliance,
        &info.version,
        &info.build,
        &info.hostname,
        &info.appliance_id,
        &info.product,
        &info.api,
    ]
}

fn set_optional(vec: &GaugeVec, labels: &[&str], value: Option<f64>) {
    match value {
        Some(v) => vec.with_label_values(labels).set(v),
        None => {
            let _ = vec.remove_label_values(labels);
        }
    }
}

/// The clients of one site report their requests through this.
pub struct SiteObserver {
    pub metrics: std::sync::Arc<Metrics>,
    pub site: String,
}

impl ApiObserver for SiteObserver {
    fn request(&self, appliance: &str, endpoint: Endpoint, code: &str, elapsed: Duration) {
        self.metrics
            .record_request(&self.site, appliance, endpoint, code, elapsed);
    }

    fn token(&self, appliance: &str, outcome: TokenOutcome) {
        self.metrics
            .token_requests
            .with_label_values(&[&self.site, appliance, outcome.label()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_one_series_per_value_and_sites_can_be_forgotten() {
        let metrics = Metrics::new();
        let names = ["east".to_string(), "west".to_string()];
        metrics.register_site("hq", &names);
        let sample = ApplianceSample {
            up: true,
            healthy: true,
            failover_role: Some(FailoverRole::Primary),
            ..Default::default()
        };
        metrics.set_appliance("hq", "east", &sample);
        let text = String::from_utf8(metrics.encode()).unwrap();
        assert!(text.contains(r#"beyondtrust_appliance_failover_role{appliance="east",role="primary",site="hq"} 1"#), "{text}");
        assert!(text.contains(
            r#"beyondtrust_appliance_failover_role{appliance="east",role="backup",site="hq"} 0"#
        ));
        assert!(text.contains(
            r#"beyondtrust_watchdog_failovers_total{outcome="success",site="hq",trigger="auto"} 0"#
        ));
        metrics.forget_site("hq", &names);
        let text = String::from_utf8(metrics.encode()).unwrap();
        assert!(!text.contains("site=\"hq\""), "{text}");
    }
}
