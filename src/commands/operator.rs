//! `failover`, `pause`, `resume`, `ack`: the operator's commands, carried out through the
//! running daemon's control socket (or, for `failover --standalone`, in this process with the
//! state directory locked).

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Config, SiteConfig};
use crate::control::audit::{self, AuditRecord};
use crate::control::client::{self, ClientError};
use crate::control::lock;
use crate::control::protocol::{Answer, Request};
use crate::daemon::site::SiteLoop;
use crate::daemon::store::StateStore;
use crate::daemon::{self};
use crate::engine::{Command, ManualRequest, PreflightReport};
use crate::exporter::metrics::Metrics;
use crate::exporter::status::{Board, SiteStatus};

/// Exit codes, so that scripts can tell the outcomes apart.
pub mod exit {
    pub const DONE: u8 = 0;
    pub const NOT_DONE: u8 = 1;
    /// The preflight refused (dry run or confirmed).
    pub const REFUSED: u8 = 3;
    /// The failover was carried out and failed.
    pub const FAILED: u8 = 4;
    pub const USAGE: u8 = 64;
    pub const NO_DAEMON: u8 = 69;
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the CLI follows a failover it started before leaving it to the daemon.
const FOLLOW_LIMIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct FailoverArgs {
    pub site: String,
    pub to: String,
    pub data_sync_first: bool,
    pub force: bool,
    pub confirm: bool,
    pub override_preflight: bool,
    pub standalone: bool,
}

/// The login name of whoever runs the CLI (through sudo: the one who ran sudo).
pub fn local_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_default()
}

fn find_site<'a>(config: &'a Config, name: &str) -> Result<&'a SiteConfig, String> {
    config.sites.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = config.sites.iter().map(|s| s.name.as_str()).collect();
        format!(
            "no site named {name:?} in the configuration (it has: {})",
            names.join(", ")
        )
    })
}

fn no_daemon_hint(config: &Config, error: &ClientError) -> String {
    format!(
        "{error}.\nTo act without a daemon, add --standalone: it locks {} so that a daemon started meanwhile cannot act at the same time, and records the same audit entry.",
        config.state_dir.display()
    )
}

/// Prints the preflight: the picture, the plan with its effect on users, the verdict.
pub fn render_preflight(
    site: &str,
    mode: &str,
    status: Option<&SiteStatus>,
    report: &PreflightReport,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Site {site} (mode {mode})");
    if let Some(status) = status {
        let _ = writeln!(out, "  state: {} — {}", status.state, status.reason);
        for a in &status.appliances {
            let _ = writeln!(
                out,
                "  {:<8} {:<8} {}",
                a.name,
                a.failover_role.as_deref().unwrap_or("?"),
                a.condition
            );
        }
        let data = status
            .data_sync_age_seconds
            .map(|s| format!("data {}s old", s as u64))
            .unwrap_or_else(|| "data age unknown".to_string());
        let cooldown = if status.cooldown_remaining_seconds > 0.0 {
            format!(
                "cooldown {}s left",
                status.cooldown_remaining_seconds as u64
            )
        } else {
            "no cooldown".to_string()
        };
        let pause = status
            .pause
            .as_ref()
            .map(|p| format!("paused by {} ({})", p.by, p.reason))
            .unwrap_or_else(|| "not paused".to_string());
        let _ = writeln!(
            out,
            "  {data} (max {}s) · {cooldown} · {pause}",
            status.max_sync_age_seconds as u64
        );
    }
    let _ = writeln!(out, "Plan:");
    for (index, call) in report.plan.iter().enumerate() {
        let body = serde_json::to_string(&call.request).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}. POST /api/command/v2/failover-role on {}: {body}",
            index + 1,
            call.appliance
        );
        let _ = writeln!(out, "     {}", call.effect);
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "Notes:");
        for note in &report.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    if report.passed {
        let _ = writeln!(out, "Preflight: PASSED");
    } else {
        let _ = writeln!(out, "Preflight: REFUSED");
        for problem in &report.problems {
            let _ = writeln!(out, "  - {problem}");
        }
    }
    out
}

