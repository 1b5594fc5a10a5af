//! The scenario table of the decision rules (README, "How decisions are made"): the engine alone, a fake clock, the exact calls and
//! the final state of each.

use std::time::Duration;

use super::harness::{EAST, Harness, WEST, demote, promote};
use crate::api::model::FailoverRole;
use crate::engine::{
    Action, AlertKind, Blocker, Command, Input, ManualRequest, Memory, Mode, Outcome, StateKind,
    Trigger,
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn finished(h: &Harness) -> Vec<(Trigger, Outcome, String)> {
    h.actions
        .iter()
        .filter_map(|a| match a {
            Action::FailoverFinished(s) => Some((s.trigger, s.outcome, s.to.clone())),
            _ => None,
        })
        .collect()
}

fn raised(h: &Harness, alert: AlertKind) -> bool {
    h.actions
        .iter()
        .any(|a| matches!(a, Action::Alert { alert: x, raised: true, .. } if *x == alert))
}

fn ever_in(h: &Harness, kind: StateKind) -> bool {
    h.actions
        .iter()
        .any(|a| matches!(a, Action::Journal(d) if d.state == kind))
}

/// A pair that has been healthy for a few minutes, so the engine knows the data is fresh.
fn settled(mode: Mode) -> Harness {
    let mut h = Harness::new(mode);
    h.run_for(2 * MINUTE);
    assert_eq!(h.kind(), StateKind::Healthy, "{}", h.reason());
    h
}

#[test]
fn s01_a_healthy_pair_for_an_hour_needs_nothing() {
    let mut h = settled(Mode::Auto);
    h.run_for(HOUR);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::Healthy);
    assert!(
        h.reason()
            .contains("primary east healthy; backup west healthy; data"),
        "{}",
        h.reason()
    );
}

#[test]
fn s02_primary_hard_down_promotes_the_backup_once_then_cools_down() {
    let mut h = settled(Mode::Auto);
    let died = h.now;
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    let called_after = h.calls[0].reason.clone();
    assert!(
        called_after.contains("primary east not answering (connect refused)"),
        "{called_after}"
    );
    assert!(called_after.contains("promote west"), "{called_after}");
    assert_eq!(
        h.world.role,
        [FailoverRole::Primary, FailoverRole::Primary],
        "east is down, still believing it is primary"
    );
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
    assert_eq!(
        finished(&h),
        vec![(Trigger::Auto, Outcome::Success, "west".to_string())]
    );
    assert_eq!(h.engine.memory().promoted.as_deref(), Some("west"));
    let cooldown_end = h.engine.memory().cooldown_until.unwrap().to_system_time();
    assert!(cooldown_end >= died + h.engine.config().policy.cooldown);
}

#[test]
fn s02_the_call_waits_for_both_the_time_and_the_poll_count() {
    let mut h = settled(Mode::Auto);
    let died = h.now;
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    let call_at = h
        .actions
        .iter()
        .position(|a| matches!(a, Action::CallFailover(_)))
        .unwrap();
    let _ = call_at;
    // Polls every 5 s: failing since the first failed poll at died+5s, the call comes at the
    // first poll at least 30 s later.
    let first_failure = died + h.interval();
    let journal: Vec<_> = h
        .engine
        .journal()
        .filter(|d| d.message.starts_with("auto failover:"))
        .collect();
    let at = journal[0].at.to_system_time();
    assert_eq!(
        at.duration_since(first_failure).unwrap(),
        Duration::from_secs(30)
    );
}

#[test]
fn s03_stale_data_blocks_the_promotion() {
    let mut h = Harness::new(Mode::Auto);
    h.world.sync_frozen_at = Some(h.now - 20 * MINUTE);
    h.run_for(2 * MINUTE);
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::FailoverBlocked);
    assert_eq!(h.engine.state().blocker, Some(Blocker::SyncStale));
    assert!(
        h.reason().contains("more than max_sync_age 15m"),
        "{}",
        h.reason()
    );
    assert!(raised(&h, AlertKind::FailoverBlocked));
}

