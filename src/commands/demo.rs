//! `bt-watchdog demo`: the embedded default. A simulated pair on loopback, the daemon in
//! `auto` mode watching it, and a scripted failure so that a newcomer sees a failover happen:
//! the primary dies, the backup is promoted, the old primary comes back still believing it is
//! primary (split brain), and the watchdog demotes it. Needs no file, secret or network beyond
//! loopback; its memory lives in a temporary directory removed at the end.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::ApiChoice;
use crate::api::model::FailoverRole;
use crate::config::{ApplianceEntry, Config, ExporterConfig, SecretSource, SiteConfig};
use crate::daemon::{self, ConfigSource, DaemonError};
use crate::engine::{Mode, Policy};
use crate::secret::Secret;
use crate::sim::{FaultsPatch, SimConfig, SimSettings, Simulator};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    /// When the primary is killed.
    pub kill_after: Duration,
    /// How long after the failover the old primary comes back.
    pub revive_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the simulated pair: {0}")]
    Simulator(std::io::Error),
    #[error("cannot create a temporary state directory: {0}")]
    StateDir(std::io::Error),
    #[error("{0}")]
    Daemon(#[from] DaemonError),
}

/// The demo's site: fast enough to watch, with the same rules as production.
pub fn demo_config(
    sim: &Simulator,
    settings: &SimSettings,
    listen: SocketAddr,
    state_dir: PathBuf,
) -> Config {
    let poll_interval = Duration::from_secs(2);
    let request_timeout = Duration::from_secs(2);
    Config {
        mode: Mode::Auto,
        control_socket: crate::control::default_socket(&state_dir),
        state_dir,
        exporter: ExporterConfig {
            listen,
            web_config: None,
            request_duration_histograms: false,
        },
        journal: crate::config::JournalConfig::default(),
        notify: Vec::new(),
        pre_failover: None,
        sites: vec![SiteConfig {
            name: "demo".to_string(),
            api: ApiChoice::V2,
            client_id: settings.client_id.clone(),
            client_secret: SecretSource::Inline(Secret::new(settings.client_secret.clone())),
            ca_file: None,
            proxy: None,
            appliances: [
                ApplianceEntry {
                    name: settings.names[0].clone(),
                    url: sim.url(0),
                    api: None,
                },
                ApplianceEntry {
                    name: settings.names[1].clone(),
                    url: sim.url(1),
                    api: None,
                },
            ],
            poll_interval,
            health_interval: Duration::from_secs(4),
            request_timeout,
            budget: Default::default(),
            policy: Policy {
                failover_after: Duration::from_secs(10),
                cooldown: Duration::from_secs(600),
                converge_timeout: Duration::from_secs(30),
                swap_settle: Duration::from_secs(30),
                retry_backoff: Duration::from_secs(5),
                startup_grace: Duration::from_secs(10),
                poll_interval,
                stall_tolerance: Duration::from_secs(15),
                ..Policy::default()
            },
            source_address: None,
            confirming_views: None,
        }],
        cluster: None,
    }
}

fn say(line: &str) {
    println!("demo: {line}");
}

pub async fn run(options: DemoOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let settings = SimSettings {
        sync_interval: Duration::from_secs(10),
        ..SimSettings::default()
    };
    let sim = Simulator::start(SimConfig {
        settings: settings.clone(),
        ..SimConfig::default()
    })
    .await
    .map_err(DemoError::Simulator)?;
    let state_dir = std::env::temp_dir().join(format!("bt-watchdog-demo-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir).map_err(DemoError::StateDir)?;
    let config = demo_config(&sim, &settings, options.listen, state_dir.clone());
    let (_reload, reload_rx) = mpsc::channel(1);
    let result = async {
        tokio::pin!(stop);
        let daemon = daemon::start(ConfigSource::Fixed(Box::new(config)), reload_rx).await?;
        let base = format!("http://{}", daemon.listen);
        say("a simulated appliance pair and the watchdog (mode auto) are running on loopback");
        say(&format!("  metrics:  {base}/metrics"));
        say(&format!(
            "  status:   {base}/status   (or: bt-watchdog status --url {base})"
        ));
        say(&format!("  simulator control API: {}", sim.control_url()));
        say(&format!(
            "in {}s the primary, east, will be killed; watch the log below",
            options.kill_after.as_secs()
        ));
        tokio::select! {
            _ = script(&sim, &daemon, &options, &base) => {
                say("the script is over; the demo keeps running until Ctrl-C");
                (&mut stop).await;
            }
            _ = &mut stop => {}
        }
        daemon.stop().await
    }
    .await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&state_dir);
    result.map_err(DemoError::from)
}

async fn wait_for(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// The scripted failure: the first appliance's port closes, or opens again.
fn set_primary_down(sim: &Simulator, down: bool) {
    sim.set_faults(
        0,
        FaultsPatch {
            down: Some(down),
            ..Default::default()
        },
    );
}

async fn script(sim: &Simulator, daemon: &daemon::Daemon, options: &DemoOptions, base: &str) {
    // The countdown starts once the watchdog has a full, healthy picture of the pair: killing
    // the primary before the watchdog ever saw it answer would show a blocked failover
    // (unknown data age), not the failover the demo is about.
    let board = daemon.board.clone();
    if !wait_for(Duration::from_secs(60), || {
        board.document().sites.iter().any(|s| s.state == "healthy")
    })
    .await
    {
        say("the watchdog did not see a healthy pair within a minute; see the log for why");
        return;
    }
    tokio::time::sleep(options.kill_after).await;
    say("killing the primary east now (its port closes)");
    set_primary_down(sim, true);
    let killed = Instant::now();
    let roles = || sim.with(|pair| [pair.appliances[0].role, pair.appliances[1].role]);
    if !wait_for(Duration::from_secs(120), || {
        roles()[1] == FailoverRole::Primary
    })
    .await
    {
        say("west was not promoted within 2 minutes; see the log for why");
        return;
    }
    say(&format!(
        "west was promoted {}s after east died; now in cooldown",
        killed.elapsed().as_secs()
    ));
    say(&format!(
        "  see beyondtrust_watchdog_failovers_total in {base}/metrics"
    ));
    let board = daemon.board.clone();
    let _ = wait_for(Duration::from_secs(30), || {
        board.document().sites.iter().any(|s| s.state == "cooldown")
    })
    .await;
    tokio::time::sleep(options.revive_after).await;
    say("east comes back, still believing it is the primary: a split brain");
    set_primary_down(sim, false);
    if wait_for(Duration::from_secs(120), || {
        roles() == [FailoverRole::Backup, FailoverRole::Primary]
    })
    .await
    {
        say(
            "the watchdog promoted west itself, so it demoted east (role=backup, force=true): the pair is whole again",
        );
    } else {
        say("east was not demoted within 2 minutes; see the log for why");
    }
}
