//! A memory read from etcd is written by whoever can write the key: a hostile or corrupt one
//! that parses must never make the engine panic (the daemon would lose the site's loop).

use std::time::Duration;

use super::harness::Harness;
use crate::engine::{Memory, Mode};

fn hostile(json: &str) -> Memory {
    serde_json::from_str::<Memory>(json).expect("the test's memory parses")
}

fn survives(memory: Memory) {
    for mode in [Mode::Auto, Mode::Observe] {
        let mut h = Harness::with(mode, super::harness::policy(), memory.clone());
        h.run_for(Duration::from_secs(600));
    }
}

#[test]
fn an_episode_with_an_empty_plan_does_not_panic() {
    survives(hostile(
        r#"{"version":2,"last_failover":null,"cooldown_until":null,"promoted":null,"pause":null,
        "episode":{"id":18446744073709551615,"purpose":"promote","trigger":"auto","from":"east",
        "target":"west","plan":[],"step":4294967295,"attempts":4294967295,"reason":"",
        "overridden":false,"started_at":"2026-01-01T00:00:00Z"}}"#,
    ));
}

#[test]
fn extreme_retries_and_times_do_not_panic() {
    survives(hostile(
        r#"{"version":2,"last_failover":null,"cooldown_until":"9999-12-31T23:59:59Z","promoted":"nobody","pause":null,
        "retries":{"attempts":4294967295,"last_failure_at":"9999-12-31T23:59:59Z","next_attempt_at":"0001-01-01T00:00:00Z","escalate_to_fence":true},
        "episode":{"id":0,"purpose":"demote_stale","trigger":"manual","from":null,
        "target":"east","plan":[{"appliance":"east","request":{"role":"backup","data_sync_first":false,"force":true}},{"appliance":"west","request":{"role":"primary","data_sync_first":true,"force":false}}],
        "step":1,"attempts":0,"reason":"x","overridden":true,"started_at":"9999-12-31T23:59:59Z"}}"#,
    ));
}
