//! Replay: the recorded inputs through a fresh engine, and what it would have done.
//!
//! With the policy that recorded the journal, the engine is given exactly the recorded inputs
//! at their recorded times, so it must decide exactly as recorded (the journal's own proof).
//! With another policy, the engine is also woken at the times *it* asks for (a shorter
//! `failover_after` acts between two recorded polls), and its failover calls are answered
//! with the recorded answer to the same call when the recorded run made it in the same step,
//! otherwise as accepted. The observations stay the recorded ones: after the first different
//! call, the replayed world is still the one that happened, which replay says.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::record::{ActionRecord, Body, Record};
use crate::api::model::{FailoverAccepted, FailoverRequest};
use crate::api::time::UtcTime;
use crate::engine::{Action, CallResult, Engine, Input, Mode, Policy, SiteConfig};

/// How the replayed configuration differs from the recorded one.
#[derive(Clone, Default)]
pub struct Change {
    /// Applied over each recorded policy: (the new policy, the new mode) from the recorded.
    pub patch: Option<PatchFn>,
}

/// Builds the replayed policy and mode from a recorded policy.
pub type PatchFn = std::sync::Arc<dyn Fn(&Policy) -> Result<(Policy, Option<Mode>), String>>;

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.patch.is_some() {
            "Change(patched)"
        } else {
            "Change(none)"
        })
    }
}

/// A decision worth comparing: a state entered, a failover call, an outcome, an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub at: UtcTime,
    #[serde(skip)]
    pub ns: u64,
    /// What happened, the same words in both runs (it is what they are paired by).
    pub what: String,
    /// The reasons, as the engine gave them.
    pub detail: String,
}

/// One way the replayed decisions differ from the recorded ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub site: String,
    pub what: String,
    /// `earlier`, `later`, `never` (recorded, not replayed), `extra` (replayed only) or
    /// `reason` (same moment, other words).
    pub change: &'static str,
    pub recorded_at: Option<UtcTime>,
    pub replayed_at: Option<UtcTime>,
    /// Replayed minus recorded, when both happened.
    pub seconds: Option<f64>,
    pub recorded: Option<String>,
    pub replayed: Option<String>,
}

/// A policy key whose value changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyChange {
    pub key: String,
    pub recorded: String,
    pub replayed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteReplay {
    pub site: String,
    /// Whether the inputs were given exactly as recorded (the policy did not change).
    pub exact: bool,
    pub policy_changes: Vec<PolicyChange>,
    pub steps: usize,
    pub from: Option<UtcTime>,
    pub to: Option<UtcTime>,
    pub recorded: Vec<Moment>,
    pub replayed: Vec<Moment>,
    pub differences: Vec<Difference>,
    /// What limits the comparison (lines lost, a start in the middle of a run, assumptions).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub sites: Vec<SiteReplay>,
    /// Every difference of every site: empty when the decisions are the same.
    pub differences: Vec<Difference>,
    /// Lines of the journal that could not be read.
    pub problems: Vec<String>,
}

/// Replays the records (of any number of sites, oldest first).
pub fn replay(records: &[Record], change: &Change) -> Result<ReplayReport, String> {
    let mut by_site: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in records {
        by_site
            .entry(record.site.as_str())
            .or_default()
            .push(record);
    }
    let mut sites = Vec::new();
    for (site, records) in by_site {
        sites.push(replay_site(site, &records, change)?);
    }
    let differences = sites
        .iter()
        .flat_map(|s| s.differences.iter().cloned())
        .collect();
    Ok(ReplayReport {
        sites,
        differences,
        problems: Vec::new(),
    })
}

fn patched(config: &SiteConfig, change: &Change) -> Result<SiteConfig, String> {
    let Some(patch) = &change.patch else {
        return Ok(config.clone());
    };
    let (policy, mode) = patch(&config.policy)?;
    Ok(SiteConfig {
        names: config.names.clone(),
        mode: mode.unwrap_or(config.mode),
        policy,
    })
}

/// One run's moments, built step by step.
#[derive(Default)]
struct Run {
    moments: Vec<Moment>,
    state: Option<String>,
    /// Decision texts per step, for the exact comparison of reasons.
    decisions: Vec<(u64, String)>,
}

