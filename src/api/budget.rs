//! The API request budget of one appliance.
//!
//! The appliance allows 20 requests per second and 15,000 per hour per API account, and that
//! account is usually shared with other integrations. The watchdog must stay well inside both,
//! and must never let routine polling use up what a failover call needs. So:
//! - a per-second window applies to every request (a short wait, never a refusal);
//! - routine requests draw from a token bucket sized to a configured share of the hourly limit,
//!   and are refused (not queued) when it is empty: a poll that cannot run now is simply the
//!   next poll's job;
//! - routine requests are also refused when the appliance itself reports that fewer than a
//!   reserve of requests remain this hour: those are kept for a failover. The figure is
//!   re-checked from fresh answers: while the reserve holds, one routine request per
//!   re-probe interval still goes out, so one low answer (another integration's burst, a
//!   window about to reset) costs one interval of polling, not an hour;
//! - after a 429, routine requests back off (honouring `Retry-After`) and are refused;
//! - a critical request (the failover call, its token) is never held back by what routine
//!   traffic learned: not by the share, the reserve or a 429 backoff. It is bounded only by
//!   the per-second ceiling, and if the appliance itself answers 429 to it, that answer is
//!   what the caller sees, not a local guess.
//!
//! The budget is plain data driven by `now`, so it is tested without sleeping.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The documented limits.
pub(crate) const DOCUMENTED_PER_SECOND: u32 = 20;
pub(crate) const DOCUMENTED_PER_HOUR: u32 = 15_000;

const FIRST_429_BACKOFF: Duration = Duration::from_secs(1);
const MAX_429_BACKOFF: Duration = Duration::from_secs(60);
/// How long an appliance's `X-RateLimit-Remaining` is trusted: the hourly window will have
/// moved on after that.
const REMAINING_TRUSTED_FOR: Duration = Duration::from_secs(3600);
/// Re-probe interval while the reserve holds, when none is configured.
pub(crate) const DEFAULT_RESERVE_REPROBE: Duration = Duration::from_secs(60);
/// How often a missing `/check_health` is asked again, when not configured.
pub(crate) const DEFAULT_PROBE_RECHECK: Duration = Duration::from_secs(600);
/// A floor for the re-probe interval, so that a zero in a test configuration cannot turn the
/// reserve off.
const MIN_RESERVE_REPROBE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    /// Our own ceiling per second (at most the documented 20).
    pub per_second: u32,
    /// The appliance's hourly limit (15,000 unless the vendor changes it).
    pub hourly_limit: u32,
    /// Share of `hourly_limit` routine polling may use, in (0, 1].
    pub hourly_share: f64,
    /// Routine requests stop when the appliance reports fewer remaining requests than this.
    pub reserve: u32,
    /// While they are stopped for the reserve, one routine request per this interval still
    /// goes out, so that a fresh `X-RateLimit-Remaining` can lift the stop.
    pub reserve_reprobe: Duration,
    /// How long after a 404 from `/check_health` it is asked again. Not a budget of the
    /// account (the probe is unauthenticated), but while it is missing `/health` is read on
    /// every poll instead, which is.
    pub probe_recheck: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            per_second: 10,
            hourly_limit: DOCUMENTED_PER_HOUR,
            hourly_share: 0.1,
            reserve: 100,
            reserve_reprobe: DEFAULT_RESERVE_REPROBE,
            probe_recheck: DEFAULT_PROBE_RECHECK,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Polling: skipped rather than delayed when the budget is short.
    Routine,
    /// A failover call and its verification: waits for the budget, ignores the share.
    Critical,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admission {
    Go,
    /// Try again after this long.
    Wait(Duration),
    /// Not now; the reason says why.
    Refuse(Refusal),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// The appliance answered 429 and the backoff has this long to run.
    BackingOff { remaining: Duration },
    /// Our share of the hourly limit is used up for now.
    ShareExhausted { share_per_hour: u32 },
    /// The appliance says only this many requests are left this hour; the next re-probe may
    /// go out in `reprobe_in`.
    ReserveReached {
        remaining: u64,
        reserve: u32,
        reprobe_in: Duration,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BackingOff { remaining } => write!(
                f,
                "the appliance answered 429: routine polling backs off for {} more (a failover call would still be sent)",
                humantime::format_duration(round_to_secs(*remaining))
            ),
            Refusal::ShareExhausted { share_per_hour } => write!(
                f,
                "routine polling has used its share of the hourly limit ({share_per_hour} requests/hour); skipping this poll"
            ),
            Refusal::ReserveReached {
                remaining,
                reserve,
                reprobe_in,
            } => write!(
                f,
                "the appliance last reported only {remaining} requests left this hour; keeping the last {reserve} for a failover (re-checking in {})",
                humantime::format_duration(round_to_secs(*reprobe_in))
            ),
        }
    }
}

