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
    /// The caller's login uid (`/proc/PID/loginuid`, kept through sudo), when readable.
    pub login_uid: Option<u32>,
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
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(io)?;
    let placed = (|| {
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        let owner = std::fs::metadata(&temporary)?.uid();
        // Only a stale socket of ours is replaced: never a file, a directory, someone else's
        // socket, or a socket a live process still answers on.
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(existing) => stale_socket_of(path, &existing, owner)?,
        }
        std::fs::rename(&temporary, path)?;
        Ok(owner)
    })();
    match placed {
        Ok(owner) => Ok((listener, owner)),
        Err(source) => {
            let _ = std::fs::remove_file(&temporary);
            Err(io(source))
        }
    }
}

/// Whether what is at `path` may be replaced: a socket owned by `owner` that nobody answers on.
fn stale_socket_of(path: &Path, existing: &std::fs::Metadata, owner: u32) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let refuse = |what: String| {
        Err(std::io::Error::other(format!(
            "{what} is in the way; it was left untouched: move it away, or set control_socket to another path"
        )))
    };
    if !existing.file_type().is_socket() {
        let kind = if existing.is_dir() {
            "a directory"
        } else if existing.file_type().is_symlink() {
            "a symbolic link"
        } else {
            "a file that is not a socket"
        };
        return refuse(kind.to_string());
    }
    if existing.uid() != owner {
        return refuse(format!("a socket of uid {}", existing.uid()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return refuse("a socket another process answers on".to_string());
    }
    Ok(())
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
    let (uid, pid) = match stream.peer_cred() {
        Ok(credentials) => (credentials.uid(), credentials.pid()),
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
                    Ok(request) => {
                        let login_uid = super::ownership::login_uid(pid);
                        handed_on(request, uid, login_uid, &requests).await
                    }
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

async fn handed_on(
    request: Request,
    uid: u32,
    login_uid: Option<u32>,
    requests: &mpsc::Sender<Incoming>,
) -> Answer {
    let (reply, answer) = oneshot::channel();
    if requests
        .send(Incoming {
            request,
            uid,
            login_uid,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_stale_socket_of_ours_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // A file and a directory are never deleted.
        let file = dir.path().join("file.sock");
        std::fs::write(&file, "precious").unwrap();
        let error = bind(&file).unwrap_err().to_string();
        assert!(error.contains("not a socket"), "{error}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
        let directory = dir.path().join("dir.sock");
        std::fs::create_dir(&directory).unwrap();
        assert!(bind(&directory).is_err());
        assert!(directory.is_dir());
        // A socket someone answers on is not taken over.
        let live = dir.path().join("live.sock");
        let (_listener, _) = bind(&live).unwrap();
        let error = bind(&live).unwrap_err().to_string();
        assert!(error.contains("answers on"), "{error}");
        // A stale one (its listener gone) is replaced.
        drop(_listener);
        assert!(bind(&live).is_ok());
        // Nothing temporary is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }
}
