//! What the appliances answer, parsed into types at the boundary.
//!
//! Rules from the vendor documentation that shape these types:
//! - responses may gain fields at any time, so unknown fields are ignored;
//! - a 500 from `/health` still carries a HealthBase whose fields may be null;
//! - `last_data_sync` is only populated on the primary;
//! - a bad value in one field (an unknown role, a non-UTC date) is reported as a
//!   [`FieldIssue`] and leaves that field empty instead of failing the whole answer, so the
//!   watchdog keeps seeing everything else the appliance said.

// The engine uses these types: they must be as pure as the engine (see clippy.toml).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::time::UtcTime;

/// The appliance's role in a failover relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverRole {
    /// Not in a failover relationship: there is nothing to fail over to.
    None,
    Primary,
    Backup,
}

impl FailoverRole {
    pub const ALL: [FailoverRole; 3] = [
        FailoverRole::Primary,
        FailoverRole::Backup,
        FailoverRole::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailoverRole::None => "none",
            FailoverRole::Primary => "primary",
            FailoverRole::Backup => "backup",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == value)
    }
}

impl fmt::Display for FailoverRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The appliance's role in an Atlas cluster (unrelated to failover, reported for context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    Single,
    Primary,
    Traffic,
}

impl ClusterRole {
    pub const ALL: [ClusterRole; 3] = [
        ClusterRole::Single,
        ClusterRole::Primary,
        ClusterRole::Traffic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClusterRole::Single => "single",
            ClusterRole::Primary => "primary",
            ClusterRole::Traffic => "traffic",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == value)
    }
}

impl fmt::Display for ClusterRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field the appliance sent that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldIssue {
    pub field: &'static str,
    pub problem: String,
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: {}", self.field, self.problem)
    }
}

/// `GET /health` (v2) or `check_health` (XML), in one model the engine uses for both APIs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthBase {
    pub version: Option<String>,
    pub build: Option<String>,
    pub appliance_hostname: Option<String>,
    pub appliance_id: Option<String>,
    pub cluster_role: Option<ClusterRole>,
    pub failover_role: Option<FailoverRole>,
    /// Empty when the appliance sent none (the field is omitted when no shared IP is enabled).
    pub enabled_shared_ips: Vec<String>,
    /// Only the primary reports it.
    pub last_data_sync: Option<UtcTime>,
    pub last_data_sync_status: Option<String>,
    /// Fields that were present but unusable; the rest of the answer is still valid.
    /// Written to the journal for the reader, not read back: the engine never looks at them.
    #[serde(default, skip_deserializing)]
    pub field_issues: Vec<FieldIssue>,
}

/// The answer to a health question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Health {
    /// HTTP 200.
    Healthy(HealthBase),
    /// HTTP 500 whose body is still a HealthBase, plus the appliance's explanation.
    Unhealthy {
        health: HealthBase,
        message: Option<String>,
    },
}

impl Health {
    pub fn base(&self) -> &HealthBase {
        match self {
            Health::Healthy(base) => base,
            Health::Unhealthy { health, .. } => health,
        }
    }

    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy(_))
    }
}

/// The unauthenticated `/check_health` probe: it has no body, only a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Healthy,
    Unhealthy,
}

/// One entry of `GET /appliance`. The vendor does not publish its field names, so this keeps
/// what it can recognise and the raw object for `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplianceRecord {
    pub id: Option<String>,
    pub hostname: Option<String>,
    pub failover_role: Option<FailoverRole>,
    pub cluster_role: Option<ClusterRole>,
    pub raw: serde_json::Value,
}

/// Command API access level of the account (`/info` → `permissions.perm_command`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandPermission {
    FullAccess,
    ReadOnly,
    Deny,
    /// A value this version does not know; treated as "cannot fail over".
    Other(String),
}

impl CommandPermission {
    pub fn parse(value: &str) -> Self {
        match value {
            "full_access" => CommandPermission::FullAccess,
            "read_only" => CommandPermission::ReadOnly,
            "deny" => CommandPermission::Deny,
            other => CommandPermission::Other(other.to_string()),
        }
    }

