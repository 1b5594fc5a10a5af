//! The configuration file: its types and loading here; every key with its meaning in
//! [`keys`], validation in `reader`, the README reference and the example generated in
//! [`reference`].
//!
//! Validation reports **every** problem at once, each with its key path
//! (`site[1].policy.max_sync_age`), so that an administrator fixes a file in one pass. Unknown
//! keys are errors (a typo must not silently fall back to a default). Secrets are read from a
//! file or an environment variable, never from the file's own values.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::budget::BudgetSettings;
use crate::engine::{Mode, Policy};
use crate::secret::Secret;

pub mod keys;
mod reader;
pub mod reference;

pub use reader::{Found, FoundSite};

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
    pub journal: JournalConfig,
    /// `[[notify]]`: where events are sent.
    pub notify: Vec<NotifyConfig>,
    /// `[pre_failover]`: the hook that may veto an automatic failover.
    pub pre_failover: Option<PreFailoverConfig>,
    pub sites: Vec<SiteConfig>,
    /// Several watchdogs acting as one, coordinated through etcd; `None`: this one alone, its
    /// memory in `state_dir` (the default, unchanged).
    pub cluster: Option<ClusterConfig>,
}

/// The pre-failover hook's name in metrics (no `[[notify]]` hook may take it).
pub const PRE_FAILOVER_HOOK: &str = "pre_failover";

/// The kinds of event a `[[notify]]` hook may ask for.
pub const EVENT_KINDS: [&str; 7] = [
    "state_change",
    "decision_taken",
    "decision_refused",
    "failover_outcome",
    "split_brain",
    "cooldown",
    "pause",
];

/// Where a hook delivers: an HTTP(S) webhook or a program.
#[derive(Debug, Clone, PartialEq)]
pub enum HookTarget {
    /// POSTs the event as JSON; signed with HMAC-SHA256 when `secret_file` is given.
    Webhook {
        url: String,
        secret_file: Option<PathBuf>,
    },
    /// Runs the program (no shell) with the event as JSON on stdin and in the environment.
    Exec { command: Vec<String> },
}

impl fmt::Display for HookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookTarget::Webhook { url, .. } => write!(f, "webhook {url}"),
            HookTarget::Exec { command } => {
                write!(
                    f,
                    "command {}",
                    command.first().map(String::as_str).unwrap_or("")
                )
            }
        }
    }
}

/// One `[[notify]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub name: String,
    pub target: HookTarget,
    /// Bound on one delivery attempt.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one.
    pub retry_backoff: Duration,
    /// The event kinds it receives (every kind when the key is absent).
    pub events: Vec<String>,
}

/// What a pre-failover hook that does not answer in time means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    Proceed,
    Abort,
}

/// The `[pre_failover]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PreFailoverConfig {
    pub target: HookTarget,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
}

/// Size and retention of each site's decision journal (`[journal]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalConfig {
    /// A journal file is rotated when it would grow past this many bytes.
    pub file_bytes: u64,
    /// How many rotated files of a site are kept besides the current one.
    pub max_files: u32,
}

pub const DEFAULT_JOURNAL_FILE_MIB: u32 = 16;
pub const DEFAULT_JOURNAL_FILES: u32 = 8;

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            file_bytes: u64::from(DEFAULT_JOURNAL_FILE_MIB) * 1024 * 1024,
            max_files: DEFAULT_JOURNAL_FILES,
        }
    }
}
/// `[cluster]`: where the instances that work together meet (etcd), and who this one is.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://` or `https://`), tried in turn.
    pub endpoints: Vec<String>,
    /// The key prefix shared by the instances that work together.
    pub name: String,
    /// This instance's id, unique among them.
    pub instance: String,
    pub lease_ttl: Duration,
    /// A private CA bundle for etcd's certificates; when set, only these CAs are trusted.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM) for etcd's client-certificate authentication.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// etcd's own user authentication.
    pub user: Option<String>,
    pub password: Option<SecretSource>,
}

pub const DEFAULT_CLUSTER_NAME: &str = "bt-watchdog";
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct ExporterConfig {
    pub listen: SocketAddr,
    /// TLS and basic-auth settings for the exporter (see `exporter::web_config`).
    pub web_config: Option<PathBuf>,
    /// Per-endpoint latency histograms of every appliance (`request_duration_histograms`).
    pub request_duration_histograms: bool,
}

use crate::api::ApiChoice;

