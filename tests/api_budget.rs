//! The API budget against the real daemon and the simulated pair: the protections of the
//! client (429 backoff, the reserve, token caching, the probe, flavour detection) never turn
//! against the failover call or blind the watchdog for long.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::time::Duration;

use bt_watchdog::api::model::FailoverRole;
use bt_watchdog::sim::{FaultsPatch, SimSettings, Simulator};
use common::simulator;
use common::watchdog::{SECRET, Watchdog, Workspace, config_toml, metric, site_toml};

const LONG: Duration = Duration::from_secs(30);

/// A site "hq" on `sim` in `mode`, with `site_extra` lines added to the `[[site]]` table.
async fn start(
    sim: &Simulator,
    mode: &str,
    site_extra: &str,
    policy: &str,
) -> (Workspace, Watchdog) {
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    let site = site_toml("hq", sim, &secret, policy).replacen(
        "request_timeout = \"500ms\"\n",
        &format!("request_timeout = \"500ms\"\n{site_extra}\n"),
        1,
    );
    let config = ws.path("config.toml");
    std::fs::write(&config, config_toml(mode, &ws.path("state"), &site)).unwrap();
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    (ws, watchdog)
}

fn counter(sim: &Simulator, index: usize, read: fn(&bt_watchdog::sim::Counters) -> u64) -> u64 {
    sim.with(|p| read(&p.appliances[index].counters))
}

fn requests_to(sim: &Simulator, index: usize, suffix: &str) -> usize {
    sim.with(|p| {
        let name = p.appliances[index].name.clone();
        p.requests
            .iter()
            .filter(|r| r.appliance == name && r.path.ends_with(suffix))
            .count()
    })
}

fn calls(sim: &Simulator) -> Vec<(String, FailoverRole)> {
    sim.with(|p| {
        p.failover_calls
            .iter()
            .map(|c| (c.appliance.clone(), c.role))
            .collect()
    })
}

async fn wait_until(what: &str, watchdog: &Watchdog, mut condition: impl FnMut() -> bool) {
    assert!(
        common::eventually(LONG, &mut condition).await,
        "timed out waiting for {what}; logs:\n{}",
        watchdog.logs()
    );
}

async fn healthy(watchdog: &Watchdog) {
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
}

fn failovers(metrics: &str, outcome: &str) -> Option<f64> {
    metric(
        metrics,
        &format!(
            r#"beyondtrust_watchdog_failovers_total{{outcome="{outcome}",site="hq",trigger="auto"}}"#
        ),
    )
}

/// Issue 21, item 1: one 429 with `Retry-After: 3600` on the backup's `/health` used to make
/// the failover call wait locally for an hour ("would have to wait 59m 51s"): every attempt
/// failed without reaching the appliance and was counted as a failed failover.
#[tokio::test(flavor = "multi_thread")]
async fn a_429_on_routine_polling_does_not_hold_back_the_failover_call() {
    let sim = simulator(SimSettings::default()).await;
    let (_ws, watchdog) = start(&sim, "auto", "", "").await;
    healthy(&watchdog).await;
    sim.set_faults(
        1,
        FaultsPatch {
            rate_limited: Some(true),
            rate_limited_path: Some(Some("/health".to_string())),
            retry_after_secs: Some(Some(3600)),
            ..Default::default()
        },
    );
    wait_until("a 429 on west's /health", &watchdog, || {
        counter(&sim, 1, |c| c.rate_limited) > 0
    })
    .await;
    sim.set_faults(
        1,
        FaultsPatch {
            rate_limited: Some(false),
            ..Default::default()
        },
    );
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    watchdog
        .wait_for_site(LONG, "cooldown after the failover", |s| {
            s["state"] == "cooldown"
        })
        .await;
    assert_eq!(
        calls(&sim),
        vec![("west".to_string(), FailoverRole::Primary)]
    );
    let metrics = watchdog.metrics().await;
    assert_eq!(failovers(&metrics, "success"), Some(1.0), "{metrics}");
    assert_eq!(failovers(&metrics, "failure"), Some(0.0));
}

