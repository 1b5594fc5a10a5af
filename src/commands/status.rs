//! `bt-watchdog status`: the live state of every site, from a running daemon's `/status`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::exit::Exit;
use crate::config::{self, SecretSource};
use crate::exporter::status::{SiteStatus, StatusDoc};
use crate::exporter::web_config::{self, ClientView};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "no watchdog answers at {url}: {reason} (is the daemon running, and is exporter.listen right?)"
    )]
    Unreachable { url: String, reason: String },
    #[error("{url} answered something that is not a watchdog status: {reason}")]
    Invalid { url: String, reason: String },
    /// The exporter answered 401: it is there, and wants (other) credentials.
    #[error("unauthorized: {url} {reason}")]
    Unauthorized { url: String, reason: String },
    /// What `status` was given cannot be used (a CA or password file that does not load).
    #[error("{0}")]
    Setup(String),
}

impl StatusError {
    fn exit(&self) -> Exit {
        match self {
            StatusError::Unreachable { .. } | StatusError::Invalid { .. } => Exit::Unavailable,
            StatusError::Unauthorized { .. } => Exit::Unauthorized,
            StatusError::Setup(_) => Exit::Usage,
        }
    }
}

/// The environment variable `status` reads the exporter password from when no
/// `--password-file` is given (never a command-line value: other users see those in `ps`).
pub const PASSWORD_ENV: &str = "BT_WATCHDOG_EXPORTER_PASSWORD";

/// `bt-watchdog status` as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    pub json: bool,
    /// The exporter's base URL; by default built from the configuration.
    pub url: Option<String>,
    pub config: PathBuf,
    /// A CA (PEM) to trust for the exporter's certificate, besides the system's.
    pub ca_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for an exporter that requires mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// How to reach the exporter: where, which certificates to trust, what to present.
#[derive(Debug, Default)]
pub struct Target {
    pub base: String,
    /// PEM files whose certificates are trusted besides the system's.
    pub trust: Vec<PathBuf>,
    pub credentials: Option<(String, Secret)>,
    pub identity: Option<(PathBuf, PathBuf)>,
    /// What the exporter's web configuration asks for, when it was read (for the hints).
    pub asks: Option<ClientView>,
}

/// Prints the daemon's status as a table (or its JSON); the daemon is found at `--url`, or at
/// the exporter address of the configuration, with its scheme and certificate.
pub async fn run(options: StatusOptions) -> Exit {
    let target = match target(&options) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("bt-watchdog: {message}");
            return Exit::Usage;
        }
    };
    match fetch_from(&target).await {
        Ok(doc) if options.json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            Exit::Done
        }
        Ok(doc) => {
            print!("{}", render(&doc));
            Exit::Done
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            error.exit()
        }
    }
}

/// Where and how to ask: `--url` as given, or the configuration's `exporter.listen` (a
/// wildcard address asked on loopback) with `https` and the exporter's own certificate file
/// trusted when its `exporter.web_config` serves TLS.
pub fn target(options: &StatusOptions) -> Result<Target, String> {
    let mut target = Target::default();
    match &options.url {
        Some(url) => target.base = url.clone(),
        None => {
            let config = config::load(&options.config).map_err(|error| {
                format!("{error}\n(give --url http://HOST:PORT to ask a daemon directly)")
            })?;
            let mut listen = config.exporter.listen;
            if listen.ip().is_unspecified() {
                listen.set_ip(match listen {
                    SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                });
            }
            let asks = match &config.exporter.web_config {
                Some(path) => web_config::client_view(path).map_err(|e| e.to_string())?,
                None => ClientView::default(),
            };
            let scheme = if asks.tls_cert_file.is_some() {
                "https"
            } else {
                "http"
            };
            target.base = format!("{scheme}://{listen}");
            // A self-signed exporter certificate, or a file that holds its chain, is then
            // trusted as it is; one signed by a private CA needs --ca-file.
            target.trust.extend(asks.tls_cert_file.clone());
            target.asks = Some(asks);
        }
    }
    target.trust.extend(options.ca_file.clone());
    let password = match &options.password_file {
        Some(path) => Some(config::read_secret(&SecretSource::File(path.clone()))?),
        None => std::env::var(PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Secret::new),
    };
    target.credentials = match (&options.user, password) {
        (Some(user), Some(password)) => Some((user.clone(), password)),
        (Some(user), None) => {
            return Err(format!(
                "--user {user} needs a password: give --password-file FILE or set {PASSWORD_ENV}"
            ));
        }
        (None, Some(_)) if options.password_file.is_some() => {
            return Err("--password-file needs --user".to_string());
        }
        (None, _) => None,
    };
    target.identity = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => return Err("--client-cert and --client-key go together".to_string()),
    };
    Ok(target)
}

