//! Every metric the watchdog publishes, grouped by what it describes: the appliance
//! (`appliance`), the use of its API (`api`) and the watchdog's decisions (`watchdog`).
//!
//! Conventions (those of the Prometheus exporters): one `beyondtrust_` prefix, base units,
//! counters ending in `_total`, `*_timestamp_seconds` for times, `*_info` gauges of 1 for
//! metadata, and roles and states as 0/1 gauges with one series per possible value, so that
//! dashboards never see series appear and vanish. Values are set by the site loops after each
//! poll; a scrape only encodes them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prometheus::{Encoder as _, Registry, TextEncoder};

use crate::api::Endpoint;
use crate::api::model::{ClusterRole, FailoverRole};
use crate::api::{ApiObserver, TokenOutcome};
use crate::engine::{AlertKind, Blocker, StateKind, Trigger};

mod api;
mod appliance;
mod cluster;
mod exporter;
mod family;
mod notify;
mod watchdog;

pub use exporter::ExporterMetrics;

/// What the appliance-level gauges are set from.
#[derive(Debug, Clone, Default)]
pub struct ApplianceSample {
    pub up: bool,
    pub healthy: bool,
    /// The role it holds now as far as the engine knows (None: unknown).
    pub failover_role: Option<FailoverRole>,
    pub failover_role_age_seconds: Option<f64>,
    pub cluster_role: Option<ClusterRole>,
    pub info: Option<ApplianceInfoLabels>,
    pub last_data_sync_seconds: Option<f64>,
    pub data_sync_age_seconds: Option<f64>,
    pub data_sync_ok: Option<bool>,
    pub ratelimit_limit: Option<u64>,
    pub ratelimit_remaining: Option<u64>,
    /// Connected clients per type, when counted (all zero on a backup).
    pub clients: Option<BTreeMap<String, u64>>,
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
    /// The data gate's age of the backup's data, when known.
    pub backup_data_age_seconds: Option<f64>,
    pub last_poll_seconds: f64,
    /// Whether the last write of the site's state file succeeded.
    pub state_writable: bool,
    /// Whether the site's decision journal is being written.
    pub journal_writable: bool,
}

/// Every metric, grouped by what it describes. A new metric is one entry in its group's table
/// of gauges (or, for a counter or histogram, a field of its group) and one row of the README's
/// metrics reference, which a test checks.
pub struct Metrics {
    registry: Registry,
    appliance: appliance::ApplianceMetrics,
    api: api::ApiMetrics,
    watchdog: watchdog::WatchdogMetrics,
    exporter: exporter::ExporterMetrics,
    notify: notify::NotifyMetrics,
    cluster: cluster::ClusterMetrics,
    /// Tasks alive on the async runtime, read at each encoding: one per site, connection and
    /// request in flight, so a leak of any of them shows here first.
    runtime_tasks: prometheus::IntGauge,
}

const RUNTIME_TASKS: &str = "beyondtrust_watchdog_runtime_tasks";

impl Metrics {
    /// The metrics at default settings: no per-endpoint latency histograms.
    pub fn new() -> Self {
        Metrics::with_histograms(false)
    }

    /// `histograms`: `exporter.request_duration_histograms`, per-endpoint latency histograms
    /// of every appliance (about 170 more series per pair).
    pub fn with_histograms(histograms: bool) -> Self {
        let registry = Registry::new();
        Metrics {
            appliance: appliance::ApplianceMetrics::new(&registry),
            api: api::ApiMetrics::new(&registry, histograms),
            watchdog: watchdog::WatchdogMetrics::new(&registry),
            exporter: exporter::ExporterMetrics::new(&registry),
            notify: notify::NotifyMetrics::new(&registry),
            cluster: cluster::ClusterMetrics::new(&registry),
            runtime_tasks: family::register(
                &registry,
                RUNTIME_TASKS,
                prometheus::IntGauge::new(
                    RUNTIME_TASKS,
                    "Tasks alive on the watchdog's async runtime (site loops, polls, exporter connections, timers).",
                ),
            ),
            registry,
        }
    }

    /// Creates the series of a site at zero, so that they exist before anything happens.
    pub fn register_site(&self, site: &str, appliances: &[String; 2]) {
        self.watchdog.register(site, appliances);
        for appliance in appliances {
            self.api.register(site, appliance);
        }
    }

    pub fn set_appliance(&self, site: &str, appliance: &str, sample: &ApplianceSample) {
        self.appliance.set(site, appliance, sample);
        self.api.set(site, appliance, sample);
    }

