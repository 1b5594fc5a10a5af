//! The configuration file: types, loading and validation.
//!
//! Validation reports **every** problem at once, each with its key path
//! (`site[1].policy.max_sync_age`), so that an administrator fixes a file in one pass. Unknown
//! keys are errors (a typo must not silently fall back to a default). Secrets are read from a
//! file or an environment variable, never from the file's own values.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::budget::BudgetSettings;
use crate::api::transport::parse_base_url;
use crate::engine::{Mode, Policy};
use crate::secret::Secret;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9877";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bt-watchdog";
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// `/health` may be served from a one-minute cache: asking more often buys nothing.
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Mode,
    pub state_dir: PathBuf,
    /// The local socket for `failover`, `pause`, `resume`, `ack` (default: in `state_dir`).
    pub control_socket: PathBuf,
    pub exporter: ExporterConfig,
    pub sites: Vec<SiteConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExporterConfig {
    pub listen: SocketAddr,
    /// TLS and basic-auth settings for the exporter (see `exporter::web_config`).
    pub web_config: Option<PathBuf>,
}

pub use crate::api::ApiChoice;

#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    /// A systemd credential (`LoadCredential=`): a file of that name in `$CREDENTIALS_DIRECTORY`.
    Credential(String),
    /// Held in memory by the program itself (`demo`); never read from a configuration file.
    Inline(Secret),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "the secret file {}", path.display()),
            SecretSource::Env(var) => write!(f, "the environment variable {var}"),
            SecretSource::Credential(name) => write!(f, "the systemd credential {name}"),
            SecretSource::Inline(_) => f.write_str("the built-in secret"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApplianceEntry {
    pub name: String,
    pub url: String,
    /// Overrides the site's `api` for this appliance (a pair in the middle of an upgrade).
    pub api: Option<ApiChoice>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    pub name: String,
    /// `v2`, `xml`, or `auto` (detected per appliance).
    pub api: ApiChoice,
    pub client_id: String,
    pub client_secret: SecretSource,
    pub ca_file: Option<PathBuf>,
    pub appliances: [ApplianceEntry; 2],
    pub poll_interval: Duration,
    pub health_interval: Duration,
    pub request_timeout: Duration,
    pub budget: BudgetSettings,
    pub policy: Policy,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A configuration that cannot be used, with every reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{}: {count} problem{}",
            self.origin,
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: origin.clone(),
        problems: vec![Problem {
            path: String::new(),
            message: format!("cannot be read: {e}"),
        }],
    })?;
    parse(&text, &origin)
}

/// Parses and validates configuration text; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        origin: origin.to_string(),
        problems,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let location = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        fail(vec![Problem {
            path: String::new(),
            message: format!("{location}not valid TOML: {message}"),
        }])
    })?;
    let mut reader = Reader::default();
    let config = reader.config(table);
    if reader.problems.is_empty()
        && let Some(config) = config
    {
        return Ok(config);
    }
    Err(fail(reader.problems))
}

/// Reads a site's client secret.
pub fn read_secret(source: &SecretSource) -> Result<Secret, String> {
    let value = match source {
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{source} cannot be read: {e}"))?
        }
        SecretSource::Env(var) => std::env::var(var).map_err(|_| format!("{source} is not set"))?,
        SecretSource::Credential(name) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                .ok_or_else(|| format!("{source} needs $CREDENTIALS_DIRECTORY, which systemd sets with LoadCredential= (it is not set)"))?;
            let path = Path::new(&dir).join(name);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("{source} ({}) cannot be read: {e}", path.display()))?
        }
        SecretSource::Inline(secret) => return Ok(secret.clone()),
    };
    // A trailing newline from `echo … > file` is not part of the secret.
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(format!("{source} is empty"));
    }
    Ok(Secret::new(value))
}

/// Warnings about a secret file's permissions (readable by group or others).
pub fn secret_file_warnings(source: &SecretSource) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let SecretSource::File(path) = source else {
        return None;
    };
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is readable by {} (mode {:o}); chmod 600 it",
            path.display(),
            if mode & 0o007 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o777
        )
    })
}

#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
}

