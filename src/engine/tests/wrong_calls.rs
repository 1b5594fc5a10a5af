//! The engine's wrong calls found by an adversarial review, one scenario each: every one of
//! them made the wrong call (or none where one was needed) before its fix.

use std::time::Duration;

use super::harness::{EAST, Harness, WEST, demote, promote};
use crate::api::ErrorKind;
use crate::api::model::{FailoverRole, Probe};
use crate::engine::{
    Action, ApplianceReport, Blocker, CallResult, Command, Engine, Input, Memory, Mode, Policy,
    StateKind,
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn settled(mode: Mode) -> Harness {
    let mut h = Harness::new(mode);
    h.run_for(2 * MINUTE);
    assert_eq!(h.kind(), StateKind::Healthy, "{}", h.reason());
    h
}

/// One cycle in which `slot`'s answers are replaced by `report` (the world goes on as it is).
fn cycle_with(h: &mut Harness, slot: usize, report: ApplianceReport) {
    h.now += h.interval();
    h.world.tick(h.now);
    let mut poll = h.world.report();
    poll.appliances[slot] = report;
    h.input(Input::Poll(poll));
}

fn errors(kind: ErrorKind) -> ApplianceReport {
    ApplianceReport {
        probe: Some(Err(kind)),
        health: Some(Err(kind)),
        topology: None,
        clients: None,
    }
}

/// The last call sent, answered by hand (the harness does not answer when told not to).
fn answer_last(h: &mut Harness, ok: bool) {
    let call = h.calls.last().expect("a call was sent").clone();
    let result = if ok {
        h.world.apply(&call, h.now)
    } else {
        CallResult::Failed {
            kind: ErrorKind::Server,
            message: "The failover operation failed.".into(),
        }
    };
    h.input(Input::CallResult {
        call_id: call.call_id,
        result,
    });
}

/// A restart: a new engine from the memory the old one last asked to persist.
fn restart(h: &mut Harness) {
    let memory = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Persist(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let config = h.engine.config().clone();
    h.engine = Engine::new(config, memory);
}

/// Polls until the engine makes a call; the memory it handed over in the same step, before it.
fn persisted_before_the_first_call(h: &mut Harness) -> Memory {
    for _ in 0..20 {
        let from = h.actions.len();
        h.cycle();
        let step = &h.actions[from..];
        if let Some(call_at) = step
            .iter()
            .position(|a| matches!(a, Action::CallFailover(_)))
        {
            return step[..call_at]
                .iter()
                .rev()
                .find_map(|a| match a {
                    Action::Persist(m) => Some(m.clone()),
                    _ => None,
                })
                .expect("memory persisted before the call");
        }
    }
    panic!("no call within 20 polls")
}

/// Case 1: the gate trusted the newest sync time ever seen. The primary now reports an older
/// one (its sync stalled after a restore): that is what the backup has.
#[test]
fn w1_the_data_gate_judges_the_current_primarys_latest_report() {
    let mut h = settled(Mode::Auto);
    h.world.sync_frozen_at = Some(h.now - HOUR);
    h.run_for(MINUTE);
    h.world.up[EAST] = false;
    h.run_for(5 * MINUTE);
    assert!(h.calls.is_empty(), "promoted with data an hour old");
    assert_eq!(h.engine.state().blocker, Some(Blocker::SyncStale));
    assert!(h.reason().contains("1h"), "{}", h.reason());
}

/// Case 1, other half: after a swap, the old primary's report is no longer evidence.
#[test]
fn w1_a_report_from_an_appliance_no_longer_primary_is_not_evidence() {
    let mut h = settled(Mode::Auto);
    // The operator swapped the roles outside the watchdog; west is primary now and does not
    // report a sync time (yet).
    h.world.role = [FailoverRole::Backup, FailoverRole::Primary];
    h.world.reports_sync = false;
    h.run_for(MINUTE);
    h.world.up[WEST] = false;
    h.run_for(5 * MINUTE);
    assert!(h.calls.is_empty(), "promoted on east's old report");
    assert_eq!(h.engine.state().blocker, Some(Blocker::SyncUnknown));
}

/// Case 1: after a restart the age is the reported age plus the time since, never fresher.
#[test]
fn w1_after_a_restart_the_age_only_grows() {
    let mut h = settled(Mode::Auto);
    let before = h.engine.sync_age(h.now).expect("known");
    restart(&mut h);
    h.now += 20 * MINUTE;
    let after = h.engine.sync_age(h.now).expect("still known");
    assert!(after >= before + 20 * MINUTE, "{after:?} after {before:?}");
}

/// Case 2: authority to fence ends once the pair is whole again, whoever is primary.
#[test]
fn w2_a_stale_promotion_does_not_force_demote_the_operators_primary() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(3 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    // East returns unhealthy as a backup; later the operator fails back by hand on the
    // appliances: east primary, west backup, both healthy for hours.
    h.world.up[EAST] = true;
    h.world.healthy[EAST] = false;
    h.world.role[EAST] = FailoverRole::Backup;
    h.run_for(10 * MINUTE);
    h.world.healthy[EAST] = true;
    h.world.role = [FailoverRole::Primary, FailoverRole::Backup];
    h.run_for(2 * HOUR);
    assert_eq!(h.kind(), StateKind::Healthy, "{}", h.reason());
    // A split brain now was not caused by this watchdog: alert, do not demote east.
    h.world.role[WEST] = FailoverRole::Primary;
    h.run_for(5 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))], "{}", h.reason());
    assert_eq!(h.kind(), StateKind::SplitBrain);
}

