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

/// The statuses the appliance API's documentation (and the proxies in front of appliances)
/// give a meaning to: each is its own `code` label; any other status is its class.
const DOCUMENTED: [(u16, &str); 23] = [
    (200, "200"),
    (201, "201"),
    (202, "202"),
    (204, "204"),
    (301, "301"),
    (302, "302"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (409, "409"),
    (413, "413"),
    (415, "415"),
    (422, "422"),
    (429, "429"),
    (500, "500"),
    (501, "501"),
    (502, "502"),
    (503, "503"),
    (504, "504"),
];

/// The classes undocumented statuses fall into (`other`: outside 100-599).
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// The `code` label of one answer. A closed set (documented statuses, their classes, and the
/// error kinds of [`code_labels`]): an appliance, or a proxy before it, answering with codes
/// nobody documented must not mint a new series for each, which would grow `/metrics` and the
/// memory holding it without bound.
pub fn status_label(status: u16) -> &'static str {
    if let Some((_, label)) = DOCUMENTED.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status / 100 {
        class @ 1..=5 => CLASSES[usize::from(class) - 1],
        _ => CLASSES[5],
    }
}

/// Every value the `code` label can take.
pub fn code_labels() -> impl Iterator<Item = &'static str> {
    DOCUMENTED
        .iter()
        .map(|(_, label)| *label)
        .chain(CLASSES)
        .chain(super::ErrorKind::ALL.iter().map(|kind| kind.label()))
}

pub trait ApiObserver: Send + Sync {
    /// One HTTP exchange. `code` is [`status_label`] of the status, or the error kind when
    /// there was none: one of [`code_labels`].
    fn request(&self, appliance: &str, endpoint: Endpoint, code: &'static str, elapsed: Duration);
    fn token(&self, appliance: &str, outcome: TokenOutcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_label_from_the_closed_set() {
        let known: std::collections::BTreeSet<&str> = code_labels().collect();
        for status in 0..=u16::MAX {
            assert!(known.contains(status_label(status)), "{status}");
        }
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(status_label(999), "other");
        assert!(known.contains("timeout"), "the error kinds are labels too");
    }
}
