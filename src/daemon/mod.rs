//! The daemon: one loop per site, the exporter, signals and systemd notifications.
//!
//! - [`site`]: a site's poll/decide/act loop and its actuator;
//! - `dispatch`: the control socket's requests, made into commands for the site loops;
//! - [`local_site`]: one site run in a command's own process, when no daemon runs;
//! - [`store`]: the engine's memory on disk, written atomically;
//! - [`clock`]: the time the engine is given, immune to steps of the wall clock;
//! - [`notify`]: systemd's READY/WATCHDOG/RELOADING/STOPPING.

pub mod clock;
mod dispatch;
pub mod local_site;
pub mod notify;
pub mod site;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{ApplianceClient, ApplianceSettings};
use crate::cluster::Cluster;
use crate::config::{self, Config, ConfigError, SiteConfig};
use crate::control::lock::{self, StateLock};
use crate::control::server as control_socket;
use crate::engine::Mode;
use crate::exporter::exposition::Exposition;
use crate::exporter::metrics::{Metrics, SiteObserver};
use crate::exporter::server::{self, Exporter};
use crate::exporter::status::Board;
use crate::exporter::web_config::WebConfig;
use crate::secret::Secret;
use dispatch::{Directory, Dispatcher};
use site::{Outlets, SiteCommand, SiteLoop};
use store::{MemoryHome, StateStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("site {site}: {message}")]
    Site { site: String, message: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("exporter: cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    Lock(#[from] crate::control::lock::LockError),
    #[error("{0}")]
    WebConfig(#[from] crate::exporter::web_config::WebConfigError),
    #[error("{0}")]
    Socket(#[from] crate::control::server::SocketError),
    /// A `[[notify]]` or `[pre_failover]` hook cannot be set up (its secret file).
    #[error("{0}")]
    Hooks(String),
    #[error("{0}")]
    Cluster(#[from] crate::cluster::etcd::EtcdError),
}

/// Where the configuration comes from: a file (run) or a value (demo).
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    Fixed(Box<Config>),
}

impl ConfigSource {
    fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => config::load(path),
            ConfigSource::Fixed(config) => Ok((**config).clone()),
        }
    }
}

pub struct RunningSite {
    config: SiteConfig,
    clients: SiteClients,
    commands: mpsc::Sender<SiteCommand>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What `demo` and tests need from a started daemon.
pub struct Daemon {
    pub board: Arc<Board>,
    pub listen: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), DaemonError>>,
}

impl Daemon {
    pub async fn stop(self) -> Result<(), DaemonError> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(source: ConfigSource) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let daemon = start(source, reload_rx).await?;
    loop {
        tokio::select! {
            // SIGTERM - sent by the supervisor (systemd, a container runtime) to stop gracefully.
            _ = terminate.recv() => break,
            // SIGINT - Ctrl-C at a terminal.
            _ = interrupt.recv() => break,
            // SIGHUP - reload the configuration (systemctl reload).
            _ = hangup.recv() => { let _ = reload_tx.send(()).await; }
        }
    }
    tracing::info!("stopping");
    notify::stopping();
    daemon.stop().await
}

/// Starts everything and returns once the exporter listens; `reload` asks for a reload.
pub async fn start(
    source: ConfigSource,
    reload: mpsc::Receiver<()>,
) -> Result<Daemon, DaemonError> {
    let config = source.load()?;
    let descriptors = raise_descriptor_limit();
    let max_exporter_connections = exporter_connection_limit(descriptors, config.sites.len());
    StateStore::new(&config.state_dir, "any").ensure_dir()?;
    // Held for the daemon's lifetime: a `failover --standalone` cannot act meanwhile.
    let state_lock = lock::acquire(&config.state_dir)?;
    let metrics = Arc::new(Metrics::with_histograms(
        config.exporter.request_duration_histograms,
    ));
    let board = Arc::new(Board::default());
    let directory = Arc::new(Directory::default());
    let outlets = outlets(&config, &metrics)?;
    let web = Arc::new(match &config.exporter.web_config {
        Some(path) => WebConfig::from_file(path, metrics.exporter().clone())?,
        None => WebConfig::open(),
    });
    let (control_listener, owner) = control_socket::bind(&config.control_socket)?;
    let listener = server::bind(config.exporter.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.exporter.listen,
            source,
        })?;
    let listen = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.exporter.listen,
            source,
        })?;
    let (stop, stop_rx) = watch::channel(false);
    let cluster = match &config.cluster {
        Some(settings) => {
            let cluster = Cluster::start(settings.clone(), stop_rx.clone())?;
            tracing::info!(
                "clustered: instance {} of {} on etcd {}; a site is failed over only by the instance that leads it",
                settings.instance,
                settings.name,
                settings.endpoints.join(", ")
            );
            tokio::spawn(publish_cluster(
                cluster.clone(),
                metrics.clone(),
                stop_rx.clone(),
            ));
            Some(cluster)
        }
        None => None,
    };
    let mut sites = BTreeMap::new();
    let mut readiness = Vec::new();
    for site in &config.sites {
        let (running, ready) = spawn_site(
            site.clone(),
            config.mode,
            &config.state_dir,
            &metrics,
            &board,
            &outlets,
            cluster.as_ref(),
        )?;
        directory.insert(&site.name, running.commands.clone(), appliance_names(site));
        sites.insert(site.name.clone(), running);
        readiness.push(ready);
    }
    let (requests, incoming) = mpsc::channel(16);
    tokio::spawn(control_socket::serve(
        control_listener,
        owner,
        requests,
        stop_rx.clone(),
    ));
    let dispatcher = Dispatcher::new(directory.clone(), board.clone(), config.state_dir.clone());
    tokio::spawn(Arc::new(dispatcher).run(incoming));
    let socket_path = config.control_socket.clone();
    let exposition = Arc::new(Exposition::new(metrics.clone()));
    tokio::spawn(exposition.clone().refresh(stop_rx.clone()));
    let exporter = Arc::new(Exporter {
        exposition,
        board: board.clone(),
    });
    tokio::spawn(server::serve(
        exporter,
        web.clone(),
        Some(metrics.exporter().clone()),
        listener,
        max_exporter_connections,
        stop_rx.clone(),
    ));
    let scheme = if web.current().tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        "watching {} site(s) in {} mode; metrics on {scheme}://{listen}/metrics, status on {scheme}://{listen}/status",
        config.sites.len(),
        config.mode.as_str()
    );
    tokio::spawn(async move {
        for ready in readiness {
            let _ = ready.await;
        }
        tracing::info!("first poll of every site done");
        notify::ready("watching");
    });
    if let Some(period) = notify::watchdog_interval() {
        tokio::spawn(keep_alive(board.clone(), period, stop_rx.clone()));
    }
    let (metrics_for_supervisor, board_for_supervisor) = (metrics.clone(), board.clone());
    let task = tokio::spawn(async move {
        let result = supervise(
            source,
            config,
            cluster,
            sites,
            metrics_for_supervisor,
            board_for_supervisor,
            directory,
            reload,
            stop_rx,
            outlets,
        )
        .await;
        let _ = std::fs::remove_file(&socket_path);
        drop::<StateLock>(state_lock);
        result
    });
    Ok(Daemon {
        board,
        listen,
        stop,
        task,
    })
}