/// The status of a daemon whose exporter is plain HTTP without authentication.
pub async fn fetch(base: &str) -> Result<StatusDoc, StatusError> {
    fetch_from(&Target {
        base: base.to_string(),
        ..Target::default()
    })
    .await
}

/// A file's certificates, for trust.
fn certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, StatusError> {
    let pem = std::fs::read(path)
        .map_err(|e| StatusError::Setup(format!("{} cannot be read: {e}", path.display())))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| StatusError::Setup(format!("{}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(StatusError::Setup(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certificates)
}

fn client(target: &Target) -> Result<reqwest::Client, StatusError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .use_rustls_tls();
    for path in &target.trust {
        for certificate in certificates(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some((cert, key)) = &target.identity {
        let mut pem = Vec::new();
        for path in [cert, key] {
            let mut bytes = std::fs::read(path).map_err(|e| {
                StatusError::Setup(format!("{} cannot be read: {e}", path.display()))
            })?;
            pem.append(&mut bytes);
            pem.push(b'\n');
        }
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            StatusError::Setup(format!(
                "--client-cert {} / --client-key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| StatusError::Setup(format!("cannot set up the HTTP client: {e}")))
}

/// An error with its causes: reqwest's own message ("error sending request") hides the one
/// that matters ("invalid peer certificate: UnknownIssuer").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

pub async fn fetch_from(target: &Target) -> Result<StatusDoc, StatusError> {
    let url = format!("{}/status", target.base.trim_end_matches('/'));
    let wants_identity = target.identity.is_none()
        && target
            .asks
            .as_ref()
            .is_some_and(|asks| asks.client_certificate);
    let unreachable = |reason: String| {
        let hint = if wants_identity {
            " (the exporter's web configuration requires a client certificate: give --client-cert and --client-key)"
        } else if reason.to_lowercase().contains("certificate") {
            " (give --ca-file with the CA that signed the exporter's certificate)"
        } else {
            ""
        };
        StatusError::Unreachable {
            url: url.clone(),
            reason: format!("{reason}{hint}"),
        }
    };
    let mut request = client(target)?.get(&url);
    if let Some((user, password)) = &target.credentials {
        request = request.basic_auth(user, Some(password.expose()));
    }
    let response = request.send().await.map_err(|e| unreachable(chain(&e)))?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        let reason = match &target.credentials {
            Some((user, _)) => format!("refused the password of user {user}"),
            None => format!(
                "asks for a user and password: give --user NAME with --password-file FILE (or {PASSWORD_ENV})"
            ),
        };
        return Err(StatusError::Unauthorized { url, reason });
    }
    if !response.status().is_success() {
        return Err(StatusError::Invalid {
            url: url.clone(),
            reason: format!("HTTP {}", response.status()),
        });
    }
    let body = response.bytes().await.map_err(|e| unreachable(chain(&e)))?;
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
        // API problems do not make an appliance unhealthy, but they blind the watchdog to
        // it (or keep it from failing over): never hidden behind the site's state.
        for error in &a.api_errors {
            let _ = writeln!(
                out,
                "  {:<width$}  API ERROR on {}: {}",
                "", error.endpoint, error.message
            );
        }
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