fn ask_for_site_name(site: &str) -> bool {
    use std::io::Write as _;
    print!("Type the site name ({site}) to carry this out, anything else to cancel: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && line.trim() == site
}

fn failover_request(args: &FailoverArgs, confirm: bool) -> Request {
    Request::Failover {
        site: args.site.clone(),
        to: args.to.clone(),
        data_sync_first: args.data_sync_first,
        force: args.force,
        confirm,
        override_preflight: args.override_preflight,
        user: local_user(),
    }
}

async fn site_status(config: &Config, site: &str) -> Option<SiteStatus> {
    match client::send(
        &config.control_socket,
        &Request::Status {
            site: site.to_string(),
        },
        ANSWER_TIMEOUT,
    )
    .await
    {
        Ok(Answer::Status { status }) => Some(*status),
        _ => None,
    }
}

pub async fn failover(config: &Config, args: FailoverArgs) -> u8 {
    if let Err(message) = find_site(config, &args.site) {
        eprintln!("bt-watchdog: {message}");
        return exit::USAGE;
    }
    if args.standalone {
        return standalone(config, args).await;
    }
    let interactive =
        !args.confirm && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // The picture as it was before anything is done.
    let status = site_status(config, &args.site).await;
    let first = client::send(
        &config.control_socket,
        &failover_request(&args, args.confirm),
        ANSWER_TIMEOUT,
    )
    .await;
    let (report, mode) = match first {
        Ok(Answer::Preflight { report, mode }) => (report, mode),
        Ok(Answer::Refused { message }) => {
            eprintln!("bt-watchdog: refused: {message}");
            return exit::REFUSED;
        }
        Ok(other) => {
            eprintln!("bt-watchdog: unexpected answer: {other:?}");
            return exit::NOT_DONE;
        }
        Err(error @ ClientError::NoDaemon { .. }) => {
            eprintln!("bt-watchdog: {}", no_daemon_hint(config, &error));
            return exit::NO_DAEMON;
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            return exit::NOT_DONE;
        }
    };
    print!(
        "{}",
        render_preflight(&args.site, &mode, status.as_ref(), &report)
    );
    let may_go = report.passed || args.override_preflight;
    if !args.confirm {
        if interactive && may_go && ask_for_site_name(&args.site) {
            return confirmed(config, &args).await;
        }
        if interactive && may_go {
            println!("Cancelled: nothing was changed.");
            return exit::NOT_DONE;
        }
        println!("Dry run: nothing was changed. Add --confirm to carry this out.");
        return if report.passed {
            exit::DONE
        } else {
            exit::REFUSED
        };
    }
    follow(config, &args, &report).await
}

async fn confirmed(config: &Config, args: &FailoverArgs) -> u8 {
    match client::send(
        &config.control_socket,
        &failover_request(args, true),
        ANSWER_TIMEOUT,
    )
    .await
    {
        Ok(Answer::Preflight { report, .. }) => follow(config, args, &report).await,
        Ok(Answer::Refused { message }) => {
            eprintln!("bt-watchdog: refused: {message}");
            exit::REFUSED
        }
        Ok(other) => {
            eprintln!("bt-watchdog: unexpected answer: {other:?}");
            exit::NOT_DONE
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            exit::NOT_DONE
        }
    }
}

/// After a confirmed request: report whether it started, then follow it to its end.
async fn follow(config: &Config, args: &FailoverArgs, report: &PreflightReport) -> u8 {
    if !report.started {
        println!(
            "Not carried out: the preflight refused (use --override-preflight to act anyway, if you are sure)."
        );
        return exit::REFUSED;
    }
    if !report.passed {
        println!("Carrying it out with the preflight OVERRIDDEN; this is recorded.");
    }
    println!("Started: the daemon is carrying out the plan and verifying the roles.");
    let until = Instant::now() + FOLLOW_LIMIT;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(status) = site_status(config, &args.site).await else {
            continue;
        };
        if status.failover_in_progress.is_none() {
            let outcome = status
                .last_failover
                .as_ref()
                .and_then(|f| f["outcome"].as_str())
                .unwrap_or("unknown")
                .to_string();
            let reason = status
                .last_failover
                .as_ref()
                .and_then(|f| f["reason"].as_str())
                .unwrap_or_default()
                .to_string();
            return if outcome == "success" {
                println!("Done: {} is primary; cooldown started.", args.to);
                exit::DONE
            } else {
                println!("Failed: {reason}");
                exit::FAILED
            };
        }
        if Instant::now() > until {
            println!(
                "Still in progress after {} minutes; the daemon carries on. Follow it with `bt-watchdog status`.",
                FOLLOW_LIMIT.as_secs() / 60
            );
            return exit::NOT_DONE;
        }
    }
}