/// Path of a key inside a table path.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl Reader {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Reports the keys nobody took.
    fn leftovers(&mut self, table: toml::Table, path: &str, known: &[&str]) {
        for key in table.keys() {
            self.problem(
                join(path, key),
                format!("unknown key (known here: {})", known.join(", ")),
            );
        }
    }

    fn string(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<String> {
        match table.remove(key)? {
            toml::Value::String(s) => Some(s),
            other => {
                self.problem(
                    join(path, key),
                    format!("must be a string, not {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn duration(
        &mut self,
        table: &mut toml::Table,
        path: &str,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(text) = self.string(table, path, key) else {
            return default;
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d > Duration::ZERO => d,
            Ok(_) => {
                self.problem(join(path, key), "must be longer than zero");
                default
            }
            Err(e) => {
                self.problem(
                    join(path, key),
                    format!("{text:?} is not a duration like \"30s\" or \"15m\": {e}"),
                );
                default
            }
        }
    }

    fn integer(
        &mut self,
        table: &mut toml::Table,
        path: &str,
        key: &str,
        default: u32,
        min: u32,
        max: u32,
    ) -> u32 {
        match table.remove(key) {
            None => default,
            Some(toml::Value::Integer(n)) if n >= min as i64 && n <= max as i64 => n as u32,
            Some(toml::Value::Integer(n)) => {
                self.problem(
                    join(path, key),
                    format!("{n} is out of range ({min} to {max})"),
                );
                default
            }
            Some(other) => {
                self.problem(
                    join(path, key),
                    format!("must be an integer, not {}", type_name(&other)),
                );
                default
            }
        }
    }

    fn fraction(&mut self, table: &mut toml::Table, path: &str, key: &str, default: f64) -> f64 {
        let value = match table.remove(key) {
            None => return default,
            Some(toml::Value::Float(f)) => f,
            Some(toml::Value::Integer(n)) => n as f64,
            Some(other) => {
                self.problem(
                    join(path, key),
                    format!("must be a number, not {}", type_name(&other)),
                );
                return default;
            }
        };
        if value > 0.0 && value <= 1.0 {
            value
        } else {
            self.problem(
                join(path, key),
                format!("{value} must be more than 0 and at most 1"),
            );
            default
        }
    }

    fn api_choice(&mut self, table: &mut toml::Table, path: &str) -> Option<ApiChoice> {
        match self.string(table, path, "api").as_deref() {
            None => None,
            Some("v2") => Some(ApiChoice::V2),
            Some("xml") => Some(ApiChoice::Xml),
            Some("auto") => Some(ApiChoice::Auto),
            Some(other) => {
                self.problem(
                    join(path, "api"),
                    format!("{other:?} is not an API: use \"v2\", \"xml\" or \"auto\""),
                );
                None
            }
        }
    }

    fn table(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<toml::Table> {
        match table.remove(key)? {
            toml::Value::Table(t) => Some(t),
            other => {
                self.problem(
                    join(path, key),
                    format!("must be a table, not {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn config(&mut self, mut root: toml::Table) -> Option<Config> {
        let mode = match self.string(&mut root, "", "mode").as_deref() {
            None | Some("observe") => Mode::Observe,
            Some("auto") => Mode::Auto,
            Some(other) => {
                self.problem(
                    "mode",
                    format!("{other:?} is not a mode: use \"observe\" or \"auto\""),
                );
                Mode::Observe
            }
        };
        let state_dir = match self.string(&mut root, "", "state_dir") {
            Some(s) if s.is_empty() => {
                self.problem("state_dir", "must not be empty");
                PathBuf::from(DEFAULT_STATE_DIR)
            }
            Some(s) => PathBuf::from(s),
            None => PathBuf::from(DEFAULT_STATE_DIR),
        };
        let control_socket = match self.string(&mut root, "", "control_socket") {
            Some(s) if s.is_empty() => {
                self.problem("control_socket", "must not be empty");
                crate::control::default_socket(&state_dir)
            }
            Some(s) => PathBuf::from(s),
            None => crate::control::default_socket(&state_dir),
        };
        let mut exporter_table = self.table(&mut root, "", "exporter").unwrap_or_default();
        let listen = match self.string(&mut exporter_table, "exporter", "listen") {
            None => DEFAULT_LISTEN.parse().ok(),
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        "exporter.listen",
                        format!("{text:?} is not an address like \"127.0.0.1:9877\""),
                    );
                    None
                }
            },
        };
        let web_config = self
            .string(&mut exporter_table, "exporter", "web_config")
            .map(PathBuf::from);
        self.leftovers(exporter_table, "exporter", &["listen", "web_config"]);

        let mut sites = Vec::new();
        match root.remove("site") {
            None => self.problem(
                "site",
                "no [[site]] is configured: there is nothing to watch",
            ),
            Some(toml::Value::Array(entries)) => {
                if entries.is_empty() {
                    self.problem(
                        "site",
                        "no [[site]] is configured: there is nothing to watch",
                    );
                }
                for (index, entry) in entries.into_iter().enumerate() {
                    let path = format!("site[{index}]");
                    match entry {
                        toml::Value::Table(table) => {
                            if let Some(site) = self.site(table, &path) {
                                sites.push(site);
                            }
                        }
                        other => self
                            .problem(path, format!("must be a table, not {}", type_name(&other))),
                    }
                }
            }
            Some(other) => self.problem(
                "site",
                format!(
                    "must be an array of tables ([[site]]), not {}",
                    type_name(&other)
                ),
            ),
        }
        let mut seen = BTreeSet::new();
        for (index, site) in sites.iter().enumerate() {
            if !seen.insert(site.name.clone()) {
                self.problem(
                    format!("site[{index}].name"),
                    format!("{:?} is used by another site too", site.name),
                );
            }
        }
        self.leftovers(
            root,
            "",
            &["mode", "state_dir", "control_socket", "exporter", "site"],
        );
        Some(Config {
            mode,
            state_dir,
            control_socket,
            exporter: ExporterConfig {
                listen: listen?,
                web_config,
            },
            sites,
        })
    }

    fn site(&mut self, mut table: toml::Table, path: &str) -> Option<SiteConfig> {
        let problems_before = self.problems.len();
        let name = self.string(&mut table, path, "name").unwrap_or_default();
        if name.is_empty() {
            self.problem(join(path, "name"), "is required");
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.problem(join(path, "name"), format!("{name:?} may contain only letters, digits, '-' and '_' (it names files and metric labels)"));
        }
        let api = self.api_choice(&mut table, path).unwrap_or_default();
        let client_id = self
            .string(&mut table, path, "client_id")
            .unwrap_or_default();
        if client_id.is_empty() {
            self.problem(join(path, "client_id"), "is required");
        } else if client_id.contains(':') {
            self.problem(
                join(path, "client_id"),
                "must not contain ':' (it is sent with HTTP basic authentication)",
            );
        }
        if table.contains_key("client_secret") {
            table.remove("client_secret");
            self.problem(join(path, "client_secret"), "secrets do not belong in the configuration file: use client_secret_file or client_secret_env");
        }
        let secret_file = self.string(&mut table, path, "client_secret_file");
        let secret_env = self.string(&mut table, path, "client_secret_env");
        let secret_credential = self.string(&mut table, path, "client_secret_credential");
        let sources: Vec<SecretSource> = [
            secret_file.map(|f| SecretSource::File(PathBuf::from(f))),
            secret_env.map(SecretSource::Env),
            secret_credential.map(SecretSource::Credential),
        ]
        .into_iter()
        .flatten()
        .collect();
        let client_secret = match <[SecretSource; 1]>::try_from(sources) {
            Ok([source]) => Some(source),
            Err(sources) if sources.is_empty() => {
                self.problem(
                    join(path, "client_secret_file"),
                    "is required (or client_secret_env, or client_secret_credential)",
                );
                None
            }
            Err(_) => {
                self.problem(join(path, "client_secret_file"), "give one of client_secret_file, client_secret_env and client_secret_credential, not several");
                None
            }
        };
        if let Some(SecretSource::Credential(name)) = &client_secret
            && (name.is_empty() || name.contains('/'))
        {
            self.problem(
                join(path, "client_secret_credential"),
                "must be a credential name (as in LoadCredential=NAME:…), not a path",
            );
        }
        let ca_file = self.string(&mut table, path, "ca_file").map(PathBuf::from);
        let appliances = self.appliances(&mut table, path);
        let poll_interval = self.duration(&mut table, path, "poll_interval", DEFAULT_POLL_INTERVAL);
        let health_interval =
            self.duration(&mut table, path, "health_interval", DEFAULT_HEALTH_INTERVAL);
        let request_timeout =
            self.duration(&mut table, path, "request_timeout", DEFAULT_REQUEST_TIMEOUT);
        if health_interval < poll_interval {
            self.problem(
                join(path, "health_interval"),
                "must be at least poll_interval",
            );
        }
        let defaults = BudgetSettings::default();
        let budget = BudgetSettings {
            per_second: self.integer(
                &mut table,
                path,
                "max_requests_per_second",
                defaults.per_second,
                1,
                20,
            ),
            hourly_share: self.fraction(
                &mut table,
                path,
                "hourly_budget_share",
                defaults.hourly_share,
            ),
            ..defaults
        };
        let mut policy_table = self.table(&mut table, path, "policy").unwrap_or_default();
        let policy = self.policy(
            &mut policy_table,
            &join(path, "policy"),
            poll_interval,
            request_timeout,
        );
        self.leftovers(
            policy_table,
            &join(path, "policy"),
            &[
                "failover_after",
                "failure_threshold",
                "max_sync_age",
                "cooldown",
                "converge_timeout",
                "swap_settle",
                "max_attempts",
                "retry_backoff",
                "startup_grace",
                "stall_tolerance",
            ],
        );
        self.leftovers(
            table,
            path,
            &[
                "name",
                "api",
                "client_id",
                "client_secret_file",
                "client_secret_env",
                "client_secret_credential",
                "ca_file",
                "appliances",
                "poll_interval",
                "health_interval",
                "request_timeout",
                "max_requests_per_second",
                "hourly_budget_share",
                "policy",
            ],
        );
        if self.problems.len() > problems_before {
            return None;
        }
        Some(SiteConfig {
            name,
            api,
            client_id,
            client_secret: client_secret?,
            ca_file,
            appliances: appliances?,
            poll_interval,
            health_interval,
            request_timeout,
            budget,
            policy,
        })
    }

    fn appliances(&mut self, table: &mut toml::Table, path: &str) -> Option<[ApplianceEntry; 2]> {
        let key_path = join(path, "appliances");
        let entries = match table.remove("appliances") {
            None => {
                self.problem(
                    key_path,
                    "is required: the two appliances of the failover pair",
                );
                return None;
            }
            Some(toml::Value::Array(entries)) => entries,
            Some(other) => {
                self.problem(
                    key_path,
                    format!(
                        "must be an array of two {{ name, url }} tables, not {}",
                        type_name(&other)
                    ),
                );
                return None;
            }
        };
        if entries.len() != 2 {
            self.problem(
                &key_path,
                format!(
                    "a failover pair has exactly two appliances, not {}",
                    entries.len()
                ),
            );
        }
        let mut parsed = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let entry_path = format!("{key_path}[{index}]");
            let toml::Value::Table(mut entry) = entry else {
                self.problem(
                    entry_path,
                    "must be a table like { name = \"east\", url = \"https://east.example.com\" }",
                );
                continue;
            };
            let name = self
                .string(&mut entry, &entry_path, "name")
                .unwrap_or_default();
            if name.is_empty() {
                self.problem(join(&entry_path, "name"), "is required");
            }
            let url = self
                .string(&mut entry, &entry_path, "url")
                .unwrap_or_default();
            if url.is_empty() {
                self.problem(join(&entry_path, "url"), "is required");
            } else if let Err(e) = parse_base_url(&url) {
                self.problem(join(&entry_path, "url"), e.to_string());
            }
            let api = self.api_choice(&mut entry, &entry_path);
            self.leftovers(entry, &entry_path, &["name", "url", "api"]);
            parsed.push(ApplianceEntry { name, url, api });
        }
        if parsed.len() == 2 && parsed[0].name == parsed[1].name && !parsed[0].name.is_empty() {
            self.problem(
                format!("{key_path}[1].name"),
                format!("{:?} names both appliances", parsed[0].name),
            );
        }
        <[ApplianceEntry; 2]>::try_from(parsed).ok()
    }

    fn policy(
        &mut self,
        table: &mut toml::Table,
        path: &str,
        poll_interval: Duration,
        request_timeout: Duration,
    ) -> Policy {
        let d = Policy::default();
        let policy = Policy {
            failover_after: self.duration(table, path, "failover_after", d.failover_after),
            failure_threshold: self.integer(
                table,
                path,
                "failure_threshold",
                d.failure_threshold,
                1,
                1000,
            ),
            max_sync_age: self.duration(table, path, "max_sync_age", d.max_sync_age),
            cooldown: self.duration(table, path, "cooldown", d.cooldown),
            converge_timeout: self.duration(table, path, "converge_timeout", d.converge_timeout),
            swap_settle: self.duration(table, path, "swap_settle", d.swap_settle),
            max_attempts: self.integer(table, path, "max_attempts", d.max_attempts, 1, 10),
            retry_backoff: self.duration(table, path, "retry_backoff", d.retry_backoff),
            startup_grace: self.duration(table, path, "startup_grace", d.startup_grace),
            poll_interval,
            stall_tolerance: self.duration(
                table,
                path,
                "stall_tolerance",
                d.stall_tolerance.max(poll_interval * 3 + request_timeout),
            ),
        };
        // One poll cycle can take poll_interval plus request_timeout; a tolerance below that
        // would call every slow poll a stall.
        if policy.stall_tolerance <= poll_interval + request_timeout {
            self.problem(join(path, "stall_tolerance"), format!(
                "must be longer than poll_interval + request_timeout ({}), or every slow poll looks like a stall",
                humantime::format_duration(poll_interval + request_timeout)
            ));
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
mode = "auto"
state_dir = "/var/lib/bt-watchdog"

[exporter]
listen = "127.0.0.1:9877"

[[site]]
name = "support"
api = "v2"
client_id = "watchdog"
client_secret_file = "/etc/bt-watchdog/support.secret"
appliances = [
  { name = "east", url = "https://east.example.com" },
  { name = "west", url = "https://west.example.com" },
]
poll_interval = "5s"
request_timeout = "5s"

[site.policy]
failover_after = "30s"
max_sync_age = "15m"
cooldown = "30m"
"#;

    #[test]
    fn the_brief_example_parses() {
        let config = parse(GOOD, "test").unwrap();
        assert_eq!(config.mode, Mode::Auto);
        assert_eq!(config.sites.len(), 1);
        let site = &config.sites[0];
        assert_eq!(site.appliances[1].name, "west");
        assert_eq!(site.policy.max_sync_age, Duration::from_secs(900));
        assert_eq!(site.policy.poll_interval, Duration::from_secs(5));
        assert_eq!(
            site.client_secret,
            SecretSource::File("/etc/bt-watchdog/support.secret".into())
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let bad = r#"
mode = "yolo"
colour = "blue"
[exporter]
listen = "everywhere"
[[site]]
name = "support hq"
client_id = "id"
client_secret = "hunter2"
appliances = [ { name = "east", url = "east.example.com" }, { name = "east", url = "https://w", port = 4 } ]
poll_interval = "fast"
[site.policy]
max_sync_age = "0s"
failure_threshold = 0
failover_afer = "30s"
"#;
        let error = parse(bad, "bad.toml").unwrap_err();
        let paths: Vec<&str> = error.problems.iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "mode",
            "colour",
            "exporter.listen",
            "site[0].name",
            "site[0].client_secret",
            "site[0].appliances[0].url",
            "site[0].appliances[1].name",
            "site[0].appliances[1].port",
            "site[0].poll_interval",
            "site[0].policy.max_sync_age",
            "site[0].policy.failure_threshold",
            "site[0].policy.failover_afer",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.starts_with("bad.toml: "), "{text}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = parse("mode = \"auto\"\n[exporter\n", "x.toml").unwrap_err();
        assert!(error.problems[0].message.contains("line 2"), "{error}");
    }

    #[test]
    fn a_missing_site_is_an_error() {
        let error = parse("mode = \"observe\"\n", "x").unwrap_err();
        assert_eq!(error.problems[0].path, "site");
    }

    #[test]
    fn secrets_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "abc\n").unwrap();
        assert_eq!(
            read_secret(&SecretSource::File(file.clone()))
                .unwrap()
                .expose(),
            "abc"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(
            read_secret(&SecretSource::File(file.clone()))
                .unwrap_err()
                .contains("empty")
        );
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            secret_file_warnings(&SecretSource::File(file.clone()))
                .unwrap()
                .contains("everyone")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secret_file_warnings(&SecretSource::File(file)), None);
    }
}
