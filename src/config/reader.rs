//! Validation: from a TOML table to a [`Config`], collecting every problem with its key path.
//!
//! The reader takes each key out of its table as it reads it, so what is left at the end of a
//! table is unknown; the known keys named in that message come from [`super::keys::KEYS`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::ApiChoice;

/// The longest duration any key accepts: one year. Documented in the README's reference.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

use super::keys;
use super::{
    ApplianceEntry, ClusterConfig, Config, DEFAULT_CLUSTER_NAME, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_JOURNAL_FILE_MIB, DEFAULT_JOURNAL_FILES, DEFAULT_LEASE_TTL, DEFAULT_LISTEN,
    DEFAULT_POLL_INTERVAL, DEFAULT_REQUEST_TIMEOUT, DEFAULT_STATE_DIR, EVENT_KINDS, ExporterConfig,
    HookTarget, JournalConfig, NotifyConfig, OnTimeout, PRE_FAILOVER_HOOK, PreFailoverConfig,
    Problem, SecretSource, SiteConfig,
};
use crate::api::budget::BudgetSettings;
use crate::api::transport::parse_base_url;
use crate::engine::{Mode, Policy};

/// A proxy URL: http or https, a host, nothing else.
fn check_proxy(proxy: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(proxy).map_err(|e| format!("{proxy:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{proxy:?}: give an http:// or https:// proxy URL with a host"
        ));
    }
    Ok(())
}

const NO_SITE: &str = "no [[site]] is configured: there is nothing to watch";

#[derive(Default)]
pub(super) struct Reader {
    pub(super) problems: Vec<Problem>,
    /// Every key taken, as a generic path (`site[].policy.cooldown`), so that a test can hold
    /// the reader and the key table to each other.
    pub(super) taken: BTreeSet<String>,
    /// `credentials_without_systemd`: (credential id, path), read before the sites.
    credentials: Option<(String, PathBuf)>,
    /// What could be read of every site, valid or not: `check-config` checks secrets and CA
    /// files on this machine even while other keys have problems, so one pass shows all.
    pub(super) found: Found,
    /// Every appliance URL that parsed, with its key path, to find one appliance listed twice.
    urls: Vec<(String, reqwest::Url)>,
}

/// The parts of a configuration that were readable, whatever else was wrong with it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Found {
    pub state_dir: Option<PathBuf>,
    /// `exporter.web_config`, when given.
    pub web_config: Option<PathBuf>,
    pub sites: Vec<FoundSite>,
}

/// One `[[site]]` as far as it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSite {
    /// Its key path, `site[1]`.
    pub path: String,
    /// Empty when missing or not a string.
    pub name: String,
    pub client_secret: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    pub health_interval: Duration,
}

