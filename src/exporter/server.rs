//! The exporter's HTTP listener: `/` (the status page), `/metrics`, `/healthz`, `/status`,
//! `/runbook`.
//!
//! Every answer is built from memory (the metrics registry and the status board). Nothing
//! here calls an appliance or runs the engine, so a hanging appliance cannot slow a scrape.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::exposition::Exposition;
use super::page;
use super::status::Board;
use super::web_config::WebConfig;

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

/// Serves until `shutdown` turns true, with TLS and basic auth as the web configuration says.
pub async fn serve(
    exporter: Arc<Exporter>,
    web: Arc<WebConfig>,
    listener: TcpListener,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    crate::accept::accept_bounded(
        || listener.accept(),
        limit,
        shutdown,
        |stream, permit| {
            let exporter = exporter.clone();
            let active = web.current();
            tokio::spawn(async move {
                // Held until the connection ends.
                let _permit = permit;
                let guard = active.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let authorization = request
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    let response = if guard.authorized(authorization) {
                        exporter.answer(&request)
                    } else {
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
                    };
                    async move { Ok::<_, Infallible>(response) }
                });
                // A client that sends nothing is dropped after a while.
                let builder = {
                    let mut builder = http1::Builder::new();
                    builder
                        .header_read_timeout(Duration::from_secs(10))
                        .timer(hyper_util::rt::TokioTimer::new());
                    builder
                };
                match &active.tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                                .await
                        else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
            });
        },
    )
    .await;
}