/// Whole seconds, at least one: "59m 51s 123ms 456us" helps nobody.
fn round_to_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

/// What the appliance last told us about its limit, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RateStatus {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct RateBudget {
    settings: BudgetSettings,
    recent: VecDeque<Instant>,
    bucket: f64,
    bucket_capacity: f64,
    refill_per_second: f64,
    bucket_updated: Instant,
    blocked_until: Option<Instant>,
    consecutive_429: u32,
    reported: RateStatus,
    reported_at: Option<Instant>,
    /// When the last routine request let through as a re-probe of the reserve left.
    last_reprobe: Option<Instant>,
}

impl RateBudget {
    pub(crate) fn new(settings: BudgetSettings, now: Instant) -> Self {
        let share = (settings.hourly_limit as f64 * settings.hourly_share).max(1.0);
        // A burst of up to five minutes' worth; the refill is reduced by the burst so that no
        // hour-long window can exceed the share even if the burst is spent at its start.
        let capacity = (share / 12.0).max(1.0);
        let refill_per_second = ((share - capacity).max(1.0)) / 3600.0;
        RateBudget {
            recent: VecDeque::with_capacity(settings.per_second as usize),
            bucket: capacity,
            bucket_capacity: capacity,
            refill_per_second,
            bucket_updated: now,
            blocked_until: None,
            consecutive_429: 0,
            reported: RateStatus::default(),
            reported_at: None,
            last_reprobe: None,
            settings,
        }
    }

    pub(crate) fn status(&self) -> RateStatus {
        self.reported
    }