/// Keeps the cluster's gauges current (from this process's own knowledge: no request).
async fn publish_cluster(
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => metrics.set_cluster(&cluster.status()),
            _ = stop.changed() => return,
        }
    }
}

/// Raises the soft limit on open files to the hard one (systemd's `LimitNOFILE`, or the
/// shell's `ulimit -Hn`): every poll is a connection, and running out of descriptors must not
/// be what makes a healthy appliance look dead. Returns the soft limit in force.
fn raise_descriptor_limit() -> u64 {
    let before = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft).ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            if before.is_some_and(|b| b < now) {
                tracing::debug!(
                    "raised the open-file limit from {} to {now}",
                    before.unwrap_or(0)
                );
            }
            now
        }
        Err(error) => {
            let soft = before.unwrap_or(1024);
            tracing::warn!("cannot raise the open-file limit (staying at {soft}): {error}");
            soft
        }
    }
}

/// Descriptors kept for the polls, the state files, the logs and the control socket, however
/// busy the exporter is: each site polls at most 4 endpoints of 2 appliances at once, plus a
/// failover call, and the process needs a few dozen of its own.
fn exporter_connection_limit(descriptors: u64, sites: usize) -> usize {
    const OWN: u64 = 64;
    const PER_SITE: u64 = 10;
    const MOST: u64 = 256;
    const LEAST: u64 = 4;
    let polls = OWN.saturating_add(PER_SITE.saturating_mul(sites as u64));
    let spare = descriptors.saturating_sub(polls);
    if spare < LEAST {
        tracing::warn!(
            "the open-file limit ({descriptors}) is too low for {sites} site(s): polls need about {polls}; raise LimitNOFILE"
        );
    }
    usize::try_from((spare / 2).clamp(LEAST, MOST)).unwrap_or(LEAST as usize)
}

