//! TLS: a private CA through `ca_file`, and TLS failures as their own error kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bt_watchdog::api::model::Probe;
use bt_watchdog::api::{ApplianceClient, ErrorKind};
use bt_watchdog::sim::tls::TlsFiles;
use bt_watchdog::sim::{SimConfig, SimSettings, Simulator};
use common::{Recorder, settings_for};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

async fn tls_simulator() -> Simulator {
    Simulator::start(SimConfig {
        settings: SimSettings::default(),
        tls: Some(TlsFiles {
            cert: fixture("appliance.pem"),
            key: fixture("appliance.key"),
        }),
        ..SimConfig::default()
    })
    .await
    .expect("the TLS simulator starts")
}

#[tokio::test]
async fn a_private_ca_in_ca_file_is_trusted() {
    let sim = tls_simulator().await;
    assert!(sim.url(0).starts_with("https://"));
    let mut settings = settings_for(&sim, 0);
    settings.ca_file = Some(fixture("ca.pem"));
    let east = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap();
    assert_eq!(east.check_health().await.unwrap(), Probe::Healthy);
    assert!(east.health().await.unwrap().is_healthy());
    assert_eq!(sim.counters(0).connections_reused, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_ca_is_a_certificate_error_that_points_at_ca_file() {
    let sim = tls_simulator().await;
    let east = ApplianceClient::new(settings_for(&sim, 0), Arc::new(Recorder::default())).unwrap();
    let error = east.check_health().await.unwrap_err();
    // The appliance answered with a certificate we do not trust: not silence.
    assert_eq!(error.kind, ErrorKind::Certificate, "{error}");
    assert!(
        error.detail.contains("ca_file") && error.detail.contains("does not trust"),
        "{error}"
    );
    let error = east.health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Certificate, "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_error() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut settings = settings_for(&sim, 0);
    settings.url = sim.url(0).replace("http://", "https://");
    settings.ca_file = Some(fixture("ca.pem"));
    let east = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap();
    let error = east.check_health().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Tls, "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unusable_ca_file_is_refused_when_the_client_is_built() {
    let sim = tls_simulator().await;
    let mut settings = settings_for(&sim, 0);
    settings.ca_file = Some(fixture("README.md"));
    let error = ApplianceClient::new(settings, Arc::new(Recorder::default())).unwrap_err();
    assert!(error.to_string().contains("README.md"), "{error}");
    sim.shutdown().await;
}