/// Case 3: a returning appliance seen only through the probe keeps its pre-outage role.
#[test]
fn w3_split_brain_fencing_waits_for_a_role_reported_since_the_return() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(3 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    // East is back, already backup (the appliance fixed itself), but this cycle only its
    // probe is read.
    h.world.up[EAST] = true;
    h.world.role[EAST] = FailoverRole::Backup;
    cycle_with(
        &mut h,
        EAST,
        ApplianceReport {
            probe: Some(Ok(Probe::Healthy)),
            health: None,
            topology: None,
            clients: None,
        },
    );
    assert_eq!(
        h.requests(),
        vec![(WEST, promote(false))],
        "demoted east on its role from before the outage"
    );
}

/// Case 4: polls that observed nothing (our budget, 429, 401, 403) do not extend a streak.
#[test]
fn w4_polls_that_carry_no_information_never_extend_a_failing_streak() {
    for kind in [
        ErrorKind::Budget,
        ErrorKind::RateLimited,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
    ] {
        let mut h = settled(Mode::Auto);
        cycle_with(&mut h, EAST, errors(ErrorKind::Connect));
        for _ in 0..20 {
            cycle_with(&mut h, EAST, errors(kind));
        }
        assert!(
            h.calls.is_empty(),
            "{kind}: one failed poll became a failover"
        );
        assert_ne!(h.kind(), StateKind::FailoverBlocked, "{kind}");
        assert!(
            h.reason().contains("no information"),
            "{kind}: {}",
            h.reason()
        );
    }
}

/// Case 5: an appliance that answers 5xx (or nonsense) everywhere is unhealthy, not healthy.
#[test]
fn w5_a_primary_answering_errors_everywhere_is_unhealthy() {
    for kind in [ErrorKind::Server, ErrorKind::Malformed] {
        let mut h = settled(Mode::Auto);
        for _ in 0..24 {
            cycle_with(&mut h, EAST, errors(kind));
        }
        assert_ne!(h.kind(), StateKind::Healthy, "{kind}: {}", h.reason());
        assert_eq!(
            h.requests(),
            vec![(WEST, promote(true))],
            "{kind}: the unhealthy-primary rule (graceful first) applies"
        );
    }
}

/// Case 6: the fence worked, the promotion failed: the episode retries the promotion.
#[test]
fn w6_a_failed_promotion_after_a_fence_is_retried_by_its_episode() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.healthy[EAST] = false;
    h.world.partitioned = true;
    h.run_for(MINUTE);
    assert_eq!(h.requests(), vec![(EAST, demote(true))]);
    answer_last(&mut h, true);
    h.run_for(h.interval());
    assert_eq!(h.requests().len(), 2, "{}", h.reason());
    answer_last(&mut h, false);
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Backup]);
    h.answer_calls = true;
    h.run_for(5 * MINUTE);
    assert_eq!(
        h.requests(),
        vec![
            (EAST, demote(true)),
            (WEST, promote(false)),
            (WEST, promote(false))
        ]
    );
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Primary]);
    assert_ne!(h.kind(), StateKind::NoPrimary, "{}", h.reason());
}

/// Case 7: "retries exhausted, waiting for an operator" lasts until an operator acts.
#[test]
fn w7_retries_exhausted_lasts_until_an_ack_across_healthy_polls_and_restarts() {
    let policy = Policy {
        cooldown: 10 * MINUTE,
        ..Policy::default()
    };
    let mut h = Harness::with(Mode::Auto, policy, Memory::default());
    h.run_for(2 * MINUTE);
    h.world.calls_fail = true;
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert_eq!(h.calls.len(), 3);
    assert_eq!(h.engine.state().blocker, Some(Blocker::RetriesExhausted));
    // East recovers for a poll, the watchdog restarts, the cooldown passes, east dies again.
    h.world.up[EAST] = true;
    h.run_for(MINUTE);
    restart(&mut h);
    h.run_for(30 * MINUTE);
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert_eq!(h.calls.len(), 3, "new automatic calls without an ack");
    assert_eq!(h.engine.state().blocker, Some(Blocker::RetriesExhausted));
    h.world.calls_fail = false;
    h.input(Input::Command(Command::Acknowledge {
        reason: "API account fixed".into(),
        by: "dave".into(),
    }));
    h.run_for(2 * MINUTE);
    assert_eq!(h.calls.len(), 4);
}