/// Sends WATCHDOG=1 at half the period systemd asked for, but only while every site loop is
/// stepping: a wedged loop must let systemd restart the process.
async fn keep_alive(board: Arc<Board>, period: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let stuck = board.stuck_loops();
                if stuck.is_empty() {
                    notify::watchdog();
                } else {
                    tracing::error!("not sending the systemd keep-alive: {}", stuck.join(", "));
                }
            }
            _ = stop.changed() => return,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    source: ConfigSource,
    mut config: Config,
    cluster: Option<Arc<Cluster>>,
    mut sites: BTreeMap<String, RunningSite>,
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    directory: Arc<Directory>,
    mut reload: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
    outlets: Outlets,
) -> Result<(), DaemonError> {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(()) = reload.recv() => {
                notify::reloading();
                match apply_reload(&source, &mut config, cluster.as_ref(), &mut sites, &metrics, &board, &directory, &outlets).await {
                    Ok(summary) => {
                        tracing::info!("configuration reloaded: {summary}");
                        notify::ready("watching (reloaded)");
                    }
                    Err(error) => {
                        tracing::error!("configuration not reloaded, the previous one stays in force: {error}");
                        notify::ready("watching (reload rejected)");
                    }
                }
            }
        }
    }
    for (_, site) in sites {
        let _ = site.shutdown.send(true);
        let _ = site.task.await;
    }
    outlets.close().await;
    if let Some(cluster) = cluster {
        cluster.finish().await;
    }
    Ok(())
}

/// A reload is validated and prepared whole (configuration, secrets, clients, the memory of
/// every new site) before anything changes; only then is it applied, and applying cannot
/// fail. A reload that is rejected therefore changes nothing.
#[allow(clippy::too_many_arguments)]
async fn apply_reload(
    source: &ConfigSource,
    config: &mut Config,
    cluster: Option<&Arc<Cluster>>,
    sites: &mut BTreeMap<String, RunningSite>,
    metrics: &Arc<Metrics>,
    board: &Arc<Board>,
    directory: &Directory,
    outlets: &Outlets,
) -> Result<String, DaemonError> {
    let new = source.load()?;
    let mut changed = Vec::new();
    let mut added = Vec::new();
    for site in &new.sites {
        match sites.get(&site.name) {
            Some(running) => {
                let clients = prepare_clients(site, metrics, Some(&running.clients))?;
                let same_clients = clients
                    .clients
                    .iter()
                    .zip(&running.clients.clients)
                    .all(|(a, b)| Arc::ptr_eq(a, b));
                if running.config != *site || new.mode != config.mode || !same_clients {
                    changed.push((site.clone(), clients));
                }
            }
            None => {
                let clients = prepare_clients(site, metrics, None)?;
                let (store, memory) = open_memory(site, &config.state_dir, cluster)?;
                added.push((site.clone(), clients, store, memory));
            }
        }
    }
    if new.cluster != config.cluster {
        tracing::warn!("[cluster] only changes on a restart; keeping the current one");
    }
    if new.state_dir != config.state_dir || new.exporter != config.exporter {
        tracing::warn!(
            "state_dir and [exporter] only change on a restart; keeping the current ones"
        );
    }
    if new.notify != config.notify
        || new.pre_failover != config.pre_failover
        || new.journal != config.journal
    {
        tracing::warn!(
            "[[notify]], [pre_failover] and [journal] only change on a restart; keeping the current ones"
        );
    }

    // Everything is ready: from here on nothing can fail.
    let mut summary = Vec::new();
    let wanted: Vec<String> = new.sites.iter().map(|s| s.name.clone()).collect();
    let removed: Vec<String> = sites
        .keys()
        .filter(|name| !wanted.contains(name))
        .cloned()
        .collect();
    for name in removed {
        if let Some(site) = sites.remove(&name) {
            directory.remove(&name);
            let _ = site.shutdown.send(true);
            let _ = site.task.await;
            metrics.forget_site(&name, &appliance_names(&site.config));
            board.remove(&name);
            summary.push(format!("removed {name}"));
        }
    }
    for (site, clients) in changed {
        let Some(running) = sites.get_mut(&site.name) else {
            continue;
        };
        let rebuilt: Vec<&str> = clients
            .clients
            .iter()
            .zip(&site.appliances)
            .filter(|(client, _)| {
                !running
                    .clients
                    .clients
                    .iter()
                    .any(|old| Arc::ptr_eq(old, client))
            })
            .map(|(_, appliance)| appliance.name.as_str())
            .collect();
        let detail = if rebuilt.is_empty() {
            "clients kept".to_string()
        } else {
            format!("new client for {}", rebuilt.join(" and "))
        };
        let command = SiteCommand::Reconfigure {
            site: Box::new(site.clone()),
            mode: new.mode,
            clients: clients.clients.clone(),
        };
        let _ = running.commands.send(command).await;
        directory.insert(&site.name, running.commands.clone(), appliance_names(&site));
        running.config = site.clone();
        running.clients = clients;
        summary.push(format!("changed {} ({detail})", site.name));
    }
    for (site, clients, store, memory) in added {
        let (running, _ready) = spawn_prepared(
            site.clone(),
            new.mode,
            metrics,
            board,
            clients,
            store,
            memory,
            outlets,
        );
        directory.insert(&site.name, running.commands.clone(), appliance_names(&site));
        summary.push(format!("added {}", site.name));
        sites.insert(site.name.clone(), running);
    }
    config.mode = new.mode;
    config.sites = new.sites;
    if summary.is_empty() {
        summary.push("nothing changed".to_string());
    }
    Ok(summary.join(", "))
}