impl Run {
    fn absorb(&mut self, ns: u64, actions: &[ActionRecord], state: &str) {
        let at =
            UtcTime::from_system_time(SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ns));
        let mut last_decision = String::new();
        for action in actions {
            let (what, detail) = match action {
                ActionRecord::Decision { message, .. } => {
                    self.decisions.push((ns, message.clone()));
                    last_decision = message.clone();
                    continue;
                }
                // What an operator command did is said in its decisions already.
                ActionRecord::CommandDone { .. } => continue,
                ActionRecord::Call {
                    appliance,
                    request,
                    trigger,
                    reason,
                    ..
                } => (
                    format!("{trigger} call to {appliance}: {}", describe(request)),
                    reason.clone(),
                ),
                ActionRecord::Finished {
                    to,
                    outcome,
                    reason,
                    trigger,
                    ..
                } => (
                    format!("{trigger} failover to {to} finished: {outcome}"),
                    reason.clone(),
                ),
                ActionRecord::Alert {
                    alert,
                    raised,
                    reason,
                } => (
                    format!(
                        "alert {alert} {}",
                        if *raised { "raised" } else { "cleared" }
                    ),
                    reason.clone(),
                ),
                ActionRecord::Persist { .. }
                | ActionRecord::Preflight { .. }
                | ActionRecord::PollSoon => continue,
            };
            self.moments.push(Moment {
                at,
                ns,
                what,
                detail,
            });
        }
        if self.state.as_deref() != Some(state) {
            self.state = Some(state.to_string());
            self.moments.push(Moment {
                at,
                ns,
                what: format!("state {state}"),
                detail: last_decision,
            });
        }
    }
}

fn describe(request: &FailoverRequest) -> String {
    format!(
        "role={}, data_sync_first={}, force={}",
        request.role, request.data_sync_first, request.force
    )
}

fn records_of(actions: &[Action]) -> Vec<ActionRecord> {
    actions.iter().map(ActionRecord::from_action).collect()
}