#[test]
fn s03_stale_data_with_a_healthy_primary_is_degraded_before_any_failure() {
    // The sync stops while the primary is healthy: the operator must learn of it now, while
    // there is time to fix it, not when a failover is refused.
    let mut h = settled(Mode::Auto);
    h.world.sync_frozen_at = Some(h.now);
    h.run_for(10 * MINUTE);
    assert_eq!(h.kind(), StateKind::Healthy, "{}", h.reason());
    h.run_for(6 * MINUTE);
    assert_eq!(h.kind(), StateKind::Degraded, "{}", h.reason());
    assert!(
        h.reason().contains("more than max_sync_age 15m")
            && h.reason().contains("a failover would be refused"),
        "{}",
        h.reason()
    );
    assert!(h.calls.is_empty());
    // The sync resumes: healthy again.
    h.world.sync_frozen_at = None;
    h.run_for(MINUTE);
    assert_eq!(h.kind(), StateKind::Healthy, "{}", h.reason());
}

#[test]
fn s03_unknown_data_age_blocks_the_promotion() {
    let mut h = Harness::new(Mode::Auto);
    h.world.reports_sync = false;
    h.run_for(2 * MINUTE);
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.engine.state().blocker, Some(Blocker::SyncUnknown));
    assert!(h.reason().contains("unknown"), "{}", h.reason());
}

#[test]
fn s04_a_flapping_primary_is_not_failed_over() {
    let mut h = settled(Mode::Auto);
    for _ in 0..30 {
        h.world.up[EAST] = false;
        h.run_for(Duration::from_secs(10)); // two failed polls
        h.world.up[EAST] = true;
        h.run_for(Duration::from_secs(10));
    }
    // Failing for more polls than the threshold, but not for long enough.
    h.world.up[EAST] = false;
    h.run_for(Duration::from_secs(25));
    assert_eq!(h.kind(), StateKind::PrimarySuspect, "{}", h.reason());
    h.world.up[EAST] = true;
    h.run_for(MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::Healthy);
}

#[test]
fn s05_blind_when_neither_appliance_answers() {
    let mut h = settled(Mode::Auto);
    h.world.up = [false, false];
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::Blind);
    assert!(raised(&h, AlertKind::Blind));
    assert!(
        h.reason().contains("watchdog's own network"),
        "{}",
        h.reason()
    );
}

#[test]
fn s06_a_dead_backup_degrades_the_pair_without_action() {
    let mut h = settled(Mode::Auto);
    h.world.up[WEST] = false;
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::Degraded);
    assert!(
        h.reason().contains("backup west is not answering"),
        "{}",
        h.reason()
    );
}

#[test]
fn s07_split_brain_after_our_promotion_demotes_the_old_primary() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(5 * MINUTE);
    h.world.up[EAST] = true; // comes back still believing it is primary
    h.run_for(5 * MINUTE);
    assert_eq!(
        h.requests(),
        vec![(WEST, promote(false)), (EAST, demote(true))]
    );
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Primary]);
    assert!(
        ever_in(&h, StateKind::SplitBrain)
            || h.actions.iter().any(
                |a| matches!(a, Action::Journal(d) if d.message.contains("split brain ended"))
            )
    );
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
    assert_eq!(h.engine.memory().promoted, None, "the pair is whole again");
}

#[test]
fn s07_split_brain_the_watchdog_did_not_cause_is_only_alerted() {
    let mut h = Harness::new(Mode::Auto);
    h.world.role = [FailoverRole::Primary, FailoverRole::Primary];
    h.run_for(HOUR);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::SplitBrain);
    assert!(raised(&h, AlertKind::SplitBrain));
    assert!(h.reason().contains("a human must choose"), "{}", h.reason());
}

#[test]
fn s08_observe_mode_says_what_it_would_do() {
    let mut h = settled(Mode::Observe);
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.engine.state().blocker, Some(Blocker::ObserveMode));
    assert!(
        h.reason().contains("observe mode: would promote west"),
        "{}",
        h.reason()
    );
}

