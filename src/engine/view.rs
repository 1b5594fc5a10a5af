//! The engine's picture of one appliance, built up from polls.

use std::time::SystemTime;

use serde::Serialize;

use super::observation::ApplianceReport;
use crate::api::ErrorKind;
use crate::api::model::{ApplianceRecord, ClientCounts, ClusterRole, FailoverRole, Health, Probe};
use crate::api::time::UtcTime;

/// How the appliance is doing, from the most recent evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
pub enum Condition {
    /// Nothing conclusive seen yet.
    Unknown,
    Healthy,
    /// It answers, and says it is unhealthy.
    Unhealthy {
        message: Option<String>,
    },
    /// It does not answer at all.
    Down {
        error: ErrorKind,
    },
}

impl Condition {
    pub fn describe(&self) -> String {
        match self {
            Condition::Unknown => "not seen yet".to_string(),
            Condition::Healthy => "healthy".to_string(),
            Condition::Unhealthy { message: Some(m) } => format!("unhealthy ({m})"),
            Condition::Unhealthy { message: None } => "unhealthy".to_string(),
            Condition::Down { error } => format!("not answering ({})", describe_error(*error)),
        }
    }
}

/// Words for the error kinds that mean "no answer".
pub fn describe_error(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Connect => "connect refused",
        ErrorKind::Timeout => "timed out",
        ErrorKind::Tls => "TLS failure",
        ErrorKind::Certificate => "its certificate is refused",
        ErrorKind::Local => "a fault on the watchdog's side",
        other => other.label(),
    }
}

