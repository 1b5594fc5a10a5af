//! etcd's v3 API through its own JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/watch`), with the HTTP client the watchdog
//! already has.
//!
//! Why not a gRPC client crate: the maintained one (`etcd-client`) generates its code with
//! `protoc` at build time, which a fresh machine does not have after the README's two commands,
//! and brings tonic, prost and their tree (see BENCHMARKS.md). The gateway is part of every
//! etcd since 3.3 (3.4 is Debian's), speaks the same API, and needs nothing new.
//!
//! The gateway's JSON is protobuf's: keys and values are base64, 64-bit integers are strings,
//! and fields at their default value (a `false`, a `0`, the `PUT` event type) are left out.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::ClusterConfig;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd {endpoint}{path}: {detail}")]
    Unreachable {
        endpoint: String,
        path: &'static str,
        detail: String,
    },
    #[error("etcd {endpoint}{path} answered {status}: {body}")]
    Status {
        endpoint: String,
        path: &'static str,
        status: u16,
        body: String,
    },
    #[error("etcd {endpoint}{path}: not an answer of etcd's v3 gateway: {detail}")]
    Malformed {
        endpoint: String,
        path: &'static str,
        detail: String,
    },
    #[error("cluster: {0}")]
    Setup(String),
}

/// A 64-bit integer as the gateway writes it: a string, a number, or absent (zero).
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(i64),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

fn bytes64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    BASE64.decode(text).map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "int64")]
    revision: i64,
}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Kv {
    #[serde(deserialize_with = "bytes64")]
    pub key: Vec<u8>,
    #[serde(default, deserialize_with = "bytes64")]
    pub value: Vec<u8>,
    #[serde(default, deserialize_with = "int64")]
    pub lease: i64,
    #[serde(default, deserialize_with = "int64")]
    pub mod_revision: i64,
}

impl Kv {
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete(String),
}

/// A comparison of a transaction, on one key.
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key exists.
    Present(String),
    /// The key holds this value.
    ValueIs(String, Vec<u8>),
    /// The key is attached to this lease.
    LeaseIs(String, i64),
}

/// An operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<i64>,
    },
    Delete(String),
}

/// What a transaction did: whether its comparisons held, and the store's revision after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    pub succeeded: bool,
    pub revision: i64,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64.encode(bytes)
}

