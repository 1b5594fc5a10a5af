//! One delivery of an event: a signed webhook POST or a program run, bounded by a timeout.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::Event;
use crate::config::HookTarget;
use crate::secret::Secret;

/// The header that carries the body's HMAC-SHA256 (`sha256=` and 64 hex digits), keyed with
/// the hook's secret: the receiver recomputes it to know the event came from this watchdog.
pub const SIGNATURE_HEADER: &str = "X-BT-Watchdog-Signature";
/// The event kind, so that a receiver can route without parsing the body.
pub const EVENT_HEADER: &str = "X-BT-Watchdog-Event";

/// Why a delivery did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The receiver answered no: a 4xx/5xx status, a non-zero exit. With what it said.
    Refused(String),
    /// No answer: timeout, no connection, a program that could not be started.
    NoAnswer(String),
}

impl Problem {
    pub fn describe(&self) -> &str {
        match self {
            Problem::Refused(text) | Problem::NoAnswer(text) => text,
        }
    }
}

enum Target {
    Webhook {
        client: reqwest::Client,
        url: String,
        key: Option<ring::hmac::Key>,
    },
    Exec {
        command: Vec<String>,
    },
}

pub struct Delivery {
    name: String,
    target: Target,
    timeout: Duration,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
fn hex_signature(key: &ring::hmac::Key, body: &[u8]) -> String {
    let tag = ring::hmac::sign(key, body);
    let mut out = String::from("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// What the receiver said, shortened for a reason or a log line.
fn excerpt(text: &str) -> String {
    let line = text.trim();
    let mut short: String = line.chars().take(300).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

impl Delivery {
    /// Reads the webhook's secret file now, so that a missing one is said at the start.
    pub fn new(name: &str, target: &HookTarget, timeout: Duration) -> Result<Delivery, String> {
        let target = match target {
            HookTarget::Webhook { url, secret_file } => {
                let key = match secret_file {
                    None => None,
                    Some(path) => {
                        let source = crate::config::SecretSource::File(path.clone());
                        let secret: Secret = crate::config::read_secret(&source)
                            .map_err(|e| format!("hook {name}: {e}"))?;
                        Some(ring::hmac::Key::new(
                            ring::hmac::HMAC_SHA256,
                            secret.expose().as_bytes(),
                        ))
                    }
                };
                // Hooks are local receivers (chat bridges, pagers, change systems): proxies
                // from the environment are not used for them.
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(timeout)
                    .user_agent(concat!("bt-watchdog/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("hook {name}: cannot build the HTTP client: {e}"))?;
                Target::Webhook {
                    client,
                    url: url.clone(),
                    key,
                }
            }
            HookTarget::Exec { command } => Target::Exec {
                command: command.clone(),
            },
        };
        Ok(Delivery {
            name: name.to_string(),
            target,
            timeout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Delivers once; what the receiver answered (its body or output) when it took the event.
    pub async fn deliver(&self, event: &Event) -> Result<String, Problem> {
        let body = serde_json::to_vec(event).map_err(|e| Problem::NoAnswer(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.attempt(event, body)).await {
            Ok(result) => result,
            Err(_) => Err(Problem::NoAnswer(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    async fn attempt(&self, event: &Event, body: Vec<u8>) -> Result<String, Problem> {
        match &self.target {
            Target::Webhook { client, url, key } => {
                let mut request = client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header(EVENT_HEADER, event.kind);
                if let Some(key) = key {
                    request = request.header(SIGNATURE_HEADER, hex_signature(key, &body));
                }
                let response = request
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Problem::NoAnswer(format!("webhook {url}: {e}")))?;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    Ok(excerpt(&text))
                } else {
                    Err(Problem::Refused(format!(
                        "webhook {url} answered {}{}",
                        status.as_u16(),
                        if text.trim().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", excerpt(&text))
                        }
                    )))
                }
            }
            Target::Exec { command } => {
                let program = command.first().map(String::as_str).unwrap_or_default();
                let mut child = tokio::process::Command::new(program)
                    .args(command.iter().skip(1))
                    .env("BT_WATCHDOG_EVENT", event.kind)
                    .env("BT_WATCHDOG_SITE", &event.site)
                    .env("BT_WATCHDOG_STATE", &event.state)
                    .env("BT_WATCHDOG_AT", event.at.to_string())
                    .env("BT_WATCHDOG_MESSAGE", &event.message)
                    .env(
                        "BT_WATCHDOG_EVENT_JSON",
                        String::from_utf8_lossy(&body).as_ref(),
                    )
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    // A program still running at the timeout is killed with it.
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| {
                        Problem::NoAnswer(format!("command {program}: cannot run: {e}"))
                    })?;
                if let Some(mut stdin) = child.stdin.take() {
                    // A program that does not read its input is not an error.
                    let _ = stdin.write_all(&body).await;
                    let _ = stdin.shutdown().await;
                }
                let output = child
                    .wait_with_output()
                    .await
                    .map_err(|e| Problem::NoAnswer(format!("command {program}: {e}")))?;
                let said = |bytes: &[u8]| excerpt(&String::from_utf8_lossy(bytes));
                if output.status.success() {
                    Ok(said(&output.stdout))
                } else {
                    let why = [said(&output.stderr), said(&output.stdout)]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    Err(Problem::Refused(format!(
                        "command {program} exited with {}{why}",
                        output
                            .status
                            .code()
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "a signal".to_string())
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex_signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
