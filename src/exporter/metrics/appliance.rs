//! What each appliance says about itself: `beyondtrust_appliance_*`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::{GaugeVec, Opts, Registry};

use super::family::{Family, Gauge, Reading, bool_value, register};
use super::{ApplianceInfoLabels, ApplianceSample};
use crate::api::model::{ClusterRole, FailoverRole};

/// The appliance gauges read from each poll's sample; a new one is one more entry.
const GAUGES: &[Gauge<ApplianceSample>] = &[
    Gauge {
        name: "beyondtrust_appliance_up",
        help: "1 when the appliance answers the watchdog at all.",
        reading: Reading::Value(|s| Some(bool_value(s.up))),
    },
    Gauge {
        name: "beyondtrust_appliance_healthy",
        help: "1 when the appliance reports itself healthy.",
        reading: Reading::Value(|s| Some(bool_value(s.healthy))),
    },
    Gauge {
        name: "beyondtrust_appliance_failover_role",
        help: "1 for the appliance's failover role now, 0 for the others (all 0 while unknown, e.g. a dead old primary after a failover).",
        reading: Reading::OneOf {
            label: "role",
            values: || FailoverRole::ALL.map(FailoverRole::as_str).to_vec(),
            holds: |s, role| s.failover_role.is_some_and(|r| r.as_str() == role),
        },
    },
    Gauge {
        name: "beyondtrust_appliance_failover_role_age_seconds",
        help: "How long ago the appliance's failover role was last seen (from itself or its peer); NaN when never.",
        reading: Reading::Value(|s| Some(s.failover_role_age_seconds.unwrap_or(f64::NAN))),
    },
    Gauge {
        name: "beyondtrust_appliance_cluster_role",
        // One series per role, as the product's metric contract says (all 0 while unknown).
        help: "1 for the appliance's current cluster role, 0 for the others.",
        reading: Reading::OneOf {
            label: "role",
            values: || ClusterRole::ALL.map(ClusterRole::as_str).to_vec(),
            holds: |s, role| s.cluster_role.is_some_and(|r| r.as_str() == role),
        },
    },
    Gauge {
        name: "beyondtrust_appliance_last_data_sync_timestamp_seconds",
        help: "This appliance's own last_data_sync report (only a primary reports one; NaN when it reports none).",
        // NaN rather than no series: it exists for every configured appliance for the life
        // of the process, so dashboards and alerts never see it appear and vanish.
        reading: Reading::Value(|s| Some(s.last_data_sync_seconds.unwrap_or(f64::NAN))),
    },
    Gauge {
        name: "beyondtrust_appliance_data_sync_age_seconds",
        help: "Age of this appliance's own last_data_sync report (NaN when it reports none); the data gate's figure is beyondtrust_site_backup_data_age_seconds.",
        reading: Reading::Value(|s| Some(s.data_sync_age_seconds.unwrap_or(f64::NAN))),
    },
    Gauge {
        name: "beyondtrust_appliance_data_sync_ok",
        help: "1 when the primary reports its last data sync as successful.",
        reading: Reading::Value(|s| Some(s.data_sync_ok.map_or(f64::NAN, bool_value))),
    },
];

const INFO: &str = "beyondtrust_appliance_info";
const CLIENTS: &str = "beyondtrust_appliance_clients";

pub(super) struct ApplianceMetrics {
    gauges: Family<ApplianceSample>,
    info: GaugeVec,
    /// The free-form info labels in force, to remove their series when they change or a site
    /// goes.
    info_labels: Mutex<BTreeMap<(String, String), ApplianceInfoLabels>>,
    clients: GaugeVec,
    /// The client types seen per appliance: a type that is no longer reported reads 0.
    client_types: Mutex<BTreeMap<(String, String), std::collections::BTreeSet<String>>>,
}

impl ApplianceMetrics {
    pub fn new(registry: &Registry) -> Self {
        let info = GaugeVec::new(
            Opts::new(INFO, "Appliance metadata (always 1)."),
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
        );
        let clients = GaugeVec::new(
            Opts::new(
                CLIENTS,
                "Clients connected to the appliance by type, as /appliance/client-count names them (rep_console or access_console, asset_client, gateway); 0 on a backup, which accepts none.",
            ),
            &["site", "appliance", "type"],
        );
        ApplianceMetrics {
            gauges: Family::new(registry, &["site", "appliance"], GAUGES),
            info: register(registry, INFO, info),
            info_labels: Mutex::new(BTreeMap::new()),
            clients: register(registry, CLIENTS, clients),
            client_types: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn set(&self, site: &str, appliance: &str, sample: &ApplianceSample) {
        self.gauges.set(&[site, appliance], sample);
        if let Some(clients) = &sample.clients {
            let key = (site.to_string(), appliance.to_string());
            let mut types = self.client_types.lock().unwrap_or_else(|p| p.into_inner());
            let seen = types.entry(key).or_default();
            seen.extend(clients.keys().cloned());
            for kind in seen.iter() {
                let value = clients.get(kind).copied().unwrap_or(0);
                self.clients
                    .with_label_values(&[site, appliance, kind])
                    .set(value as f64);
            }
        }
        let Some(info) = &sample.info else {
            return;
        };
        let key = (site.to_string(), appliance.to_string());
        let mut known = self.info_labels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = known.get(&key)
            && old != info
        {
            let _ = self
                .info
                .remove_label_values(&info_values(site, appliance, old));
        }
        self.info
            .with_label_values(&info_values(site, appliance, info))
            .set(1.0);
        known.insert(key, info.clone());
    }

    pub fn forget(&self, site: &str, appliance: &str) {
        self.gauges.forget(&[site, appliance]);
        let types = self
            .client_types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(site.to_string(), appliance.to_string()));
        for kind in types.unwrap_or_default() {
            let _ = self.clients.remove_label_values(&[site, appliance, &kind]);
        }
        let removed = self
            .info_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(site.to_string(), appliance.to_string()));
        if let Some(info) = removed {
            let _ = self
                .info
                .remove_label_values(&info_values(site, appliance, &info));
        }
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
