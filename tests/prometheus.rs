//! A real Prometheus (Debian's `prometheus` package, installed by the README's test command)
//! scrapes a running watchdog that watches the simulated pair with injected faults. Checked
//! through Prometheus's HTTP API: every metric with its labels, every dashboard query returns
//! data, and the alert rules go pending or firing for the faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bt_watchdog::sim::{FaultsPatch, SimSettings};
use common::etcd::EtcdCluster;
use common::simulator;
use common::watchdog::{SECRET, Watchdog, Workspace, config_toml, site_toml};

struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The metrics of the product brief and the labels each must carry.
const METRICS: &[(&str, &[&str])] = &[
    ("beyondtrust_appliance_up", &["site", "appliance"]),
    ("beyondtrust_appliance_healthy", &["site", "appliance"]),
    (
        "beyondtrust_appliance_failover_role",
        &["site", "appliance", "role"],
    ),
    (
        "beyondtrust_appliance_cluster_role",
        &["site", "appliance", "role"],
    ),
    (
        "beyondtrust_appliance_info",
        &[
            "site",
            "appliance",
            "version",
            "build",
            "hostname",
            "appliance_id",
            "product",
        ],
    ),
    (
        "beyondtrust_appliance_last_data_sync_timestamp_seconds",
        &["site", "appliance"],
    ),
    (
        "beyondtrust_appliance_data_sync_age_seconds",
        &["site", "appliance"],
    ),
    ("beyondtrust_appliance_data_sync_ok", &["site", "appliance"]),
    ("beyondtrust_api_ratelimit_limit", &["site", "appliance"]),
    (
        "beyondtrust_api_ratelimit_remaining",
        &["site", "appliance"],
    ),
    (
        "beyondtrust_api_requests_total",
        &["site", "appliance", "endpoint", "code"],
    ),
    // The per-endpoint histograms are off by default (exporter.request_duration_histograms);
    // the mean comes from this and the request counter.
    (
        "beyondtrust_api_request_seconds_total",
        &["site", "appliance"],
    ),
    (
        "beyondtrust_api_token_requests_total",
        &["site", "appliance", "outcome"],
    ),
    ("beyondtrust_watchdog_state", &["site", "state"]),
    (
        "beyondtrust_watchdog_failovers_total",
        &["site", "trigger", "outcome"],
    ),
    (
        "beyondtrust_watchdog_last_failover_timestamp_seconds",
        &["site"],
    ),
    ("beyondtrust_watchdog_cooldown_remaining_seconds", &["site"]),
    ("beyondtrust_watchdog_paused", &["site"]),
    ("beyondtrust_watchdog_auto_enabled", &["site"]),
    ("beyondtrust_watchdog_build_info", &["version"]),
    ("beyondtrust_watchdog_cluster_up", &["cluster", "member"]),
    ("beyondtrust_watchdog_leader", &["site"]),
    ("beyondtrust_watchdog_partitioned", &["site", "appliance"]),
];

