//! The simulated pair's state, without any IO: tokens, rate limits, injected faults, what was
//! received, and the vendor's failover behaviour ([`super::pair_model`]) fed with the faults.
//! The HTTP layers translate requests into calls on [`Pair`], passing the time in.
//!
//! Tokens and rate limits follow the vendor documentation: tokens
//! capped at 30 per account with the oldest evicted, 20 requests a second and an hourly limit.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::pair_model::{Conditions, HealthReport, PairModel};
use crate::api::model::{FailoverRequest, FailoverRole};

/// Documented: an API account holds at most 30 valid tokens.
const MAX_TOKENS_PER_ACCOUNT: usize = 30;
/// How many recent requests the simulator remembers for the control API.
const REQUEST_LOG_CAPACITY: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimProduct {
    Rs,
    Pra,
}

impl SimProduct {
    pub fn as_str(self) -> &'static str {
        match self {
            SimProduct::Rs => "rs",
            SimProduct::Pra => "pra",
        }
    }
}

/// How the simulated pair is set up.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub names: [String; 2],
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: Duration,
    pub product: SimProduct,
    /// How long a `data_sync_first` swap takes (both appliances read `backup` meanwhile).
    pub swap_duration: Duration,
    /// How often the primary syncs its data to the backup.
    pub sync_interval: Duration,
    pub per_second_limit: u32,
    pub hourly_limit: u32,
    /// Which command APIs each appliance serves (an older appliance may have only XML).
    pub apis: [SimApis; 2],
    /// The XML namespace of each appliance's answers; it changed across versions.
    pub xml_namespaces: [Option<String>; 2],
}

/// The command APIs one simulated appliance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimApis {
    pub v2: bool,
    pub xml: bool,
}

impl Default for SimApis {
    fn default() -> Self {
        SimApis {
            v2: true,
            xml: true,
        }
    }
}

/// The namespace older appliances answer XML in.
pub const XML_NAMESPACE_BOMGAR: &str = "http://www.bomgar.com/namespaces/API/command";
/// The namespace newer appliances answer XML in.
pub const XML_NAMESPACE_BEYONDTRUST: &str = "http://www.beyondtrust.com/namespaces/API/command";

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            names: ["east".to_string(), "west".to_string()],
            client_id: "bt-watchdog".to_string(),
            client_secret: "simulated-secret".to_string(),
            token_lifetime: Duration::from_secs(3600),
            product: SimProduct::Rs,
            swap_duration: Duration::from_secs(3),
            sync_interval: Duration::from_secs(60),
            per_second_limit: 20,
            hourly_limit: 15_000,
            apis: [SimApis::default(); 2],
            // One of each, so that a default pair shows both.
            xml_namespaces: [
                Some(XML_NAMESPACE_BOMGAR.to_string()),
                Some(XML_NAMESPACE_BEYONDTRUST.to_string()),
            ],
        }
    }
}

/// Faults injected into one appliance. Every field is off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The appliance is gone: connections are refused.
    pub down: bool,
    /// Connections are accepted but never answered.
    pub hang: bool,
    /// `/health` answers 500 and `/check_health` 500.
    pub unhealthy: bool,
    /// Every answer is delayed this long.
    pub slow_ms: u64,
    /// API answers are not valid JSON.
    pub malformed: bool,
    /// API answers stream a body that never ends.
    pub endless_body: bool,
    /// Every API request gets 429 with `Retry-After: retry_after_secs`.
    pub rate_limited: bool,
    pub retry_after_secs: Option<u64>,
    /// The token endpoint answers 500.
    pub token_failing: bool,
    /// Every bearer token is refused with 401, even one minted a moment ago (a broken clock,
    /// a secret regenerated again and again).
    pub reject_tokens: bool,
    /// API requests get 403 (the account lacks Command API permission).
    pub forbidden: bool,
    /// `/check_health` is not served (404), as on some appliances.
    pub no_check_health: bool,
    /// `POST /failover-role` answers 500.
    pub failover_failing: bool,
    /// New TLS connections get the simulator's expired certificate (`SimConfig::expired_tls`)
    /// instead of the valid one.
    pub expired_certificate: bool,
    /// When set, `rate_limited` applies only to requests whose path ends with this (a 429
    /// on `/health` alone, say).
    pub rate_limited_path: Option<String>,
    /// Answers report this `X-RateLimit-Remaining` instead of the true count (another
    /// integration's burst, as the appliance would show it).
    pub ratelimit_remaining: Option<u32>,
    /// Token answers carry this JSON value as `expires_in` (`"3600"`, `0`, `1e30`...); the
    /// tokens themselves keep the simulator's lifetime.
    pub token_expires_in: Option<serde_json::Value>,
    /// `info` (v2 `/info`, XML `get_api_info`) answers 500.
    pub info_failing: bool,
    /// Connections from these client addresses are accepted and never answered: a network
    /// path from one watchdog broken while the others' work (`source_address`).
    pub ignored_sources: Vec<std::net::IpAddr>,
    /// Every request is answered with this HTTP status and an empty body (100-999: an
    /// appliance or a proxy in front of it answering codes nobody documented).
    pub status: Option<u16>,
}