    pub fn can_fail_over(&self) -> bool {
        matches!(self, CommandPermission::FullAccess)
    }
}

/// The product behind the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Remote Support.
    Rs,
    /// Privileged Remote Access.
    Pra,
    Other(String),
}

impl Product {
    pub fn parse(value: &str) -> Self {
        match value {
            "rs" => Product::Rs,
            "pra" => Product::Pra,
            other => Product::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Product::Rs => "rs",
            Product::Pra => "pra",
            Product::Other(other) => other,
        }
    }
}

/// `GET /info`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiInfo {
    pub product: Option<Product>,
    pub command_api_version: Option<String>,
    pub perm_command: Option<CommandPermission>,
    pub current_time: Option<UtcTime>,
    pub field_issues: Vec<FieldIssue>,
}

/// The body of `POST /failover-role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRequest {
    pub role: FailoverRole,
    pub data_sync_first: bool,
    pub force: bool,
}

/// A successful answer to `POST /failover-role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverAccepted {
    pub message: String,
    /// The role change has only been started ("Role change will occur upon successful
    /// completion"): the caller must poll until the roles converge.
    pub completes_later: bool,
}

/// `GET /appliance/client-count`: how many clients of each type are connected, by type name as
/// the API gives it (`rep_console` on Remote Support, `access_console` on Privileged Remote
/// Access, `asset_client`, `gateway`, and any type a later version adds), summed over the
/// appliances the answer lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCounts {
    pub by_type: BTreeMap<String, u64>,
}

