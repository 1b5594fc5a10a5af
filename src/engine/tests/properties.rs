//! Property tests of the engine's safety rules over random sequences of observations,
//! answers, operator commands and time steps (including stalls and clock jumps).
//!
//! The checker below keeps its own record of what the engine was shown, and judges every call
//! against it, rather than asking the engine what it thought.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::harness::t0;
use crate::api::ErrorKind;
use crate::api::model::{FailoverAccepted, FailoverRole, Health, HealthBase, Probe};
use crate::api::time::UtcTime;
use crate::engine::{
    Action, ApplianceReport, CallResult, Command, Engine, Input, ManualRequest, Memory, Mode,
    Policy, PollReport, SiteConfig, Trigger,
};

#[derive(Debug, Clone)]
struct Obs {
    reachable: bool,
    healthy: bool,
    /// `None`: the answer carries no usable role.
    role: Option<FailoverRole>,
    /// Seconds relative to now of the reported last sync (only used when the role is primary).
    sync: Option<i64>,
}

#[derive(Debug, Clone)]
enum Change {
    Reachable(bool),
    Healthy(bool),
    Role(Option<FailoverRole>),
    Sync(Option<i64>),
}

#[derive(Debug, Clone)]
enum Event {
    /// A poll of an arbitrary world, unrelated to the last one.
    Poll([Obs; 2]),
    /// A poll of the persistent world (so that failures last, as real ones do).
    PollWorld,
    /// The persistent world changes.
    Change(usize, Change),
    Tick,
    Answer {
        ok: bool,
    },
    Pause,
    Resume,
    Ack,
    Manual {
        target: usize,
        data_sync_first: bool,
        force: bool,
        confirmed: bool,
        override_preflight: bool,
    },
}

#[derive(Debug, Clone)]
enum Clock {
    Forward(u64),
    /// A frozen process: a long gap.
    Stall(u64),
    /// The wall clock stepped back.
    Back(u64),
}

fn obs() -> impl Strategy<Value = Obs> {
    let role = prop_oneof![
        4 => Just(Some(FailoverRole::Primary)),
        4 => Just(Some(FailoverRole::Backup)),
        1 => Just(Some(FailoverRole::None)),
        1 => Just(None),
    ];
    let sync = prop_oneof![
        6 => (-120i64..=0).prop_map(Some),
        2 => (-7200i64..=0).prop_map(Some),
        1 => (0i64..=1200).prop_map(Some),
        1 => Just(None),
    ];
    (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        role,
        sync,
    )
        .prop_map(|(reachable, healthy, role, sync)| Obs {
            reachable,
            healthy,
            role,
            sync,
        })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        any::<bool>().prop_map(Change::Reachable),
        any::<bool>().prop_map(Change::Healthy),
        prop_oneof![
            Just(Some(FailoverRole::Primary)),
            Just(Some(FailoverRole::Backup)),
            Just(Some(FailoverRole::None)),
            Just(None)
        ]
        .prop_map(Change::Role),
        prop_oneof![
            (-1200i64..=0).prop_map(Some),
            Just(None),
            (0i64..600).prop_map(Some)
        ]
        .prop_map(Change::Sync),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => [obs(), obs()].prop_map(Event::Poll),
        40 => Just(Event::PollWorld),
        2 => (0usize..2, change()).prop_map(|(slot, change)| Event::Change(slot, change)),
        2 => Just(Event::Tick),
        4 => any::<bool>().prop_map(|ok| Event::Answer { ok }),
        1 => Just(Event::Pause),
        1 => Just(Event::Resume),
        1 => Just(Event::Ack),
        1 => (0usize..2, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(target, data_sync_first, force, confirmed, override_preflight)| Event::Manual { target, data_sync_first, force, confirmed, override_preflight }),
    ]
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![
        30 => (2u64..=8).prop_map(Clock::Forward),
        1 => (31u64..=900).prop_map(Clock::Stall),
        1 => (1u64..=600).prop_map(Clock::Back),
    ]
}

fn scenario() -> impl Strategy<Value = (bool, Vec<(Clock, Event)>)> {
    (
        any::<bool>(),
        prop::collection::vec((clock(), event()), 1..300),
    )
}

fn policy() -> Policy {
    Policy {
        cooldown: Duration::from_secs(600),
        ..Policy::default()
    }
}

