//! Notification hooks and the pre-failover veto, with the real daemon against the simulated
//! pair and receivers on loopback: a signed webhook, a program that gets the event, a veto
//! that stops an automatic failover, and a receiver that never answers, which delays the
//! failover of a dead primary by no more than the hook's timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bt_watchdog::sim::{FaultsPatch, SimSettings, Simulator};
use common::simulator;
use common::watchdog::{Watchdog, Workspace, config_toml, metric, site_toml};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const LONG: Duration = Duration::from_secs(30);

fn down() -> FaultsPatch {
    FaultsPatch {
        down: Some(true),
        ..Default::default()
    }
}

/// One request a receiver took: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on loopback that answers `status` to every POST (or, with `None`,
/// accepts the connection and never answers).
async fn receiver(status: Option<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let Some(status) = status else {
                // Never answers: the connection stays open until the test ends.
                held.push(socket);
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buffer[..n]);
                    if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..at]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (at + 4, length);
                    }
                };
                while data.len() < head_end + length {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buffer[..n]);
                }
                let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                store.lock().unwrap().push(Received {
                    headers,
                    body: data[head_end..].to_vec(),
                });
                let reason = if status < 300 { "OK" } else { "Conflict" };
                let body = if status < 300 {
                    ""
                } else {
                    "change freeze until 18:00"
                };
                let answer = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, received)
}