/// A partial update of [`Faults`]: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsPatch {
    pub down: Option<bool>,
    pub hang: Option<bool>,
    pub unhealthy: Option<bool>,
    pub slow_ms: Option<u64>,
    pub malformed: Option<bool>,
    pub endless_body: Option<bool>,
    pub rate_limited: Option<bool>,
    pub retry_after_secs: Option<Option<u64>>,
    pub token_failing: Option<bool>,
    pub reject_tokens: Option<bool>,
    pub forbidden: Option<bool>,
    pub no_check_health: Option<bool>,
    pub failover_failing: Option<bool>,
    pub expired_certificate: Option<bool>,
    pub rate_limited_path: Option<Option<String>>,
    pub ratelimit_remaining: Option<Option<u32>>,
    pub token_expires_in: Option<Option<serde_json::Value>>,
    pub info_failing: Option<bool>,
    pub ignored_sources: Option<Vec<std::net::IpAddr>>,
    pub status: Option<Option<u16>>,
}

impl Faults {
    pub(super) fn apply(&mut self, patch: FaultsPatch) {
        // Destructured without `..`, so a new fault cannot be forgotten here.
        let FaultsPatch {
            down,
            hang,
            unhealthy,
            slow_ms,
            malformed,
            endless_body,
            rate_limited,
            retry_after_secs,
            token_failing,
            reject_tokens,
            forbidden,
            no_check_health,
            failover_failing,
            expired_certificate,
            rate_limited_path,
            ratelimit_remaining,
            token_expires_in,
            info_failing,
            ignored_sources,
            status,
        } = patch;
        if let Some(v) = ignored_sources {
            self.ignored_sources = v;
        }
        if let Some(v) = status {
            self.status = v;
        }
        if let Some(v) = expired_certificate {
            self.expired_certificate = v;
        }
        if let Some(v) = down {
            self.down = v;
        }
        if let Some(v) = hang {
            self.hang = v;
        }
        if let Some(v) = unhealthy {
            self.unhealthy = v;
        }
        if let Some(v) = slow_ms {
            self.slow_ms = v;
        }
        if let Some(v) = malformed {
            self.malformed = v;
        }
        if let Some(v) = endless_body {
            self.endless_body = v;
        }
        if let Some(v) = rate_limited {
            self.rate_limited = v;
        }
        if let Some(v) = retry_after_secs {
            self.retry_after_secs = v;
        }
        if let Some(v) = token_failing {
            self.token_failing = v;
        }
        if let Some(v) = reject_tokens {
            self.reject_tokens = v;
        }
        if let Some(v) = forbidden {
            self.forbidden = v;
        }
        if let Some(v) = no_check_health {
            self.no_check_health = v;
        }
        if let Some(v) = failover_failing {
            self.failover_failing = v;
        }
        if let Some(v) = rate_limited_path {
            self.rate_limited_path = v;
        }
        if let Some(v) = ratelimit_remaining {
            self.ratelimit_remaining = v;
        }
        if let Some(v) = token_expires_in {
            self.token_expires_in = v;
        }
        if let Some(v) = info_failing {
            self.info_failing = v;
        }
    }

    /// Whether the injected 429 applies to a request for `path`.
    pub(super) fn rate_limits(&self, path: &str) -> bool {
        self.rate_limited
            && self
                .rate_limited_path
                .as_deref()
                .is_none_or(|p| path.ends_with(p))
    }
}