#[test]
fn s09_paused_means_no_automatic_action() {
    let mut h = settled(Mode::Auto);
    h.input(Input::Command(Command::Pause {
        reason: "appliance upgrade".into(),
        by: "alice".into(),
    }));
    assert_eq!(h.kind(), StateKind::Paused);
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.engine.state().blocker, Some(Blocker::Paused));
    assert!(
        h.reason().contains("paused by alice (appliance upgrade)"),
        "{}",
        h.reason()
    );
    h.input(Input::Command(Command::Resume { by: "alice".into() }));
    h.run_for(MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
}

#[test]
fn s10_a_failing_call_is_retried_with_backoff_then_given_up() {
    let mut h = settled(Mode::Auto);
    h.world.calls_fail = true;
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert_eq!(
        h.requests(),
        vec![(WEST, promote(false)); 3],
        "max_attempts calls"
    );
    let times: Vec<_> = h
        .engine
        .journal()
        .filter(|d| d.message.starts_with("auto failover:"))
        .map(|d| d.at.to_system_time())
        .collect();
    assert_eq!(times.len(), 3);
    assert!(times[1].duration_since(times[0]).unwrap() >= Duration::from_secs(30));
    assert!(times[2].duration_since(times[1]).unwrap() >= Duration::from_secs(60));
    assert_eq!(h.engine.state().blocker, Some(Blocker::RetriesExhausted));
    assert!(raised(&h, AlertKind::FailoverFailed));
    assert_eq!(
        finished(&h),
        vec![(Trigger::Auto, Outcome::Failure, "west".to_string())]
    );
    // An operator acknowledges: one more round is allowed.
    h.world.calls_fail = false;
    h.input(Input::Command(Command::Acknowledge {
        reason: "fixed the API account".into(),
        by: "bob".into(),
    }));
    h.run_for(2 * MINUTE);
    assert_eq!(h.calls.len(), 4);
    assert_eq!(h.kind(), StateKind::Cooldown);
}

#[test]
fn s10_no_storm_after_giving_up_even_when_the_cooldown_ends() {
    let mut h = settled(Mode::Auto);
    h.world.calls_fail = true;
    h.world.up[EAST] = false;
    h.run_for(3 * HOUR);
    assert_eq!(h.calls.len(), 3);
}

#[test]
fn s11_a_second_failure_inside_the_cooldown_waits_for_an_ack() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(5 * MINUTE);
    assert_eq!(h.calls.len(), 1);
    // East is repaired and rejoins as backup.
    h.world.up[EAST] = true;
    h.world.role[EAST] = FailoverRole::Backup;
    h.run_for(5 * MINUTE);
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
    // Now the new primary dies inside the cooldown.
    h.world.up[WEST] = false;
    h.run_for(5 * MINUTE);
    assert_eq!(h.calls.len(), 1);
    assert_eq!(h.engine.state().blocker, Some(Blocker::Cooldown));
    assert!(h.reason().contains("would promote east"), "{}", h.reason());
    h.input(Input::Command(Command::Acknowledge {
        reason: "west really is dead".into(),
        by: "carol".into(),
    }));
    h.run_for(MINUTE);
    assert_eq!(h.requests()[1], (EAST, promote(false)));
}

#[test]
fn s12_an_unhealthy_primary_gets_a_graceful_switchover() {
    let mut h = settled(Mode::Auto);
    h.world.healthy[EAST] = false;
    h.run_for(10 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(true))]);
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Primary]);
    assert!(
        !ever_in(&h, StateKind::NoPrimary),
        "both reading backup during the swap is expected"
    );
    assert!(!raised(&h, AlertKind::NoPrimary));
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
}

