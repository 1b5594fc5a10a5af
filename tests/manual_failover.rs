//! Manual failover and the operator commands, through a running daemon's control socket (and
//! standalone), against the simulated pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bt_watchdog::api::model::FailoverRole;
use bt_watchdog::sim::{FaultsPatch, SimSettings, Simulator};
use common::simulator;
use common::watchdog::{BINARY, SECRET, Watchdog, Workspace, config_toml, metric, site_toml};

const LONG: Duration = Duration::from_secs(30);

struct Setup {
    sim: Simulator,
    ws: Workspace,
    watchdog: Watchdog,
}

async fn setup(mode: &str, settings: SimSettings) -> Setup {
    let sim = simulator(settings).await;
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    std::fs::write(
        ws.path("config.toml"),
        config_toml(mode, &ws.path("state"), &site_toml("hq", &sim, &secret, "")),
    )
    .unwrap();
    let watchdog = Watchdog::start(&ws.path("config.toml"), &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    Setup { sim, ws, watchdog }
}

async fn cli(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("USER", "alice")
        .env_remove("SUDO_USER");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn failover_calls(sim: &Simulator) -> usize {
    sim.with(|p| p.failover_calls.len())
}

fn roles(sim: &Simulator) -> [FailoverRole; 2] {
    sim.with(|p| [p.appliances[0].role, p.appliances[1].role])
}

fn audit(ws: &Workspace) -> Vec<serde_json::Value> {
    std::fs::read_to_string(ws.path("state/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let Setup {
        sim,
        ws,
        watchdog: _w,
    } = setup("auto", SimSettings::default()).await;
    let output = cli(
        &ws.path("config.toml"),
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--data-sync-first",
        ],
    )
    .await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    for expected in [
        "Site hq (mode auto)",
        "east     primary  healthy",
        "POST /api/command/v2/failover-role on west: {\"role\":\"primary\",\"data_sync_first\":true,\"force\":false}",
        "data_sync_first disconnects every user on the primary east until the swap completes",
        "Preflight: PASSED",
        "Dry run: nothing was changed",
    ] {
        assert!(out.contains(expected), "{expected:?} missing:\n{out}");
    }
    assert_eq!(failover_calls(&sim), 0);
    let records = audit(&ws);
    assert_eq!(records.last().unwrap()["action"], "failover dry run");
    assert!(
        records.last().unwrap()["who"]
            .as_str()
            .unwrap()
            .contains("alice"),
        "{records:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_switchover_swaps_roles_and_counts_as_manual() {
    let settings = SimSettings {
        swap_duration: Duration::from_millis(500),
        ..SimSettings::default()
    };
    let Setup { sim, ws, watchdog } = setup("observe", settings).await;
    let output = cli(
        &ws.path("config.toml"),
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--data-sync-first",
            "--confirm",
        ],
    )
    .await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("Done: west is primary"), "{out}");
    assert_eq!(roles(&sim), [FailoverRole::Backup, FailoverRole::Primary]);
    let calls = sim.with(|p| p.failover_calls.clone());
    assert_eq!(calls.len(), 1);
    assert!(calls[0].appliance == "west" && calls[0].data_sync_first && !calls[0].force);
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_failovers_total{outcome="success",site="hq",trigger="manual"}"#
        ),
        Some(1.0)
    );
    assert_eq!(watchdog.site().await["state"], "cooldown");
    let records = audit(&ws);
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "failover" && r["outcome"] == "started"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "failover finished" && r["outcome"] == "success"),
        "{records:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_preflight_calls_nothing_and_an_override_is_recorded() {
    let Setup {
        sim,
        ws,
        watchdog: _w,
    } = setup("auto", SimSettings::default()).await;
    sim.set_faults(
        1,
        FaultsPatch {
            unhealthy: Some(true),
            ..Default::default()
        },
    );
    let config = ws.path("config.toml");
    // The target is unhealthy: a dry run says so once the daemon has seen it ...
    let until = std::time::Instant::now() + LONG;
    loop {
        let output = cli(&config, &["failover", "--site", "hq", "--to", "west"]).await;
        if output.status.code() == Some(3) {
            assert!(
                text(&output).contains("target backup west is unhealthy"),
                "{}",
                text(&output)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "never refused: {}",
            text(&output)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and a confirmed request is refused and calls nothing.
    let output = cli(
        &config,
        &["failover", "--site", "hq", "--to", "west", "--confirm"],
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("Not carried out"),
        "{}",
        text(&output)
    );
    assert_eq!(failover_calls(&sim), 0);
    let output = cli(
        &config,
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--confirm",
            "--override-preflight",
        ],
    )
    .await;
    let out = text(&output);
    assert!(out.contains("OVERRIDDEN"), "{out}");
    assert_eq!(failover_calls(&sim), 1);
    let records = audit(&ws);
    assert!(
        records.iter().any(|r| r["outcome"]
            .as_str()
            .unwrap()
            .starts_with("started with the preflight overridden")),
        "{records:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_an_automatic_failover_resume_allows_it_and_ack_ends_the_cooldown() {
    let Setup { sim, ws, watchdog } = setup("auto", SimSettings::default()).await;
    let config = ws.path("config.toml");
    let output = cli(
        &config,
        &["pause", "--site", "hq", "--reason", "upgrading east"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    watchdog
        .wait_for_site(LONG, "paused", |s| s["state"] == "paused")
        .await;
    assert_eq!(
        metric(
            &watchdog.metrics().await,
            r#"beyondtrust_watchdog_paused{site="hq"}"#
        ),
        Some(1.0)
    );
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    let site = watchdog
        .wait_for_site(LONG, "blocked by the pause", |s| s["blocker"] == "paused")
        .await;
    assert!(
        site["reason"].as_str().unwrap().contains("upgrading east"),
        "{site:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(failover_calls(&sim), 0);

    let output = cli(&config, &["resume", "--site", "hq"]).await;
    assert!(output.status.success(), "{}", text(&output));
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    assert_eq!(failover_calls(&sim), 1);

    // Ack ends the cooldown.
    let output = cli(
        &config,
        &["ack", "--site", "hq", "--reason", "checked by hand"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    watchdog
        .wait_for_site(LONG, "no cooldown", |s| {
            s["cooldown_remaining_seconds"] == 0.0
        })
        .await;
    let actions: Vec<String> = audit(&ws)
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, vec!["pause", "resume", "ack"]);
    assert!(
        watchdog.logs().contains("acknowledged by alice")
            && watchdog.logs().contains("left) ended early"),
        "{}",
        watchdog.logs()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_failover_is_refused_while_an_automatic_one_is_in_flight() {
    let settings = SimSettings {
        swap_duration: Duration::from_secs(4),
        ..SimSettings::default()
    };
    let Setup { sim, ws, watchdog } = setup("auto", settings).await;
    sim.set_faults(
        0,
        FaultsPatch {
            unhealthy: Some(true),
            ..Default::default()
        },
    );
    watchdog
        .wait_for_site(LONG, "a failover in progress", |s| {
            s["state"] == "failing_over"
        })
        .await;
    let output = cli(
        &ws.path("config.toml"),
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "east",
            "--confirm",
            "--override-preflight",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("already in progress"),
        "{}",
        text(&output)
    );
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    assert_eq!(failover_calls(&sim), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_works_without_a_daemon_and_is_refused_while_one_runs() {
    let Setup {
        sim,
        ws,
        mut watchdog,
    } = setup("auto", SimSettings::default()).await;
    let config = ws.path("config.toml");
    let output = cli(
        &config,
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--standalone",
            "--confirm",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("a daemon is running"),
        "{}",
        text(&output)
    );
    watchdog.stop();

    let output = cli(
        &config,
        &["failover", "--site", "hq", "--to", "west", "--confirm"],
    )
    .await;
    assert_eq!(output.status.code(), Some(69), "{}", text(&output));
    assert!(
        text(&output).contains("add --standalone"),
        "{}",
        text(&output)
    );

    let output = cli(
        &config,
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--standalone",
            "--confirm",
        ],
    )
    .await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("Done: west is primary"), "{out}");
    assert_eq!(roles(&sim)[1], FailoverRole::Primary);
    let records = audit(&ws);
    assert_eq!(records.last().unwrap()["details"]["standalone"], true);
    // The memory it wrote is the daemon's: a daemon started now is in cooldown.
    let watchdog = Watchdog::start(&config, &ws.path("watchdog2.log"), "info");
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_socket_is_private_to_the_watchdogs_user() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Setup {
        sim,
        ws,
        watchdog: _w,
    } = setup("auto", SimSettings::default()).await;
    let socket = ws.path("state/control.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    if meta.uid() == 0 {
        // As root the test can try another user: first the file mode stops it, then (with the
        // mode widened on purpose) the daemon's own uid check does.
        use std::os::unix::process::CommandExt as _;
        std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(ws.path("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            ws.path("config.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let run_as_nobody = |config: std::path::PathBuf| {
            Command::new(BINARY)
                .args(["pause", "--site", "hq", "--reason", "x", "--config"])
                .arg(config)
                .uid(65534)
                .gid(65534)
                .output()
                .unwrap()
        };
        let config = ws.path("config.toml");
        let output = tokio::task::spawn_blocking(move || run_as_nobody(config))
            .await
            .unwrap();
        assert!(!output.status.success());
        // Where file modes apply to this process (not in every sandbox), the mode stops it;
        // otherwise the daemon's uid check does.
        let out = text(&output);
        assert!(
            out.contains("permission denied") || out.contains("uid 65534 may not control"),
            "{out}"
        );
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        let config = ws.path("config.toml");
        let output = tokio::task::spawn_blocking(move || run_as_nobody(config))
            .await
            .unwrap();
        assert!(!output.status.success());
        assert!(
            text(&output).contains("uid 65534 may not control this watchdog"),
            "{}",
            text(&output)
        );
        assert!(audit(&ws).is_empty(), "nothing was done");
    }
    sim.shutdown().await;
}

/// A split brain the watchdog did not cause: the operator demotes the appliance clients do not
/// use, through the same guarded flow (preflight, plan, confirmation, audit). Refused when it
/// would not end a split brain, whatever the override.
#[tokio::test(flavor = "multi_thread")]
async fn a_split_brain_is_ended_by_demoting_one_side_and_only_then() {
    let Setup {
        sim,
        ws,
        mut watchdog,
    } = setup("auto", SimSettings::default()).await;
    let config = ws.path("config.toml");

    // A healthy pair: west is backup, there is nothing to demote, and no override changes that.
    let output = cli(
        &config,
        &[
            "failover",
            "--site",
            "hq",
            "--demote",
            "west",
            "--confirm",
            "--override-preflight",
        ],
    )
    .await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(3), "{out}");
    assert!(
        out.contains("west reports backup, not primary: there is nothing to demote")
            && out.contains("no override sets that aside"),
        "{out}"
    );
    // Nor east, the only primary: that would leave the pair without one.
    let output = cli(&config, &["failover", "--site", "hq", "--demote", "east"]).await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(3), "{out}");
    assert!(
        out.contains("would leave the pair without a primary (to make west primary, fail over with --to west)")
            && !out.contains("--override-preflight carries it out"),
        "{out}"
    );
    assert_eq!(failover_calls(&sim), 0);

    // Split brain: west claims primary too.
    sim.with(|p| p.appliances[1].role = FailoverRole::Primary);
    watchdog
        .wait_for_site(LONG, "a split brain", |s| s["state"] == "split_brain")
        .await;
    // `--to` refuses an appliance that already reports primary: the demotion is the way.
    let output = cli(&config, &["failover", "--site", "hq", "--to", "east"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));

    let output = cli(&config, &["failover", "--site", "hq", "--demote", "west"]).await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains(r#"POST /api/command/v2/failover-role on west: {"role":"backup","data_sync_first":false,"force":true}"#),
        "{out}"
    );
    assert!(
        out.contains("Preflight: PASSED") && out.contains("Dry run"),
        "{out}"
    );
    assert_eq!(failover_calls(&sim), 0, "a dry run calls nothing");

    let output = cli(
        &config,
        &["failover", "--site", "hq", "--demote", "west", "--confirm"],
    )
    .await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains("Done: west is backup, east the only primary"),
        "{out}"
    );
    assert_eq!(roles(&sim), [FailoverRole::Primary, FailoverRole::Backup]);
    let calls = sim.with(|p| p.failover_calls.clone());
    assert_eq!(calls.len(), 1);
    assert!(calls[0].appliance == "west" && calls[0].force && !calls[0].data_sync_first);
    watchdog
        .wait_for_site(LONG, "the split brain ended", |s| s["state"] == "cooldown")
        .await;
    let records = audit(&ws);
    assert!(
        records.iter().any(|r| r["action"] == "failover"
            && r["details"]["demote"] == "west"
            && r["details"]["to"] == "east"
            && r["outcome"] == "started"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "failover finished" && r["outcome"] == "success"),
        "{records:?}"
    );
    assert!(
        watchdog
            .logs()
            .contains("west demoted: east is the only primary"),
        "{}",
        watchdog.logs()
    );
    watchdog.stop();
    sim.shutdown().await;
}
