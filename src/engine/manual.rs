//! Manual failover requests: a preflight that lists every problem, a plan that says exactly
//! which calls will be made and what they do to users, and, when confirmed, the same episode
//! machinery as automatic failovers (so the two can never race).

use std::time::{Duration, SystemTime};

use super::action::{Action, PlannedCall, PreflightReport};
use super::episode::Step;
use super::episode::describe_plan;
use super::episode_runner::EpisodeStart;
use super::machine::Engine;
use super::memory::Purpose;
use super::memory::Trigger;
use super::observation::{HookAnswer, ManualRequest, Slot};
use super::policy::Mode;
use super::words::duration;
use crate::api::model::FailoverRole;

pub(super) fn handle(
    engine: &mut Engine,
    now: SystemTime,
    request: ManualRequest,
    out: &mut Vec<Action>,
) {
    let names = engine.config().names.clone();
    let target = request.target.min(1);
    let primary = if request.demote_peer {
        Some(1 - target)
    } else {
        engine.current_primary().filter(|&p| p != target)
    };
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let in_flight = engine.episode().is_some();
    // Blind, or nothing seen yet: the watchdog has no picture to act on.
    let blind = !engine.views().iter().any(|v| v.answering());
    // What no override carries out: here, a demotion that is not the end of a split brain.
    let mut refused_whatever = false;

    if in_flight {
        problems.push(
            "a failover is already in progress for this site; wait for it to finish".to_string(),
        );
    }
    if blind {
        problems
            .push("neither appliance answers the watchdog (or none has answered yet)".to_string());
    }
    if request.demote_peer {
        let demoted = 1 - target;
        for (slot, problem) in demotion_problems(engine, demoted, target) {
            refused_whatever |= slot.is_some();
            problems.push(problem);
        }
        if !refused_whatever {
            notes.push(format!(
            "data written on {} since the pair split is not synced to {}: demote the one clients do not use (the appliance's own fix keeps the one holding the shared IP or DNS name)",
            names[demoted], names[target]
            ));
        }
    } else if engine.current_primary() == Some(target) {
        problems.push(format!("{} is already the primary", names[target]));
    } else if let Some(problem) = engine.backup_problem(target) {
        problems.push(format!("target {problem}"));
    }
    if !request.demote_peer
        && let Some((_, problem)) = engine.sync_problem(now)
    {
        problems.push(problem);
    }
    match &request.hook {
        None => {}
        Some(HookAnswer::Proceed { detail }) => {
            notes.push(format!("the pre-failover hook agrees: {detail}"))
        }
        // The operator's --force overrides the hook's veto (and is recorded with it).
        Some(HookAnswer::Veto { reason }) if request.force => notes.push(format!(
            "the pre-failover hook vetoes ({reason}); --force overrides it"
        )),
        Some(HookAnswer::Veto { reason }) => problems.push(format!(
            "the pre-failover hook vetoes: {reason} (--force overrides it)"
        )),
    }
    if request.data_sync_first && !primary.is_some_and(|p| engine.views()[p].answering()) {
        problems.push(
            "data_sync_first needs the current primary to answer, and it does not".to_string(),
        );
    }

    match engine.config().mode {
        Mode::Observe => notes.push(
            "the site is in observe mode; a confirmed manual failover is still carried out"
                .to_string(),
        ),
        Mode::Auto => {}
    }
    if let Some(pause) = &engine.memory().pause {
        notes.push(format!(
            "automatic action is paused by {} ({}); manual action is not",
            pause.by, pause.reason
        ));
    }
    let cooldown = engine.cooldown_remaining(now);
    if cooldown > Duration::ZERO {
        notes.push(format!(
            "in cooldown for {} more; a manual failover or demotion restarts it",
            duration(cooldown)
        ));
    }
    if engine.stalled() {
        notes.push(
            "the watchdog's loop stalled recently; its picture may be out of date".to_string(),
        );
    }
    match engine.sync_evidence() {
        _ if request.demote_peer => {}
        Some(report) => notes.push(format!(
            "the newest data the target can have is {} old (last_data_sync {} reported by {})",
            duration(report.age_at(now)),
            report.reported,
            report.from.as_deref().unwrap_or("the primary")
        )),
        None => notes.push(
            "the age of the target's data is unknown (the current primary has not reported last_data_sync)"
                .to_string(),
        ),
    }

    let plan = manual_plan(engine, target, primary, &request);
    let planned: Vec<PlannedCall> = plan
        .iter()
        .map(|step| PlannedCall {
            appliance: names[step.appliance].clone(),
            request: step.request,
            effect: effect(step, &names, primary),
        })
        .collect();
    let passed = problems.is_empty();
    let impact = primary.and_then(|p| engine.impact_of(p, now)).map(Box::new);
    match primary {
        Some(p) => notes.push(engine.impact_text(p, now)),
        None => notes.push("no current primary: no connected clients are known".to_string()),
    }
    let mut report = PreflightReport {
        request_id: request.request_id,
        passed,
        problems: problems.clone(),
        notes,
        plan: planned,
        started: false,
        plan_changed: false,
        episode: None,
        not_overridable: refused_whatever,
        impact,
    };
    // A confirmation agrees to the plan it was shown, not to whatever the picture makes of
    // the request by now.
    let plan_changed = request
        .shown_plan
        .as_ref()
        .is_some_and(|shown| *shown != report.shown());
    // Nothing overrides these three: a second call in flight, acting on a picture that is
    // entirely out of date, or a plan nobody saw.
    let may_start = request.confirmed
        && !in_flight
        && !blind
        && !plan_changed
        && !refused_whatever
        && (passed || request.override_preflight);
    report.started = may_start;
    report.plan_changed = plan_changed;

    let summary = describe_plan(&plan, &names);
    let what = if request.demote_peer {
        "manual demotion"
    } else {
        "manual failover"
    };
    // The answer comes before the calls it announces; the episode's id is added once started.
    out.push(Action::Preflight(report));
    if !request.confirmed {
        engine.note(
            now,
            out,
            format!(
                "{what} preflight by {} ({}): {}",
                request.by,
                if passed { "passed" } else { "refused" },
                summary
            ),
        );
        return;
    }
    if plan_changed {
        engine.note(
            now,
            out,
            format!(
                "{what} by {} not started: the plan changed since it was shown; it is now: {summary}",
                request.by
            ),
        );
        return;
    }
    if !may_start {
        engine.note(
            now,
            out,
            format!("{what} by {} refused: {}", request.by, problems.join("; ")),
        );
        return;
    }
    let overridden = !passed;
    let reason = if overridden {
        format!(
            "{what} by {} with the preflight overridden ({}): {summary}",
            request.by,
            problems.join("; ")
        )
    } else if request.demote_peer {
        format!(
            "{what} by {} to end a split brain, {} staying primary: {summary}",
            request.by, names[target]
        )
    } else {
        format!("{what} by {}: {summary}", request.by)
    };
    let _started = engine.start_episode(
        now,
        EpisodeStart {
            purpose: Purpose::Promote,
            trigger: Trigger::Manual,
            from: primary,
            target,
            plan,
            reason,
            overridden,
        },
        out,
    );
    let episode = engine.episode().map(|e| e.id);
    for action in out.iter_mut() {
        if let Action::Preflight(report) = action
            && report.request_id == request.request_id
        {
            report.episode = episode;
        }
    }
}