#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    /// A systemd credential (`LoadCredential=`): a file of that name in `$CREDENTIALS_DIRECTORY`;
    /// outside systemd (no such variable: `check-config`, `failover --standalone` from a
    /// shell), the file `credentials_without_systemd` maps the name to, if it does.
    Credential {
        name: String,
        outside_systemd: Option<PathBuf>,
    },
    /// Held in memory by the program itself (`demo`); never read from a configuration file.
    Inline(Secret),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "the secret file {}", path.display()),
            SecretSource::Env(var) => write!(f, "the environment variable {var}"),
            SecretSource::Credential { name, .. } => write!(f, "the systemd credential {name}"),
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
    /// An HTTP(S) proxy for this site's appliances; without one, none is used (proxy
    /// variables in the environment are ignored).
    pub proxy: Option<String>,
    pub appliances: [ApplianceEntry; 2],
    pub poll_interval: Duration,
    pub health_interval: Duration,
    pub request_timeout: Duration,
    pub budget: BudgetSettings,
    pub policy: Policy,
    /// The local address the site's requests leave from (a watchdog host with several
    /// addresses, or routes chosen by source).
    pub source_address: Option<std::net::IpAddr>,
    /// With `[cluster]`: how many instances, this one included, must see an appliance failing
    /// before it counts as failed; `None`: a majority of the live instances.
    pub confirming_views: Option<u32>,
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

/// The largest configuration file read: thousands of sites fit in far less.
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

fn read_config_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_found(path).0
}

/// Reads and validates the file at `path`, and returns too what could be read of it whatever
/// its problems (for `check-config`, which checks secrets and CA files in the same pass).
pub fn load_found(path: &Path) -> (Result<Config, ConfigError>, Found) {
    let origin = path.display().to_string();
    match read_config_text(path) {
        Ok(text) => parse_found(&text, &origin),
        Err(e) => (
            Err(ConfigError {
                origin,
                problems: vec![Problem {
                    path: String::new(),
                    message: format!("cannot be read: {e}"),
                }],
            }),
            Found::default(),
        ),
    }
}

/// Parses and validates configuration text; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_found(text, origin).0
}

