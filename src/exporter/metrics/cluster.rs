//! Several watchdogs acting as one (`[cluster]`): `beyondtrust_watchdog_cluster_*`, the
//! leadership of each site and the vote on each appliance. No series exist without
//! `[cluster]`, so that a lone watchdog does not look like a broken cluster. This instance's
//! name is the `member` label: `instance` is Prometheus's own (the scrape target).

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use super::family::{bool_value, register};

pub(super) struct ClusterMetrics {
    up: GaugeVec,
    members: GaugeVec,
    requests: IntCounterVec,
    leader: GaugeVec,
    partitioned: GaugeVec,
    failing_views: GaugeVec,
    views_required: GaugeVec,
}

fn gauge(registry: &Registry, name: &'static str, help: &str, labels: &[&str]) -> GaugeVec {
    register(registry, name, GaugeVec::new(Opts::new(name, help), labels))
}

impl ClusterMetrics {
    pub fn new(registry: &Registry) -> Self {
        ClusterMetrics {
            up: gauge(
                registry,
                "beyondtrust_watchdog_cluster_up",
                "1 while etcd answers and this instance's lease is alive; 0 means no site is led (and no failover made) by this instance.",
                &["cluster", "member"],
            ),
            members: gauge(
                registry,
                "beyondtrust_watchdog_cluster_members",
                "Live instances of the cluster (with a lease), this one included, as this instance last saw them.",
                &["cluster", "member"],
            ),
            requests: register(
                registry,
                "beyondtrust_watchdog_cluster_requests_total",
                IntCounterVec::new(
                    Opts::new(
                        "beyondtrust_watchdog_cluster_requests_total",
                        "Requests this instance sent to etcd (a watch counts once).",
                    ),
                    &["cluster", "member"],
                ),
            ),
            leader: gauge(
                registry,
                "beyondtrust_watchdog_leader",
                "1 while this instance leads the site (the only one that may fail it over), 0 otherwise.",
                &["site"],
            ),
            partitioned: gauge(
                registry,
                "beyondtrust_watchdog_partitioned",
                "1 while this instance sees the appliance failing and not enough other instances do: its own network path is suspect.",
                &["site", "appliance"],
            ),
            failing_views: gauge(
                registry,
                "beyondtrust_watchdog_vantage_failing_views",
                "Live instances, this one included, that see the appliance failing.",
                &["site", "appliance"],
            ),
            views_required: gauge(
                registry,
                "beyondtrust_watchdog_vantage_views_required",
                "How many instances must see an appliance failing before it counts as failed.",
                &["site"],
            ),
        }
    }

    pub fn set_cluster(
        &self,
        cluster: &str,
        instance: &str,
        up: bool,
        members: usize,
        requests: u64,
    ) {
        let labels = [cluster, instance];
        self.up.with_label_values(&labels).set(bool_value(up));
        self.members.with_label_values(&labels).set(members as f64);
        let counter = self.requests.with_label_values(&labels);
        let seen = counter.get();
        if requests > seen {
            counter.inc_by(requests - seen);
        }
    }

    /// `vantage`: (appliance, failing views, views required, partitioned).
    pub fn set_site(&self, site: &str, leader: bool, vantage: &[(&str, usize, usize, bool)]) {
        self.leader
            .with_label_values(&[site])
            .set(bool_value(leader));
        for (appliance, failing, required, partitioned) in vantage {
            let labels = [site, appliance];
            self.failing_views
                .with_label_values(&labels)
                .set(*failing as f64);
            self.partitioned
                .with_label_values(&labels)
                .set(bool_value(*partitioned));
            self.views_required
                .with_label_values(&[site])
                .set(*required as f64);
        }
    }

    pub fn forget(&self, site: &str, appliances: &[String; 2]) {
        let _ = self.leader.remove_label_values(&[site]);
        let _ = self.views_required.remove_label_values(&[site]);
        for appliance in appliances {
            self.forget_appliance(site, appliance);
        }
    }

    /// A renamed appliance's vote goes with its old name.
    pub fn forget_appliance(&self, site: &str, appliance: &str) {
        let labels = [site, appliance];
        let _ = self.partitioned.remove_label_values(&labels);
        let _ = self.failing_views.remove_label_values(&labels);
    }
}
