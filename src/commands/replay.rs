//! `bt-watchdog replay`: the recorded observations through the engine with the recorded
//! policy (which must reproduce the recorded decisions) or another one, and what changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::exit::Exit;
use crate::journal::{self, replay};

pub struct ReplayOptions {
    /// A journal file or directory; by default the configuration's.
    pub journal: Option<PathBuf>,
    pub site: Option<String>,
    /// A TOML file of policy keys (bare or under `[policy]`), applied over the recorded policy.
    pub policy: Option<PathBuf>,
    /// `key=value` policy changes, applied after `policy`.
    pub set: Vec<String>,
    pub json: bool,
}

/// The policy keys `--policy` and `--set` give, as one TOML table.
fn changes(options: &ReplayOptions) -> Result<toml::Table, String> {
    let mut table = toml::Table::new();
    if let Some(path) = &options.policy {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--policy {}: cannot be read: {e}", path.display()))?;
        let mut file: toml::Table = toml::from_str(&text)
            .map_err(|e| format!("--policy {}: {}", path.display(), e.message()))?;
        match file.remove("policy") {
            Some(toml::Value::Table(policy)) => {
                table.extend(policy);
                if let Some(mode) = file.remove("mode") {
                    table.insert("mode".to_string(), mode);
                }
                if let Some(key) = file.keys().next() {
                    return Err(format!(
                        "--policy {}: {key} is not a policy key (the file holds a [policy] table, and mode)",
                        path.display()
                    ));
                }
            }
            Some(_) => {
                return Err(format!(
                    "--policy {}: policy must be a table",
                    path.display()
                ));
            }
            None => table.extend(file),
        }
    }
    for setting in &options.set {
        let Some((key, value)) = setting.split_once('=') else {
            return Err(format!(
                "--set {setting:?}: write key=value, as in --set failover_after=10s"
            ));
        };
        let key = key.trim();
        let value = value.trim();
        // A TOML value if it is one (10, true, "10s"), else the text itself (10s, auto).
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        table.insert(key.to_string(), parsed);
    }
    Ok(table)
}

pub fn run(config: Option<&Path>, default_config: &Path, options: ReplayOptions) -> Exit {
    let table = match changes(&options) {
        Ok(table) => table,
        Err(message) => {
            eprintln!("bt-watchdog: {message}");
            return Exit::Usage;
        }
    };
    let source = match &options.journal {
        Some(path) => path.clone(),
        None => match super::load_config(config.unwrap_or(default_config)) {
            Ok(config) => journal::journal_dir(&config.state_dir),
            Err(exit) => return exit,
        },
    };
    let reading = if source.is_dir() {
        journal::read(&source, options.site.as_deref(), None)
    } else {
        let mut reading = journal::Reading::default();
        journal::read_file(&source, &mut reading).map(|()| {
            if let Some(site) = &options.site {
                reading.records.retain(|r| &r.site == site);
            }
            reading
        })
    };
    let reading = match reading {
        Ok(reading) => reading,
        Err(error) => {
            eprintln!(
                "bt-watchdog: cannot read the journal {}: {error}",
                source.display()
            );
            return Exit::NotDone;
        }
    };
    if reading.records.is_empty() {
        eprintln!(
            "bt-watchdog: the journal {} holds nothing to replay{}",
            source.display(),
            options
                .site
                .as_deref()
                .map(|s| format!(" for site {s}"))
                .unwrap_or_default()
        );
        return Exit::NotDone;
    }
    // The changes are checked once against the defaults, so that a bad key is said before
    // anything is replayed, then applied over each recorded policy.
    if let Err(error) =
        crate::config::patch_policy(&crate::engine::Policy::default(), table.clone(), "replay")
    {
        eprintln!("bt-watchdog: {error}");
        return Exit::Usage;
    }
    let change = if table.is_empty() {
        replay::Change::default()
    } else {
        let patch: replay::PatchFn = Arc::new(move |base| {
            crate::config::patch_policy(base, table.clone(), "replay").map_err(|e| e.to_string())
        });
        replay::Change { patch: Some(patch) }
    };
    let mut report = match replay::replay(&reading.records, &change) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("bt-watchdog: {message}");
            return Exit::Usage;
        }
    };
    report.problems = reading.problems;
    if options.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("bt-watchdog: {error}");
                return Exit::NotDone;
            }
        }
        return Exit::Done;
    }
    print_report(&report);
    Exit::Done
}

fn short(at: Option<crate::api::time::UtcTime>) -> String {
    at.map(|t| t.to_string()).unwrap_or_else(|| "-".to_string())
}

fn print_report(report: &replay::ReplayReport) {
    for problem in &report.problems {
        eprintln!("bt-watchdog: skipped: {problem}");
    }
    for site in &report.sites {
        println!(
            "site {}: {} steps replayed, {} to {}",
            site.site,
            site.steps,
            short(site.from),
            short(site.to)
        );
        if site.policy_changes.is_empty() {
            println!("  policy: as recorded (the decisions must be the same)");
        } else {
            for change in &site.policy_changes {
                println!(
                    "  policy: {} {} -> {}",
                    change.key, change.recorded, change.replayed
                );
            }
        }
        let pairs = replay::pairs(&site.recorded, &site.replayed);
        if !pairs.is_empty() {
            let width = pairs
                .iter()
                .map(|p| p.what.len())
                .max()
                .unwrap_or(0)
                .min(70);
            println!(
                "  {:width$}  {:30}  {:30}  CHANGE",
                "WHAT", "RECORDED", "REPLAYED"
            );
            for pair in &pairs {
                let change = match (pair.change, pair.seconds) {
                    ("earlier" | "later", Some(seconds)) => {
                        format!("{:.1}s {}", seconds.abs(), pair.change)
                    }
                    (change, _) => change.to_string(),
                };
                println!(
                    "  {:width$}  {:30}  {:30}  {change}",
                    pair.what,
                    short(pair.recorded_at),
                    short(pair.replayed_at),
                );
            }
        }
        for note in &site.notes {
            println!("  note: {note}");
        }
        if site.differences.is_empty() {
            println!("  no differences: the replayed decisions are the recorded ones");
        } else {
            println!("  {} differences", site.differences.len());
        }
    }
}
