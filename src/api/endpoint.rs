//! The appliance endpoints the watchdog calls, as a closed set (they become metric labels).

// The engine uses these types: they must be as pure as the engine (see clippy.toml).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Token,
    CheckHealth,
    Health,
    Appliance,
    Info,
    FailoverRole,
    /// `GET /appliance/client-count` (v2 only): who a failover would disconnect.
    ClientCount,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Token,
        Endpoint::CheckHealth,
        Endpoint::Health,
        Endpoint::Appliance,
        Endpoint::Info,
        Endpoint::FailoverRole,
        Endpoint::ClientCount,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::CheckHealth => "check_health",
            Endpoint::Health => "health",
            Endpoint::Appliance => "appliance",
            Endpoint::Info => "info",
            Endpoint::FailoverRole => "failover_role",
            Endpoint::ClientCount => "client_count",
        }
    }

    /// Method and path relative to the site (v2 paths under `/api/command/v2`).
    pub fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::Token => ("POST", "/oauth2/token"),
            Endpoint::CheckHealth => ("GET", "/check_health"),
            Endpoint::Health => ("GET", "/api/command/v2/health"),
            Endpoint::Appliance => ("GET", "/api/command/v2/appliance"),
            Endpoint::Info => ("GET", "/api/command/v2/info"),
            Endpoint::FailoverRole => ("POST", "/api/command/v2/failover-role"),
            Endpoint::ClientCount => ("GET", "/api/command/v2/appliance/client-count"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, path) = self.method_and_path();
        write!(f, "{method} {path}")
    }
}
