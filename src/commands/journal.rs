//! `bt-watchdog journal`: the decision journal, readably (or as JSON lines), from the state
//! directory of a configuration; `--follow` keeps printing what is appended.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::exit::Exit;
use crate::api::model::Health;
use crate::engine::{CallResult, Command, Input};
use crate::journal::{self, ActionRecord, Body, Record};

pub struct JournalOptions {
    pub site: Option<String>,
    pub since: Option<String>,
    pub follow: bool,
    pub json: bool,
}

/// `--since`: a duration back from now (`2h`, `30m`) or a UTC date-time.
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(span) = humantime::parse_duration(text) {
        return Ok(now.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    crate::api::time::UtcTime::parse(text)
        .map(|t| t.to_system_time())
        .map_err(|_| {
            format!("--since {text:?}: give a duration like 2h or 30m, or a UTC date-time like 2025-01-31T08:00:00Z")
        })
}

pub async fn run(config: &Path, options: JournalOptions) -> Exit {
    let config = match super::load_config(config) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    if let Some(site) = &options.site
        && !config.sites.iter().any(|s| &s.name == site)
        && !journal::sites(&journal::journal_dir(&config.state_dir))
            .unwrap_or_default()
            .contains(site)
    {
        eprintln!("bt-watchdog: no site {site:?} in the configuration or the journal");
        return Exit::Usage;
    }
    let since = match options
        .since
        .as_deref()
        .map(|s| parse_since(s, SystemTime::now()))
    {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(message)) => {
            eprintln!("bt-watchdog: {message}");
            return Exit::Usage;
        }
    };
    let dir = journal::journal_dir(&config.state_dir);
    let reading = match journal::read(&dir, options.site.as_deref(), since) {
        Ok(reading) => reading,
        Err(error) => {
            eprintln!(
                "bt-watchdog: cannot read the journal in {}: {error}",
                dir.display()
            );
            return Exit::NotDone;
        }
    };
    for problem in &reading.problems {
        eprintln!("bt-watchdog: skipped: {problem}");
    }
    if reading.records.is_empty() && !options.follow {
        eprintln!(
            "bt-watchdog: the journal in {} holds nothing{}",
            dir.display(),
            if since.is_some() { " in that time" } else { "" }
        );
    }
    for record in &reading.records {
        print_record(record, options.json);
    }
    if options.follow {
        return follow(&dir, options.site.as_deref(), options.json).await;
    }
    Exit::Done
}