/// Faults of the pair as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairFaults {
    /// The two appliances cannot reach each other (they still answer us).
    pub partitioned: bool,
    /// When set, the primary's last data sync is made this many seconds old and stops
    /// advancing until the fault is cleared.
    pub sync_stale_secs: Option<u64>,
    /// The primary reports its last data sync as failed.
    pub sync_failing: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct PairFaultsPatch {
    pub partitioned: Option<bool>,
    pub sync_stale_secs: Option<Option<u64>>,
    pub sync_failing: Option<bool>,
}

/// What the simulator counted for one appliance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub connections: u64,
    pub requests: u64,
    /// Requests that arrived on a connection that had already carried one.
    pub connections_reused: u64,
    /// Requests that did not say `Connection: close`.
    pub missing_connection_close: u64,
    /// Requests refused for a missing or wrong `Accept`/`Content-Type` header.
    pub header_violations: u64,
    pub tokens_minted: u64,
    /// Tokens invalidated because a 31st was minted.
    pub tokens_evicted: u64,
    pub token_rejections: u64,
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub failover_calls: u64,
    pub health_requests: u64,
    pub check_health_requests: u64,
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires_at: Instant,
}

#[derive(Debug, Clone)]
pub struct Appliance {
    pub name: String,
    pub id: String,
    pub hostname: String,
    pub role: FailoverRole,
    pub faults: Faults,
    pub counters: Counters,
    tokens: VecDeque<Token>,
    second_window: VecDeque<Instant>,
    hour_window_start: Option<Instant>,
    hour_count: u32,
}

impl Appliance {
    fn new(name: &str, role: FailoverRole) -> Self {
        Appliance {
            name: name.to_string(),
            id: appliance_id(name),
            hostname: format!("{name}.bt-sim.invalid"),
            role,
            faults: Faults::default(),
            counters: Counters::default(),
            tokens: VecDeque::new(),
            second_window: VecDeque::new(),
            hour_window_start: None,
            hour_count: 0,
        }
    }

    pub(super) fn valid_tokens(&self, now: Instant) -> usize {
        self.tokens.iter().filter(|t| t.expires_at > now).count()
    }
}

/// A stable 32-hex-digit id derived from the name (FNV-1a), like a real ApplianceId.
fn appliance_id(name: &str) -> String {
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    for byte in name.bytes() {
        hash ^= byte as u128;
        hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("{hash:032x}")
}

/// A `POST /failover-role` the simulator received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverCall {
    pub appliance: String,
    pub at: String,
    pub role: FailoverRole,
    pub data_sync_first: bool,
    pub force: bool,
    pub status: u16,
    pub message: String,
}

/// One request as the simulator saw it (no credentials are kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    pub appliance: String,
    pub connection: u64,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    pub connection_header: Option<String>,
    /// `bearer`, `basic` or absent.
    pub authorization: Option<String>,
    pub body: Option<serde_json::Value>,
}

/// How a token request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenAnswer {
    Minted { token: String, expires_in: u64 },
    BadCredentials,
    Failing,
}

/// How a bearer token was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Authorization {
    Valid,
    Invalid,
}

/// A failed failover call: status and message.
pub(super) type FailoverFailure = (u16, String);

#[derive(Debug, Clone)]
pub struct Pair {
    pub settings: SimSettings,
    pub appliances: [Appliance; 2],
    pub faults: PairFaults,
    /// Where `sync_stale_secs` froze the primary's last sync.
    sync_frozen_at: Option<SystemTime>,
    model: PairModel,
    pub failover_calls: Vec<FailoverCall>,
    pub requests: VecDeque<RequestRecord>,
    token_serial: u64,
}

