//! The live picture of every site, as `/status` serves it and `bt-watchdog status` prints it.
//! The site loops write it after each step; the HTTP side only reads it.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub version: String,
    pub sites: Vec<SiteStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteStatus {
    pub site: String,
    pub mode: String,
    pub state: String,
    pub reason: String,
    pub blocker: Option<String>,
    pub appliances: Vec<ApplianceStatus>,
    /// The `last_data_sync` the data gate uses: the current primary's latest report.
    pub last_data_sync: Option<String>,
    /// Which appliance reported it (absent from watchdogs older than this field).
    #[serde(default)]
    pub data_sync_source: Option<String>,
    pub data_sync_age_seconds: Option<f64>,
    pub max_sync_age_seconds: f64,
    pub cooldown_remaining_seconds: f64,
    pub pause: Option<PauseStatus>,
    pub promoted: Option<String>,
    pub last_failover: Option<serde_json::Value>,
    pub failover_in_progress: Option<String>,
    /// The episode in progress, by the id a manual failover's preflight gave its operator.
    #[serde(default)]
    pub failover_in_progress_id: Option<u64>,
    pub alerts: Vec<AlertStatus>,
    /// The most recent decisions, newest last.
    pub decisions: Vec<DecisionStatus>,
    pub last_poll: Option<String>,
    /// Why the site's state file cannot be written, while it cannot: no failover call is
    /// made meanwhile (automatic or manual through the daemon).
    #[serde(default)]
    pub state_write_error: Option<String>,
    /// Why the site's decision journal cannot be written, while it cannot (decisions go on;
    /// what they were is not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_write_error: Option<String>,
    /// With `[cluster]`: who leads the site and what the instances see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<SiteClusterStatus>,
}

/// A site's side of the cluster, as this instance sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteClusterStatus {
    /// This instance.
    pub instance: String,
    /// `leader` (this instance may act), `follower` (it observes only), or `lost` (etcd or
    /// this instance's lease is out of reach: nobody here acts).
    pub role: String,
    /// The leading instance, when known.
    pub leader: Option<String>,
    /// Why this instance does not lead, when it does not.
    pub reason: Option<String>,
    /// The vote on each appliance.
    pub vantage: Vec<VantageStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VantageStatus {
    pub appliance: String,
    /// Live instances (with a lease), this one included.
    pub live: usize,
    /// Of them, those that see the appliance failing.
    pub failing_views: usize,
    /// How many must, for a failure to count.
    pub required: usize,
    /// This instance sees it failing and not enough others do: its own path is suspect.
    pub partitioned: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplianceStatus {
    pub name: String,
    pub url: String,
    pub up: bool,
    pub healthy: bool,
    pub condition: String,
    pub failover_role: Option<String>,
    pub role_source: Option<String>,
    /// How long ago the role was last seen.
    pub failover_role_age_seconds: Option<f64>,
    pub cluster_role: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
    pub hostname: Option<String>,
    pub appliance_id: Option<String>,
    pub product: Option<String>,
    /// The command API it speaks (`v2`, `xml`; absent while `auto` has not detected it yet).
    pub api: Option<String>,
    /// The kind of its first current API error (none once every endpoint answers again).
    pub last_error: Option<String>,
    /// Every endpoint that fails now (401, 403, a token refused…), with what it answered.
    #[serde(default)]
    pub api_errors: Vec<ApiErrorStatus>,
    pub last_data_sync: Option<String>,
    pub last_data_sync_status: Option<String>,
    pub ratelimit_limit: Option<u64>,
    pub ratelimit_remaining: Option<u64>,
    /// `/appliance` as this appliance last answered it, verbatim.
    pub topology: Option<serde_json::Value>,
    /// A fault that is not the appliance's failure, while it lasts: on the watchdog's own side
    /// (descriptors, resolver, route), or a certificate the watchdog refuses, with what to do.
    #[serde(default)]
    pub fault: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorStatus {
    pub endpoint: String,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PauseStatus {
    pub reason: String,
    pub by: String,
    pub since: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertStatus {
    pub alert: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionStatus {
    pub at: String,
    pub state: String,
    pub message: String,
}

/// Where the site loops publish, and the exporter reads.
#[derive(Debug, Default)]
pub struct Board {
    sites: RwLock<BTreeMap<String, SiteStatus>>,
    /// When each site loop last completed a step, and how long it may go without one.
    heartbeats: RwLock<BTreeMap<String, (Instant, Duration)>>,
}

impl Board {
    pub fn publish(&self, status: SiteStatus) {
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        sites.insert(status.site.clone(), status);
    }

    pub fn heartbeat(&self, site: &str, allowed_gap: Duration) {
        let mut beats = self.heartbeats.write().unwrap_or_else(|p| p.into_inner());
        beats.insert(site.to_string(), (Instant::now(), allowed_gap));
    }

    pub fn remove(&self, site: &str) {
        self.sites
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(site);
        self.heartbeats
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(site);
    }

    pub fn document(&self) -> StatusDoc {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        StatusDoc {
            version: env!("CARGO_PKG_VERSION").to_string(),
            sites: sites.values().cloned().collect(),
        }
    }

    /// The site loops that have not stepped for longer than they may; empty when all is well.
    pub fn stuck_loops(&self) -> Vec<String> {
        let beats = self.heartbeats.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        beats
            .iter()
            .filter(|(_, (at, allowed))| now.duration_since(*at) > *allowed)
            .map(|(site, (at, _))| {
                format!(
                    "{site} (last step {}s ago)",
                    now.duration_since(*at).as_secs()
                )
            })
            .collect()
    }

    /// What keeps the watchdog from acting although its loops run (`/healthz` says
    /// "degraded", not dead: a restart would not help): state files that cannot be written.
    pub fn degraded(&self) -> Vec<String> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites
            .values()
            .filter_map(|s| {
                s.state_write_error
                    .as_ref()
                    .map(|e| format!("{}: {e}", s.site))
            })
            .collect()
    }

    pub fn has_sites(&self) -> bool {
        !self
            .heartbeats
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}
