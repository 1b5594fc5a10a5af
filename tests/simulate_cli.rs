//! `bt-watchdog simulate` as a user runs it: the real binary, driven with curl as the README
//! shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_bt-watchdog");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &Path, deadline: Duration) -> serde_json::Value {
    let until = Instant::now() + deadline;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(value) = serde_json::from_str(&text)
        {
            return value;
        }
        assert!(
            Instant::now() < until,
            "the simulator did not write {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs curl with a time limit and returns (HTTP status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed (the README's test command installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn simulate_serves_a_pair_and_its_control_api_works_with_curl() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let child = Command::new(BINARY)
        .args(["simulate", "--ready-file"])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sim = Running(child);
    let info = wait_for_file(&ready, Duration::from_secs(20));
    let control = info["control"].as_str().unwrap().to_string();
    let east = info["appliances"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(info["appliances"][0]["name"], "east");

    let (status, help) = curl(&[&control]);
    assert_eq!(status, 200);
    assert!(help.contains("/sim/appliances/NAME/faults"));

    assert_eq!(curl(&[&format!("{east}/check_health")]).0, 200);

    // A token and an authenticated call, exactly as the README shows them.
    let (status, token) = curl(&[
        "-u",
        "bt-watchdog:simulated-secret",
        "-d",
        "grant_type=client_credentials",
        &format!("{east}/oauth2/token"),
    ]);
    assert_eq!(status, 200, "{token}");
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        token["access_token"].as_str().unwrap()
    );
    let (status, health) = curl(&[
        "-H",
        "Accept: application/json",
        "-H",
        &bearer,
        &format!("{east}/api/command/v2/health"),
    ]);
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"failover_role\":\"primary\""), "{health}");

    // Faults.
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"unhealthy": true}"#,
        &format!("{control}/sim/appliances/east/faults"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(curl(&[&format!("{east}/check_health")]).0, 500);
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"down": true}"#,
        &format!("{control}/sim/appliances/east/faults"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        curl(&[&format!("{east}/check_health")]).0,
        0,
        "connection refused"
    );
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"dwon": true}"#,
        &format!("{control}/sim/appliances/east/faults"),
    ]);
    assert_eq!(status, 400);
    assert!(body.contains("unknown field `dwon`"), "{body}");
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-d",
        "{}",
        &format!("{control}/sim/appliances/north/faults"),
    ]);
    assert_eq!(status, 404);
    assert!(body.contains("have: east, west"), "{body}");
    assert_eq!(
        curl(&[
            "-X",
            "DELETE",
            &format!("{control}/sim/appliances/east/faults")
        ])
        .0,
        200
    );
    let until = Instant::now() + Duration::from_secs(10);
    while curl(&[&format!("{east}/check_health")]).0 != 200 {
        assert!(Instant::now() < until, "east came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"partitioned": true, "sync_stale_secs": 1200}"#,
        &format!("{control}/sim/pair/faults"),
    ]);
    assert_eq!(status, 200);
    let (status, _) = curl(&[
        "-X",
        "POST",
        &format!("{control}/sim/appliances/east/revoke-tokens"),
    ]);
    assert_eq!(status, 200);

    // Read back what it saw.
    let (status, state) = curl(&[&format!("{control}/sim/state")]);
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["appliances"][0]["counters"]["tokens_minted"], 1);
    assert_eq!(state["appliances"][0]["valid_tokens"], 0);
    assert_eq!(state["pair_faults"]["partitioned"], true);
    let (status, requests) = curl(&[&format!(
        "{control}/sim/requests?appliance=east&path=/api/command/v2/health"
    )]);
    assert_eq!(status, 200);
    let requests: serde_json::Value = serde_json::from_str(&requests).unwrap();
    assert_eq!(requests.as_array().unwrap().len(), 1);
    let (status, calls) = curl(&[&format!("{control}/sim/failover-calls")]);
    assert_eq!((status, calls.trim()), (200, "[]"));
    assert_eq!(
        curl(&["-X", "POST", &format!("{control}/sim/reset")]).0,
        200
    );

    // SIGTERM stops it promptly.
    let pid = sim.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = sim.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < until, "the simulator stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn simulate_refuses_bad_arguments_with_a_clear_message() {
    let output = Command::new(BINARY)
        .args(["simulate", "--client-secret-file", "/nonexistent/secret"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/secret"), "{stderr}");

    let output = Command::new(BINARY)
        .args(["simulate", "--tls-cert", "x.pem"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
}

#[test]
fn simulate_serves_the_xml_api_with_the_chosen_apis_names_and_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let child = Command::new(BINARY)
        .args([
            "simulate",
            "--names",
            "north,south",
            "--apis",
            "xml,v2",
            "--xml-namespaces",
            "bomgar,none",
            "--ready-file",
        ])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _sim = Running(child);
    let info = wait_for_file(&ready, Duration::from_secs(20));
    assert_eq!(info["appliances"][0]["name"], "north");
    let north = info["appliances"][0]["url"].as_str().unwrap().to_string();
    let (_, token) = curl(&[
        "-u",
        "bt-watchdog:simulated-secret",
        "-d",
        "grant_type=client_credentials",
        &format!("{north}/oauth2/token"),
    ]);
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        token["access_token"].as_str().unwrap()
    );
    let (status, _) = curl(&[
        "-H",
        "Accept: application/json",
        "-H",
        &bearer,
        &format!("{north}/api/command/v2/health"),
    ]);
    assert_eq!(status, 404, "north speaks only XML");
    let (status, body) = curl(&[
        "-H",
        &bearer,
        &format!("{north}/api/command?action=check_health"),
    ]);
    assert_eq!(status, 200);
    assert!(
        body.contains("<health_check xmlns=\"http://www.bomgar.com/namespaces/API/command\">"),
        "{body}"
    );
    assert!(
        body.contains("<failover_role>primary</failover_role>"),
        "{body}"
    );
    let (status, body) = curl(&[
        "-H",
        &bearer,
        &format!("{north}/api/command?action=no_such_thing"),
    ]);
    assert_eq!(status, 200);
    assert!(
        body.contains("<error") && body.contains("Invalid action"),
        "{body}"
    );
}

#[test]
fn simulate_serves_many_pairs_for_benchmarks() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let child = Command::new(BINARY)
        .args(["simulate", "--pairs", "3", "--ready-file"])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _sim = Running(child);
    let info = wait_for_file(&ready, Duration::from_secs(20));
    let pairs = info["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3);
    let mut urls = std::collections::BTreeSet::new();
    for pair in pairs {
        for appliance in pair["appliances"].as_array().unwrap() {
            let url = appliance["url"].as_str().unwrap();
            assert_eq!(curl(&[&format!("{url}/check_health")]).0, 200);
            urls.insert(url.to_string());
        }
        let (status, _) = curl(&[pair["control"].as_str().unwrap()]);
        assert_eq!(status, 200);
    }
    assert_eq!(urls.len(), 6, "every appliance has its own port");
    let refused = Command::new(BINARY)
        .args(["simulate", "--pairs", "2", "--primary-port", "4000"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("OS-chosen ports"));
}
