//! The CLI side of the control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Answer, Request};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no watchdog daemon is listening on {path}")]
    NoDaemon { path: PathBuf },
    #[error("{path}: permission denied: run this as the watchdog's user (or root)")]
    Permission { path: PathBuf },
    #[error("{path}: {message}")]
    Failed { path: PathBuf, message: String },
}

const ANSWER_LIMIT: u64 = 1024 * 1024;

pub async fn send(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let failed = |message: String| ClientError::Failed {
        path: socket.to_path_buf(),
        message,
    };
    let exchange = async {
        let mut stream = UnixStream::connect(socket)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    ClientError::NoDaemon {
                        path: socket.to_path_buf(),
                    }
                }
                std::io::ErrorKind::PermissionDenied => ClientError::Permission {
                    path: socket.to_path_buf(),
                },
                _ => failed(e.to_string()),
            })?;
        let mut line = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(stream, ANSWER_LIMIT));
        let mut answer = String::new();
        reader
            .read_line(&mut answer)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if answer.trim().is_empty() {
            return Err(failed(
                "the daemon closed the connection without answering".to_string(),
            ));
        }
        serde_json::from_str(&answer)
            .map_err(|e| failed(format!("not an answer this CLI understands: {e}")))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed(format!("no answer within {}s", timeout.as_secs())))?
}