fn replay_site(site: &str, records: &[&Record], change: &Change) -> Result<SiteReplay, String> {
    let mut engine: Option<Engine> = None;
    let mut exact = true;
    let mut policy_changes = Vec::new();
    let mut notes = Vec::new();
    let mut recorded = Run::default();
    let mut replayed = Run::default();
    let mut steps = 0usize;
    let mut skipped = 0usize;
    // Recorded call id → the replayed engine's call id for the same call.
    let mut linked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut assumed = 0usize;
    let mut last_ns = 0u64;
    let mut from = None;
    let mut to = None;

    let configure = |config: &SiteConfig,
                     policy_changes: &mut Vec<PolicyChange>,
                     exact: &mut bool|
     -> Result<SiteConfig, String> {
        let new = patched(config, change)?;
        if new != *config {
            *exact = false;
            for change in policy_diff(config, &new) {
                if !policy_changes.contains(&change) {
                    policy_changes.push(change);
                }
            }
        }
        Ok(new)
    };

    for record in records {
        match &record.body {
            Body::Start { config, memory } => {
                let config = configure(config, &mut policy_changes, &mut exact)?;
                engine = Some(Engine::new(config, memory.clone()));
                linked.clear();
            }
            Body::Checkpoint { config, memory } => {
                if engine.is_none() {
                    let config = configure(config, &mut policy_changes, &mut exact)?;
                    engine = Some(Engine::new(config, memory.clone()));
                    notes.push(format!(
                        "the journal begins at {} in the middle of a run (older lines were rotated away): the replay starts there as if the watchdog had restarted, so its first decisions may differ",
                        record.at
                    ));
                }
            }
            Body::Reconfigure { config } => {
                let config = configure(config, &mut policy_changes, &mut exact)?;
                if let Some(engine) = engine.as_mut() {
                    engine.reconfigure(config);
                }
            }
            Body::Gap { lost } => notes.push(format!(
                "{lost} lines were lost at {} (the journal writer could not keep up): decisions after it may differ",
                record.at
            )),
            Body::Step(step) => {
                let Some(engine) = engine.as_mut() else {
                    skipped += 1;
                    continue;
                };
                let Some(input) = step.input.clone() else {
                    skipped += 1;
                    continue;
                };
                steps += 1;
                let now = record.now();
                from.get_or_insert(record.at);
                to = Some(record.at);
                recorded.absorb(record.ns, &step.actions, &step.state);
                if !exact {
                    // The replayed engine is woken when it asks to be, between recorded inputs.
                    for _ in 0..10_000 {
                        let Some(wakeup) = engine.next_wakeup() else {
                            break;
                        };
                        let wakeup_ns = super::record::nanos(wakeup);
                        if wakeup >= now || wakeup_ns <= last_ns {
                            break;
                        }
                        let actions = engine.step(wakeup, Input::Tick);
                        answer_calls(engine, wakeup, &actions, &[], &mut linked, &mut assumed, &mut replayed);
                        last_ns = wakeup_ns;
                    }
                }
                let input = match input {
                    // An answer to a call the replayed engine did not make means nothing to it.
                    Input::CallResult { call_id, result } => {
                        linked.remove(&call_id).map(|ours| Input::CallResult {
                            call_id: ours,
                            result,
                        })
                    }
                    other => Some(other),
                };
                if let Some(input) = input {
                    let actions = engine.step(now, input);
                    answer_calls(
                        engine,
                        now,
                        &actions,
                        &step.actions,
                        &mut linked,
                        &mut assumed,
                        &mut replayed,
                    );
                } else {
                    replayed.absorb(record.ns, &[], engine.state().kind.as_str());
                }
                last_ns = record.ns;
            }
        }
    }
    if skipped > 0 {
        notes.push(format!(
            "{skipped} steps before the first start or checkpoint (or with an unreadable input) were not replayed"
        ));
    }
    if assumed > 0 {
        notes.push(format!(
            "{assumed} failover calls the recorded run did not make were assumed accepted; the observations after them are still the recorded ones"
        ));
    }
    let mut differences = compare(site, &recorded.moments, &replayed.moments);
    if exact && differences.is_empty() {
        // Same policy: the reasons must be the same words at the same moments too.
        for pair in recorded.decisions.iter().zip(replayed.decisions.iter()) {
            let ((r_ns, r), (p_ns, p)) = pair;
            if r != p || r_ns != p_ns {
                differences.push(Difference {
                    site: site.to_string(),
                    what: "decision".to_string(),
                    change: "reason",
                    recorded_at: Some(at(*r_ns)),
                    replayed_at: Some(at(*p_ns)),
                    seconds: Some(seconds_between(*r_ns, *p_ns)),
                    recorded: Some(r.clone()),
                    replayed: Some(p.clone()),
                });
                break;
            }
        }
        if recorded.decisions.len() != replayed.decisions.len() && differences.is_empty() {
            differences.push(Difference {
                site: site.to_string(),
                what: format!(
                    "{} decisions recorded, {} replayed",
                    recorded.decisions.len(),
                    replayed.decisions.len()
                ),
                change: "reason",
                recorded_at: None,
                replayed_at: None,
                seconds: None,
                recorded: None,
                replayed: None,
            });
        }
    }
    Ok(SiteReplay {
        site: site.to_string(),
        exact,
        policy_changes,
        steps,
        from,
        to,
        recorded: recorded.moments,
        replayed: replayed.moments,
        differences,
        notes,
    })
}

/// Takes in the replayed engine's actions: links its calls to the recorded ones of the same
/// step, and answers those the recorded run did not make as accepted.
#[allow(clippy::too_many_arguments)]
fn answer_calls(
    engine: &mut Engine,
    now: SystemTime,
    actions: &[Action],
    recorded: &[ActionRecord],
    linked: &mut BTreeMap<u64, u64>,
    assumed: &mut usize,
    run: &mut Run,
) {
    let mut pending: Vec<Vec<Action>> = vec![actions.to_vec()];
    let mut unmatched: Vec<(u64, &str, FailoverRequest)> = recorded
        .iter()
        .filter_map(|a| match a {
            ActionRecord::Call {
                call_id,
                appliance,
                request,
                ..
            } => Some((*call_id, appliance.as_str(), *request)),
            _ => None,
        })
        .collect();
    // Bounded: an answer leads to at most a few more calls.
    for _ in 0..16 {
        let Some(actions) = pending.pop() else { break };
        let ns = super::record::nanos(now);
        run.absorb(ns, &records_of(&actions), engine.state().kind.as_str());
        for action in &actions {
            let Action::CallFailover(call) = action else {
                continue;
            };
            let matching = unmatched.iter().position(|(_, name, request)| {
                *name == call.appliance_name && *request == call.request
            });
            match matching {
                Some(index) => {
                    let (theirs, _, _) = unmatched.remove(index);
                    linked.insert(theirs, call.call_id);
                }
                None => {
                    *assumed += 1;
                    let answer = engine.step(
                        now,
                        Input::CallResult {
                            call_id: call.call_id,
                            result: CallResult::Accepted(FailoverAccepted {
                                message: "assumed accepted by replay".to_string(),
                                completes_later: call.request.data_sync_first,
                            }),
                        },
                    );
                    pending.push(answer);
                }
            }
        }
    }
}