#[test]
fn s12_both_backup_is_no_emergency_while_a_swap_settles() {
    let mut h = settled(Mode::Auto);
    // Someone else started a planned swap: both read backup for a while.
    h.world.role = [FailoverRole::Backup, FailoverRole::Backup];
    h.run_for(MINUTE);
    assert_eq!(h.kind(), StateKind::Degraded, "{}", h.reason());
    assert!(h.reason().contains("planned swap"), "{}", h.reason());
    h.run_for(2 * MINUTE);
    assert_eq!(h.kind(), StateKind::NoPrimary);
    assert!(raised(&h, AlertKind::NoPrimary));
    assert!(h.calls.is_empty());
}

#[test]
fn s13_a_graceful_swap_that_cannot_reach_the_peer_is_escalated_to_fence_and_promote() {
    let mut h = settled(Mode::Auto);
    // The primary is sick and cut off from its peer, and does not yet say its sync failed.
    h.world.reports_sync_failure = false;
    h.world.healthy[EAST] = false;
    h.world.partitioned = true;
    h.run_for(10 * MINUTE);
    assert_eq!(
        h.requests(),
        vec![
            (WEST, promote(true)),
            (EAST, demote(true)),
            (WEST, promote(false))
        ]
    );
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Primary]);
    assert_eq!(
        finished(&h),
        vec![(Trigger::Auto, Outcome::Success, "west".to_string())]
    );
}

#[test]
fn s13_a_primary_that_reports_its_sync_failing_is_fenced_first() {
    let mut h = settled(Mode::Auto);
    h.world.healthy[EAST] = false;
    h.world.partitioned = true;
    h.run_for(10 * MINUTE);
    assert_eq!(
        h.requests(),
        vec![(EAST, demote(true)), (WEST, promote(false))]
    );
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Primary]);
}

#[test]
fn s14_a_stalled_loop_does_not_act_until_stable_again() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(Duration::from_secs(20));
    // The process is frozen for five minutes, then resumes.
    h.now += 5 * MINUTE;
    let resumed = h.now;
    h.run_for(10 * MINUTE);
    assert_eq!(h.calls.len(), 1);
    let acted = h
        .engine
        .journal()
        .find(|d| d.message.starts_with("auto failover:"))
        .unwrap()
        .at
        .to_system_time();
    let recovery = h.engine.config().policy.stall_recovery();
    assert!(
        acted.duration_since(resumed).unwrap() >= recovery,
        "acted {:?} after resuming",
        acted.duration_since(resumed)
    );
    assert!(ever_in(&h, StateKind::FailoverBlocked));
    assert!(
        h.actions
            .iter()
            .any(|a| matches!(a, Action::Journal(d) if d.message.contains("loop stalled")))
    );
}

#[test]
fn s14_a_clock_jump_backwards_is_a_stall_too() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(Duration::from_secs(20));
    h.now -= 10 * MINUTE;
    h.cycle();
    assert_eq!(h.engine.state().blocker, None, "{}", h.reason());
    assert_eq!(
        h.kind(),
        StateKind::PrimarySuspect,
        "the failure timer restarted: {}",
        h.reason()
    );
    h.run_for(Duration::from_secs(25));
    assert!(h.calls.is_empty());
}

#[test]
fn s15_no_action_before_a_full_picture() {
    let mut h = Harness::new(Mode::Auto);
    let memory = Memory {
        data_sync: Some(crate::engine::memory::SyncReport {
            reported: crate::api::time::UtcTime::from_system_time(h.now),
            received_at: crate::api::time::UtcTime::from_system_time(h.now),
            from: Some("east".into()),
        }),
        ..Memory::default()
    };
    h = Harness::with(Mode::Auto, h.engine.config().policy.clone(), memory);
    // Only west answers at first; east is silent (the watchdog does not know yet who it is).
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert!(
        h.calls.is_empty(),
        "east's role was never learnt, so nothing is known to have failed"
    );
    assert_eq!(h.kind(), StateKind::Starting, "{}", h.reason());
}

