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
    let primary = engine.current_primary().filter(|&p| p != target);
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let in_flight = engine.episode().is_some();
    // Blind, or nothing seen yet: the watchdog has no picture to act on.
    let blind = !engine.views().iter().any(|v| v.answering());

    if in_flight {
        problems.push(
            "a failover is already in progress for this site; wait for it to finish".to_string(),
        );
    }
    if blind {
        problems
            .push("neither appliance answers the watchdog (or none has answered yet)".to_string());
    }
    if engine.current_primary() == Some(target) {
        problems.push(format!("{} is already the primary", names[target]));
    } else if let Some(problem) = engine.backup_problem(target) {
        problems.push(format!("target {problem}"));
    }
    if let Some((_, problem)) = engine.sync_problem(now) {
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
            "in cooldown for {} more; a manual failover restarts it",
            duration(cooldown)
        ));
    }
    if engine.stalled() {
        notes.push(
            "the watchdog's loop stalled recently; its picture may be out of date".to_string(),
        );
    }
    match engine.sync_evidence() {
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
    // Nothing overrides these two: a second call in flight, or acting on a picture that is
    // entirely out of date.
    let may_start =
        request.confirmed && !in_flight && !blind && (passed || request.override_preflight);
    let impact = primary.and_then(|p| engine.impact_of(p, now)).map(Box::new);
    match primary {
        Some(p) => notes.push(engine.impact_text(p, now)),
        None => notes.push("no current primary: no connected clients are known".to_string()),
    }
    let report = PreflightReport {
        request_id: request.request_id,
        passed,
        problems: problems.clone(),
        notes,
        plan: planned,
        started: may_start,
        impact,
    };
    out.push(Action::Preflight(report));

    let summary = describe_plan(&plan, &names);
    if !request.confirmed {
        engine.note(
            now,
            out,
            format!(
                "manual failover preflight by {} ({}): {}",
                request.by,
                if passed { "passed" } else { "refused" },
                summary
            ),
        );
        return;
    }
    if !may_start {
        engine.note(
            now,
            out,
            format!(
                "manual failover by {} refused: {}",
                request.by,
                problems.join("; ")
            ),
        );
        return;
    }
    let overridden = !passed;
    let reason = if overridden {
        format!(
            "manual failover by {} with the preflight overridden ({}): {summary}",
            request.by,
            problems.join("; ")
        )
    } else {
        format!("manual failover by {}: {summary}", request.by)
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
}

fn manual_plan(
    engine: &Engine,
    target: Slot,
    primary: Option<Slot>,
    request: &ManualRequest,
) -> Vec<Step> {
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
