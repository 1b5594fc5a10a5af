//! A real browser for the tests: Debian's headless Chromium, driven by its chromedriver over
//! the W3C WebDriver HTTP protocol, with the HTTP client the project already has. Nothing is
//! downloaded: `./scripts/test.sh` installs the `chromium` and `chromium-driver` packages.
#![allow(dead_code)]

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium (a killed driver would leave it running); the
        // driver is ours to kill. Drop cannot await: a blocking DELETE on a plain socket.
        use std::io::Write as _;
        if let Some(rest) = self.session.strip_prefix("http://")
            && let Some((host, path)) = rest.split_once('/')
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Sends `body` as JSON and reads the answer as JSON.
pub async fn json_of(request: reqwest::RequestBuilder, body: &Value) -> Value {
    let text = request
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start(width: u32, height: u32) -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: run ./scripts/test.sh, which installs Debian's chromium and chromium-driver packages"
            );
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        // chromedriver cannot report a port it picked itself; a port just freed by the OS is
        // taken again at once, and a clash is retried.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let until = Instant::now() + Duration::from_secs(20);
            let mut ready = false;
            while Instant::now() < until {
                if let Ok(Some(status)) = driver.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = driver.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last_error = format!("chromedriver exited with {status}: {err}");
                    break;
                }
                if let Ok(answer) = http.get(format!("{base}/status")).send().await
                    && let Ok(text) = answer.text().await
                    && let Ok(body) = serde_json::from_str::<Value>(&text)
                    && body["value"]["ready"] == true
                {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !ready {
                let _ = driver.kill();
                let _ = driver.wait();
                continue;
            }
            let profile = tempfile::tempdir().unwrap();
            let args = [
                "--headless".to_string(),
                "--no-sandbox".to_string(),
                "--disable-gpu".to_string(),
                "--disable-quic".to_string(),
                "--no-first-run".to_string(),
                "--disable-background-networking".to_string(),
                "--disable-component-update".to_string(),
                "--disable-sync".to_string(),
                "--disable-dev-shm-usage".to_string(),
                "--hide-scrollbars".to_string(),
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ];
            let answer = json_of(
                http.post(format!("{base}/session")),
                &json!({
                    "capabilities": {"alwaysMatch": {
                        "browserName": "chrome",
                        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                    }}
                }),
            )
            .await;
            let Some(id) = answer["value"]["sessionId"].as_str() else {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not start Chromium: {answer}");
            };
            return Browser {
                session: format!("{base}/session/{id}"),
                driver,
                http,
                _profile: profile,
            };
        }
        panic!("chromedriver did not start: {last_error}");
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        // WebDriver wants a JSON body on every POST, `{}` when there is nothing to say.
        let answer = json_of(request, &body.unwrap_or_else(|| json!({}))).await;
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body: `return ...`) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Polls `script` until `accept` takes its value, or fails after `deadline` with `what`.
    pub async fn wait_for(
        &self,
        deadline: Duration,
        what: &str,
        script: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let until = Instant::now() + deadline;
        loop {
            let value = self.eval(script).await;
            if accept(&value) {
                return value;
            }
            assert!(
                Instant::now() < until,
                "the page did not show {what} in {deadline:?}; last value: {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}
