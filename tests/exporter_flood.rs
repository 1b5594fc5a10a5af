//! A hostile network against the exporter: a connection flood and a slowloris from other
//! addresses while the watchdog polls a healthy pair. The polls must go on (no gap the daemon
//! would call a stall, both appliances up all along, the site healthy) and a scraper from
//! another address must still be answered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bt_watchdog::sim::SimSettings;
use common::simulator;
use common::watchdog::{Watchdog, Workspace};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `source` (another loopback address) to `target`.
async fn connect_from(source: &str, target: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(format!("{source}:0").parse().unwrap()).ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(target))
        .await
        .ok()?
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_on_the_exporter_never_delays_a_poll() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    // 200 descriptors: a flood of 400 connections exhausts them unless the exporter caps what
    // it accepts (before the cap, the polls' own sockets failed with EMFILE: a false "down").
    let watchdog = Watchdog::start_with_file_limit(&config, &ws.path("watchdog.log"), "info", 200);
    watchdog
        .wait_for_site(Duration::from_secs(20), "a healthy site", |s| {
            s["state"] == "healthy"
        })
        .await;
    let target: SocketAddr = watchdog.base.trim_start_matches("http://").parse().unwrap();
    let flood_for = Duration::from_secs(7);
    let started = Instant::now();

    // Slowloris from 127.0.0.2: hundreds of connections, each dribbling a header byte a second.
    let slowloris = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..400 {
            if let Some(stream) = connect_from("127.0.0.2", target).await {
                held.push(stream);
            }
        }
        let opened = held.len();
        while started.elapsed() < flood_for {
            for stream in &mut held {
                let _ = stream.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        opened
    });
    // A connect-and-close flood from 127.0.0.3.
    let churn = tokio::spawn(async move {
        let mut connections = 0u64;
        while started.elapsed() < flood_for {
            let mut batch = Vec::new();
            for _ in 0..50 {
                batch.push(tokio::spawn(async move {
                    if let Some(mut s) = connect_from("127.0.0.3", target).await {
                        let _ = s
                            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                            .await;
                    }
                }));
            }
            for task in batch {
                let _ = task.await;
                connections += 1;
            }
        }
        connections
    });

    // Meanwhile, a scraper from 127.0.0.1 reads the site's status every 100 ms.
    let polls_before = sim.counters(0).requests;
    let mut last_poll: Option<String> = None;
    let mut last_change = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut answers = 0;
    while started.elapsed() < flood_for {
        let (code, body) = watchdog.get("/status").await;
        assert_eq!(code, 200, "the scraper was not answered during the flood");
        answers += 1;
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let site = &status["sites"][0];
        assert_eq!(site["state"], "healthy", "{site:#}");
        for appliance in site["appliances"].as_array().unwrap() {
            assert_eq!(
                appliance["up"], true,
                "a false down during the flood: {site:#}"
            );
        }
        let poll = site["last_poll"].as_str().map(str::to_string);
        if poll != last_poll {
            longest_gap = longest_gap.max(last_change.elapsed());
            last_change = Instant::now();
            last_poll = poll;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = slowloris.await.unwrap();
    let churned = churn.await.unwrap();
    let polls = sim.counters(0).requests - polls_before;

    // The daemon's own definition of a missed poll is a gap beyond stall_tolerance (3 s in
    // these tests): none may occur, and none may be reported.
    assert!(
        longest_gap < Duration::from_secs(3),
        "a poll gap of {longest_gap:?} during the flood"
    );
    let metrics = watchdog.metrics().await;
    let refused = common::watchdog::metric(
        &metrics,
        "beyondtrust_watchdog_exporter_connections_refused_total",
    )
    .unwrap();
    assert!(
        refused > 0.0,
        "the connection cap never refused anything ({opened} slow connections held)"
    );
    let logs = watchdog.logs();
    assert!(!logs.contains("stall"), "a stall was reported:\n{logs}");
    eprintln!(
        "flood: {opened} slow connections held, {churned} churned, {refused} refused; \
         {polls} requests reached the primary, {answers} status reads answered, longest poll gap {longest_gap:?}"
    );
    sim.shutdown().await;
}
