//! The daemon's side of the control channel: it turns the channel's requests into commands
//! for the site loops and writes the audit log. The channel itself knows nothing of sites.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::site::{SiteCommand, Ticket};
use crate::control::audit::{self, AuditRecord};
use crate::control::protocol::OperatorAnswer;
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
    if request.force && request.data_sync_first {
        return Err(
            "force and data_sync_first contradict each other: a forced demotion cannot sync data first"
                .to_string(),
        );
    }
    let Some(target) = names.iter().position(|n| *n == request.to) else {
        return Err(format!(
            "site {} has no appliance {:?} (it has {} and {})",
            request.site, request.to, names[0], names[1]
        ));
    };
    if let Some(demote) = &request.demote {
        // `to` names the appliance that stays primary; both must be named, so that a request
        // can never demote the appliance the operator meant to keep.
        if *demote != names[1 - target] {
            return Err(format!(
                "demote {demote:?} with {:?} staying primary: on site {} the peer of {} is {}",
                request.to,
                request.site,
                request.to,
                names[1 - target]
            ));
        }
        if request.data_sync_first {
            return Err(
                "demote and data_sync_first contradict each other: a demotion in a split brain cannot sync data first"
                    .to_string(),
            );
        }
    }
    Ok(ManualRequest {
        request_id,
        target,
        data_sync_first: request.data_sync_first,
        force: request.force,
        demote_peer: request.demote.is_some(),
        confirmed: request.confirm,
        override_preflight: request.override_preflight,
        by,
        shown_plan: request.shown_plan.clone(),
        // The site loop asks the pre-failover hook, when one is configured.
        hook: None,
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
                let who = audit::describe_caller(
                    incoming.uid,
                    incoming.request.user(),
                    incoming.login_uid,
                );
                let answer = dispatcher.answer(incoming.request, who).await;
                let _ = incoming.reply.send(answer);
            });
        }
    }

    /// Every outcome of a command is audited: carried out, refused, or given up on (then it
    /// is never carried out: see [`Ticket`]).
    async fn answer(&self, request: Request, who: String) -> Answer {
        let site = request.site().to_string();
        if let Request::Status { .. } = &request {
            return match self.directory.get(&site) {
                Err(message) => Answer::Refused { message },
                Ok(_) => match site_status(&self.board, &site) {
                    Some(status) => Answer::Status {
                        status: Box::new(status),
                    },
                    None => Answer::Refused {
                        message: format!("site {site} has not been polled yet"),
                    },
                },
            };
        }
        let record = match &request {
            Request::Pause { reason, .. } => AuditRecord::now(
                who.clone(),
                &site,
                "pause",
                reason_details(reason),
                String::new(),
            ),
            Request::Resume { .. } => AuditRecord::now(
                who.clone(),
                &site,
                "resume",
                serde_json::json!({}),
                String::new(),
            ),
            Request::Ack { reason, .. } => AuditRecord::now(
                who.clone(),
                &site,
                "ack",
                reason_details(reason),
                String::new(),
            ),
            Request::Failover(failover) => {
                AuditRecord::failover(who.clone(), failover, false, String::new())
            }
            Request::Status { .. } => {
                return Answer::Refused {
                    message: "status is not a command".to_string(),
                };
            }
        };
        // Written before anything is done: a failover nobody recorded must not happen. A
        // confirmed failover gets an intent record now and its outcome after; a pause, resume
        // or ack (the watchdog's own state, nothing sent to an appliance) and a dry run are
        // recorded once, with what they did.
        let acts = matches!(&request, Request::Failover(f) if f.confirm);
        let before = AuditRecord {
            action: match &request {
                Request::Failover(_) => "failover requested".to_string(),
                _ => format!("{} requested", record.action),
            },
            outcome: "about to hand it to the engine".to_string(),
            ..record.clone()
        };
        if acts && let Err(error) = audit::append(&self.state_dir, &before) {
            tracing::error!(site = %site, "refused a manual {} by {}: the audit log {} cannot be written: {error}", record.action, record.who, audit::path(&self.state_dir).display());
            return Answer::Refused {
                message: format!(
                    "the audit log {} cannot be written ({error}); nothing was done",
                    audit::path(&self.state_dir).display()
                ),
            };
        }
        let (answer, outcome) = self.carry(&request, &site, who).await;
        let record = AuditRecord { outcome, ..record };
        audit::record(&self.state_dir, &record);
        tracing::info!(site = %site, "manual {} by {}: {}", record.action, record.who, record.outcome);
        answer
    }

    /// Hands a command to its site loop and waits for the answer: (answer, audit outcome).
    async fn carry(&self, request: &Request, site: &str, who: String) -> (Answer, String) {
        let refused = |message: String| {
            let outcome = format!("refused: {message}");
            (Answer::Refused { message }, outcome)
        };
        let (commands, names) = match self.directory.get(site) {
            Ok(found) => found,
            Err(message) => return refused(message),
        };
        let command = match request {
            Request::Pause { reason, .. } => Command::Pause {
                reason: reason.clone(),
                by: who,
            },
            Request::Resume { .. } => Command::Resume { by: who },
            Request::Ack { reason, .. } => Command::Acknowledge {
                reason: reason.clone(),
                by: who,
            },
            Request::Failover(failover) => {
                let id = self.next_request.fetch_add(1, Ordering::Relaxed);
                match manual_failover(failover, &names, id, who) {
                    Ok(manual) => Command::Failover(manual),
                    Err(message) => return refused(message),
                }
            }
            Request::Status { .. } => return refused("status is not a command".to_string()),
        };
        let ticket = Ticket::default();
        let (reply, mut answer) = oneshot::channel();
        let sent = commands.send(SiteCommand::Operator {
            command: Box::new(command),
            reply,
            ticket: ticket.clone(),
        });
        // The queue itself is short and served promptly; a full one counts against the same
        // limit as the answer.
        let given_up = |why: &str| {
            let message = format!(
                "site {site} {why} within {}s; the command was NOT carried out and will not be",
                SITE_TIMEOUT.as_secs()
            );
            (
                Answer::Refused {
                    message: message.clone(),
                },
                format!("not carried out: {message}"),
            )
        };
        match tokio::time::timeout(SITE_TIMEOUT, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return refused(format!("site {site} is shutting down")),
            Err(_) => return given_up("did not take the command"),
        }
        let reply = match tokio::time::timeout(SITE_TIMEOUT, &mut answer).await {
            Ok(reply) => reply,
            // Too late unless the loop took it already: then it is being carried out, and its
            // answer is the truth to give.
            Err(_) if ticket.abandon() => return given_up("did not take the command up"),
            Err(_) => answer.await,
        };
        match reply {
            Ok(OperatorAnswer::Preflight(report)) => {
                let outcome = audit::preflight_outcome(&report);
                let mode = site_status(&self.board, site)
                    .map(|s| s.mode)
                    .unwrap_or_default();
                (
                    Answer::Preflight {
                        report: Box::new(report),
                        mode,
                    },
                    outcome,
                )
            }
            // With `[cluster]`: the leader refused it, or no instance leads the site.
            Ok(OperatorAnswer::Refused(message)) => refused(message),
            Ok(OperatorAnswer::Done(message)) => (
                Answer::Done {
                    message: format!("{site}: {message}"),
                },
                message,
            ),
            Err(_) if ticket.abandon() => refused(format!(
                "site {site} stopped before taking the command; it was not carried out"
            )),
            Err(_) => {
                let message = format!(
                    "site {site} stopped while carrying out the command: its outcome is unknown; check `bt-watchdog status`"
                );
                (
                    Answer::Refused {
                        message: message.clone(),
                    },
                    format!("unknown: {message}"),
                )
            }
        }
    }
}

fn reason_details(reason: &str) -> serde_json::Value {
    serde_json::json!({ "reason": reason })
}
