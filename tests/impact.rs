//! Who a failover disconnects, with the real daemon against the simulated pair (whose
//! clients come and go with the clock): the counts are exported, shown in a manual failover's
//! plan, said in the reasons of an automatic decision, and a policy limit on representatives
//! holds back an automatic switchover of an answering primary but never the failover of a
//! dead one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::process::Command;
use std::time::Duration;

use bt_watchdog::sim::{FaultsPatch, SimSettings};
use common::simulator;
use common::watchdog::{BINARY, Watchdog, Workspace, metric};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_counts_are_exported_and_shown_in_the_plan() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("run.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    let until = std::time::Instant::now() + LONG;
    let metrics = loop {
        let metrics = watchdog.metrics().await;
        if metrics.contains("beyondtrust_appliance_clients{") {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < until,
            "no client counts:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let series = |kind: &str| {
        metric(
            &metrics,
            &format!(
                r#"beyondtrust_appliance_clients{{appliance="east",site="hq",type="{kind}"}}"#
            ),
        )
        .unwrap_or_else(|| panic!("no {kind} series:\n{metrics}"))
    };
    // The simulated site: 3 to 6 consoles, 40 to 49 endpoint clients, 2 gateways.
    assert!((3.0..=6.0).contains(&series("rep_console")), "{metrics}");
    assert!((40.0..=49.0).contains(&series("asset_client")), "{metrics}");
    assert_eq!(series("gateway"), 2.0);

    // The plan of a manual failover says who it disconnects.
    let output = Command::new(BINARY)
        .args(["failover", "--site", "hq", "--to", "west", "--config"])
        .arg(&config)
        .env("USER", "alice")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("disconnects"))
        .unwrap_or_else(|| panic!("no impact in the plan:\n{text}"));
    assert!(
        line.contains("asset_client")
            && line.contains("2 gateway")
            && line.contains("rep_console on east"),
        "{line}"
    );

    // An automatic decision says it too (and so does its journal line).
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    watchdog
        .wait_for_site(LONG, "the failover done", |s| s["state"] == "cooldown")
        .await;
    let journal = std::fs::read_to_string(ws.path("state/journal/hq.jsonl")).unwrap();
    let decision = journal
        .lines()
        .find(|l| l.contains("\"action\":\"call\""))
        .unwrap();
    assert!(
        decision.contains("rep_console on east (counted"),
        "the decision names the clients it disconnects: {decision}"
    );
}
