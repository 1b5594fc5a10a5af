//! A fake pair and a fake clock around one engine.

use std::time::{Duration, SystemTime};

use crate::api::ErrorKind;
use crate::api::model::{
    FailoverAccepted, FailoverRequest, FailoverRole, Health, HealthBase, Probe,
};
use crate::api::time::UtcTime;
use crate::engine::{
    Action, ApplianceReport, CallResult, Engine, FailoverCall, Input, Memory, Mode, Policy,
    PollReport, SiteConfig, Slot,
};

pub const EAST: Slot = 0;
pub const WEST: Slot = 1;

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Two appliances with the documented failover behaviour, simplified.
#[derive(Debug, Clone)]
pub struct World {
    pub role: [FailoverRole; 2],
    pub up: [bool; 2],
    pub healthy: [bool; 2],
    pub partitioned: bool,
    /// When set, the primary reports this as its last sync instead of its real one.
    pub sync_frozen_at: Option<SystemTime>,
    /// Whether the primary reports `last_data_sync` at all.
    pub reports_sync: bool,
    /// Whether a primary cut off from its peer already says its sync failed.
    pub reports_sync_failure: bool,
    /// The last time the primary synced to its peer.
    pub last_sync: SystemTime,
    /// Failover calls answer 500.
    pub calls_fail: bool,
    /// A `data_sync_first` swap completes this long after the call.
    pub swap_time: Duration,
    pending_swap: Option<(SystemTime, Slot)>,
}

impl Default for World {
    fn default() -> Self {
        World {
            role: [FailoverRole::Primary, FailoverRole::Backup],
            up: [true, true],
            healthy: [true, true],
            partitioned: false,
            sync_frozen_at: None,
            reports_sync: true,
            reports_sync_failure: true,
            last_sync: t0(),
            calls_fail: false,
            swap_time: Duration::from_secs(10),
            pending_swap: None,
        }
    }
}

impl World {
    fn peer_reachable(&self, from: Slot) -> bool {
        !self.partitioned && self.up[1 - from]
    }

    pub fn tick(&mut self, now: SystemTime) {
        let primary = (0..2).find(|&s| self.role[s] == FailoverRole::Primary && self.up[s]);
        if primary.is_some_and(|p| self.peer_reachable(p)) {
            self.last_sync = now;
        }
        if let Some((at, new_primary)) = self.pending_swap
            && now >= at
        {
            self.role[new_primary] = FailoverRole::Primary;
            self.role[1 - new_primary] = FailoverRole::Backup;
            self.pending_swap = None;
        }
    }

    pub fn report(&self) -> PollReport {
        let mut report = PollReport::default();
        for slot in 0..2 {
            report.appliances[slot] = if !self.up[slot] {
                ApplianceReport {
                    probe: Some(Err(ErrorKind::Connect)),
                    health: Some(Err(ErrorKind::Connect)),
                    topology: None,
                }
            } else {
                let is_primary = self.role[slot] == FailoverRole::Primary;
                let base = HealthBase {
                    appliance_id: Some(format!("id{slot}")),
                    appliance_hostname: Some(format!("host{slot}")),
                    failover_role: Some(self.role[slot]),
                    last_data_sync: (is_primary && self.reports_sync).then(|| {
                        UtcTime::from_system_time(self.sync_frozen_at.unwrap_or(self.last_sync))
                    }),
                    last_data_sync_status: is_primary.then(|| {
                        if self.peer_reachable(slot) || !self.reports_sync_failure {
                            "success".to_string()
                        } else {
                            "failed: peer unreachable".to_string()
                        }
                    }),
                    ..HealthBase::default()
                };
                let (probe, health) = if self.healthy[slot] {
                    (Probe::Healthy, Health::Healthy(base))
                } else {
                    (
                        Probe::Unhealthy,
                        Health::Unhealthy {
                            health: base,
                            message: Some("disk failure".into()),
                        },
                    )
                };
                ApplianceReport {
                    probe: Some(Ok(probe)),
                    health: Some(Ok(health)),
                    topology: None,
                }
            };
        }
        report
    }