impl ClientCounts {
    /// The console types a representative (RS) or user (PRA) is connected with.
    pub const CONSOLES: [&'static str; 2] = ["rep_console", "access_console"];

    /// Connected representatives (RS) or console users (PRA).
    pub fn representatives(&self) -> u64 {
        Self::CONSOLES
            .iter()
            .filter_map(|t| self.by_type.get(*t))
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// Saturating: the counts come from the appliance's answer.
    pub fn total(&self) -> u64 {
        self.by_type
            .values()
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// "3 rep_console, 12 asset_client, 1 gateway" (or "no clients").
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .by_type
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        if parts.is_empty() {
            "no clients".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The 422 error bag: field name → what is wrong with it.
pub type ErrorBag = BTreeMap<String, Vec<String>>;

/// Parsing of JSON bodies into the models above.
/// How much of an appliance's own text is kept: it reaches logs, `/status`, metric labels and
/// the engine's reasons, so a hostile or broken appliance must not be able to forge log lines,
/// send terminal escapes or blow up every scrape with a megabyte "version".
pub mod bounds {
    /// A short field: version, build, host name, id, status word.
    pub const FIELD: usize = 128;
    /// A message meant for people.
    pub const MESSAGE: usize = 200;
    /// Entries kept of a list (shared IPs, appliances).
    pub const LIST: usize = 32;
    /// The serialized size of one raw `/appliance` entry kept for `/status`.
    pub const RAW_BYTES: usize = 8 * 1024;
}

/// `text` without control characters (newlines, escapes, NULs), at most `limit` characters,
/// with `…` when something was cut.
pub fn bounded_text(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit.saturating_mul(4)));
    for (kept, c) in text.chars().filter(|c| !c.is_control()).enumerate() {
        if kept == limit {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

fn bounded_field(text: Option<String>) -> Option<String> {
    text.map(|t| bounded_text(&t, bounds::FIELD))
}

impl HealthBase {
    /// The same answer with every appliance-supplied text bounded (see [`bounds`]).
    pub fn bounded(self) -> HealthBase {
        HealthBase {
            version: bounded_field(self.version),
            build: bounded_field(self.build),
            appliance_hostname: bounded_field(self.appliance_hostname),
            appliance_id: bounded_field(self.appliance_id),
            enabled_shared_ips: self
                .enabled_shared_ips
                .into_iter()
                .take(bounds::LIST)
                .map(|ip| bounded_text(&ip, bounds::FIELD))
                .collect(),
            last_data_sync_status: bounded_field(self.last_data_sync_status),
            field_issues: self
                .field_issues
                .into_iter()
                .take(bounds::LIST)
                .map(|issue| FieldIssue {
                    problem: bounded_text(&issue.problem, bounds::MESSAGE),
                    ..issue
                })
                .collect(),
            ..self
        }
    }
}

impl Health {
    /// The same answer with every appliance-supplied text bounded.
    pub fn bounded(self) -> Health {
        match self {
            Health::Healthy(base) => Health::Healthy(base.bounded()),
            Health::Unhealthy { health, message } => Health::Unhealthy {
                health: health.bounded(),
                message: message.map(|m| bounded_text(&m, bounds::MESSAGE)),
            },
        }
    }
}

impl ApplianceRecord {
    /// A list as kept: at most [`bounds::LIST`] entries, texts bounded, a raw entry larger than
    /// [`bounds::RAW_BYTES`] replaced by a note.
    pub fn bounded_list(records: Vec<ApplianceRecord>) -> Vec<ApplianceRecord> {
        records
            .into_iter()
            .take(bounds::LIST)
            .map(|record| {
                let size = serde_json::to_vec(&record.raw).map(|v| v.len()).unwrap_or(usize::MAX);
                ApplianceRecord {
                    id: bounded_field(record.id),
                    hostname: bounded_field(record.hostname),
                    raw: if size > bounds::RAW_BYTES {
                        serde_json::json!({ "omitted": format!("the appliance sent {size} bytes for this entry; at most {} are kept", bounds::RAW_BYTES) })
                    } else {
                        record.raw
                    },
                    ..record
                }
            })
            .collect()
    }
}

impl ApiInfo {
    /// The same answer with every appliance-supplied text bounded.
    pub fn bounded(self) -> ApiInfo {
        ApiInfo {
            command_api_version: bounded_field(self.command_api_version),
            field_issues: self
                .field_issues
                .into_iter()
                .take(bounds::LIST)
                .map(|issue| FieldIssue {
                    problem: bounded_text(&issue.problem, bounds::MESSAGE),
                    ..issue
                })
                .collect(),
            ..self
        }
    }
}

pub(crate) mod json {
    use super::*;

    /// Why a body could not be used at all.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Malformed(pub String);

    #[derive(Deserialize)]
    struct RawHealth {
        version: Option<String>,
        build: Option<String>,
        appliance_hostname: Option<String>,
        appliance_id: Option<String>,
        #[serde(default)]
        cluster_role: Option<String>,
        // `Some(None)` is an explicit null; `None` is an absent key.
        #[serde(default, deserialize_with = "present_or_null")]
        failover_role: Option<Option<String>>,
        enabled_shared_ips: Option<Vec<String>>,
        last_data_sync: Option<String>,
        last_data_sync_status: Option<String>,
        message: Option<String>,
    }

    fn present_or_null<'de, D>(deserializer: D) -> Result<Option<Option<String>>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        Option::<String>::deserialize(deserializer).map(Some)
    }

    fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, Malformed> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                Malformed(format!("{what} is not valid: {inner}"))
            } else {
                Malformed(format!("{what} field {path} is not valid: {inner}"))
            }
        })?;
        deserializer
            .end()
            .map_err(|e| Malformed(format!("{what} has trailing data: {e}")))?;
        Ok(value)
    }

    fn role_field<T>(
        value: Option<String>,
        field: &'static str,
        parse: fn(&str) -> Option<T>,
        issues: &mut Vec<FieldIssue>,
    ) -> Option<T> {
        let text = value?;
        let parsed = parse(&text);
        if parsed.is_none() {
            issues.push(FieldIssue {
                field,
                problem: format!("unknown value {:?}", short(&text)),
            });
        }
        parsed
    }

    fn time_field(
        value: Option<String>,
        field: &'static str,
        issues: &mut Vec<FieldIssue>,
    ) -> Option<UtcTime> {
        let text = value?;
        match UtcTime::parse(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                issues.push(FieldIssue {
                    field,
                    problem: e.to_string(),
                });
                None
            }
        }
    }

    fn short(text: &str) -> String {
        super::bounded_text(text, 64)
    }

