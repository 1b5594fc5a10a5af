//! The daemon's side of the control channel: it turns the channel's requests into commands
//! for the site loops and writes the audit log. The channel itself knows nothing of sites.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::site::SiteCommand;
use crate::control::audit::{self, AuditRecord};
use crate::control::protocol::{Answer, FailoverRequest, Request};
use crate::control::server::Incoming;
use crate::engine::{Command, ManualRequest};
use crate::exporter::status::{Board, SiteStatus};

/// How long a site loop may take to answer an operator command.
const SITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running site's command channel and its two appliance names.
type Entry = (mpsc::Sender<SiteCommand>, [String; 2]);

/// How to reach each running site.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    sites: RwLock<BTreeMap<String, Entry>>,
}

impl Directory {
    pub(crate) fn insert(
        &self,
        site: &str,
        commands: mpsc::Sender<SiteCommand>,
        appliances: [String; 2],
    ) {
        self.sites
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.to_string(), (commands, appliances));
    }

    pub(crate) fn remove(&self, site: &str) {
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

/// The engine's form of a manual failover request, whichever way it came (the socket or
/// `failover --standalone`), so that both name the appliances and the caller alike.
pub(crate) fn manual_failover(
    request: &FailoverRequest,
    names: &[String; 2],
    request_id: u64,
    by: String,
) -> Result<ManualRequest, String> {
    let Some(target) = names.iter().position(|n| *n == request.to) else {
        return Err(format!(
            "site {} has no appliance {:?} (it has {} and {})",
            request.site, request.to, names[0], names[1]
        ));
    };
    Ok(ManualRequest {
        request_id,
        target,
        data_sync_first: request.data_sync_first,
        force: request.force,
        confirmed: request.confirm,
        override_preflight: request.override_preflight,
        by,
    })
}

/// A site's line of `/status`, once its loop has published one.
pub(crate) fn site_status(board: &Board, site: &str) -> Option<SiteStatus> {
    board.document().sites.into_iter().find(|s| s.site == site)
}

/// Answers the control socket's requests.
pub(crate) struct Dispatcher {
    directory: Arc<Directory>,
    board: Arc<Board>,
    state_dir: PathBuf,
    next_request: AtomicU64,
}

impl Dispatcher {
    pub(crate) fn new(directory: Arc<Directory>, board: Arc<Board>, state_dir: PathBuf) -> Self {
        Dispatcher {
            directory,
            board,
            state_dir,
            next_request: AtomicU64::new(1),
        }
    }

    /// Runs until the socket's server is gone; each request is answered in its own task, so a
    /// slow site does not hold up another's.
    pub(crate) async fn run(self: Arc<Self>, mut requests: mpsc::Receiver<Incoming>) {
        while let Some(incoming) = requests.recv().await {
            let dispatcher = self.clone();
            tokio::spawn(async move {
                let answer = dispatcher.answer(incoming.request, incoming.uid).await;
                let _ = incoming.reply.send(answer);
            });
        }
    }

    async fn answer(&self, request: Request, uid: u32) -> Answer {
        let site = request.site().to_string();
        let (commands, names) = match self.directory.get(&site) {
            Ok(found) => found,
            Err(message) => return Answer::Refused { message },
        };
        let who = audit::describe_caller(uid, request.user());
        let (command, record) = match &request {
            Request::Status { .. } => {
                return match site_status(&self.board, &site) {
                    Some(status) => Answer::Status {
                        status: Box::new(status),
                    },
                    None => Answer::Refused {
                        message: format!("site {site} has not been polled yet"),
                    },
                };
            }
            Request::Pause { reason, .. } => (
                Command::Pause {
                    reason: reason.clone(),
                    by: who.clone(),
                },
                AuditRecord::now(who, &site, "pause", reason_details(reason), String::new()),
            ),
            Request::Resume { .. } => (
                Command::Resume { by: who.clone() },
                AuditRecord::now(who, &site, "resume", serde_json::json!({}), String::new()),
            ),
            Request::Ack { reason, .. } => (
                Command::Acknowledge {
                    reason: reason.clone(),
                    by: who.clone(),
                },
                AuditRecord::now(who, &site, "ack", reason_details(reason), String::new()),
            ),
            Request::Failover(failover) => {
                let id = self.next_request.fetch_add(1, Ordering::Relaxed);
                match manual_failover(failover, &names, id, who.clone()) {
                    Ok(manual) => (
                        Command::Failover(manual),
                        AuditRecord::failover(who, failover, false, String::new()),
                    ),
                    Err(message) => return Answer::Refused { message },
                }
            }
        };
        let (reply, answer) = oneshot::channel();
        let sent = commands.send(SiteCommand::Operator {
            command,
            reply: Some(reply),
        });
        if sent.await.is_err() {
            return Answer::Refused {
                message: format!("site {site} is shutting down"),
            };
        }
        let report = match tokio::time::timeout(SITE_TIMEOUT, answer).await {
            Ok(Ok(Ok(report))) => report,
            // With `[cluster]`: the leader refused it, or no instance leads the site.
            Ok(Ok(Err(message))) => return Answer::Refused { message },
            _ => {
                return Answer::Refused {
                    message: format!("site {site} did not answer"),
                };
            }
        };
        let (answer, outcome) = match report {
            Some(report) => {
                let outcome = audit::preflight_outcome(&report);
                let mode = site_status(&self.board, &site)
                    .map(|s| s.mode)
                    .unwrap_or_default();
                (Answer::Preflight { report, mode }, outcome)
            }
            None => (
                Answer::Done {
                    message: format!("{} applied to {site}", record.action),
                },
                "applied".to_string(),
            ),
        };
        let record = AuditRecord { outcome, ..record };
        audit::record(&self.state_dir, &record);
        tracing::info!(site = %site, "manual {} by {}: {}", record.action, record.who, record.outcome);
        answer
    }
}

fn reason_details(reason: &str) -> serde_json::Value {
    serde_json::json!({ "reason": reason })
}