/// The same failover without a daemon: this process locks the state directory, builds the
/// site's engine from its saved memory, looks at the pair, and carries the plan out.
async fn standalone(config: &Config, args: FailoverArgs) -> u8 {
    if let Ok(Answer::Status { .. }) = client::send(
        &config.control_socket,
        &Request::Status {
            site: args.site.clone(),
        },
        Duration::from_secs(5),
    )
    .await
    {
        eprintln!(
            "bt-watchdog: a daemon is running for this configuration: drop --standalone, so that it serializes this with its own actions"
        );
        return exit::REFUSED;
    }
    let _lock = match lock::acquire(&config.state_dir) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            return exit::REFUSED;
        }
    };
    let Ok(site) = find_site(config, &args.site).cloned() else {
        return exit::USAGE;
    };
    let Some(target) = site.appliances.iter().position(|a| a.name == args.to) else {
        eprintln!(
            "bt-watchdog: site {} has no appliance {:?} (it has {} and {})",
            site.name, args.to, site.appliances[0].name, site.appliances[1].name
        );
        return exit::USAGE;
    };
    let metrics = Arc::new(Metrics::new());
    let board = Arc::new(Board::default());
    let clients = match daemon::build_clients(&site, &metrics) {
        Ok(clients) => clients,
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            return exit::USAGE;
        }
    };
    let store = StateStore::new(&config.state_dir, &site.name);
    let memory = match store.load() {
        Ok(memory) => memory,
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            return exit::NOT_DONE;
        }
    };
    let (ready, _) = tokio::sync::oneshot::channel();
    let mut site_loop = SiteLoop::new(
        site.clone(),
        config.mode,
        clients,
        memory,
        store,
        metrics,
        board.clone(),
        ready,
    );
    // A picture of the pair first: a few polls, as a starting daemon would.
    for round in 0..5 {
        site_loop.poll_and_step().await;
        if round >= 1 && site_loop.engine().state().kind != crate::engine::StateKind::Starting {
            break;
        }
        tokio::time::sleep(site.poll_interval.min(Duration::from_secs(1))).await;
    }
    let who = audit::describe_caller(own_uid(&config.state_dir), &local_user());
    let request = ManualRequest {
        request_id: 1,
        target,
        data_sync_first: args.data_sync_first,
        force: args.force,
        confirmed: args.confirm,
        override_preflight: args.override_preflight,
        by: who.clone(),
    };
    let Some(report) = site_loop.operator(Command::Failover(request)).await else {
        eprintln!("bt-watchdog: the engine gave no preflight");
        return exit::NOT_DONE;
    };
    let status = board
        .document()
        .sites
        .into_iter()
        .find(|s| s.site == site.name);
    print!(
        "{}",
        render_preflight(&site.name, config.mode.as_str(), status.as_ref(), &report)
    );
    let mut outcome = match (report.started, report.passed) {
        (false, true) => "preflight passed; nothing done (dry run)".to_string(),
        (false, false) => format!("refused: {}", report.problems.join("; ")),
        (true, _) => "started".to_string(),
    };
    let code = if !report.started {
        if args.confirm {
            println!("Not carried out: the preflight refused.");
            exit::REFUSED
        } else {
            println!("Dry run: nothing was changed. Add --confirm to carry this out.");
            if report.passed {
                exit::DONE
            } else {
                exit::REFUSED
            }
        }
    } else {
        println!("Started (standalone): carrying out the plan and verifying the roles.");
        let settled = site_loop
            .settle(Instant::now() + site.policy.converge_timeout * 3 + Duration::from_secs(30))
            .await;
        let last = site_loop.engine().memory().last_failover.clone();
        match (settled, last) {
            (true, Some(record)) if record.outcome == crate::engine::Outcome::Success => {
                outcome = "success".to_string();
                println!("Done: {} is primary; cooldown started.", args.to);
                exit::DONE
            }
            (true, Some(record)) => {
                outcome = format!("failure: {}", record.reason);
                println!("Failed: {}", record.reason);
                exit::FAILED
            }
            _ => {
                outcome = "unknown: the roles did not settle in time".to_string();
                println!("The roles did not settle in time; check them with the appliances.");
                exit::NOT_DONE
            }
        }
    };
    let details = serde_json::json!({
        "to": args.to, "data_sync_first": args.data_sync_first, "force": args.force,
        "confirm": args.confirm, "override_preflight": args.override_preflight, "standalone": true,
    });
    let record = AuditRecord {
        at: crate::api::time::UtcTime::from_system_time(std::time::SystemTime::now()),
        who,
        site: site.name.clone(),
        action: if args.confirm {
            "failover".to_string()
        } else {
            "failover dry run".to_string()
        },
        details,
        outcome,
    };
    if let Err(error) = audit::append(&config.state_dir, &record) {
        eprintln!("bt-watchdog: cannot write the audit log: {error}");
    }
    code
}

/// The uid this process runs as, read from a file it just created (no unsafe call needed).
fn own_uid(state_dir: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(lock::lock_path(state_dir))
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// `pause`, `resume`, `ack`.
pub async fn simple(config: &Config, request: Request) -> u8 {
    match client::send(&config.control_socket, &request, ANSWER_TIMEOUT).await {
        Ok(Answer::Done { message }) => {
            println!("{message}");
            exit::DONE
        }
        Ok(Answer::Refused { message }) => {
            eprintln!("bt-watchdog: refused: {message}");
            exit::REFUSED
        }
        Ok(other) => {
            eprintln!("bt-watchdog: unexpected answer: {other:?}");
            exit::NOT_DONE
        }
        Err(error @ ClientError::NoDaemon { .. }) => {
            eprintln!("bt-watchdog: {error}; pause, resume and ack act on a running daemon");
            exit::NO_DAEMON
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            exit::NOT_DONE
        }
    }
}
