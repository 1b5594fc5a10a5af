//! The multi-vantage vote: an appliance counts as failed only when enough of the live
//! instances see it failing (Orchestrator's holistic detection, Sentinel's quorum). What one
//! instance alone cannot reach says more about its own network than about the appliance.
//!
//! Pure: the daemon publishes each instance's [`Vantage`] through etcd and asks [`judge`]
//! before each engine step. An unconfirmed failure is given to the engine as a poll that
//! observed nothing, which never moves a failing streak, so the engine needs no notion of a
//! cluster at all.

use serde::{Deserialize, Serialize};

use crate::api::model::Probe;
use crate::engine::{ApplianceReport, ErrorMeaning, meaning};

/// What one poll said about one appliance, for the vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It answered, and not with a failure of its own.
    Reachable,
    /// Silence, or an answer that is a failure of its own (unhealthy, 5xx, a malformed body).
    Failing,
    /// Nothing was observed (not asked, our budget, 401/403/429, a fault on our side).
    Nothing,
}

pub fn seen(report: &ApplianceReport) -> Seen {
    let from_error = |kind| match meaning(kind) {
        ErrorMeaning::NoInformation => Seen::Nothing,
        ErrorMeaning::Silence | ErrorMeaning::AnsweredBadly => Seen::Failing,
    };
    let probe = match &report.probe {
        Some(Ok(Probe::Healthy)) => Seen::Reachable,
        Some(Ok(Probe::Unhealthy)) => Seen::Failing,
        Some(Err(kind)) => from_error(*kind),
        None => Seen::Nothing,
    };
    if probe != Seen::Nothing {
        return probe;
    }
    match &report.health {
        Some(Ok(_)) => Seen::Reachable,
        Some(Err(kind)) => from_error(*kind),
        None => Seen::Nothing,
    }
}

/// One instance's view of one appliance, as published under its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceVantage {
    pub name: String,
    /// `false` until the instance has seen it at all.
    pub failing: bool,
    /// Since when its current view holds (RFC 3339), once it saw the appliance.
    pub since: Option<String>,
    /// Consecutive polls that saw it failing.
    pub streak: u32,
}

/// One instance's view of a site's two appliances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vantage {
    pub appliances: Vec<ApplianceVantage>,
}

/// The vote on one appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Live instances (with a lease), this one included.
    pub live: usize,
    /// Views, this one's included, that see it failing.
    pub failing: usize,
    /// How many are needed.
    pub required: usize,
    /// Enough instances see it failing: this instance's failure counts.
    pub confirmed: bool,
    /// This instance sees it failing, not enough others do, and some see it fine: the fault is
    /// most likely on this instance's path.
    pub partitioned: bool,
}

/// `own`: this instance's view (`failing`, its streak); `others`: the live others' views
/// (`true` = failing); `members`: the live instances etcd knows, this one included;
/// `confirming_views`: the policy's figure, or a majority of the live instances.
pub fn judge(
    own_failing: bool,
    own_streak: u32,
    others: &[bool],
    members: usize,
    confirming_views: Option<u32>,
) -> Verdict {
    let live = members.max(others.len() + 1);
    let failing = usize::from(own_failing) + others.iter().filter(|f| **f).count();
    let others_reachable = others.iter().filter(|f| !**f).count();
    let required = confirming_views
        .map(|n| n as usize)
        .unwrap_or(live / 2 + 1)
        .max(1);
    let confirmed = failing >= required;
    Verdict {
        live,
        failing,
        required,
        confirmed,
        // From the second failing poll on: the others publish their views after their own
        // polls, so for one poll a real failure is seen by this instance first.
        partitioned: own_failing && !confirmed && others_reachable > 0 && own_streak >= 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorKind;

    #[test]
    fn a_majority_confirms_and_a_minority_is_a_partition() {
        // Three instances, all see it failing.
        let all = judge(true, 3, &[true, true], 3, None);
        assert!(all.confirmed && !all.partitioned);
        assert_eq!((all.failing, all.required), (3, 2));
        // Two of three: still a majority.
        assert!(judge(true, 3, &[true, false], 3, None).confirmed);
        // Only this one: not confirmed, and a partition once it lasts.
        let alone = judge(true, 3, &[false, false], 3, None);
        assert!(!alone.confirmed && alone.partitioned);
        assert!(!judge(true, 1, &[false, false], 3, None).partitioned);
        // Another sees it failing, this one does not: nothing to confirm here.
        let other = judge(false, 0, &[true, false], 3, None);
        assert!(!other.confirmed && !other.partitioned);
    }

    #[test]
    fn alone_an_instance_confirms_itself_and_the_policy_can_ask_more() {
        assert!(judge(true, 1, &[], 1, None).confirmed);
        // A member without a view yet counts as live and not failing.
        assert!(!judge(true, 3, &[true], 4, None).confirmed);
        // The policy asks for three views: two are not enough, even of two live instances.
        assert!(!judge(true, 3, &[true], 2, Some(3)).confirmed);
        assert!(judge(true, 3, &[true, true], 3, Some(3)).confirmed);
    }

    #[test]
    fn only_observations_vote() {
        let report = |probe| ApplianceReport {
            probe: Some(probe),
            ..Default::default()
        };
        assert_eq!(seen(&report(Ok(Probe::Healthy))), Seen::Reachable);
        assert_eq!(seen(&report(Ok(Probe::Unhealthy))), Seen::Failing);
        assert_eq!(seen(&report(Err(ErrorKind::Connect))), Seen::Failing);
        assert_eq!(seen(&report(Err(ErrorKind::Timeout))), Seen::Failing);
        assert_eq!(seen(&report(Err(ErrorKind::RateLimited))), Seen::Nothing);
        assert_eq!(seen(&report(Err(ErrorKind::Local))), Seen::Nothing);
        assert_eq!(seen(&ApplianceReport::default()), Seen::Nothing);
    }
}