    /// Whether a request of `priority` may leave now; on `Go` it is counted.
    pub(crate) fn admit(&mut self, priority: Priority, now: Instant) -> Admission {
        if let Some(until) = self.blocked_until {
            if now < until {
                // A critical request is not held back by a backoff that routine traffic
                // earned: if the appliance still limits us, its own 429 will say so.
                if priority == Priority::Routine {
                    return Admission::Refuse(Refusal::BackingOff {
                        remaining: until - now,
                    });
                }
            } else {
                self.blocked_until = None;
            }
        }
        while let Some(&oldest) = self.recent.front() {
            if now.duration_since(oldest) >= Duration::from_secs(1) {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        let per_second = self.settings.per_second.clamp(1, DOCUMENTED_PER_SECOND) as usize;
        if self.recent.len() >= per_second
            && let Some(&oldest) = self.recent.front()
        {
            return Admission::Wait(
                (oldest + Duration::from_secs(1)).saturating_duration_since(now),
            );
        }
        self.refill(now);
        if priority == Priority::Routine {
            if let Some(refusal) = self.reserve_refusal(now) {
                return Admission::Refuse(refusal);
            }
            if self.bucket < 1.0 {
                return Admission::Refuse(Refusal::ShareExhausted {
                    share_per_hour: (self.settings.hourly_limit as f64 * self.settings.hourly_share)
                        as u32,
                });
            }
        }
        self.bucket = (self.bucket - 1.0).max(0.0);
        self.recent.push_back(now);
        Admission::Go
    }

    /// `Some` when the appliance's last word keeps routine requests back for the reserve;
    /// `None` also when this request is the re-probe that may lift it (it is then recorded).
    fn reserve_refusal(&mut self, now: Instant) -> Option<Refusal> {
        let remaining = self.reported.remaining?;
        let at = self.reported_at?;
        let reserve = self.settings.reserve;
        if now.duration_since(at) >= REMAINING_TRUSTED_FOR || remaining >= u64::from(reserve) {
            return None;
        }
        let interval = self.settings.reserve_reprobe.max(MIN_RESERVE_REPROBE);
        // The interval counts from the answer that set the figure as well as from the last
        // re-probe, so that the low answer itself is not followed by an immediate re-probe.
        let since = self.last_reprobe.map_or(at, |r| r.max(at));
        let due = since + interval;
        if now >= due {
            self.last_reprobe = Some(now);
            return None;
        }
        Some(Refusal::ReserveReached {
            remaining,
            reserve,
            reprobe_in: due - now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.bucket_updated).as_secs_f64();
        self.bucket = (self.bucket + elapsed * self.refill_per_second).min(self.bucket_capacity);
        self.bucket_updated = now;
    }

    /// Learn from an answer: its rate-limit headers and whether it was a 429.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        status: u16,
        limit: Option<u64>,
        remaining: Option<u64>,
        retry_after: Option<Duration>,
    ) {
        if limit.is_some() {
            self.reported.limit = limit;
        }
        if remaining.is_some() {
            self.reported.remaining = remaining;
            self.reported_at = Some(now);
        }
        if status == 429 {
            let backoff = retry_after.unwrap_or_else(|| {
                let doublings = self.consecutive_429.min(10);
                (FIRST_429_BACKOFF * 2u32.pow(doublings)).min(MAX_429_BACKOFF)
            });
            self.consecutive_429 = self.consecutive_429.saturating_add(1);
            self.blocked_until = Some(now + backoff);
        } else {
            self.consecutive_429 = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(settings: BudgetSettings) -> (RateBudget, Instant) {
        let now = Instant::now();
        (RateBudget::new(settings, now), now)
    }

    #[test]
    fn never_more_than_the_per_second_ceiling() {
        let (mut b, now) = budget(BudgetSettings {
            per_second: 3,
            ..Default::default()
        });
        for _ in 0..3 {
            assert_eq!(b.admit(Priority::Critical, now), Admission::Go);
        }
        assert_eq!(
            b.admit(Priority::Critical, now),
            Admission::Wait(Duration::from_secs(1))
        );
        let later = now + Duration::from_millis(1000);
        assert_eq!(b.admit(Priority::Critical, later), Admission::Go);
    }

    #[test]
    fn the_ceiling_is_capped_at_the_documented_limit() {
        let (mut b, now) = budget(BudgetSettings {
            per_second: 1000,
            hourly_share: 1.0,
            ..Default::default()
        });
        let admitted = (0..100)
            .filter(|_| b.admit(Priority::Critical, now) == Admission::Go)
            .count();
        assert_eq!(admitted, DOCUMENTED_PER_SECOND as usize);
    }

    #[test]
    fn routine_polling_stays_inside_its_hourly_share() {
        let settings = BudgetSettings {
            per_second: 20,
            hourly_share: 0.01,
            ..Default::default()
        };
        let (mut b, start) = budget(settings);
        // Try a request every 100 ms for two hours; count what each hour-long window admits.
        let mut admitted = Vec::new();
        for step in 0..72_000u64 {
            let now = start + Duration::from_millis(step * 100);
            if b.admit(Priority::Routine, now) == Admission::Go {
                admitted.push(now);
            }
        }
        let share = 150;
        for (i, &t) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|&&u| u.duration_since(t) < Duration::from_secs(3600))
                .count();
            assert!(
                in_window <= share,
                "{in_window} requests in one hour, share {share}"
            );
        }
        assert!(
            admitted.len() > share,
            "the share refills: {}",
            admitted.len()
        );
    }

    #[test]
    fn critical_requests_ignore_the_share_but_not_the_per_second_ceiling() {
        let (mut b, now) = budget(BudgetSettings {
            per_second: 5,
            hourly_share: 0.0001,
            ..Default::default()
        });
        assert_eq!(b.admit(Priority::Routine, now), Admission::Go);
        assert!(matches!(
            b.admit(Priority::Routine, now),
            Admission::Refuse(Refusal::ShareExhausted { .. })
        ));
        assert_eq!(b.admit(Priority::Critical, now), Admission::Go);
    }

    #[test]
    fn the_reserve_is_kept_for_critical_requests() {
        let (mut b, now) = budget(BudgetSettings::default());
        b.observe(now, 200, Some(15_000), Some(42), None);
        assert!(matches!(
            b.admit(Priority::Routine, now),
            Admission::Refuse(Refusal::ReserveReached {
                remaining: 42,
                reserve: 100,
                ..
            })
        ));
        assert_eq!(b.admit(Priority::Critical, now), Admission::Go);
        assert_eq!(
            b.status(),
            RateStatus {
                limit: Some(15_000),
                remaining: Some(42)
            }
        );
        // An hour later the figure no longer describes the current window.
        assert_eq!(
            b.admit(Priority::Routine, now + Duration::from_secs(3600)),
            Admission::Go
        );
    }

    #[test]
    fn a_low_remaining_is_re_probed_and_a_fresh_answer_lifts_the_stop() {
        let (mut b, now) = budget(BudgetSettings::default());
        b.observe(now, 200, Some(15_000), Some(50), None);
        let at = |s: u64| now + Duration::from_secs(s);
        // Refused until one re-probe interval after the low answer, then exactly one request.
        assert!(matches!(
            b.admit(Priority::Routine, at(59)),
            Admission::Refuse(Refusal::ReserveReached { reprobe_in, .. }) if reprobe_in == Duration::from_secs(1)
        ));
        assert_eq!(b.admit(Priority::Routine, at(60)), Admission::Go);
        assert!(matches!(
            b.admit(Priority::Routine, at(61)),
            Admission::Refuse(Refusal::ReserveReached { .. })
        ));
        // The re-probe's answer still says low: the next one is an interval later.
        b.observe(at(61), 200, None, Some(40), None);
        assert!(matches!(
            b.admit(Priority::Routine, at(120)),
            Admission::Refuse(Refusal::ReserveReached { .. })
        ));
        assert_eq!(b.admit(Priority::Routine, at(121)), Admission::Go);
        // Its answer says the window has reset: routine polling resumes at once.
        b.observe(at(121), 200, None, Some(14_000), None);
        for s in 122..130 {
            assert_eq!(b.admit(Priority::Routine, at(s)), Admission::Go);
        }
    }

    #[test]
    fn re_probes_under_the_reserve_are_bounded() {
        let (mut b, now) = budget(BudgetSettings {
            reserve_reprobe: Duration::from_secs(30),
            ..Default::default()
        });
        b.observe(now, 200, None, Some(10), None);
        let admitted = (0..3600u64)
            .filter(|s| b.admit(Priority::Routine, now + Duration::from_secs(*s)) == Admission::Go)
            .count();
        assert_eq!(admitted, 3600 / 30 - 1);
    }

    #[test]
    fn a_429_backs_off_routine_requests_honouring_retry_after() {
        let (mut b, now) = budget(BudgetSettings::default());
        b.observe(now, 429, None, Some(0), Some(Duration::from_secs(7)));
        assert!(matches!(
            b.admit(Priority::Routine, now + Duration::from_secs(2)),
            Admission::Refuse(Refusal::BackingOff { remaining }) if remaining == Duration::from_secs(5)
        ));
        b.observe(now, 200, None, Some(500), None);
        assert_eq!(
            b.admit(Priority::Routine, now + Duration::from_secs(7)),
            Admission::Go
        );
    }

    #[test]
    fn a_critical_request_is_never_held_back_by_a_backoff_routine_traffic_earned() {
        let (mut b, now) = budget(BudgetSettings::default());
        b.observe(now, 429, None, None, Some(Duration::from_secs(3600)));
        assert_eq!(b.admit(Priority::Critical, now), Admission::Go);
        // ...nor by the reserve or the share; only the per-second ceiling bounds it.
        let later = now + Duration::from_secs(1);
        b.observe(later, 200, None, Some(3), None);
        let admitted = (0..100)
            .filter(|_| b.admit(Priority::Critical, later) == Admission::Go)
            .count();
        assert_eq!(admitted, BudgetSettings::default().per_second as usize);
        assert!(matches!(
            b.admit(Priority::Routine, now + Duration::from_secs(5)),
            Admission::Refuse(Refusal::BackingOff { .. })
        ));
    }

    #[test]
    fn repeated_429s_without_retry_after_back_off_exponentially() {
        let (mut b, now) = budget(BudgetSettings::default());
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.observe(now, 429, None, None, None);
            if let Admission::Refuse(Refusal::BackingOff { remaining }) =
                b.admit(Priority::Routine, now)
            {
                waits.push(remaining.as_secs());
            }
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
