//! The real daemon broken on purpose against the simulated pair: `kill -9` at each step of a
//! failover, a state directory that refuses writes, a wall clock stepped, a descriptor-starved
//! process, an appliance whose certificate expired. Every one of these made a healthy pair
//! fail over, made two calls for one failure, or lost a cooldown before it was fixed.
//!
//! The state-directory tests mount a tmpfs or a read-only bind mount, so they need root (CI
//! runs as root, as the package checks do).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bt_watchdog::api::model::FailoverRole;
use bt_watchdog::sim::tls::TlsFiles;
use bt_watchdog::sim::{FaultsPatch, SimConfig, SimSettings, Simulator};
use common::simulator;
use common::watchdog::{BINARY, SECRET, Watchdog, Workspace, config_toml, metric, site_toml};

const LONG: Duration = Duration::from_secs(30);
const HOLD: &str = "BT_WATCHDOG_TEST_HOLD";
const CLOCK: &str = "BT_WATCHDOG_TEST_CLOCK_OFFSET_FILE";

fn calls(sim: &Simulator) -> Vec<(String, FailoverRole, bool)> {
    sim.with(|p| {
        p.failover_calls
            .iter()
            .map(|c| (c.appliance.clone(), c.role, c.data_sync_first))
            .collect()
    })
}

fn roles(sim: &Simulator) -> [FailoverRole; 2] {
    sim.with(|p| [p.appliances[0].role, p.appliances[1].role])
}

fn unhealthy() -> FaultsPatch {
    FaultsPatch {
        unhealthy: Some(true),
        ..Default::default()
    }
}

fn down() -> FaultsPatch {
    FaultsPatch {
        down: Some(true),
        ..Default::default()
    }
}

/// Polls `condition` until it holds, at most `deadline`.
async fn until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn healthy(watchdog: &Watchdog) {
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
}

