//! Helpers shared by the integration tests: a simulated pair on loopback and clients for it.
#![allow(dead_code)]

pub mod etcd;
pub mod watchdog;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bt_watchdog::api::{ApiObserver, ApplianceClient, ApplianceSettings, Endpoint, TokenOutcome};
use bt_watchdog::secret::Secret;
use bt_watchdog::sim::{SimConfig, SimSettings, Simulator};

pub async fn simulator(settings: SimSettings) -> Simulator {
    Simulator::start(SimConfig {
        settings,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts on loopback")
}

pub fn settings_for(sim: &Simulator, index: usize) -> ApplianceSettings {
    let defaults = SimSettings::default();
    let mut settings = ApplianceSettings::new(
        ["east", "west"][index],
        &sim.url(index),
        &defaults.client_id,
        Secret::new(defaults.client_secret),
    );
    settings.request_timeout = Duration::from_secs(2);
    settings
}

pub fn client(sim: &Simulator, index: usize) -> ApplianceClient {
    ApplianceClient::new(settings_for(sim, index), Arc::new(Recorder::default()))
        .expect("client builds")
}

/// Collects what the client reports to its observer.
#[derive(Default)]
pub struct Recorder {
    pub requests: Mutex<Vec<(Endpoint, String)>>,
    pub tokens: Mutex<Vec<TokenOutcome>>,
}

impl ApiObserver for Recorder {
    fn request(&self, _: &str, endpoint: Endpoint, code: &str, _: Duration) {
        self.requests
            .lock()
            .unwrap()
            .push((endpoint, code.to_string()));
    }
    fn token(&self, _: &str, outcome: TokenOutcome) {
        self.tokens.lock().unwrap().push(outcome);
    }
}

/// Polls `condition` until it holds or `deadline` passes.
pub async fn eventually<F: FnMut() -> bool>(deadline: Duration, mut condition: F) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