    pub fn set_site(&self, site: &str, sample: &SiteSample) {
        self.watchdog.set(site, sample);
    }

    pub fn count_failover(&self, site: &str, trigger: Trigger, outcome: &str) {
        self.watchdog.count_failover(site, trigger, outcome);
    }

    pub fn count_state_write_error(&self, site: &str) {
        self.watchdog.count_state_write_error(site);
    }

    /// Creates a notification hook's series at zero.
    pub fn register_hook(&self, hook: &str) {
        self.notify.register(hook);
    }

    /// One event's outcome at a hook (see `notify::OUTCOMES`).
    pub fn count_notification(&self, hook: &str, outcome: &str) {
        self.notify.count(hook, outcome);
    }

    pub fn notification_succeeded(&self, hook: &str) {
        let now = crate::api::time::UtcTime::from_system_time(std::time::SystemTime::now());
        self.notify.succeeded(hook, now.unix_seconds_f64());
    }

    pub fn count_journal_write_error(&self, site: &str) {
        self.watchdog.count_journal_write_error(site);
    }

    pub fn count_local_error(&self, site: &str, appliance: &str, fault: crate::api::LocalFault) {
        self.watchdog.count_local_error(site, appliance, fault);
    }

    /// The exporter's own counters (authentication, connection cap, web configuration).
    pub fn exporter(&self) -> &ExporterMetrics {
        &self.exporter
    }

    /// With `[cluster]`: the cluster's health as this instance sees it.
    pub fn set_cluster(&self, status: &crate::cluster::ClusterStatus) {
        self.cluster.set_cluster(
            &status.name,
            &status.instance,
            status.up,
            status.members.len(),
            status.requests,
        );
    }

    /// With `[cluster]`: whether this instance leads the site, and the vote on each appliance
    /// (appliance, failing views, views required, partitioned).
    pub fn set_site_cluster(
        &self,
        site: &str,
        leader: bool,
        vantage: &[(&str, usize, usize, bool)],
    ) {
        self.cluster.set_site(site, leader, vantage);
    }

    /// Removes every series of a site (it was removed from the configuration).
    pub fn forget_site(&self, site: &str, appliances: &[String; 2]) {
        self.cluster.forget(site, appliances);
        for appliance in appliances {
            self.appliance.forget(site, appliance);
        }
        self.api.forget(site, appliances);
        self.watchdog.forget(site, appliances);
    }

    /// An appliance renamed or replaced within a site: its own series go, the site's
    /// (failover counters, state) stay.
    pub fn forget_appliance(&self, site: &str, appliance: &str) {
        self.cluster.forget_appliance(site, appliance);
        self.appliance.forget(site, appliance);
        self.api.forget(site, &[appliance.to_string()]);
        self.watchdog.forget_appliance(site, appliance);
    }

