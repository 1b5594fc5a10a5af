//! One site's loop: poll both appliances, step the engine, carry out its actions, publish.
//!
//! Every request is bounded by the site's request timeout and the two appliances are polled
//! concurrently, so a hanging appliance costs one timeout per cycle and never blocks the
//! exporter, another site or shutdown. Failover calls run in their own task (the actuator)
//! and come back as an input; the engine allows one at a time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::clock;
use super::store::{MemoryHome, SaveFailure};
use crate::api::model::{ApiInfo, FailoverRole, Health, Probe};
use crate::api::{ApiError, ApplianceClient, Endpoint, ErrorKind};
use crate::cluster::Leadership;
use crate::cluster::vote::{self, ApplianceVantage, Seen, Vantage, Verdict};
use crate::config::SiteConfig;
use crate::control::protocol::OperatorAnswer;
use crate::engine::{
    self, Action, ApplianceReport, CallResult, Engine, Input, Mode, PollReport, PreflightReport,
};
use crate::exporter::metrics::{ApplianceInfoLabels, ApplianceSample, Metrics, SiteSample};
use crate::exporter::status::{
    AlertStatus, ApiErrorStatus, ApplianceStatus, Board, DecisionStatus, PauseStatus,
    SiteClusterStatus, SiteStatus, VantageStatus,
};
use crate::journal::{self, ActionRecord, Journal};

/// How often `/info` is asked again (product, permissions).
const INFO_INTERVAL: Duration = Duration::from_secs(3600);

/// Messages to a running site loop.
pub enum SiteCommand {
    /// A reloaded configuration for this site.
    Reconfigure {
        site: Box<SiteConfig>,
        mode: Mode,
        clients: [Arc<ApplianceClient>; 2],
    },
    /// An operator command; the engine's answer (a preflight report, if any) is sent back.
    /// With `[cluster]`, a site this instance does not lead hands it to the leader.
    /// The loop carries it out only if it takes the `ticket` before the sender gives up.
    /// Boxed, as in [`Asked`]: a site's command channel allocates 32 slots at once.
    Operator {
        command: Box<engine::Command>,
        reply: oneshot::Sender<OperatorAnswer>,
        ticket: Ticket,
    },
}

/// Decides, once, whether an operator command is carried out: the site loop takes it, or the
/// one who sent it gives up on it first (then the loop drops it). So a command answered
/// "timed out" can never be carried out later.
#[derive(Debug, Clone, Default)]
pub struct Ticket(Arc<AtomicU8>);

impl Ticket {
    const PENDING: u8 = 0;
    const TAKEN: u8 = 1;
    const ABANDONED: u8 = 2;

