//! One site run inside a command's own process, for work that must happen without a daemon
//! (`failover --standalone`). It is the daemon's site loop, driven step by step, with the
//! daemon's memory file and the state directory's lock, so that a daemon started meanwhile
//! cannot act on the same pair at the same time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::dispatch::{manual_failover, site_status};
use super::site::SiteLoop;
use super::store::{StateStore, StoreError};
use super::{DaemonError, build_clients};
use crate::config::{Config, SiteConfig};
use crate::control::audit::{self, AuditRecord};
use crate::control::lock::{self, LockError, StateLock};
use crate::control::protocol::FailoverRequest;
use crate::engine::{Command, Mode, Outcome, PreflightReport, StateKind};
use crate::exporter::metrics::Metrics;
use crate::exporter::status::{Board, SiteStatus};

#[derive(Debug, thiserror::Error)]
pub enum LocalSiteError {
    /// A daemon or another standalone command holds the state directory.
    #[error("{0}")]
    Lock(#[from] LockError),
    #[error("no site named {0:?} in the configuration")]
    UnknownSite(String),
    /// The site's clients cannot be built (its secret, its CA file).
    #[error("{0}")]
    Clients(DaemonError),
    #[error("{0}")]
    Memory(#[from] StoreError),
    #[error("{0}")]
    UnknownAppliance(String),
    #[error("the engine gave no preflight")]
    NoPreflight,
    /// The intent could not be recorded: nothing was done.
    #[error("the audit log {path} cannot be written ({source}); nothing was done")]
    Audit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How a started failover ended, as far as this process saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Success,
    Failed {
        reason: String,
    },
    /// No failover outcome within the time allowed.
    Unknown,
}

pub struct LocalSite {
    site: SiteConfig,
    mode: Mode,
    site_loop: SiteLoop,
    board: Arc<Board>,
    state_dir: PathBuf,
    _lock: StateLock,
}

impl LocalSite {
    /// Locks the state directory, builds the site's engine from its saved memory, and looks at
    /// the pair a few times, as a starting daemon would, before anything is asked of it.
    pub async fn open(config: &Config, site: &str) -> Result<LocalSite, LocalSiteError> {
        let state_lock = lock::acquire(&config.state_dir)?;
        let site = config
            .sites
            .iter()
            .find(|s| s.name == site)
            .cloned()
            .ok_or_else(|| LocalSiteError::UnknownSite(site.to_string()))?;
        let metrics = Arc::new(Metrics::new());
        let board = Arc::new(Board::default());
        let clients = build_clients(&site, &metrics).map_err(LocalSiteError::Clients)?;
        let store = StateStore::new(&config.state_dir, &site.name);
        let memory = store.load()?;
        let (ready, _) = tokio::sync::oneshot::channel();
        let outlets = super::outlets(config, &metrics).map_err(LocalSiteError::Clients)?;
        let mut site_loop = SiteLoop::new(
            site.clone(),
            config.mode,
            clients,
            memory,
            super::store::MemoryHome::File(store),
            metrics,
            board.clone(),
            ready,
            outlets,
        );
        for round in 0..5 {
            site_loop.poll_and_step().await;
            if round >= 1 && site_loop.engine().state().kind != StateKind::Starting {
                break;
            }
            tokio::time::sleep(site.poll_interval.min(Duration::from_secs(1))).await;
        }
        Ok(LocalSite {
            site,
            mode: config.mode,
            site_loop,
            board,
            state_dir: config.state_dir.clone(),
            _lock: state_lock,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn status(&self) -> Option<SiteStatus> {
        site_status(&self.board, &self.site.name)
    }

    /// Who is asking, as the audit log names them: the uid this process runs as and its login
    /// uid (kept through sudo), as the kernel says, and the login name the CLI saw.
    pub fn caller(&self, user: &str) -> String {
        audit::describe_self(user)
    }

    /// Hands a manual failover to the engine: its preflight, and whether it started the plan.
    pub async fn failover(
        &mut self,
        request: &FailoverRequest,
    ) -> Result<PreflightReport, LocalSiteError> {
        let names = [
            self.site.appliances[0].name.clone(),
            self.site.appliances[1].name.clone(),
        ];
        let manual = manual_failover(request, &names, 1, self.caller(&request.user))
            .map_err(LocalSiteError::UnknownAppliance)?;
        if request.confirm {
            // The intent is on disk before the engine may act; its outcome follows (`record`).
            let intent = AuditRecord {
                action: "failover requested".to_string(),
                outcome: "about to hand it to the engine".to_string(),
                ..AuditRecord::failover(self.caller(&request.user), request, true, String::new())
            };
            audit::append(&self.state_dir, &intent).map_err(|source| LocalSiteError::Audit {
                path: audit::path(&self.state_dir),
                source,
            })?;
        }
        let report = self.site_loop.operator(Command::Failover(manual)).await;
        self.site_loop.flush_journal().await;
        report.ok_or(LocalSiteError::NoPreflight)
    }

    /// Polls and carries out the plan until the failover ends, or long enough that it should
    /// have: three convergence timeouts and a margin.
    pub async fn settle(&mut self) -> Settled {
        let limit = self.site.policy.converge_timeout * 3 + Duration::from_secs(30);
        let settled = self.site_loop.settle(Instant::now() + limit).await;
        self.site_loop.flush_journal().await;
        match (settled, &self.site_loop.engine().memory().last_failover) {
            (true, Some(record)) if record.outcome == Outcome::Success => Settled::Success,
            (true, Some(record)) => Settled::Failed {
                reason: record.reason.clone(),
            },
            _ => Settled::Unknown,
        }
    }

    /// Records a request in the audit log, once its outcome is known: without a daemon, this
    /// process is the one that acted.
    pub fn record(&self, request: &FailoverRequest, outcome: String) {
        let record = AuditRecord::failover(self.caller(&request.user), request, true, outcome);
        audit::record(&self.state_dir, &record);
    }
}