fn parse_found(text: &str, origin: &str) -> (Result<Config, ConfigError>, Found) {
    let fail = |problems| ConfigError {
        origin: origin.to_string(),
        problems,
    };
    let parsed: Result<toml::Table, _> = toml::from_str(text);
    let table = match parsed {
        Ok(table) => table,
        Err(e) => {
            let message = e.message().to_string();
            let location = e
                .span()
                .map(|span| {
                    // Counted on bytes: a span that is not on a character boundary cannot panic.
                    let end = span.start.min(text.len());
                    let line = text.as_bytes()[..end]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            return (
                Err(fail(vec![Problem {
                    path: String::new(),
                    message: format!("{location}not valid TOML: {message}"),
                }])),
                Found::default(),
            );
        }
    };
    let mut reader = reader::Reader::default();
    let config = reader.config(table);
    let found = std::mem::take(&mut reader.found);
    if reader.problems.is_empty()
        && let Some(config) = config
    {
        return (Ok(config), found);
    }
    (Err(fail(reader.problems)), found)
}

/// The packaged unit's `LoadCredential=`, which `credentials_without_systemd` mirrors by default.
pub const DEFAULT_CREDENTIALS_WITHOUT_SYSTEMD: &str = "secrets:/etc/bt-watchdog/secrets";

/// Reads a file that holds a secret, refusing one that everyone may read: a secret others
/// could have read is not one, and a daemon that starts anyway hides that.
fn read_secret_file(path: &Path, source: &SecretSource) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    // The secret file's own description names its path; a credential's adds the file.
    let what = match source {
        SecretSource::File(_) => source.to_string(),
        _ => format!("{source} ({})", path.display()),
    };
    let unreadable = |e: std::io::Error| format!("{what} cannot be read: {e}");
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.permissions().mode();
    if mode & 0o004 != 0 {
        return Err(format!(
            "{} is readable by everyone (mode {:o}): refused; run `chmod o-rwx {}` (or `chmod 600`) and change the secret if others may have read it",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    // A secret is short; a huge file is a mistake (or a device), not a secret.
    let mut text = String::new();
    file.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    Ok(text)
}

/// A policy table applied over `base` (replay's `--policy` and `--set`): the keys it holds
/// are validated as in a site's `policy` table, the others keep `base`'s values. `mode` may be
/// given too (`"observe"` or `"auto"`).
pub fn patch_policy(
    base: &Policy,
    mut table: toml::Table,
    origin: &str,
) -> Result<(Policy, Option<Mode>), ConfigError> {
    let mut reader = reader::Reader::default();
    let mode = match table.remove("mode") {
        None => None,
        Some(toml::Value::String(m)) if m == "observe" => Some(Mode::Observe),
        Some(toml::Value::String(m)) if m == "auto" => Some(Mode::Auto),
        Some(other) => {
            reader.problems.push(Problem {
                path: "mode".to_string(),
                message: format!("{other} is not a mode: use \"observe\" or \"auto\""),
            });
            None
        }
    };
    let policy = reader.policy(&mut table, "", base, base.poll_interval, Duration::ZERO);
    for key in table.keys() {
        reader.problems.push(Problem {
            path: key.clone(),
            message: format!(
                "not a policy key (known: mode, {})",
                keys::known_in("site[].policy").join(", ")
            ),
        });
    }
    if reader.problems.is_empty() {
        Ok((policy, mode))
    } else {
        Err(ConfigError {
            origin: origin.to_string(),
            problems: reader.problems,
        })
    }
}

/// Reads a site's client secret.
pub fn read_secret(source: &SecretSource) -> Result<Secret, String> {
    let value = match source {
        SecretSource::File(path) => read_secret_file(path, source)?,
        SecretSource::Env(var) => std::env::var(var).map_err(|_| format!("{source} is not set"))?,
        SecretSource::Credential {
            name,
            outside_systemd,
        } => match (std::env::var_os("CREDENTIALS_DIRECTORY"), outside_systemd) {
            (Some(dir), _) => read_secret_file(&Path::new(&dir).join(name), source)?,
            (None, Some(path)) => read_secret_file(path, source).map_err(|e| {
                format!("{e} ($CREDENTIALS_DIRECTORY is not set, so outside systemd it is read from {}, as credentials_without_systemd says; run as root, or as a user who may read it)", path.display())
            })?,
            (None, None) => {
                return Err(format!(
                    "{source} needs $CREDENTIALS_DIRECTORY, which systemd sets with LoadCredential= (it is not set), and credentials_without_systemd does not name a file for it"
                ));
            }
        },
        SecretSource::Inline(secret) => return Ok(secret.clone()),
    };
    // A trailing newline from `echo … > file` is not part of the secret.
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(format!("{source} is empty"));
    }
    Ok(Secret::new(value))
}

/// Warnings about a secret file's permissions: readable by its group (everyone is refused
/// by [`read_secret`]).
pub fn secret_file_warnings(source: &SecretSource) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = match source {
        SecretSource::File(path) => path.clone(),
        SecretSource::Credential {
            name,
            outside_systemd,
        } => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => Path::new(&dir).join(name),
            None => outside_systemd.clone()?,
        },
        _ => return None,
    };
    let mode = std::fs::metadata(&path).ok()?.permissions().mode();
    (mode & 0o070 != 0 && mode & 0o007 == 0).then(|| {
        format!(
            "{} is readable by its group (mode {:o}); unless that group is meant to read it, run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
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
    fn without_cluster_nothing_changes_and_a_cluster_is_read_and_checked() {
        assert_eq!(parse(GOOD, "good.toml").unwrap().cluster, None);
        let clustered = format!(
            "{GOOD}\n[cluster]\nendpoints = [\"https://etcd-1:2379\", \"http://10.0.0.2:2379/\"]\ninstance = \"east-1\"\nlease_ttl = \"15s\"\n"
        );
        let cluster = parse(&clustered, "c.toml").unwrap().cluster.unwrap();
        assert_eq!(
            cluster.endpoints,
            ["https://etcd-1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            (cluster.name.as_str(), cluster.instance.as_str()),
            (DEFAULT_CLUSTER_NAME, "east-1")
        );
        assert_eq!(cluster.lease_ttl, Duration::from_secs(15));
        let bad = format!(
            "{GOOD}\n[cluster]\nendpoints = [\"etcd-1\"]\nname = \"a/b\"\nlease_ttl = \"1500ms\"\ncert_file = \"/c.pem\"\npassword = \"hunter2\"\n"
        );
        let error = parse(&bad, "bad.toml").unwrap_err();
        let paths: Vec<&str> = error.problems.iter().map(|p| p.path.as_str()).collect();
        for path in [
            "cluster.endpoints[0]",
            "cluster.name",
            "cluster.lease_ttl",
            "cluster.cert_file",
            "cluster.password",
        ] {
            assert!(paths.contains(&path), "{path} not in {error}");
        }
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn absurd_durations_are_refused_with_their_key() {
        let text = GOOD.replace("cooldown = \"30m\"", "cooldown = \"10000y\"");
        let error = parse(&text, "huge.toml").unwrap_err();
        let problem = error
            .problems
            .iter()
            .find(|p| p.path == "site[0].policy.cooldown")
            .expect("the cooldown is named");
        assert!(
            problem.message.contains("longest duration"),
            "{}",
            problem.message
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

    /// The keys the reader took from `text`, whatever problems it found.
    fn taken_from(text: &str) -> std::collections::BTreeSet<String> {
        let mut reader = reader::Reader::default();
        reader.config(toml::from_str(text).unwrap());
        reader.taken
    }

    #[test]
    fn the_reader_takes_exactly_the_documented_keys() {
        let every_key = reference::document(
            |key| reference::example_line(key).map(|(_, value)| (false, value)),
            false,
        );
        let taken = taken_from(&every_key);
        for key in keys::KEYS {
            assert!(
                taken.contains(key.path),
                "{} is documented but the reader ignores it",
                key.path
            );
        }
        for path in &taken {
            let documented = keys::KEYS.iter().any(|key| {
                key.path == path
                    || key.path.starts_with(&format!("{path}."))
                    || key.path.starts_with(&format!("{path}[]."))
            });
            assert!(
                documented,
                "the reader takes {path}, which src/config/keys.rs lacks"
            );
        }
    }

    #[test]
    fn documented_defaults_are_the_defaults() {
        // What an administrator must write, with and without every documented default.
        let required = |key: &keys::Key| match key.when_absent {
            keys::WhenAbsent::Value(_) => None,
            _ => reference::example_line(key).filter(|(commented, _)| !commented),
        };
        let minimal = reference::document(required, false);
        let explicit = reference::document(
            |key| match key.when_absent {
                keys::WhenAbsent::Value(value) => Some((false, value)),
                _ => required(key),
            },
            false,
        );
        assert_eq!(
            parse(&minimal, "minimal").unwrap(),
            parse(&explicit, "explicit").unwrap(),
            "a default in src/config/keys.rs differs from the reader's:\n{explicit}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = parse("mode = \"auto\"\n[exporter\n", "x.toml").unwrap_err();
        assert!(error.problems[0].message.contains("line 2"), "{error}");
    }

    #[test]
    fn plain_http_needs_the_site_to_say_so() {
        let text = GOOD.replace("https://east", "http://east");
        let error = parse(&text, "x").unwrap_err();
        let problem = &error.problems[0];
        assert_eq!(problem.path, "site[0].appliances[0].url");
        assert!(problem.message.contains("allow_plain_http"), "{problem}");
        let allowed = text.replace(
            "client_id = \"watchdog\"",
            "client_id = \"watchdog\"\nallow_plain_http = true",
        );
        assert!(parse(&allowed, "x").is_ok());
    }

    #[test]
    fn a_proxy_is_used_only_when_configured_and_must_be_a_url() {
        assert_eq!(parse(GOOD, "x").unwrap().sites[0].proxy, None);
        let with = GOOD.replace(
            "client_id = \"watchdog\"",
            "client_id = \"watchdog\"\nproxy = \"http://proxy:3128\"",
        );
        assert_eq!(
            parse(&with, "x").unwrap().sites[0].proxy.as_deref(),
            Some("http://proxy:3128")
        );
        let bad = with.replace("http://proxy:3128", "proxy");
        assert_eq!(
            parse(&bad, "x").unwrap_err().problems[0].path,
            "site[0].proxy"
        );
    }

    #[test]
    fn credentials_outside_systemd_follow_load_credential() {
        let with = |line: &str, name: &str| {
            let text = format!(
                "{line}\n{}",
                GOOD.replace(
                    "client_secret_file = \"/etc/bt-watchdog/support.secret\"",
                    &format!("client_secret_credential = \"{name}\""),
                )
            );
            parse(&text, "x").map(|c| c.sites[0].client_secret.clone())
        };
        let outside = |source: SecretSource| match source {
            SecretSource::Credential {
                outside_systemd, ..
            } => outside_systemd,
            other => panic!("{other:?}"),
        };
        // The default mirrors the packaged unit's LoadCredential=secrets:/etc/bt-watchdog/secrets.
        assert_eq!(
            outside(with("", "secrets_support").unwrap()),
            Some(PathBuf::from("/etc/bt-watchdog/secrets/support"))
        );
        assert_eq!(
            outside(with("credentials_without_systemd = \"db:/srv/db.key\"", "db").unwrap()),
            Some(PathBuf::from("/srv/db.key"))
        );
        assert_eq!(outside(with("", "other").unwrap()), None);
        assert_eq!(
            outside(with("credentials_without_systemd = \"\"", "secrets_support").unwrap()),
            None
        );
        assert_eq!(outside(with("", "secrets_").unwrap()), None);
        let error = with("credentials_without_systemd = \"relative\"", "x").unwrap_err();
        assert_eq!(error.problems[0].path, "credentials_without_systemd");
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
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
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
        std::fs::write(&file, "abc\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = read_secret(&SecretSource::File(file.clone())).unwrap_err();
        assert!(refused.contains("readable by everyone"), "{refused}");
        assert!(
            refused.contains(&format!("chmod o-rwx {}", file.display())),
            "{refused}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_secret(&SecretSource::File(file.clone())).is_ok());
        assert!(
            secret_file_warnings(&SecretSource::File(file.clone()))
                .unwrap()
                .contains("its group")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secret_file_warnings(&SecretSource::File(file)), None);
    }
}
