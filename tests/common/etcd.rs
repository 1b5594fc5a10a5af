//! A real etcd (Debian's `etcd-server`) on loopback: one member or three, ports chosen free,
//! data in a temporary directory. `scripts/test.sh` installs it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ETCD: &str = "etcd";

/// A port the OS says is free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Member {
    pub name: String,
    pub client: u16,
    pub peer: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct EtcdCluster {
    pub members: Vec<Member>,
    initial: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one is healthy.
    pub fn start(size: usize) -> EtcdCluster {
        assert!(
            Command::new(ETCD)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "etcd is not installed: apt-get install etcd-server (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("etcd{i}"),
                client: free_port(),
                peer: free_port(),
                data: dir.path().join(format!("etcd{i}")),
                log: dir.path().join(format!("etcd{i}.log")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial,
            token: format!("bt-test-{}", std::process::id()),
            _dir: dir,
        };
        for index in 0..size {
            cluster.spawn(index);
        }
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    fn spawn(&mut self, index: usize) {
        let member = &self.members[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .unwrap();
        let client = format!("http://127.0.0.1:{}", member.client);
        let peer = format!("http://127.0.0.1:{}", member.peer);
        let child = Command::new(ETCD)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            // Quick elections: a lost member's successor is chosen well within a lease.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[index].child = Some(child);
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// `endpoints = [...]` for a configuration.
    pub fn endpoints_toml(&self) -> String {
        let quoted: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        format!("[{}]", quoted.join(", "))
    }

    /// SIGKILL one member (a crash, a host gone).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed member again, on its own data.
    pub fn restart(&mut self, index: usize) {
        assert!(self.members[index].child.is_none());
        self.spawn(index);
    }

    /// Writes `key` = `value` under no lease through the JSON gateway, as a key written by
    /// hand (or left over) would be.
    pub fn put(&self, key: &str, value: &str) {
        use base64::Engine as _;
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
        let endpoint = self.endpoints().remove(0);
        let output = Command::new("curl")
            .args(["-s", "--max-time", "5", "-X", "POST", "-d", &body])
            .arg(format!("{endpoint}/v3/kv/put"))
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&output.stdout);
        assert!(answer.contains("\"revision\""), "put {key}: {answer}");
    }

    fn healthy(endpoint: &str) -> bool {
        let Ok(output) = Command::new("curl")
            .args(["-s", "--max-time", "1", &format!("{endpoint}/health")])
            .output()
        else {
            return false;
        };
        String::from_utf8_lossy(&output.stdout).contains("\"health\":\"true\"")
    }

    /// Waits until every running member says it is healthy (it has a raft leader).
    pub fn wait_healthy(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let running: Vec<String> = self
                .members
                .iter()
                .filter(|m| m.child.is_some())
                .map(|m| format!("http://127.0.0.1:{}", m.client))
                .collect();
            if running.iter().all(|e| Self::healthy(e)) {
                return;
            }
            assert!(
                Instant::now() < until,
                "etcd did not become healthy:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
