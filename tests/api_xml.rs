//! The XML command API client against the simulated pair, and `api = auto` detection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::sync::Arc;
use std::time::Duration;

use bt_watchdog::api::model::{
    CommandPermission, FailoverRequest, FailoverRole, Health, Probe, Product,
};
use bt_watchdog::api::{ApiChoice, ApplianceClient, ErrorKind, Flavor};
use bt_watchdog::sim::{FaultsPatch, SimApis, SimSettings};
use common::{Recorder, eventually, settings_for, simulator};

fn client(sim: &bt_watchdog::sim::Simulator, index: usize, api: ApiChoice) -> ApplianceClient {
    let mut settings = settings_for(sim, index);
    settings.api = api;
    ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap()
}

fn xml_only() -> SimSettings {
    SimSettings {
        apis: [SimApis {
            v2: false,
            xml: true,
        }; 2],
        ..SimSettings::default()
    }
}

#[tokio::test]
async fn every_call_over_the_xml_api() {
    let sim = simulator(xml_only()).await;
    let east = client(&sim, 0, ApiChoice::Xml);
    let west = client(&sim, 1, ApiChoice::Xml);
    assert_eq!(east.check_health().await.unwrap(), Probe::Healthy);
    let Health::Healthy(primary) = east.health().await.unwrap() else {
        panic!("healthy")
    };
    assert_eq!(primary.failover_role, Some(FailoverRole::Primary));
    assert!(primary.last_data_sync.is_some());
    assert_eq!(primary.version.as_deref(), Some("25.2.1"));
    assert_eq!(primary.build.as_deref(), Some("31526"));
    assert_eq!(primary.enabled_shared_ips, vec!["192.0.2.10".to_string()]);
    let Health::Healthy(backup) = west.health().await.unwrap() else {
        panic!("healthy")
    };
    assert_eq!(backup.failover_role, Some(FailoverRole::Backup));
    assert_eq!(backup.last_data_sync, None);
    let list = east.appliances().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].failover_role, Some(FailoverRole::Primary));
    let info = east.info().await.unwrap();
    assert_eq!(info.perm_command, Some(CommandPermission::FullAccess));
    assert_eq!(info.product, Some(Product::Rs));

    let accepted = west
        .set_failover_role(FailoverRequest {
            role: FailoverRole::Primary,
            data_sync_first: false,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(accepted.message, "Successfully changed role.");
    assert!(!accepted.completes_later);
    assert_eq!(sim.with(|p| p.appliances[1].role), FailoverRole::Primary);

    // Form-encoded POST with 0/1 flags, a token reused, no connection reused.
    let records = sim.with(|p| p.requests.iter().cloned().collect::<Vec<_>>());
    let post = records
        .iter()
        .find(|r| r.method == "POST" && r.path == "/api/command")
        .unwrap();
    assert_eq!(
        post.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(post.body.as_ref().unwrap()["data_sync_first"], "0");
    assert_eq!(post.body.as_ref().unwrap()["role"], "primary");
    for index in 0..2 {
        let counters = sim.counters(index);
        assert_eq!(counters.tokens_minted, 1, "{counters:?}");
        assert_eq!(counters.connections_reused, 0);
        assert_eq!(counters.missing_connection_close, 0);
        assert_eq!(counters.header_violations, 0);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_graceful_swap_over_xml_completes_later() {
    let sim = simulator(SimSettings {
        swap_duration: Duration::from_millis(300),
        ..xml_only()
    })
    .await;
    let west = client(&sim, 1, ApiChoice::Xml);
    let accepted = west
        .set_failover_role(FailoverRequest {
            role: FailoverRole::Primary,
            data_sync_first: true,
            force: false,
        })
        .await
        .unwrap();
    assert!(
        accepted
            .message
            .starts_with("Successfully started data sync"),
        "{}",
        accepted.message
    );
    assert!(accepted.completes_later);
    assert!(
        eventually(Duration::from_secs(5), || sim
            .with(|p| p.appliances[1].role == FailoverRole::Primary))
        .await
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn xml_errors_and_faults_are_typed() {
    let sim = simulator(xml_only()).await;
    let east = client(&sim, 0, ApiChoice::Xml);
    sim.with(|p| p.faults.partitioned = true);
    let refused = east
        .set_failover_role(FailoverRequest {
            role: FailoverRole::Backup,
            data_sync_first: false,
            force: false,
        })
        .await
        .unwrap_err()
        .error;
    assert_eq!(refused.kind, ErrorKind::Server, "{refused}");
    assert!(
        refused.detail.contains("Unable to contact the peer"),
        "{refused}"
    );
    sim.set_faults(
        0,
        FaultsPatch {
            malformed: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(east.health().await.unwrap_err().kind, ErrorKind::Malformed);
    sim.set_faults(
        0,
        FaultsPatch {
            malformed: Some(false),
            unhealthy: Some(true),
            ..Default::default()
        },
    );
    let Health::Unhealthy { message, .. } = east.health().await.unwrap() else {
        panic!("unhealthy")
    };
    assert!(message.unwrap().contains("unhealthy"));
    sim.set_faults(
        0,
        FaultsPatch {
            endless_body: Some(true),
            unhealthy: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(east.health().await.unwrap_err().kind, ErrorKind::TooLarge);
    sim.shutdown().await;
}

#[tokio::test]
async fn auto_detects_each_appliances_api() {
    let mixed = SimSettings {
        apis: [
            SimApis {
                v2: false,
                xml: true,
            },
            SimApis {
                v2: true,
                xml: false,
            },
        ],
        ..SimSettings::default()
    };
    let sim = simulator(mixed).await;
    let east = client(&sim, 0, ApiChoice::Auto);
    let west = client(&sim, 1, ApiChoice::Auto);
    assert_eq!(east.flavor(), None);
    assert!(east.health().await.unwrap().is_healthy());
    assert!(west.health().await.unwrap().is_healthy());
    assert_eq!(east.flavor(), Some(Flavor::Xml));
    assert_eq!(west.flavor(), Some(Flavor::V2));
    sim.shutdown().await;
}

#[tokio::test]
async fn auto_detection_waits_for_an_appliance_that_is_down() {
    let sim = simulator(xml_only()).await;
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(true),
            ..Default::default()
        },
    );
    let east = client(&sim, 0, ApiChoice::Auto);
    assert_eq!(east.health().await.unwrap_err().kind, ErrorKind::Connect);
    assert_eq!(
        east.flavor(),
        None,
        "nothing was learnt from a connection refused"
    );
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(false),
            ..Default::default()
        },
    );
    assert!(eventually(Duration::from_secs(5), || true).await);
    let mut healthy = false;
    for _ in 0..50 {
        if east.health().await.is_ok() {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy);
    assert_eq!(east.flavor(), Some(Flavor::Xml));
    sim.shutdown().await;
}
