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
    DEFAULT_LEASE_TTL, DEFAULT_LISTEN, DEFAULT_POLL_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STATE_DIR, ExporterConfig, Problem, SecretSource, SiteConfig,
};
use crate::api::budget::BudgetSettings;
use crate::api::transport::parse_base_url;
use crate::engine::{Mode, Policy};

const NO_SITE: &str = "no [[site]] is configured: there is nothing to watch";

#[derive(Default)]
pub(super) struct Reader {
    pub(super) problems: Vec<Problem>,
    /// Every key taken, as a generic path (`site[].policy.cooldown`), so that a test can hold
    /// the reader and the key table to each other.
    pub(super) taken: BTreeSet<String>,
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
        let control_socket = self
            .path(&mut root, "", "control_socket")
            .unwrap_or_else(|| crate::control::default_socket(&state_dir));
        let exporter = self.exporter(&mut root);
        let sites = self.sites(&mut root);
        let cluster = self.cluster(&mut root);
        self.leftovers(root, "");
        Some(Config {
            mode,
            state_dir,
            control_socket,
            exporter: exporter?,
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
        self.leftovers(table, "exporter");
        Some(ExporterConfig {
            listen: listen?,
            web_config,
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
        let mut seen = BTreeSet::new();
        for (index, site) in sites.iter().enumerate() {
            if !seen.insert(site.name.clone()) {
                self.problem(
                    format!("site[{index}].name"),
                    format!("{:?} is used by another site too", site.name),
                );
            }
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
                (1, 20),
            ),
            hourly_share: self.fraction(
                &mut table,
                path,
                "hourly_budget_share",
                defaults.hourly_share,
            ),
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
        client_secret
    }

    fn appliances(&mut self, table: &mut toml::Table, path: &str) -> Option<[ApplianceEntry; 2]> {
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
            } else if let Err(e) = parse_base_url(&url) {
                self.problem(join(&entry_path, "url"), e.to_string());
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