impl Pair {
    pub(super) fn new(settings: SimSettings, wall: SystemTime) -> Self {
        let appliances = [
            Appliance::new(&settings.names[0], FailoverRole::Primary),
            Appliance::new(&settings.names[1], FailoverRole::Backup),
        ];
        let model = PairModel::new(settings.swap_duration, settings.sync_interval, wall);
        Pair {
            settings,
            appliances,
            faults: PairFaults::default(),
            sync_frozen_at: None,
            model,
            failover_calls: Vec::new(),
            requests: VecDeque::new(),
            token_serial: 0,
        }
    }

    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.appliances.iter().position(|a| a.name == name)
    }

    /// The faults as the vendor model reads them: a hanging appliance is as lost to its peer
    /// as one that is down.
    fn conditions(&self) -> Conditions {
        let [first, second] = &self.appliances;
        let both = |f: fn(&Faults) -> bool| [f(&first.faults), f(&second.faults)];
        Conditions {
            up: both(|f| !f.down && !f.hang),
            healthy: both(|f| !f.unhealthy),
            partitioned: self.faults.partitioned,
            failover_failing: both(|f| f.failover_failing),
            sync_failing: self.faults.sync_failing,
            sync_frozen_at: self.faults.sync_stale_secs.and(self.sync_frozen_at),
            ..Conditions::default()
        }
    }

    /// Runs a rule of the vendor model on this pair's roles and faults.
    fn with_model<R>(
        &mut self,
        rule: impl FnOnce(&mut PairModel, &mut [FailoverRole; 2], &Conditions) -> R,
    ) -> R {
        let conditions = self.conditions();
        let mut roles = self.appliances.each_ref().map(|a| a.role);
        let result = rule(&mut self.model, &mut roles, &conditions);
        for (appliance, role) in self.appliances.iter_mut().zip(roles) {
            appliance.role = role;
        }
        result
    }

    /// Lets what happens on its own happen: a pending swap completing, the periodic data sync.
    pub(super) fn tick(&mut self, wall: SystemTime) {
        self.with_model(|model, roles, on| model.tick(wall, roles, on));
    }

    /// What appliance `index` says about itself in `/health`.
    pub(super) fn health(&self, index: usize) -> HealthReport {
        let roles = self.appliances.each_ref().map(|a| a.role);
        self.model.health(index, roles, &self.conditions())
    }

    #[cfg(test)]
    fn sole_primary(&self) -> Option<usize> {
        super::pair_model::sole_primary(self.appliances.each_ref().map(|a| a.role))
    }

    /// `last_data_sync` and its status as appliance `index` reports them (primary only).
    #[cfg(test)]
    fn data_sync(&self, index: usize, _wall: SystemTime) -> (Option<SystemTime>, Option<String>) {
        let health = self.health(index);
        (health.last_data_sync, health.last_data_sync_status)
    }

    /// Freezes the primary's last sync `age` ago (`None` lets it resume).
    pub fn set_sync_stale(&mut self, age: Option<u64>, wall: SystemTime) {
        self.faults.sync_stale_secs = age;
        self.sync_frozen_at = age.map(|age| {
            wall.checked_sub(Duration::from_secs(age))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        });
    }

    /// Clears the pair's faults, the frozen sync included.
    pub(super) fn clear_pair_faults(&mut self) {
        self.faults = PairFaults::default();
        self.sync_frozen_at = None;
    }

    pub(super) fn swap_in_progress(&self) -> bool {
        self.model.swap_in_progress()
    }

    /// `POST /oauth2/token` with the decoded Basic credentials.
    pub(super) fn mint_token(
        &mut self,
        index: usize,
        client_id: &str,
        secret: &str,
        now: Instant,
    ) -> TokenAnswer {
        let appliance = &mut self.appliances[index];
        if appliance.faults.token_failing {
            return TokenAnswer::Failing;
        }
        if client_id != self.settings.client_id || secret != self.settings.client_secret {
            appliance.counters.token_rejections += 1;
            return TokenAnswer::BadCredentials;
        }
        self.token_serial += 1;
        let token = format!(
            "sim{:04x}{:012x}{:08x}",
            index,
            self.token_serial,
            now.elapsed().subsec_nanos()
        );
        appliance.tokens.retain(|t| t.expires_at > now);
        appliance.tokens.push_back(Token {
            value: token.clone(),
            expires_at: now + self.settings.token_lifetime,
        });
        while appliance.tokens.len() > MAX_TOKENS_PER_ACCOUNT {
            appliance.tokens.pop_front();
            appliance.counters.tokens_evicted += 1;
        }
        appliance.counters.tokens_minted += 1;
        TokenAnswer::Minted {
            token,
            expires_in: self.settings.token_lifetime.as_secs().max(1),
        }
    }

    pub(super) fn authorize(
        &mut self,
        index: usize,
        bearer: Option<&str>,
        now: Instant,
    ) -> Authorization {
        let appliance = &mut self.appliances[index];
        let valid = !appliance.faults.reject_tokens
            && bearer.is_some_and(|b| {
                appliance
                    .tokens
                    .iter()
                    .any(|t| t.value == b && t.expires_at > now)
            });
        if valid {
            Authorization::Valid
        } else {
            appliance.counters.unauthorized += 1;
            Authorization::Invalid
        }
    }

    /// Invalidates every token, as regenerating the client secret does.
    pub fn revoke_tokens(&mut self, index: usize) {
        self.appliances[index].tokens.clear();
    }

    /// Counts an API request against the documented limits; `Err(retry_after_secs)` when over.
    pub(super) fn charge_rate_limit(&mut self, index: usize, now: Instant) -> Result<u32, u64> {
        let per_second = self.settings.per_second_limit;
        let hourly = self.settings.hourly_limit;
        let appliance = &mut self.appliances[index];
        while appliance
            .second_window
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            appliance.second_window.pop_front();
        }
        let window_start = *appliance.hour_window_start.get_or_insert(now);
        if now.duration_since(window_start) >= Duration::from_secs(3600) {
            appliance.hour_window_start = Some(now);
            appliance.hour_count = 0;
        }
        if appliance.second_window.len() >= per_second as usize {
            appliance.counters.rate_limited += 1;
            return Err(1);
        }
        if appliance.hour_count >= hourly {
            appliance.counters.rate_limited += 1;
            let reset = appliance
                .hour_window_start
                .map(|s| 3600 - now.duration_since(s).as_secs().min(3599))
                .unwrap_or(60);
            return Err(reset);
        }
        appliance.second_window.push_back(now);
        appliance.hour_count += 1;
        Ok(hourly - appliance.hour_count)
    }

    /// `POST /failover-role` on appliance `index`, which answers.
    pub(super) fn set_failover_role(
        &mut self,
        index: usize,
        request: FailoverRequest,
        wall: SystemTime,
    ) -> Result<String, FailoverFailure> {
        self.with_model(|model, roles, on| model.set_failover_role(index, request, wall, roles, on))
            .map(|accepted| accepted.message.to_string())
            .map_err(|refused| (refused.status, refused.message.to_string()))
    }

    pub(super) fn record_request(&mut self, record: RequestRecord) {
        if self.requests.len() >= REQUEST_LOG_CAPACITY {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
    }

    /// Back to the state at start: roles, faults, tokens, counters and logs.
    pub(super) fn reset(&mut self, wall: SystemTime) {
        *self = Pair::new(self.settings.clone(), wall);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Pair, Instant, SystemTime) {
        let wall = SystemTime::now();
        (
            Pair::new(SimSettings::default(), wall),
            Instant::now(),
            wall,
        )
    }

    fn req(role: FailoverRole, data_sync_first: bool, force: bool) -> FailoverRequest {
        FailoverRequest {
            role,
            data_sync_first,
            force,
        }
    }

    fn roles(p: &Pair) -> [FailoverRole; 2] {
        [p.appliances[0].role, p.appliances[1].role]
    }

    use FailoverRole::{Backup, Primary};

    #[test]
    fn promoting_the_backup_swaps_roles_at_once() {
        let (mut p, _, now) = pair();
        assert_eq!(
            p.set_failover_role(1, req(Primary, false, false), now)
                .unwrap(),
            "Successfully changed role."
        );
        assert_eq!(roles(&p), [Backup, Primary]);
    }

    #[test]
    fn data_sync_first_is_asynchronous_with_both_backup_meanwhile() {
        let (mut p, _, now) = pair();
        let message = p
            .set_failover_role(1, req(Primary, true, false), now)
            .unwrap();
        assert!(message.contains("upon successful completion"));
        assert_eq!(roles(&p), [Backup, Backup]);
        assert!(
            p.set_failover_role(0, req(Primary, false, false), now)
                .is_err(),
            "blocked during the swap"
        );
        p.tick(now + Duration::from_secs(1));
        assert_eq!(roles(&p), [Backup, Backup]);
        p.tick(now + p.settings.swap_duration);
        assert_eq!(roles(&p), [Backup, Primary]);
    }

    #[test]
    fn promoting_while_the_primary_is_down_leaves_split_brain_for_its_return() {
        let (mut p, _, now) = pair();
        p.appliances[0].faults.down = true;
        p.set_failover_role(1, req(Primary, false, false), now)
            .unwrap();
        p.appliances[0].faults.down = false;
        assert_eq!(roles(&p), [Primary, Primary]);
        assert_eq!(p.sole_primary(), None);
    }

    #[test]
    fn data_sync_first_needs_the_peer() {
        let (mut p, _, now) = pair();
        p.faults.partitioned = true;
        let (status, _) = p
            .set_failover_role(1, req(Primary, true, false), now)
            .unwrap_err();
        assert_eq!(status, 500);
        assert_eq!(roles(&p), [Primary, Backup]);
    }

    #[test]
    fn an_isolated_primary_steps_down_only_with_force() {
        let (mut p, _, now) = pair();
        p.faults.partitioned = true;
        assert!(
            p.set_failover_role(0, req(Backup, false, false), now)
                .is_err()
        );
        assert_eq!(roles(&p), [Primary, Backup]);
        p.set_failover_role(0, req(Backup, false, true), now)
            .unwrap();
        assert_eq!(roles(&p), [Backup, Backup]);
    }

    #[test]
    fn demoting_a_reachable_primary_promotes_its_peer() {
        let (mut p, _, now) = pair();
        p.set_failover_role(0, req(Backup, false, false), now)
            .unwrap();
        assert_eq!(roles(&p), [Backup, Primary]);
    }

    #[test]
    fn only_the_primary_reports_data_sync() {
        let (mut p, _, wall) = pair();
        p.tick(wall);
        assert!(p.data_sync(0, wall).0.is_some());
        assert_eq!(p.data_sync(1, wall), (None, None));
        p.set_sync_stale(Some(1200), wall);
        p.tick(wall + Duration::from_secs(600));
        let (at, _) = p.data_sync(0, wall);
        assert_eq!(
            wall.duration_since(at.unwrap()).unwrap().as_secs(),
            1200,
            "a stale sync does not advance"
        );
        p.faults.sync_failing = true;
        assert!(p.data_sync(0, wall).1.unwrap().starts_with("failed"));
    }

    #[test]
    fn the_thirty_first_token_evicts_the_oldest() {
        let (mut p, now, _) = pair();
        let mut tokens = Vec::new();
        for _ in 0..31 {
            match p.mint_token(0, "bt-watchdog", "simulated-secret", now) {
                TokenAnswer::Minted { token, .. } => tokens.push(token),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(p.appliances[0].valid_tokens(now), 30);
        assert_eq!(
            p.authorize(0, Some(&tokens[0]), now),
            Authorization::Invalid
        );
        assert_eq!(p.authorize(0, Some(&tokens[30]), now), Authorization::Valid);
        assert_eq!(p.appliances[0].counters.tokens_evicted, 1);
    }

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let (mut p, now, _) = pair();
        let TokenAnswer::Minted { token, .. } =
            p.mint_token(0, "bt-watchdog", "simulated-secret", now)
        else {
            panic!()
        };
        assert_eq!(
            p.authorize(0, Some(&token), now + Duration::from_secs(3599)),
            Authorization::Valid
        );
        assert_eq!(
            p.authorize(0, Some(&token), now + Duration::from_secs(3600)),
            Authorization::Invalid
        );
        p.revoke_tokens(0);
        assert_eq!(p.authorize(0, Some(&token), now), Authorization::Invalid);
        assert_eq!(
            p.mint_token(0, "bt-watchdog", "wrong", now),
            TokenAnswer::BadCredentials
        );
    }

    #[test]
    fn rate_limits_per_second_and_per_hour() {
        let (mut p, now, _) = pair();
        p.settings.hourly_limit = 25;
        for _ in 0..20 {
            assert!(p.charge_rate_limit(0, now).is_ok());
        }
        assert_eq!(p.charge_rate_limit(0, now), Err(1));
        let later = now + Duration::from_secs(1);
        for _ in 0..5 {
            assert!(p.charge_rate_limit(0, later).is_ok());
        }
        assert!(
            p.charge_rate_limit(0, later + Duration::from_secs(1))
                .is_err()
        );
        assert!(
            p.charge_rate_limit(0, now + Duration::from_secs(3600))
                .is_ok()
        );
    }

    #[test]
    fn appliance_ids_look_like_the_real_ones() {
        let id = appliance_id("east");
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, appliance_id("west"));
    }
}
