//! The real `bt-watchdog run` binary, started against a simulated pair with a fast policy.
#![allow(dead_code)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bt_watchdog::sim::Simulator;

pub const BINARY: &str = env!("CARGO_BIN_EXE_bt-watchdog");
pub const SECRET: &str = "simulated-secret";

/// A test's files: config, secret, state directory, log.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the client secret and `config.toml` for one site "hq" watching `sim`; returns
    /// the configuration's path and the secret file's. `extra_policy` as in [`site_toml`].
    pub fn single_site_config(
        &self,
        mode: &str,
        sim: &Simulator,
        extra_policy: &str,
    ) -> (PathBuf, PathBuf) {
        let secret = self.write_secret(SECRET);
        let config = self.path("config.toml");
        std::fs::write(
            &config,
            config_toml(
                mode,
                &self.path("state"),
                &site_toml("hq", sim, &secret, extra_policy),
            ),
        )
        .unwrap();
        (config, secret)
    }

    pub fn write_secret(&self, secret: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.path("site.secret");
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

/// A `[[site]]` table for a simulated pair, with a policy fast enough for tests;
/// `extra_policy` lines (`key = "value"`) replace the defaults of the same keys.
pub fn site_toml(name: &str, sim: &Simulator, secret_file: &Path, extra_policy: &str) -> String {
    let defaults = [
        ("failover_after", "\"1s\""),
        ("failure_threshold", "3"),
        ("cooldown", "\"10m\""),
        ("converge_timeout", "\"5s\""),
        ("swap_settle", "\"3s\""),
        ("retry_backoff", "\"300ms\""),
        ("startup_grace", "\"2s\""),
        ("stall_tolerance", "\"3s\""),
    ];
    let overridden = |key: &str| {
        extra_policy.lines().any(|l| {
            l.trim_start().starts_with(&format!("{key} "))
                || l.trim_start().starts_with(&format!("{key}="))
        })
    };
    let mut policy: Vec<String> = defaults
        .iter()
        .filter(|(k, _)| !overridden(k))
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    policy.extend(extra_policy.lines().map(str::to_string));
    format!(
        r#"
[[site]]
name = "{name}"
client_id = "bt-watchdog"
client_secret_file = "{secret}"
allow_plain_http = {plain}
appliances = [
  {{ name = "east", url = "{east}" }},
  {{ name = "west", url = "{west}" }},
]
poll_interval = "200ms"
health_interval = "200ms"
request_timeout = "500ms"

[site.policy]
{policy}
"#,
        secret = secret_file.display(),
        plain = sim.url(0).starts_with("http://"),
        east = sim.url(0),
        west = sim.url(1),
        policy = policy.join("\n"),
    )
}

pub fn config_toml(mode: &str, state_dir: &Path, sites: &str) -> String {
    format!(
        "mode = \"{mode}\"\nstate_dir = \"{}\"\n\n[exporter]\nlisten = \"127.0.0.1:0\"\n{sites}",
        state_dir.display()
    )
}

pub struct Watchdog {
    child: Child,
    pub log: PathBuf,
    pub base: String,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watchdog {
    /// Starts `bt-watchdog run` and waits until its exporter answers.
    pub fn start(config: &Path, log: &Path, level: &str) -> Watchdog {
        Watchdog::start_with(config, log, level, &[])
    }

    /// Like [`Watchdog::start`], with extra environment variables (the test hooks).
    pub fn start_with(config: &Path, log: &Path, level: &str, env: &[(&str, &str)]) -> Watchdog {
        let mut command = Command::new(BINARY);
        command
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("BT_WATCHDOG_LOG", level);
        Watchdog::start_command(command, log)
    }

    /// As [`Watchdog::start`], with at most `max_files` open file descriptors (as a unit's
    /// `LimitNOFILE=` would set), to show what a flood can and cannot exhaust.
    pub fn start_with_file_limit(
        config: &Path,
        log: &Path,
        level: &str,
        max_files: u32,
    ) -> Watchdog {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {max_files} && exec \"$0\" \"$@\""))
            .arg(BINARY)
            .args(["run", "--config"])
            .arg(config)
            .env("BT_WATCHDOG_LOG", level);
        Watchdog::start_command(command, log)
    }

    /// Starts `command` (the watchdog, or a wrapper that execs it, so that its pid is the
    /// watchdog's) and waits until the exporter answers.
    pub fn start_command(mut command: Command, log: &Path) -> Watchdog {
        let stderr = std::fs::File::create(log).unwrap();
        let child = command
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut watchdog = Watchdog {
            child,
            log: log.to_path_buf(),
            base: String::new(),
        };
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = watchdog.logs();
            if let Some(at) = logs.find("metrics on http") {
                let rest = &logs[at + "metrics on ".len()..];
                let url = rest.split("/metrics").next().unwrap();
                watchdog.base = url.to_string();
                return watchdog;
            }
            if let Some(status) = watchdog.child.try_wait().unwrap() {
                panic!("the watchdog exited with {status} before listening:\n{logs}");
            }
            assert!(
                Instant::now() < until,
                "the watchdog did not start:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no last write, exactly as a crash or the OOM killer.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
    }

    /// Waits until the log contains `text`.
    pub async fn wait_for_log(&self, deadline: Duration, text: &str) {
        let until = Instant::now() + deadline;
        while !self.logs().contains(text) {
            if let Some(status) = self.child_exited() {
                panic!(
                    "the watchdog exited with {status} waiting for {text:?}:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {text:?} in the log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn child_exited(&self) -> Option<String> {
        // `try_wait` needs `&mut`; /proc says whether the process is gone or a zombie.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        stat.split(") ")
            .nth(1)
            .and_then(|rest| rest.chars().next())
            .filter(|state| *state == 'Z')
            .map(|_| "a crash (zombie)".to_string())
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.signal("TERM");
        let until = started + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}:\n{}", self.logs());
                return started.elapsed();
            }
            assert!(
                Instant::now() < until,
                "the watchdog did not stop:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let response = client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }

    pub async fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").await.1).unwrap()
    }

    /// The first site's status.
    pub async fn site(&self) -> serde_json::Value {
        self.status().await["sites"][0].clone()
    }

    /// Waits until `condition` holds on the first site's status.
    pub async fn wait_for_site(
        &self,
        deadline: Duration,
        what: &str,
        condition: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let until = Instant::now() + deadline;
        loop {
            let site = self.site().await;
            if condition(&site) {
                return site;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}; last status:\n{site:#}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of a metric series, found by its exact text before the value.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}