fn free_port() -> u16 {
    // Prometheus cannot report a port the OS chose, so one is borrowed from the OS and freed.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn api(base: &str, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(format!("{base}{path}"))
        .query(query)
        .send()
        .await
        .unwrap();
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let until = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) => assert!(
                Instant::now() < until,
                "timed out waiting for {what}: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts a real Prometheus scraping `watchdog` every second with the rules in `rules`, and
/// waits until it is ready.
async fn start_prometheus(
    ws: &Workspace,
    watchdog: &Watchdog,
    rules: &std::path::Path,
) -> Prometheus {
    let target = watchdog.base.trim_start_matches("http://").to_string();
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: bt-watchdog\n    static_configs:\n      - targets: [\"{target}\"]\n",
        rules.display()
    );
    std::fs::write(ws.path("prometheus.yml"), config).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", ws.path("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", ws.path("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(ws.path("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus is not installed: run ./scripts/test.sh, which installs Debian's prometheus package");
    let prometheus = Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let base = prometheus.base.clone();
    wait_until(Duration::from_secs(60), "Prometheus to be ready", || {
        let base = base.clone();
        async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            match client.get(format!("{base}/-/ready")).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    prometheus
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_sees_every_metric_every_panel_and_the_alerts() {
    let sim = simulator(SimSettings::default()).await;
    // The backup's data is an hour old (its sync stopped long ago).
    sim.with(|p| p.set_sync_stale(Some(3600), std::time::SystemTime::now()));
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    // Clustered (alone, on a one-member etcd), so that the cluster's metrics and dashboard
    // row have data too.
    let etcd = EtcdCluster::start(1);
    std::fs::write(
        ws.path("config.toml"),
        config_toml(
            "observe",
            &ws.path("state"),
            &site_toml("hq", &sim, &secret, ""),
        ) + "\n# A hook, so that the notification panels have data.\n[[notify]]\nname = \"log\"\ncommand = [\"/bin/true\"]\n"
            + &format!(
                "\n[cluster]\nendpoints = {}\nname = \"prom\"\ninstance = \"solo\"\nlease_ttl = \"3s\"\n",
                etcd.endpoints_toml()
            ),
    )
    .unwrap();
    let watchdog = Watchdog::start(&ws.path("config.toml"), &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(
            Duration::from_secs(30),
            "a pair degraded by its stale data",
            |s| s["state"] == "degraded",
        )
        .await;

    let prometheus = start_prometheus(&ws, &watchdog, &repo("dashboards/alerts.yml")).await;
    let base = prometheus.base.clone();

    // The fault: the primary dies, and with data an hour old the failover is blocked.
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );

    // Every metric of the brief, with its labels.
    wait_until(
        Duration::from_secs(60),
        "every metric with its labels",
        || {
            let base = base.clone();
            async move {
                for (name, labels) in METRICS {
                    let found = api(
                        &base,
                        "/api/v1/series",
                        &[(
                            "match[]",
                            &format!("{{__name__=\"{name}\",job=\"bt-watchdog\"}}"),
                        )],
                    )
                    .await;
                    let series = found["data"].as_array().cloned().unwrap_or_default();
                    let Some(first) = series.first() else {
                        return Err(format!("{name} is missing"));
                    };
                    for label in *labels {
                        if first.get(*label).is_none() {
                            return Err(format!("{name} lacks the label {label}: {first}"));
                        }
                    }
                }
                Ok(())
            }
        },
    )
    .await;

    // Every query of every dashboard panel, with the variables substituted, parses and returns
    // at least one series.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("dashboards/bt-watchdog.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", ".*")
                .replace("$instance", ".*")
                .replace("$site", "hq")
                .replace("$appliance", ".*")
                .replace("$__rate_interval", "20s");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    wait_until(
        Duration::from_secs(90),
        "every dashboard query to return data",
        || {
            let base = base.clone();
            let queries = queries.clone();
            async move {
                for (title, expr) in &queries {
                    let answer = api(&base, "/api/v1/query", &[("query", expr)]).await;
                    if answer["status"] != "success" {
                        return Err(format!("{title}: {expr} is refused: {answer}"));
                    }
                    if answer["data"]["result"]
                        .as_array()
                        .is_none_or(|r| r.is_empty())
                    {
                        return Err(format!("{title}: {expr} returns nothing"));
                    }
                }
                Ok(())
            }
        },
    )
    .await;

    // The alert rules go pending (or firing) for the faults.
    let expected: BTreeSet<&str> = [
        "BtWatchdogApplianceUnreachable",
        "BtWatchdogDataSyncStale",
        "BtWatchdogFailoverBlocked",
    ]
    .into();
    wait_until(Duration::from_secs(60), "the alerts for the faults", || {
        let base = base.clone();
        let expected = expected.clone();
        async move {
            let alerts = api(&base, "/api/v1/alerts", &[]).await;
            let active: BTreeSet<String> = alerts["data"]["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["state"] == "pending" || a["state"] == "firing")
                .map(|a| {
                    a["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            let missing: Vec<&&str> = expected
                .iter()
                .filter(|name| !active.contains(**name))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}; active {active:?}"))
            }
        }
    })
    .await;
    let alerts = api(&base, "/api/v1/alerts", &[]).await;
    let blocked = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "BtWatchdogFailoverBlocked")
        .unwrap()
        .clone();
    assert_eq!(blocked["labels"]["blocker"], "sync_stale", "{blocked}");
    // A healthy watchdog does not look down.
    assert!(!alerts.to_string().contains("BtWatchdogDown"), "{alerts}");
    drop(prometheus);
    sim.shutdown().await;
}

/// The active (pending or firing) alerts: (name, severity).
async fn active_alerts(base: &str) -> BTreeSet<(String, String)> {
    let alerts = api(base, "/api/v1/alerts", &[]).await;
    alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "pending" || a["state"] == "firing")
        .map(|a| {
            let label = |name: &str| a["labels"][name].as_str().unwrap_or_default().to_string();
            (label("alertname"), label("severity"))
        })
        .collect()
}

async fn wait_for_alert(base: &str, name: &str, severity: &str, firing: bool) {
    wait_until(Duration::from_secs(60), name, || {
        let base = base.to_string();
        async move {
            let alerts = api(&base, "/api/v1/alerts", &[]).await;
            let found = alerts["data"]["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| {
                    a["labels"]["alertname"] == name
                        && a["labels"]["severity"] == severity
                        && (!firing || a["state"] == "firing")
                });
            if found {
                Ok(())
            } else {
                Err(format!("{alerts}"))
            }
        }
    })
    .await;
}

/// After every real failover the old primary stays dead for a while. Its last word was
/// "primary", but that is not what it is now: the shipped rules must not page anyone with a
/// split brain or an unreachable primary while the watchdog (rightly) says cooldown. Each of
/// those alerts still fires when it is real. The rules are the shipped ones with their `for:`
/// shortened to 3 s, so that "fires" is seen within the test.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_real_failover_with_the_old_primary_dead_no_false_critical_alert_fires() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    // The primary's failure lasts 15 s before the failover: long enough for its alert to fire.
    let (config, _) = ws.single_site_config("auto", &sim, "failover_after = \"15s\"");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(Duration::from_secs(30), "a healthy pair", |s| {
            s["state"] == "healthy"
        })
        .await;
    let shipped = std::fs::read_to_string(repo("dashboards/alerts.yml")).unwrap();
    let fast: String = shipped
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 3s", &line[..line.len() - line.trim_start().len()]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(ws.path("alerts.yml"), fast).unwrap();
    let prometheus = start_prometheus(&ws, &watchdog, &ws.path("alerts.yml")).await;
    let base = prometheus.base.clone();

    // Real: the primary east dies; until the failover it is an unreachable primary.
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    wait_for_alert(&base, "BtWatchdogApplianceUnreachable", "critical", true).await;
    watchdog
        .wait_for_site(Duration::from_secs(60), "the promotion verified", |s| {
            s["state"] == "cooldown"
        })
        .await;

    // Not real: west is primary and verified, east is dead. Once Prometheus has scraped and
    // evaluated the new picture (every second), the critical alert resolves; then over 12 s no
    // split brain and no unreachable *primary* may even be pending (east is an unreachable
    // non-primary: the warning is right).
    wait_until(
        Duration::from_secs(10),
        "the unreachable primary to resolve",
        || {
            let base = base.clone();
            async move {
                let active = active_alerts(&base).await;
                let critical = (
                    "BtWatchdogApplianceUnreachable".to_string(),
                    "critical".to_string(),
                );
                if active.contains(&critical) {
                    Err(format!("{active:?}"))
                } else {
                    Ok(())
                }
            }
        },
    )
    .await;
    let until = Instant::now() + Duration::from_secs(12);
    let mut saw_backup_warning = false;
    while Instant::now() < until {
        for (name, severity) in active_alerts(&base).await {
            assert_ne!(
                name, "BtWatchdogSplitBrain",
                "split brain after a verified failover"
            );
            if name == "BtWatchdogApplianceUnreachable" {
                assert_eq!(severity, "warning", "east is no longer the primary");
                saw_backup_warning = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(saw_backup_warning, "east does not answer: a warning is due");
    let metrics = watchdog.metrics().await;
    assert!(
        metrics.contains(
            r#"beyondtrust_appliance_failover_role{appliance="east",role="primary",site="hq"} 0"#
        ),
        "{metrics}"
    );

    // Real: east comes back still believing it is primary, and cannot be demoted.
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(false),
            failover_failing: Some(true),
            ..Default::default()
        },
    );
    sim.with(|p| p.appliances[0].role = bt_watchdog::api::model::FailoverRole::Primary);
    wait_for_alert(&base, "BtWatchdogSplitBrain", "critical", true).await;
    drop(prometheus);
    sim.shutdown().await;
}
