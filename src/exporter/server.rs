//! The exporter's HTTP listener: `/` (the status page), `/metrics`, `/healthz`, `/status`,
//! `/runbook`.
//!
//! Every answer is built from memory (the metrics registry and the status board). Nothing
//! here calls an appliance or runs the engine, so a hanging appliance cannot slow a scrape.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::exposition::Exposition;
use super::metrics::ExporterMetrics;
use super::page;
use super::status::Board;
use super::web_config::{Active, Verdict, WebConfig};

pub struct Exporter {
    pub exposition: Arc<Exposition>,
    pub board: Arc<Board>,
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An HTML page: never cached (it is live), nothing loaded from elsewhere.
fn html(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = respond(StatusCode::OK, "text/html; charset=utf-8", body);
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&page::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

impl Exporter {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "only GET and HEAD\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match request.uri().path() {
            "/" => {
                let query = page::PageQuery::parse(request.uri().query());
                let body =
                    page::render(&self.board.document(), &query, std::time::SystemTime::now());
                let accepted = request
                    .headers()
                    .get_all(header::ACCEPT_ENCODING)
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                let compressed = (body.len() > page::GZIP_ABOVE && page::accepts_gzip(accepted))
                    .then(|| page::gzip(body.as_bytes()))
                    .flatten();
                match compressed {
                    Some(gzipped) => {
                        let mut response = html(gzipped);
                        let headers = response.headers_mut();
                        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                        response
                    }
                    None => html(body),
                }
            }
            "/runbook" => html(super::runbook::PAGE.as_str()),
            "/metrics" => {
                let accepts_gzip = request
                    .headers()
                    .get_all(header::ACCEPT_ENCODING)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| {
                        v.split(',')
                            .any(|e| e.trim().split(';').next() == Some("gzip"))
                    });
                let scrape = self.exposition.scrape(accepts_gzip);
                let mut response = respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    scrape.body,
                );
                if scrape.gzipped {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                response
                    .headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                response
            }
            "/status" => {
                let body = serde_json::to_vec_pretty(&self.board.document()).unwrap_or_default();
                respond(StatusCode::OK, "application/json", body)
            }
            "/healthz" => {
                let stuck = self.board.stuck_loops();
                if !self.board.has_sites() {
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8",
                        "starting: no site loop has run yet\n",
                    )
                } else if stuck.is_empty() {
                    // Degraded is still 200: the loops run and a restart would not fix a
                    // full or read-only disk; the text and the alerts say what is wrong.
                    let degraded = self.board.degraded();
                    if degraded.is_empty() {
                        respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n")
                    } else {
                        respond(
                            StatusCode::OK,
                            "text/plain; charset=utf-8",
                            format!(
                                "degraded: no failover call can be made until these are fixed: {}\n",
                                degraded.join("; ")
                            ),
                        )
                    }
                } else {
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8",
                        format!("site loops not running: {}\n", stuck.join(", ")),
                    )
                }
            }
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found; see /\n",
            ),
        }
    }
}

/// Binds the listener (so that a bad address fails the start, not a later task).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Connections served at once; more are closed at once (counted), so that a flood cannot take
/// the descriptors and memory the polls need.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections from one client address at once: one host cannot take every slot.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;
/// Time to complete the TLS handshake and each request's headers.
const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// A connection is asked to close after this long (after the answer in flight), so that a
/// kept-alive or slow client cannot hold a slot forever ...
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// ... and is dropped if its answer is not written (read by the client) within this.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// The connections in flight, overall and per client address.
struct Slots {
    per_address: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
    /// At most MAX_CONNECTIONS, and fewer when the descriptors left after the polls' reserve
    /// are fewer: the exporter must never take what the polls need.
    max_total: usize,
}

/// One connection's slot, given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    address: IpAddr,
}

impl Slots {
    fn take(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let mine = per_address.entry(address).or_insert(0);
        if *mine >= MAX_CONNECTIONS_PER_ADDRESS
            || self.total.load(Ordering::Relaxed) >= self.max_total
        {
            if *mine == 0 {
                per_address.remove(&address);
            }
            return None;
        }
        *mine += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            slots: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let mut per_address = self
            .slots
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
        self.slots.total.fetch_sub(1, Ordering::Relaxed);
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = respond(
        StatusCode::UNAUTHORIZED,
        "text/plain; charset=utf-8",
        "unauthorized\n",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"bt-watchdog\""),
    );
    response
}

/// Serves one connection: its request headers within [`HEADER_DEADLINE`], closed gracefully
/// after [`CONNECTION_LIFETIME`], dropped if an answer is not taken within [`WRITE_DEADLINE`].
async fn connection<Io>(
    io: Io,
    exporter: Arc<Exporter>,
    active: Arc<Active>,
    metrics: Option<ExporterMetrics>,
) where
    Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let exporter = exporter.clone();
        let active = active.clone();
        let metrics = metrics.clone();
        async move {
            // Probes (Kubernetes, systemd, load balancers) carry no credentials, and the
            // answer says only whether the loops run.
            let open = request.uri().path() == "/healthz";
            let verdict = if open {
                Verdict::Allowed
            } else {
                let authorization = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                active.check(authorization).await
            };
            let mut response = match verdict {
                Verdict::Allowed => exporter.answer(&request),
                Verdict::Refused => {
                    if let Some(metrics) = &metrics {
                        metrics.auth_failed();
                    }
                    unauthorized()
                }
            };
            for (name, value) in &active.headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .header_read_timeout(HEADER_DEADLINE)
        .timer(hyper_util::rt::TokioTimer::new());
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(WRITE_DEADLINE, connection).await;
        }
    }
}

/// Serves until `shutdown` turns true, with TLS and basic auth as the web configuration says.
pub async fn serve(
    exporter: Arc<Exporter>,
    web: Arc<WebConfig>,
    metrics: Option<ExporterMetrics>,
    listener: TcpListener,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Slots {
        per_address: Default::default(),
        total: Default::default(),
        max_total: max_connections.clamp(1, MAX_CONNECTIONS),
    });
    crate::accept::accept_until(
        || async {
            // The peer travels with the stream: the cap is per client address.
            let accepted: (TcpStream, SocketAddr) = listener.accept().await?;
            Ok((accepted, ()))
        },
        shutdown,
        |(stream, peer): (TcpStream, SocketAddr)| {
            let Some(slot) = slots.take(peer.ip()) else {
                // Closed at once: the flood costs us one accept, and the slot stays free.
                drop(stream);
                if let Some(metrics) = &metrics {
                    metrics.connection_refused();
                }
                return;
            };
            let active = web.current();
            if active.closed.is_some() {
                // The web configuration is invalid: nothing is served until it is fixed.
                drop(stream);
                return;
            }
            let exporter = exporter.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match active.tls.clone() {
                    None => connection(TokioIo::new(stream), exporter, active, metrics).await,
                    Some(acceptor) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(HEADER_DEADLINE, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        connection(TokioIo::new(tls), exporter, active, metrics).await;
                    }
                }
            });
        },
    )
    .await;
}
