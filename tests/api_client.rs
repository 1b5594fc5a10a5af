//! The JSON v2 client against the simulated pair over real HTTP on loopback: every call and
//! every failure kind the client distinguishes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::sync::Arc;
use std::time::Duration;

use bt_watchdog::api::model::{
    CommandPermission, FailoverRequest, FailoverRole, Health, Probe, Product,
};
use bt_watchdog::api::{ApplianceClient, ErrorKind, TokenOutcome};
use bt_watchdog::secret::Secret;
use bt_watchdog::sim::{FaultsPatch, SimProduct, SimSettings};
use common::{Recorder, client, eventually, settings_for, simulator};

fn req(role: FailoverRole, data_sync_first: bool, force: bool) -> FailoverRequest {
    FailoverRequest {
        role,
        data_sync_first,
        force,
    }
}

#[tokio::test]
async fn every_call_works_against_a_healthy_pair() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    let west = client(&sim, 1);

    assert_eq!(east.check_health().await.unwrap(), Probe::Healthy);

    let Health::Healthy(primary) = east.health().await.unwrap() else {
        panic!("east is healthy")
    };
    assert_eq!(primary.failover_role, Some(FailoverRole::Primary));
    assert!(
        primary.last_data_sync.is_some(),
        "the primary reports its last sync"
    );
    assert_eq!(primary.last_data_sync_status.as_deref(), Some("success"));
    assert!(
        primary.field_issues.is_empty(),
        "{:?}",
        primary.field_issues
    );

    let Health::Healthy(backup) = west.health().await.unwrap() else {
        panic!("west is healthy")
    };
    assert_eq!(backup.failover_role, Some(FailoverRole::Backup));
    assert_eq!(
        backup.last_data_sync, None,
        "only the primary reports last_data_sync"
    );

    let list = east.appliances().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].failover_role, Some(FailoverRole::Backup));

    let info = east.info().await.unwrap();
    assert_eq!(info.product, Some(Product::Rs));
    assert_eq!(info.perm_command, Some(CommandPermission::FullAccess));

    let accepted = west
        .set_failover_role(req(FailoverRole::Primary, false, false))
        .await
        .unwrap();
    assert!(!accepted.completes_later);
    assert_eq!(
        sim.with(|p| [p.appliances[0].role, p.appliances[1].role]),
        [FailoverRole::Backup, FailoverRole::Primary]
    );

    let rate = east.rate_status();
    assert_eq!(rate.limit, Some(15_000));
    assert!(rate.remaining.is_some_and(|r| r < 15_000));

    for index in 0..2 {
        let counters = sim.counters(index);
        assert_eq!(
            counters.header_violations, 0,
            "appliance {index}: {counters:?}"
        );
        assert_eq!(
            counters.connections_reused, 0,
            "appliance {index}: {counters:?}"
        );
        assert_eq!(
            counters.missing_connection_close, 0,
            "appliance {index}: {counters:?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_carry_the_documented_headers_and_json_types() {
    let sim = simulator(SimSettings::default()).await;
    let west = client(&sim, 1);
    west.health().await.unwrap();
    west.set_failover_role(req(FailoverRole::Primary, true, false))
        .await
        .unwrap();
    let records = sim.with(|p| p.requests.iter().cloned().collect::<Vec<_>>());
    let token = records.iter().find(|r| r.path == "/oauth2/token").unwrap();
    assert_eq!(token.method, "POST");
    assert_eq!(token.authorization.as_deref(), Some("basic"));
    assert_eq!(
        token.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let health = records
        .iter()
        .find(|r| r.path.ends_with("/health"))
        .unwrap();
    assert_eq!(health.accept.as_deref(), Some("application/json"));
    assert_eq!(health.authorization.as_deref(), Some("bearer"));
    let failover = records
        .iter()
        .find(|r| r.path.ends_with("/failover-role"))
        .unwrap();
    assert_eq!(failover.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        failover.body,
        Some(serde_json::json!({"role": "primary", "data_sync_first": true, "force": false})),
        "booleans travel as JSON booleans"
    );
    for record in &records {
        assert_eq!(
            record.connection_header.as_deref(),
            Some("close"),
            "{record:?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn one_token_serves_many_calls_and_no_connection_is_reused() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    for _ in 0..40 {
        east.health().await.unwrap();
    }
    let counters = sim.counters(0);
    assert_eq!(counters.tokens_minted, 1);
    assert_eq!(counters.requests, 41, "40 calls and one token request");
    assert_eq!(counters.connections, 41, "one connection per request");
    assert_eq!(counters.connections_reused, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn concurrent_first_calls_mint_a_single_token() {
    let sim = simulator(SimSettings::default()).await;
    let east = Arc::new(client(&sim, 0));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let east = east.clone();
            tokio::spawn(async move { east.health().await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.counters(0).tokens_minted, 1);
    sim.shutdown().await;
}

/// A token that dies sooner than the shortest lifetime the client believes (5 minutes) is
/// not replaced per request: at most one token per appliance per minute, whatever the
/// appliance says (refreshing ahead of expiry is tested with a paused clock in `token.rs`).
#[tokio::test]
async fn a_token_shorter_lived_than_believed_is_not_replaced_per_request() {
    let settings = SimSettings {
        token_lifetime: Duration::from_secs(1),
        ..SimSettings::default()
    };
    let sim = simulator(settings).await;
    let east = client(&sim, 0);
    east.health().await.unwrap();
    // The token's lifetime has to pass for this test to mean anything.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let error = east.health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unauthorized);
    assert!(error.detail.contains("minting the next in"), "{error}");
    let counters = sim.counters(0);
    assert_eq!(counters.tokens_minted, 1);
    assert_eq!(counters.unauthorized, 1);
    sim.shutdown().await;
}

/// A token revoked a moment after it was minted is replaced only once the minimum interval
/// has passed; meanwhile the request fails once, without a retry loop or a second mint.
#[tokio::test]
async fn a_revoked_token_is_not_replaced_within_the_minimum_interval() {
    let sim = simulator(SimSettings::default()).await;
    let recorder = Arc::new(Recorder::default());
    let east = ApplianceClient::new(settings_for(&sim, 0), recorder.clone()).unwrap();
    east.health().await.unwrap();
    sim.with(|p| p.revoke_tokens(0));
    let error = east.health().await.unwrap_err();
    assert!(error.detail.contains("minting the next in"), "{error}");
    let counters = sim.counters(0);
    assert_eq!(counters.tokens_minted, 1);
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(
        *recorder.tokens.lock().unwrap(),
        vec![TokenOutcome::Minted, TokenOutcome::BackedOff]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_rejected_at_once_is_not_retried_in_a_loop() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    east.health().await.unwrap();
    // Every token is refused, even one minted a moment ago: a broken clock or proxy.
    sim.set_faults(
        0,
        FaultsPatch {
            reject_tokens: Some(true),
            ..Default::default()
        },
    );
    let mut errors = Vec::new();
    for _ in 0..5 {
        if let Err(e) = east.health().await {
            errors.push(e);
        }
    }
    assert_eq!(errors.len(), 5);
    assert!(
        errors.iter().all(|e| e.kind == ErrorKind::Unauthorized),
        "{errors:?}"
    );
    // The first 401 hits a token that had worked, minted less than a minute ago: nothing is
    // minted, and nothing is sent either until the minute is over.
    let counters = sim.counters(0);
    assert_eq!(counters.tokens_minted, 1, "minting stops: {counters:?}");
    assert_eq!(counters.unauthorized, 1, "no retry loop: {counters:?}");
    assert!(
        errors
            .last()
            .unwrap()
            .detail
            .contains("minting the next in"),
        "{}",
        errors.last().unwrap()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_reported_without_the_secret() {
    let sim = simulator(SimSettings::default()).await;
    let mut settings = settings_for(&sim, 0);
    settings.client_secret = Secret::new("wrong-secret-value");
    let east = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap();
    let error = east.health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unauthorized);
    let text = format!("{error} {error:?}");
    assert!(text.contains("check client_id"), "{text}");
    assert!(
        !text.contains("wrong-secret-value"),
        "the secret leaked: {text}"
    );
    assert!(!format!("{east:?}").contains("wrong-secret-value"));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_hanging_appliance_is_bounded_by_the_timeout() {
    let sim = simulator(SimSettings::default()).await;
    let mut settings = settings_for(&sim, 0);
    settings.request_timeout = Duration::from_millis(300);
    let east = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap();
    sim.set_faults(
        0,
        FaultsPatch {
            hang: Some(true),
            ..Default::default()
        },
    );
    let started = std::time::Instant::now();
    let probe = east.check_health().await.unwrap_err();
    let health = east.health().await.unwrap_err();
    assert_eq!(
        (probe.kind, health.kind),
        (ErrorKind::Timeout, ErrorKind::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_slow_appliance_within_the_timeout_still_answers() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    sim.set_faults(
        0,
        FaultsPatch {
            slow_ms: Some(200),
            ..Default::default()
        },
    );
    assert!(east.health().await.unwrap().is_healthy());
    sim.shutdown().await;
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    let sim = simulator(SimSettings::default()).await;
    let mut settings = settings_for(&sim, 0);
    settings.max_body_bytes = 64 * 1024;
    let east = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap();
    sim.set_faults(
        0,
        FaultsPatch {
            endless_body: Some(true),
            ..Default::default()
        },
    );
    let error = east.health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::TooLarge, "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_malformed_body_is_a_typed_error() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    sim.set_faults(
        0,
        FaultsPatch {
            malformed: Some(true),
            ..Default::default()
        },
    );
    for error in [
        east.health().await.unwrap_err(),
        east.appliances().await.unwrap_err(),
        east.info().await.unwrap_err(),
    ] {
        assert_eq!(error.kind, ErrorKind::Malformed, "{error}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_down_appliance_refuses_connections_and_comes_back() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    let error = east.check_health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connect, "{error}");
    assert_eq!(east.health().await.unwrap_err().kind, ErrorKind::Connect);
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(false),
            ..Default::default()
        },
    );
    let mut back = false;
    for _ in 0..100 {
        if east.check_health().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "the appliance listens again");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unhealthy_appliance_answers_500_with_its_health() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    sim.set_faults(
        0,
        FaultsPatch {
            unhealthy: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(east.check_health().await.unwrap(), Probe::Unhealthy);
    match east.health().await.unwrap() {
        Health::Unhealthy { health, message } => {
            assert_eq!(health.failover_role, Some(FailoverRole::Primary));
            assert!(message.unwrap().contains("unhealthy"));
        }
        other => panic!("expected unhealthy, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn forbidden_and_not_found_are_told_apart() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    sim.set_faults(
        0,
        FaultsPatch {
            forbidden: Some(true),
            no_check_health: Some(true),
            ..Default::default()
        },
    );
    let forbidden = east.health().await.unwrap_err();
    assert_eq!(forbidden.kind, ErrorKind::Forbidden);
    assert!(forbidden.detail.contains("permission"), "{forbidden}");
    assert_eq!(
        east.check_health().await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_422_carries_the_error_bag() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    let error = east
        .set_failover_role(req(FailoverRole::None, false, false))
        .await
        .unwrap_err();
    assert!(error.sent, "the appliance answered it");
    let error = error.error;
    assert_eq!(error.kind, ErrorKind::Unprocessable, "{error}");
    assert!(
        error
            .errors
            .as_ref()
            .is_some_and(|bag| bag.contains_key("role")),
        "{error:?}"
    );
    assert!(error.detail.contains("role"), "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_429_backs_off_honouring_retry_after() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    east.health().await.unwrap();
    sim.set_faults(
        0,
        FaultsPatch {
            rate_limited: Some(true),
            retry_after_secs: Some(Some(30)),
            ..Default::default()
        },
    );
    let error = east.health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(30)));
    let before = sim.counters(0).requests;
    let held_back = east.appliances().await.unwrap_err();
    assert_eq!(held_back.kind, ErrorKind::RateLimited);
    assert!(held_back.detail.contains("backs off"), "{held_back}");
    assert_eq!(
        sim.counters(0).requests,
        before,
        "no request while backing off"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_typed() {
    let sim = simulator(SimSettings::default()).await;
    let east = client(&sim, 0);
    sim.set_faults(
        0,
        FaultsPatch {
            failover_failing: Some(true),
            ..Default::default()
        },
    );
    let error = east
        .set_failover_role(req(FailoverRole::Backup, false, false))
        .await
        .unwrap_err()
        .error;
    assert_eq!((error.kind, error.status), (ErrorKind::Server, Some(500)));
    let west = client(&sim, 1);
    sim.set_faults(
        1,
        FaultsPatch {
            token_failing: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(west.health().await.unwrap_err().kind, ErrorKind::Server);
    sim.shutdown().await;
}

#[tokio::test]
async fn routine_polling_stops_at_its_share_of_the_hourly_limit() {
    let sim = simulator(SimSettings::default()).await;
    let mut settings = settings_for(&sim, 0);
    settings.budget.hourly_share = 24.0 / 15_000.0; // a burst of 2
    let east = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap();
    east.health().await.unwrap(); // token + health
    let error = east.health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Budget, "{error}");
    // A failover call is never starved by polling.
    east.set_failover_role(req(FailoverRole::Backup, false, false))
        .await
        .unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_graceful_swap_completes_later_with_both_backup_meanwhile() {
    let settings = SimSettings {
        swap_duration: Duration::from_millis(300),
        ..SimSettings::default()
    };
    let sim = simulator(settings).await;
    let west = client(&sim, 1);
    let accepted = west
        .set_failover_role(req(FailoverRole::Primary, true, false))
        .await
        .unwrap();
    assert!(accepted.completes_later);
    assert!(accepted.message.contains("upon successful completion"));
    let Health::Healthy(during) = west.health().await.unwrap() else {
        panic!()
    };
    assert_eq!(during.failover_role, Some(FailoverRole::Backup));
    let swapped = eventually(Duration::from_secs(5), || {
        sim.with(|p| {
            p.appliances[1].role == FailoverRole::Primary
                && p.appliances[0].role == FailoverRole::Backup
        })
    })
    .await;
    assert!(swapped);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_pra_pair_speaks_the_same_api() {
    let sim = simulator(SimSettings {
        product: SimProduct::Pra,
        ..SimSettings::default()
    })
    .await;
    let east = client(&sim, 0);
    assert_eq!(east.info().await.unwrap().product, Some(Product::Pra));
    assert!(east.health().await.unwrap().is_healthy());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_observer_sees_every_exchange() {
    let sim = simulator(SimSettings::default()).await;
    let recorder = Arc::new(Recorder::default());
    let east = ApplianceClient::new(settings_for(&sim, 0), recorder.clone()).unwrap();
    east.check_health().await.unwrap();
    east.health().await.unwrap();
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    let _ = east.health().await;
    let seen: Vec<(String, String)> = recorder
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(e, c)| (e.label().to_string(), c.clone()))
        .collect();
    let expected = [
        ("check_health", "200"),
        ("token", "200"),
        ("health", "200"),
        ("health", "connect"),
    ];
    assert_eq!(seen, expected.map(|(e, c)| (e.to_string(), c.to_string())));
    sim.shutdown().await;
}

/// The `code` label of `beyondtrust_api_requests_total` is a closed set: an appliance (or a
/// proxy in front of it) answering with statuses nobody documented must not mint a new series
/// for each of them, or a hostile answer grows `/metrics` without bound.
#[tokio::test]
async fn undocumented_status_codes_share_a_bounded_set_of_labels() {
    let sim = simulator(SimSettings::default()).await;
    let recorder = Arc::new(Recorder::default());
    let east = ApplianceClient::new(settings_for(&sim, 0), recorder.clone()).unwrap();
    for code in (430..=499)
        .chain(520..=599)
        .chain([207, 299, 308, 600, 999])
    {
        sim.set_faults(
            0,
            FaultsPatch {
                status: Some(Some(code)),
                ..Default::default()
            },
        );
        assert!(
            east.check_health().await.is_err(),
            "{code} is no probe answer"
        );
    }
    let labels: std::collections::BTreeSet<String> = recorder
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(_, code)| code.clone())
        .collect();
    assert!(
        labels.len() <= 6,
        "undocumented statuses became {} label values: {labels:?}",
        labels.len()
    );
    for label in &labels {
        assert!(
            ["1xx", "2xx", "3xx", "4xx", "5xx", "other"].contains(&label.as_str()),
            "{label} is not a status class"
        );
    }
    sim.shutdown().await;
}
