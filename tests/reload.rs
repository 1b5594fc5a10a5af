//! Reloading the configuration (SIGHUP) with the real daemon against the simulated pair: what a
//! reload keeps (clients, tokens, rate state, counters), what it replaces, and that one that
//! cannot be applied whole changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::time::{Duration, Instant};

use bt_watchdog::sim::{FaultsPatch, SimSettings};
use common::simulator;
use common::watchdog::{Watchdog, Workspace, config_toml, metric, site_toml};

const LONG: Duration = Duration::from_secs(30);

/// Waits until the log has `needle` `count` times in all.
async fn wait_for_log(watchdog: &Watchdog, needle: &str, count: usize) {
    let until = Instant::now() + LONG;
    while watchdog.logs().matches(needle).count() < count {
        assert!(
            Instant::now() < until,
            "no {needle:?} in the log:\n{}",
            watchdog.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `polls` more polls of the first site (its `last_poll` changing).
async fn wait_polls(watchdog: &Watchdog, polls: usize) {
    for _ in 0..polls {
        let before = watchdog.site().await["last_poll"].clone();
        watchdog
            .wait_for_site(LONG, "another poll", |s| s["last_poll"] != before)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_or_mode_reload_keeps_the_clients_their_tokens_and_a_429_backoff() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, secret) = ws.single_site_config("observe", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;

    // East answers 429 with Retry-After: 600 from now on: the watchdog backs off.
    sim.set_faults(
        0,
        FaultsPatch {
            rate_limited: Some(true),
            retry_after_secs: Some(Some(600)),
            ..Default::default()
        },
    );
    let until = Instant::now() + LONG;
    while sim.counters(0).rate_limited == 0 {
        assert!(Instant::now() < until, "east was never asked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The requests already in flight with the first one have their answers too.
    wait_polls(&watchdog, 3).await;
    let refused_before = sim.counters(0).rate_limited;
    let tokens_before = [sim.counters(0).tokens_minted, sim.counters(1).tokens_minted];

    // A cooldown and a mode change: nothing about how to reach the appliances.
    std::fs::write(
        &config,
        config_toml(
            "auto",
            &ws.path("state"),
            &site_toml("hq", &sim, &secret, "cooldown = \"20m\""),
        ),
    )
    .unwrap();
    watchdog.signal("HUP");
    wait_for_log(&watchdog, "configuration reloaded", 2).await;
    watchdog
        .wait_for_site(LONG, "auto mode", |s| s["mode"] == "auto")
        .await;
    wait_polls(&watchdog, 10).await;

    assert_eq!(
        sim.counters(0).rate_limited,
        refused_before,
        "a request went to east during its Retry-After: 600 backoff after the reload"
    );
    assert_eq!(
        [sim.counters(0).tokens_minted, sim.counters(1).tokens_minted],
        tokens_before,
        "the reload minted new tokens"
    );

    // A new URL is a new client: west's moves to the same appliance by another name.
    let moved = site_toml("hq", &sim, &secret, "cooldown = \"20m\"")
        .replace(&sim.url(1), &sim.url(1).replace("127.0.0.1", "localhost"));
    std::fs::write(&config, config_toml("auto", &ws.path("state"), &moved)).unwrap();
    let west_tokens = sim.counters(1).tokens_minted;
    watchdog.signal("HUP");
    wait_for_log(&watchdog, "configuration reloaded", 3).await;
    let until = Instant::now() + LONG;
    while sim.counters(1).tokens_minted == west_tokens {
        assert!(
            Instant::now() < until,
            "west's new client never asked for a token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_cannot_be_applied_whole_changes_nothing() {
    let sim = simulator(SimSettings::default()).await;
    let second = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let secret = ws.write_secret(common::watchdog::SECRET);
    let config = ws.path("config.toml");
    let both = site_toml("hq", &sim, &secret, "") + &site_toml("branch", &second, &secret, "");
    std::fs::write(&config, config_toml("observe", &ws.path("state"), &both)).unwrap();
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    wait_for_log(&watchdog, "first poll of every site done", 1).await;

    // Branch removed, north added; north's state file cannot be read, which is only found
    // when north is set up: the removal must not have happened by then.
    std::fs::write(ws.path("state/north.state.json"), "{ not json").unwrap();
    let changed = site_toml("hq", &sim, &secret, "") + &site_toml("north", &second, &secret, "");
    std::fs::write(&config, config_toml("observe", &ws.path("state"), &changed)).unwrap();
    watchdog.signal("HUP");
    wait_for_log(&watchdog, "configuration not reloaded", 1).await;

    let status = watchdog.status().await;
    let names: Vec<&str> = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["branch", "hq"], "{status:#}");
    // Branch is still watched: it is polled again.
    let polled = |status: &serde_json::Value| {
        status["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site"] == "branch")
            .map(|s| s["last_poll"].clone())
            .unwrap()
    };
    let before = polled(&status);
    let until = Instant::now() + LONG;
    while polled(&watchdog.status().await) == before {
        assert!(
            Instant::now() < until,
            "branch is no longer polled:\n{}",
            watchdog.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(watchdog.metrics().await.contains("site=\"branch\""));
    sim.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_an_appliance_keeps_the_counters_and_leaves_no_ghost_series() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, secret) = ws.single_site_config("auto", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    watchdog
        .wait_for_site(LONG, "cooldown after the failover", |s| {
            s["state"] == "cooldown"
        })
        .await;
    let success =
        r#"beyondtrust_watchdog_failovers_total{outcome="success",site="hq",trigger="auto"}"#;
    assert_eq!(metric(&watchdog.metrics().await, success), Some(1.0));

    let renamed =
        site_toml("hq", &sim, &secret, "").replace("name = \"west\"", "name = \"west-b\"");
    std::fs::write(&config, config_toml("auto", &ws.path("state"), &renamed)).unwrap();
    watchdog.signal("HUP");
    wait_for_log(&watchdog, "configuration reloaded", 2).await;
    watchdog
        .wait_for_site(LONG, "the new name", |s| {
            s["appliances"][1]["name"] == "west-b"
        })
        .await;
    // Polls after the rename, each of them published: no series under the old name reappears.
    for _ in 0..10 {
        wait_polls(&watchdog, 1).await;
        let metrics = watchdog.metrics().await;
        assert!(
            !metrics.contains("appliance=\"west\""),
            "a series of the old name:\n{metrics}"
        );
        assert!(metrics.contains("appliance=\"west-b\""), "{metrics}");
        assert_eq!(
            metric(&metrics, success),
            Some(1.0),
            "the counter was wiped"
        );
    }
    sim.shutdown().await;
}
