//! The operator commands tell the truth: taken up at once (not behind a slow poll), never
//! carried out after being answered "refused", audited whatever their outcome, and saying
//! what they did. Exit codes come from one table. The real binary against the simulated pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bt_watchdog::sim::{FaultsPatch, SimSettings};
use common::simulator;
use common::watchdog::{BINARY, Watchdog, Workspace};

const LONG: Duration = Duration::from_secs(30);

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

fn audit(ws: &Workspace) -> Vec<serde_json::Value> {
    std::fs::read_to_string(ws.path("state/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// East hangs and every request waits the whole 15 s `request_timeout`: a poll is in flight
/// almost all the time. Commands must not wait for it (they used to, and were answered "site
/// did not answer" after 10 s, exit 3, and then carried out anyway), and a stop must not
/// either.
#[tokio::test(flavor = "multi_thread")]
async fn commands_are_taken_up_during_a_slow_poll_and_say_what_they_did() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "stall_tolerance = \"20s\"");
    let slow = std::fs::read_to_string(&config)
        .unwrap()
        .replace("request_timeout = \"500ms\"", "request_timeout = \"15s\"");
    std::fs::write(&config, slow).unwrap();
    let mut watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    let asked = sim.counters(0).requests;
    sim.set_faults(
        0,
        FaultsPatch {
            hang: Some(true),
            ..Default::default()
        },
    );
    // A poll is now waiting on east.
    let until = Instant::now() + LONG;
    while sim.counters(0).requests == asked {
        assert!(Instant::now() < until, "east is not polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let paused = cli(
        &config,
        &["pause", "--site", "hq", "--reason", "maintenance"],
    )
    .await;
    assert_eq!(paused.status.code(), Some(0), "{}", text(&paused));
    assert!(
        text(&paused).contains("paused: no automatic failover until `resume`"),
        "{}",
        text(&paused)
    );
    assert_eq!(watchdog.site().await["state"], "paused");

    // A second pause does not swap the reason silently.
    let again = cli(&config, &["pause", "--site", "hq", "--reason", "upgrade"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains("already paused by alice")
            && text(&again).contains("(maintenance); the reason is now \"upgrade\""),
        "{}",
        text(&again)
    );

    let resumed = cli(&config, &["resume", "--site", "hq"]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(
        text(&resumed).contains("resumed (it was paused by alice"),
        "{}",
        text(&resumed)
    );
    let nothing = cli(&config, &["resume", "--site", "hq"]).await;
    assert!(
        text(&nothing).contains("nothing to resume: the site was not paused"),
        "{}",
        text(&nothing)
    );
    assert!(!text(&nothing).contains("applied"), "{}", text(&nothing));
    let ack = cli(&config, &["ack", "--site", "hq", "--reason", "checked"]).await;
    assert!(
        text(&ack).contains("nothing to acknowledge"),
        "{}",
        text(&ack)
    );
    // Every one of them is in the audit log with what happened.
    let outcomes: Vec<(String, String)> = audit(&ws)
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    assert!(outcomes[0].1.starts_with("paused"), "{outcomes:?}");
    assert!(
        outcomes[3].1.starts_with("nothing to resume"),
        "{outcomes:?}"
    );

    // A stop does not wait for the hanging poll either.
    let took = watchdog.stop();
    assert!(took < Duration::from_secs(15), "SIGTERM took {took:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_exit_code_for_one_outcome_in_every_command() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    // An unknown site is a usage error (64) for every command, and named as such.
    for args in [
        &["failover", "--site", "nowhere", "--to", "west"][..],
        &["pause", "--site", "nowhere", "--reason", "x"],
        &["resume", "--site", "nowhere"],
        &["ack", "--site", "nowhere", "--reason", "x"],
    ] {
        let output = cli(&config, args).await;
        assert_eq!(
            output.status.code(),
            Some(64),
            "{args:?}: {}",
            text(&output)
        );
        assert!(
            text(&output).contains("no site named \"nowhere\""),
            "{args:?}: {}",
            text(&output)
        );
    }
    // Contradictory flags are refused, not silently dropped.
    let output = cli(
        &config,
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--force",
            "--data-sync-first",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    assert!(
        text(&output).contains("--data-sync-first"),
        "{}",
        text(&output)
    );
    // A command line that does not parse is a usage error too, not clap's 2.
    let output = cli(&config, &["pause", "--site", "hq"]).await;
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
    // The table is in --help.
    let help = Command::new(BINARY).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    for line in ["Exit codes:", "  0  ", "  3  ", "  64 ", "  69 "] {
        assert!(help.contains(line), "{line:?} not in:\n{help}");
    }
    assert!(sim.with(|p| p.failover_calls.is_empty()));
    sim.shutdown().await;
}

/// A followed failover whose daemon stops: the CLI says so and gives up with exit 69, instead
/// of retrying silently for 15 minutes.
#[tokio::test(flavor = "multi_thread")]
async fn following_a_failover_says_when_the_daemon_is_gone() {
    let sim = simulator(SimSettings {
        // A graceful swap that takes long enough to stop the daemon in the middle of it.
        swap_duration: Duration::from_secs(60),
        ..SimSettings::default()
    })
    .await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "converge_timeout = \"90s\"");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    let mut child = Command::new(BINARY)
        .args([
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--data-sync-first",
            "--confirm",
            "--config",
        ])
        .arg(&config)
        .env("USER", "alice")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    watchdog
        .wait_for_site(LONG, "the swap in progress", |s| {
            s["failover_in_progress"].is_string()
        })
        .await;
    watchdog.signal("KILL");
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the CLI still follows a failover whose daemon is gone");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = child.wait_with_output().unwrap();
    let out = text(&output);
    assert_eq!(status.code(), Some(69), "{out}");
    assert!(out.contains("The daemon stopped answering"), "{out}");
    assert!(!out.contains("Done:"), "{out}");
    sim.shutdown().await;
}

/// A request that is not UTF-8 is answered with what was wrong with it (it used to be told
/// "no request within 10s").
#[tokio::test(flavor = "multi_thread")]
async fn a_non_utf8_control_request_is_told_what_is_wrong() {
    use std::io::{BufRead as _, Write as _};
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    let socket = ws.path("state/control.sock");
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
        stream.write_all(b"{\"command\":\"pause\xff\"}\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        answer.contains("not UTF-8") && answer.contains("offset 17"),
        "{answer}"
    );
    sim.shutdown().await;
}

/// `status` shows an appliance's current API errors (a 403 hides nothing behind HEALTHY), and
/// stops showing them once the appliance answers again.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_current_api_errors_per_appliance() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    let forbidden = |on| FaultsPatch {
        forbidden: Some(on),
        ..Default::default()
    };
    sim.set_faults(1, forbidden(true));
    watchdog
        .wait_for_site(LONG, "west's 403", |s| {
            s["appliances"][1]["last_error"] == "forbidden"
        })
        .await;
    let url = watchdog.base.clone();
    let shown = cli(&config, &["status", "--url", &url]).await;
    assert!(
        text(&shown).contains("API ERROR on") && text(&shown).contains("403"),
        "{}",
        text(&shown)
    );
    sim.set_faults(1, forbidden(false));
    let site = watchdog
        .wait_for_site(LONG, "west answering again", |s| {
            s["appliances"][1]["api_errors"]
                .as_array()
                .is_some_and(|e| e.is_empty())
        })
        .await;
    assert!(site["appliances"][1]["last_error"].is_null(), "{site:#}");
    let shown = cli(&config, &["status", "--url", &url]).await;
    assert!(!text(&shown).contains("API ERROR"), "{}", text(&shown));
    sim.shutdown().await;
}
