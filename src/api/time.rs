//! Date-times as the Command API defines them: RFC 3339 in UTC.
//!
//! Responses use a `+00:00` suffix, sometimes with milliseconds; the docs also allow `Z`.
//! A non-UTC offset is not allowed by the API, so an appliance sending one is misbehaving:
//! that is an error of that one field, never a panic and never a silent conversion.

// The engine uses these types: they must be as pure as the engine (see clippy.toml).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time reported by an appliance, always UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(OffsetDateTime);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{value:?} is not an RFC 3339 date-time")]
    Garbled { value: String },
    #[error("{value:?} is not in UTC (the API requires a Z or +00:00 suffix)")]
    NotUtc { value: String },
}

impl UtcTime {
    pub fn parse(value: &str) -> Result<Self, TimeError> {
        let parsed = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| TimeError::Garbled {
            value: truncate_for_message(value),
        })?;
        if !parsed.offset().is_utc() {
            return Err(TimeError::NotUtc {
                value: truncate_for_message(value),
            });
        }
        Ok(UtcTime(parsed))
    }

    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(UtcTime)
    }

    /// Never panics: a time outside the years -9999..=9999 (only arithmetic on absurd durations
    /// makes one, such as a cooldown of ten thousand years) is clamped to the nearest end.
    pub fn from_system_time(at: SystemTime) -> Self {
        let clamped = match at.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => time::Duration::try_from(after)
                .ok()
                .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d))
                .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc()),
            Err(before) => time::Duration::try_from(before.duration())
                .ok()
                .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_sub(d))
                .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc()),
        };
        UtcTime(clamped)
    }

    pub fn to_system_time(self) -> SystemTime {
        SystemTime::from(self.0)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Seconds since the epoch with sub-second precision, as Prometheus wants timestamps.
    pub fn unix_seconds_f64(self) -> f64 {
        self.0.unix_timestamp_nanos() as f64 / 1e9
    }

    /// How long before `now` this was; zero when it lies in the future (clock skew).
    pub fn age_at(self, now: SystemTime) -> Duration {
        now.duration_since(self.to_system_time())
            .unwrap_or(Duration::ZERO)
    }

    /// The form the appliances use in responses: `+00:00` with milliseconds.
    pub fn to_api_string(self) -> String {
        let t = self.0;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

/// Keeps an attacker-sized or garbage value out of log lines.
fn truncate_for_message(value: &str) -> String {
    const LIMIT: usize = 64;
    if value.chars().count() <= LIMIT {
        value.to_string()
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head}…")
    }
}

impl fmt::Debug for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_api_string())
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_api_string())
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_api_string())
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        UtcTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_valid_form() {
        for value in [
            "2025-10-16T14:46:25.930+00:00",
            "2026-10-16T14:46:23+00:00",
            "2025-10-16T14:46:25.930Z",
            "2026-10-16T14:46:23Z",
        ] {
            assert!(UtcTime::parse(value).is_ok(), "{value} should parse");
        }
        assert_eq!(
            UtcTime::parse("2026-10-16T14:46:23Z"),
            UtcTime::parse("2026-10-16T14:46:23+00:00")
        );
    }

    #[test]
    fn rejects_every_documented_invalid_form_with_the_right_reason() {
        for value in [
            "2025-10-16T14:46:25.930",
            "2026-10-16T14:46:23",
            "yesterday",
            "",
        ] {
            assert!(
                matches!(UtcTime::parse(value), Err(TimeError::Garbled { .. })),
                "{value}"
            );
        }
        for value in ["2025-10-16T14:46:25.930-08:00", "2026-10-16T14:46:23+04:00"] {
            assert!(
                matches!(UtcTime::parse(value), Err(TimeError::NotUtc { .. })),
                "{value}"
            );
        }
    }

    #[test]
    fn round_trips_through_the_api_form() {
        let t = UtcTime::parse("2025-10-16T14:46:25.930Z").unwrap();
        assert_eq!(t.to_api_string(), "2025-10-16T14:46:25.930+00:00");
        assert_eq!(UtcTime::parse(&t.to_api_string()).unwrap(), t);
    }

    #[test]
    fn long_garbage_is_truncated_in_the_message() {
        let junk = "x".repeat(10_000);
        let message = UtcTime::parse(&junk).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn times_beyond_year_9999_are_clamped_not_a_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000 * 365 * 24 * 3600);
        let clamped = UtcTime::from_system_time(far);
        assert_eq!(clamped.to_string().get(..4), Some("9999"));
        assert!(clamped.to_system_time() < far);
    }
}
