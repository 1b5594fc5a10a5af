//! The multi-vantage vote: an appliance counts as failed only when enough of the live
//! instances see it failing (Orchestrator's holistic detection, Sentinel's quorum). What one
//! instance alone cannot reach says more about its own network than about the appliance.
//!
//! Pure: the daemon publishes each instance's [`Vantage`] through etcd and asks [`judge`]
//! before each engine step. An unconfirmed failure is given to the engine as a poll that
//! observed nothing, which never moves a failing streak, so the engine needs no notion of a
//! cluster at all.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::ErrorKind;
use crate::api::model::{Health, Probe};
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

/// What one poll observed of one appliance, judged as the engine judges it
/// (`ApplianceView::absorb`): the appliance's own word that it is unhealthy outweighs a healthy
/// answer; a healthy answer outweighs an error from the other endpoint; an answer with errors
/// of its own is a failure; silence counts only when nothing answered at all. The vote and the
/// engine must agree on what "failing" means, or a view would confirm a failure its own
/// instance's engine does not see (or the engine would count one the vote never saw).
pub fn seen(report: &ApplianceReport) -> Seen {
    let probe = report.probe.as_ref();
    let health = report.health.as_ref();
    let unhealthy = matches!(probe, Some(Ok(Probe::Unhealthy)))
        || matches!(health, Some(Ok(Health::Unhealthy { .. })));
    let healthy =
        matches!(probe, Some(Ok(Probe::Healthy))) || matches!(health, Some(Ok(Health::Healthy(_))));
    let error_meaning = |kind: &ErrorKind| meaning(*kind);
    let errors = [
        probe.and_then(|r| r.as_ref().err()).map(error_meaning),
        health.and_then(|r| r.as_ref().err()).map(error_meaning),
    ];
    let answered_badly = errors.contains(&Some(ErrorMeaning::AnsweredBadly));
    // `/health` silent next to a probe that said nothing is not taken as silence (the
    // engine's rule: the probe is the liveness signal when there is one).
    let silent = errors[0] == Some(ErrorMeaning::Silence)
        || (probe.is_none() && errors[1] == Some(ErrorMeaning::Silence));
    if unhealthy {
        Seen::Failing
    } else if healthy {
        Seen::Reachable
    } else if answered_badly || silent {
        Seen::Failing
    } else {
        Seen::Nothing
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

impl ApplianceVantage {
    /// Takes one poll's observation in. `silent_for`: how long this instance has observed
    /// nothing of the appliance (zero when this poll observed it); `limit`: how long a view
    /// outlives its last observation (the policy's `failover_after`, as the engine's own
    /// failing streak). A failing view that nothing has confirmed for longer is withdrawn
    /// (`since` none: this instance has no view): otherwise an instance whose polls stopped
    /// observing (a 429, its own fault) would vote "failing" for as long as it lives, about
    /// an appliance that may have been back for hours.
    pub fn take(&mut self, seen: Seen, now: &str, silent_for: Duration, limit: Duration) {
        match seen {
            Seen::Failing => {
                self.streak = self.streak.saturating_add(1);
                if !self.failing || self.since.is_none() {
                    self.failing = true;
                    self.since = Some(now.to_string());
                }
            }
            Seen::Reachable => {
                self.streak = 0;
                if self.failing || self.since.is_none() {
                    self.failing = false;
                    self.since = Some(now.to_string());
                }
            }
            Seen::Nothing if self.since.is_some() && silent_for > limit => {
                self.failing = false;
                self.streak = 0;
                self.since = None;
            }
            Seen::Nothing => {}
        }
    }

    /// Whether this view says anything (a view withdrawn, or never formed, does not vote).
    pub fn holds(&self) -> bool {
        self.since.is_some()
    }
}

/// What the other instances' views say of the appliance named `appliance` (`true` =
/// failing). Matched by name, never by position: each host's configuration may list a site's
/// appliances in its own order, or name them otherwise (then its view is of no appliance
/// here). A view that holds nothing does not vote.
pub fn others_on(views: &[(String, Vantage)], appliance: &str) -> Vec<bool> {
    views
        .iter()
        .filter_map(|(_, view)| view.appliances.iter().find(|a| a.name == appliance))
        .filter(|a| a.holds())
        .map(|a| a.failing)
        .collect()
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

    fn vantage(names: &[(&str, bool)]) -> Vantage {
        Vantage {
            appliances: names
                .iter()
                .map(|(name, failing)| ApplianceVantage {
                    name: name.to_string(),
                    failing: *failing,
                    since: Some("2026-01-01T00:00:00Z".to_string()),
                    streak: u32::from(*failing),
                })
                .collect(),
        }
    }

    /// A view is of the appliance it names: an instance that lists west first, or that knows
    /// the site's appliances by other names, does not vote on east with its view of west.
    #[test]
    fn views_are_matched_by_name_not_position() {
        let views = vec![
            // Lists west first; sees east fine and west failing.
            (
                "w2".to_string(),
                vantage(&[("west", true), ("east", false)]),
            ),
            // Other names altogether.
            (
                "w3".to_string(),
                vantage(&[("north", true), ("south", true)]),
            ),
        ];
        assert_eq!(others_on(&views, "east"), vec![false]);
        assert_eq!(others_on(&views, "west"), vec![true]);
        // This instance is cut off from east; w2 sees it fine: not confirmed, a partition.
        let verdict = judge(true, 3, &others_on(&views, "east"), 3, None);
        assert!(!verdict.confirmed && verdict.partitioned, "{verdict:?}");
    }

    /// An instance that saw the appliance failing and then observed nothing (429s, a fault
    /// of its own) no longer votes "failing" once its view is older than the limit.
    #[test]
    fn a_failing_view_nothing_confirms_any_more_is_withdrawn() {
        let limit = Duration::from_secs(30);
        let mut view = ApplianceVantage {
            name: "east".to_string(),
            failing: false,
            since: None,
            streak: 0,
        };
        view.take(Seen::Failing, "t1", Duration::ZERO, limit);
        assert!(view.failing && view.holds());
        // Silence for a while: the view stands.
        view.take(Seen::Nothing, "t2", Duration::from_secs(20), limit);
        assert!(view.failing && view.holds());
        // Longer than the limit: withdrawn, and it votes neither way.
        view.take(Seen::Nothing, "t3", Duration::from_secs(31), limit);
        assert!(
            !view.failing && !view.holds() && view.streak == 0,
            "{view:?}"
        );
        let views = vec![(
            "w2".to_string(),
            Vantage {
                appliances: vec![view.clone()],
            },
        )];
        assert!(others_on(&views, "east").is_empty());
        // Two instances, the other's view withdrawn: this one's failure alone is not a
        // majority of the two live instances.
        assert!(!judge(true, 3, &others_on(&views, "east"), 2, None).confirmed);
        // Observed again: a view again.
        view.take(Seen::Reachable, "t4", Duration::ZERO, limit);
        assert!(!view.failing && view.holds());
    }

    /// The vote judges a poll exactly as the engine does: the appliance's own word that it is
    /// unhealthy outweighs a healthy probe, and any answer at all outweighs a silent probe. (A
    /// probe that timed out next to a healthy `/health` was published as "failing", a view
    /// that confirmed another instance's failure while this one's own engine saw the primary
    /// healthy; an unhealthy `/health` was "reachable", passed to the engine unconfirmed.)
    #[test]
    fn a_poll_votes_as_the_engine_judges_it() {
        use crate::api::model::{Health, HealthBase};
        let healthy = || Ok(Health::Healthy(HealthBase::default()));
        let unhealthy = || {
            Ok(Health::Unhealthy {
                health: HealthBase::default(),
                message: None,
            })
        };
        let report = |probe, health| ApplianceReport {
            probe,
            health,
            ..Default::default()
        };
        assert_eq!(
            seen(&report(Some(Err(ErrorKind::Timeout)), Some(healthy()))),
            Seen::Reachable
        );
        assert_eq!(seen(&report(None, Some(unhealthy()))), Seen::Failing);
        assert_eq!(
            seen(&report(Some(Ok(Probe::Healthy)), Some(unhealthy()))),
            Seen::Failing
        );
        // The engine takes `/health`'s silence next to a probe as nothing new.
        assert_eq!(
            seen(&report(
                Some(Err(ErrorKind::RateLimited)),
                Some(Err(ErrorKind::Timeout))
            )),
            Seen::Nothing
        );
        assert_eq!(
            seen(&report(None, Some(Err(ErrorKind::Timeout)))),
            Seen::Failing
        );
        assert_eq!(
            seen(&report(
                Some(Err(ErrorKind::RateLimited)),
                Some(Err(ErrorKind::Server))
            )),
            Seen::Failing
        );
        assert_eq!(
            seen(&report(
                Some(Err(ErrorKind::Timeout)),
                Some(Err(ErrorKind::RateLimited))
            )),
            Seen::Failing
        );
        assert_eq!(
            seen(&report(
                Some(Err(ErrorKind::RateLimited)),
                Some(Err(ErrorKind::Forbidden))
            )),
            Seen::Nothing
        );
        assert_eq!(seen(&report(None, Some(healthy()))), Seen::Reachable);
    }
}
