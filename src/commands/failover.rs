//! `bt-watchdog failover`: a manual failover, as one flow whichever way it reaches the
//! site's engine: preflight, plan, confirmation, carrying out, following it to its end, and
//! the exit code. A [`Route`] is the only difference between the two ways: through the
//! running daemon's control socket, or (`--standalone`, no daemon running) through a site run
//! in this process with the state directory locked.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::Duration;

use tokio::time::Instant;

use super::exit::Exit;
use super::operator::{self, ANSWER_TIMEOUT};
use crate::config::Config;
use crate::control::audit;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Answer, FailoverRequest, Request};
use crate::daemon::local_site::{LocalSite, LocalSiteError, Settled};
use crate::engine::PreflightReport;
use crate::exporter::status::SiteStatus;

/// How long the CLI follows a failover it started through the daemon before leaving it to
/// the daemon.
const FOLLOW_LIMIT: Duration = Duration::from_secs(15 * 60);

pub async fn failover(config: &Config, request: FailoverRequest, standalone: bool) -> Exit {
    if let Err(message) = check_names(config, &request) {
        eprintln!("bt-watchdog: {message}");
        return Exit::Usage;
    }
    if standalone {
        match InProcess::open(config, &request.site).await {
            Ok(mut route) => carry(&mut route, request).await,
            Err(exit) => exit,
        }
    } else {
        let site = request.site.clone();
        carry(&mut ThroughDaemon { config, site }, request).await
    }
}

/// How a started failover ended.
enum Ending {
    Success,
    Failed(String),
    /// Not known yet; the route says what the operator should do.
    Unknown {
        advice: String,
    },
}

/// The way to a site's engine.
trait Route {
    /// The site as it is before anything is done, for the picture above the plan.
    async fn status(&mut self) -> Option<SiteStatus>;
    /// Hands the request to the engine: its preflight and the watchdog's mode, or the exit
    /// code of a refusal (already printed).
    async fn submit(
        &mut self,
        request: &FailoverRequest,
    ) -> Result<(PreflightReport, String), Exit>;
    /// What the operator reads once the plan has started.
    fn started(&self) -> &'static str;
    /// Waits for a started failover to end.
    async fn follow(&mut self) -> Ending;
    /// The request's outcome is known. A daemon writes its audit entries itself as it acts;
    /// a route without one writes it here.
    fn record(&self, request: &FailoverRequest, outcome: String);
}

async fn carry(route: &mut impl Route, request: FailoverRequest) -> Exit {
    let interactive =
        !request.confirm && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let before = route.status().await;
    let (report, mode) = match route.submit(&request).await {
        Ok(answer) => answer,
        Err(exit) => return exit,
    };
    print!(
        "{}",
        render_preflight(&request.site, &mode, before.as_ref(), &report)
    );
    if request.confirm {
        return carry_out(route, &request, &report).await;
    }
    let may_go = report.passed || request.override_preflight;
    if interactive && may_go {
        if !ask_for_site_name(&request.site) {
            println!("Cancelled: nothing was changed.");
            route.record(&request, audit::preflight_outcome(&report));
            return Exit::NotDone;
        }
        let request = request.confirmed();
        return match route.submit(&request).await {
            Ok((report, _)) => carry_out(route, &request, &report).await,
            Err(exit) => exit,
        };
    }
    println!("Dry run: nothing was changed. Add --confirm to carry this out.");
    route.record(&request, audit::preflight_outcome(&report));
    if report.passed {
        Exit::Done
    } else {
        Exit::Refused
    }
}

/// After a confirmed request: whether it started, then its end.
async fn carry_out(
    route: &mut impl Route,
    request: &FailoverRequest,
    report: &PreflightReport,
) -> Exit {
    if !report.started {
        println!(
            "Not carried out: the preflight refused (use --override-preflight to act anyway, if you are sure)."
        );
        route.record(request, audit::preflight_outcome(report));
        return Exit::Refused;
    }
    if !report.passed {
        println!("Carrying it out with the preflight OVERRIDDEN; this is recorded.");
    }
    println!("{}", route.started());
    let (exit, outcome) = match route.follow().await {
        Ending::Success => {
            println!("Done: {} is primary; cooldown started.", request.to);
            (Exit::Done, "success".to_string())
        }
        Ending::Failed(reason) => {
            println!("Failed: {reason}");
            (Exit::Failed, format!("failure: {reason}"))
        }
        Ending::Unknown { advice } => {
            println!("{advice}");
            (
                Exit::NotDone,
                "unknown: the roles did not settle in time".to_string(),
            )
        }
    };
    route.record(request, outcome);
    exit
}

/// The site and the target appliance, checked against the configuration before anything is
/// asked of a daemon or an appliance.
fn check_names(config: &Config, request: &FailoverRequest) -> Result<(), String> {
    let Some(site) = config.sites.iter().find(|s| s.name == request.site) else {
        let names: Vec<&str> = config.sites.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "no site named {:?} in the configuration (it has: {})",
            request.site,
            names.join(", ")
        ));
    };
    if site.appliances.iter().any(|a| a.name == request.to) {
        return Ok(());
    }
    Err(format!(
        "site {} has no appliance {:?} (it has {} and {})",
        site.name, request.to, site.appliances[0].name, site.appliances[1].name
    ))
}