fn manual_plan(
    engine: &Engine,
    target: Slot,
    primary: Option<Slot>,
    request: &ManualRequest,
) -> Vec<Step> {
    if request.demote_peer {
        // Forced: in a split brain the two usually cannot reach each other, and an unforced
        // demotion would try to hand the role to a peer that already claims it.
        return vec![Step::demote(1 - target, true)];
    }
    let primary_answers = primary.is_some_and(|p| engine.views()[p].answering());
    if request.force {
        match primary {
            Some(p) if primary_answers => vec![Step::demote(p, true), Step::promote(target, false)],
            _ => vec![Step::promote(target, false)],
        }
    } else {
        vec![Step::promote(target, request.data_sync_first)]
    }
}

/// Why `demoted` may not be demoted with `stays` left primary; a problem with a slot is not
/// the end of a split brain (no override carries it out), one without is overridable.
fn demotion_problems(engine: &Engine, demoted: Slot, stays: Slot) -> Vec<(Option<Slot>, String)> {
    let names = &engine.config().names;
    let views = engine.views();
    let reports = |slot: Slot| -> String {
        let view = &views[slot];
        if !view.answering() {
            format!("does not answer ({})", view.condition.describe())
        } else if !view.role_is_current() {
            "has not reported its role since it started answering".to_string()
        } else {
            match view.role() {
                Some(role) => format!("reports {role}"),
                None => "has not reported a role".to_string(),
            }
        }
    };
    let claims_primary = |slot: Slot| {
        let view = &views[slot];
        view.answering() && view.role_is_current() && view.role() == Some(FailoverRole::Primary)
    };
    let mut problems = Vec::new();
    if !claims_primary(demoted) {
        problems.push((
            Some(demoted),
            format!(
                "{} {}, not primary: there is nothing to demote",
                names[demoted],
                reports(demoted)
            ),
        ));
    }
    if !claims_primary(stays) {
        problems.push((
            Some(stays),
            format!(
                "{} {}: demoting {} would leave the pair without a primary (to make {} primary, fail over with --to {})",
                names[stays],
                reports(stays),
                names[demoted],
                names[stays],
                names[stays]
            ),
        ));
    } else if !views[stays].healthy() {
        problems.push((
            None,
            format!(
                "{} is {}: demoting {} leaves it the only primary",
                names[stays],
                views[stays].condition.describe(),
                names[demoted]
            ),
        ));
    }
    problems
}

fn effect(step: &Step, names: &[String; 2], primary: Option<Slot>) -> String {
    let me = &names[step.appliance];
    let old = primary
        .map(|p| names[p].as_str())
        .unwrap_or("the current primary");
    match (
        step.request.role,
        step.request.data_sync_first,
        step.request.force,
    ) {
        (FailoverRole::Primary, true, _) => format!(
            "data_sync_first disconnects every user on the primary {old} until the swap completes; {old} syncs its data to {me}, then {me} becomes primary and {old} backup (both read backup meanwhile)"
        ),
        (FailoverRole::Primary, false, _) => format!(
            "{me} becomes primary at once; clients follow it (shared IP, DNS or NAT swing); if {old} can still be reached it becomes backup, if not it may come back as a second primary"
        ),
        (FailoverRole::Backup, _, true) => format!(
            "{me} becomes backup even if it cannot reach its peer; its users are disconnected"
        ),
        (FailoverRole::Backup, _, false) => format!("{me} hands the primary role to its peer"),
        (FailoverRole::None, _, _) => "nothing".to_string(),
    }
}