fn appliance_names(site: &SiteConfig) -> [String; 2] {
    [
        site.appliances[0].name.clone(),
        site.appliances[1].name.clone(),
    ]
}

/// Everything an appliance's client is built from. Two equal identities make the same
/// client, so a reload keeps the running one with its token, rate state and flavour.
struct ClientIdentity {
    name: String,
    url: String,
    client_id: String,
    secret: Secret,
    ca_file: Option<PathBuf>,
    /// The CA bundle's content: a rotated bundle under the same path is a TLS change.
    ca_bundle: Option<Vec<u8>>,
    request_timeout: Duration,
    budget: crate::api::budget::BudgetSettings,
    api: crate::api::ApiChoice,
    source_address: Option<std::net::IpAddr>,
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.url == other.url
            && self.client_id == other.client_id
            && self.secret.expose() == other.secret.expose()
            && self.ca_file == other.ca_file
            && self.ca_bundle == other.ca_bundle
            && self.request_timeout == other.request_timeout
            && self.budget == other.budget
            && self.api == other.api
            && self.source_address == other.source_address
    }
}

/// A site's two clients and what each was built from.
pub struct SiteClients {
    clients: [Arc<ApplianceClient>; 2],
    identities: [ClientIdentity; 2],
}

impl SiteClients {
    pub fn clients(&self) -> [Arc<ApplianceClient>; 2] {
        self.clients.clone()
    }
}

/// The clients `site` needs: the running ones (`running`) where nothing they were built from
/// changed, new ones where something did. Reads the secret, so a bad one fails here.
fn prepare_clients(
    site: &SiteConfig,
    metrics: &Arc<Metrics>,
    running: Option<&SiteClients>,
) -> Result<SiteClients, DaemonError> {
    let secret = config::read_secret(&site.client_secret).map_err(|message| DaemonError::Site {
        site: site.name.clone(),
        message,
    })?;
    let ca_bundle = match &site.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| DaemonError::Site {
            site: site.name.clone(),
            message: format!("ca_file {}: {e}", path.display()),
        })?),
        None => None,
    };
    let observer = Arc::new(SiteObserver {
        metrics: metrics.clone(),
        site: site.name.clone(),
    });
    let prepare = |index: usize| -> Result<(Arc<ApplianceClient>, ClientIdentity), DaemonError> {
        let appliance = &site.appliances[index];
        let identity = ClientIdentity {
            name: appliance.name.clone(),
            url: appliance.url.clone(),
            client_id: site.client_id.clone(),
            secret: secret.clone(),
            ca_file: site.ca_file.clone(),
            ca_bundle: ca_bundle.clone(),
            request_timeout: site.request_timeout,
            budget: site.budget.clone(),
            api: appliance.api.unwrap_or(site.api),
            source_address: site.source_address,
        };
        if let Some(running) = running
            && let Some(slot) = running.identities.iter().position(|i| *i == identity)
        {
            return Ok((running.clients[slot].clone(), identity));
        }
        let mut settings = ApplianceSettings::new(
            &appliance.name,
            &appliance.url,
            &site.client_id,
            secret.clone(),
        );
        settings.ca_file = site.ca_file.clone();
        settings.proxy = site.proxy.clone();
        settings.request_timeout = site.request_timeout;
        settings.budget = site.budget.clone();
        settings.api = identity.api;
        settings.source_address = site.source_address;
        let client = ApplianceClient::new(settings, observer.clone())
            .map(Arc::new)
            .map_err(|e| DaemonError::Site {
                site: site.name.clone(),
                message: format!("appliance {}: {e}", appliance.name),
            })?;
        Ok((client, identity))
    };
    let (first, first_identity) = prepare(0)?;
    let (second, second_identity) = prepare(1)?;
    Ok(SiteClients {
        clients: [first, second],
        identities: [first_identity, second_identity],
    })
}

