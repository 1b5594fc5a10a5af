//! The daemon side of the control socket.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::audit::{self, AuditRecord};
use super::protocol::{Answer, Request};
use crate::api::time::UtcTime;
use crate::daemon::site::SiteCommand;
use crate::engine::{Command, ManualRequest};
use crate::exporter::status::Board;

const REQUEST_LIMIT: u64 = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running site's command channel and its two appliance names.
type Entry = (mpsc::Sender<SiteCommand>, [String; 2]);

/// How to reach each running site.
#[derive(Debug, Default)]
pub struct Directory {
    sites: RwLock<BTreeMap<String, Entry>>,
}

impl Directory {
    pub fn insert(&self, site: &str, commands: mpsc::Sender<SiteCommand>, appliances: [String; 2]) {
        self.sites
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.to_string(), (commands, appliances));
    }

    pub fn remove(&self, site: &str) {
        self.sites
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(site);
    }

    fn get(&self, site: &str) -> Result<Entry, String> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.get(site).cloned().ok_or_else(|| {
            let known: Vec<&str> = sites.keys().map(String::as_str).collect();
            format!(
                "no site named {site:?} (this watchdog has: {})",
                known.join(", ")
            )
        })
    }
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

pub struct ControlServer {
    pub directory: Arc<Directory>,
    pub board: Arc<Board>,
    pub state_dir: PathBuf,
    /// The daemon's own uid: only it and root may use the socket.
    pub owner: u32,
    next_request: AtomicU64,
}

impl ControlServer {
    pub fn new(
        directory: Arc<Directory>,
        board: Arc<Board>,
        state_dir: PathBuf,
        owner: u32,
    ) -> Self {
        ControlServer {
            directory,
            board,
            state_dir,
            owner,
            next_request: AtomicU64::new(1),
        }
    }
}

pub async fn serve(
    server: Arc<ControlServer>,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move { server.connection(stream).await });
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl ControlServer {
    async fn connection(&self, stream: UnixStream) {
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
        let mut line = String::new();
        let received = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
        let answer = if uid != self.owner && uid != 0 {
            tracing::warn!("control socket: refused a connection from uid {uid}");
            Answer::Refused {
                message: format!(
                    "uid {uid} may not control this watchdog (only uid {} and root may)",
                    self.owner
                ),
            }
        } else {
            match received {
                Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                    Ok(request) => self.handle(request, uid).await,
                    Err(error) => Answer::Refused {
                        message: format!("not a request this daemon understands: {error}"),
                    },
                },
                _ => Answer::Refused {
                    message: "no request within 10s".to_string(),
                },
            }
        };
        let mut text = serde_json::to_vec(&answer).unwrap_or_default();
        text.push(b'\n');
        let _ = write.write_all(&text).await;
    }

    async fn handle(&self, request: Request, uid: u32) -> Answer {
        let site = request.site().to_string();
        let (commands, names) = match self.directory.get(&site) {
            Ok(found) => found,
            Err(message) => return Answer::Refused { message },
        };
        let (command, who, action, details) = match &request {
            Request::Status { .. } => {
                return match self
                    .board
                    .document()
                    .sites
                    .into_iter()
                    .find(|s| s.site == site)
                {
                    Some(status) => Answer::Status {
                        status: Box::new(status),
                    },
                    None => Answer::Refused {
                        message: format!("site {site} has not been polled yet"),
                    },
                };
            }
            Request::Pause { reason, user, .. } => {
                let who = audit::describe_caller(uid, user);
                (
                    Command::Pause {
                        reason: reason.clone(),
                        by: who.clone(),
                    },
                    who,
                    "pause",
                    serde_json::json!({ "reason": reason }),
                )
            }
            Request::Resume { user, .. } => {
                let who = audit::describe_caller(uid, user);
                (
                    Command::Resume { by: who.clone() },
                    who,
                    "resume",
                    serde_json::json!({}),
                )
            }
            Request::Ack { reason, user, .. } => {
                let who = audit::describe_caller(uid, user);
                (
                    Command::Acknowledge {
                        reason: reason.clone(),
                        by: who.clone(),
                    },
                    who,
                    "ack",
                    serde_json::json!({ "reason": reason }),
                )
            }
            Request::Failover {
                to,
                data_sync_first,
                force,
                confirm,
                override_preflight,
                user,
                ..
            } => {
                let Some(target) = names.iter().position(|n| n == to) else {
                    return Answer::Refused {
                        message: format!(
                            "site {site} has no appliance {to:?} (it has {} and {})",
                            names[0], names[1]
                        ),
                    };
                };
                let who = audit::describe_caller(uid, user);
                let manual = ManualRequest {
                    request_id: self.next_request.fetch_add(1, Ordering::Relaxed),
                    target,
                    data_sync_first: *data_sync_first,
                    force: *force,
                    confirmed: *confirm,
                    override_preflight: *override_preflight,
                    by: who.clone(),
                };
                let details = serde_json::json!({
                    "to": to, "data_sync_first": data_sync_first, "force": force,
                    "confirm": confirm, "override_preflight": override_preflight,
                });
                (
                    Command::Failover(manual),
                    who,
                    if *confirm {
                        "failover"
                    } else {
                        "failover dry run"
                    },
                    details,
                )
            }
        };
        let (reply, answer) = oneshot::channel();
        if commands
            .send(SiteCommand::Operator {
                command,
                reply: Some(reply),
            })
            .await
            .is_err()
        {
            return Answer::Refused {
                message: format!("site {site} is shutting down"),
            };
        }
        let report = match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(report)) => report,
            _ => {
                return Answer::Refused {
                    message: format!("site {site} did not answer"),
                };
            }
        };
        let (answer, outcome) = match report {
            Some(report) => {
                let outcome = match (report.started, report.passed) {
                    (true, true) => "started".to_string(),
                    (true, false) => format!(
                        "started with the preflight overridden: {}",
                        report.problems.join("; ")
                    ),
                    (false, true) => "preflight passed; nothing done (dry run)".to_string(),
                    (false, false) => format!("refused: {}", report.problems.join("; ")),
                };
                let mode = self
                    .board
                    .document()
                    .sites
                    .into_iter()
                    .find(|s| s.site == site)
                    .map(|s| s.mode)
                    .unwrap_or_default();
                (Answer::Preflight { report, mode }, outcome)
            }
            None => (
                Answer::Done {
                    message: format!("{action} applied to {site}"),
                },
                "applied".to_string(),
            ),
        };
        let record = AuditRecord {
            at: UtcTime::from_system_time(std::time::SystemTime::now()),
            who: who.clone(),
            site: site.clone(),
            action: action.to_string(),
            details,
            outcome: outcome.clone(),
        };
        if let Err(error) = audit::append(&self.state_dir, &record) {
            tracing::error!(
                "cannot write the audit log {}: {error}",
                audit::path(&self.state_dir).display()
            );
        }
        tracing::info!(site = %site, "manual {action} by {who}: {outcome}");
        answer
    }
}