/// Case 8: the memory (cooldown, who was promoted, the episode) is handed over before the
/// call, and a restart between the call and its verification resumes instead of calling again.
#[test]
fn w8_memory_is_persisted_before_the_call_and_a_restart_resumes_the_episode() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.up[EAST] = false;
    let memory = persisted_before_the_first_call(&mut h);
    assert!(
        memory.cooldown_until.is_some(),
        "cooldown starts with the call"
    );
    assert_eq!(memory.promoted.as_deref(), Some("west"));
    assert!(memory.episode.is_some(), "the intent is in the memory");
    // Crash now: the call went out; the appliance carries it out while we are down.
    let call = h.calls.last().expect("called").clone();
    h.world.apply(&call, h.now);
    h.engine = Engine::new(h.engine.config().clone(), memory);
    h.answer_calls = true;
    h.run_for(10 * MINUTE);
    assert_eq!(h.calls.len(), 1, "a second call for the same failure");
    assert!(
        h.engine.journal().any(|d| d.message.contains("resumed")),
        "the resumed episode is explained"
    );
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
}

/// Case 9: extreme durations never panic, in the engine or its policy.
#[test]
fn w9_extreme_durations_never_panic() {
    let huge = Duration::from_secs(10_000 * 365 * 24 * 3600);
    for policy in [
        Policy {
            cooldown: huge,
            ..Policy::default()
        },
        Policy {
            converge_timeout: huge,
            retry_backoff: huge,
            swap_settle: huge,
            ..Policy::default()
        },
        Policy {
            failover_after: Duration::MAX,
            stall_tolerance: Duration::MAX,
            startup_grace: Duration::MAX,
            ..Policy::default()
        },
        Policy {
            cooldown: Duration::MAX,
            max_sync_age: Duration::MAX,
            converge_timeout: Duration::MAX,
            retry_backoff: Duration::MAX,
            swap_settle: Duration::MAX,
            ..Policy::default()
        },
    ] {
        let mut h = Harness::with(Mode::Auto, policy.clone(), Memory::default());
        h.run_for(2 * MINUTE);
        h.world.calls_fail = true;
        h.world.up[EAST] = false;
        h.run_for(10 * MINUTE);
        h.world.calls_fail = false;
        h.run_for(10 * MINUTE);
        let _ = h.engine.next_wakeup();
        let _ = policy.backoff_before(u32::MAX);
        let _ = policy.stall_recovery();
    }
    let policy = Policy {
        poll_interval: Duration::MAX,
        failover_after: Duration::MAX,
        ..Policy::default()
    };
    assert_eq!(policy.stall_recovery(), Duration::MAX);
}

/// Found by the widened property tests: the authority to fence starts with the intent, so a
/// failover that then failed (the appliance said so) must hand it back, or a later split brain
/// is "fixed" by force-demoting the real primary.
#[test]
fn w10_a_failed_failover_gives_back_the_authority_to_fence() {
    let mut h = settled(Mode::Observe);
    // East is sick (so the pair is not whole), and the operator fails over by hand.
    h.world.healthy[EAST] = false;
    h.run_for(h.interval());
    h.answer_calls = false;
    h.input(Input::Command(Command::Failover(
        crate::engine::ManualRequest {
            request_id: 1,
            demote_peer: false,
            target: WEST,
            data_sync_first: false,
            force: false,
            confirmed: true,
            override_preflight: false,
            by: "erin".into(),
            shown_plan: None,
            hook: None,
        },
    )));
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    answer_last(&mut h, false);
    assert_eq!(h.engine.memory().promoted, None, "{:?}", h.engine.memory());
    h.answer_calls = true;
    h.engine.reconfigure(crate::engine::SiteConfig {
        mode: Mode::Auto,
        ..h.engine.config().clone()
    });
    h.run_for(MINUTE);
    // West now claims primary too: not this watchdog's doing.
    h.world.role[WEST] = FailoverRole::Primary;
    h.run_for(5 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))], "{}", h.reason());
    assert_eq!(h.kind(), StateKind::SplitBrain);
}

/// Case 8, other half: the crash came after the intent was written but before the call left.
/// The roles show it never arrived, so the resumed episode sends it — once.
#[test]
fn w8_a_call_that_never_left_before_the_crash_is_sent_once_after_it() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.up[EAST] = false;
    let memory = persisted_before_the_first_call(&mut h);
    // Crash before the call left: the appliance never saw it.
    h.calls.clear();
    h.engine = Engine::new(h.engine.config().clone(), memory);
    h.answer_calls = true;
    h.run_for(10 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))], "{}", h.reason());
    assert_eq!(h.world.role[WEST], FailoverRole::Primary);
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
}