    /// Carries out a failover call the way the documentation describes.
    pub fn apply(&mut self, call: &FailoverCall, now: SystemTime) -> CallResult {
        let fail = |message: &str| CallResult::Failed {
            kind: ErrorKind::Server,
            message: message.to_string(),
        };
        let slot = call.appliance;
        if !self.up[slot] {
            return CallResult::Failed {
                kind: ErrorKind::Connect,
                message: "connect refused".into(),
            };
        }
        if self.calls_fail {
            return fail("The failover operation failed.");
        }
        let FailoverRequest {
            role,
            data_sync_first,
            force,
        } = call.request;
        let peer_ok = self.peer_reachable(slot);
        let ok = |completes_later| {
            CallResult::Accepted(FailoverAccepted {
                message: "Successfully changed role.".into(),
                completes_later,
            })
        };
        match role {
            FailoverRole::Primary if self.role[slot] == FailoverRole::Primary => ok(false),
            FailoverRole::Primary => {
                if data_sync_first {
                    if !peer_ok {
                        return fail("Unable to contact the peer appliance to sync data.");
                    }
                    self.role = [FailoverRole::Backup, FailoverRole::Backup];
                    self.pending_swap = Some((now + self.swap_time, slot));
                    return ok(true);
                }
                self.role[slot] = FailoverRole::Primary;
                if peer_ok {
                    self.role[1 - slot] = FailoverRole::Backup;
                }
                ok(false)
            }
            FailoverRole::Backup => {
                if !peer_ok && !force {
                    return fail("Unable to contact the peer appliance.");
                }
                self.role[slot] = FailoverRole::Backup;
                if peer_ok {
                    self.role[1 - slot] = FailoverRole::Primary;
                }
                ok(false)
            }
            FailoverRole::None => fail("invalid role"),
        }
    }
}

pub struct Harness {
    pub engine: Engine,
    pub world: World,
    pub now: SystemTime,
    pub calls: Vec<FailoverCall>,
    pub actions: Vec<Action>,
    /// Whether calls are answered by the world at once.
    pub answer_calls: bool,
}

pub fn policy() -> Policy {
    Policy::default()
}

impl Harness {
    pub fn new(mode: Mode) -> Self {
        Harness::with(mode, policy(), Memory::default())
    }

    pub fn with(mode: Mode, policy: Policy, memory: Memory) -> Self {
        let config = SiteConfig {
            names: ["east".into(), "west".into()],
            mode,
            policy,
        };
        Harness {
            engine: Engine::new(config, memory),
            world: World::default(),
            now: t0(),
            calls: Vec::new(),
            actions: Vec::new(),
            answer_calls: true,
        }
    }

    pub fn interval(&self) -> Duration {
        self.engine.config().policy.poll_interval
    }

    /// Feeds one input and handles the resulting actions (calls are answered by the world).
    pub fn input(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            let actions = self.engine.step(self.now, input);
            for action in &actions {
                if let Action::CallFailover(call) = action {
                    self.calls.push(call.clone());
                    if self.answer_calls {
                        let result = self.world.apply(call, self.now);
                        queue.push(Input::CallResult {
                            call_id: call.call_id,
                            result,
                        });
                    }
                }
            }
            self.actions.extend(actions);
        }
    }

    /// One polling cycle: time moves on by one interval, then the world is observed.
    pub fn cycle(&mut self) {
        self.now += self.interval();
        self.world.tick(self.now);
        let report = self.world.report();
        self.input(Input::Poll(report));
    }

    pub fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now + self.interval() <= end {
            self.cycle();
        }
    }

    pub fn kind(&self) -> crate::engine::StateKind {
        self.engine.state().kind
    }

    pub fn reason(&self) -> &str {
        &self.engine.state().reason
    }

    pub fn requests(&self) -> Vec<(Slot, FailoverRequest)> {
        self.calls
            .iter()
            .map(|c| (c.appliance, c.request))
            .collect()
    }
}

pub fn promote(data_sync_first: bool) -> FailoverRequest {
    FailoverRequest {
        role: FailoverRole::Primary,
        data_sync_first,
        force: false,
    }
}

pub fn demote(force: bool) -> FailoverRequest {
    FailoverRequest {
        role: FailoverRole::Backup,
        data_sync_first: false,
        force,
    }
}
