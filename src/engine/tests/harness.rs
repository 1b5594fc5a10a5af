//! A fake pair and a fake clock around one engine.

use std::time::{Duration, SystemTime};

use crate::api::ErrorKind;
use crate::api::model::{
    FailoverAccepted, FailoverRequest, FailoverRole, Health, HealthBase, Probe,
};
use crate::api::time::UtcTime;
use crate::engine::action::FailoverCall;
use crate::engine::observation::Slot;
use crate::engine::{
    Action, ApplianceReport, CallResult, Engine, Input, Memory, Mode, Policy, PollReport,
    SiteConfig,
};
use crate::sim::pair_model::{Conditions, PairModel, SHARED_IP, UNHEALTHY_MESSAGE};

pub const EAST: Slot = 0;
pub const WEST: Slot = 1;

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Two appliances that behave as the vendor documents, through the simulator's own model of a
/// pair ([`PairModel`]), so that the scenarios and the integration tests see the same appliance.
/// The fields are what a scenario sets; the model keeps the sync and any swap under way.
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
    /// Failover calls answer 500.
    pub calls_fail: bool,
    model: PairModel,
}

/// A `data_sync_first` swap completes this long after the call.
const SWAP_TIME: Duration = Duration::from_secs(10);
/// How often the primary syncs to its peer.
const SYNC_INTERVAL: Duration = Duration::from_secs(60);

impl Default for World {
    fn default() -> Self {
        let on = Conditions::default();
        World {
            role: [FailoverRole::Primary, FailoverRole::Backup],
            up: on.up,
            healthy: on.healthy,
            partitioned: on.partitioned,
            sync_frozen_at: on.sync_frozen_at,
            reports_sync: on.reports_sync,
            reports_sync_failure: on.reports_sync_failure,
            calls_fail: false,
            model: PairModel::new(SWAP_TIME, SYNC_INTERVAL, t0()),
        }
    }
}

impl World {
    fn conditions(&self) -> Conditions {
        Conditions {
            up: self.up,
            healthy: self.healthy,
            partitioned: self.partitioned,
            failover_failing: [self.calls_fail; 2],
            sync_failing: false,
            sync_frozen_at: self.sync_frozen_at,
            reports_sync: self.reports_sync,
            reports_sync_failure: self.reports_sync_failure,
        }
    }

    pub fn tick(&mut self, now: SystemTime) {
        let on = self.conditions();
        self.model.tick(now, &mut self.role, &on);
    }

    pub fn report(&self) -> PollReport {
        let on = self.conditions();
        let mut report = PollReport::default();
        for slot in 0..2 {
            report.appliances[slot] = if !self.up[slot] {
                ApplianceReport {
                    probe: Some(Err(ErrorKind::Connect)),
                    health: Some(Err(ErrorKind::Connect)),
                    topology: None,
                    clients: None,
                }
            } else {
                let said = self.model.health(slot, self.role, &on);
                let base = HealthBase {
                    appliance_id: Some(format!("id{slot}")),
                    appliance_hostname: Some(format!("host{slot}")),
                    failover_role: Some(said.role),
                    enabled_shared_ips: if said.holds_shared_ip {
                        vec![SHARED_IP.to_string()]
                    } else {
                        Vec::new()
                    },
                    last_data_sync: said.last_data_sync.map(UtcTime::from_system_time),
                    last_data_sync_status: said.last_data_sync_status,
                    ..HealthBase::default()
                };
                let health = if said.healthy {
                    Health::Healthy(base)
                } else {
                    Health::Unhealthy {
                        health: base,
                        message: Some(UNHEALTHY_MESSAGE.into()),
                    }
                };
                let probe = if said.healthy {
                    Probe::Healthy
                } else {
                    Probe::Unhealthy
                };
                ApplianceReport {
                    probe: Some(Ok(probe)),
                    health: Some(Ok(health)),
                    topology: None,
                    clients: None,
                }
            };
        }
        report
    }

    /// Carries out a failover call: refused when the appliance is down, else as the model says.
    pub fn apply(&mut self, call: &FailoverCall, now: SystemTime) -> CallResult {
        if !self.up[call.appliance] {
            return CallResult::Failed {
                kind: ErrorKind::Connect,
                message: "connect refused".into(),
            };
        }
        let on = self.conditions();
        match self
            .model
            .set_failover_role(call.appliance, call.request, now, &mut self.role, &on)
        {
            Ok(accepted) => CallResult::Accepted(FailoverAccepted {
                message: accepted.message.into(),
                completes_later: accepted.completes_later,
            }),
            Err(refused) => CallResult::Failed {
                kind: if refused.status == 422 {
                    ErrorKind::Unprocessable
                } else {
                    ErrorKind::Server
                },
                message: refused.message.into(),
            },
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
    /// Whether the daemon can write the intent before a call; when it cannot, the call is
    /// not sent and the engine is told so, as the daemon does.
    pub store_writable: bool,
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
            store_writable: true,
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
                    if !self.store_writable {
                        queue.push(Input::CallResult {
                            call_id: call.call_id,
                            result: CallResult::NotSent {
                                reason: "state file /var/lib/bt-watchdog/x: read-only".into(),
                            },
                        });
                        continue;
                    }
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
