//! The time the daemon gives the engine: the wall clock, but immune to steps while running.
//!
//! The engine measures everything (failing streaks, cooldowns, deadlines, data age) as
//! differences of the `now` it is given, and its memory holds wall-clock times (a cooldown's
//! end) so that they mean something after a restart. A wall clock stepped while the watchdog
//! runs (an operator's `date -s`, a virtual machine resumed, NTP's first sync) would end a
//! cooldown early or make it last for ever, and would make a streak look longer or shorter
//! than it was. So the daemon keeps time on the monotonic clock from one reading of the wall
//! clock, and follows the wall clock only while it moves with it (NTP's slewing, a fraction of
//! a millisecond per second): a step is logged once and not followed until the next start.
//! After a restart the wall clock is all there is; the memory's times are read against it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Larger differences between the wall clock and the monotonic one are steps.
const STEP: Duration = Duration::from_secs(1);

/// Test hook: a file holding a signed number of seconds added to the wall clock, so that the
/// integration tests can step "the wall clock" of one daemon without touching the host's.
pub const OFFSET_FILE_ENV: &str = "BT_WATCHDOG_TEST_CLOCK_OFFSET_FILE";

pub struct WatchdogClock {
    anchor: Mutex<Anchor>,
    offset_file: Option<PathBuf>,
}

struct Anchor {
    monotonic: Instant,
    wall: SystemTime,
    /// The step last logged, so that a step is said once, not at every reading.
    logged_step: Option<i128>,
}

impl WatchdogClock {
    pub fn new() -> Self {
        let offset_file = std::env::var_os(OFFSET_FILE_ENV).map(PathBuf::from);
        let mut clock = WatchdogClock {
            anchor: Mutex::new(Anchor {
                monotonic: Instant::now(),
                wall: SystemTime::now(),
                logged_step: None,
            }),
            offset_file,
        };
        let wall = clock.wall();
        if let Ok(anchor) = clock.anchor.get_mut() {
            anchor.wall = wall;
        }
        clock
    }

    /// The wall clock, as the host (or the test hook) has it.
    fn wall(&self) -> SystemTime {
        let now = SystemTime::now();
        let Some(path) = &self.offset_file else {
            return now;
        };
        let offset: i64 = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        let magnitude = Duration::from_secs(offset.unsigned_abs());
        if offset >= 0 {
            now.checked_add(magnitude).unwrap_or(now)
        } else {
            now.checked_sub(magnitude).unwrap_or(now)
        }
    }

    /// The time to give the engine.
    pub fn now(&self) -> SystemTime {
        let monotonic = Instant::now();
        let wall = self.wall();
        let mut anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        let expected = anchor
            .wall
            .checked_add(monotonic.saturating_duration_since(anchor.monotonic))
            .unwrap_or(anchor.wall);
        let step_ms = signed_ms(wall, expected);
        if step_ms.unsigned_abs() <= STEP.as_millis() {
            // Moving with the monotonic clock (or slewed by NTP): follow it.
            *anchor = Anchor {
                monotonic,
                wall,
                logged_step: None,
            };
            return wall;
        }
        let seconds = step_ms / 1000;
        if anchor.logged_step != Some(seconds) {
            anchor.logged_step = Some(seconds);
            tracing::warn!(
                "the wall clock stepped {} by {}s; the watchdog keeps counting time on its monotonic clock (failing streaks, cooldowns, deadlines) and follows the new wall clock after its next restart",
                if step_ms > 0 { "forward" } else { "back" },
                seconds.unsigned_abs()
            );
        }
        expected
    }
}

impl Default for WatchdogClock {
    fn default() -> Self {
        WatchdogClock::new()
    }
}

/// The daemon's one clock (every site keeps the same time).
pub fn now() -> SystemTime {
    static CLOCK: std::sync::OnceLock<WatchdogClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(WatchdogClock::new).now()
}

/// `a - b` in milliseconds, negative when `a` is earlier.
fn signed_ms(a: SystemTime, b: SystemTime) -> i128 {
    match a.duration_since(b) {
        Ok(ahead) => ahead.as_millis() as i128,
        Err(behind) => -(behind.duration().as_millis() as i128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_of_the_wall_clock_is_not_followed_but_slewing_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("offset");
        std::fs::write(&file, "0").unwrap();
        let clock = WatchdogClock {
            anchor: Mutex::new(Anchor {
                monotonic: Instant::now(),
                wall: SystemTime::now(),
                logged_step: None,
            }),
            offset_file: Some(file.clone()),
        };
        let before = clock.now();
        std::fs::write(&file, "3600").unwrap();
        let after_forward = clock.now();
        let gap = after_forward.duration_since(before).unwrap();
        assert!(
            gap < Duration::from_secs(5),
            "forward step followed: {gap:?}"
        );
        std::fs::write(&file, "-3600").unwrap();
        let after_back = clock.now();
        assert!(after_back >= after_forward, "time never runs back");
        assert!(after_back.duration_since(before).unwrap() < Duration::from_secs(5));
        assert_eq!(signed_ms(before, before), 0);
    }
}