/// Issue 21, item 1: a failover whose calls never left the watchdog (here: the backup
/// rejects every token, so no token can be had for the call) is not a failed failover in
/// `beyondtrust_watchdog_failovers_total`; it is counted as `not_sent`.
#[tokio::test(flavor = "multi_thread")]
async fn a_failover_whose_calls_never_left_is_counted_as_not_sent() {
    let sim = simulator(SimSettings::default()).await;
    let (_ws, watchdog) = start(&sim, "auto", "", "max_attempts = 2").await;
    healthy(&watchdog).await;
    sim.set_faults(
        1,
        FaultsPatch {
            reject_tokens: Some(true),
            ..Default::default()
        },
    );
    // West's token backoff is in force once a freshly minted token was refused.
    wait_until("a token backoff on west", &watchdog, || {
        let logs = watchdog.logs();
        logs.contains("not minting another") || logs.contains("minting the next in")
    })
    .await;
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    let until = std::time::Instant::now() + LONG;
    let metrics = loop {
        let metrics = watchdog.metrics().await;
        if failovers(&metrics, "not_sent").unwrap_or(0.0)
            + failovers(&metrics, "failure").unwrap_or(0.0)
            > 0.0
        {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < until,
            "no failover finished:\n{}",
            watchdog.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(calls(&sim).is_empty(), "no call reached the appliance");
    assert_eq!(failovers(&metrics, "failure"), Some(0.0), "{metrics}");
    assert_eq!(failovers(&metrics, "not_sent"), Some(1.0), "{metrics}");
}

/// Issue 21, item 2: one answer with `X-RateLimit-Remaining: 50` (below the reserve of 100)
/// used to refuse every routine request for an hour, although the next answers would have
/// said 14,000. The reserve is re-checked at the health cadence.
#[tokio::test(flavor = "multi_thread")]
async fn one_low_remaining_answer_does_not_stop_polling() {
    let sim = simulator(SimSettings::default()).await;
    sim.set_faults(
        0,
        FaultsPatch {
            ratelimit_remaining: Some(Some(50)),
            ..Default::default()
        },
    );
    let (_ws, watchdog) = start(&sim, "observe", "", "").await;
    watchdog
        .wait_for_site(LONG, "east reporting 50 remaining", |s| {
            s["appliances"][0]["ratelimit_remaining"] == 50
        })
        .await;
    sim.set_faults(
        0,
        FaultsPatch {
            ratelimit_remaining: Some(None),
            ..Default::default()
        },
    );
    let site = watchdog
        .wait_for_site(LONG, "east's true remaining count", |s| {
            s["appliances"][0]["ratelimit_remaining"]
                .as_u64()
                .is_some_and(|r| r > 1000)
        })
        .await;
    assert_eq!(site["state"], "healthy", "{site:#}");
    // Polling is back at its cadence: several /health reads within a few health intervals.
    let before = counter(&sim, 0, |c| c.health_requests);
    wait_until("east's /health read again and again", &watchdog, || {
        counter(&sim, 0, |c| c.health_requests) >= before + 5
    })
    .await;
}

/// Issue 21, item 3 and issue 16: token answers whose `expires_in` is a string, 0, or too
/// large for any clock. A string used to be refused as malformed (and a token minted per
/// poll), 0 made every request mint a token, and a huge value overflowed the clock.
#[tokio::test(flavor = "multi_thread")]
async fn token_answers_with_odd_lifetimes_are_used_without_minting_per_request() {
    let odd: [(serde_json::Value, serde_json::Value); 3] = [
        (serde_json::json!("3600"), serde_json::json!(0)),
        (serde_json::json!(u64::MAX), serde_json::json!(1e300)),
        (serde_json::json!("soon"), serde_json::json!(-1)),
    ];
    for (east, west) in odd {
        let sim = simulator(SimSettings::default()).await;
        for (index, expires_in) in [(0, east.clone()), (1, west.clone())] {
            sim.set_faults(
                index,
                FaultsPatch {
                    token_expires_in: Some(Some(expires_in)),
                    ..Default::default()
                },
            );
        }
        let (_ws, watchdog) = start(&sim, "observe", "", "").await;
        healthy(&watchdog).await;
        // Many polls (every 200 ms, each with authenticated reads) later...
        let before = [0, 1].map(|i| counter(&sim, i, |c| c.health_requests));
        wait_until("ten more /health reads of each", &watchdog, || {
            (0..2).all(|i| counter(&sim, i, |c| c.health_requests) >= before[i] + 10)
        })
        .await;
        // ...each appliance has minted one token.
        for index in 0..2 {
            assert_eq!(
                counter(&sim, index, |c| c.tokens_minted),
                1,
                "expires_in {east} / {west}: appliance {index}\n{}",
                watchdog.logs()
            );
        }
        assert!(!watchdog.logs().contains("panicked"), "{}", watchdog.logs());
    }
}

/// Issue 21, item 4: one 404 from `/check_health` used to disable the probe for the life of
/// the process. It is asked again after ten health intervals (2 s in this test).
#[tokio::test(flavor = "multi_thread")]
async fn a_check_health_404_is_asked_again_later() {
    let sim = simulator(SimSettings::default()).await;
    sim.set_faults(
        0,
        FaultsPatch {
            no_check_health: Some(true),
            ..Default::default()
        },
    );
    let (_ws, watchdog) = start(&sim, "observe", "", "").await;
    healthy(&watchdog).await;
    wait_until("east's 404 on /check_health", &watchdog, || {
        watchdog.logs().contains("does not serve /check_health")
    })
    .await;
    // While it is missing, east's /health carries its liveness; west still has its probe,
    // so west's /health stays at the health cadence... (both are 200 ms here; the budget
    // figures in BENCHMARKS.md show the difference at the defaults).
    sim.set_faults(
        0,
        FaultsPatch {
            no_check_health: Some(false),
            ..Default::default()
        },
    );
    let served = || {
        sim.with(|p| {
            p.requests
                .iter()
                .filter(|r| r.appliance == "east" && r.path == "/check_health" && r.status == 200)
                .count()
        })
    };
    wait_until(
        "east's /check_health asked again and answered",
        &watchdog,
        || served() >= 3,
    )
    .await;
}

/// Issue 21, item 5: with `api = "auto"`, an appliance whose `/info` answers 500 used to be
/// never read: every call re-ran detection first (13 `/info`, 0 `/health` in 30 s).
#[tokio::test(flavor = "multi_thread")]
async fn api_auto_with_a_failing_info_still_polls_and_says_why() {
    let sim = simulator(SimSettings::default()).await;
    for index in 0..2 {
        sim.set_faults(
            index,
            FaultsPatch {
                info_failing: Some(true),
                ..Default::default()
            },
        );
    }
    let (_ws, watchdog) = start(&sim, "observe", "api = \"auto\"", "").await;
    healthy(&watchdog).await;
    let before = [0, 1].map(|i| counter(&sim, i, |c| c.health_requests));
    wait_until("ten more /health reads of each", &watchdog, || {
        (0..2).all(|i| counter(&sim, i, |c| c.health_requests) >= before[i] + 10)
    })
    .await;
    // Detection backs off (30 s after the first failure): one /info per appliance so far,
    // plus at most the hourly info read.
    for index in 0..2 {
        let info = requests_to(&sim, index, "/info");
        assert!(
            info <= 2,
            "appliance {index}: {info} /info requests\n{}",
            watchdog.logs()
        );
    }
    assert!(
        watchdog.logs().contains("api = auto: detection failed"),
        "{}",
        watchdog.logs()
    );
    // The assumed flavour answered, so it is now known.
    let site = watchdog.site().await;
    assert_eq!(site["appliances"][0]["api"], "v2", "{site:#}");
}
