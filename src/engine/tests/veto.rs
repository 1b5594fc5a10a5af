//! The pre-failover hook's veto, as the engine takes it: a vetoed automatic failover sends
//! nothing, starts no cooldown, counts no attempt, says why, and is asked again after
//! `retry_backoff` while the failure lasts; a manual failover shows the hook's answer and
//! obeys `--force` for a veto.

use std::time::Duration;

use super::harness::*;
use crate::engine::{
    Action, Blocker, CallResult, Command, HookAnswer, Input, ManualRequest, Mode, StateKind,
};

fn settled(mode: Mode) -> Harness {
    let mut h = Harness::new(mode);
    h.run_for(Duration::from_secs(120));
    assert_eq!(h.kind(), StateKind::Healthy, "{}", h.reason());
    h
}

fn veto_last(h: &mut Harness) {
    let call = h.calls.last().expect("a call was decided").clone();
    assert!(call.vetoable && call.first, "{call:?}");
    h.input(Input::CallResult {
        call_id: call.call_id,
        result: CallResult::Vetoed {
            reason: "hook maintenance-check exited with 1: change freeze until 18:00".into(),
        },
    });
}

#[test]
fn a_vetoed_automatic_failover_holds_without_a_cooldown_and_asks_again() {
    let mut h = settled(Mode::Auto);
    h.answer_calls = false;
    h.world.up[EAST] = false;
    let mut waited = Duration::ZERO;
    while h.calls.is_empty() && waited < Duration::from_secs(120) {
        h.cycle();
        waited += h.interval();
    }
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
    veto_last(&mut h);
    assert_eq!(h.kind(), StateKind::FailoverBlocked, "{}", h.reason());
    assert_eq!(h.engine.state().blocker, Some(Blocker::Vetoed));
    assert!(
        h.reason().contains("change freeze until 18:00"),
        "{}",
        h.reason()
    );
    assert_eq!(
        h.engine.memory().cooldown_until,
        None,
        "no cooldown after a veto"
    );
    assert_eq!(h.engine.memory().retries, None, "not a failed attempt");
    assert_eq!(h.engine.memory().episode, None);
    let said: Vec<String> = h
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Journal(d) => Some(d.message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        said.iter()
            .any(|m| m.contains("vetoed by the pre-failover hook")),
        "{said:?}"
    );
    // Held for retry_backoff, then asked again (a new decision, a new call to veto).
    let backoff = h.engine.config().policy.retry_backoff;
    h.run_for(backoff / 2);
    assert_eq!(h.calls.len(), 1, "held while vetoed");
    h.run_for(backoff);
    assert_eq!(h.calls.len(), 2, "asked again after retry_backoff");
    assert!(h.calls[1].vetoable);
}

#[test]
fn a_manual_failover_shows_the_hook_and_force_overrides_its_veto() {
    let mut h = settled(Mode::Auto);
    let request = |force, hook| ManualRequest {
        request_id: 7,
        target: WEST,
        data_sync_first: false,
        force,
        confirmed: true,
        override_preflight: false,
        by: "erin".into(),
        hook: Some(hook),
        demote_peer: false,
        shown_plan: None,
    };
    let veto = HookAnswer::Veto {
        reason: "webhook https://cab.example.com answered 409: change freeze".into(),
    };
    h.input(Input::Command(Command::Failover(request(
        false,
        veto.clone(),
    ))));
    let report = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Preflight(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!report.started && !report.passed, "{report:?}");
    assert!(
        report.problems.iter().any(|p| p.contains("change freeze")),
        "{report:?}"
    );
    assert!(h.calls.is_empty());
    h.input(Input::Command(Command::Failover(request(true, veto))));
    let report = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Preflight(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(report.started, "{report:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("--force overrides")),
        "{report:?}"
    );
    assert!(!h.calls[0].vetoable, "a manual call is not asked again");
}

#[test]
fn too_many_representatives_hold_back_a_switchover_but_never_the_failover_of_a_dead_primary() {
    use crate::api::model::ClientCounts;
    let mut policy = policy();
    policy.max_representatives_for_switchover = Some(2);
    let mut h = Harness::with(Mode::Auto, policy, crate::engine::Memory::default());
    h.run_for(Duration::from_secs(120));
    let counts = ClientCounts {
        by_type: [
            ("rep_console".to_string(), 5),
            ("asset_client".to_string(), 30),
        ]
        .into_iter()
        .collect(),
    };
    let count = |h: &mut Harness| {
        h.now += h.interval();
        h.world.tick(h.now);
        let mut poll = h.world.report();
        poll.appliances[EAST].clients = Some(Ok(counts.clone()));
        h.input(Input::Poll(poll));
    };
    count(&mut h);
    // East answers but is unhealthy: a graceful switchover would disconnect 5 representatives.
    h.world.healthy[EAST] = false;
    for _ in 0..40 {
        count(&mut h);
    }
    assert!(h.calls.is_empty(), "{:?}", h.calls);
    assert_eq!(h.engine.state().blocker, Some(Blocker::ClientsConnected));
    assert!(
        h.reason()
            .contains("5 representatives are connected to east")
            && h.reason()
                .contains("disconnects 30 asset_client, 5 rep_console on east"),
        "{}",
        h.reason()
    );
    // East dies: its users are gone already; the failover is not held back.
    h.world.up[EAST] = false;
    h.run_for(Duration::from_secs(120));
    assert_eq!(h.requests(), vec![(WEST, promote(false))]);
}
