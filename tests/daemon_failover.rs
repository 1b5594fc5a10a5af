//! The real daemon against the simulated pair: the failover end to end, restart in cooldown,
//! and the engine scenarios that faults can produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::time::Duration;

use bt_watchdog::api::model::FailoverRole;
use bt_watchdog::sim::{FaultsPatch, SimApis, SimSettings, Simulator};
use common::simulator;
use common::watchdog::{SECRET, Watchdog, Workspace, config_toml, metric, site_toml};

const LONG: Duration = Duration::from_secs(30);

fn roles(sim: &Simulator) -> [FailoverRole; 2] {
    sim.with(|p| [p.appliances[0].role, p.appliances[1].role])
}

fn calls(sim: &Simulator) -> Vec<(String, FailoverRole, bool, bool)> {
    sim.with(|p| {
        p.failover_calls
            .iter()
            .map(|c| (c.appliance.clone(), c.role, c.data_sync_first, c.force))
            .collect()
    })
}

fn down(value: bool) -> FaultsPatch {
    FaultsPatch {
        down: Some(value),
        ..Default::default()
    }
}

struct Setup {
    sim: Simulator,
    ws: Workspace,
    watchdog: Watchdog,
}

async fn setup(mode: &str, extra_policy: &str, settings: SimSettings) -> Setup {
    let sim = simulator(settings).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config(mode, &sim, extra_policy);
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    Setup { sim, ws, watchdog }
}

async fn healthy(watchdog: &Watchdog) {
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
}

