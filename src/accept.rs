//! The accept loop shared by the daemon's two listeners (the exporter's TCP port and the
//! control socket): both hand each connection to its own task and stop on shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Accepts connections until `shutdown` changes, handing each stream to `handle`.
pub(crate) async fn accept_until<Stream, Peer, Accepted>(
    mut accept: impl FnMut() -> Accepted,
    mut shutdown: watch::Receiver<bool>,
    mut handle: impl FnMut(Stream),
) where
    Accepted: Future<Output = std::io::Result<(Stream, Peer)>>,
{
    loop {
        tokio::select! {
            accepted = accept() => match accepted {
                Ok((stream, _)) => handle(stream),
                // Out of file descriptors or similar: do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Like [`accept_until`], with at most `limit` connections open at a time: the next one is
/// accepted only when one closes (the kernel's backlog holds the rest, and a flood of clients
/// cannot take the file descriptors the polls of the appliances need). `handle` gets the
/// permit with the stream and must keep it until the connection ends.
pub(crate) async fn accept_bounded<Stream, Peer, Accepted>(
    mut accept: impl FnMut() -> Accepted,
    limit: std::sync::Arc<tokio::sync::Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    mut handle: impl FnMut(Stream, tokio::sync::OwnedSemaphorePermit),
) where
    Accepted: Future<Output = std::io::Result<(Stream, Peer)>>,
{
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        tokio::select! {
            accepted = accept() => match accepted {
                Ok((stream, _)) => handle(stream, permit),
                // Out of file descriptors or similar: do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}
