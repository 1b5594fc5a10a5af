//! Formatting for reasons: short, exact, the same everywhere.

use std::time::Duration;

/// "41s", "2m 5s", "1h 3m": whole seconds, at most two units.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let cases = [
            (0, "0s"),
            (41, "41s"),
            (60, "1m"),
            (125, "2m 5s"),
            (3600, "1h"),
            (3780, "1h 3m"),
        ];
        for (secs, text) in cases {
            assert_eq!(duration(Duration::from_secs(secs)), text);
        }
        assert_eq!(duration(Duration::from_millis(41_900)), "41s");
    }
}