fn ask_for_site_name(site: &str) -> bool {
    use std::io::Write as _;
    print!("Type the site name ({site}) to carry this out, anything else to cancel: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && line.trim() == site
}

/// The preflight: the picture, the plan with its effect on users, the verdict.
fn render_preflight(
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

/// Through the running daemon, which serializes the request with its own actions.
struct ThroughDaemon<'a> {
    config: &'a Config,
    site: String,
}

impl Route for ThroughDaemon<'_> {
    async fn status(&mut self) -> Option<SiteStatus> {
        let request = Request::Status {
            site: self.site.clone(),
        };
        match client::send(&self.config.control_socket, &request, ANSWER_TIMEOUT).await {
            Ok(Answer::Status { status }) => Some(*status),
            _ => None,
        }
    }

    async fn submit(
        &mut self,
        request: &FailoverRequest,
    ) -> Result<(PreflightReport, String), Exit> {
        operator::ask(
            self.config,
            &Request::Failover(request.clone()),
            |error| no_daemon_hint(self.config, error),
            |answer| match answer {
                Answer::Preflight { report, mode } => Ok((report, mode)),
                other => Err(other),
            },
        )
        .await
    }

    fn started(&self) -> &'static str {
        "Started: the daemon is carrying out the plan and verifying the roles."
    }

    async fn follow(&mut self) -> Ending {
        let until = Instant::now() + FOLLOW_LIMIT;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let Some(status) = self.status().await else {
                continue;
            };
            if status.failover_in_progress.is_none() {
                let last = status.last_failover.as_ref();
                let field = |name: &str| last.and_then(|f| f[name].as_str()).unwrap_or_default();
                return match field("outcome") {
                    "success" => Ending::Success,
                    _ => Ending::Failed(field("reason").to_string()),
                };
            }
            if Instant::now() > until {
                return Ending::Unknown {
                    advice: format!(
                        "Still in progress after {} minutes; the daemon carries on. Follow it with `bt-watchdog status`.",
                        FOLLOW_LIMIT.as_secs() / 60
                    ),
                };
            }
        }
    }

    /// The daemon recorded the request when it answered, and records the failover's end.
    fn record(&self, _request: &FailoverRequest, _outcome: String) {}
}

fn no_daemon_hint(config: &Config, error: &ClientError) -> String {
    format!(
        "{error}.\nTo act without a daemon, add --standalone: it locks {} so that a daemon started meanwhile cannot act at the same time, and records the same audit entry.",
        config.state_dir.display()
    )
}

/// Without a daemon: a site run in this process, with the state directory locked.
struct InProcess {
    site: LocalSite,
}

impl InProcess {
    async fn open(config: &Config, site: &str) -> Result<InProcess, Exit> {
        let request = Request::Status {
            site: site.to_string(),
        };
        let probe = client::send(&config.control_socket, &request, Duration::from_secs(5)).await;
        if let Ok(Answer::Status { .. }) = probe {
            eprintln!(
                "bt-watchdog: a daemon is running for this configuration: drop --standalone, so that it serializes this with its own actions"
            );
            return Err(Exit::Refused);
        }
        LocalSite::open(config, site)
            .await
            .map(|site| InProcess { site })
            .map_err(refusal)
    }
}

/// Prints why the site could not be run here, and gives its exit code.
fn refusal(error: LocalSiteError) -> Exit {
    eprintln!("bt-watchdog: {error}");
    match error {
        LocalSiteError::Lock(_) => Exit::Refused,
        LocalSiteError::UnknownSite(_)
        | LocalSiteError::UnknownAppliance(_)
        | LocalSiteError::Clients(_) => Exit::Usage,
        LocalSiteError::Memory(_) | LocalSiteError::NoPreflight | LocalSiteError::Audit { .. } => {
            Exit::NotDone
        }
    }
}

impl Route for InProcess {
    async fn status(&mut self) -> Option<SiteStatus> {
        self.site.status()
    }

    async fn submit(
        &mut self,
        request: &FailoverRequest,
    ) -> Result<(PreflightReport, String), Exit> {
        let report = self.site.failover(request).await.map_err(refusal)?;
        Ok((report, self.site.mode().as_str().to_string()))
    }

    fn started(&self) -> &'static str {
        "Started (standalone): carrying out the plan and verifying the roles."
    }

    async fn follow(&mut self) -> Ending {
        match self.site.settle().await {
            Settled::Success => Ending::Success,
            Settled::Failed { reason } => Ending::Failed(reason),
            Settled::Unknown => Ending::Unknown {
                advice: "The roles did not settle in time; check them with the appliances."
                    .to_string(),
            },
        }
    }

    fn record(&self, request: &FailoverRequest, outcome: String) {
        self.site.record(request, outcome);
    }
}