/// Where a role came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// The appliance's own `/health`.
    Itself,
    /// Its peer's `/appliance` list.
    Peer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoleSeen {
    pub role: FailoverRole,
    #[serde(skip)]
    pub at: SystemTime,
    pub source: RoleSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplianceView {
    pub name: String,
    pub condition: Condition,
    pub role: Option<RoleSeen>,
    pub appliance_id: Option<String>,
    pub hostname: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
    pub cluster_role: Option<ClusterRole>,
    /// What this appliance reported as its last data sync (only a primary does).
    pub last_data_sync: Option<UtcTime>,
    pub last_data_sync_status: Option<String>,
    /// The last error of any kind, including ones that say nothing about its health (403, 429).
    pub last_error: Option<ErrorKind>,
    /// Since when it has been answering without a break (a role seen before that is stale).
    #[serde(skip)]
    pub answering_since: Option<SystemTime>,
    /// The role was reported before the appliance last stopped answering. Kept by order of
    /// events, not by time: a wall clock that steps back must not make an old role look new.
    #[serde(skip)]
    pub role_stale: bool,
    /// How many times a role was reported (by it or its peer): tells "reported since X" without
    /// comparing times.
    #[serde(skip)]
    pub role_reports: u64,
    /// Since when every poll of it observed nothing (our budget, 429, 401, 403...), and the
    /// latest such error: its condition is as it was, and no streak moves meanwhile.
    #[serde(skip)]
    pub no_information: Option<(SystemTime, ErrorKind)>,
    /// Since when its `/health` (the only source of `last_data_sync`) has not been read
    /// because of the watchdog's own throttling (budget, reserve, a 429 being honoured), even
    /// if the probe kept answering.
    #[serde(skip)]
    pub health_held_back: Option<(SystemTime, ErrorKind)>,
    /// The latest count of connected clients, and when it was taken.
    #[serde(skip)]
    pub clients: Option<(ClientCounts, SystemTime)>,
}

impl ApplianceView {
    pub fn new(name: &str) -> Self {
        ApplianceView {
            name: name.to_string(),
            condition: Condition::Unknown,
            role: None,
            appliance_id: None,
            hostname: None,
            version: None,
            build: None,
            cluster_role: None,
            last_data_sync: None,
            last_data_sync_status: None,
            last_error: None,
            answering_since: None,
            role_stale: false,
            role_reports: 0,
            no_information: None,
            health_held_back: None,
            clients: None,
        }
    }

    pub fn answering(&self) -> bool {
        matches!(
            self.condition,
            Condition::Healthy | Condition::Unhealthy { .. }
        )
    }

    pub fn healthy(&self) -> bool {
        self.condition == Condition::Healthy
    }

    pub fn failing(&self) -> bool {
        matches!(
            self.condition,
            Condition::Unhealthy { .. } | Condition::Down { .. }
        )
    }

    pub fn role(&self) -> Option<FailoverRole> {
        self.role.map(|r| r.role)
    }

    /// Whether the role was seen since the appliance last started answering: a role from
    /// before an outage says nothing about what it believes now.
    pub fn role_is_current(&self) -> bool {
        self.role.is_some() && self.answering_since.is_some() && !self.role_stale
    }

    /// Whether this report observed the appliance: an answer, a silence, or an answer that
    /// was an error of its own. Our budget, a 429, 401 or 403 observe nothing, and a poll that
    /// observed nothing must never move a failing streak.
    pub fn observed(report: &ApplianceReport) -> bool {
        let observes = |r: Option<Result<(), ErrorKind>>| match r {
            Some(Ok(())) => true,
            Some(Err(kind)) => meaning(kind) != ErrorMeaning::NoInformation,
            None => false,
        };
        observes(
            report
                .probe
                .as_ref()
                .map(|r| r.as_ref().map(|_| ()).map_err(|k| *k)),
        ) || observes(
            report
                .health
                .as_ref()
                .map(|r| r.as_ref().map(|_| ()).map_err(|k| *k)),
        )
    }

    /// Takes in one cycle's report. Only kinds that mean "no answer" make an appliance
    /// `Down`; an answer that is an error of the appliance's own (5xx, a malformed body) makes
    /// it `Unhealthy`; errors that are about us (401, 403, 429, our own budget) leave its
    /// condition as it was.
    pub fn absorb(&mut self, report: &ApplianceReport, now: SystemTime) {
        if let Some(Ok(counts)) = &report.clients {
            self.clients = Some((counts.clone(), now));
        }
        let mut unhealthy: Option<Option<String>> = None;
        let mut healthy = false;
        let mut silent: Option<ErrorKind> = None;
        let mut answered_badly: Option<ErrorKind> = None;
        let mut answered = false;
        let mut no_information: Option<ErrorKind> = None;
        let reports_before = self.role_reports;

        match &report.probe {
            Some(Ok(Probe::Healthy)) => {
                healthy = true;
                answered = true;
            }
            Some(Ok(Probe::Unhealthy)) => {
                unhealthy = Some(None);
                answered = true;
            }
            Some(Err(kind)) => {
                self.last_error = Some(*kind);
                match meaning(*kind) {
                    ErrorMeaning::Silence => silent = Some(*kind),
                    ErrorMeaning::AnsweredBadly => {
                        answered = true;
                        answered_badly = Some(*kind);
                    }
                    ErrorMeaning::NoInformation => no_information = Some(*kind),
                }
            }
            None => {}
        }
        match &report.health {
            Some(Ok(health)) => {
                answered = true;
                match health {
                    Health::Healthy(_) => healthy = true,
                    Health::Unhealthy { message, .. } => {
                        unhealthy = Some(message.clone().or(unhealthy.flatten()));
                    }
                }
                let base = health.base();
                if let Some(role) = base.failover_role {
                    self.saw_role(RoleSeen {
                        role,
                        at: now,
                        source: RoleSource::Itself,
                    });
                }
                self.appliance_id = base.appliance_id.clone().or(self.appliance_id.take());
                self.hostname = base.appliance_hostname.clone().or(self.hostname.take());
                self.version = base.version.clone().or(self.version.take());
                self.build = base.build.clone().or(self.build.take());
                self.cluster_role = base.cluster_role.or(self.cluster_role);
                self.last_data_sync = base.last_data_sync;
                self.last_data_sync_status = base.last_data_sync_status.clone();
            }
            Some(Err(kind)) => {
                self.last_error = Some(*kind);
                match meaning(*kind) {
                    ErrorMeaning::AnsweredBadly => {
                        answered = true;
                        answered_badly = answered_badly.or(Some(*kind));
                    }
                    ErrorMeaning::Silence if silent.is_none() && report.probe.is_none() => {
                        silent = Some(*kind)
                    }
                    ErrorMeaning::Silence => {}
                    ErrorMeaning::NoInformation => no_information = no_information.or(Some(*kind)),
                }
            }
            None => {}
        }

        let was_answering = self.answering();
        // The appliance's own word that it is unhealthy outweighs a healthy probe in the same
        // cycle; a healthy answer outweighs an error from the other endpoint; any answer at
        // all outweighs a silent probe.
        self.condition = if let Some(message) = unhealthy {
            Condition::Unhealthy { message }
        } else if healthy {
            Condition::Healthy
        } else if let Some(kind) = answered_badly {
            Condition::Unhealthy {
                message: Some(format!("it answers with errors ({})", kind.label())),
            }
        } else if let (Some(error), false) = (silent, answered) {
            Condition::Down { error }
        } else {
            self.condition.clone()
        };
        match (was_answering, self.answering()) {
            (false, true) => {
                self.answering_since = Some(now);
                // Back after a silence: a role not in this very report is from before it.
                if self.role_reports == reports_before {
                    self.role_stale = true;
                }
            }
            (_, false) => {
                self.answering_since = None;
                self.role_stale = true;
            }
            _ => {}
        }
        if Self::observed(report) {
            self.no_information = None;
        } else if let Some(kind) = no_information {
            let since = self.no_information.map_or(now, |(since, _)| since);
            self.no_information = Some((since, kind));
        }
        match &report.health {
            Some(Err(kind @ (ErrorKind::Budget | ErrorKind::RateLimited))) => {
                let since = self.health_held_back.map_or(now, |(since, _)| since);
                self.health_held_back = Some((since, *kind));
            }
            Some(Ok(_)) => self.health_held_back = None,
            // Other errors (the primary dying) do not make old data any fresher.
            _ => {}
        }
    }

    fn saw_role(&mut self, seen: RoleSeen) {
        self.role = Some(seen);
        self.role_stale = false;
        self.role_reports = self.role_reports.wrapping_add(1);
    }

    /// Whether this report brought the appliance back after a silence.
    pub fn came_back(&self, now: SystemTime) -> bool {
        self.answering_since == Some(now) && !self.role_is_current()
    }

    /// Learns this appliance's role from its peer's `/appliance` list, when it cannot say
    /// for itself this cycle.
    pub fn learn_from_peer(
        &mut self,
        records: &[ApplianceRecord],
        peer: &ApplianceView,
        now: SystemTime,
    ) {
        let matches_self = |r: &ApplianceRecord| {
            (self.appliance_id.is_some() && r.id == self.appliance_id)
                || (self.hostname.is_some() && r.hostname == self.hostname)
        };
        let matches_peer = |r: &ApplianceRecord| {
            (peer.appliance_id.is_some() && r.id == peer.appliance_id)
                || (peer.hostname.is_some() && r.hostname == peer.hostname)
        };
        let record = records.iter().find(|r| matches_self(r)).or_else(|| {
            // Two entries, one of them the peer: the other one is this appliance.
            if records.len() == 2 && records.iter().any(matches_peer) {
                records.iter().find(|r| !matches_peer(r))
            } else {
                None
            }
        });
        if let Some(role) = record.and_then(|r| r.failover_role) {
            self.saw_role(RoleSeen {
                role,
                at: now,
                source: RoleSource::Peer,
            });
        }
    }
}

/// What an error says about the appliance it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMeaning {
    /// No answer at all: the appliance may be down.
    Silence,
    /// It answered, and the answer was an error of its own (5xx, a body that is not what the
    /// API defines): it is alive and not well.
    AnsweredBadly,
    /// Nothing was observed: the request was not sent (our budget) or was refused for reasons
    /// about us (429, 401, 403, a request it did not accept).
    NoInformation,
}

pub fn meaning(kind: ErrorKind) -> ErrorMeaning {
    match kind {
        ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Tls => ErrorMeaning::Silence,
        ErrorKind::Server | ErrorKind::Malformed | ErrorKind::TooLarge => {
            ErrorMeaning::AnsweredBadly
        }
        ErrorKind::Unauthorized
        | ErrorKind::Forbidden
        | ErrorKind::NotFound
        | ErrorKind::BadRequest
        | ErrorKind::Unprocessable
        | ErrorKind::RateLimited
        | ErrorKind::Budget
        // The appliance answered with a certificate we refuse: it is there, and its peer is
        // no better for it. What to renew or trust is said in the appliance's status.
        | ErrorKind::Certificate
        // A fault on the watchdog's own side (descriptors, resolver, route) says nothing
        // about the appliance: a healthy appliance must never look dead because of it.
        | ErrorKind::Local => ErrorMeaning::NoInformation,
    }
}
