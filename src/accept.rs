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