    /// The loop's side: true if the command is to be carried out.
    pub fn take(&self) -> bool {
        self.0
            .compare_exchange(
                Self::PENDING,
                Self::TAKEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The sender's side: true if the command will never be carried out; false if the loop
    /// took it already (its answer is coming).
    pub fn abandon(&self) -> bool {
        self.0
            .compare_exchange(
                Self::PENDING,
                Self::ABANDONED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// What one poll of one appliance brought back, before the loop takes it in.
type Observed = (
    Option<Result<Probe, ApiError>>,
    Option<Result<Health, ApiError>>,
    Option<Result<Vec<crate::api::model::ApplianceRecord>, ApiError>>,
    Option<Result<ApiInfo, ApiError>>,
    Option<Result<crate::api::model::ClientCounts, ApiError>>,
);

/// A failover call's answer, as the actuator hands it back: (call id, result).
type CallAnswer = (u64, CallResult);

/// Test hook: where a site loop stops dead (until killed), so that the integration tests can
/// `kill -9` the daemon at an exact point of a failover. Never set in production.
pub const HOLD_ENV: &str = "BT_WATCHDOG_TEST_HOLD";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestHold {
    /// After the intent is on disk, before the call is sent.
    IntentWritten,
    /// After the appliance answered the call, before the engine hears of it.
    CallAnswered,
}

/// Where a site loop's records and events go besides the engine: the decision journal (and
/// the notification hooks).
#[derive(Clone, Debug)]
pub struct Outlets {
    pub journal: Journal,
    pub notifier: crate::notify::Notifier,
    /// The pre-failover hook, when one is configured.
    pub gate: Option<Arc<crate::notify::Gate>>,
    /// The journal's writer thread, joined on shutdown so that its last lines are written.
    pub writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Outlets {
    /// Once every site loop is gone: lets the journal writer write what is queued and end
    /// (bounded, so that a hung disk cannot hold up the stop).
    pub async fn close(self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(self.journal);
        if let Some(writer) = writer {
            let joined = tokio::task::spawn_blocking(move || writer.join());
            if tokio::time::timeout(Duration::from_secs(5), joined)
                .await
                .is_err()
            {
                tracing::warn!("the decision journal's writer did not finish within 5s");
            }
        }
    }
}

/// The leader's answer to a command routed from here, and where it goes.
type RoutedBack = (OperatorAnswer, oneshot::Sender<OperatorAnswer>);

/// A manual failover whose pre-failover hook has answered, back to the loop. The command is
/// boxed: tokio allocates a channel's slots 32 at a time, so every site held 32 commands'
/// worth of memory for a channel that is nearly always empty.
type Asked = (
    Box<engine::Command>,
    oneshot::Sender<OperatorAnswer>,
    Ticket,
);

impl TestHold {
    fn from_env() -> Option<TestHold> {
        match std::env::var(HOLD_ENV).ok()?.as_str() {
            "intent-written" => Some(TestHold::IntentWritten),
            "call-answered" => Some(TestHold::CallAnswered),
            _ => None,
        }
    }

    /// Says where it stopped (the test waits for this line) and never returns.
    async fn stop_here(self, site: &str) {
        let point = match self {
            TestHold::IntentWritten => "intent-written",
            TestHold::CallAnswered => "call-answered",
        };
        tracing::warn!(site = %site, "test hold {point}: stopping here until killed");
        std::future::pending::<()>().await;
    }
}

/// The state file cannot be written: how many writes failed in a row, and the last error.
#[derive(Debug, Clone)]
struct StoreFault {
    error: String,
    failures: u64,
}

pub struct SiteLoop {
    site: SiteConfig,
    mode: Mode,
    clients: [Arc<ApplianceClient>; 2],
    engine: Engine,
    store: MemoryHome,
    /// Whether this instance may act for the site: always alone; with `[cluster]`, while it
    /// leads the site. A site it does not lead runs its engine in `observe` mode.
    leading: bool,
    /// With `[cluster]`: the leadership term (the leader key's revision) under which the
    /// engine's memory was read from etcd.
    term: Option<i64>,
    leadership: Leadership,
    /// With `[cluster]`: this instance's view of the appliances, as last published.
    vantage: Vantage,
    /// The view as last published, and the lease it was published under (a view goes with its
    /// lease: under a new one it is published again, changed or not).
    published: Option<(Vantage, i64)>,
    /// When this instance last observed each appliance (its view is withdrawn once that is
    /// older than `failover_after`).
    observed_at: [Option<Instant>; 2],
    verdicts: [Option<Verdict>; 2],
    /// With `[cluster]`: operator commands other instances route to this one as the leader.
    routed: Option<mpsc::Receiver<crate::cluster::Routed>>,
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    results: (mpsc::Sender<CallAnswer>, mpsc::Receiver<CallAnswer>),
    calls_in_flight: usize,
    next_health: Instant,
    urgent: bool,
    /// Which appliance's `/appliance` list a routine cycle reads (they alternate: each
    /// lists both appliances, so one per cycle is enough while nothing looks wrong).
    topology_turn: usize,
    info: [Option<ApiInfo>; 2],
    next_info: Instant,
    topology: [Option<serde_json::Value>; 2],
    /// Each endpoint's current error (removed when it answers again): logged when its kind
    /// changes, and shown in `/status` until then.
    logged_errors: BTreeMap<(usize, Endpoint), (ErrorKind, String)>,
    last_poll: Option<SystemTime>,
    ready: Option<oneshot::Sender<()>>,
    preflight: Option<PreflightReport>,
    store_fault: Option<StoreFault>,
    /// Faults that are not the appliance's own, per appliance and endpoint, with their text.
    faults: BTreeMap<(usize, Endpoint), String>,
    hold: Option<TestHold>,
    command_done: Option<String>,
    /// The poll in flight: its requests run in their own task, so that operator commands,
    /// call results and a stop are taken up while it waits on the appliances.
    polling: Option<JoinHandle<[Observed; 2]>>,
    /// Old names of renamed appliances whose series go once no call of theirs is in flight.
    renamed_away: Vec<String>,
    /// Where every input and decision is recorded.
    journal: Journal,
    /// Journal lines that could not be queued since the last one that could.
    journal_lost: u64,
    notifier: crate::notify::Notifier,
    gate: Option<Arc<crate::notify::Gate>>,
    /// Manual failovers whose hook answer is in, back from the task that asked.
    asked: (mpsc::Sender<Asked>, mpsc::Receiver<Asked>),
    /// With `[cluster]`: the leader's answers to commands routed from here, to be handed on.
    routed_back: (mpsc::Sender<RoutedBack>, mpsc::Receiver<RoutedBack>),
}

impl SiteLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        site: SiteConfig,
        mode: Mode,
        clients: [Arc<ApplianceClient>; 2],
        memory: engine::Memory,
        store: MemoryHome,
        metrics: Arc<Metrics>,
        board: Arc<Board>,
        ready: oneshot::Sender<()>,
        outlets: Outlets,
    ) -> Self {
        // Clustered, every site starts as a follower: it acts once it leads, with the memory
        // etcd holds then.
        let leading = store.cluster().is_none();
        let routed = store.cluster().map(|c| c.requests());
        let config = engine_config(&site, if leading { mode } else { Mode::Observe });
        let mut journal_lost = 0;
        let start = journal::Record::new(
            &site.name,
            clock::now(),
            journal::Body::Start {
                config: config.clone(),
                memory: memory.clone(),
            },
        );
        if !outlets.journal.write(start) {
            journal_lost += 1;
        }
        let engine = Engine::new(config, memory);
        let names = [
            site.appliances[0].name.clone(),
            site.appliances[1].name.clone(),
        ];
        metrics.register_site(&site.name, &names);
        let vantage = Vantage {
            appliances: names
                .iter()
                .map(|name| ApplianceVantage {
                    name: name.clone(),
                    failing: false,
                    since: None,
                    streak: 0,
                })
                .collect(),
        };
        let now = Instant::now();
        SiteLoop {
            site,
            mode,
            clients,
            engine,
            store,
            leading,
            term: None,
            leadership: if leading {
                Leadership::Leader
            } else {
                Leadership::Lost {
                    reason: "not in touch with etcd yet".to_string(),
                }
            },
            vantage,
            published: None,
            observed_at: [None, None],
            verdicts: [None, None],
            routed,
            metrics,
            board,
            results: mpsc::channel(4),
            calls_in_flight: 0,
            next_health: now,
            urgent: false,
            topology_turn: 0,
            info: [None, None],
            next_info: now,
            topology: [None, None],
            logged_errors: BTreeMap::new(),
            last_poll: None,
            ready: Some(ready),
            preflight: None,
            store_fault: None,
            faults: BTreeMap::new(),
            hold: TestHold::from_env(),
            journal: outlets.journal,
            journal_lost,
            notifier: outlets.notifier,
            gate: outlets.gate,
            asked: mpsc::channel(4),
            routed_back: mpsc::channel(4),
            command_done: None,
            polling: None,
            renamed_away: Vec::new(),
        }
    }

    /// Queues a journal line without waiting; a line that cannot be queued is counted, and
    /// the next one that can be is preceded by a `gap` saying how many were lost.
    fn record(&mut self, now: SystemTime, body: journal::Body) {
        let site = self.site.name.clone();
        if self.journal_lost > 0
            && self.journal.write(journal::Record::new(
                &site,
                now,
                journal::Body::Gap {
                    lost: self.journal_lost,
                },
            ))
        {
            self.journal_lost = 0;
        }
        if !self.journal.write(journal::Record::new(&site, now, body)) {
            self.journal_lost += 1;
            self.metrics.count_journal_write_error(&site);
            self.journal.note_lost(&site, self.journal_lost);
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<SiteCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Sites start their polls spread over one interval instead of all at once: with many
        // sites, synchronized polls meant thousands of requests in flight together (memory
        // peaks of tens of MiB, bursts of CPU) where staggered ones overlap by a handful.
        let mut next_poll = Instant::now() + stagger(&self.site.name, self.site.poll_interval);
        let allowed_gap = self.site.poll_interval * 3 + self.site.request_timeout * 2;
        self.board
            .heartbeat(&self.site.name, allowed_gap.max(Duration::from_secs(30)));
        self.publish(clock::now());
        let mut last_poll_started = Instant::now();
        loop {
            let wakeup = self.engine_wakeup();
            tokio::select! {
                // SIGTERM (through `shutdown`) first: a stop must not wait for a poll.
                biased;
                _ = shutdown.changed() => break,
                Some(command) = commands.recv() => self.command(command).await,
                Some((command, reply, ticket)) = self.asked.1.recv() => self.operator_command(*command, reply, ticket).await,
                Some(routed) = next_routed(&mut self.routed) => self.answer_routed(routed).await,
                Some((answer, reply)) = self.routed_back.1.recv() => {
                    self.publish(clock::now());
                    let _ = reply.send(answer);
                }
                Some((call_id, result)) = self.results.1.recv() => {
                    self.calls_in_flight = self.calls_in_flight.saturating_sub(1);
                    if !self.handed_over(&result) {
                        self.step(Input::CallResult { call_id, result }).await;
                    }
                    self.forget_renamed();
                }
                observed = poll_in_flight(&mut self.polling) => {
                    self.polling = None;
                    // A poll cancelled by a reload brings nothing back; the next one follows.
                    if let Ok(observed) = observed {
                        let report = self.absorb_poll(observed);
                        self.last_poll = Some(clock::now());
                        next_poll = last_poll_started + self.site.poll_interval;
                        let report = self.vote(report).await;
                        self.follow_leadership().await;
                        self.step(Input::Poll(report)).await;
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(());
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_poll), if self.polling.is_none() => {
                    last_poll_started = Instant::now();
                    self.polling = Some(tokio::spawn(self.start_poll()));
                    next_poll = last_poll_started + self.site.poll_interval;
                }
                _ = tokio::time::sleep_until(wakeup) => {
                    // A timer may make a call (a retry): only on the memory of this term.
                    self.follow_leadership().await;
                    self.step(Input::Tick).await
                }
            }
            // The engine asked for corroboration (from a poll, a call's answer or a tick): poll
            // half an interval after the last poll started, or now if that is already past.
            if std::mem::take(&mut self.urgent) {
                let soon = (last_poll_started + self.site.poll_interval / 2).max(Instant::now());
                next_poll = next_poll.min(soon);
            }
            self.board
                .heartbeat(&self.site.name, allowed_gap.max(Duration::from_secs(30)));
        }
        if let Some(poll) = self.polling.take() {
            poll.abort();
        }
        self.finish_in_flight().await;
    }

    /// The end of a manual failover goes to the audit log next to its start.
    fn audit_manual_outcome(&self, summary: &engine::FailoverSummary) {
        let record = crate::control::audit::AuditRecord {
            at: crate::api::time::UtcTime::from_system_time(SystemTime::now()),
            who: "bt-watchdog".to_string(),
            site: self.site.name.clone(),
            action: "failover finished".to_string(),
            details: serde_json::to_value(summary).unwrap_or_default(),
            outcome: summary.outcome.as_str().to_string(),
        };
        if let Err(error) = crate::control::audit::append(self.store.dir(), &record) {
            tracing::error!(site = %self.site.name, "cannot write the audit log: {error}");
        }
    }

    /// When the engine wants a `Tick`, on the runtime's clock (far away when it wants none).
    fn engine_wakeup(&self) -> Instant {
        const NEVER: Duration = Duration::from_secs(24 * 3600);
        let wait = match self.engine.next_wakeup() {
            Some(at) => at
                .duration_since(clock::now())
                .unwrap_or(Duration::ZERO)
                .min(NEVER),
            None => NEVER,
        };
        Instant::now() + wait
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// One poll and one engine step (for `failover --standalone`, which has no loop).
    pub async fn poll_and_step(&mut self) {
        let report = self.poll().await;
        self.last_poll = Some(clock::now());
        self.step(Input::Poll(report)).await;
    }

    /// An operator command; returns the preflight report when there is one.
    pub async fn operator(&mut self, mut command: engine::Command) -> Option<PreflightReport> {
        // No loop runs meanwhile (standalone): the hook is waited for here.
        if let (engine::Command::Failover(request), Some(gate)) = (&mut command, self.gate.clone())
        {
            let event = self.manual_hook_event(request);
            request.hook = Some(hook_answer(gate.ask(&event).await));
        }
        self.preflight = None;
        self.step(Input::Command(command)).await;
        self.preflight.take()
    }

    /// Waits until what was journalled so far is on disk (a standalone process is about to
    /// end); a journal that cannot be written is reported, not an error of the command.
    pub async fn flush_journal(&self) {
        if let Err(error) = self.journal.sync(&self.site.name).await {
            tracing::warn!(site = %self.site.name, "the decision journal could not be written: {error}");
        }
    }

    /// Polls and takes in call results until no failover is in progress, or `deadline`.
    pub async fn settle(&mut self, deadline: Instant) -> bool {
        let mut next_poll = Instant::now();
        loop {
            if self.engine.episode().is_none() && self.calls_in_flight == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                Some((call_id, result)) = self.results.1.recv() => {
                    self.calls_in_flight = self.calls_in_flight.saturating_sub(1);
                    self.step(Input::CallResult { call_id, result }).await;
                }
                _ = tokio::time::sleep_until(next_poll) => {
                    self.poll_and_step().await;
                    next_poll = Instant::now() + self.site.poll_interval.min(Duration::from_secs(1));
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// On shutdown, a failover call already sent is waited for and its outcome recorded, so
    /// that the next start knows what happened.
    async fn finish_in_flight(&mut self) {
        if self.calls_in_flight == 0 {
            return;
        }
        let limit = self.site.request_timeout + Duration::from_secs(5);
        tracing::info!(site = %self.site.name, "stopping: waiting up to {} for the failover call in flight", crate::engine::say_duration(limit));
        match tokio::time::timeout(limit, self.results.1.recv()).await {
            Ok(Some((call_id, result))) => {
                self.calls_in_flight -= 1;
                self.step(Input::CallResult { call_id, result }).await;
            }
            _ => {
                tracing::error!(site = %self.site.name, "stopping with a failover call whose outcome is unknown; check the appliances' roles")
            }
        }
    }

    async fn command(&mut self, command: SiteCommand) {
        match command {
            SiteCommand::Reconfigure {
                site,
                mode,
                clients,
            } => {
                tracing::info!(site = %site.name, "configuration reloaded");
                // A poll in flight belongs to the old configuration (names, clients): it is
                // cancelled and waited for, so nothing it reports lands after the change.
                if let Some(poll) = self.polling.take() {
                    poll.abort();
                    let _ = poll.await;
                    self.urgent = true;
                }
                let old_names = engine_config(&self.site, self.mode).names;
                let config = engine_config(&site, if self.leading { mode } else { Mode::Observe });
                self.record(
                    clock::now(),
                    journal::Body::Reconfigure {
                        config: config.clone(),
                    },
                );
                self.engine.reconfigure(config);
                let mut any_new = false;
                for (slot, client) in clients.into_iter().enumerate() {
                    // A kept client keeps its token, rate state and flavour; what was learnt
                    // through a replaced one is learnt afresh.
                    if !Arc::ptr_eq(&self.clients[slot], &client) {
                        any_new = true;
                        self.info[slot] = None;
                        self.topology[slot] = None;
                        self.logged_errors.retain(|(s, _), _| *s != slot);
                        self.clients[slot] = client;
                    }
                }
                let names = engine_config(&site, mode).names;
                if names != old_names {
                    self.renamed_away
                        .extend(old_names.into_iter().filter(|n| !names.contains(n)));
                    self.metrics.register_site(&site.name, &names);
                }
                self.site = *site;
                self.mode = mode;
                if any_new {
                    self.next_health = Instant::now();
                    self.next_info = Instant::now();
                }
                self.forget_renamed();
                self.publish(clock::now());
            }
            SiteCommand::Operator {
                mut command,
                reply,
                ticket,
            } => {
                self.follow_leadership().await;
                // With `[cluster]`, only the leader's memory counts and only it may call: a
                // command given to another instance is carried out by the leader.
                if let Some(cluster) = self.store.cluster().filter(|_| !self.leading).cloned() {
                    if !ticket.take() {
                        tracing::info!(site = %self.site.name, "an operator command came after its sender gave up on it: not routed");
                        return;
                    }
                    let names = [
                        self.site.appliances[0].name.clone(),
                        self.site.appliances[1].name.clone(),
                    ];
                    // The answer comes back through the loop, which publishes the site's
                    // memory as the leader left it before answering: the leader's reply follows
                    // its write of the memory in etcd's order, so the copy here holds it, and
                    // whoever follows the command here (a manual failover) finds it at once.
                    let back = self.routed_back.0.clone();
                    tokio::spawn(async move {
                        let answer = cluster
                            .route(&command, &names)
                            .await
                            .unwrap_or_else(OperatorAnswer::Refused);
                        if let Err(returned) = back.send((answer, reply)).await {
                            let (answer, reply) = returned.0;
                            let _ = reply.send(answer);
                        }
                    });
                    return;
                }
                // A manual failover asks the pre-failover hook first, in its own task: the
                // loop goes on polling, and the command comes back with the answer.
                if let (engine::Command::Failover(request), Some(gate)) =
                    (&mut *command, self.gate.clone())
                    && request.hook.is_none()
                {
                    let event = self.manual_hook_event(request);
                    let back = self.asked.0.clone();
                    tokio::spawn(async move {
                        let answer = hook_answer(gate.ask(&event).await);
                        if let engine::Command::Failover(request) = &mut *command {
                            request.hook = Some(answer);
                        }
                        let _ = back.send((command, reply, ticket)).await;
                    });
                    return;
                }
                self.operator_command(*command, reply, ticket).await;
            }
        }
    }

    /// Carries out an operator command, if its sender has not given up on it (then never).
    async fn operator_command(
        &mut self,
        command: engine::Command,
        reply: oneshot::Sender<OperatorAnswer>,
        ticket: Ticket,
    ) {
        if !ticket.take() {
            tracing::info!(site = %self.site.name, "an operator command came after its sender gave up on it: not carried out");
            return;
        }
        self.preflight = None;
        self.command_done = None;
        self.step(Input::Command(command)).await;
        let answer = match (self.preflight.take(), self.command_done.take()) {
            (Some(report), _) => OperatorAnswer::Preflight(report),
            (None, done) => {
                let state = self.engine.state();
                OperatorAnswer::Done(format!(
                    "{}. Now {}: {}",
                    done.unwrap_or_else(|| "done".to_string()),
                    state.kind.as_str(),
                    state.reason
                ))
            }
        };
        let _ = reply.send(answer);
    }

    /// The pre-failover hook's question for a manual failover.
    fn manual_hook_event(&self, request: &engine::ManualRequest) -> crate::notify::Event {
        let target = self.name(request.target.min(1)).to_string();
        crate::notify::Event {
            kind: "pre_failover",
            site: self.site.name.clone(),
            at: crate::api::time::UtcTime::from_system_time(clock::now()),
            state: self.engine.state().kind.as_str().to_string(),
            previous_state: None,
            blocker: None,
            message: format!("manual failover to {target} by {}", request.by),
            details: serde_json::json!({
                "trigger": "manual",
                "appliance": target,
                "data_sync_first": request.data_sync_first,
                "force": request.force,
                "dry_run": !request.confirmed,
                "by": request.by,
                "impact": self.engine.impact(clock::now()),
            }),
        }
    }

    /// The pre-failover hook's question for an automatic failover's first call.
    fn auto_hook_event(&self, call: &engine::FailoverCall) -> crate::notify::Event {
        crate::notify::Event {
            kind: "pre_failover",
            site: self.site.name.clone(),
            at: crate::api::time::UtcTime::from_system_time(clock::now()),
            state: self.engine.state().kind.as_str().to_string(),
            previous_state: None,
            blocker: None,
            message: call.reason.clone(),
            details: serde_json::json!({
                "trigger": call.trigger.as_str(),
                "appliance": call.appliance_name,
                "request": call.request,
                "dry_run": false,
                "impact": self.engine.impact(clock::now()),
            }),
        }
    }

    /// A command routed here by another instance: carried out if this instance still leads
    /// the site and takes the request before its sender gives up on it (the request key is the
    /// ticket), and answered through etcd.
    async fn answer_routed(&mut self, routed: crate::cluster::Routed) {
        self.follow_leadership().await;
        let Some(cluster) = self.store.cluster().cloned() else {
            return;
        };
        if !self.leading {
            let refusal = Err(format!(
                "{} no longer leads the site; ask again",
                cluster.instance()
            ));
            cluster.answer(&routed.id, &refusal).await;
            return;
        }
        match cluster.take_request(&routed.id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(site = %self.site.name, "a command routed from another instance came after its sender gave up on it: not carried out");
                return;
            }
            Err(error) => {
                tracing::warn!(site = %self.site.name, "a command routed from another instance cannot be taken ({error}): not carried out");
                return;
            }
        }
        let names = [self.name(0).to_string(), self.name(1).to_string()];
        let command = match routed.in_terms_of(&names) {
            Ok(command) => command,
            Err(refusal) => {
                tracing::warn!(site = %self.site.name, "a command routed from another instance: {refusal}");
                cluster.answer(&routed.id, &Err(refusal)).await;
                return;
            }
        };
        tracing::info!(site = %self.site.name, "carrying out a command routed from another instance: {command:?}");
        let (reply, answer) = oneshot::channel();
        let ticket = Ticket::default();
        self.command(SiteCommand::Operator {
            command: Box::new(command),
            reply,
            ticket,
        })
        .await;
        tokio::spawn(async move {
            let answer = answer
                .await
                .map_err(|_| "the leader stopped while carrying out the command: its outcome is unknown; check `bt-watchdog status`".to_string());
            cluster.answer(&routed.id, &answer).await;
        });
    }

    /// One engine step and its actions. A failover call goes out only when the `Persist`
    /// just before it (the intent) reached the disk durably; otherwise the engine is told at
    /// once that the call was not sent. While the state file cannot be written, every poll
    /// tries a write again, so that the site recovers by itself.
    async fn step(&mut self, input: Input) {
        let now = clock::now();
        let probe = matches!(input, Input::Poll(_)) && self.store_fault.is_some();
        let mut persisted = false;
        let mut not_sent: Option<String> = None;
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let before = self.before();
            let actions = self.engine.step(now, input.clone());
            self.notify(now, &before, &actions);
            // Recorded before anything is carried out: the journal says what was decided even
            // when carrying it out fails.
            let step = journal::Step {
                input: Some(input),
                repeat: false,
                actions: actions.iter().map(ActionRecord::from_action).collect(),
                state: self.engine.state().kind.as_str().to_string(),
            };
            self.record(now, journal::Body::Step(step));
            // The engine hands over its intent right before each call; anything else in
            // between (or no intent at all) means no call.
            let mut intent: Result<Option<i64>, String> =
                Err("no intent was written before the call".to_string());
            for action in actions {
                match action {
                    Action::Persist(memory) => {
                        persisted = true;
                        intent = self.persist(memory).await;
                    }
                    Action::CallFailover(call) => {
                        match std::mem::replace(
                            &mut intent,
                            Err("no intent was written before the call".to_string()),
                        ) {
                            Ok(revision) => {
                                // The journal is the intent's witness: what led to the call is
                                // on disk before it goes out (bounded; the state file, written
                                // above, is what guards against a second call).
                                if let Err(error) = self.journal.sync(&self.site.name).await {
                                    tracing::error!(site = %self.site.name, "the decision journal could not be synced before the call: {error}; calling anyway (the intent is on disk)");
                                    self.metrics.count_journal_write_error(&self.site.name);
                                }
                                self.send(call, revision).await
                            }
                            Err(reason) => {
                                tracing::error!(site = %self.site.name, appliance = %call.appliance_name,
                                    "not calling POST /failover-role: the intent could not be written durably first ({reason})");
                                not_sent = Some(reason.clone());
                                inputs.push_back(Input::CallResult {
                                    call_id: call.call_id,
                                    result: CallResult::NotSent { reason },
                                });
                            }
                        }
                    }
                    other => self.act(other).await,
                }
            }
        }
        if probe && !persisted {
            let memory = self.engine.memory().clone();
            let _ = self.persist(memory).await;
        }
        // A confirmed manual failover whose call could not be sent is answered as not carried
        // out, with the reason, rather than as started.
        if let (Some(reason), Some(report)) = (not_sent, self.preflight.as_mut())
            && report.started
        {
            // Shown as a refusal with this problem: the operator asks again once it is fixed.
            report.started = false;
            report.passed = false;
            report.problems.push(match self.store.cluster() {
                None => format!(
                    "not carried out: the intent could not be written to the state directory ({reason}); nothing was sent to the appliances. Free space or make {} writable, then ask again",
                    self.store.dir().display()
                ),
                Some(_) => format!(
                    "not carried out: the intent could not be written to etcd ({reason}); nothing was sent to the appliances. Only the instance that leads the site acts, and only while etcd answers"
                ),
            });
        }
        self.publish(now);
    }

    fn before(&self) -> crate::notify::Before {
        let state = self.engine.state();
        crate::notify::Before {
            state: state.kind,
            blocker: state.blocker,
            paused: self.engine.memory().pause.is_some(),
        }
    }

    /// Hands what a step changed to the notification hooks (never waits).
    fn notify(&self, now: SystemTime, before: &crate::notify::Before, actions: &[Action]) {
        let after = self.before();
        let events = crate::notify::events(
            &self.site.name,
            crate::api::time::UtcTime::from_system_time(now),
            before,
            &after,
            &self.engine.state().reason,
            actions,
            &serde_json::to_value(self.engine.impact(now)).unwrap_or_default(),
        );
        for event in events {
            self.notifier.send(event);
        }
    }

    /// Writes the memory durably (to its home: the state file, or etcd under this instance's
    /// leadership); the etcd revision it was written at, or the error in words.
    async fn persist(&mut self, memory: engine::Memory) -> Result<Option<i64>, String> {
        let saved = self.store.save(&memory).await;
        let site = &self.site.name;
        match saved {
            Ok(revision) => {
                if let Some(fault) = self.store_fault.take() {
                    tracing::info!(site = %site, "the memory can be written again (after {} failed writes); failover calls are possible again", fault.failures);
                }
                Ok(revision)
            }
            // A follower keeps its memory to itself: only the leader writes, and acts.
            Err(SaveFailure::NotLeader(reason)) => Err(reason),
            Err(SaveFailure::Failed(reason)) if !self.leading => Err(reason),
            Err(SaveFailure::Failed(error)) => {
                self.metrics.count_state_write_error(site);
                match &mut self.store_fault {
                    Some(fault) => {
                        fault.failures += 1;
                        if fault.error != error {
                            tracing::error!(site = %site, "cannot save the watchdog's memory: {error}");
                        }
                        fault.error = error.clone();
                    }
                    None => {
                        tracing::error!(site = %site, "cannot save the watchdog's memory: {error}; no failover call (automatic or manual) is made until it can be written, and writing is tried again at every poll");
                        self.store_fault = Some(StoreFault {
                            error: error.clone(),
                            failures: 1,
                        });
                    }
                }
                Err(error)
            }
        }
    }

    /// With `[cluster]`: takes up or gives up the site as etcd says. A new leader builds its
    /// engine from the memory etcd holds, so an unfinished failover of a former leader is
    /// resumed (verified, its call never sent again) rather than decided afresh.
    async fn follow_leadership(&mut self) {
        let Some(cluster) = self.store.cluster() else {
            return;
        };
        let leadership = cluster.leadership();
        let term = cluster.term();
        let site = self.site.name.clone();
        // Leading again under a new term (this instance lost the site and won it back between
        // two looks, frozen or cut off from etcd for longer than its lease): another instance
        // may have led meanwhile and changed the memory (a pause, a cooldown, a failover): the
        // site is taken up afresh, its memory read again.
        if leadership == Leadership::Leader && self.leading && term != self.term {
            tracing::warn!(site = %site, "this instance leads the site again, under a new term: another instance may have led it meanwhile; reading its memory again");
            self.leading = false;
            self.engine
                .reconfigure(engine_config(&self.site, Mode::Observe));
        }
        match (&leadership, self.leading) {
            // A call of this instance's engine is still out (sent while it led): its answer
            // belongs to that engine, so the site is taken up again once it is back.
            (Leadership::Leader, false) if self.calls_in_flight > 0 => {
                tracing::info!(site = %site, "this instance leads the site again; taking it up once the failover call in flight has answered");
            }
            (Leadership::Leader, false) => match self.store.load().await {
                Ok(memory) => {
                    let resumes = memory.episode.is_some();
                    self.engine = Engine::new(engine_config(&self.site, self.mode), memory);
                    self.leading = true;
                    self.term = term;
                    self.store_fault = None;
                    tracing::info!(site = %site, "this instance leads the site now (mode {}); memory read from {}{}",
                        self.mode.as_str(), self.store.place(),
                        if resumes { "; it holds an unfinished failover: resuming it (verify, never send its call again)" } else { "" });
                }
                Err(error) => {
                    tracing::error!(site = %site, "this instance leads the site but cannot read its memory ({error}); not acting until it can");
                }
            },
            (Leadership::Leader, true) => {}
            (other, true) => {
                self.leading = false;
                self.engine
                    .reconfigure(engine_config(&self.site, Mode::Observe));
                tracing::warn!(site = %site, "this instance no longer leads the site ({}); observing only", describe(other));
                if self.calls_in_flight == 0 {
                    self.give_up_episode();
                }
            }
            (other, false) => {
                if *other != self.leadership {
                    tracing::info!(site = %site, "{}", describe(other));
                }
            }
        }
        self.leadership = leadership;
    }

    /// With `[cluster]`: the answer to a call this instance made while it led, arriving after
    /// it stopped leading. The episode is the leader's now (it resumes the intent from etcd and
    /// verifies the roles); stepped here, the answer would tell a story of this instance's own
    /// ("not carried out" for a call the successor made, a failover counted by two instances),
    /// so it is logged and the engine drops the episode instead.
    fn handed_over(&mut self, result: &CallResult) -> bool {
        let Some(cluster) = self.store.cluster() else {
            return false;
        };
        // The engine that made the call is still the one acting for the site.
        if self.leading && cluster.leadership() == Leadership::Leader && cluster.term() == self.term
        {
            return false;
        }
        if self.leading {
            // Not noticed by the loop yet (the answer came first): the site is taken up again,
            // its memory read from etcd, if this instance does lead.
            self.leading = false;
            self.engine
                .reconfigure(engine_config(&self.site, Mode::Observe));
        }
        tracing::warn!(site = %self.site.name, "the answer to this instance's failover call ({}) came after it stopped leading the site: the failover is the leader's now (it resumes the intent and verifies the roles)",
            describe_result(result));
        if self.calls_in_flight == 0 {
            self.give_up_episode();
        }
        true
    }

    /// A follower owns no episode: its engine goes on observing from the site's memory as etcd
    /// holds it (or its own, without the episode, when etcd's is not known), so that it neither
    /// verifies, retries nor records the end of a failover that another instance carries on.
    fn give_up_episode(&mut self) {
        if self.engine.episode().is_none() && self.engine.memory().episode.is_none() {
            return;
        }
        let mut memory = self
            .store
            .shared()
            .unwrap_or_else(|| self.engine.memory().clone());
        memory.episode = None;
        self.engine = Engine::new(engine_config(&self.site, Mode::Observe), memory);
        tracing::info!(site = %self.site.name, "this instance's unfinished failover is the leader's now; observing only");
    }

    /// With `[cluster]`: publishes this instance's view of the appliances, and hides from the
    /// engine a failure that not enough instances see (a poll that observed nothing never
    /// moves a failing streak). Alone, the report is the engine's as it is.
    async fn vote(&mut self, mut report: PollReport) -> PollReport {
        let Some(cluster) = self.store.cluster().cloned() else {
            return report;
        };
        let now = crate::api::time::UtcTime::from_system_time(SystemTime::now()).to_string();
        let seen = [
            vote::seen(&report.appliances[0]),
            vote::seen(&report.appliances[1]),
        ];
        let at = Instant::now();
        for (slot, seen) in seen.iter().enumerate() {
            let Some(own) = self.vantage.appliances.get_mut(slot) else {
                continue;
            };
            if *seen != Seen::Nothing {
                self.observed_at[slot] = Some(at);
            }
            let silent_for = self.observed_at[slot].map_or(Duration::ZERO, |t| at - t);
            own.take(*seen, &now, silent_for, self.site.policy.failover_after);
        }
        let current = self
            .published
            .as_ref()
            .is_some_and(|(view, lease)| *view == self.vantage && Some(*lease) == cluster.lease());
        if !current {
            match cluster.publish_view(&self.vantage).await {
                Ok(lease) => self.published = Some((self.vantage.clone(), lease)),
                Err(error) => {
                    self.published = None;
                    tracing::debug!(site = %self.site.name, "cannot publish this instance's view: {error}");
                }
            }
        }
        let (views, members) = cluster.views();
        for (slot, seen) in seen.iter().enumerate() {
            let Some(own) = self.vantage.appliances.get(slot) else {
                continue;
            };
            let others = vote::others_on(&views, &own.name);
            let verdict = vote::judge(
                own.failing,
                own.streak,
                &others,
                members,
                self.site.confirming_views,
            );
            let before = self.verdicts[slot];
            if *seen == Seen::Failing && !verdict.confirmed {
                report.appliances[slot] = engine::ApplianceReport::default();
                if before.is_none_or(|b| b.confirmed || b.failing != verdict.failing) {
                    tracing::info!(site = %self.site.name, appliance = %self.name(slot),
                        "this instance sees the appliance failing, but only {} of {} live instances do ({} needed): not counted as a failure",
                        verdict.failing, verdict.live, verdict.required);
                }
            }
            if verdict.partitioned && !before.is_some_and(|b| b.partitioned) {
                tracing::warn!(site = %self.site.name, appliance = %self.name(slot),
                    "partitioned: this instance cannot reach the appliance while other instances can; the fault is most likely on this instance's network path");
            } else if !verdict.partitioned && before.is_some_and(|b| b.partitioned) {
                tracing::info!(site = %self.site.name, appliance = %self.name(slot), "no longer partitioned from the appliance");
            }
            self.verdicts[slot] = Some(verdict);
        }
        report
    }

    /// Hands a call whose intent is durable to the actuator; `revision`: the etcd revision the
    /// intent was written at, when clustered.
    async fn send(&mut self, call: engine::FailoverCall, revision: Option<i64>) {
        let site = self.site.name.clone();
        if self.hold == Some(TestHold::IntentWritten) {
            TestHold::IntentWritten.stop_here(&site).await;
        }
        let client = self.clients[call.appliance].clone();
        let results = self.results.0.clone();
        let metrics = self.metrics.clone();
        let hold = self.hold;
        let gate = self.gate.clone().filter(|_| call.vetoable);
        let question = gate.as_ref().map(|_| self.auto_hook_event(&call));
        // With `[cluster]`, the lease that guarded the intent's write is checked again right
        // before the call leaves: between the two lie the journal's sync and the pre-failover
        // hook (up to its timeout), and a process stopped or cut off from etcd meanwhile may
        // have lost the site to an instance that resumed this very intent and sent its call.
        let fence = self.store.cluster().cloned();
        let r = call.request;
        tracing::info!(site = %site, appliance = %call.appliance_name, trigger = call.trigger.as_str(),
            "calling POST /failover-role {{role: {}, data_sync_first: {}, force: {}}} on {}{}", r.role, r.data_sync_first, r.force, call.appliance_name,
            revision.map(|r| format!(" (intent at etcd revision {r})")).unwrap_or_default());
        self.calls_in_flight += 1;
        tokio::spawn(async move {
            // The pre-failover hook first, bounded by its timeout; a veto sends nothing.
            if let (Some(gate), Some(question)) = (gate, question) {
                match gate.ask(&question).await {
                    crate::notify::gate::Verdict::Proceed(detail) => {
                        tracing::info!(site = %site, "{detail}");
                    }
                    crate::notify::gate::Verdict::Veto(reason) => {
                        tracing::warn!(site = %site, "the pre-failover hook vetoed the failover: {reason}");
                        let _ = results
                            .send((call.call_id, CallResult::Vetoed { reason }))
                            .await;
                        return;
                    }
                }
            }
            if let Some(cluster) = &fence
                && let Err(reason) = cluster.may_call()
            {
                tracing::error!(site = %site, appliance = %call.appliance_name,
                    "not calling POST /failover-role after all: {reason}; the intent stays in etcd for the instance that leads the site, which resumes it");
                let _ = results
                    .send((call.call_id, CallResult::NotSent { reason }))
                    .await;
                return;
            }
            let result = match client.set_failover_role(call.request).await {
                Ok(accepted) => CallResult::Accepted(accepted),
                Err(failed) => {
                    let error = failed.error;
                    if let Some(fault) = error.local {
                        metrics.count_local_error(&site, &call.appliance_name, fault);
                    }
                    // A call refused on our side before it left (a token could not be had) is
                    // not a failover carried out badly: the appliance never saw it.
                    if failed.sent {
                        CallResult::Failed {
                            kind: error.kind,
                            message: error.to_string(),
                        }
                    } else {
                        CallResult::NeverLeft {
                            kind: error.kind,
                            message: error.to_string(),
                        }
                    }
                }
            };
            if hold == Some(TestHold::CallAnswered) {
                TestHold::CallAnswered.stop_here(&site).await;
            }
            let _ = results.send((call.call_id, result)).await;
        });
    }

    async fn act(&mut self, action: Action) {
        let site = self.site.name.clone();
        match action {
            // Carried out by `step`, which checks the intent before each call.
            Action::CallFailover(_) | Action::Persist(_) => {}
            Action::PollSoon => self.urgent = true,
            Action::Journal(decision) if decision.warning => {
                tracing::warn!(site = %site, state = decision.state.as_str(), "{}", decision.message);
            }
            Action::Journal(decision) => {
                tracing::info!(site = %site, state = decision.state.as_str(), "{}", decision.message);
            }
            Action::Alert {
                alert,
                raised,
                reason,
            } => {
                if raised {
                    tracing::warn!(site = %site, alert = alert.as_str(), "alert raised: {reason}");
                } else {
                    tracing::info!(site = %site, alert = alert.as_str(), "alert cleared");
                }
            }
            Action::FailoverFinished(summary) => {
                self.metrics
                    .count_failover(&site, summary.trigger, summary.metric_outcome());
                if summary.trigger == crate::engine::Trigger::Manual {
                    self.audit_manual_outcome(&summary);
                }
                if summary.outcome == crate::engine::Outcome::Success {
                    tracing::info!(site = %site, trigger = summary.trigger.as_str(), outcome = summary.outcome.as_str(),
                        "failover to {} finished: {}", summary.to, summary.outcome.as_str());
                } else {
                    tracing::warn!(site = %site, trigger = summary.trigger.as_str(), outcome = summary.outcome.as_str(),
                        "failover to {} finished: {}", summary.to, summary.outcome.as_str());
                }
            }
            Action::Preflight(report) => self.preflight = Some(report),
            Action::CommandDone(answer) => self.command_done = Some(answer),
        }
    }

    async fn poll(&mut self) -> PollReport {
        let observed = self.start_poll().await;
        self.absorb_poll(observed)
    }

    /// Decides what this poll asks and returns its requests, to run without the loop.
    fn start_poll(&mut self) -> impl Future<Output = [Observed; 2]> + Send + 'static {
        let now = Instant::now();
        let routine = now >= self.next_health;
        let urgent = self.urgent;
        if routine || urgent {
            self.next_health = now + self.site.health_interval;
        }
        if routine {
            self.topology_turn = 1 - self.topology_turn.min(1);
        }
        let info_due = now >= self.next_info;
        if info_due {
            self.next_info = now + INFO_INTERVAL;
        }
        // Per appliance: `/health` on the health cadence, when something looks wrong, and on
        // every poll for an appliance without the cheap `/check_health` probe (it is then the
        // only liveness signal); `/appliance` from both when something looks wrong or the
        // other's `/health` is failing, else from one per cycle.
        let plan = |slot: usize| {
            let client = &self.clients[slot];
            let health = routine || urgent || !client.probe_offered();
            let other_failing = self
                .logged_errors
                .contains_key(&(1 - slot, Endpoint::Health));
            let topology = urgent || (routine && (slot == self.topology_turn || other_failing));
            (client.probe_due(), health, topology)
        };
        let plans = [plan(0), plan(1)];
        // Who a failover would disconnect: read with the health questions (a routine request,
        // skipped when the budget is short), and at every poll while a failover is being
        // considered, so the decision carries a fresh count. A backup has no clients.
        let considering = matches!(
            self.engine.state().kind,
            engine::StateKind::PrimarySuspect
                | engine::StateKind::FailoverBlocked
                | engine::StateKind::FailingOver
        );
        let clients_due: [bool; 2] = std::array::from_fn(|slot| {
            (routine || considering)
                && self.engine.views()[slot].role() != Some(FailoverRole::Backup)
        });
        // While a failover is in progress, reads verify it: they are not held back by what
        // routine polling earned (a 429 backoff, the reserve, the share).
        let priority = if self.engine.episode().is_some() {
            crate::api::budget::Priority::Critical
        } else {
            crate::api::budget::Priority::Routine
        };
        let observe = |slot: usize| {
            let client = self.clients[slot].clone();
            let (probe, health_due, topology_due) = plans[slot];
            let clients_due = clients_due[slot];
            async move {
                let probe = async {
                    if probe {
                        Some(client.check_health().await)
                    } else {
                        None
                    }
                };
                let health = async {
                    if health_due {
                        Some(client.health_as(priority).await)
                    } else {
                        None
                    }
                };
                let topology = async {
                    if topology_due {
                        Some(client.appliances_as(priority).await)
                    } else {
                        None
                    }
                };
                let info = async {
                    if info_due {
                        Some(client.info().await)
                    } else {
                        None
                    }
                };
                let clients = async {
                    if clients_due {
                        Some(client.client_counts().await)
                    } else {
                        None
                    }
                };
                tokio::join!(probe, health, topology, info, clients)
            }
        };
        let (first, second) = (observe(0), observe(1));
        async move {
            let (first, second) = tokio::join!(first, second);
            [first, second]
        }
    }

    fn absorb_poll(&mut self, observed: [Observed; 2]) -> PollReport {
        let mut report = PollReport::default();
        for (slot, (probe, health, topology, info, clients)) in observed.into_iter().enumerate() {
            report.appliances[slot] = self.absorb(slot, probe, health, topology, info);
            if let Some(clients) = clients {
                report.appliances[slot].clients =
                    Some(self.note(slot, Endpoint::ClientCount, clients));
            }
        }
        report
    }

    /// The series of renamed appliances go once nothing of theirs can report any more.
    fn forget_renamed(&mut self) {
        if self.calls_in_flight > 0 {
            return;
        }
        for name in std::mem::take(&mut self.renamed_away) {
            self.metrics.forget_appliance(&self.site.name, &name);
        }
    }

    #[allow(clippy::type_complexity)]
    fn absorb(
        &mut self,
        slot: usize,
        probe: Option<Result<Probe, ApiError>>,
        health: Option<Result<Health, ApiError>>,
        topology: Option<Result<Vec<crate::api::model::ApplianceRecord>, ApiError>>,
        info: Option<Result<ApiInfo, ApiError>>,
    ) -> ApplianceReport {
        let mut report = ApplianceReport::default();
        if let Some(probe) = probe {
            match probe {
                Err(error) if error.kind == ErrorKind::NotFound => {
                    self.urgent = true;
                    tracing::info!(site = %self.site.name, appliance = %self.name(slot),
                        "this appliance does not serve /check_health (404); using /health for liveness, and asking /check_health again in {}",
                        humantime::format_duration(self.clients[slot].probe_recheck()));
                }
                other => report.probe = Some(self.note(slot, Endpoint::CheckHealth, other)),
            }
        }
        if let Some(health) = health {
            report.health = Some(self.note(slot, Endpoint::Health, health));
        }
        if let Some(topology) = topology {
            if let Ok(records) = &topology {
                self.topology[slot] = Some(serde_json::Value::Array(
                    records.iter().map(|r| r.raw.clone()).collect(),
                ));
            }
            report.topology = Some(self.note(slot, Endpoint::Appliance, topology));
        }
        if let Some(Ok(info)) = info {
            if self.mode == Mode::Auto
                && let Some(permission) = info.perm_command.as_ref().filter(|p| !p.can_fail_over())
            {
                tracing::error!(site = %self.site.name, appliance = %self.name(slot),
                        "the API account's Command API permission is {permission:?}, not full_access: mode auto cannot fail over; grant full access on /login > Management > API Configuration");
            }
            self.info[slot] = Some(info);
        }
        report
    }

    /// Logs an error when its kind changes (not on every poll), and turns it into its kind.
    fn note<T>(
        &mut self,
        slot: usize,
        endpoint: Endpoint,
        result: Result<T, ApiError>,
    ) -> Result<T, ErrorKind> {
        match result {
            Ok(value) => {
                self.faults.remove(&(slot, endpoint));
                if self.logged_errors.remove(&(slot, endpoint)).is_some() {
                    tracing::info!(site = %self.site.name, appliance = %self.name(slot), "{endpoint} answers again");
                }
                Ok(value)
            }
            Err(error) => {
                if let Some(fault) = error.local {
                    self.metrics
                        .count_local_error(&self.site.name, self.name(slot), fault);
                }
                // Its detail says what to do (raise LimitNOFILE, renew or trust a certificate).
                if matches!(error.kind, ErrorKind::Local | ErrorKind::Certificate) {
                    self.faults.insert((slot, endpoint), error.detail.clone());
                } else {
                    self.faults.remove(&(slot, endpoint));
                }
                let previous = self
                    .logged_errors
                    .insert((slot, endpoint), (error.kind, error.to_string()))
                    .map(|(kind, _)| kind);
                if previous != Some(error.kind) {
                    tracing::warn!(site = %self.site.name, appliance = %self.name(slot), kind = error.kind.label(), "{error}");
                } else {
                    tracing::debug!(site = %self.site.name, appliance = %self.name(slot), kind = error.kind.label(), "{error}");
                }
                Err(error.kind)
            }
        }
    }

    fn name(&self, slot: usize) -> &str {
        &self.site.appliances[slot].name
    }

    /// The site's cluster status, and its gauges.
    fn cluster_status(&self) -> Option<SiteClusterStatus> {
        let cluster = self.store.cluster()?;
        let site = &self.site.name;
        let (role, reason) = match &self.leadership {
            Leadership::Leader if self.leading => ("leader", None),
            Leadership::Leader => (
                "follower",
                Some("elected, reading the site's memory from etcd".to_string()),
            ),
            Leadership::Follower { .. } => ("follower", Some(describe(&self.leadership))),
            Leadership::Lost { .. } => ("lost", Some(describe(&self.leadership))),
        };
        let vantage: Vec<VantageStatus> = self
            .verdicts
            .iter()
            .enumerate()
            .filter_map(|(slot, verdict)| {
                let verdict = (*verdict)?;
                Some(VantageStatus {
                    appliance: self.name(slot).to_string(),
                    live: verdict.live,
                    failing_views: verdict.failing,
                    required: verdict.required,
                    partitioned: verdict.partitioned,
                })
            })
            .collect();
        self.metrics.set_site_cluster(
            site,
            role == "leader",
            &vantage
                .iter()
                .map(|v| {
                    (
                        v.appliance.as_str(),
                        v.failing_views,
                        v.required,
                        v.partitioned,
                    )
                })
                .collect::<Vec<_>>(),
        );
        Some(SiteClusterStatus {
            instance: cluster.instance().to_string(),
            role: role.to_string(),
            leader: cluster.leader(),
            reason,
            vantage,
        })
    }

    /// Updates the metrics and `/status` from the engine. A follower's engine only observes:
    /// what the site remembers (pause, cooldown, the failover in progress and the last one)
    /// is the leader's, as etcd holds it, so that every instance tells the same, and a
    /// failover given to a follower can be followed there to its end.
    fn publish(&self, now: SystemTime) {
        let site = &self.site.name;
        let shared = if self.leading {
            None
        } else {
            self.store.shared()
        };
        let memory = shared.as_ref().unwrap_or(self.engine.memory());
        let cooldown_remaining = match &shared {
            Some(memory) => memory
                .cooldown_until
                .and_then(|until| until.to_system_time().duration_since(now).ok())
                .unwrap_or(Duration::ZERO),
            None => self.engine.cooldown_remaining(now),
        };
        let in_progress: Option<(String, u64)> = match &shared {
            Some(memory) => memory.episode.as_ref().map(|e| (e.reason.clone(), e.id)),
            None => self.engine.episode().map(|e| (e.reason.clone(), e.id)),
        };
        let state = self.engine.state();
        let sync_age = self.engine.sync_age(now).map(|d| d.as_secs_f64());
        let views = self.engine.views();
        let mut appliances = Vec::new();
        for (slot, view) in views.iter().enumerate() {
            let rate = self.clients[slot].rate_status();
            let product = self.info[slot]
                .as_ref()
                .and_then(|i| i.product.as_ref())
                .map(|p| p.as_str().to_string());
            let current_errors: Vec<ApiErrorStatus> = self
                .logged_errors
                .iter()
                .filter(|((s, _), _)| *s == slot)
                .map(|((_, endpoint), (kind, message))| ApiErrorStatus {
                    endpoint: endpoint.to_string(),
                    kind: kind.label().to_string(),
                    message: message.clone(),
                })
                .collect();
            let role_now = self.engine.role_now(slot);
            let role_age = self.engine.role_age(slot, now).map(|d| d.as_secs_f64());
            let is_primary = role_now == Some(FailoverRole::Primary);
            let sample = ApplianceSample {
                up: view.answering(),
                healthy: view.healthy(),
                failover_role: role_now,
                failover_role_age_seconds: role_age,
                cluster_role: view.cluster_role,
                info: Some(ApplianceInfoLabels {
                    version: view.version.clone().unwrap_or_default(),
                    build: view.build.clone().unwrap_or_default(),
                    hostname: view.hostname.clone().unwrap_or_default(),
                    appliance_id: view.appliance_id.clone().unwrap_or_default(),
                    product: product.clone().unwrap_or_default(),
                    api: self.clients[slot]
                        .flavor()
                        .map(|f| f.as_str())
                        .unwrap_or("unknown")
                        .to_string(),
                }),
                last_data_sync_seconds: view.last_data_sync.map(|t| t.unix_seconds_f64()),
                // Each appliance's own report; the data gate's figure is the site's gauge.
                data_sync_age_seconds: view.last_data_sync.map(|t| t.age_at(now).as_secs_f64()),
                data_sync_ok: if is_primary {
                    view.last_data_sync_status
                        .as_deref()
                        .map(|s| s.eq_ignore_ascii_case("success"))
                } else {
                    None
                },
                ratelimit_limit: rate.limit,
                ratelimit_remaining: rate.remaining,
                // A backup accepts no clients: whatever it had is gone with its old role.
                clients: if view.role() == Some(FailoverRole::Backup) {
                    Some(std::collections::BTreeMap::new())
                } else {
                    view.clients.as_ref().map(|(c, _)| c.by_type.clone())
                },
            };
            self.metrics.set_appliance(site, &view.name, &sample);
            appliances.push(ApplianceStatus {
                name: view.name.clone(),
                url: self.site.appliances[slot].url.clone(),
                up: view.answering(),
                healthy: view.healthy(),
                condition: view.condition.describe(),
                failover_role: role_now.map(|r| r.to_string()),
                role_source: view.role.map(|r| format!("{:?}", r.source).to_lowercase()),
                failover_role_age_seconds: role_age,
                cluster_role: view.cluster_role.map(|r| r.to_string()),
                version: view.version.clone(),
                build: view.build.clone(),
                hostname: view.hostname.clone(),
                appliance_id: view.appliance_id.clone(),
                product,
                api: self.clients[slot].flavor().map(|f| f.as_str().to_string()),
                last_error: current_errors.first().map(|e| e.kind.clone()),
                api_errors: current_errors,
                last_data_sync: view.last_data_sync.map(|t| t.to_string()),
                last_data_sync_status: view.last_data_sync_status.clone(),
                ratelimit_limit: rate.limit,
                ratelimit_remaining: rate.remaining,
                topology: self.topology[slot].clone(),
                fault: {
                    // The same fault on several endpoints is said once.
                    let faults: std::collections::BTreeSet<&str> = self
                        .faults
                        .iter()
                        .filter(|((s, _), _)| *s == slot)
                        .map(|(_, text)| text.as_str())
                        .collect();
                    (!faults.is_empty()).then(|| faults.into_iter().collect::<Vec<_>>().join("; "))
                },
            });
        }
        let cooldown = cooldown_remaining.as_secs_f64();
        let sample = SiteSample {
            state: state.kind,
            blocker: state.blocker,
            alerts: self.engine.alerts().keys().copied().collect(),
            cooldown_remaining_seconds: cooldown,
            paused: memory.pause.is_some(),
            auto_enabled: self.mode == Mode::Auto,
            last_failover_seconds: memory
                .last_failover
                .as_ref()
                .map(|f| f.at.unix_seconds_f64()),
            max_sync_age_seconds: self.site.policy.max_sync_age.as_secs_f64(),
            backup_data_age_seconds: sync_age,
            last_poll_seconds: self
                .last_poll
                .map(|t| crate::api::time::UtcTime::from_system_time(t).unix_seconds_f64())
                .unwrap_or(0.0),
            state_writable: self.store_fault.is_none(),
            journal_writable: self.journal.fault(site).is_none(),
        };
        self.metrics.set_site(site, &sample);
        let decisions: Vec<DecisionStatus> = self
            .engine
            .journal()
            .map(|d| DecisionStatus {
                at: d.at.to_string(),
                state: d.state.as_str().to_string(),
                message: d.message.clone(),
            })
            .collect();
        self.board.publish(SiteStatus {
            site: site.clone(),
            mode: self.mode.as_str().to_string(),
            state: state.kind.as_str().to_string(),
            reason: state.reason.clone(),
            blocker: state.blocker.map(|b| b.as_str().to_string()),
            appliances,
            last_data_sync: self.engine.sync_evidence().map(|r| r.reported.to_string()),
            data_sync_source: self.engine.sync_evidence().map(|r| {
                r.from
                    .clone()
                    .unwrap_or_else(|| "unknown (from before an upgrade)".to_string())
            }),
            data_sync_age_seconds: sync_age,
            max_sync_age_seconds: self.site.policy.max_sync_age.as_secs_f64(),
            cooldown_remaining_seconds: cooldown,
            pause: memory.pause.as_ref().map(|p| PauseStatus {
                reason: p.reason.clone(),
                by: p.by.clone(),
                since: p.since.to_string(),
            }),
            promoted: memory.promoted.clone(),
            last_failover: memory
                .last_failover
                .as_ref()
                .and_then(|f| serde_json::to_value(f).ok()),
            failover_in_progress: in_progress.as_ref().map(|(reason, _)| reason.clone()),
            failover_in_progress_id: in_progress.as_ref().map(|(_, id)| *id),
            alerts: self
                .engine
                .alerts()
                .iter()
                .map(|(a, r)| AlertStatus {
                    alert: a.as_str().to_string(),
                    reason: r.clone(),
                })
                .collect(),
            decisions,
            last_poll: self
                .last_poll
                .map(|t| crate::api::time::UtcTime::from_system_time(t).to_string()),
            state_write_error: self.store_fault.as_ref().map(|f| {
                format!(
                    "{} ({} failed writes); no failover call is made until it can be written",
                    f.error, f.failures
                )
            }),
            journal_write_error: self.journal.fault(site),
            cluster: self.cluster_status(),
        });
    }
}

/// The gate's verdict as the engine's preflight takes it.
fn hook_answer(verdict: crate::notify::gate::Verdict) -> engine::HookAnswer {
    match verdict {
        crate::notify::gate::Verdict::Proceed(detail) => engine::HookAnswer::Proceed { detail },
        crate::notify::gate::Verdict::Veto(reason) => engine::HookAnswer::Veto { reason },
    }
}

/// The poll in flight's result; never ready when none is.
async fn poll_in_flight(
    polling: &mut Option<JoinHandle<[Observed; 2]>>,
) -> Result<[Observed; 2], tokio::task::JoinError> {
    match polling {
        Some(poll) => poll.await,
        None => std::future::pending().await,
    }
}

/// The next routed command, when this site has a route (never, alone).
async fn next_routed(
    routed: &mut Option<mpsc::Receiver<crate::cluster::Routed>>,
) -> Option<crate::cluster::Routed> {
    match routed {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// A call's answer in words, for the log.
fn describe_result(result: &CallResult) -> String {
    match result {
        CallResult::Accepted(_) => "accepted".to_string(),
        CallResult::Failed { message, .. } => format!("failed: {message}"),
        CallResult::NeverLeft { message, .. } => format!("never left: {message}"),
        CallResult::NotSent { reason } => format!("not sent: {reason}"),
        CallResult::Vetoed { reason } => format!("vetoed: {reason}"),
    }
}

/// A leadership in words, for the log and `/status`.
fn describe(leadership: &Leadership) -> String {
    match leadership {
        Leadership::Leader => "this instance leads the site".to_string(),
        Leadership::Follower {
            leader: Some(leader),
        } => {
            format!("{leader} leads the site; this instance observes")
        }
        Leadership::Follower { leader: None } => {
            "no instance leads the site right now; this instance observes".to_string()
        }
        Leadership::Lost { reason } => format!("{reason}: no instance here acts"),
    }
}

/// A stable offset within `interval` for a site, from its name (FNV-1a).
fn stagger(site: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in site.bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % nanos)
}

pub fn engine_config(site: &SiteConfig, mode: Mode) -> engine::SiteConfig {
    engine::SiteConfig {
        names: [
            site.appliances[0].name.clone(),
            site.appliances[1].name.clone(),
        ],
        mode,
        policy: site.policy.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_spread_over_the_interval_and_always_the_same_way() {
        let interval = Duration::from_secs(5);
        let offsets: Vec<Duration> = (0..1000)
            .map(|i| stagger(&format!("pair{i}"), interval))
            .collect();
        assert!(offsets.iter().all(|o| *o < interval));
        assert_eq!(stagger("pair1", interval), stagger("pair1", interval));
        // Spread: every fifth of the interval gets a fair share.
        for fifth in 0..5u32 {
            let (from, to) = (interval * fifth / 5, interval * (fifth + 1) / 5);
            let count = offsets.iter().filter(|o| **o >= from && **o < to).count();
            assert!(
                (120..=280).contains(&count),
                "{count} sites in fifth {fifth}"
            );
        }
    }
}
