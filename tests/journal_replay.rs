//! The decision journal and replay, with the real daemon against the simulated pair: the
//! journal is written and readable, replaying it with the policy that recorded it gives the
//! same decisions at the same moments, and replaying it with a slower `failover_after` shows
//! the decision later.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bt_watchdog::sim::{FaultsPatch, SimSettings};
use common::simulator;
use common::watchdog::{BINARY, Watchdog, Workspace};

const LONG: Duration = Duration::from_secs(30);

fn down() -> FaultsPatch {
    FaultsPatch {
        down: Some(true),
        ..Default::default()
    }
}

/// Runs the CLI; (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn journal_lines(ws: &Workspace) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(ws.path("state/journal/hq.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_journalled_readably_and_replays_to_the_same_decisions() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    // Between the /health reads (each alternates which appliance's /appliance list is read)
    // the polls read only the probes, and those repeat.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("health_interval = \"200ms\"", "health_interval = \"2s\""),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let mut watchdog = Watchdog::start(config.as_ref(), &ws.path("run.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    sim.set_faults(0, down());
    watchdog
        .wait_for_site(LONG, "the failover done and the cooldown", |s| {
            s["state"] == "cooldown"
        })
        .await;
    watchdog.stop();

    // Written: a start line with the policy and memory, steps with their inputs and actions.
    let lines = journal_lines(&ws);
    assert_eq!(lines[0]["kind"], "start", "{:#}", lines[0]);
    assert_eq!(lines[0]["config"]["mode"], "auto");
    let call = lines
        .iter()
        .flat_map(|l| l["actions"].as_array().cloned().unwrap_or_default())
        .find(|a| a["action"] == "call")
        .expect("the failover call is journalled");
    assert_eq!(call["appliance"], "west");
    assert!(
        lines.iter().any(|l| l["repeat"] == true),
        "identical polls are written as repeats"
    );

    // Readable.
    let (code, out, err) = cli(&["journal", "--config", &config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("started in auto mode"), "{out}");
    assert!(
        out.contains("CALL POST /failover-role on west: role=primary"),
        "{out}"
    );
    assert!(out.contains("auto failover"), "{out}");
    let (code, out, _) = cli(&["journal", "--config", &config, "--json", "--site", "hq"]);
    assert_eq!(code, 0);
    for line in out.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["site"], "hq");
        assert!(value["repeat"].is_null(), "--json resolves repeats: {line}");
    }
    let (code, out, _) = cli(&["journal", "--config", &config, "--since", "1s"]);
    assert_eq!(code, 0);
    assert!(
        !out.contains("started in auto mode"),
        "--since filters: {out}"
    );

    // Replayed with the recorded policy: the same decisions at the same moments.
    let (code, out, err) = cli(&["replay", "--config", &config, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["differences"], serde_json::json!([]), "{report:#}");
    let site = &report["sites"][0];
    assert_eq!(site["exact"], true);
    let replayed: Vec<&str> = site["replayed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["what"].as_str().unwrap())
        .collect();
    assert!(
        replayed.contains(&"auto call to west: role=primary, data_sync_first=false, force=false"),
        "{replayed:?}"
    );
    assert!(
        replayed.contains(&"auto failover to west finished: success"),
        "{replayed:?}"
    );
    let (code, out, _) = cli(&["replay", "--config", &config]);
    assert_eq!(code, 0);
    assert!(out.contains("no differences"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_a_slower_failover_after_shows_the_later_decision() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    // Observe mode: the recorded run decides "would fail over" and the world stays as it was,
    // so the slower policy sees the same failure for long enough to decide too.
    let (config, _) = ws.single_site_config("observe", &sim, "");
    let config = config.to_str().unwrap().to_string();
    let mut watchdog = Watchdog::start(config.as_ref(), &ws.path("run.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    sim.set_faults(0, down());
    watchdog
        .wait_for_site(LONG, "the decision (held by observe mode)", |s| {
            s["state"] == "failover_blocked" && s["blocker"] == "observe_mode"
        })
        .await;
    // Recorded for 4 s after the decision, so that a 3 s failover_after decides within it.
    let decided = Instant::now();
    let until = decided + LONG;
    loop {
        let lines = journal_lines(&ws);
        let first_blocked = lines
            .iter()
            .find(|l| l["state"] == "failover_blocked")
            .and_then(|l| l["ns"].as_u64());
        let last = lines.last().and_then(|l| l["ns"].as_u64());
        if let (Some(first), Some(last)) = (first_blocked, last)
            && last > first + 4_000_000_000
        {
            break;
        }
        assert!(Instant::now() < until, "the journal did not grow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watchdog.stop();

    let (code, out, err) = cli(&["replay", "--config", &config, "--json"]);
    assert_eq!(code, 0, "{err}");
    let same: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(same["differences"], serde_json::json!([]), "{same:#}");

    let journal = ws.path("state/journal/hq.jsonl");
    let (code, out, err) = cli(&[
        "replay",
        journal.to_str().unwrap(),
        "--set",
        "failover_after=3s",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let site = &report["sites"][0];
    assert_eq!(site["exact"], false);
    assert_eq!(
        site["policy_changes"],
        serde_json::json!([{"key": "failover_after", "recorded": "1s", "replayed": "3s"}])
    );
    let later = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["what"] == "state failover_blocked")
        .unwrap_or_else(|| panic!("no difference for the decision: {report:#}"));
    assert_eq!(later["change"], "later", "{later:#}");
    let seconds = later["seconds"].as_f64().unwrap();
    assert!(
        (1.5..=2.6).contains(&seconds),
        "decided about 2 s later: {seconds}"
    );
    assert!(
        later["replayed"]
            .as_str()
            .unwrap()
            .contains("observe mode: would promote west"),
        "{later:#}"
    );

    // Readably, side by side.
    let (code, out, _) = cli(&["replay", "--config", &config, "--set", "failover_after=3s"]);
    assert_eq!(code, 0);
    assert!(out.contains("policy: failover_after 1s -> 3s"), "{out}");
    assert!(out.contains("state failover_blocked"), "{out}");
    assert!(out.contains("s later"), "{out}");

    // A key that is not a policy key is refused by name.
    let (code, _, err) = cli(&["replay", "--config", &config, "--set", "failover_afer=3s"]);
    assert_eq!(code, 64);
    assert!(err.contains("failover_afer"), "{err}");
}