/// Prints what is appended to the current files until SIGINT or SIGTERM; a rotated file is
/// read again from its start.
async fn follow(dir: &Path, site: Option<&str>, json: bool) -> Exit {
    // Per file: how far it has been read, and the last full poll (for `repeat` lines).
    let mut offsets: BTreeMap<PathBuf, (u64, Option<Input>)> = BTreeMap::new();
    let sites = |dir: &Path| match site {
        Some(site) => vec![site.to_string()],
        None => journal::sites(dir).unwrap_or_default(),
    };
    for site in sites(dir) {
        let path = journal::journal_file(dir, &site, 0);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        offsets.insert(path, (len, None));
    }
    let stop = super::stop_signal();
    tokio::pin!(stop);
    loop {
        for site in sites(dir) {
            let path = journal::journal_file(dir, &site, 0);
            let (offset, last_poll) = offsets.entry(path.clone()).or_insert((0, None));
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < *offset {
                // Rotated: a new file, from its start.
                *offset = 0;
                *last_poll = None;
            }
            if len == *offset || file.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut text = String::new();
            if file.read_to_string(&mut text).is_err() {
                continue;
            }
            // Only complete lines; the rest is read again next time.
            let complete = text.rfind('\n').map_or(0, |i| i + 1);
            for line in text[..complete].lines() {
                let Ok(mut record) = serde_json::from_str::<Record>(line) else {
                    continue;
                };
                if let Body::Step(step) = &mut record.body {
                    if step.repeat {
                        step.input = last_poll.clone();
                        step.repeat = last_poll.is_none();
                    } else if let Some(poll @ Input::Poll(_)) = &step.input {
                        *last_poll = Some(poll.clone());
                    }
                }
                print_record(&record, json);
            }
            *offset += complete as u64;
        }
        tokio::select! {
            _ = &mut stop => return Exit::Done,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

fn print_record(record: &Record, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(record) {
            println!("{line}");
        }
        return;
    }
    let head = format!("{} {}", record.at, record.site);
    match &record.body {
        Body::Start { config, memory } => {
            println!(
                "{head} started in {} mode ({}, {}); {}",
                config.mode.as_str(),
                config.names.join(" and "),
                policy_words(&config.policy),
                memory_words(memory)
            );
        }
        Body::Checkpoint { config, memory } => println!(
            "{head} (journal file continues: {} mode, {}; {})",
            config.mode.as_str(),
            policy_words(&config.policy),
            memory_words(memory)
        ),
        Body::Reconfigure { config } => println!(
            "{head} configuration reloaded: {} mode, {}",
            config.mode.as_str(),
            policy_words(&config.policy)
        ),
        Body::Gap { lost } => println!("{head} {lost} journal lines lost here"),
        Body::Step(step) => {
            let shown: Vec<&ActionRecord> = step
                .actions
                .iter()
                .filter(|a| !matches!(a, ActionRecord::PollSoon | ActionRecord::Persist { .. }))
                .collect();
            // A quiet poll is not worth a line; its observations are in --json.
            if shown.is_empty()
                && matches!(step.input, Some(Input::Poll(_)) | Some(Input::Tick) | None)
            {
                return;
            }
            println!(
                "{head} [{}] {}",
                step.state,
                step.input
                    .as_ref()
                    .map(input_words)
                    .unwrap_or_else(|| "(the same poll again)".to_string())
            );
            for action in shown {
                println!("    {}", action_words(action));
            }
        }
    }
}

fn policy_words(policy: &crate::engine::Policy) -> String {
    format!(
        "failover_after {}, failure_threshold {}, max_sync_age {}, cooldown {}",
        humantime::format_duration(policy.failover_after),
        policy.failure_threshold,
        humantime::format_duration(policy.max_sync_age),
        humantime::format_duration(policy.cooldown)
    )
}

fn memory_words(memory: &crate::engine::Memory) -> String {
    let mut words = Vec::new();
    if let Some(until) = memory.cooldown_until {
        words.push(format!("cooldown until {until}"));
    }
    if let Some(promoted) = &memory.promoted {
        words.push(format!("promoted {promoted}"));
    }
    if let Some(pause) = &memory.pause {
        words.push(format!("paused by {} ({})", pause.by, pause.reason));
    }
    if memory.episode.is_some() {
        words.push("a failover in progress".to_string());
    }
    if words.is_empty() {
        "nothing remembered".to_string()
    } else {
        format!("remembered: {}", words.join(", "))
    }
}

/// One line for what the engine was given.
pub fn input_words(input: &Input) -> String {
    match input {
        Input::Tick => "time passed".to_string(),
        Input::Poll(report) => {
            let parts: Vec<String> = report
                .appliances
                .iter()
                .enumerate()
                .map(|(slot, a)| {
                    let mut seen = Vec::new();
                    if let Some(probe) = &a.probe {
                        seen.push(match probe {
                            Ok(p) => format!("probe {}", serde_plain(p)),
                            Err(kind) => format!("probe {}", kind.label()),
                        });
                    }
                    if let Some(health) = &a.health {
                        seen.push(match health {
                            Ok(Health::Healthy(base)) => format!(
                                "healthy {}",
                                base.failover_role.map(|r| r.as_str()).unwrap_or("?")
                            ),
                            Ok(Health::Unhealthy { health, .. }) => format!(
                                "unhealthy {}",
                                health.failover_role.map(|r| r.as_str()).unwrap_or("?")
                            ),
                            Err(kind) => format!("health {}", kind.label()),
                        });
                    }
                    format!(
                        "#{}: {}",
                        slot + 1,
                        if seen.is_empty() {
                            "not asked".to_string()
                        } else {
                            seen.join(", ")
                        }
                    )
                })
                .collect();
            format!("poll {}", parts.join("; "))
        }
        Input::CallResult { call_id, result } => match result {
            CallResult::Accepted(a) => format!("call {call_id} accepted ({})", a.message),
            CallResult::Failed { kind, message } => {
                format!("call {call_id} failed ({}: {message})", kind.label())
            }
            CallResult::NotSent { reason } => format!("call {call_id} not sent ({reason})"),
            CallResult::Vetoed { reason } => format!("call {call_id} vetoed ({reason})"),
            CallResult::NeverLeft { kind, message } => {
                format!("call {call_id} never left ({}: {message})", kind.label())
            }
        },
        Input::Command(command) => match command {
            Command::Pause { reason, by } => format!("pause by {by} ({reason})"),
            Command::Resume { by } => format!("resume by {by}"),
            Command::Acknowledge { reason, by } => format!("ack by {by} ({reason})"),
            Command::Failover(request) => format!(
                "manual failover to appliance #{} by {}{}",
                request.target + 1,
                request.by,
                if request.confirmed { "" } else { " (dry run)" }
            ),
        },
    }
}

fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action_words(action: &ActionRecord) -> String {
    match action {
        ActionRecord::Decision { message, .. } => message.clone(),
        ActionRecord::CommandDone { message } => message.clone(),
        ActionRecord::Call {
            appliance, request, ..
        } => format!(
            "CALL POST /failover-role on {appliance}: role={}, data_sync_first={}, force={}",
            request.role, request.data_sync_first, request.force
        ),
        ActionRecord::Finished {
            to,
            outcome,
            trigger,
            ..
        } => format!("{trigger} failover to {to} finished: {outcome}"),
        ActionRecord::Alert {
            alert,
            raised,
            reason,
        } => {
            if *raised {
                format!("ALERT {alert}: {reason}")
            } else {
                format!("alert {alert} cleared")
            }
        }
        ActionRecord::Preflight { report } => format!(
            "preflight {}{}",
            if report.passed { "passed" } else { "refused" },
            if report.problems.is_empty() {
                String::new()
            } else {
                format!(": {}", report.problems.join("; "))
            }
        ),
        ActionRecord::Persist { .. } => "memory saved".to_string(),
        ActionRecord::PollSoon => "poll soon".to_string(),
    }
}
