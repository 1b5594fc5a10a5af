//! Every configuration key, once: its path, what holds when it is absent, how the example
//! configuration shows it, and what it means.
//!
//! The reader's lists of known keys come from [`KEYS`], and so do the README's configuration
//! reference and `packaging/config.example.toml` (see [`super::reference`]). Tests fail when the
//! README or the example drift from this table, when a key has no meaning written down, and when
//! the reader takes a key that is not here or ignores one that is.

/// One key of the configuration file.
#[derive(Debug)]
pub struct Key {
    /// `site[].policy.cooldown`: `[]` marks an array of tables.
    pub path: &'static str,
    pub when_absent: WhenAbsent,
    pub example: Example,
    /// One line, written for both the README table and the example's comments.
    pub doc: &'static str,
    /// A README section that says more: (title, anchor).
    pub see: Option<(&'static str, &'static str)>,
}

/// What holds when a key is not in the file.
#[derive(Debug)]
pub enum WhenAbsent {
    /// This TOML value, exactly as if it had been written (a test holds the reader to it).
    Value(&'static str),
    /// The configuration is refused.
    Required,
    /// Something that is not a single value, described.
    Means(&'static str),
}

/// How `packaging/config.example.toml` shows a key.
#[derive(Debug)]
pub enum Example {
    /// With the value it has when absent.
    AsDefault,
    /// With this TOML value.
    Set(&'static str),
    /// Commented out, with this TOML value.
    Commented(&'static str),
    /// Inside its parent's example value (the fields of an inline table).
    InParent,
}

const SEE_API: Option<(&str, &str)> = Some(("Choosing the API", "choosing-the-api-v2-xml-or-auto"));
const SEE_JOURNAL: Option<(&str, &str)> = Some(("The decision journal", "the-decision-journal"));
const SEE_HOOKS: Option<(&str, &str)> =
    Some(("Notifications and the veto", "notifications-and-the-veto"));
const SEE_CLUSTER: Option<(&str, &str)> =
    Some(("Running several watchdogs", "running-several-watchdogs"));

const fn key(
    path: &'static str,
    when_absent: WhenAbsent,
    example: Example,
    doc: &'static str,
) -> Key {
    Key {
        path,
        when_absent,
        example,
        doc,
        see: None,
    }
}

/// A policy key: the README explains them together, in "How decisions are made".
const fn policy(path: &'static str, default: &'static str, doc: &'static str) -> Key {
    key(path, WhenAbsent::Value(default), Example::AsDefault, doc)
}

use Example::{AsDefault, Commented, InParent, Set};
use WhenAbsent::{Means, Required, Value};

/// The keys in the order of the reference and the example; a table's keys after its parent's.
pub const KEYS: &[Key] = &[
    key(
        "mode",
        Value("\"observe\""),
        AsDefault,
        "`observe`: decide and report only, never fail over by itself; `auto`: also fail over (turn off the appliances' own automatic failover first)",
    ),
    key(
        "state_dir",
        Value("\"/var/lib/bt-watchdog\""),
        AsDefault,
        "where each site's memory is kept (`SITE.state.json`: cooldown, last sync, who was promoted), the audit log and the lock; created 0700",
    ),
    key(
        "control_socket",
        Means("`state_dir/control.sock`"),
        Set("\"/run/bt-watchdog/control.sock\""),
        "the local socket for `failover`, `pause`, `resume`, `ack`",
    ),
    key(
        "credentials_without_systemd",
        Value("\"secrets:/etc/bt-watchdog/secrets\""),
        AsDefault,
        "where `client_secret_credential` is read when `$CREDENTIALS_DIRECTORY` is not set (`check-config`, `failover --standalone` from a shell): `ID:PATH` as in the unit's `LoadCredential=ID:PATH` (a directory gives the credentials `ID_FILENAME`); `\"\"` for nowhere",
    ),
    key(
        "exporter.listen",
        Value("\"127.0.0.1:9877\""),
        AsDefault,
        "address of `/metrics`, `/status`, `/healthz`; keep it on loopback unless `web_config` secures it",
    ),
    Key {
        see: Some(("Securing the exporter", "securing-the-exporter")),
        ..key(
            "exporter.web_config",
            Means("none"),
            Commented("\"/etc/bt-watchdog/web-config.yml\""),
            "TLS, mutual TLS, basic auth and response headers for the exporter: the exporter-toolkit `--web.config.file` YAML (a `.toml` name: the earlier TOML form)",
        )
    },
    Key {
        see: Some(("Metrics reference", "metrics-reference")),
        ..key(
            "exporter.request_duration_histograms",
            Value("false"),
            Commented("true"),
            "per-endpoint latency histograms of every appliance (`beyondtrust_api_request_duration_seconds`): about 170 more series per pair (three times the rest of a pair's), 19 kB more `/metrics` text and 15 to 70 KiB more memory per pair (100 pairs, not scraped and scraped every 5 s: BENCHMARKS.md); without them `beyondtrust_api_request_seconds_total` gives each appliance's mean; changes on a restart",
        )
    },
    Key {
        see: SEE_JOURNAL,
        ..key(
            "journal.file_size_mib",
            Value("16"),
            AsDefault,
            "a site's journal file (`state_dir/journal/SITE.jsonl`) is rotated when it would grow past this many MiB (1 to 1024)",
        )
    },
    key(
        "journal.max_files",
        Value("8"),
        AsDefault,
        "rotated journal files kept per site besides the current one; the oldest is deleted (0 to 1000)",
    ),
    Key {
        see: SEE_HOOKS,
        ..key(
            "notify[].name",
            Required,
            Commented("\"chat\""),
            "the hook's name in logs and metrics: letters, digits, `-`, `_`",
        )
    },
    key(
        "notify[].url",
        Means("one of `url` and `command`"),
        Commented("\"https://hooks.example.com/bt-watchdog\""),
        "a webhook: each event is POSTed to it as JSON",
    ),
    key(
        "notify[].command",
        Means("one of `url` and `command`"),
        Commented(r#"["/usr/local/bin/page-oncall", "--team", "ops"]"#),
        "a program (argv, no shell) run for each event, with the event as JSON on stdin and in `BT_WATCHDOG_*` environment variables; exit 0 is delivered",
    ),
    key(
        "notify[].secret_file",
        Means("unsigned"),
        Commented("\"/etc/bt-watchdog/secrets/hook\""),
        "a file holding the secret of the webhook's `X-BT-Watchdog-Signature: sha256=…` header (HMAC-SHA256 of the body)",
    ),
    key(
        "notify[].timeout",
        Means("`5s`"),
        Commented("\"5s\""),
        "bound on one delivery attempt",
    ),
    key(
        "notify[].retries",
        Means("`3`"),
        Commented("3"),
        "further attempts after a failed one (0 to 20)",
    ),
    key(
        "notify[].retry_backoff",
        Means("`1s`"),
        Commented("\"1s\""),
        "wait before the first retry, doubling after (at most 5 minutes)",
    ),
    key(
        "notify[].events",
        Means("every kind"),
        Commented(r#"["decision_taken", "decision_refused", "failover_outcome", "split_brain"]"#),
        "the event kinds it receives: `state_change`, `decision_taken`, `decision_refused`, `failover_outcome`, `split_brain`, `cooldown`, `pause`",
    ),
    Key {
        see: SEE_HOOKS,
        ..key(
            "pre_failover.url",
            Means("one of `url` and `command`, or no hook"),
            Commented("\"https://change.example.com/bt-watchdog/may-i\""),
            "a webhook asked before an automatic failover: 2xx proceeds, 4xx or 5xx vetoes with its body as the reason",
        )
    },
    key(
        "pre_failover.command",
        Means("one of `url` and `command`, or no hook"),
        Commented(r#"["/usr/local/bin/may-fail-over"]"#),
        "a program asked before an automatic failover (the event on stdin and in the environment): exit 0 proceeds, another exit vetoes with its output as the reason",
    ),
    key(
        "pre_failover.secret_file",
        Means("unsigned"),
        Commented("\"/etc/bt-watchdog/secrets/hook\""),
        "signs the webhook's request as for `notify[].secret_file`",
    ),
    key(
        "pre_failover.timeout",
        Means("`10s`"),
        Commented("\"10s\""),
        "how long the failover waits for the hook's answer",
    ),
    key(
        "pre_failover.on_timeout",
        Means("`\"proceed\"`"),
        Commented("\"proceed\""),
        "`proceed` or `abort` when the hook does not answer in time (or cannot be reached)",
    ),
    key(
        "site[].name",
        Required,
        Set("\"support\""),
        "letters, digits, `-`, `_`; used in file names and metric labels",
    ),
    Key {
        see: SEE_API,
        ..key(
            "site[].api",
            Value("\"v2\""),
            AsDefault,
            "`v2` (JSON Command API v2, RS and PRA), `xml` (the older command API) or `auto` (detected per appliance)",
        )
    },
    key(
        "site[].client_id",
        Required,
        Set("\"0123456789abcdef0123456789abcdef\""),
        "the API account's OAuth client id",
    ),
    key(
        "site[].client_secret_file",
        Means("one of the three"),
        Commented("\"/etc/bt-watchdog/secrets/support\""),
        "file holding the client secret (a trailing newline is ignored; refused when everyone may read it, a warning when its group may); give exactly one of the three `client_secret_*` keys",
    ),
    key(
        "site[].client_secret_env",
        Means("one of the three"),
        Commented("\"BT_WATCHDOG_SUPPORT_SECRET\""),
        "environment variable holding the client secret",
    ),
    key(
        "site[].client_secret_credential",
        Means("one of the three"),
        Set("\"secrets_support\""),
        "a systemd credential (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY`; the packaged unit loads them from /etc/bt-watchdog/secrets/; outside systemd see `credentials_without_systemd`",
    ),
    key(
        "site[].ca_file",
        Means("system roots"),
        Commented("\"/etc/bt-watchdog/ca.pem\""),
        "PEM bundle; when set, only these CAs are trusted",
    ),
    key(
        "site[].proxy",
        Means("no proxy"),
        Commented("\"http://proxy.example.com:3128\""),
        "an HTTP(S) proxy for this site's appliances; without it none is used (`HTTPS_PROXY` and the like in the environment are ignored)",
    ),
    key(
        "site[].allow_plain_http",
        Value("false"),
        AsDefault,
        "allow `http://` appliance URLs (a simulator, a lab): the client secret and tokens then travel in clear",
    ),
    key(
        "site[].appliances",
        Required,
        Set(r#"[
  { name = "east", url = "https://east.example.com" },
  # api may be set per appliance, overriding the site's (a pair in the middle of an upgrade).
  { name = "west", url = "https://west.example.com", api = "v2" },
]"#),
        "the failover pair: exactly two `{ name, url }` tables, each optionally with `api`",
    ),
    key(
        "site[].appliances[].name",
        Required,
        InParent,
        "the appliance's name in messages, metrics and `failover --to`",
    ),
    key(
        "site[].appliances[].url",
        Required,
        InParent,
        "`https://host[:port]`, no path (`http://` only with `allow_plain_http`)",
    ),
    key(
        "site[].appliances[].api",
        Means("the site's `api`"),
        InParent,
        "overrides the site's `api` for this appliance (a pair in the middle of an upgrade)",
    ),
    key(
        "site[].poll_interval",
        Value("\"5s\""),
        AsDefault,
        "how often `/check_health` is probed",
    ),
    key(
        "site[].health_interval",
        Value("\"60s\""),
        AsDefault,
        "how often `/health` (each appliance) and `/appliance` (one, alternating) are read (the appliance may cache `/health` for a minute), sooner when something looks wrong; also the re-probe interval under the rate-limit reserve, and a tenth of the time before a missing `/check_health` is asked again; at least `poll_interval`",
    ),
    key(
        "site[].request_timeout",
        Value("\"5s\""),
        AsDefault,
        "bound on every request: connect, headers and body",
    ),
    key(
        "site[].source_address",
        Means("chosen by the system"),
        Commented("\"192.0.2.10\""),
        "the local IP address the site's requests leave from (a host with several addresses, or routes chosen by source)",
    ),
    key(
        "site[].max_requests_per_second",
        Value("10"),
        AsDefault,
        "our own ceiling, 1 to 20 (the documented limit is 20, per account)",
    ),
    key(
        "site[].hourly_budget_share",
        Value("0.1"),
        AsDefault,
        "share of the 15,000/hour limit routine polling may use (more than 0, at most 1)",
    ),
    policy(
        "site[].policy.failover_after",
        "\"30s\"",
        "how long the primary must fail",
    ),
    policy(
        "site[].policy.failure_threshold",
        "3",
        "how many consecutive failed polls as well",
    ),
    policy(
        "site[].policy.max_sync_age",
        "\"15m\"",
        "the oldest data a promoted backup may have",
    ),
    policy(
        "site[].policy.cooldown",
        "\"30m\"",
        "quiet time after a failover",
    ),
    policy(
        "site[].policy.converge_timeout",
        "\"2m\"",
        "how long the roles may take to change after a call",
    ),
    policy(
        "site[].policy.swap_settle",
        "\"2m\"",
        "how long both may read `backup` before that is \"no primary\"",
    ),
    policy(
        "site[].policy.max_attempts",
        "3",
        "attempts at one failover, the first included",
    ),
    policy(
        "site[].policy.retry_backoff",
        "\"30s\"",
        "wait before the second attempt, doubling after",
    ),
    policy(
        "site[].policy.startup_grace",
        "\"1m\"",
        "how long a fresh start waits for both appliances before deciding",
    ),
    policy(
        "site[].policy.stall_tolerance",
        "\"30s\"",
        "a longer gap between polls is a stall",
    ),
    Key {
        see: Some(("Impact", "impact-who-does-a-failover-disconnect")),
        ..key(
            "site[].policy.max_representatives_for_switchover",
            Means("no limit"),
            Commented("25"),
            "an automatic failover while the primary still answers is refused when more representatives (consoles) than this are connected to it; never applied to a primary that does not answer",
        )
    },
    Key {
        see: SEE_CLUSTER,
        ..key(
            "site[].policy.confirming_views",
            Means("a majority of the live instances"),
            Commented("2"),
            "with `[cluster]`: how many instances, this one included, must see an appliance failing before it counts as failed (1 to 99)",
        )
    },
    Key {
        see: SEE_CLUSTER,
        ..key(
            "cluster.endpoints",
            Means("no cluster: this watchdog alone"),
            Commented(
                "[\"https://etcd-1:2379\", \"https://etcd-2:2379\", \"https://etcd-3:2379\"]",
            ),
            "etcd client URLs; setting `[cluster]` makes several watchdogs act as one (required in `[cluster]`)",
        )
    },
    key(
        "cluster.name",
        Means("`bt-watchdog`"),
        Commented("\"bt-watchdog\""),
        "the etcd key prefix shared by the instances that work together",
    ),
    key(
        "cluster.instance",
        Means("this host's name"),
        Commented("\"watchdog-east\""),
        "this instance's id, unique among them (letters, digits, `-`, `_`, `.`)",
    ),
    key(
        "cluster.lease_ttl",
        Means("`10s`"),
        Commented("\"10s\""),
        "how long a silent instance keeps its leadership and its vote (whole seconds, at least 2s); keep-alives go out three times per TTL",
    ),
    key(
        "cluster.ca_file",
        Means("the system's CAs"),
        Commented("\"/etc/bt-watchdog/etcd-ca.pem\""),
        "a private CA bundle for etcd's certificates; when set, only these CAs are trusted",
    ),
    key(
        "cluster.cert_file",
        Means("none"),
        Commented("\"/etc/bt-watchdog/etcd-client.pem\""),
        "client certificate (PEM) for etcd's client-certificate authentication; with `key_file`",
    ),
    key(
        "cluster.key_file",
        Means("none"),
        Commented("\"/etc/bt-watchdog/etcd-client.key\""),
        "the client certificate's private key (PEM)",
    ),
    key(
        "cluster.user",
        Means("none"),
        Commented("\"bt-watchdog\""),
        "etcd user, with `password_file` or `password_env`",
    ),
    key(
        "cluster.password_file",
        Means("none"),
        Commented("\"/etc/bt-watchdog/secrets/etcd\""),
        "file holding the etcd user's password (a trailing newline is ignored)",
    ),
    key(
        "cluster.password_env",
        Means("none"),
        Commented("\"BT_WATCHDOG_ETCD_PASSWORD\""),
        "environment variable holding the etcd user's password",
    ),
];

/// `site[0].appliances[1]` → `site[].appliances[]`: the path of a place in a file as the
/// table names it.
pub fn generic_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push(c);
            }
            ']' => {
                in_index = false;
                out.push(c);
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The keys a table at `table_path` (generic, `""` for the root) may hold, in table order:
/// its own keys and its sub-tables.
pub fn known_in(table_path: &str) -> Vec<&'static str> {
    let mut known: Vec<&'static str> = Vec::new();
    for key in KEYS {
        let rest = if table_path.is_empty() {
            Some(key.path)
        } else {
            key.path
                .strip_prefix(table_path)
                .and_then(|rest| rest.strip_prefix('.'))
        };
        let Some(rest) = rest else { continue };
        let child = rest.split(['.', '[']).next().unwrap_or(rest);
        if !known.contains(&child) {
            known.push(child);
        }
    }
    known
}

/// The table part of a key path and its own name: `site[].policy.cooldown` →
/// (`site[].policy`, `cooldown`).
pub fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_says_what_it_means() {
        for key in KEYS {
            assert!(!key.doc.trim().is_empty(), "{} has no doc", key.path);
        }
    }

    #[test]
    fn known_keys_include_sub_tables_once() {
        assert_eq!(
            known_in(""),
            [
                "mode",
                "state_dir",
                "control_socket",
                "credentials_without_systemd",
                "exporter",
                "journal",
                "notify",
                "pre_failover",
                "site",
                "cluster"
            ]
        );
        assert_eq!(known_in("site[].appliances[]"), ["name", "url", "api"]);
        assert!(known_in("site[]").ends_with(&["hourly_budget_share", "policy"]));
        assert_eq!(
            generic_path("site[10].appliances[1]"),
            "site[].appliances[]"
        );
    }
}