fn at(ns: u64) -> UtcTime {
    UtcTime::from_system_time(SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
}

fn seconds_between(recorded: u64, replayed: u64) -> f64 {
    (replayed as f64 - recorded as f64) / 1e9
}

/// A moment of either run paired with the same moment of the other, when there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub what: String,
    pub recorded_at: Option<UtcTime>,
    pub replayed_at: Option<UtcTime>,
    /// `same`, `earlier`, `later`, `never` or `extra`.
    pub change: &'static str,
    pub seconds: Option<f64>,
    #[serde(skip)]
    recorded: Option<String>,
    #[serde(skip)]
    replayed: Option<String>,
    #[serde(skip)]
    order: u64,
}

/// Pairs the moments of the two runs by what happened, in order, oldest first.
pub fn pairs(recorded: &[Moment], replayed: &[Moment]) -> Vec<Pair> {
    let mut keys: Vec<&str> = Vec::new();
    for moment in recorded.iter().chain(replayed) {
        if !keys.contains(&moment.what.as_str()) {
            keys.push(&moment.what);
        }
    }
    let mut pairs = Vec::new();
    for key in keys {
        let ours: Vec<&Moment> = recorded.iter().filter(|m| m.what == key).collect();
        let theirs: Vec<&Moment> = replayed.iter().filter(|m| m.what == key).collect();
        for index in 0..ours.len().max(theirs.len()) {
            let (r, p) = (ours.get(index), theirs.get(index));
            let change = match (r, p) {
                (Some(r), Some(p)) if r.ns == p.ns => "same",
                (Some(r), Some(p)) if p.ns < r.ns => "earlier",
                (Some(_), Some(_)) => "later",
                (Some(_), None) => "never",
                (None, Some(_)) => "extra",
                (None, None) => continue,
            };
            pairs.push(Pair {
                what: key.to_string(),
                recorded_at: r.map(|m| m.at),
                replayed_at: p.map(|m| m.at),
                change,
                seconds: match (r, p) {
                    (Some(r), Some(p)) => Some(seconds_between(r.ns, p.ns)),
                    _ => None,
                },
                recorded: r.map(|m| m.detail.clone()),
                replayed: p.map(|m| m.detail.clone()),
                order: match (r, p) {
                    (Some(r), Some(p)) => r.ns.min(p.ns),
                    (Some(m), None) | (None, Some(m)) => m.ns,
                    (None, None) => 0,
                },
            });
        }
    }
    pairs.sort_by_key(|p| p.order);
    pairs
}

/// The pairs that are not the same.
fn compare(site: &str, recorded: &[Moment], replayed: &[Moment]) -> Vec<Difference> {
    pairs(recorded, replayed)
        .into_iter()
        .filter(|p| p.change != "same")
        .map(|p| Difference {
            site: site.to_string(),
            what: p.what,
            change: p.change,
            recorded_at: p.recorded_at,
            replayed_at: p.replayed_at,
            seconds: p.seconds,
            recorded: p.recorded,
            replayed: p.replayed,
        })
        .collect()
}

/// The policy keys (and mode) whose values differ, in words.
fn policy_diff(old: &SiteConfig, new: &SiteConfig) -> Vec<PolicyChange> {
    let mut changes = Vec::new();
    if old.mode != new.mode {
        changes.push(PolicyChange {
            key: "mode".to_string(),
            recorded: old.mode.as_str().to_string(),
            replayed: new.mode.as_str().to_string(),
        });
    }
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (
        serde_json::to_value(&old.policy),
        serde_json::to_value(&new.policy),
    ) else {
        return changes;
    };
    for (key, before) in &a {
        let after = b.get(key).cloned().unwrap_or_default();
        if *before != after {
            changes.push(PolicyChange {
                key: key.clone(),
                recorded: show(before),
                replayed: show(&after),
            });
        }
    }
    changes
}

/// A policy value as the configuration writes it: durations as "30s".
fn show(value: &serde_json::Value) -> String {
    if let (Some(secs), Some(nanos)) = (
        value.get("secs").and_then(|v| v.as_u64()),
        value.get("nanos").and_then(|v| v.as_u64()),
    ) {
        let d = std::time::Duration::new(secs, u32::try_from(nanos).unwrap_or(0));
        return humantime::format_duration(d).to_string();
    }
    value.to_string()
}
