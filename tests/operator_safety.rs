//! What operators rely on: no manual action without an audit record written first, for the
//! daemon and for a standalone run alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::process::Command;
use std::time::Duration;

use bt_watchdog::sim::{SimSettings, Simulator};
use common::simulator;
use common::watchdog::{BINARY, Watchdog, Workspace};

fn failover(config: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(BINARY)
        .args(["failover", "--site", "hq", "--to", "west", "--confirm"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .env("USER", "alice")
        .output()
        .unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn failover_calls(sim: &Simulator) -> usize {
    sim.with(|p| p.failover_calls.len())
}

/// The audit log cannot be written (here: a directory stands where it belongs): a confirmed
/// failover is refused before any call. Before, the call was made and the record was lost.
#[tokio::test(flavor = "multi_thread")]
async fn no_failover_without_its_audit_record_through_the_daemon() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(Duration::from_secs(30), "a healthy pair", |s| {
            s["state"] == "healthy"
        })
        .await;
    std::fs::create_dir(ws.path("state/audit.log")).unwrap();
    let config_clone = config.clone();
    let (code, out) = tokio::task::spawn_blocking(move || failover(&config_clone, &[]))
        .await
        .unwrap();
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("audit log") && out.contains("nothing was done"),
        "{out}"
    );
    assert_eq!(
        failover_calls(&sim),
        0,
        "the failover went ahead unrecorded"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_failover_without_its_audit_record_standalone() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    std::fs::create_dir_all(ws.path("state/audit.log")).unwrap();
    let (code, out) = tokio::task::spawn_blocking(move || failover(&config, &["--standalone"]))
        .await
        .unwrap();
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("audit log") && out.contains("nothing was done"),
        "{out}"
    );
    assert_eq!(
        failover_calls(&sim),
        0,
        "the failover went ahead unrecorded"
    );
    sim.shutdown().await;
}

/// A confirmed failover leaves an intent record before its outcome record, naming the caller
/// as the kernel knows it.
#[tokio::test(flavor = "multi_thread")]
async fn the_intent_is_recorded_before_the_outcome() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    std::fs::create_dir(ws.path("state")).unwrap();
    let (code, out) = tokio::task::spawn_blocking(move || failover(&config, &["--standalone"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{out}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(ws.path("state/audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"failover requested"), "{records:?}");
    assert!(actions.contains(&"failover"), "{records:?}");
    assert!(
        records[0]["who"].as_str().unwrap().contains("uid "),
        "{records:?}"
    );
    sim.shutdown().await;
}
