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
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.by_type.values().sum()
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
        text.chars().take(64).collect()
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
                    *counts.by_type.entry(kind.to_string()).or_default() += number;
                    return true;
                }
                for (key, inner) in object {
                    if CLIENT_TYPES.contains(&key.as_str())
                        && let Some(number) = count_of(inner)
                    {
                        *counts.by_type.entry(key.clone()).or_default() += number;
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
        expires_in: Option<u64>,
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
        Ok((raw.access_token, raw.expires_in))
    }
}

#[cfg(test)]
mod tests {
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
        assert!(
            json::client_counts(b"[3]")
                .unwrap_err()
                .0
                .contains("entry 0")
        );
    }
}