/// The end of the range of keys that start with `prefix` (etcd's `range_end`).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn compare_json(compare: &Compare) -> Value {
    match compare {
        Compare::Absent(key) => {
            json!({"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
        }
        Compare::Present(key) => {
            json!({"key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"})
        }
        Compare::ValueIs(key, value) => {
            json!({"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)})
        }
        Compare::LeaseIs(key, lease) => {
            json!({"key": b64(key), "target": "LEASE", "result": "EQUAL", "lease": lease.to_string()})
        }
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut put = json!({"key": b64(key), "value": b64(value)});
            if let (Some(lease), Some(object)) = (lease, put.as_object_mut()) {
                object.insert("lease".to_string(), Value::String(lease.to_string()));
            }
            json!({ "request_put": put })
        }
        Op::Delete(key) => json!({"request_delete_range": {"key": b64(key)}}),
    }
}

/// A client of one etcd cluster: its endpoints are tried in turn, starting with the last one
/// that answered.
pub struct Etcd {
    /// Unary requests, each bounded by `request_timeout`.
    http: reqwest::Client,
    /// Watches: long-lived, so only the connection is bounded.
    streaming: reqwest::Client,
    endpoints: Vec<String>,
    current: AtomicUsize,
    credentials: Option<(String, Secret)>,
    token: Mutex<Option<String>>,
    /// Every request sent, for `beyondtrust_watchdog_cluster_requests_total`.
    pub requests: AtomicU64,
}

impl Etcd {
    pub fn new(config: &ClusterConfig, request_timeout: Duration) -> Result<Etcd, EtcdError> {
        let credentials = match (&config.user, &config.password) {
            (Some(user), Some(source)) => Some((
                user.clone(),
                crate::config::read_secret(source)
                    .map_err(|e| EtcdError::Setup(format!("etcd password: {e}")))?,
            )),
            _ => None,
        };
        let build = |total: Option<Duration>| -> Result<reqwest::Client, EtcdError> {
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("bt-watchdog/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(request_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .use_rustls_tls()
                .no_proxy();
            if let Some(total) = total {
                builder = builder.timeout(total);
            }
            if let Some(path) = &config.ca_file {
                builder = builder.tls_built_in_root_certs(false);
                for cert in crate::api::transport::load_ca_bundle(path)
                    .map_err(|e| EtcdError::Setup(format!("cluster.ca_file: {e}")))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    EtcdError::Setup(format!("cluster.cert_file {}: {e}", cert.display()))
                })?;
                pem.push(b'\n');
                pem.extend(std::fs::read(key).map_err(|e| {
                    EtcdError::Setup(format!("cluster.key_file {}: {e}", key.display()))
                })?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    EtcdError::Setup(format!(
                        "cluster.cert_file and key_file are not a PEM certificate and key: {e}"
                    ))
                })?;
                builder = builder.identity(identity);
            }
            builder
                .build()
                .map_err(|e| EtcdError::Setup(format!("HTTP client: {e}")))
        };
        Ok(Etcd {
            http: build(Some(request_timeout))?,
            streaming: build(None)?,
            endpoints: config.endpoints.clone(),
            current: AtomicUsize::new(0),
            credentials,
            token: Mutex::new(None),
            requests: AtomicU64::new(0),
        })
    }

    fn endpoint(&self, offset: usize) -> (usize, &str) {
        let index = (self.current.load(Ordering::Relaxed) + offset) % self.endpoints.len().max(1);
        (
            index,
            self.endpoints.get(index).map(String::as_str).unwrap_or(""),
        )
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks etcd for an authentication token (etcd's user/password authentication).
    async fn authenticate(&self, endpoint: &str) -> Result<(), EtcdError> {
        let Some((user, password)) = &self.credentials else {
            return Ok(());
        };
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let body = json!({"name": user, "password": password.expose()});
        let answer: Token = self
            .send_to(endpoint, "/v3/auth/authenticate", &body, None)
            .await?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer.token);
        Ok(())
    }

    async fn send_to<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &'static str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<T, EtcdError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .post(format!("{endpoint}{path}"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let unreachable = |detail: String| EtcdError::Unreachable {
            endpoint: endpoint.to_string(),
            path,
            detail,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        if status != 200 {
            return Err(EtcdError::Status {
                endpoint: endpoint.to_string(),
                path,
                status,
                body: text.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&text).map_err(|e| EtcdError::Malformed {
            endpoint: endpoint.to_string(),
            path,
            detail: e.to_string(),
        })
    }

    /// One request, to the endpoint that answered last and then to the others; an expired
    /// authentication token is renewed once.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &'static str,
        body: &Value,
    ) -> Result<T, EtcdError> {
        let mut last = None;
        for offset in 0..self.endpoints.len().max(1) {
            let (index, endpoint) = self.endpoint(offset);
            if self.credentials.is_some()
                && self.token().is_none()
                && let Err(e) = self.authenticate(endpoint).await
            {
                last = Some(e);
                continue;
            }
            let mut result = self
                .send_to(endpoint, path, body, self.token().as_deref())
                .await;
            if let Err(EtcdError::Status { status: 401, .. }) = &result
                && self.credentials.is_some()
            {
                self.authenticate(endpoint).await?;
                result = self
                    .send_to(endpoint, path, body, self.token().as_deref())
                    .await;
            }
            match result {
                // Another endpoint may be healthy: a member that is down, or one cut off from
                // the others (it answers 503 or times out), is skipped.
                Err(e @ EtcdError::Unreachable { .. })
                | Err(e @ EtcdError::Status { status: 500.., .. }) => last = Some(e),
                other => {
                    self.current.store(index, Ordering::Relaxed);
                    return other;
                }
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Setup("no endpoint configured".to_string())))
    }

    /// A new lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        #[derive(Deserialize)]
        struct Granted {
            #[serde(rename = "ID", deserialize_with = "int64")]
            id: i64,
        }
        let granted: Granted = self
            .call(
                "/v3/lease/grant",
                &json!({"TTL": ttl.as_secs().to_string()}),
            )
            .await?;
        Ok(granted.id)
    }

    /// Renews a lease; its new TTL, or `None` when it no longer exists (it expired).
    pub async fn keep_alive(&self, lease: i64) -> Result<Option<Duration>, EtcdError> {
        #[derive(Deserialize)]
        struct Answer {
            result: Option<Renewed>,
        }
        #[derive(Deserialize)]
        struct Renewed {
            #[serde(rename = "TTL", default, deserialize_with = "int64")]
            ttl: i64,
        }
        let answer: Answer = self
            .call("/v3/lease/keepalive", &json!({"ID": lease.to_string()}))
            .await?;
        let ttl = answer.result.map(|r| r.ttl).unwrap_or(0);
        Ok((ttl > 0).then(|| Duration::from_secs(ttl.unsigned_abs())))
    }

    /// Ends a lease at once: its keys (leadership, views) go with it.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        let _: Value = self
            .call("/v3/lease/revoke", &json!({"ID": lease.to_string()}))
            .await?;
        Ok(())
    }

    /// Every key under `prefix`, and the store's revision they were read at.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(i64, Vec<Kv>), EtcdError> {
        self.range(json!({"key": b64(prefix), "range_end": b64(prefix_end(prefix))}))
            .await
    }

    /// One key, read with a quorum (linearizable: never an old value from a lagging member).
    pub async fn get(&self, key: &str) -> Result<(i64, Option<Kv>), EtcdError> {
        let (revision, kvs) = self.range(json!({"key": b64(key)})).await?;
        Ok((revision, kvs.into_iter().next()))
    }

    async fn range(&self, body: Value) -> Result<(i64, Vec<Kv>), EtcdError> {
        #[derive(Deserialize)]
        struct Ranged {
            #[serde(default)]
            header: Header,
            #[serde(default)]
            kvs: Vec<Kv>,
        }
        let ranged: Ranged = self.call("/v3/kv/range", &body).await?;
        Ok((ranged.header.revision, ranged.kvs))
    }

    /// A put outside any transaction.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), EtcdError> {
        self.txn(
            &[],
            &[Op::Put {
                key: key.to_string(),
                value: value.to_vec(),
                lease,
            }],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.txn(&[], &[Op::Delete(key.to_string())])
            .await
            .map(|_| ())
    }

    /// If every comparison holds, the operations, atomically.
    pub async fn txn(&self, compare: &[Compare], success: &[Op]) -> Result<TxnOutcome, EtcdError> {
        #[derive(Deserialize)]
        struct Done {
            #[serde(default)]
            header: Header,
            #[serde(default)]
            succeeded: bool,
        }
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
        });
        let done: Done = self.call("/v3/kv/txn", &body).await?;
        Ok(TxnOutcome {
            succeeded: done.succeeded,
            revision: done.header.revision,
        })
    }

    /// Watches every key under `prefix` from `revision` on.
    pub async fn watch(&self, prefix: &str, revision: i64) -> Result<Watch, EtcdError> {
        let (index, endpoint) = self.endpoint(0);
        let _ = index;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = json!({"create_request": {
            "key": b64(prefix),
            "range_end": b64(prefix_end(prefix)),
            "start_revision": revision.to_string(),
        }});
        let mut request = self
            .streaming
            .post(format!("{endpoint}/v3/watch"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = self.token() {
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let response = request.send().await.map_err(|e| EtcdError::Unreachable {
            endpoint: endpoint.to_string(),
            path: "/v3/watch",
            detail: error_chain(&e),
        })?;
        if response.status().as_u16() != 200 {
            return Err(EtcdError::Status {
                endpoint: endpoint.to_string(),
                path: "/v3/watch",
                status: response.status().as_u16(),
                body: String::new(),
            });
        }
        Ok(Watch {
            endpoint: endpoint.to_string(),
            response,
            buffer: Vec::new(),
        })
    }
}

/// A running watch: one JSON object per line, each a batch of events.
pub struct Watch {
    endpoint: String,
    response: reqwest::Response,
    buffer: Vec<u8>,
}

/// What a watch said.
#[derive(Debug)]
pub enum WatchBatch {
    Events(Vec<Event>),
    /// The watch ended (cancelled, compacted past, or the stream closed): read everything again.
    Ended(String),
}

impl Watch {
    pub async fn next(&mut self) -> WatchBatch {
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match parse_watch_line(&line) {
                    Ok(Some(batch)) => return batch,
                    Ok(None) => continue,
                    Err(detail) => {
                        return WatchBatch::Ended(format!(
                            "etcd {}/v3/watch: {detail}",
                            self.endpoint
                        ));
                    }
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return WatchBatch::Ended("the watch stream ended".to_string()),
                Err(e) => {
                    return WatchBatch::Ended(format!("the watch broke: {}", error_chain(&e)));
                }
            }
        }
    }
}

/// One line of the watch stream: events, nothing of interest (the creation's answer), or the
/// end of the watch.
fn parse_watch_line(line: &[u8]) -> Result<Option<WatchBatch>, String> {
    #[derive(Deserialize)]
    struct Line {
        result: Option<WatchResponse>,
        error: Option<Value>,
    }
    #[derive(Deserialize)]
    struct WatchResponse {
        #[serde(default)]
        canceled: bool,
        #[serde(default, deserialize_with = "int64")]
        compact_revision: i64,
        #[serde(default)]
        events: Vec<RawEvent>,
    }
    #[derive(Deserialize)]
    struct RawEvent {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        kv: Kv,
    }
    let parsed: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if let Some(error) = parsed.error {
        return Ok(Some(WatchBatch::Ended(format!(
            "etcd ended the watch: {error}"
        ))));
    }
    let Some(result) = parsed.result else {
        return Ok(None);
    };
    if result.canceled || result.compact_revision > 0 {
        return Ok(Some(WatchBatch::Ended(format!(
            "etcd cancelled the watch (compacted at revision {})",
            result.compact_revision
        ))));
    }
    if result.events.is_empty() {
        return Ok(None);
    }
    let events = result
        .events
        .into_iter()
        .map(|event| match event.kind.as_deref() {
            Some("DELETE") => Event::Delete(event.kv.key_text()),
            _ => Event::Put(event.kv),
        })
        .collect();
    Ok(Some(WatchBatch::Events(events)))
}

/// An error with its causes, which reqwest keeps in its source chain ("error sending
/// request" alone says nothing).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end("/bt/"), b"/bt0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    /// Lines as etcd 3.4's gateway writes them.
    #[test]
    fn watch_lines_are_read_as_etcd_writes_them() {
        let created = br#"{"result":{"header":{"cluster_id":"1","revision":"3","raft_term":"2"},"created":true}}"#;
        assert!(matches!(parse_watch_line(created), Ok(None)));
        let put = br#"{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"L3gvYQ==","create_revision":"4","mod_revision":"4","version":"1","value":"MQ==","lease":"77"}}]}}"#;
        let Ok(Some(WatchBatch::Events(events))) = parse_watch_line(put) else {
            panic!("a put")
        };
        assert_eq!(
            events,
            vec![Event::Put(Kv {
                key: b"/x/a".to_vec(),
                value: b"1".to_vec(),
                lease: 77,
                mod_revision: 4
            })]
        );
        let delete = br#"{"result":{"header":{"revision":"5"},"events":[{"type":"DELETE","kv":{"key":"L3gvYQ==","mod_revision":"5"}}]}}"#;
        let Ok(Some(WatchBatch::Events(events))) = parse_watch_line(delete) else {
            panic!("a delete")
        };
        assert_eq!(events, vec![Event::Delete("/x/a".to_string())]);
        let compacted =
            br#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"7"}}"#;
        assert!(matches!(
            parse_watch_line(compacted),
            Ok(Some(WatchBatch::Ended(_)))
        ));
    }
}
