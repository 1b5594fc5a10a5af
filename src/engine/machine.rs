//! The engine of one site: `step(now, input) -> actions`.
//!
//! Sans-IO by construction: it reads no clock (time comes in as `now`), opens no socket,
//! touches no file and holds no global state, so every rule below is tested with a fake clock.
//! The daemon drives it; the actuator carries out its calls and reports back.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::action::{Action, AlertKind, Decision};
use super::episode::Episode;
use super::memory::Memory;
use super::observation::Input;
use super::policy::{Mode, Policy};
use super::state::{SiteState, StateKind};
use super::streak::Streak;
use super::view::ApplianceView;

/// What the engine needs to know about its site.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SiteConfig {
    /// The operator's names of the two appliances, in configuration order.
    pub names: [String; 2],
    pub mode: Mode,
    pub policy: Policy,
}

#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) config: SiteConfig,
    pub(super) memory: Memory,
    pub(super) views: [ApplianceView; 2],
    pub(super) started_at: Option<SystemTime>,
    pub(super) started: bool,
    pub(super) last_step: Option<SystemTime>,
    pub(super) stalled_until_regular_from: Option<SystemTime>,
    pub(super) streak: Option<Streak>,
    pub(super) episode: Option<Episode>,
    /// Said at the first step: an episode in memory that could not be resumed, and why.
    pub(super) unresumable: Option<String>,
    pub(super) no_primary_since: Option<SystemTime>,
    pub(super) next_call_id: u64,
    /// Until when automatic action holds because the last intent could not be written, and
    /// why (the daemon sends no call without its intent on disk).
    pub(super) intent_unwritable: Option<(SystemTime, String)>,
    /// Until when automatic failover holds because the pre-failover hook vetoed it, and why.
    pub(super) vetoed: Option<(SystemTime, String)>,
    pub(super) state: SiteState,
    pub(super) alerts: BTreeMap<AlertKind, String>,
    pub(super) journal: VecDeque<Decision>,
}

impl Engine {
    /// An engine with the memory of a previous run; an unfinished episode in it resumes
    /// (verified, never called again) rather than starting afresh.
    pub fn new(config: SiteConfig, memory: Memory) -> Self {
        let mut memory = memory.upgraded();
        let mut unresumable = None;
        let episode = memory.episode.as_ref().and_then(|record| {
            let restored = Episode::restore(record, &config.names);
            if restored.is_none() {
                unresumable = Some(format!(
                    "the unfinished episode {} in memory names an appliance that is no longer configured ({} -> {}); it is dropped: check the appliances' roles",
                    record.id,
                    record.from.as_deref().unwrap_or("?"),
                    record.target
                ));
            }
            restored
        });
        if episode.is_none() {
            memory.episode = None;
        }
        let views = [
            ApplianceView::new(&config.names[0]),
            ApplianceView::new(&config.names[1]),
        ];
        Engine {
            config,
            memory,
            views,
            started_at: None,
            started: false,
            last_step: None,
            stalled_until_regular_from: None,
            streak: None,
            episode,
            unresumable,
            no_primary_since: None,
            next_call_id: 1,
            intent_unwritable: None,
            vetoed: None,
            state: SiteState::new(StateKind::Starting, "waiting for the first poll"),
            alerts: BTreeMap::new(),
            journal: VecDeque::new(),
        }
    }

    pub fn state(&self) -> &SiteState {
        &self.state
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn views(&self) -> &[ApplianceView; 2] {
        &self.views
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    pub fn episode(&self) -> Option<&Episode> {
        self.episode.as_ref()
    }

    pub fn journal(&self) -> impl Iterator<Item = &Decision> {
        self.journal.iter()
    }

    pub fn alerts(&self) -> &BTreeMap<AlertKind, String> {
        &self.alerts
    }

    /// Applies a new configuration (a reload) without losing memory or observations.
    pub fn reconfigure(&mut self, config: SiteConfig) {
        if config.names != self.config.names {
            self.views = [
                ApplianceView::new(&config.names[0]),
                ApplianceView::new(&config.names[1]),
            ];
            self.streak = None;
        }
        self.config = config;
    }

    /// Seconds of cooldown left at `now`.
    pub fn cooldown_remaining(&self, now: SystemTime) -> Duration {
        self.memory
            .cooldown_until
            .map(|until| {
                until
                    .to_system_time()
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::ZERO)
    }

    pub fn step(&mut self, now: SystemTime, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.track_time(now, &mut out);
        if let Some(message) = self.unresumable.take() {
            self.note(now, &mut out, message);
            out.push(Action::Persist(self.memory.clone()));
        }
        match input {
            Input::Tick => {}
            Input::Poll(report) => self.absorb(now, &report, &mut out),
            Input::CallResult { call_id, result } => {
                self.on_call_result(now, call_id, result, &mut out)
            }
            Input::Command(command) => self.on_command(now, command, &mut out),
        }
        let state = self.evaluate(now, &mut out);
        self.set_state(now, state, &mut out);
        self.update_alerts(&mut out);
        out
    }
}