#[test]
fn s15_a_start_waits_for_both_appliances_or_the_grace() {
    let mut h = Harness::new(Mode::Auto);
    h.now += h.interval();
    let mut report = h.world.report();
    report.appliances[WEST] = Default::default(); // west not polled yet
    h.input(Input::Poll(report));
    assert_eq!(h.kind(), StateKind::Starting);
    assert!(h.reason().contains("west"), "{}", h.reason());
    h.cycle();
    assert_eq!(h.kind(), StateKind::Healthy);
}

#[test]
fn s16_manual_failover_preflight_then_confirmed_even_in_observe_mode() {
    let mut h = settled(Mode::Observe);
    let request = |confirmed, request_id| ManualRequest {
        request_id,
        target: WEST,
        data_sync_first: true,
        force: false,
        demote_peer: false,
        confirmed,
        override_preflight: false,
        by: "dave".into(),
        shown_plan: None,
        hook: None,
    };
    h.input(Input::Command(Command::Failover(request(false, 1))));
    let report = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Preflight(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(report.passed && !report.started, "{report:?}");
    assert_eq!(report.plan.len(), 1);
    assert!(
        report.plan[0]
            .effect
            .contains("disconnects every user on the primary east"),
        "{:?}",
        report.plan
    );
    assert!(report.notes.iter().any(|n| n.contains("observe mode")));
    assert!(h.calls.is_empty(), "a dry run calls nothing");

    h.input(Input::Command(Command::Failover(request(true, 2))));
    h.run_for(2 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(true))]);
    assert_eq!(h.world.role, [FailoverRole::Backup, FailoverRole::Primary]);
    assert_eq!(
        finished(&h),
        vec![(Trigger::Manual, Outcome::Success, "west".to_string())]
    );
    assert_eq!(h.kind(), StateKind::Cooldown);
}

#[test]
fn s16_a_confirmation_carries_out_only_the_plan_that_was_shown() {
    let mut h = settled(Mode::Observe);
    h.world.up[EAST] = false;
    h.run_for(MINUTE);
    let preflight = |h: &Harness| {
        h.actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Preflight(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    };
    let request = |confirmed, request_id, shown_plan| ManualRequest {
        request_id,
        target: WEST,
        data_sync_first: false,
        force: true,
        demote_peer: false,
        confirmed,
        override_preflight: false,
        by: "gina".into(),
        shown_plan,
        hook: None,
    };
    // Shown while east is down: promote west, nothing to demote.
    h.input(Input::Command(Command::Failover(request(false, 1, None))));
    let shown = preflight(&h);
    assert_eq!(shown.plan.len(), 1, "{shown:?}");
    // East answers again before the operator confirms: --force now means demoting it first.
    h.world.up[EAST] = true;
    h.run_for(MINUTE);
    h.input(Input::Command(Command::Failover(request(
        true,
        2,
        Some(shown.shown()),
    ))));
    let answer = preflight(&h);
    assert!(answer.plan_changed && !answer.started, "{answer:?}");
    assert_eq!(answer.plan.len(), 2, "the new plan is returned to be shown");
    h.run_for(MINUTE);
    assert!(h.calls.is_empty(), "a plan nobody saw was carried out");
    // Confirming the new plan, as shown, carries it out.
    h.input(Input::Command(Command::Failover(request(
        true,
        3,
        Some(answer.shown()),
    ))));
    assert!(preflight(&h).started);
    h.run_for(MINUTE);
    // The plan that was shown and confirmed is the one carried out: east demoted first.
    assert_eq!(h.requests().first(), Some(&(EAST, demote(true))));
}

#[test]
fn s16_a_failing_preflight_refuses_unless_overridden() {
    let mut h = Harness::new(Mode::Auto);
    h.world.sync_frozen_at = Some(h.now - HOUR);
    h.run_for(2 * MINUTE);
    let mut request = ManualRequest {
        request_id: 7,
        demote_peer: false,
        target: WEST,
        data_sync_first: false,
        force: false,
        confirmed: true,
        override_preflight: false,
        by: "erin".into(),
        shown_plan: None,
        hook: None,
    };
    h.input(Input::Command(Command::Failover(request.clone())));
    let report = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Preflight(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!report.passed && !report.started);
    assert!(
        report.problems.iter().any(|p| p.contains("max_sync_age")),
        "{:?}",
        report.problems
    );
    assert!(h.calls.is_empty());

    request.override_preflight = true;
    request.request_id = 8;
    h.input(Input::Command(Command::Failover(request)));
    h.run_for(MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    let record = h.engine.memory().last_failover.clone().unwrap();
    assert!(
        record.overridden && record.trigger == Trigger::Manual,
        "{record:?}"
    );
}

#[test]
fn s16_manual_failover_is_refused_while_one_is_in_flight() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.up[EAST] = false;
    h.run_for(MINUTE);
    assert_eq!(h.calls.len(), 1);
    let request = ManualRequest {
        request_id: 3,
        demote_peer: false,
        target: WEST,
        data_sync_first: false,
        force: false,
        confirmed: true,
        override_preflight: true,
        by: "frank".into(),
        shown_plan: None,
        hook: None,
    };
    h.input(Input::Command(Command::Failover(request)));
    let report = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Preflight(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        !report.started,
        "an override cannot start a second call in flight"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("already in progress"))
    );
    assert_eq!(h.calls.len(), 1);
}

