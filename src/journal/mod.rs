//! The decision journal: what each site's engine was given and what it decided, one JSON line
//! per step, in `state_dir/journal/`.
//!
//! - [`record`]: the typed lines;
//! - [`writer`]: the writer thread the daemon's site loops hand lines to (never waiting for
//!   the disk, except for the fsync before a failover call);
//! - [`replay`]: the recorded inputs through a fresh engine, with the recorded policy or another
//!   one, and what changed;
//! - here: reading it back (`bt-watchdog journal`, replay, and the status page's timeline).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub mod record;
pub mod replay;
pub mod writer;

pub use record::{ActionRecord, Body, JOURNAL_VERSION, Record, Step};
pub use writer::{Journal, Retention, journal_dir, journal_file};

use crate::engine::Input;

/// Lines read back, and the lines that could not be used (file:line: why).
#[derive(Debug, Default)]
pub struct Reading {
    pub records: Vec<Record>,
    pub problems: Vec<String>,
}

/// The sites that have a journal in `dir`, sorted.
pub fn sites(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut sites = std::collections::BTreeSet::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".jsonl") else {
            continue;
        };
        // `SITE.jsonl` or `SITE.N.jsonl`; site names hold no dots.
        let site = stem.split('.').next().unwrap_or(stem);
        if !site.is_empty() {
            sites.insert(site.to_string());
        }
    }
    Ok(sites.into_iter().collect())
}

/// A site's files, oldest first.
pub fn segments(dir: &Path, site: &str) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let generation = name
                .strip_prefix(site)
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|rest| rest.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(generation) = generation {
                rotated.push((generation, entry.path()));
            }
        }
    }
    rotated.sort_by_key(|(generation, _)| std::cmp::Reverse(*generation));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, path)| path).collect();
    let current = journal_file(dir, site, 0);
    if current.exists() {
        files.push(current);
    }
    files
}

/// Reads one file. `repeat` steps get the poll they repeat back; a line that cannot be used is
/// a problem named by file and line, and the rest is still read (a crash may cut the last line).
pub fn read_file(path: &Path, reading: &mut Reading) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut last_poll: Option<Input> = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut record: Record = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(error) => {
                let newer = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("v").and_then(|v| v.as_u64()))
                    .filter(|v| *v > u64::from(JOURNAL_VERSION));
                reading.problems.push(match newer {
                    Some(v) => format!(
                        "{}:{}: journal format {v} is newer than this bt-watchdog reads ({JOURNAL_VERSION})",
                        path.display(),
                        index + 1
                    ),
                    None => format!("{}:{}: {error}", path.display(), index + 1),
                });
                continue;
            }
        };
        if let Body::Step(step) = &mut record.body {
            if step.repeat {
                match &last_poll {
                    Some(poll) => {
                        step.input = Some(poll.clone());
                        step.repeat = false;
                    }
                    None => reading.problems.push(format!(
                        "{}:{}: repeats a poll this file does not hold",
                        path.display(),
                        index + 1
                    )),
                }
            } else if let Some(poll @ Input::Poll(_)) = &step.input {
                last_poll = Some(poll.clone());
            }
        }
        reading.records.push(record);
    }
    Ok(())
}

/// Every retained line of a site (or of every site), oldest first, from `since` on.
pub fn read(dir: &Path, site: Option<&str>, since: Option<SystemTime>) -> std::io::Result<Reading> {
    let mut reading = Reading::default();
    let sites = match site {
        Some(site) => vec![site.to_string()],
        None => sites(dir)?,
    };
    for site in &sites {
        for path in segments(dir, site) {
            match read_file(&path, &mut reading) {
                Ok(()) => {}
                // Rotated away between the listing and the read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => reading.problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    if let Some(since) = since {
        reading.records.retain(|r| r.now() >= since);
    }
    // Several sites: one timeline.
    reading.records.sort_by_key(|r| r.ns);
    Ok(reading)
}

// The status page's timeline reads these (issue "status page"); until then only the tests do.
#[cfg_attr(not(test), allow(dead_code))]
/// One decision or state change, for a timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    pub at: crate::api::time::UtcTime,
    pub site: String,
    pub state: String,
    pub message: String,
}

#[cfg_attr(not(test), allow(dead_code))]
/// The decisions of the last stretch of a site's history, oldest first: the status page's
/// timeline. `state_dir` is the configuration's; lines that cannot be read are skipped.
pub fn recent_events(state_dir: &Path, site: &str, since: SystemTime) -> Vec<Event> {
    let Ok(reading) = read(&journal_dir(state_dir), Some(site), Some(since)) else {
        return Vec::new();
    };
    events(&reading.records)
}

#[cfg_attr(not(test), allow(dead_code))]
/// The decisions in records, in order.
pub fn events(records: &[Record]) -> Vec<Event> {
    let mut events = Vec::new();
    for record in records {
        if let Body::Step(step) = &record.body {
            for action in &step.actions {
                if let ActionRecord::Decision { state, message } = action {
                    events.push(Event {
                        at: record.at,
                        site: record.site.clone(),
                        state: state.clone(),
                        message: message.clone(),
                    });
                }
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn recent_events_are_the_decisions_of_a_site_since_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, thread) = Journal::start(
            dir.path(),
            Retention::default(),
            std::sync::Arc::new(|_, _| {}),
        );
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (i, site) in ["hq", "hq", "branch", "hq"].iter().enumerate() {
            let step = Step {
                input: Some(Input::Tick),
                repeat: false,
                actions: vec![ActionRecord::Decision {
                    state: "healthy".to_string(),
                    message: format!("decision {i}"),
                }],
                state: "healthy".to_string(),
            };
            journal.write(Record::new(
                site,
                t0 + Duration::from_secs(i as u64 * 60),
                Body::Step(step),
            ));
        }
        drop(journal);
        thread.unwrap().join().unwrap();
        let events = recent_events(dir.path(), "hq", t0 + Duration::from_secs(30));
        let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["decision 1", "decision 3"]);
        assert!(recent_events(dir.path(), "nowhere", t0).is_empty());
    }
}
