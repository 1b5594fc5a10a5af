//! `bt-watchdog status`: the live state of every site, from a running daemon's `/status`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::exit::Exit;
use crate::config;
use crate::exporter::status::{SiteStatus, StatusDoc};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "no watchdog answers at {url}: {reason} (is the daemon running, and is exporter.listen right?)"
    )]
    Unreachable { url: String, reason: String },
    #[error("{url} answered something that is not a watchdog status: {reason}")]
    Invalid { url: String, reason: String },
}

/// Prints the daemon's status as a table (or its JSON); the daemon is found at `url`, or at the
/// exporter address of the configuration.
pub async fn run(json: bool, url: Option<String>, config_path: &Path) -> Exit {
    let base = match url {
        Some(url) => url,
        None => match config::load(config_path) {
            Ok(config) => format!("http://{}", config.exporter.listen),
            Err(error) => {
                eprintln!(
                    "bt-watchdog: {error}\n(give --url http://HOST:PORT to ask a daemon directly)"
                );
                return Exit::Usage;
            }
        },
    };
    match fetch(&base).await {
        Ok(doc) if json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            Exit::Done
        }
        Ok(doc) => {
            print!("{}", render(&doc));
            Exit::Done
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            Exit::Unavailable
        }
    }
}

pub async fn fetch(base: &str) -> Result<StatusDoc, StatusError> {
    let url = format!("{}/status", base.trim_end_matches('/'));
    let unreachable = |reason: String| StatusError::Unreachable {
        url: url.clone(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(StatusError::Invalid {
            url: url.clone(),
            reason: format!("HTTP {}", response.status()),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| StatusError::Invalid {
        url,
        reason: e.to_string(),
    })
}

fn age(seconds: f64) -> String {
    let whole = Duration::from_secs(seconds.max(0.0) as u64);
    humantime::format_duration(whole).to_string()
}

/// The human table.
pub fn render(doc: &StatusDoc) -> String {
    let mut out = String::new();
    if doc.sites.is_empty() {
        out.push_str("no sites\n");
    }
    for site in &doc.sites {
        render_site(&mut out, site);
    }
    out
}

fn render_site(out: &mut String, site: &SiteStatus) {
    let blocker = site
        .blocker
        .as_deref()
        .map(|b| format!(" [{b}]"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}  {}{}  (mode {})",
        site.site,
        site.state.to_uppercase(),
        blocker,
        site.mode
    );
    let width = site
        .appliances
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(4);
    for a in &site.appliances {
        let role = a.failover_role.as_deref().unwrap_or("?");
        let version = a
            .version
            .as_deref()
            .map(|v| format!("  v{v}"))
            .unwrap_or_default();
        let version = match &a.api {
            Some(api) => format!("{version} ({api})"),
            None => version,
        };
        let rate = match (a.ratelimit_remaining, a.ratelimit_limit) {
            (Some(r), Some(l)) => format!("  api {r}/{l} left"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<7}  {}{version}{rate}  {}",
            a.name, role, a.condition, a.url
        );
    }
    let data = match site.data_sync_age_seconds {
        Some(s) => format!(
            "data {} old{} (max {})",
            age(s),
            site.data_sync_source
                .as_deref()
                .map(|from| format!(" per {from}'s last_data_sync"))
                .unwrap_or_default(),
            age(site.max_sync_age_seconds)
        ),
        None => "data age unknown".to_string(),
    };
    let cooldown = if site.cooldown_remaining_seconds > 0.0 {
        format!("cooldown {} left", age(site.cooldown_remaining_seconds))
    } else {
        "no cooldown".to_string()
    };
    let pause = match &site.pause {
        Some(p) => format!("PAUSED by {} since {} ({})", p.by, p.since, p.reason),
        None => "not paused".to_string(),
    };
    let _ = writeln!(out, "  {data} · {cooldown} · {pause}");
    if let Some(cluster) = &site.cluster {
        let leader = cluster.leader.as_deref().unwrap_or("none");
        let mut line = format!(
            "  cluster: this instance {} is {} · leader {leader}",
            cluster.instance, cluster.role
        );
        for vote in &cluster.vantage {
            line.push_str(&format!(
                " · {} failing for {}/{} (need {}){}",
                vote.appliance,
                vote.failing_views,
                vote.live,
                vote.required,
                if vote.partitioned { " PARTITIONED" } else { "" }
            ));
        }
        let _ = writeln!(out, "{line}");
        if let Some(reason) = &cluster.reason {
            let _ = writeln!(out, "  cluster: {reason}");
        }
    }
    let _ = writeln!(out, "  why: {}", site.reason);
    for alert in &site.alerts {
        let _ = writeln!(out, "  ALERT {}: {}", alert.alert, alert.reason);
    }
    for decision in site
        .decisions
        .iter()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let _ = writeln!(out, "  {}  {}", decision.at, decision.message);
    }
    out.push('\n');
}