/// A config for site "hq" with `hooks` (TOML tables) after the site.
fn config_with(ws: &Workspace, mode: &str, sim: &Simulator, hooks: &str) -> std::path::PathBuf {
    let secret = ws.write_secret(common::watchdog::SECRET);
    let path = ws.path("config.toml");
    let text = config_toml(
        mode,
        &ws.path("state"),
        &format!("{hooks}\n{}", site_toml("hq", sim, &secret, "")),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn calls(sim: &Simulator) -> usize {
    sim.with(|p| p.failover_calls.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_delivered_signed_and_a_program_gets_the_event() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (url, received) = receiver(Some(200)).await;
    let hook_secret = ws.path("hook.secret");
    std::fs::write(&hook_secret, "s3cret-for-hooks\n").unwrap();
    // Secrets readable by others are refused at start, the hook's as the site's.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook_secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = ws.path("exec.out");
    let script = format!(
        "cat >> {out}.json; echo >> {out}.json; echo \"$BT_WATCHDOG_EVENT $BT_WATCHDOG_SITE $BT_WATCHDOG_STATE\" >> {out}.env",
        out = out.display()
    );
    let hooks = format!(
        r#"
[[notify]]
name = "chat"
url = "{url}"
secret_file = "{secret}"
timeout = "2s"
events = ["decision_taken", "failover_outcome"]

[[notify]]
name = "pager"
command = ["/bin/sh", "-c", {script:?}]
events = ["decision_taken", "state_change"]
"#,
        secret = hook_secret.display()
    );
    let config = config_with(&ws, "auto", &sim, &hooks);
    let watchdog = Watchdog::start(&config, &ws.path("run.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    sim.set_faults(0, down());
    watchdog
        .wait_for_site(LONG, "the failover done", |s| s["state"] == "cooldown")
        .await;
    let until = Instant::now() + LONG;
    while received.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < until,
            "the webhook got {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let received = received.lock().unwrap().clone();
    let kinds: Vec<&str> = received
        .iter()
        .map(|r| r.header("x-bt-watchdog-event").unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["decision_taken", "failover_outcome"],
        "only what it asked for"
    );
    for request in &received {
        // The receiver's check: HMAC-SHA256 of the exact body with the shared secret.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret-for-hooks");
        let tag = ring::hmac::sign(&key, &request.body);
        let expected: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            request.header("x-bt-watchdog-signature"),
            Some(format!("sha256={expected}").as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    let taken: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(taken["kind"], "decision_taken");
    assert_eq!(taken["site"], "hq");
    assert_eq!(taken["details"]["appliance"], "west");
    assert_eq!(taken["details"]["trigger"], "auto");
    let outcome: serde_json::Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(outcome["details"]["outcome"], "success");

    // The program: the event on stdin and in its environment.
    let until = Instant::now() + LONG;
    let env = loop {
        let env = std::fs::read_to_string(format!("{}.env", out.display())).unwrap_or_default();
        if env.contains("decision_taken") {
            break env;
        }
        assert!(Instant::now() < until, "the program was not run: {env:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(env.contains("decision_taken hq failing_over"), "{env}");
    assert!(env.contains("state_change hq"), "{env}");
    let json = std::fs::read_to_string(format!("{}.json", out.display())).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(json.lines().find(|l| !l.is_empty()).unwrap()).unwrap();
    assert_eq!(first["site"], "hq");

    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_notifications_total{hook="chat",outcome="delivered"}"#
        ),
        Some(2.0)
    );
    assert!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_notification_last_success_timestamp_seconds{hook="chat"}"#
        )
        .unwrap()
            > 1.0e9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_veto_stops_an_automatic_failover() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let hooks = r#"
[pre_failover]
command = ["/bin/sh", "-c", "cat > /dev/null; echo 'change freeze until 18:00' >&2; exit 1"]
timeout = "5s"
"#;
    let config = config_with(&ws, "auto", &sim, hooks);
    let watchdog = Watchdog::start(&config, &ws.path("run.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    sim.set_faults(0, down());
    let site = watchdog
        .wait_for_site(LONG, "the failover vetoed", |s| s["blocker"] == "vetoed")
        .await;
    assert!(
        site["reason"]
            .as_str()
            .unwrap()
            .contains("change freeze until 18:00"),
        "{site:#}"
    );
    assert_eq!(calls(&sim), 0, "a vetoed failover sends nothing");
    // Asked again after retry_backoff, and vetoed again: still nothing sent.
    let metrics_until = Instant::now() + LONG;
    loop {
        let metrics = watchdog.metrics().await;
        let vetoed = metric(
            &metrics,
            r#"beyondtrust_watchdog_notifications_total{hook="pre_failover",outcome="vetoed"}"#,
        )
        .unwrap_or(0.0);
        if vetoed >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < metrics_until,
            "the hook was not asked again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(calls(&sim), 0);
    assert!(
        watchdog.logs().contains(
            "vetoed by the pre-failover hook: command /bin/sh exited with 1: change freeze"
        ),
        "{}",
        watchdog.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_delays_a_dead_primarys_failover_by_its_timeout_at_most() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (silent, _) = receiver(None).await;
    let hooks = format!(
        r#"
[[notify]]
name = "chat"
url = "{silent}"
timeout = "30s"

[pre_failover]
url = "{silent}"
timeout = "2s"
on_timeout = "proceed"
"#
    );
    let config = config_with(&ws, "auto", &sim, &hooks);
    let watchdog = Watchdog::start(&config, &ws.path("run.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    sim.set_faults(0, down());
    watchdog
        .wait_for_site(LONG, "the failover done", |s| s["state"] == "cooldown")
        .await;
    assert_eq!(calls(&sim), 1);

    // From the journal: when the decision was taken, and when the call's answer came back.
    let text = std::fs::read_to_string(ws.path("state/journal/hq.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decided = lines
        .iter()
        .find(|l| {
            l["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["action"] == "call"))
        })
        .and_then(|l| l["ns"].as_u64())
        .unwrap();
    let answered = lines
        .iter()
        .find(|l| l["input"]["call_result"].is_object())
        .and_then(|l| l["ns"].as_u64())
        .unwrap();
    let waited = Duration::from_nanos(answered - decided);
    assert!(
        waited >= Duration::from_secs(2),
        "the hook was waited for: {waited:?}"
    );
    // The hook's timeout, plus a generous bound for the call itself on a loaded machine.
    assert!(
        waited < Duration::from_secs(2) + Duration::from_secs(3),
        "delayed by more than the hook's timeout: {waited:?}"
    );
    assert!(
        watchdog
            .logs()
            .contains("proceeding (on_timeout = \"proceed\")"),
        "{}",
        watchdog.logs()
    );
    // The silent [[notify]] receiver did not hold anything up either; its events wait in
    // its own queue.
    let metrics = watchdog.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"beyondtrust_watchdog_notifications_total{hook="pre_failover",outcome="timed_out"}"#
        ),
        Some(1.0)
    );
}