#[test]
fn not_in_failover_is_reported_and_never_acted_on() {
    let mut h = Harness::new(Mode::Auto);
    h.world.role = [FailoverRole::None, FailoverRole::None];
    h.run_for(HOUR);
    assert!(h.calls.is_empty());
    assert_eq!(h.kind(), StateKind::NotInFailover);
    assert!(raised(&h, AlertKind::NotInFailover));
}

#[test]
fn a_call_that_is_never_answered_does_not_wedge_the_site() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert_eq!(h.calls.len(), 3);
    assert_eq!(
        h.engine.state().blocker,
        Some(Blocker::RetriesExhausted),
        "{}",
        h.reason()
    );
    assert!(raised(&h, AlertKind::FailoverFailed));
    h.run_for(HOUR);
    assert_eq!(h.calls.len(), 3);
}

#[test]
fn memory_survives_a_restart_in_cooldown() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(5 * MINUTE);
    assert_eq!(h.calls.len(), 1);
    let memory = h.engine.memory().clone();
    let world = h.world.clone();
    let now = h.now;
    // A new process: same memory, fresh engine; east returns as backup, then west dies.
    let mut h = Harness::with(Mode::Auto, h.engine.config().policy.clone(), memory);
    h.world = world;
    h.now = now;
    h.world.up[EAST] = true;
    h.world.role[EAST] = FailoverRole::Backup;
    h.run_for(MINUTE);
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
    h.world.up[WEST] = false;
    h.run_for(5 * MINUTE);
    assert!(h.calls.is_empty());
    assert_eq!(h.engine.state().blocker, Some(Blocker::Cooldown));
}

#[test]
fn timers_wake_the_engine_for_deadlines_without_a_poll() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.up[EAST] = false;
    h.run_for(MINUTE);
    assert_eq!(h.calls.len(), 1, "{}", h.reason());
    // The call's answer is overdue at converge_timeout after it was sent: that is the next
    // time the engine needs a step, and a tick then (with no poll) ends the attempt.
    let sent = h.now;
    let wake = h.engine.next_wakeup().expect("a deadline is pending");
    let timeout = h.engine.config().policy.converge_timeout;
    assert!(wake > sent && wake <= sent + timeout + Duration::from_secs(1));
    h.now = wake;
    h.input(Input::Tick);
    assert!(
        h.engine
            .journal()
            .any(|d| d.message.contains("no answer to the call")),
        "{}",
        h.reason()
    );
    // Once past, a deadline is not offered again (the driver would spin).
    assert!(h.engine.next_wakeup().is_none_or(|t| t > h.now));
}