    /// The text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            self.runtime_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
        let mut buffer = Vec::with_capacity(16 * 1024);
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        buffer
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
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
            .api
            .record_request(&self.site, appliance, endpoint, code, elapsed);
    }

    fn token(&self, appliance: &str, outcome: TokenOutcome) {
        self.metrics.api.count_token(&self.site, appliance, outcome);
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

    /// The per-endpoint histograms exist only when asked for; the per-appliance seconds
    /// counter always, so the mean duration is there at the defaults.
    #[test]
    fn latency_histograms_only_on_request() {
        let names = ["east".to_string(), "west".to_string()];
        for histograms in [false, true] {
            let metrics = Metrics::with_histograms(histograms);
            metrics.register_site("hq", &names);
            metrics.api.record_request(
                "hq",
                "east",
                Endpoint::ALL[0],
                "200",
                Duration::from_millis(250),
            );
            let text = String::from_utf8(metrics.encode()).unwrap();
            assert_eq!(
                text.contains("beyondtrust_api_request_duration_seconds_bucket"),
                histograms,
                "{text}"
            );
            assert!(
                text.contains(
                    r#"beyondtrust_api_request_seconds_total{appliance="east",site="hq"} 0.25"#
                ),
                "{text}"
            );
        }
    }

    /// A blocker or alert is one series for what holds; the one that held before goes. A state
    /// has one series per possible value (the metric contract), 1 for the current one only.
    #[test]
    fn current_values_replace_each_other() {
        let metrics = Metrics::new();
        let names = ["east".to_string(), "west".to_string()];
        metrics.register_site("hq", &names);
        let mut sample = SiteSample {
            state: StateKind::ALL[0],
            blocker: Some(Blocker::ALL[0]),
            alerts: BTreeSet::new(),
            cooldown_remaining_seconds: 0.0,
            paused: false,
            auto_enabled: false,
            last_failover_seconds: None,
            max_sync_age_seconds: 0.0,
            backup_data_age_seconds: None,
            last_poll_seconds: 0.0,
            state_writable: true,
            journal_writable: true,
        };
        metrics.set_site("hq", &sample);
        let series = |metrics: &Metrics, name: &str| {
            String::from_utf8(metrics.encode())
                .unwrap()
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let ones = |metrics: &Metrics| {
            series(metrics, "beyondtrust_watchdog_state")
                .into_iter()
                .filter(|l| l.ends_with(" 1"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            series(&metrics, "beyondtrust_watchdog_state").len(),
            StateKind::ALL.len()
        );
        let first = StateKind::ALL[0].as_str();
        assert_eq!(
            ones(&metrics),
            [format!(
                r#"beyondtrust_watchdog_state{{site="hq",state="{first}"}} 1"#
            )]
        );
        assert_eq!(
            series(&metrics, "beyondtrust_watchdog_failover_blocked").len(),
            1
        );
        sample.state = StateKind::ALL[1];
        sample.blocker = None;
        metrics.set_site("hq", &sample);
        let second = StateKind::ALL[1].as_str();
        assert_eq!(
            series(&metrics, "beyondtrust_watchdog_state").len(),
            StateKind::ALL.len()
        );
        assert_eq!(
            ones(&metrics),
            [format!(
                r#"beyondtrust_watchdog_state{{site="hq",state="{second}"}} 1"#
            )]
        );
        assert!(series(&metrics, "beyondtrust_watchdog_failover_blocked").is_empty());
        assert!(series(&metrics, "beyondtrust_watchdog_alert").is_empty());
    }

    /// Every metric has a row in the README's metrics reference, and every row a metric.
    #[test]
    fn the_readme_lists_every_metric() {
        let metrics = Metrics::with_histograms(true);
        let names = ["east".to_string(), "west".to_string()];
        metrics.register_site("hq", &names);
        metrics.register_hook("chat");
        metrics.set_appliance(
            "hq",
            "east",
            &ApplianceSample {
                info: Some(ApplianceInfoLabels::default()),
                last_data_sync_seconds: Some(1.0),
                data_sync_age_seconds: Some(1.0),
                data_sync_ok: Some(true),
                ratelimit_limit: Some(1),
                ratelimit_remaining: Some(1),
                cluster_role: Some(ClusterRole::ALL[0]),
                clients: Some([("rep_console".to_string(), 3)].into_iter().collect()),
                ..Default::default()
            },
        );
        metrics.set_site(
            "hq",
            &SiteSample {
                state: StateKind::ALL[0],
                // The series that exist only while something holds, or from a first error.
                blocker: Some(Blocker::ALL[0]),
                alerts: [AlertKind::Blind].into(),
                cooldown_remaining_seconds: 0.0,
                paused: false,
                auto_enabled: false,
                last_failover_seconds: None,
                max_sync_age_seconds: 0.0,
                backup_data_age_seconds: None,
                last_poll_seconds: 0.0,
                state_writable: true,
                journal_writable: true,
            },
        );
        metrics
            .api
            .record_request("hq", "east", Endpoint::ALL[0], "200", Duration::ZERO);
        metrics.set_cluster(&crate::cluster::ClusterStatus {
            name: "bt-watchdog".to_string(),
            instance: "one".to_string(),
            up: true,
            members: vec!["one".to_string()],
            error: None,
            requests: 1,
        });
        metrics.set_site_cluster("hq", true, &[("east", 0, 1, false)]);
        metrics.count_state_write_error("hq");
        metrics.count_journal_write_error("hq");
        metrics.count_local_error("hq", "east", crate::api::LocalFault::ALL[0]);
        let published: BTreeSet<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_string())
            .collect();

        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("the README is readable");
        let section = readme
            .split("\n## Metrics reference\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README has a metrics reference");
        let documented: BTreeSet<String> = section
            .lines()
            .filter(|line| line.starts_with('|'))
            .flat_map(|row| row.split('`'))
            .filter(|word| word.starts_with("beyondtrust_"))
            .map(str::to_string)
            .collect();
        assert_eq!(
            published, documented,
            "the README's metrics reference and the metrics differ"
        );
    }
}