/// The end-to-end failover: the primary east dies; exactly one call promotes west; the roles
/// swap; the metrics count one automatic success and show west as primary. Returns the
/// metrics text for further checks.
async fn kill_east_and_expect_one_promotion_of_west(
    sim: &Simulator,
    watchdog: &Watchdog,
) -> String {
    sim.set_faults(0, down(true));
    watchdog
        .wait_for_site(LONG, "cooldown after the failover", |s| {
            s["state"] == "cooldown"
        })
        .await;
    assert_eq!(
        calls(sim),
        vec![("west".to_string(), FailoverRole::Primary, false, false)]
    );
    assert_eq!(roles(sim)[1], FailoverRole::Primary);
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_failovers_total{outcome="success",site="hq",trigger="auto"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_appliance_failover_role{appliance="west",role="primary",site="hq"}"#
        ),
        Some(1.0)
    );
    metrics
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_killed_one_promotion_metrics_and_restart_stays_in_cooldown() {
    let Setup {
        sim,
        ws,
        mut watchdog,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    let metrics = kill_east_and_expect_one_promotion_of_west(&sim, &watchdog).await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_appliance_failover_role{appliance="west",role="backup",site="hq"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_appliance_up{appliance="east",site="hq"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_state{site="hq",state="cooldown"}"#
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_cooldown_remaining_seconds{site="hq"}"#
        )
        .unwrap()
            > 500.0
    );
    let status = watchdog.site().await;
    assert_eq!(status["promoted"], "west");
    assert!(status["decisions"].as_array().unwrap().iter().any(|d| {
        d["message"]
            .as_str()
            .unwrap()
            .contains("failover to west done")
    }));

    // East returns still believing it is primary: the watchdog demotes it, cooldown or not.
    sim.set_faults(0, down(false));
    watchdog
        .wait_for_site(LONG, "the split brain ended", |s| {
            s["promoted"].is_null() && s["state"] == "cooldown"
        })
        .await;
    assert_eq!(roles(&sim), [FailoverRole::Backup, FailoverRole::Primary]);
    assert_eq!(calls(&sim).len(), 2);
    assert_eq!(
        calls(&sim)[1],
        ("east".to_string(), FailoverRole::Backup, false, true)
    );

    // A restart remembers the cooldown: the new primary dying does not cause a second failover.
    watchdog.stop();
    let mut watchdog = Watchdog::start(&ws.path("config.toml"), &ws.path("watchdog2.log"), "info");
    watchdog
        .wait_for_site(LONG, "cooldown after the restart", |s| {
            s["state"] == "cooldown"
        })
        .await;
    sim.set_faults(1, down(true));
    let blocked = watchdog
        .wait_for_site(LONG, "a blocked failover", |s| {
            s["state"] == "failover_blocked"
        })
        .await;
    assert_eq!(blocked["blocker"], "cooldown", "{blocked:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(&sim).len(), 2, "no call during the cooldown");
    watchdog.stop();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s01_a_healthy_pair_gets_no_call() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(calls(&sim).is_empty());
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_appliance_healthy{appliance="east",site="hq"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, r#"beyondtrust_watchdog_auto_enabled{site="hq"}"#),
        Some(1.0)
    );
    assert!(
        metric(
            &metrics,
            r#"beyondtrust_appliance_data_sync_age_seconds{appliance="east",site="hq"}"#
        )
        .is_some(),
        "{metrics}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s03_stale_data_blocks_the_failover() {
    let sim = simulator(SimSettings::default()).await;
    // The primary's last sync is an hour old and not advancing (its peer link broke earlier).
    sim.with(|p| p.set_sync_stale(Some(3600), std::time::SystemTime::now()));
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    // While the primary is healthy, the stale data already shows: degraded, not healthy.
    let site = watchdog
        .wait_for_site(LONG, "a pair degraded by stale data", |s| {
            s["state"] == "degraded"
        })
        .await;
    assert!(
        site["reason"]
            .as_str()
            .unwrap()
            .contains("a failover would be refused"),
        "{site:#}"
    );
    sim.set_faults(0, down(true));
    let site = watchdog
        .wait_for_site(LONG, "a blocked failover", |s| s["blocker"] == "sync_stale")
        .await;
    assert!(
        site["reason"].as_str().unwrap().contains("max_sync_age"),
        "{site:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(calls(&sim).is_empty());
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_failover_blocked{blocker="sync_stale",site="hq"}"#
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &metrics,
            r#"beyondtrust_appliance_data_sync_age_seconds{appliance="east",site="hq"}"#
        )
        .unwrap()
            >= 3600.0
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s05_blind_and_s06_degraded() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    sim.set_faults(1, down(true));
    watchdog
        .wait_for_site(LONG, "degraded", |s| s["state"] == "degraded")
        .await;
    sim.set_faults(0, down(true));
    watchdog
        .wait_for_site(LONG, "blind", |s| s["state"] == "blind")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(calls(&sim).is_empty());
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_alert{alert="blind",site="hq"}"#
        ),
        Some(1.0)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s07_a_split_brain_the_watchdog_did_not_cause_is_only_alerted() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    sim.with(|p| p.appliances[1].role = FailoverRole::Primary);
    watchdog
        .wait_for_site(LONG, "split brain", |s| s["state"] == "split_brain")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(calls(&sim).is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s08_observe_mode_only_says_what_it_would_do() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("observe", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    sim.set_faults(0, down(true));
    let site = watchdog
        .wait_for_site(LONG, "blocked by observe mode", |s| {
            s["blocker"] == "observe_mode"
        })
        .await;
    assert!(
        site["reason"]
            .as_str()
            .unwrap()
            .contains("would promote west"),
        "{site:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(calls(&sim).is_empty());
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(&metrics, r#"beyondtrust_watchdog_auto_enabled{site="hq"}"#),
        Some(0.0)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s10_a_failing_call_is_retried_then_given_up() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    sim.set_faults(
        1,
        FaultsPatch {
            failover_failing: Some(true),
            ..Default::default()
        },
    );
    sim.set_faults(0, down(true));
    watchdog
        .wait_for_site(LONG, "retries exhausted", |s| {
            s["blocker"] == "retries_exhausted"
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(&sim).len(), 3, "max_attempts calls and no more");
    // Each failed attempt is a warning in the log, not an INFO line among the polls.
    let logs = watchdog.logs();
    let attempts: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("attempt ") && line.contains(" failed: "))
        .collect();
    assert!(attempts.len() >= 2, "{logs}");
    for line in attempts {
        assert!(line.contains(" WARN "), "not a warning: {line}");
    }
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_failovers_total{outcome="failure",site="hq",trigger="auto"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_alert{alert="failover_failed",site="hq"}"#
        ),
        Some(1.0)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s12_an_unhealthy_primary_gets_a_graceful_switchover() {
    let settings = SimSettings {
        swap_duration: Duration::from_millis(800),
        ..SimSettings::default()
    };
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", settings).await;
    healthy(&watchdog).await;
    sim.set_faults(
        0,
        FaultsPatch {
            unhealthy: Some(true),
            ..Default::default()
        },
    );
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    assert_eq!(
        calls(&sim),
        vec![("west".to_string(), FailoverRole::Primary, true, false)]
    );
    assert_eq!(roles(&sim), [FailoverRole::Backup, FailoverRole::Primary]);
    let journal = watchdog.logs();
    assert!(
        !journal.contains("no_primary"),
        "both reading backup during the swap is expected:\n{journal}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s13_a_primary_cut_off_from_its_peer_is_fenced_then_the_backup_promoted() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    sim.with(|p| p.faults.partitioned = true);
    sim.set_faults(
        0,
        FaultsPatch {
            unhealthy: Some(true),
            ..Default::default()
        },
    );
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    assert_eq!(
        calls(&sim),
        vec![
            ("east".to_string(), FailoverRole::Backup, false, true),
            ("west".to_string(), FailoverRole::Primary, false, false)
        ]
    );
    assert_eq!(roles(&sim), [FailoverRole::Backup, FailoverRole::Primary]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s15_a_start_with_the_primary_already_down_does_not_guess() {
    let sim = simulator(SimSettings::default()).await;
    sim.set_faults(0, down(true));
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    // West's appliance list says east is primary, but no primary ever reported a sync time:
    // the data age is unknown, so nothing is promoted.
    let site = watchdog
        .wait_for_site(LONG, "a blocked failover", |s| {
            s["state"] == "failover_blocked"
        })
        .await;
    assert_eq!(site["blocker"], "sync_unknown", "{site:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(calls(&sim).is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s04_a_flapping_primary_is_not_failed_over() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "failover_after = \"2s\"", SimSettings::default()).await;
    healthy(&watchdog).await;
    // Down for well under failover_after, up again, many times.
    for _ in 0..8 {
        sim.set_faults(0, down(true));
        tokio::time::sleep(Duration::from_millis(700)).await;
        sim.set_faults(0, down(false));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    healthy(&watchdog).await;
    assert!(calls(&sim).is_empty());
    assert!(
        watchdog.logs().contains("primary_suspect"),
        "the failures were seen:\n{}",
        watchdog.logs()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s14_a_frozen_watchdog_does_not_act_until_it_has_run_regularly_again() {
    let Setup {
        sim,
        watchdog,
        ws: _ws,
    } = setup("auto", "", SimSettings::default()).await;
    healthy(&watchdog).await;
    sim.set_faults(0, down(true));
    // The process is frozen (SIGSTOP) for longer than stall_tolerance (3s) while the primary
    // is down, then resumes.
    watchdog.signal("STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    watchdog.signal("CONT");
    let resumed = std::time::Instant::now();
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    let acted = resumed.elapsed();
    let logs = watchdog.logs();
    assert!(logs.contains("loop stalled"), "{logs}");
    // stall_recovery is twice failover_after (1s): no call in the first 2s after resuming.
    assert!(
        acted >= Duration::from_secs(2),
        "acted {acted:?} after resuming"
    );
    assert_eq!(calls(&sim).len(), 1);
    sim.shutdown().await;
}

fn with_api(site: String, api: &str) -> String {
    site.replacen("client_id = ", &format!("api = \"{api}\"\nclient_id = "), 1)
}

async fn failover_end_to_end(settings: SimSettings, api: &str, expected_api: [&str; 2]) {
    let sim = simulator(settings).await;
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        config_toml(
            "auto",
            &ws.path("state"),
            &with_api(site_toml("hq", &sim, &secret, ""), api),
        ),
    )
    .unwrap();
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    healthy(&watchdog).await;
    let metrics = watchdog.metrics().await;
    for (appliance, api) in ["east", "west"].iter().zip(expected_api) {
        let info = metrics
            .lines()
            .find(|l| {
                l.starts_with("beyondtrust_appliance_info{")
                    && l.contains(&format!("appliance=\"{appliance}\""))
            })
            .unwrap();
        assert!(info.contains(&format!("api=\"{api}\"")), "{info}");
    }
    kill_east_and_expect_one_promotion_of_west(&sim, &watchdog).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failover_end_to_end_against_an_xml_only_pair() {
    let xml_only = SimSettings {
        apis: [SimApis {
            v2: false,
            xml: true,
        }; 2],
        ..SimSettings::default()
    };
    failover_end_to_end(xml_only, "xml", ["xml", "xml"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failover_end_to_end_against_a_pair_mid_upgrade() {
    // East still speaks only XML, west already only v2: `auto` finds out for each.
    let mixed = SimSettings {
        apis: [
            SimApis {
                v2: false,
                xml: true,
            },
            SimApis {
                v2: true,
                xml: false,
            },
        ],
        ..SimSettings::default()
    };
    failover_end_to_end(mixed, "auto", ["xml", "v2"]).await;
}