#[test]
fn timers_end_a_cooldown_on_time() {
    let mut h = settled(Mode::Auto);
    h.world.up[EAST] = false;
    h.run_for(3 * MINUTE);
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
    let until = h.engine.memory().cooldown_until.expect("cooldown set");
    assert_eq!(h.engine.next_wakeup(), Some(until.to_system_time()));
}

/// The daemon could not write the intent, so it sent no call: nothing counts as an attempt,
/// no cooldown or fencing authority is left behind, automatic action holds with its own
/// blocker and acts by itself once the state directory can be written again.
#[test]
fn an_intent_that_cannot_be_written_sends_nothing_and_counts_nothing() {
    let mut h = settled(Mode::Auto);
    let before = h.engine.memory().clone();
    h.store_writable = false;
    h.world.up[EAST] = false;
    h.run_for(10 * MINUTE);
    assert!(h.calls.is_empty(), "{:?}", h.requests());
    assert_eq!(
        h.engine.state().blocker,
        Some(Blocker::StateUnwritable),
        "{}",
        h.reason()
    );
    assert!(
        h.reason().contains("state directory could not be written"),
        "{}",
        h.reason()
    );
    let memory = h.engine.memory();
    assert_eq!(memory.cooldown_until, before.cooldown_until, "no cooldown");
    assert_eq!(memory.promoted, None, "no authority to fence");
    assert_eq!(memory.retries, None, "not a failed attempt");
    assert_eq!(memory.gave_up, None);
    assert!(memory.episode.is_none());
    assert!(finished(&h).is_empty());
    assert!(
        h.engine
            .journal()
            .any(|d| d.message.contains("not carried out") && d.message.contains("not sent")),
        "the journal says the call was not sent"
    );
    // Writable again: the next attempt goes out, once.
    h.store_writable = true;
    h.run_for(5 * MINUTE);
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    assert_eq!(h.kind(), StateKind::Cooldown, "{}", h.reason());
}

/// A manual failover whose intent cannot be written is not carried out and leaves no trace in
/// the memory; it does not hold automatic action back for anyone else.
#[test]
fn a_manual_failover_without_a_written_intent_is_not_carried_out() {
    let mut h = settled(Mode::Observe);
    h.store_writable = false;
    let request = ManualRequest {
        request_id: 9,
        demote_peer: false,
        target: WEST,
        data_sync_first: true,
        force: false,
        confirmed: true,
        override_preflight: false,
        by: "grace".into(),
        shown_plan: None,
        hook: None,
    };
    h.input(Input::Command(Command::Failover(request)));
    assert!(h.calls.is_empty());
    assert!(h.engine.episode().is_none());
    assert_eq!(h.engine.memory().cooldown_until, None);
    assert_eq!(h.engine.memory().promoted, None);
    assert!(finished(&h).is_empty());
    assert!(
        h.engine
            .journal()
            .any(|d| d.message.starts_with("manual failover not carried out")),
    );
}

/// Every poll of the primary fails on the watchdog's own side (out of descriptors, its
/// resolver) or meets a certificate we refuse, while the backup is healthy: nothing was
/// learnt about the primary, so no streak moves and nothing is called, however long.
#[test]
fn faults_on_our_side_or_a_refused_certificate_never_promote_the_peer() {
    use crate::api::ErrorKind;
    for kind in [ErrorKind::Local, ErrorKind::Certificate] {
        let mut h = settled(Mode::Auto);
        let end = h.now + 10 * MINUTE;
        while h.now < end {
            h.now += h.interval();
            h.world.tick(h.now);
            let mut report = h.world.report();
            report.appliances[EAST].probe = Some(Err(kind));
            report.appliances[EAST].health = Some(Err(kind));
            report.appliances[EAST].topology = Some(Err(kind));
            h.input(Input::Poll(report));
        }
        assert!(h.calls.is_empty(), "{kind}: {:?}", h.requests());
        assert_eq!(
            h.engine.views()[EAST].no_information.map(|(_, k)| k),
            Some(kind),
            "{kind}: these polls observed nothing"
        );
    }
}