fn report(world: &[Obs; 2], now: SystemTime) -> PollReport {
    let mut report = PollReport::default();
    for (slot, o) in world.iter().enumerate() {
        report.appliances[slot] = if !o.reachable {
            ApplianceReport {
                probe: Some(Err(ErrorKind::Timeout)),
                health: Some(Err(ErrorKind::Timeout)),
                topology: None,
            }
        } else {
            let sync_at = o.sync.map(|offset| {
                let at = if offset >= 0 {
                    now + Duration::from_secs(offset as u64)
                } else {
                    now - Duration::from_secs((-offset) as u64)
                };
                UtcTime::from_system_time(at)
            });
            let base = HealthBase {
                failover_role: o.role,
                last_data_sync: sync_at,
                last_data_sync_status: Some("success".into()),
                ..HealthBase::default()
            };
            let (probe, health) = if o.healthy {
                (Probe::Healthy, Health::Healthy(base))
            } else {
                (
                    Probe::Unhealthy,
                    Health::Unhealthy {
                        health: base,
                        message: None,
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

/// Everything the checker knows, from the inputs alone.
struct Checker {
    mode: Mode,
    policy: Policy,
    reachable: [bool; 2],
    healthy: [bool; 2],
    role: [Option<FailoverRole>; 2],
    newest_sync: Option<SystemTime>,
    paused: bool,
    last_step: Option<SystemTime>,
    /// The latest time seen (the clock may step back; the engine's timeouts do not).
    latest: SystemTime,
    stalled_from: Option<SystemTime>,
    /// Call id → when it was sent.
    in_flight: BTreeMap<u64, SystemTime>,
    /// When the last failover ended, and whether an ack came since.
    last_finish: Option<SystemTime>,
    acked_since_finish: bool,
    manual_override_started: bool,
    /// Automatic promotions since the last ack, newest last.
    auto_promotions: Vec<SystemTime>,
}

impl Checker {
    fn new(mode: Mode, policy: Policy) -> Self {
        Checker {
            mode,
            policy,
            reachable: [false; 2],
            healthy: [false; 2],
            role: [None; 2],
            newest_sync: None,
            paused: false,
            last_step: None,
            latest: t0(),
            stalled_from: None,
            in_flight: BTreeMap::new(),
            last_finish: None,
            acked_since_finish: false,
            manual_override_started: false,
            auto_promotions: Vec::new(),
        }
    }

    fn time(&mut self, now: SystemTime) {
        if let Some(last) = self.last_step {
            match now.duration_since(last) {
                Ok(gap) if gap <= self.policy.stall_tolerance => {
                    if self.stalled_from.is_some_and(|from| {
                        now.duration_since(from).unwrap_or_default() >= self.policy.stall_recovery()
                    }) {
                        self.stalled_from = None;
                    }
                }
                _ => self.stalled_from = Some(now),
            }
        }
        self.last_step = Some(now);
        self.latest = self.latest.max(now);
    }

    fn saw(&mut self, world: &[Obs; 2], now: SystemTime) {
        for (slot, o) in world.iter().enumerate() {
            self.reachable[slot] = o.reachable;
            if o.reachable {
                self.healthy[slot] = o.healthy;
                if o.role.is_some() {
                    self.role[slot] = o.role;
                }
            } else {
                self.healthy[slot] = false;
            }
        }
        for o in world {
            if o.reachable
                && o.role == Some(FailoverRole::Primary)
                && let Some(offset) = o.sync
            {
                // The same rule as the engine's: a sync more than 5 minutes ahead is not believed.
                if offset <= 300 {
                    let at = if offset >= 0 {
                        now + Duration::from_secs(offset as u64)
                    } else {
                        now - Duration::from_secs((-offset) as u64)
                    };
                    // Whole milliseconds, as the API carries them.
                    let at = UtcTime::from_system_time(at).to_system_time();
                    if self.newest_sync.is_none_or(|known| at > known) {
                        self.newest_sync = Some(at);
                    }
                }
            }
        }
    }

    fn sync_ok(&self, now: SystemTime) -> bool {
        self.newest_sync.is_some_and(|at| {
            now.duration_since(at).unwrap_or_default() <= self.policy.max_sync_age
        })
    }

    fn check(&mut self, now: SystemTime, actions: &[Action]) -> Result<(), TestCaseError> {
        let mut episode_start: Option<(Trigger, bool)> = None;
        for action in actions {
            match action {
                Action::Journal(d) if d.message.starts_with("auto failover:") => {
                    episode_start = Some((Trigger::Auto, true))
                }
                Action::Journal(d) if d.message.starts_with("auto fencing:") => {
                    episode_start = Some((Trigger::Auto, false))
                }
                Action::Journal(d) if d.message.starts_with("manual failover:") => {
                    episode_start = Some((Trigger::Manual, true))
                }
                Action::Preflight(report) => {
                    self.manual_override_started = report.started && !report.passed
                }
                Action::FailoverFinished(_) => {
                    self.last_finish = Some(now);
                    self.acked_since_finish = false;
                }
                Action::CallFailover(call) => {
                    // Calls older than converge_timeout are ones the engine gave up on; the
                    // actuator bounds every call far below that.
                    let latest = self.latest;
                    self.in_flight.retain(|_, sent| {
                        latest.duration_since(*sent).unwrap_or_default()
                            < self.policy.converge_timeout
                    });
                    prop_assert!(
                        self.in_flight.is_empty(),
                        "a second call while {:?} is in flight",
                        self.in_flight
                    );
                    self.in_flight.insert(call.call_id, now);
                    prop_assert!(
                        self.reachable.iter().any(|r| *r),
                        "a call while blind: {call:?}"
                    );
                    let promotion = call.request.role == FailoverRole::Primary;
                    let overridden =
                        call.trigger == Trigger::Manual && self.manual_override_started;
                    if call.trigger == Trigger::Auto {
                        prop_assert_eq!(self.mode, Mode::Auto, "an automatic call in observe mode");
                    }
                    // A decision to start a failover; its later steps finish what was started
                    // (a pause or a stall does not abandon a failover halfway).
                    if let Some((trigger, is_failover)) = episode_start.take() {
                        if trigger == Trigger::Auto {
                            prop_assert!(
                                !self.paused,
                                "an automatic failover started while paused"
                            );
                            prop_assert!(
                                self.stalled_from.is_none(),
                                "a decision while the loop is stalled"
                            );
                            if is_failover {
                                prop_assert!(
                                    self.sync_ok(now),
                                    "an automatic failover with data too old or of unknown age"
                                );
                            }
                        }
                        if trigger == Trigger::Manual && !overridden {
                            prop_assert!(
                                self.sync_ok(now),
                                "a manual failover with stale data and no override"
                            );
                        }
                    }
                    if promotion && !overridden {
                        let t = call.appliance;
                        prop_assert!(
                            self.reachable[t]
                                && self.healthy[t]
                                && self.role[t] == Some(FailoverRole::Backup),
                            "promoting {} which is reachable={} healthy={} role={:?}",
                            call.appliance_name,
                            self.reachable[t],
                            self.healthy[t],
                            self.role[t]
                        );
                    }
                    if promotion && call.trigger == Trigger::Auto {
                        if let Some(finished) = self.last_finish {
                            prop_assert!(
                                self.acked_since_finish
                                    || now.duration_since(finished).unwrap_or_default()
                                        >= self.policy.cooldown,
                                "an automatic promotion inside the cooldown without an ack"
                            );
                        }
                        // No storm: at most max_attempts automatic promotions in any window as long
                        // as the cooldown, unless an operator acknowledged in between.
                        let latest = self.latest;
                        let cooldown = self.policy.cooldown;
                        self.auto_promotions
                            .retain(|at| latest.duration_since(*at).unwrap_or_default() < cooldown);
                        self.auto_promotions.push(now);
                        prop_assert!(
                            self.auto_promotions.len() as u32 <= self.policy.max_attempts,
                            "{} automatic promotions within one cooldown",
                            self.auto_promotions.len()
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn run(mode: Mode, events: &[(Clock, Event)], check: bool) -> Result<Vec<Action>, TestCaseError> {
    let policy = policy();
    let config = SiteConfig {
        names: ["east".into(), "west".into()],
        mode,
        policy: policy.clone(),
    };
    let mut engine = Engine::new(config, Memory::default());
    let mut checker = Checker::new(mode, policy);
    let mut now = t0();
    let mut all = Vec::new();
    let mut request_id = 0;
    let mut world = [
        Obs {
            reachable: true,
            healthy: true,
            role: Some(FailoverRole::Primary),
            sync: Some(-30),
        },
        Obs {
            reachable: true,
            healthy: true,
            role: Some(FailoverRole::Backup),
            sync: None,
        },
    ];
    for (clock, event) in events {
        now = match clock {
            Clock::Forward(s) | Clock::Stall(s) => now + Duration::from_secs(*s),
            Clock::Back(s) => now - Duration::from_secs(*s),
        };
        let input = match event {
            Event::Poll(arbitrary) => {
                checker.saw(arbitrary, now);
                Input::Poll(report(arbitrary, now))
            }
            Event::PollWorld => {
                checker.saw(&world, now);
                Input::Poll(report(&world, now))
            }
            Event::Change(slot, change) => {
                let o = &mut world[*slot];
                match change {
                    Change::Reachable(v) => o.reachable = *v,
                    Change::Healthy(v) => o.healthy = *v,
                    Change::Role(v) => o.role = *v,
                    Change::Sync(v) => o.sync = *v,
                }
                Input::Tick
            }
            Event::Tick => Input::Tick,
            Event::Answer { ok } => match checker.in_flight.keys().next_back().copied() {
                Some(call_id) => {
                    checker.in_flight.remove(&call_id);
                    let result = if *ok {
                        CallResult::Accepted(FailoverAccepted {
                            message: "ok".into(),
                            completes_later: false,
                        })
                    } else {
                        CallResult::Failed {
                            kind: ErrorKind::Server,
                            message: "failed".into(),
                        }
                    };
                    Input::CallResult { call_id, result }
                }
                None => Input::Tick,
            },
            Event::Pause => {
                checker.paused = true;
                Input::Command(Command::Pause {
                    reason: "test".into(),
                    by: "prop".into(),
                })
            }
            Event::Resume => {
                checker.paused = false;
                Input::Command(Command::Resume { by: "prop".into() })
            }
            Event::Ack => {
                checker.acked_since_finish = true;
                checker.auto_promotions.clear();
                Input::Command(Command::Acknowledge {
                    reason: "test".into(),
                    by: "prop".into(),
                })
            }
            Event::Manual {
                target,
                data_sync_first,
                force,
                confirmed,
                override_preflight,
            } => {
                request_id += 1;
                Input::Command(Command::Failover(ManualRequest {
                    request_id,
                    target: *target,
                    data_sync_first: *data_sync_first,
                    force: *force,
                    confirmed: *confirmed,
                    override_preflight: *override_preflight,
                    by: "prop".into(),
                    shown_plan: None,
                }))
            }
        };
        checker.time(now);
        let actions = engine.step(now, input);
        if check {
            checker.check(now, &actions)?;
        }
        all.extend(actions);
    }
    Ok(all)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_safety_rules_hold((auto, events) in scenario()) {
        let mode = if auto { Mode::Auto } else { Mode::Observe };
        run(mode, &events, true)?;
    }

    #[test]
    fn the_same_inputs_give_the_same_outputs((auto, events) in scenario()) {
        let mode = if auto { Mode::Auto } else { Mode::Observe };
        let first = run(mode, &events, false)?;
        let second = run(mode, &events, false)?;
        prop_assert_eq!(first, second);
    }
}

/// The random scenarios must really exercise failovers, or the safety rules are checked on
/// runs where nothing ever happens.
#[test]
fn random_scenarios_reach_automatic_failovers() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut with_auto_calls, mut total) = (0, 0);
    for _ in 0..300 {
        let (_, events) = scenario().new_tree(&mut runner).unwrap().current();
        let actions = run(Mode::Auto, &events, false).unwrap();
        total += 1;
        if actions
            .iter()
            .any(|a| matches!(a, Action::CallFailover(c) if c.trigger == Trigger::Auto))
        {
            with_auto_calls += 1;
        }
    }
    eprintln!("{with_auto_calls} of {total}");
    assert!(
        with_auto_calls * 10 >= total,
        "only {with_auto_calls} of {total} scenarios made an automatic call"
    );
}

/// A long, mostly-healthy run with a dead primary: the rules hold where failovers really
/// happen (random sequences rarely reach one).
#[test]
fn the_safety_rules_hold_through_real_failovers() {
    let up = |role| Obs {
        reachable: true,
        healthy: true,
        role: Some(role),
        sync: Some(-10),
    };
    let down = Obs {
        reachable: false,
        healthy: false,
        role: None,
        sync: None,
    };
    let mut events = Vec::new();
    for _ in 0..20 {
        events.push((
            Clock::Forward(5),
            Event::Poll([up(FailoverRole::Primary), up(FailoverRole::Backup)]),
        ));
    }
    for i in 0..200 {
        events.push((
            Clock::Forward(5),
            Event::Poll([down.clone(), up(FailoverRole::Backup)]),
        ));
        if i % 3 == 0 {
            events.push((Clock::Forward(0), Event::Answer { ok: i % 2 == 0 }));
        }
    }
    let actions = run(Mode::Auto, &events, true).unwrap();
    assert!(
        actions.iter().any(|a| matches!(a, Action::CallFailover(_))),
        "the scenario did fail over"
    );
}