    /// A `/health` body. `require_role` is set for a 200 answer, where a HealthBase without a
    /// failover role would be useless to the engine.
    pub fn health(
        body: &[u8],
        require_role: bool,
    ) -> Result<(HealthBase, Option<String>), Malformed> {
        let raw: RawHealth = decode(body, "health answer")?;
        if require_role && raw.failover_role.is_none() {
            return Err(Malformed(
                "health answer has no failover_role field".to_string(),
            ));
        }
        let mut issues = Vec::new();
        let health = HealthBase {
            version: raw.version,
            build: raw.build,
            appliance_hostname: raw.appliance_hostname,
            appliance_id: raw.appliance_id,
            cluster_role: role_field(
                raw.cluster_role,
                "cluster_role",
                ClusterRole::parse,
                &mut issues,
            ),
            failover_role: role_field(
                raw.failover_role.flatten(),
                "failover_role",
                FailoverRole::parse,
                &mut issues,
            ),
            enabled_shared_ips: raw.enabled_shared_ips.unwrap_or_default(),
            last_data_sync: time_field(raw.last_data_sync, "last_data_sync", &mut issues),
            last_data_sync_status: raw.last_data_sync_status,
            field_issues: issues,
        };
        Ok((health, raw.message))
    }

    /// A `/appliance` body: an array of objects whose field names are not published.
    pub fn appliances(body: &[u8]) -> Result<Vec<ApplianceRecord>, Malformed> {
        let value: serde_json::Value = decode(body, "appliance list")?;
        let serde_json::Value::Array(items) = value else {
            return Err(Malformed("appliance list is not a JSON array".to_string()));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let serde_json::Value::Object(object) = &item else {
                    return Err(Malformed(format!(
                        "appliance list entry {index} is not an object"
                    )));
                };
                let text = |keys: &[&str]| {
                    keys.iter().find_map(|key| match object.get(*key) {
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    })
                };
                Ok(ApplianceRecord {
                    id: text(&["id", "appliance_id"]),
                    hostname: text(&["hostname", "appliance_hostname", "public_hostname", "name"]),
                    failover_role: text(&["failover_role"]).and_then(|r| FailoverRole::parse(&r)),
                    cluster_role: text(&["cluster_role"]).and_then(|r| ClusterRole::parse(&r)),
                    raw: item,
                })
            })
            .collect()
    }

    /// The client types the vendor documents (RS and PRA).
    const CLIENT_TYPES: [&str; 4] = ["rep_console", "access_console", "asset_client", "gateway"];
    /// PRA's Jumpoints, named in a `type` field though not among the documented types.
    const JUMPOINT: &str = "jumpoint";
    /// Where a type named in a `type` field that is neither documented nor [`JUMPOINT`] is
    /// counted: the names become a metric label and a line of `/status`, and an answer naming
    /// a new type every time must not grow either.
    const OTHER_CLIENT_TYPE: &str = "other";

    /// Adds `number` clients of `kind`, saturating: the counts come from the appliance.
    fn add_count(counts: &mut ClientCounts, kind: &str, number: u64) {
        let total = counts.by_type.entry(kind.to_string()).or_default();
        *total = total.saturating_add(number);
    }

    /// A `/appliance/client-count` body. The vendor gives no schema ("an array of appliance
    /// objects, each including client counts per type"), so counts are recognised wherever
    /// they are: a documented type name holding a number (at any depth of an entry), or an
    /// object naming its type (`type`/`client_type`) next to a count (`count`/`total`).
    /// Unknown fields are ignored; a body that is not a JSON array (or object) of objects is
    /// an error, and so is one in which no count can be found.
    pub fn client_counts(body: &[u8]) -> Result<ClientCounts, Malformed> {
        let value: serde_json::Value = decode(body, "client count")?;
        let entries = match value {
            serde_json::Value::Array(items) => items,
            object @ serde_json::Value::Object(_) => vec![object],
            _ => {
                return Err(Malformed(
                    "client count is not a JSON array of appliance objects".to_string(),
                ));
            }
        };
        let mut counts = ClientCounts::default();
        let mut found = entries.is_empty();
        for (index, entry) in entries.iter().enumerate() {
            if !entry.is_object() {
                return Err(Malformed(format!(
                    "client count entry {index} is not an object"
                )));
            }
            found |= collect_counts(entry, &mut counts, 0);
        }
        if !found {
            return Err(Malformed(format!(
                "client count: no count per client type ({}) found in the answer",
                CLIENT_TYPES.join(", ")
            )));
        }
        Ok(counts)
    }

    fn count_of(value: &serde_json::Value) -> Option<u64> {
        match value {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Adds the counts found in `value`; whether any was.
    fn collect_counts(value: &serde_json::Value, counts: &mut ClientCounts, depth: u32) -> bool {
        // Deep enough for any plausible shape, bounded against hostile nesting.
        if depth > 4 {
            return false;
        }
        let mut found = false;
        match value {
            serde_json::Value::Object(object) => {
                let named = ["type", "client_type"]
                    .iter()
                    .find_map(|k| object.get(*k).and_then(|v| v.as_str()));
                let number = ["count", "total", "connected"]
                    .iter()
                    .find_map(|k| object.get(*k).and_then(count_of));
                if let (Some(kind), Some(number)) = (named, number) {
                    let known = CLIENT_TYPES.contains(&kind) || kind == JUMPOINT;
                    add_count(counts, if known { kind } else { OTHER_CLIENT_TYPE }, number);
                    return true;
                }
                for (key, inner) in object {
                    if CLIENT_TYPES.contains(&key.as_str())
                        && let Some(number) = count_of(inner)
                    {
                        add_count(counts, key, number);
                        found = true;
                    } else if inner.is_object() || inner.is_array() {
                        found |= collect_counts(inner, counts, depth + 1);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    found |= collect_counts(item, counts, depth + 1);
                }
            }
            _ => {}
        }
        found
    }

    #[derive(Deserialize)]
    struct RawInfo {
        product: Option<String>,
        command_api_version: Option<String>,
        current_time: Option<String>,
        permissions: Option<RawPermissions>,
    }

    #[derive(Deserialize)]
    struct RawPermissions {
        perm_command: Option<String>,
    }

    pub fn info(body: &[u8]) -> Result<ApiInfo, Malformed> {
        let raw: RawInfo = decode(body, "info answer")?;
        let mut issues = Vec::new();
        Ok(ApiInfo {
            product: raw.product.as_deref().map(Product::parse),
            command_api_version: raw.command_api_version,
            perm_command: raw
                .permissions
                .and_then(|p| p.perm_command)
                .map(|p| CommandPermission::parse(&p)),
            current_time: time_field(raw.current_time, "current_time", &mut issues),
            field_issues: issues,
        })
    }

    #[derive(Deserialize)]
    struct RawMessage {
        message: Option<String>,
    }

    /// A MessageResponse; `None` when the body has no usable message.
    pub fn message(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<RawMessage>(body)
            .ok()
            .and_then(|m| m.message)
    }

    #[derive(Deserialize)]
    struct RawErrorBag {
        message: Option<String>,
        #[serde(default)]
        errors: ErrorBag,
    }

    /// A 422 body: `{"message", "errors": {field: [..]}}`.
    pub fn error_bag(body: &[u8]) -> Option<(Option<String>, ErrorBag)> {
        serde_json::from_slice::<RawErrorBag>(body)
            .ok()
            .map(|bag| (bag.message, bag.errors))
    }

    #[derive(Deserialize)]
    struct RawToken {
        access_token: String,
        token_type: Option<String>,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }

    /// `expires_in` read tolerantly: RFC 6749 says a number of seconds, but appliances and
    /// proxies have been seen to send it as a string ("3600"), a float or a negative number.
    /// A value that is not a number at all says nothing usable about the lifetime: `None`,
    /// and the caller assumes the documented one. The caller clamps what it gets.
    fn lifetime_seconds(value: &serde_json::Value) -> Option<u64> {
        let seconds = match value {
            serde_json::Value::Number(n) => n.as_u64().map(|u| u as f64).or_else(|| n.as_f64()),
            serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        }?;
        if seconds.is_nan() {
            return None;
        }
        // `as` saturates: negatives become 0, huge values u64::MAX.
        Some(seconds as u64)
    }

    /// `POST /oauth2/token`: the token and its lifetime in seconds, when given.
    pub fn token(body: &[u8]) -> Result<(String, Option<u64>), Malformed> {
        let raw: RawToken = decode(body, "token answer")?;
        if let Some(kind) = &raw.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(Malformed(format!(
                "token answer has token_type {:?}, expected Bearer",
                short(kind)
            )));
        }
        if raw.access_token.is_empty() {
            return Err(Malformed(
                "token answer has an empty access_token".to_string(),
            ));
        }
        let lifetime = raw.expires_in.as_ref().and_then(lifetime_seconds);
        Ok((raw.access_token, lifetime))
    }
}

#[cfg(test)]
mod tests {
    /// A hostile appliance: a megabyte version with a forged log line and terminal escapes,
    /// thousands of shared IPs, a huge raw `/appliance` entry. What reaches logs, `/status`
    /// and labels is bounded and clean.
    #[test]
    fn appliance_text_is_bounded_and_stripped_of_control_characters() {
        let forged = format!(
            "25.1\n2030-01-01 ERROR forged line\u{1b}[2J{}",
            "x".repeat(1 << 20)
        );
        let body = serde_json::json!({
            "version": forged, "failover_role": "primary",
            "enabled_shared_ips": vec!["10.0.0.1"; 5000],
            "last_data_sync_status": "ok\r\n\u{0}",
        })
        .to_string();
        let (health, _) = json::health(body.as_bytes(), true).unwrap();
        let health = Health::Healthy(health).bounded();
        let base = health.base();
        let version = base.version.as_deref().unwrap();
        assert!(
            version.chars().count() <= bounds::FIELD + 1,
            "{}",
            version.len()
        );
        assert!(version.ends_with('…'));
        assert!(!version.chars().any(char::is_control), "{version:?}");
        assert_eq!(base.enabled_shared_ips.len(), bounds::LIST);
        assert_eq!(base.last_data_sync_status.as_deref(), Some("ok"));
        let unhealthy = Health::Unhealthy {
            health: HealthBase::default(),
            message: Some("disk\nfull".repeat(1000)),
        }
        .bounded();
        let Health::Unhealthy { message, .. } = unhealthy else {
            unreachable!()
        };
        assert!(message.unwrap().chars().count() <= bounds::MESSAGE + 1);
        let big = serde_json::json!([{ "hostname": "h\u{7}", "blob": "y".repeat(100_000) }]);
        let records =
            ApplianceRecord::bounded_list(json::appliances(big.to_string().as_bytes()).unwrap());
        assert_eq!(records[0].hostname.as_deref(), Some("h"));
        assert!(
            records[0].raw.get("omitted").is_some(),
            "{:?}",
            records[0].raw.get("omitted")
        );
    }

    use super::json;
    use super::*;

    const PRIMARY: &str = r#"{
        "version": "25.1.2", "build": "12345", "appliance_hostname": "east.example.com",
        "appliance_id": "50adeb59f0f04163b09b7591af1949ea", "cluster_role": "single",
        "failover_role": "primary", "enabled_shared_ips": ["10.0.0.5"],
        "last_data_sync": "2026-11-23T05:00:00.123+00:00", "last_data_sync_status": "success",
        "some_future_field": {"nested": [1, 2, 3]}
    }"#;

    #[test]
    fn healthy_primary_parses_and_ignores_unknown_fields() {
        let (health, message) = json::health(PRIMARY.as_bytes(), true).unwrap();
        assert_eq!(health.failover_role, Some(FailoverRole::Primary));
        assert_eq!(health.cluster_role, Some(ClusterRole::Single));
        assert_eq!(health.enabled_shared_ips, vec!["10.0.0.5".to_string()]);
        assert_eq!(
            health.last_data_sync,
            Some(UtcTime::parse("2026-11-23T05:00:00.123Z").unwrap())
        );
        assert!(health.field_issues.is_empty());
        assert_eq!(message, None);
    }

    #[test]
    fn backup_with_nulls_and_no_shared_ips() {
        let body = r#"{"version":"25.1.2","build":"1","appliance_hostname":"w","appliance_id":"x",
            "cluster_role":"single","failover_role":"backup","last_data_sync":null,"last_data_sync_status":null}"#;
        let (health, _) = json::health(body.as_bytes(), true).unwrap();
        assert_eq!(health.failover_role, Some(FailoverRole::Backup));
        assert_eq!(health.last_data_sync, None);
        assert!(health.enabled_shared_ips.is_empty());
    }

    #[test]
    fn a_bad_date_is_an_issue_of_that_field_only() {
        let body = PRIMARY.replace("2026-11-23T05:00:00.123+00:00", "2026-11-23T05:00:00+04:00");
        let (health, _) = json::health(body.as_bytes(), true).unwrap();
        assert_eq!(health.failover_role, Some(FailoverRole::Primary));
        assert_eq!(health.last_data_sync, None);
        assert_eq!(health.field_issues.len(), 1);
        assert_eq!(health.field_issues[0].field, "last_data_sync");
        assert!(health.field_issues[0].problem.contains("not in UTC"));
    }

    #[test]
    fn an_unknown_role_is_an_issue_not_a_guess() {
        let body = PRIMARY.replace("\"primary\"", "\"observer\"");
        let (health, _) = json::health(body.as_bytes(), true).unwrap();
        assert_eq!(health.failover_role, None);
        assert_eq!(health.field_issues[0].field, "failover_role");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let body = PRIMARY.replace("\"25.1.2\"", "25");
        let err = json::health(body.as_bytes(), true).unwrap_err();
        assert!(err.0.contains("version"), "{}", err.0);
    }

    #[test]
    fn a_200_without_failover_role_is_malformed() {
        let err = json::health(br#"{"version":"1"}"#, true).unwrap_err();
        assert!(err.0.contains("failover_role"));
        // An unhealthy answer may have nulls everywhere.
        let (health, message) =
            json::health(br#"{"failover_role":null,"message":"disk full"}"#, false).unwrap();
        assert_eq!(health.failover_role, None);
        assert_eq!(message.as_deref(), Some("disk full"));
    }

    #[test]
    fn appliance_list_is_parsed_tolerantly() {
        let body = br#"[{"id":"a1","hostname":"east","failover_role":"primary","cluster_role":"single","x":1},
                        {"appliance_id":7,"name":"west","failover_role":"weird"}]"#;
        let list = json::appliances(body).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].failover_role, Some(FailoverRole::Primary));
        assert_eq!(list[1].id.as_deref(), Some("7"));
        assert_eq!(list[1].hostname.as_deref(), Some("west"));
        assert_eq!(list[1].failover_role, None);
        assert!(json::appliances(b"{}").is_err());
        assert!(json::appliances(b"[1]").is_err());
    }

    #[test]
    fn info_reads_product_and_permission() {
        let body = br#"{"product":"pra","command_api_version":"1.0","current_time":"2026-01-01T00:00:00+00:00",
            "permissions":{"perm_command":"read_only","perm_backup":true}}"#;
        let info = json::info(body).unwrap();
        assert_eq!(info.product, Some(Product::Pra));
        assert_eq!(info.perm_command, Some(CommandPermission::ReadOnly));
        assert!(!info.perm_command.unwrap().can_fail_over());
    }

    #[test]
    fn token_answer() {
        let (token, expires) =
            json::token(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#)
                .unwrap();
        assert_eq!((token.as_str(), expires), ("abc", Some(3600)));
        assert!(json::token(br#"{"access_token":"","token_type":"Bearer"}"#).is_err());
        assert!(json::token(br#"{"access_token":"a","token_type":"mac"}"#).is_err());
    }

    #[test]
    fn token_lifetimes_of_every_shape_are_read_without_failing() {
        let lifetime = |expires_in: &str| {
            let body = format!(
                r#"{{"access_token":"abc","token_type":"Bearer","expires_in":{expires_in}}}"#
            );
            json::token(body.as_bytes()).map(|(_, l)| l)
        };
        assert_eq!(lifetime(r#""3600""#), Ok(Some(3600)));
        assert_eq!(lifetime(r#"" 600 ""#), Ok(Some(600)));
        assert_eq!(lifetime("0"), Ok(Some(0)));
        assert_eq!(lifetime("-5"), Ok(Some(0)));
        assert_eq!(lifetime("3599.9"), Ok(Some(3599)));
        assert_eq!(lifetime("18446744073709551615"), Ok(Some(u64::MAX)));
        assert_eq!(lifetime("1e300"), Ok(Some(u64::MAX)));
        assert_eq!(lifetime(r#""99999999999999999999999""#), Ok(Some(u64::MAX)));
        assert_eq!(lifetime(r#""soon""#), Ok(None));
        assert_eq!(lifetime("null"), Ok(None));
        assert_eq!(lifetime("[1]"), Ok(None));
        assert_eq!(
            json::token(br#"{"access_token":"abc"}"#).map(|(_, l)| l),
            Ok(None)
        );
    }

    #[test]
    fn failover_request_serializes_with_real_json_types() {
        let body = serde_json::to_value(FailoverRequest {
            role: FailoverRole::Primary,
            data_sync_first: true,
            force: false,
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"role": "primary", "data_sync_first": true, "force": false})
        );
    }

    /// The type names become a metric label and a line of `/status`: an appliance (or
    /// something pretending to be one) naming a new type in every answer must not grow them.
    #[test]
    fn client_types_are_a_closed_set_whatever_the_answer_names() {
        let entries: Vec<String> = (0..1000)
            .map(|i| format!(r#"{{"type": "kind-{i}", "count": 1}}"#))
            .collect();
        let body = format!(
            r#"[{{"clients": [{}, {{"type": "gateway", "count": 2}}]}}]"#,
            entries.join(",")
        );
        let counts = json::client_counts(body.as_bytes()).unwrap();
        assert!(counts.by_type.len() <= 6, "{} types", counts.by_type.len());
        assert_eq!(counts.by_type["gateway"], 2);
        assert_eq!(
            counts.total(),
            1002,
            "nothing is lost: the rest is under `other`"
        );
        let huge = json::client_counts(
            br#"[{"rep_console": 18446744073709551615, "access_console": 5, "clients": [{"type": "gateway", "count": 18446744073709551615}, {"type": "gateway", "count": 1}]}]"#,
        )
        .unwrap();
        assert_eq!(
            huge.total(),
            u64::MAX,
            "hostile counts saturate, never overflow"
        );
        assert_eq!(huge.representatives(), u64::MAX);
    }

    #[test]
    fn client_counts_are_read_from_any_plausible_shape() {
        let by_key = json::client_counts(
            br#"[{"id": "a1", "hostname": "east", "client_counts": {"rep_console": 3, "asset_client": 12, "gateway": 1}, "new_field": true},
                 {"id": "a2", "hostname": "traffic", "rep_console": "2"}]"#,
        )
        .unwrap();
        assert_eq!(
            by_key.by_type["rep_console"], 5,
            "summed over the appliances"
        );
        assert_eq!(by_key.by_type["asset_client"], 12);
        assert_eq!(by_key.representatives(), 5);
        assert_eq!(
            by_key.describe(),
            "12 asset_client, 1 gateway, 5 rep_console"
        );
        let listed = json::client_counts(
            br#"[{"appliance": "east", "clients": [{"type": "access_console", "count": 4}, {"type": "jumpoint", "count": 2}]}]"#,
        )
        .unwrap();
        assert_eq!(
            listed.representatives(),
            4,
            "PRA consoles are representatives too"
        );
        assert_eq!(listed.by_type["jumpoint"], 2, "types as the API names them");
        assert_eq!(json::client_counts(b"[]").unwrap().total(), 0);
        let none = json::client_counts(br#"[{"id": "a1", "uptime": 5}]"#).unwrap_err();
        assert!(none.0.contains("no count per client type"), "{none:?}");
        assert!(json::client_counts(b"\"12\"").is_err());
        assert_eq!(
            json::client_counts(br#"[{"clients": [{"type": "x-new-kind", "count": 2}]}]"#)
                .unwrap()
                .by_type["other"],
            2,
            "a type nobody documented is counted under other"
        );
        assert!(
            json::client_counts(b"[3]")
                .unwrap_err()
                .0
                .contains("entry 0")
        );
    }
}