fn decisions(site: &serde_json::Value) -> String {
    site["decisions"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| d["message"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Where the daemon is killed during an automatic failover.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// The intent is on disk, the call not sent yet.
    AfterTheDecision,
    /// The appliance accepted the call; the engine has not heard of it.
    RightAfterTheCall,
    /// Accepted, the roles are changing (a graceful swap: both `backup` for a while).
    WhileRolesConverge,
    /// Done, in cooldown.
    DuringCooldown,
}

/// The primary east turns unhealthy: the watchdog swaps gracefully to west (one call:
/// west `role=primary, data_sync_first=true`). The daemon is killed with SIGKILL at `point`
/// and started again: never a second call for that failure, the cooldown kept, the resumed
/// episode explained.
async fn kill_during_an_automatic_failover(point: KillPoint) {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let hold = match point {
        KillPoint::AfterTheDecision => vec![(HOLD, "intent-written")],
        KillPoint::RightAfterTheCall => vec![(HOLD, "call-answered")],
        _ => vec![],
    };
    let mut first = Watchdog::start_with(&config, &ws.path("first.log"), "info", &hold);
    healthy(&first).await;
    sim.set_faults(0, unhealthy());
    match point {
        KillPoint::AfterTheDecision => {
            first.wait_for_log(LONG, "test hold intent-written").await;
            assert!(calls(&sim).is_empty(), "held before the call");
        }
        KillPoint::RightAfterTheCall => {
            first.wait_for_log(LONG, "test hold call-answered").await;
            assert_eq!(calls(&sim).len(), 1);
        }
        KillPoint::WhileRolesConverge => {
            until(LONG, "the call", || !calls(&sim).is_empty()).await;
            assert_eq!(
                roles(&sim),
                [FailoverRole::Backup, FailoverRole::Backup],
                "the swap is under way"
            );
        }
        KillPoint::DuringCooldown => {
            first
                .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
                .await;
        }
    }
    first.kill9();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("state/hq.state.json")).unwrap())
            .unwrap();
    assert!(
        state["cooldown_until"].is_string(),
        "the cooldown is on disk before any call: {state:#}"
    );
    assert_eq!(state["promoted"], "west", "{state:#}");

    let second = Watchdog::start(&config, &ws.path("second.log"), "info");
    let site = second
        .wait_for_site(LONG, "the failover to end", |s| {
            s["failover_in_progress"].is_null() && s["last_failover"].is_object()
        })
        .await;
    // Let it run a while longer: nothing may be called again for the same failure.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let made = calls(&sim);
    let resumed = !matches!(point, KillPoint::DuringCooldown);
    match point {
        // The intent was written and the call not sent: the new process cannot know that at
        // once, so it verifies first; the roles show the call never arrived, and it is sent
        // then — once.
        KillPoint::AfterTheDecision => {
            assert_eq!(
                made,
                vec![("west".to_string(), FailoverRole::Primary, true)],
                "exactly one call for the failure"
            );
            assert_eq!(site["last_failover"]["outcome"], "success", "{site:#}");
            assert!(
                decisions(&site).contains("never reached"),
                "{}",
                decisions(&site)
            );
        }
        _ => {
            assert_eq!(
                made,
                vec![("west".to_string(), FailoverRole::Primary, true)],
                "exactly one call for the failure"
            );
            assert_eq!(site["last_failover"]["outcome"], "success", "{site:#}");
            assert_eq!(roles(&sim)[1], FailoverRole::Primary);
        }
    }
    let site = second.site().await;
    let cooldown = site["cooldown_remaining_seconds"].as_f64().unwrap();
    assert!(
        cooldown > 500.0 && cooldown <= 600.0,
        "the 10m cooldown is kept across the kill: {cooldown}"
    );
    if resumed {
        let said = decisions(&site);
        assert!(
            said.contains("resumed episode") && said.contains("after restart"),
            "{said}"
        );
        assert!(
            second.logs().contains("resumed episode"),
            "{}",
            second.logs()
        );
    }
    assert_eq!(calls(&sim).len(), made.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_the_decision_calls_once_after_the_restart() {
    kill_during_an_automatic_failover(KillPoint::AfterTheDecision).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_right_after_the_call_resumes_and_calls_once() {
    kill_during_an_automatic_failover(KillPoint::RightAfterTheCall).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_the_roles_converge_resumes_and_calls_once() {
    kill_during_an_automatic_failover(KillPoint::WhileRolesConverge).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_the_cooldown_keeps_it() {
    kill_during_an_automatic_failover(KillPoint::DuringCooldown).await;
}

/// A manual failover confirmed through the daemon's control socket, the daemon killed at
/// `hold`: one call at most, resumed and explained after the restart.
async fn kill_during_a_manual_failover(hold: &str) {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    let mut first = Watchdog::start_with(&config, &ws.path("first.log"), "info", &[(HOLD, hold)]);
    healthy(&first).await;
    let mut cli = Command::new(BINARY)
        .args([
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--confirm",
            "--config",
        ])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    first.wait_for_log(LONG, &format!("test hold {hold}")).await;
    first.kill9();
    // The command follows the failover through the daemon, which is gone.
    let _ = cli.kill();
    let _ = cli.wait();
    let second = Watchdog::start(&config, &ws.path("second.log"), "info");
    let site = second
        .wait_for_site(LONG, "the manual failover to end", |s| {
            s["failover_in_progress"].is_null() && s["last_failover"].is_object()
        })
        .await;
    let said = decisions(&site);
    assert!(said.contains("resumed episode"), "{said}");
    assert_eq!(site["last_failover"]["trigger"], "manual", "{site:#}");
    let made = calls(&sim);
    if hold == "call-answered" {
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(site["last_failover"]["outcome"], "success", "{site:#}");
        assert_eq!(roles(&sim)[1], FailoverRole::Primary);
    } else {
        // Never sent before the kill: the resumed episode sees it never arrived, sends it once.
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(site["last_failover"]["outcome"], "success", "{site:#}");
        assert_eq!(roles(&sim)[1], FailoverRole::Primary);
    }
    assert!(site["cooldown_remaining_seconds"].as_f64().unwrap() > 500.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_manual_failover_after_the_call() {
    kill_during_a_manual_failover("call-answered").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_manual_failover_before_the_call() {
    kill_during_a_manual_failover("intent-written").await;
}

/// A mount on the state directory, undone when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn run(args: &[&str]) {
        let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {} (these tests need root)",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A small tmpfs, mounted before the daemon starts, to be filled up.
    fn tmpfs(dir: &Path, size: &str) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let dir_text = dir.to_str().unwrap();
        Mounted::run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
            dir_text,
        ]);
        Mounted(dir.to_path_buf())
    }

    /// The directory bound onto itself read-only: every write fails with EROFS.
    fn read_only(dir: &Path) -> Mounted {
        let dir_text = dir.to_str().unwrap();
        Mounted::run(&["mount", "--bind", dir_text, dir_text]);
        Mounted::run(&["mount", "-o", "remount,ro,bind", dir_text]);
        Mounted(dir.to_path_buf())
    }

    fn undo(&mut self) {
        if !self.0.as_os_str().is_empty() {
            Mounted::run(&["umount", self.0.to_str().unwrap()]);
            self.0 = PathBuf::new();
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
}

/// While the state directory refuses writes: no failover call however dead the primary,
/// `/healthz` degraded (not dead), `/status` and the metrics say why, the file on disk intact.
/// Once writable again, without a restart: the failover happens, once.
async fn a_state_directory_that_refuses_writes(
    refuse: impl FnOnce(&Workspace) -> Mounted,
    allow: impl FnOnce(&mut Mounted, &Workspace),
    prepare: impl FnOnce(&Workspace) -> Option<Mounted>,
) {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let premounted = prepare(&ws);
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    healthy(&watchdog).await;
    let file = ws.path("state/hq.state.json");
    let before = std::fs::read(&file).ok();
    let mut mounted = refuse(&ws);
    sim.set_faults(0, down());
    let site = watchdog
        .wait_for_site(LONG, "the blocker state_unwritable", |s| {
            s["blocker"] == "state_unwritable"
        })
        .await;
    assert!(
        site["state_write_error"]
            .as_str()
            .unwrap()
            .contains("hq.state.json"),
        "{site:#}"
    );
    // Well past failover_after (1s) and retry_backoff (300ms): still no call.
    let hold_on = Instant::now() + Duration::from_secs(4);
    while Instant::now() < hold_on {
        assert!(calls(&sim).is_empty(), "a call without a written intent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, text) = watchdog.get("/healthz").await;
    assert_eq!(status, 200, "degraded, not dead: {text}");
    assert!(
        text.starts_with("degraded") && text.contains("hq"),
        "{text}"
    );
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_state_writable{site="hq"}"#
        ),
        Some(0.0)
    );
    assert!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_state_write_errors_total{site="hq"}"#
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_failover_blocked{blocker="state_unwritable",site="hq"}"#
        ),
        Some(1.0)
    );
    // A manual failover confirmed through the daemon is not carried out either.
    let manual = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BINARY)
                .args([
                    "failover",
                    "--site",
                    "hq",
                    "--to",
                    "west",
                    "--confirm",
                    "--config",
                ])
                .arg(&config)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&manual.stdout),
        String::from_utf8_lossy(&manual.stderr)
    );
    assert!(!manual.status.success(), "{said}");
    // Refused with the reason: the intent cannot be written, or (the same directory) the audit
    // record that must precede any action cannot.
    assert!(
        (said.contains("not carried out") && said.contains("state directory"))
            || (said.contains("audit log") && said.contains("nothing was done")),
        "{said}"
    );
    assert!(
        calls(&sim).is_empty(),
        "a manual call without a written intent"
    );
    if let Some(before) = &before {
        assert_eq!(
            &std::fs::read(&file).unwrap(),
            before,
            "the state file is untouched"
        );
    }
    // Writable again: recovery without a restart, and the failover, once.
    allow(&mut mounted, &ws);
    let site = watchdog
        .wait_for_site(LONG, "the failover after recovery", |s| {
            s["state"] == "cooldown"
        })
        .await;
    assert!(site["state_write_error"].is_null(), "{site:#}");
    assert_eq!(
        calls(&sim),
        vec![("west".to_string(), FailoverRole::Primary, false)]
    );
    let (status, text) = watchdog.get("/healthz").await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_state_writable{site="hq"}"#
        ),
        Some(1.0)
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["promoted"], "west");
    drop(watchdog);
    drop(premounted);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_state_directory_blocks_every_call_and_recovers_by_itself() {
    a_state_directory_that_refuses_writes(
        |ws| Mounted::read_only(&ws.path("state")),
        |mounted, _| mounted.undo(),
        |_| None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_state_directory_blocks_every_call_and_recovers_by_itself() {
    let filler = |ws: &Workspace| ws.path("state/filler");
    a_state_directory_that_refuses_writes(
        |ws| {
            // Fill the tmpfs to the last byte.
            use std::io::Write as _;
            let mut file = std::fs::File::create(filler(ws)).unwrap();
            let block = vec![0u8; 4096];
            while file.write_all(&block).is_ok() {}
            let _ = file.write_all(&[0u8]);
            Mounted(PathBuf::new())
        },
        |_, ws| std::fs::remove_file(filler(ws)).unwrap(),
        |ws| Some(Mounted::tmpfs(&ws.path("state"), "256k")),
    )
    .await;
}

/// The "wall clock" of the daemon is moved through its test hook (a file with an offset in
/// seconds that the daemon adds to the host's clock), so the host's clock is left alone.
struct SteppedClock(PathBuf);

impl SteppedClock {
    fn new(ws: &Workspace) -> Self {
        let path = ws.path("clock-offset");
        std::fs::write(&path, "0").unwrap();
        SteppedClock(path)
    }

    fn set(&self, seconds: i64) {
        std::fs::write(&self.0, seconds.to_string()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stepped_wall_clock_neither_ends_a_cooldown_early_nor_stretches_it() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    let clock = SteppedClock::new(&ws);
    let watchdog = Watchdog::start_with(
        &config,
        &ws.path("watchdog.log"),
        "info",
        &[(CLOCK, clock.0.to_str().unwrap())],
    );
    healthy(&watchdog).await;
    sim.set_faults(0, down());
    watchdog
        .wait_for_site(LONG, "cooldown", |s| s["state"] == "cooldown")
        .await;
    assert_eq!(calls(&sim).len(), 1);
    // An hour forward: the 10m cooldown must not end.
    clock.set(3600);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let site = watchdog.site().await;
    let left = site["cooldown_remaining_seconds"].as_f64().unwrap();
    assert!(
        site["state"] == "cooldown" && left > 500.0 && left <= 600.0,
        "a forward step ended or shortened the cooldown: {left}s left\n{site:#}"
    );
    // An hour back: the cooldown must not grow by an hour.
    clock.set(-3600);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let site = watchdog.site().await;
    let left = site["cooldown_remaining_seconds"].as_f64().unwrap();
    assert!(
        site["state"] == "cooldown" && left > 500.0 && left <= 600.0,
        "a backward step stretched the cooldown: {left}s left\n{site:#}"
    );
    assert!(watchdog.logs().contains("the wall clock stepped"));
    assert_eq!(calls(&sim).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stepped_wall_clock_during_a_failing_streak_does_not_act_early() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    // A streak long enough to see "early".
    let (config, _) = ws.single_site_config("auto", &sim, "failover_after = \"4s\"");
    let clock = SteppedClock::new(&ws);
    let watchdog = Watchdog::start_with(
        &config,
        &ws.path("watchdog.log"),
        "info",
        &[(CLOCK, clock.0.to_str().unwrap())],
    );
    healthy(&watchdog).await;
    let died = Instant::now();
    sim.set_faults(0, down());
    tokio::time::sleep(Duration::from_millis(500)).await;
    clock.set(3600);
    tokio::time::sleep(Duration::from_millis(500)).await;
    clock.set(-3600);
    until(LONG, "the failover", || !calls(&sim).is_empty()).await;
    assert!(
        died.elapsed() >= Duration::from_secs(4),
        "acted {:?} after the primary died, before failover_after",
        died.elapsed()
    );
    assert_eq!(calls(&sim).len(), 1);
}

fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

/// Sets the daemon's soft RLIMIT_NOFILE, keeping its hard one.
fn set_soft_nofile(pid: u32, soft: u64) {
    let (mut old_soft, mut hard) = (0, 0);
    let pid = pid as i32;
    rlimit::prlimit(
        pid,
        rlimit::Resource::NOFILE,
        None,
        Some((&mut old_soft, &mut hard)),
    )
    .unwrap();
    rlimit::prlimit(pid, rlimit::Resource::NOFILE, Some((soft, hard)), None).unwrap();
}

/// The daemon runs out of file descriptors (its soft RLIMIT_NOFILE lowered by the test to
/// what it already has open) while both appliances are healthy: its polls fail on its own
/// side. No failover; the local-fault metric counts it and the log says what to raise.
#[tokio::test(flavor = "multi_thread")]
async fn a_descriptor_starved_daemon_never_fails_over_a_healthy_pair() {
    let sim = simulator(SimSettings::default()).await;
    // west (polled second) is the primary: with one descriptor to spare, east's poll usually
    // takes it and the primary's polls are the ones that fail, the case that looked like a
    // dead primary next to a healthy backup.
    sim.with(|p| {
        p.appliances[0].role = FailoverRole::Backup;
        p.appliances[1].role = FailoverRole::Primary;
    });
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("auto", &sim, "");
    // Started with a low soft limit: it raises it to the hard one itself.
    // prlimit(1) sets the limits and execs the watchdog: same pid.
    let mut command = Command::new("prlimit");
    command
        .arg("--nofile=128:4096")
        .arg(BINARY)
        .args(["run", "--config"])
        .arg(&config)
        .env("BT_WATCHDOG_LOG", "info");
    let watchdog = Watchdog::start_command(command, &ws.path("watchdog.log"));
    healthy(&watchdog).await;
    let pid = watchdog.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        line.split_whitespace().filter(|w| *w == "4096").count() == 2,
        "the soft limit was raised to the hard one: {line}"
    );
    // Starve it: one descriptor beyond those already open.
    let open = open_descriptors(pid);
    set_soft_nofile(pid, open + 1);
    let starved = Instant::now() + Duration::from_secs(5);
    while Instant::now() < starved {
        assert!(calls(&sim).is_empty(), "a healthy pair failed over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_soft_nofile(pid, 4096);
    watchdog
        .wait_for_site(LONG, "healthy again", |s| s["state"] == "healthy")
        .await;
    assert!(calls(&sim).is_empty());
    let metrics = watchdog.metrics().await;
    let starved_polls: f64 = ["east", "west"]
        .iter()
        .filter_map(|a| {
            metric(
                &metrics,
                &format!(
                    r#"beyondtrust_watchdog_local_errors_total{{appliance="{a}",kind="descriptors",site="hq"}}"#
                ),
            )
        })
        .sum();
    assert!(starved_polls >= 1.0, "{metrics}");
    assert!(
        watchdog.logs().contains("out of file descriptors"),
        "{}",
        watchdog.logs()
    );
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// The primary's certificate expires while the backup's is fine: the primary answered (with a
/// certificate we refuse), so this is no reason to promote the backup. The appliance's status
/// says what to renew; the request counter shows the kind the alert rule reads.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_on_the_primary_alerts_and_never_fails_over() {
    let sim = Simulator::start(SimConfig {
        tls: Some(TlsFiles {
            cert: fixture("expiry-valid.pem"),
            key: fixture("expiry-valid.key"),
        }),
        expired_tls: Some(TlsFiles {
            cert: fixture("expiry-expired.pem"),
            key: fixture("expiry-expired.key"),
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    let site = site_toml("hq", &sim, &secret, "").replace(
        "poll_interval = ",
        &format!(
            "ca_file = \"{}\"\npoll_interval = ",
            fixture("expiry-ca.pem").display()
        ),
    );
    let config = ws.path("config.toml");
    std::fs::write(&config, config_toml("auto", &ws.path("state"), &site)).unwrap();
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    healthy(&watchdog).await;
    sim.set_faults(
        0,
        FaultsPatch {
            expired_certificate: Some(true),
            ..Default::default()
        },
    );
    let site = watchdog
        .wait_for_site(LONG, "the certificate fault", |s| {
            s["appliances"][0]["fault"].is_string()
        })
        .await;
    let fault = site["appliances"][0]["fault"].as_str().unwrap();
    assert!(
        fault.contains("expired") && fault.contains("renew"),
        "{fault}"
    );
    // Far past failover_after and the poll count: no failover.
    let hold_on = Instant::now() + Duration::from_secs(4);
    while Instant::now() < hold_on {
        assert!(
            calls(&sim).is_empty(),
            "promoted the peer of an expired certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = watchdog.metrics().await;
    assert!(
        metric(
            &metrics,
            r#"beyondtrust_api_requests_total{appliance="east",code="certificate",endpoint="check_health",site="hq"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        roles(&sim),
        [FailoverRole::Primary, FailoverRole::Backup],
        "nothing changed"
    );
}
