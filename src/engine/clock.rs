//! Time arithmetic that never panics. Policies may hold absurd durations (a cooldown of ten
//! thousand years) and wall clocks step back; neither may crash the engine halfway through a
//! failover.

use std::time::{Duration, SystemTime};

/// The far end of time the engine computes with: the last second of year 9999, the last one
/// an RFC 3339 date-time (and so the state file) can hold.
const END_OF_TIME: Duration = Duration::from_secs(253_402_300_799);

/// Time from `earlier` to `now`, zero if the clock says `earlier` is in the future.
pub fn since(now: SystemTime, earlier: SystemTime) -> Duration {
    now.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// `at + span`, saturating at the end of time instead of overflowing.
pub fn later(at: SystemTime, span: Duration) -> SystemTime {
    let end = SystemTime::UNIX_EPOCH + END_OF_TIME;
    at.checked_add(span).map_or(end, |t| t.min(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_spans_saturate() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(
            later(now, Duration::MAX),
            later(now, Duration::from_secs(u64::MAX / 2))
        );
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(since(now, later(now, Duration::MAX)), Duration::ZERO);
    }
}
