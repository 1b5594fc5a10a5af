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
use crate::api::time::UtcTime;
use crate::config::Config;
use crate::control::audit;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Answer, FailoverRequest, Request};
use crate::daemon::local_site::{LocalSite, LocalSiteError, Settled};
use crate::engine::{PreflightReport, say_duration};
use crate::exporter::status::SiteStatus;

/// How long the CLI follows a failover it started through the daemon before leaving it to
/// the daemon.
const FOLLOW_LIMIT: Duration = Duration::from_secs(15 * 60);

/// How long the daemon may not answer before a followed failover is reported as lost sight of
/// (a restart takes a few seconds; a stopped daemon must not keep the CLI for 15 minutes).
const DAEMON_GONE_AFTER: Duration = Duration::from_secs(10);

pub async fn failover(config: &Config, mut request: FailoverRequest, standalone: bool) -> Exit {
    if let Err(message) = check_names(config, &mut request) {
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
    /// The daemon carrying it out stopped answering.
    DaemonGone {
        advice: String,
    },
}

/// Which failover to follow: the episode the engine started for this request, the appliance
/// it promotes, and when it was asked for (a record older than that is another failover's).
struct Followed<'a> {
    episode: Option<u64>,
    to: &'a str,
    asked_at: String,
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
    async fn follow(&mut self, followed: Followed<'_>) -> Ending;
    /// The request's outcome is known. A daemon writes its audit entries itself as it acts;
    /// a route without one writes it here.
    fn record(&self, request: &FailoverRequest, outcome: String);
}

async fn carry(route: &mut impl Route, request: FailoverRequest) -> Exit {
    let interactive =
        !request.confirm && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let before = route.status().await;
    let asked_at = UtcTime::from_system_time(std::time::SystemTime::now());
    let (report, mode) = match route.submit(&request).await {
        Ok(answer) => answer,
        Err(exit) => return exit,
    };
    print!(
        "{}",
        render_preflight(&request.site, &mode, before.as_ref(), &report)
    );
    if request.confirm {
        return carry_out(route, &request, &report, &asked_at).await;
    }
    let may_go = report.passed || request.override_preflight;
    if interactive && may_go {
        return confirm_interactively(route, request, report).await;
    }
    if may_go {
        println!("Dry run: nothing was changed. Add --confirm to carry this out.");
    } else if report.not_overridable {
        println!("Refused: nothing was changed.");
    } else {
        println!(
            "Refused: nothing was changed (--override-preflight carries it out anyway, if you are sure)."
        );
    }
    route.record(&request, audit::preflight_outcome(&report));
    if report.passed {
        Exit::Done
    } else {
        Exit::Refused
    }
}

/// How many times a plan that changed between showing and confirming is shown again before
/// giving up on a pair that will not hold still.
const MAX_RESHOWN: usize = 3;

/// At a terminal: the operator confirms the plan that was shown, and only that one. If the
/// engine's plan changed meanwhile, nothing is done; the new plan is shown and needs its own
/// confirmation.
async fn confirm_interactively(
    route: &mut impl Route,
    request: FailoverRequest,
    mut report: PreflightReport,
) -> Exit {
    for _ in 0..MAX_RESHOWN {
        if !ask_for_site_name(&request.site) {
            println!("Cancelled: nothing was changed.");
            route.record(&request, audit::preflight_outcome(&report));
            return Exit::NotDone;
        }
        let confirmed = request.confirmed(report.shown());
        let asked_at = UtcTime::from_system_time(std::time::SystemTime::now());
        let (next, mode) = match route.submit(&confirmed).await {
            Ok(answer) => answer,
            Err(exit) => return exit,
        };
        if !next.plan_changed {
            return carry_out(route, &confirmed, &next, &asked_at).await;
        }
        println!(
            "The plan changed since it was shown (the appliances' state moved): nothing was done. The plan now:"
        );
        let now = route.status().await;
        print!(
            "{}",
            render_preflight(&request.site, &mode, now.as_ref(), &next)
        );
        if !(next.passed || request.override_preflight) {
            println!("Refused: nothing was changed.");
            route.record(&request, audit::preflight_outcome(&next));
            return Exit::Refused;
        }
        report = next;
    }
    println!("The plan kept changing; nothing was done. Try again once the pair holds still.");
    route.record(&request, "not done: the plan kept changing".to_string());
    Exit::NotDone
}

/// After a confirmed request: whether it started, then its end.
async fn carry_out(
    route: &mut impl Route,
    request: &FailoverRequest,
    report: &PreflightReport,
    asked_at: &UtcTime,
) -> Exit {
    if !report.started {
        if report.not_overridable || request.override_preflight {
            println!("Not carried out: the preflight refused, and no override sets that aside.");
        } else {
            println!(
                "Not carried out: the preflight refused (use --override-preflight to act anyway, if you are sure)."
            );
        }
        route.record(request, audit::preflight_outcome(report));
        return Exit::Refused;
    }
    if !report.passed {
        println!("Carrying it out with the preflight OVERRIDDEN; this is recorded.");
    }
    println!("{}", route.started());
    let followed = Followed {
        episode: report.episode,
        to: &request.to,
        asked_at: asked_at.to_string(),
    };
    let (exit, outcome) = match route.follow(followed).await {
        Ending::Success => {
            match &request.demote {
                Some(demoted) => println!(
                    "Done: {demoted} is backup, {} the only primary; cooldown started.",
                    request.to
                ),
                None => println!("Done: {} is primary; cooldown started.", request.to),
            }
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
        Ending::DaemonGone { advice } => {
            println!("{advice}");
            (
                Exit::Unavailable,
                "unknown: the daemon stopped answering".to_string(),
            )
        }
    };
    route.record(request, outcome);
    exit
}

/// The site and the target appliance, checked against the configuration before anything is
/// asked of a daemon or an appliance.
/// With `--demote`, `to` becomes the peer that stays primary.
fn check_names(config: &Config, request: &mut FailoverRequest) -> Result<(), String> {
    operator::check_site(config, &request.site)?;
    if request.force && request.data_sync_first {
        // The engine would drop one of them; the operator must choose.
        return Err("--force and --data-sync-first contradict each other: a forced demotion cannot sync data first".to_string());
    }
    let Some(site) = config.sites.iter().find(|s| s.name == request.site) else {
        return Ok(());
    };
    if let Some(demote) = &request.demote {
        let Some(index) = site.appliances.iter().position(|a| a.name == *demote) else {
            return Err(format!(
                "site {} has no appliance {demote:?} (it has {} and {})",
                site.name, site.appliances[0].name, site.appliances[1].name
            ));
        };
        request.to = site.appliances[1 - index].name.clone();
        return Ok(());
    }
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
        let seconds = |s: f64| say_duration(Duration::from_secs_f64(s.max(0.0)));
        let data = status
            .data_sync_age_seconds
            .map(|s| format!("data {} old", seconds(s)))
            .unwrap_or_else(|| "data age unknown".to_string());
        let cooldown = if status.cooldown_remaining_seconds > 0.0 {
            format!(
                "cooldown {} left",
                seconds(status.cooldown_remaining_seconds)
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
            "  {data} (max {}) · {cooldown} · {pause}",
            seconds(status.max_sync_age_seconds)
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
                Answer::Preflight { report, mode } => Ok((*report, mode)),
                other => Err(other),
            },
        )
        .await
    }

    fn started(&self) -> &'static str {
        "Started: the daemon is carrying out the plan and verifying the roles."
    }

    async fn follow(&mut self, followed: Followed<'_>) -> Ending {
        let until = Instant::now() + FOLLOW_LIMIT;
        let mut silent_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let Some(status) = self.status().await else {
                let since = *silent_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DAEMON_GONE_AFTER {
                    return Ending::DaemonGone {
                        advice: format!(
                            "The daemon stopped answering on {} for {}: the failover's outcome is unknown. Check the appliances' roles, and `bt-watchdog status` once the daemon is back (it resumes or verifies the failover when it starts).",
                            self.config.control_socket.display(),
                            say_duration(DAEMON_GONE_AFTER)
                        ),
                    };
                }
                continue;
            };
            silent_since = None;
            let ours_in_progress =
                followed.episode.is_some() && status.failover_in_progress_id == followed.episode;
            if !ours_in_progress {
                // Only the record of this very failover counts: a manual failover to the same
                // appliance that ended after it was asked for.
                let last = status.last_failover.as_ref();
                let field = |name: &str| last.and_then(|f| f[name].as_str()).unwrap_or_default();
                let ours = field("trigger") == "manual"
                    && field("to") == followed.to
                    && field("at") >= followed.asked_at.as_str();
                if ours {
                    return match field("outcome") {
                        "success" => Ending::Success,
                        _ => Ending::Failed(field("reason").to_string()),
                    };
                }
                if status.failover_in_progress_id.is_none() {
                    return Ending::Unknown {
                        advice: "The failover is no longer in progress, but the daemon has no record of its end (it may have been restarted and lost it): check the roles with `bt-watchdog status`.".to_string(),
                    };
                }
            }
            if Instant::now() > until {
                return Ending::Unknown {
                    advice: format!(
                        "Still in progress after {}; the daemon carries on. Follow it with `bt-watchdog status`.",
                        say_duration(FOLLOW_LIMIT)
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
        if let Some(cluster) = &config.cluster {
            match crate::cluster::current_leader(cluster, site).await {
                Ok(Some(leader)) => {
                    eprintln!(
                        "bt-watchdog: instance {leader} of cluster {} leads site {site} (etcd answered): a standalone failover would act beside it, on this host's state file instead of the cluster's memory (its intent and cooldown). Nothing was changed. Drop --standalone: through any running instance the failover goes to the leader.",
                        cluster.name
                    );
                    return Err(Exit::Refused);
                }
                Ok(None) => eprintln!(
                    "bt-watchdog: no instance of cluster {} leads site {site}: acting standalone on this host's state file (the cluster's memory in etcd is not read)",
                    cluster.name
                ),
                Err(error) => eprintln!(
                    "bt-watchdog: etcd did not answer ({error}): acting standalone, as asked (no instance can act on the site while etcd is out of its reach either)"
                ),
            }
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

    async fn follow(&mut self, _followed: Followed<'_>) -> Ending {
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
