//! A simulated appliance pair on loopback, with a fault-injection control API.
//!
//! It serves what the watchdog uses of the JSON Command API v2 and of the older XML API, and
//! behaves as the vendor documents, so it is both the test double of the integration tests and
//! a product feature: `bt-watchdog simulate` lets a user try the watchdog, its dashboards and
//! its alerts without real appliances, and `demo` runs the daemon against it.
//!
//! - `pair_model`: how a failover pair behaves, pure (the engine's test harness drives it too);
//! - `state`: the simulated pair around it (tokens, rate limits, faults, logs), pure;
//! - `appliance`: the HTTP face of one appliance, which hands API requests to `v2_api` or
//!   `xml_api` (one file per API flavour; what they share is in `http`);
//! - `control`: the control API;
//! - `listener`: accept loops that really refuse connections while an appliance is down.

mod appliance;
mod body;
mod control;
mod http;
mod listener;
pub(crate) mod pair_model;
mod state;
pub mod tls;
mod v2_api;
pub use v2_api::simulated_clients;
mod xml_api;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use state::{
    Appliance, Counters, FailoverCall, Faults, FaultsPatch, Pair, PairFaults, RequestRecord,
    SimApis, SimProduct, SimSettings, XML_NAMESPACE_BEYONDTRUST, XML_NAMESPACE_BOMGAR,
};

/// Where the simulator listens.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub settings: SimSettings,
    pub listen: IpAddr,
    /// Ports of the two appliances; 0 lets the OS choose.
    pub ports: [u16; 2],
    pub control_port: u16,
    /// Serve the appliances over HTTPS with this certificate (the control API stays HTTP).
    pub tls: Option<tls::TlsFiles>,
    /// The certificate an appliance presents instead while its `expired_certificate` fault
    /// is set (an expired one, for the tests of a certificate that ran out).
    pub expired_tls: Option<tls::TlsFiles>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            settings: SimSettings::default(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: [0, 0],
            control_port: 0,
            tls: None,
            expired_tls: None,
        }
    }
}

/// State shared by the listeners and the control API.
pub(super) struct Shared {
    pair: Mutex<Pair>,
    /// Bumped on every fault change, to wake listeners and hanging requests.
    changes: watch::Sender<u64>,
    urls: [String; 2],
    next_connection: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pair> {
        // A panic while holding the lock cannot leave the pair half-updated in a way that
        // matters to a simulator, so a poisoned lock is used as it is.
        self.pair
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the pair after letting time-driven changes (swaps, syncs) happen.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Pair) -> R) -> R {
        let mut pair = self.lock();
        pair.tick(SystemTime::now());
        f(&mut pair)
    }

    /// Like [`Shared::with`], for changes that listeners must react to (faults, roles).
    pub(super) fn with_change<R>(&self, f: impl FnOnce(&mut Pair) -> R) -> R {
        let result = self.with(f);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        result
    }

    pub(super) fn faults(&self, index: usize) -> Faults {
        self.lock().appliances[index].faults.clone()
    }

    fn is_down(&self, index: usize) -> bool {
        self.lock().appliances[index].faults.down
    }

    fn open_connection(&self, index: usize) -> Connection {
        self.lock().appliances[index].counters.connections += 1;
        Connection {
            id: self.next_connection.fetch_add(1, Ordering::Relaxed) + 1,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// One accepted TCP connection, to tell whether a client reused it.
#[derive(Clone)]
pub(super) struct Connection {
    pub id: u64,
    requests: Arc<AtomicU64>,
}

impl Connection {
    /// Counts a request; true when the connection had already carried one.
    fn note_request(&self) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed) > 0
    }
}

/// A running simulated pair.
pub struct Simulator {
    shared: Arc<Shared>,
    addrs: [SocketAddr; 2],
    control_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let tls = match &config.tls {
            Some(files) => Some(tls::server_config(files).map_err(std::io::Error::other)?),
            None => None,
        };
        let expired_tls = match (&config.expired_tls, &tls) {
            (Some(files), Some(_)) => {
                Some(tls::server_config(files).map_err(std::io::Error::other)?)
            }
            (Some(_), None) => {
                return Err(std::io::Error::other(
                    "an expired certificate needs the valid one as well (tls)",
                ));
            }
            (None, _) => None,
        };
        let listeners = [
            listener::bind(SocketAddr::new(config.listen, config.ports[0]))?,
            listener::bind(SocketAddr::new(config.listen, config.ports[1]))?,
        ];
        let addrs = [listeners[0].local_addr()?, listeners[1].local_addr()?];
        let control = listener::bind(SocketAddr::new(config.listen, config.control_port))?;
        let control_addr = control.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let urls = addrs.map(|addr| format!("{scheme}://{addr}"));
        let shared = Arc::new(Shared {
            pair: Mutex::new(Pair::new(config.settings, SystemTime::now())),
            changes: watch::channel(0).0,
            urls,
            next_connection: AtomicU64::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (index, l) in listeners.into_iter().enumerate() {
            tasks.push(tokio::spawn(listener::serve(
                shared.clone(),
                index,
                l,
                tls.clone().map(|valid| listener::Certificates {
                    valid,
                    expired: expired_tls.clone(),
                }),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(serve_control(
            shared.clone(),
            control,
            shutdown_rx,
        )));
        Ok(Simulator {
            shared,
            addrs,
            control_addr,
            shutdown,
            tasks,
        })
    }

    /// Base URL of appliance `index` (0 starts as primary, 1 as backup).
    pub fn url(&self, index: usize) -> String {
        self.shared.urls[index].clone()
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.addrs[index]
    }

    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    /// Reads or changes the pair directly (in-process tests).
    pub fn with<R>(&self, f: impl FnOnce(&mut Pair) -> R) -> R {
        self.shared.with_change(f)
    }

    pub fn set_faults(&self, index: usize, patch: FaultsPatch) {
        self.shared
            .with_change(|pair| pair.appliances[index].faults.apply(patch));
    }

    pub fn counters(&self, index: usize) -> Counters {
        self.shared
            .with(|pair| pair.appliances[index].counters.clone())
    }

    /// Stops accepting and ends the accept loops; in-flight connections finish on their own.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn serve_control(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| control::handle(shared.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}
