//! A hook through which the clients report every request, so the exporter can count them
//! without the clients knowing about Prometheus.

use std::time::Duration;

use super::endpoint::Endpoint;

/// How a token request ended (the `outcome` label of the token metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenOutcome {
    Minted,
    Rejected,
    Failed,
    /// We did not ask: a token minted moments ago had been refused, so we are waiting.
    BackedOff,
}

impl TokenOutcome {
    pub const ALL: [TokenOutcome; 4] = [
        TokenOutcome::Minted,
        TokenOutcome::Rejected,
        TokenOutcome::Failed,
        TokenOutcome::BackedOff,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TokenOutcome::Minted => "minted",
            TokenOutcome::Rejected => "rejected",
            TokenOutcome::Failed => "failed",
            TokenOutcome::BackedOff => "backed_off",
        }
    }
}

pub trait ApiObserver: Send + Sync {
    /// One HTTP exchange. `code` is the status code, or the error kind when there was none.
    fn request(&self, appliance: &str, endpoint: Endpoint, code: &str, elapsed: Duration);
    fn token(&self, appliance: &str, outcome: TokenOutcome);
}
