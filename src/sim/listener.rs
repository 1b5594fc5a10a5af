//! The accept loop of one simulated appliance: it refuses connections while the appliance is
//! `down` (the listening socket is really closed, so clients see "connection refused"),
//! counts connections, and hands each one to hyper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use super::Shared;
use super::appliance;

/// Binds with SO_REUSEADDR so the port can be taken again when the appliance comes back.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for _ in 0..50 {
        match bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("cannot bind")))
}

/// The certificates an appliance can present: the valid one, and the one it presents while
/// its `expired_certificate` fault is set.
pub(super) struct Certificates {
    pub valid: Arc<rustls::ServerConfig>,
    pub expired: Option<Arc<rustls::ServerConfig>>,
}

pub(super) async fn serve(
    shared: Arc<Shared>,
    index: usize,
    listener: TcpListener,
    tls: Option<Certificates>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptors = tls.map(|c| {
        (
            tokio_rustls::TlsAcceptor::from(c.valid),
            c.expired.map(tokio_rustls::TlsAcceptor::from),
        )
    });
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!("simulator: appliance {index}: no local address: {e}");
            return;
        }
    };
    let mut changes = shared.changes.subscribe();
    let mut listener = Some(listener);
    loop {
        if *shutdown.borrow() {
            return;
        }
        if shared.is_down(index) {
            listener = None;
            tokio::select! {
                _ = changes.changed() => continue,
                _ = shutdown.changed() => return,
            }
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match rebind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("simulator: cannot listen on {addr} again: {e}");
                    return;
                }
            },
        };
        tokio::select! {
            accepted = current.accept() => {
                listener = Some(current);
                if let Ok((stream, peer)) = accepted {
                    if shared.faults(index).ignored_sources.contains(&peer.ip()) {
                        // Held open and never answered, as a black-holed route looks.
                        let mut shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            let _stream = stream;
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(120)) => {}
                                _ = shutdown.changed() => {}
                            }
                        });
                        continue;
                    }
                    let connection = shared.open_connection(index);
                    let acceptor = acceptors.as_ref().map(|(valid, expired)| {
                        match expired {
                            Some(expired) if shared.faults(index).expired_certificate => expired.clone(),
                            _ => valid.clone(),
                        }
                    });
                    tokio::spawn(serve_connection(shared.clone(), index, connection, stream, acceptor));
                }
            }
            _ = changes.changed() => { listener = Some(current); }
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    index: usize,
    connection: super::Connection,
    stream: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let service = hyper::service::service_fn(move |request| {
        appliance::handle(shared.clone(), index, connection.clone(), request)
    });
    // Errors here are clients going away, failed handshakes, or connections cut on purpose.
    match acceptor {
        None => {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    }
}
