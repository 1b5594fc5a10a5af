//! The daemon side of the control socket: who may connect, one request line in, one answer
//! line out. What a request does is not decided here: each one is handed on as an
//! [`Incoming`] to whoever serves the socket (the daemon), which answers it.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::{Answer, Request};

const REQUEST_LIMIT: u64 = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for the daemon's answer to one request (the site loop answers
/// within its own, shorter, timeout).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A request from an allowed caller, with the uid the kernel vouches for.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub uid: u32,
    pub reply: oneshot::Sender<Answer>,
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the socket with mode 0600 from the first moment: it is created under a temporary
/// name, restricted, then renamed into place.
pub fn bind(path: &Path) -> Result<(UnixListener, u32), SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The caller holds the state lock, so a socket file left here is from a dead process.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(io)?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    let owner = std::fs::metadata(path).map_err(io)?.uid();
    Ok((listener, owner))
}

/// Serves the socket until `shutdown` changes. `owner` is the daemon's own uid: only it and
/// root may use the socket.
pub async fn serve(
    listener: UnixListener,
    owner: u32,
    requests: mpsc::Sender<Incoming>,
    shutdown: watch::Receiver<bool>,
) {
    crate::accept::accept_until(
        || listener.accept(),
        shutdown,
        |stream| {
            tokio::spawn(connection(stream, owner, requests.clone()));
        },
    )
    .await;
}

async fn connection(stream: UnixStream, owner: u32, requests: mpsc::Sender<Incoming>) {
    let uid = match stream.peer_cred() {
        Ok(credentials) => credentials.uid(),
        Err(error) => {
            tracing::warn!("control socket: cannot tell who connected ({error}); refusing");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    // The request is read even from a caller that will be refused, so that it gets the
    // refusal instead of a broken pipe.
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, REQUEST_LIMIT));
    let mut line = Vec::new();
    let received = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let answer = if uid != owner && uid != 0 {
        tracing::warn!("control socket: refused a connection from uid {uid}");
        refused(format!(
            "uid {uid} may not control this watchdog (only uid {owner} and root may)"
        ))
    } else {
        match received {
            Ok(Ok(_)) => match std::str::from_utf8(&line) {
                Ok(text) => match serde_json::from_str::<Request>(text) {
                    Ok(request) => handed_on(request, uid, &requests).await,
                    Err(error) => {
                        refused(format!("not a request this daemon understands: {error}"))
                    }
                },
                Err(error) => refused(format!(
                    "the request is not UTF-8 text (an invalid byte at offset {}); send one line of JSON",
                    error.valid_up_to()
                )),
            },
            Ok(Err(error)) => refused(format!("the request could not be read: {error}")),
            Err(_) => refused(format!(
                "no request within {}",
                crate::engine::say_duration(REQUEST_TIMEOUT)
            )),
        }
    };
    let mut text = serde_json::to_vec(&answer).unwrap_or_default();
    text.push(b'\n');
    let _ = write.write_all(&text).await;
}

async fn handed_on(request: Request, uid: u32, requests: &mpsc::Sender<Incoming>) -> Answer {
    let (reply, answer) = oneshot::channel();
    if requests
        .send(Incoming {
            request,
            uid,
            reply,
        })
        .await
        .is_err()
    {
        return refused("the watchdog is shutting down".to_string());
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(answer)) => answer,
        _ => refused("the watchdog did not answer".to_string()),
    }
}

fn refused(message: String) -> Answer {
    Answer::Refused { message }
}