pub fn build_clients(
    site: &SiteConfig,
    metrics: &Arc<Metrics>,
) -> Result<[Arc<ApplianceClient>; 2], DaemonError> {
    prepare_clients(site, metrics, None).map(|c| c.clients)
}

/// A site's memory from its state file, read before anything is started with it. Clustered,
/// the memory is etcd's, read by the site loop when it comes to lead the site; until then it
/// observes with an empty one (the state directory still holds the audit log and journal).
fn open_memory(
    site: &SiteConfig,
    state_dir: &Path,
    cluster: Option<&Arc<Cluster>>,
) -> Result<(MemoryHome, crate::engine::Memory), DaemonError> {
    let store = StateStore::new(state_dir, &site.name);
    store.ensure_dir()?;
    Ok(match cluster {
        None => {
            let memory = store.load()?;
            (MemoryHome::File(store), memory)
        }
        Some(cluster) => (
            MemoryHome::Cluster {
                site: cluster.site(&site.name),
                state_dir: state_dir.to_path_buf(),
            },
            crate::engine::Memory::default(),
        ),
    })
}

fn spawn_site(
    site: SiteConfig,
    mode: Mode,
    state_dir: &Path,
    metrics: &Arc<Metrics>,
    board: &Arc<Board>,
    outlets: &Outlets,
    cluster: Option<&Arc<Cluster>>,
) -> Result<(RunningSite, oneshot::Receiver<()>), DaemonError> {
    let clients = prepare_clients(&site, metrics, None)?;
    let (store, memory) = open_memory(&site, state_dir, cluster)?;
    Ok(spawn_prepared(
        site, mode, metrics, board, clients, store, memory, outlets,
    ))
}

/// The decision journal's writer and the notification hooks the site loops share. The
/// writer thread ends when the last site loop is gone; hooks change only on a restart.
pub fn outlets(config: &Config, metrics: &Arc<Metrics>) -> Result<Outlets, DaemonError> {
    let notifier = crate::notify::Notifier::start(&config.notify, metrics.clone())
        .map_err(DaemonError::Hooks)?;
    let gate = match &config.pre_failover {
        None => None,
        Some(hook) => Some(Arc::new(
            crate::notify::Gate::new(hook, metrics.clone()).map_err(DaemonError::Hooks)?,
        )),
    };
    let counted = metrics.clone();
    let observer: crate::journal::writer::FaultObserver = Arc::new(move |site, error| {
        if error.is_some() {
            counted.count_journal_write_error(site);
        }
    });
    let (journal, writer) = crate::journal::Journal::start(
        &config.state_dir,
        crate::journal::Retention {
            file_bytes: config.journal.file_bytes,
            max_files: config.journal.max_files,
        },
        observer,
    );
    Ok(Outlets {
        journal,
        notifier,
        gate,
        writer: Arc::new(std::sync::Mutex::new(writer)),
    })
}

/// Starts a site whose clients and memory are ready; cannot fail.
#[allow(clippy::too_many_arguments)]
fn spawn_prepared(
    site: SiteConfig,
    mode: Mode,
    metrics: &Arc<Metrics>,
    board: &Arc<Board>,
    clients: SiteClients,
    store: MemoryHome,
    memory: crate::engine::Memory,
    outlets: &Outlets,
) -> (RunningSite, oneshot::Receiver<()>) {
    if let Some(until) = memory.cooldown_until {
        tracing::info!(site = %site.name, "remembered: cooldown until {until}");
    }
    let (ready_tx, ready_rx) = oneshot::channel();
    let (commands_tx, commands_rx) = mpsc::channel(16);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let runner = SiteLoop::new(
        site.clone(),
        mode,
        clients.clients(),
        memory,
        store,
        metrics.clone(),
        board.clone(),
        ready_tx,
        outlets.clone(),
    );
    let task = tokio::spawn(runner.run(commands_rx, shutdown_rx));
    (
        RunningSite {
            config: site,
            clients,
            commands: commands_tx,
            shutdown: shutdown_tx,
            task,
        },
        ready_rx,
    )
}