/// This host's name, the default instance id of a cluster member.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// Path of a key inside a table path.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// One appliance whatever the spelling: the host (the URL parser lowercases it) and the port
/// (a default port written out or left implicit is the same port).
fn same_appliance(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
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

    /// Takes a key out of its table.
    fn take(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<toml::Value> {
        self.taken.insert(keys::generic_path(&join(path, key)));
        table.remove(key)
    }

    /// Reports the keys nobody took.
    fn leftovers(&mut self, table: toml::Table, path: &str) {
        let known = keys::known_in(&keys::generic_path(path));
        for key in table.keys() {
            self.problem(
                join(path, key),
                format!("unknown key (known here: {})", known.join(", ")),
            );
        }
    }

    /// Takes a key whose value must be of one TOML type (`what`, as in "a string").
    fn typed<T>(
        &mut self,
        table: &mut toml::Table,
        path: &str,
        key: &str,
        what: &str,
        extract: fn(toml::Value) -> Result<T, toml::Value>,
    ) -> Option<T> {
        match extract(self.take(table, path, key)?) {
            Ok(value) => Some(value),
            Err(other) => {
                self.problem(
                    join(path, key),
                    format!("must be {what}, not {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn string(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<String> {
        self.typed(table, path, key, "a string", |value| match value {
            toml::Value::String(s) => Ok(s),
            other => Err(other),
        })
    }

    fn boolean(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<bool> {
        self.typed(table, path, key, "true or false", |value| match value {
            toml::Value::Boolean(b) => Ok(b),
            other => Err(other),
        })
    }

    fn table(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<toml::Table> {
        self.typed(table, path, key, "a table", |value| match value {
            toml::Value::Table(t) => Ok(t),
            other => Err(other),
        })
    }

    /// A string that must not be empty when given.
    fn path(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<PathBuf> {
        match self.string(table, path, key)? {
            s if s.is_empty() => {
                self.problem(join(path, key), "must not be empty");
                None
            }
            s => Some(PathBuf::from(s)),
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
            Ok(d) if d > MAX_DURATION => {
                self.problem(
                    join(path, key),
                    format!(
                        "{text:?} is longer than the longest duration accepted ({}): no watchdog timer needs more, and absurd values would overflow time arithmetic",
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
                default
            }
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
        (min, max): (u32, u32),
    ) -> u32 {
        match self.take(table, path, key) {
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
        let value = match self.take(table, path, key) {
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
        let name = self.string(table, path, "api")?;
        let choice = ApiChoice::from_name(&name);
        if choice.is_none() {
            let names: Vec<String> = ApiChoice::NAMES
                .iter()
                .map(|(n, _)| format!("{n:?}"))
                .collect();
            let last = names.last().cloned().unwrap_or_default();
            let listed = format!(
                "{} or {last}",
                names[..names.len().saturating_sub(1)].join(", ")
            );
            self.problem(
                join(path, "api"),
                format!("{name:?} is not an API: use {listed}"),
            );
        }
        choice
    }

    pub(super) fn config(&mut self, mut root: toml::Table) -> Option<Config> {
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
        let state_dir = self
            .path(&mut root, "", "state_dir")
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        self.found.state_dir = Some(state_dir.clone());
        let control_socket = self
            .path(&mut root, "", "control_socket")
            .unwrap_or_else(|| crate::control::default_socket(&state_dir));
        let exporter = self.exporter(&mut root);
        self.credentials = self.credentials_without_systemd(&mut root);
        let journal = self.journal(&mut root);
        let notify = self.notify(&mut root);
        let pre_failover = self.pre_failover(&mut root);
        let sites = self.sites(&mut root);
        let cluster = self.cluster(&mut root);
        self.leftovers(root, "");
        Some(Config {
            mode,
            state_dir,
            control_socket,
            exporter: exporter?,
            journal,
            notify,
            pre_failover,
            sites,
            cluster,
        })
    }

    /// `[cluster]`, when present. Its names become etcd keys: they are kept to characters that
    /// need no escaping anywhere (keys, metric labels, logs).
    fn cluster(&mut self, root: &mut toml::Table) -> Option<ClusterConfig> {
        let mut table = self.table(root, "", "cluster")?;
        let path = "cluster";
        let problems_before = self.problems.len();
        let endpoints = match self.take(&mut table, path, "endpoints") {
            None => {
                self.problem(
                    "cluster.endpoints",
                    "is required: the etcd client URLs, like [\"https://etcd-1:2379\"]",
                );
                Vec::new()
            }
            Some(toml::Value::Array(items)) => {
                let mut endpoints = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    let item_path = format!("cluster.endpoints[{index}]");
                    match item {
                        toml::Value::String(url) => match parse_base_url(&url) {
                            Ok(_) => endpoints.push(url.trim_end_matches('/').to_string()),
                            Err(e) => self.problem(item_path, format!("{url:?}: {e}")),
                        },
                        other => self.problem(
                            item_path,
                            format!("must be a URL string, not {}", type_name(&other)),
                        ),
                    }
                }
                if endpoints.is_empty() && self.problems.len() == problems_before {
                    self.problem("cluster.endpoints", "lists no endpoint");
                }
                endpoints
            }
            Some(other) => {
                self.problem(
                    "cluster.endpoints",
                    format!("must be an array of URLs, not {}", type_name(&other)),
                );
                Vec::new()
            }
        };
        let mut name_key = |reader: &mut Self, key: &str, default: Option<String>| {
            let value = reader.string(&mut table, path, key).or(default);
            match value {
                None => {
                    reader.problem(join(path, key), "is required");
                    String::new()
                }
                Some(value)
                    if value.is_empty()
                        || !value.chars().all(|c| {
                            c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
                        }) =>
                {
                    reader.problem(join(path, key), format!("{value:?} may contain only letters, digits, '-', '_' and '.' (it names etcd keys and metric labels)"));
                    value
                }
                Some(value) => value,
            }
        };
        let name = name_key(self, "name", Some(DEFAULT_CLUSTER_NAME.to_string()));
        let instance = name_key(self, "instance", host_name());
        let lease_ttl = self.duration(&mut table, path, "lease_ttl", DEFAULT_LEASE_TTL);
        if lease_ttl < Duration::from_secs(2) {
            self.problem("cluster.lease_ttl", "must be at least 2s (etcd counts leases in whole seconds, and keep-alives go out three times per TTL)");
        } else if lease_ttl.subsec_nanos() != 0 {
            self.problem(
                "cluster.lease_ttl",
                "must be whole seconds (etcd counts leases in seconds)",
            );
        }
        let ca_file = self.path(&mut table, path, "ca_file");
        let cert_file = self.path(&mut table, path, "cert_file");
        let key_file = self.path(&mut table, path, "key_file");
        if cert_file.is_some() != key_file.is_some() {
            self.problem(
                "cluster.cert_file",
                "cert_file and key_file go together (a client certificate and its key)",
            );
        }
        let user = self.string(&mut table, path, "user");
        let password_file = self.path(&mut table, path, "password_file");
        let password_env = self.string(&mut table, path, "password_env");
        let password = match (password_file, password_env) {
            (Some(_), Some(_)) => {
                self.problem(
                    "cluster.password_file",
                    "give password_file or password_env, not both",
                );
                None
            }
            (Some(file), None) => Some(SecretSource::File(file)),
            (None, Some(var)) => Some(SecretSource::Env(var)),
            (None, None) => None,
        };
        if table.remove("password").is_some() {
            self.problem("cluster.password", "secrets do not belong in the configuration file: use password_file or password_env");
        }
        if user.is_some() != password.is_some() {
            self.problem(
                "cluster.user",
                "user and password_file (or password_env) go together",
            );
        }
        self.leftovers(table, path);
        if self.problems.len() > problems_before {
            return None;
        }
        Some(ClusterConfig {
            endpoints,
            name,
            instance,
            lease_ttl,
            ca_file,
            cert_file,
            key_file,
            user,
            password,
        })
    }

    fn strings(&mut self, table: &mut toml::Table, path: &str, key: &str) -> Option<Vec<String>> {
        let values = self.typed(
            table,
            path,
            key,
            "an array of strings",
            |value| match value {
                toml::Value::Array(a) => Ok(a),
                other => Err(other),
            },
        )?;
        let mut strings = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            match value {
                toml::Value::String(s) => strings.push(s),
                other => self.problem(
                    format!("{}[{index}]", join(path, key)),
                    format!("must be a string, not {}", type_name(&other)),
                ),
            }
        }
        Some(strings)
    }

    /// `url` (with an optional `secret_file`) or `command`: exactly one.
    fn hook_target(&mut self, table: &mut toml::Table, path: &str) -> Option<HookTarget> {
        let url = self.string(table, path, "url");
        let command = self.strings(table, path, "command");
        let secret_file = self.path(table, path, "secret_file");
        match (url, command) {
            (Some(url), None) => {
                let scheme_ok = reqwest::Url::parse(&url)
                    .map_err(|e| e.to_string())
                    .and_then(|u| match u.scheme() {
                        "http" | "https" => Ok(()),
                        other => Err(format!("{other} is not http or https")),
                    });
                if let Err(e) = scheme_ok {
                    self.problem(
                        join(path, "url"),
                        format!("{url:?} is not an http(s) URL: {e}"),
                    );
                    return None;
                }
                Some(HookTarget::Webhook { url, secret_file })
            }
            (None, Some(command)) => {
                if command.first().is_none_or(|c| c.is_empty()) {
                    self.problem(
                        join(path, "command"),
                        "must name a program: [\"/usr/local/bin/page\", \"--team\", \"ops\"]",
                    );
                    return None;
                }
                if secret_file.is_some() {
                    self.problem(
                        join(path, "secret_file"),
                        "signs webhooks only; a command gets no signature",
                    );
                }
                Some(HookTarget::Exec { command })
            }
            (Some(_), Some(_)) => {
                self.problem(path, "give url or command, not both");
                None
            }
            (None, None) => {
                self.problem(join(path, "url"), "is required (or command)");
                None
            }
        }
    }

    fn notify(&mut self, root: &mut toml::Table) -> Vec<NotifyConfig> {
        let mut hooks: Vec<NotifyConfig> = Vec::new();
        let entries = match self.take(root, "", "notify") {
            None => return hooks,
            Some(toml::Value::Array(entries)) => entries,
            Some(other) => {
                self.problem(
                    "notify",
                    format!(
                        "must be an array of tables ([[notify]]), not {}",
                        type_name(&other)
                    ),
                );
                return hooks;
            }
        };
        for (index, entry) in entries.into_iter().enumerate() {
            let path = format!("notify[{index}]");
            let toml::Value::Table(mut table) = entry else {
                self.problem(&path, "must be a table");
                continue;
            };
            let name = self.string(&mut table, &path, "name").unwrap_or_default();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.problem(
                    join(&path, "name"),
                    "is required: letters, digits, '-' and '_' (it is a metric label)",
                );
            } else if name == PRE_FAILOVER_HOOK || hooks.iter().any(|h| h.name == name) {
                self.problem(join(&path, "name"), format!("{name:?} is taken"));
            }
            let target = self.hook_target(&mut table, &path);
            let timeout = self.duration(&mut table, &path, "timeout", Duration::from_secs(5));
            let retries = self.integer(&mut table, &path, "retries", 3, (0, 20));
            let retry_backoff =
                self.duration(&mut table, &path, "retry_backoff", Duration::from_secs(1));
            let events = match self.strings(&mut table, &path, "events") {
                None => EVENT_KINDS.iter().map(|k| k.to_string()).collect(),
                Some(events) => {
                    for event in &events {
                        if !EVENT_KINDS.contains(&event.as_str()) {
                            self.problem(
                                join(&path, "events"),
                                format!(
                                    "{event:?} is not an event kind (known: {})",
                                    EVENT_KINDS.join(", ")
                                ),
                            );
                        }
                    }
                    events
                }
            };
            self.leftovers(table, &path);
            if let Some(target) = target {
                hooks.push(NotifyConfig {
                    name,
                    target,
                    timeout,
                    retries,
                    retry_backoff,
                    events,
                });
            }
        }
        hooks
    }

    fn pre_failover(&mut self, root: &mut toml::Table) -> Option<PreFailoverConfig> {
        let mut table = self.table(root, "", "pre_failover")?;
        let target = self.hook_target(&mut table, "pre_failover");
        let timeout = self.duration(
            &mut table,
            "pre_failover",
            "timeout",
            Duration::from_secs(10),
        );
        let on_timeout = match self
            .string(&mut table, "pre_failover", "on_timeout")
            .as_deref()
        {
            None | Some("proceed") => OnTimeout::Proceed,
            Some("abort") => OnTimeout::Abort,
            Some(other) => {
                self.problem(
                    "pre_failover.on_timeout",
                    format!("{other:?}: use \"proceed\" or \"abort\""),
                );
                OnTimeout::Proceed
            }
        };
        self.leftovers(table, "pre_failover");
        Some(PreFailoverConfig {
            target: target?,
            timeout,
            on_timeout,
        })
    }

    fn journal(&mut self, root: &mut toml::Table) -> JournalConfig {
        let mut table = self.table(root, "", "journal").unwrap_or_default();
        let file_mib = self.integer(
            &mut table,
            "journal",
            "file_size_mib",
            DEFAULT_JOURNAL_FILE_MIB,
            (1, 1024),
        );
        let max_files = self.integer(
            &mut table,
            "journal",
            "max_files",
            DEFAULT_JOURNAL_FILES,
            (0, 1000),
        );
        self.leftovers(table, "journal");
        JournalConfig {
            file_bytes: u64::from(file_mib) * 1024 * 1024,
            max_files,
        }
    }

    /// `ID:PATH`, as in the unit's `LoadCredential=ID:PATH`.
    fn credentials_without_systemd(&mut self, root: &mut toml::Table) -> Option<(String, PathBuf)> {
        let key = "credentials_without_systemd";
        let text = self
            .string(root, "", key)
            .unwrap_or_else(|| super::DEFAULT_CREDENTIALS_WITHOUT_SYSTEMD.to_string());
        if text.is_empty() {
            return None;
        }
        match text.split_once(':') {
            Some((id, path)) if !id.is_empty() && !id.contains('/') && path.starts_with('/') => {
                Some((id.to_string(), PathBuf::from(path)))
            }
            _ => {
                self.problem(
                    key,
                    format!("{text:?} is not ID:/absolute/path (as in LoadCredential=ID:PATH), nor \"\" for none"),
                );
                None
            }
        }
    }

    /// Where a credential is outside systemd: the file itself when its name is the id, the
    /// file of that name in the directory when it is `ID_FILENAME` (as systemd names the
    /// credentials of a directory).
    fn credential_outside_systemd(&self, name: &str) -> Option<PathBuf> {
        let (id, path) = self.credentials.as_ref()?;
        if name == id {
            return Some(path.clone());
        }
        let file = name.strip_prefix(id.as_str())?.strip_prefix('_')?;
        (!file.is_empty() && !file.split('/').any(|part| part == ".." || part.is_empty()))
            .then(|| path.join(file))
    }

    fn exporter(&mut self, root: &mut toml::Table) -> Option<ExporterConfig> {
        let mut table = self.table(root, "", "exporter").unwrap_or_default();
        let listen = match self.string(&mut table, "exporter", "listen") {
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
            .string(&mut table, "exporter", "web_config")
            .map(PathBuf::from);
        self.found.web_config = web_config.clone();
        let request_duration_histograms = self
            .boolean(&mut table, "exporter", "request_duration_histograms")
            .unwrap_or(false);
        self.leftovers(table, "exporter");
        Some(ExporterConfig {
            listen: listen?,
            web_config,
            request_duration_histograms,
        })
    }

    fn sites(&mut self, root: &mut toml::Table) -> Vec<SiteConfig> {
        let mut sites = Vec::new();
        match self.take(root, "", "site") {
            None => self.problem("site", NO_SITE),
            Some(toml::Value::Array(entries)) => {
                if entries.is_empty() {
                    self.problem("site", NO_SITE);
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
        // Over every site read, valid or not: a duplicate is worth knowing while the other
        // problems of either site are being fixed.
        let mut first_with_name: Vec<(String, String)> = Vec::new();
        let mut duplicates = Vec::new();
        for found in &self.found.sites {
            if found.name.is_empty() {
                continue;
            }
            match first_with_name.iter().find(|(name, _)| *name == found.name) {
                Some((name, first)) => duplicates.push((
                    join(&found.path, "name"),
                    format!("{name:?} is already the name of {first}"),
                )),
                None => first_with_name.push((found.name.clone(), found.path.clone())),
            }
        }
        for (index, (path, url)) in self.urls.iter().enumerate() {
            if let Some((first, _)) = self.urls[..index]
                .iter()
                .find(|(_, earlier)| same_appliance(earlier, url))
            {
                duplicates.push((
                    path.clone(),
                    format!(
                        "{} is the appliance of {first} too: each appliance belongs to one pair, once (two watchdogs deciding over one appliance fight)",
                        url.as_str().trim_end_matches('/')
                    ),
                ));
            }
        }
        for (path, message) in duplicates {
            self.problem(path, message);
        }
        sites
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
        let client_secret = self.client_secret(&mut table, path);
        let ca_file = self.string(&mut table, path, "ca_file").map(PathBuf::from);
        let allow_plain_http = self
            .boolean(&mut table, path, "allow_plain_http")
            .unwrap_or(false);
        let proxy = self.string(&mut table, path, "proxy");
        if let Some(proxy) = &proxy
            && let Err(reason) = check_proxy(proxy)
        {
            self.problem(join(path, "proxy"), reason);
        }
        let appliances = self.appliances(&mut table, path, allow_plain_http);
        let poll_interval = self.duration(&mut table, path, "poll_interval", DEFAULT_POLL_INTERVAL);
        let health_interval =
            self.duration(&mut table, path, "health_interval", DEFAULT_HEALTH_INTERVAL);
        self.found.sites.push(FoundSite {
            path: path.to_string(),
            name: name.clone(),
            client_secret: client_secret.clone(),
            ca_file: ca_file.clone(),
            health_interval,
        });
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
                (1, 20),
            ),
            hourly_share: self.fraction(
                &mut table,
                path,
                "hourly_budget_share",
                defaults.hourly_share,
            ),
            // Under the reserve, the one routine request that re-checks it goes out at the
            // cadence `/health` is read anyway.
            reserve_reprobe: health_interval,
            // Ten health intervals: 10 minutes at the defaults.
            probe_recheck: health_interval.saturating_mul(10),
            ..defaults
        };
        let source_address = self
            .string(&mut table, path, "source_address")
            .and_then(|text| match text.parse::<std::net::IpAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    self.problem(
                        join(path, "source_address"),
                        format!("{text:?} is not an IP address like \"192.0.2.10\""),
                    );
                    None
                }
            });
        let policy_path = join(path, "policy");
        let mut policy_table = self.table(&mut table, path, "policy").unwrap_or_default();
        let policy = self.policy(
            &mut policy_table,
            &policy_path,
            &Policy::default(),
            poll_interval,
            request_timeout,
        );
        let confirming_views = policy_table.contains_key("confirming_views").then(|| {
            self.integer(
                &mut policy_table,
                &policy_path,
                "confirming_views",
                1,
                (1, 99),
            )
        });
        self.leftovers(policy_table, &policy_path);
        self.leftovers(table, path);
        if self.problems.len() > problems_before {
            return None;
        }
        Some(SiteConfig {
            name,
            api,
            client_id,
            client_secret: client_secret?,
            ca_file,
            proxy,
            appliances: appliances?,
            poll_interval,
            health_interval,
            request_timeout,
            budget,
            policy,
            source_address,
            confirming_views,
        })
    }

    /// Exactly one of the three secret sources; a secret written into the file is refused.
    fn client_secret(&mut self, table: &mut toml::Table, path: &str) -> Option<SecretSource> {
        // Not a key of the table: nothing may be read from it, but its presence is named.
        if table.remove("client_secret").is_some() {
            self.problem(join(path, "client_secret"), "secrets do not belong in the configuration file: use client_secret_file or client_secret_env");
        }
        let secret_file = self.string(table, path, "client_secret_file");
        let secret_env = self.string(table, path, "client_secret_env");
        let secret_credential = self.string(table, path, "client_secret_credential");
        let sources: Vec<SecretSource> = [
            secret_file.map(|f| SecretSource::File(PathBuf::from(f))),
            secret_env.map(SecretSource::Env),
            secret_credential.map(|name| SecretSource::Credential {
                outside_systemd: self.credential_outside_systemd(&name),
                name,
            }),
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
        if let Some(SecretSource::Credential { name, .. }) = &client_secret
            && (name.is_empty() || name.contains('/'))
        {
            self.problem(
                join(path, "client_secret_credential"),
                "must be a credential name (as in LoadCredential=NAME:…), not a path",
            );
        }
        client_secret
    }

    fn appliances(
        &mut self,
        table: &mut toml::Table,
        path: &str,
        allow_plain_http: bool,
    ) -> Option<[ApplianceEntry; 2]> {
        let key_path = join(path, "appliances");
        let entries = match self.take(table, path, "appliances") {
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
            } else {
                match parse_base_url(&url) {
                    Ok(parsed) => self.urls.push((join(&entry_path, "url"), parsed)),
                    Err(e) => self.problem(join(&entry_path, "url"), e.to_string()),
                }
                if url
                    .get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
                    && !allow_plain_http
                {
                    self.problem(
                        join(&entry_path, "url"),
                        format!("{url:?} is plain HTTP: the client secret and every token would travel in clear; use https://, or set allow_plain_http = true for this site (a simulator, a lab)"),
                    );
                }
            }
            let api = self.api_choice(&mut entry, &entry_path);
            self.leftovers(entry, &entry_path);
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

    /// The keys of a policy table; those absent keep `d`'s values.
    pub(super) fn policy(
        &mut self,
        table: &mut toml::Table,
        path: &str,
        d: &Policy,
        poll_interval: Duration,
        request_timeout: Duration,
    ) -> Policy {
        let policy = Policy {
            failover_after: self.duration(table, path, "failover_after", d.failover_after),
            failure_threshold: self.integer(
                table,
                path,
                "failure_threshold",
                d.failure_threshold,
                (1, 1000),
            ),
            max_sync_age: self.duration(table, path, "max_sync_age", d.max_sync_age),
            cooldown: self.duration(table, path, "cooldown", d.cooldown),
            converge_timeout: self.duration(table, path, "converge_timeout", d.converge_timeout),
            swap_settle: self.duration(table, path, "swap_settle", d.swap_settle),
            max_attempts: self.integer(table, path, "max_attempts", d.max_attempts, (1, 10)),
            retry_backoff: self.duration(table, path, "retry_backoff", d.retry_backoff),
            startup_grace: self.duration(table, path, "startup_grace", d.startup_grace),
            poll_interval,
            stall_tolerance: self.duration(
                table,
                path,
                "stall_tolerance",
                d.stall_tolerance.max(poll_interval * 3 + request_timeout),
            ),
            max_representatives_for_switchover: match self.take(
                table,
                path,
                "max_representatives_for_switchover",
            ) {
                None => d.max_representatives_for_switchover,
                Some(toml::Value::Integer(n)) if (0..=100_000).contains(&n) => {
                    u32::try_from(n).ok()
                }
                Some(other) => {
                    self.problem(
                        join(path, "max_representatives_for_switchover"),
                        format!("must be an integer from 0 to 100000, not {other}"),
                    );
                    d.max_representatives_for_switchover
                }
            },
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
