//! Several real daemons acting as one through a real etcd (Debian's `etcd-server`), against the
//! simulated pair: one failover call for one failure, made by the leader; a leader killed in
//! the middle of a failover whose episode another instance finishes without a second call; an
//! instance cut off from the primary that reports itself partitioned and causes nothing; etcd
//! gone (no action) and back (one decision); an etcd member lost (nothing changes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bt_watchdog::api::model::FailoverRole;
use bt_watchdog::sim::{FaultsPatch, SimSettings, Simulator};
use common::etcd::EtcdCluster;
use common::simulator;
use common::watchdog::{SECRET, Watchdog, Workspace, config_toml, metric, site_toml};

const LONG: Duration = Duration::from_secs(40);
const HOLD: &str = "BT_WATCHDOG_TEST_HOLD";
const CLUSTER: &str = "bt-test";
/// Short, so that a lost leader is replaced quickly; long enough for a member election.
const LEASE_TTL: Duration = Duration::from_secs(3);

/// Three watchdogs polling every 200 ms share one API account: more than the documented
/// 15,000 requests an hour allow (a real deployment gives each instance its own account, or
/// polls less often).
async fn pair() -> Simulator {
    simulator(SimSettings {
        hourly_limit: 1_000_000,
        per_second_limit: 1_000,
        ..SimSettings::default()
    })
    .await
}

fn calls(sim: &Simulator) -> Vec<(String, FailoverRole, bool)> {
    sim.with(|p| {
        p.failover_calls
            .iter()
            .map(|c| (c.appliance.clone(), c.role, c.data_sync_first))
            .collect()
    })
}

fn unhealthy() -> FaultsPatch {
    FaultsPatch {
        unhealthy: Some(true),
        ..Default::default()
    }
}

/// The graceful swap to west the engine makes when the primary east turns unhealthy.
fn one_swap() -> Vec<(String, FailoverRole, bool)> {
    vec![("west".to_string(), FailoverRole::Primary, true)]
}

async fn until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Watches for `window` that nothing is called (a "nothing happens" claim needs a window; it
/// is several times what a failover takes with this policy).
async fn no_call_for(sim: &Simulator, window: Duration, why: &str) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(calls(sim).is_empty(), "{why}: {:?}", calls(sim));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Instance {
    name: String,
    config: PathBuf,
    log: PathBuf,
    watchdog: Option<Watchdog>,
}

impl Instance {
    fn watchdog(&self) -> &Watchdog {
        self.watchdog.as_ref().expect("running")
    }

    async fn leads(&self) -> bool {
        let Some(watchdog) = &self.watchdog else {
            return false;
        };
        metric(
            &watchdog.metrics().await,
            "beyondtrust_watchdog_leader{site=\"hq\"}",
        ) == Some(1.0)
    }

    async fn cluster_up(&self) -> Option<f64> {
        metric(
            &self.watchdog().metrics().await,
            &format!(
                "beyondtrust_watchdog_cluster_up{{cluster=\"{CLUSTER}\",member=\"{}\"}}",
                self.name
            ),
        )
    }
}

/// The configuration of instance `name`: the site "hq" in auto mode, its own state directory,
/// its own source address when given, and `[cluster]` on `etcd`.
fn instance(
    ws: &Workspace,
    sim: &Simulator,
    etcd: &EtcdCluster,
    name: &str,
    source: Option<&str>,
) -> Instance {
    let secret = ws.write_secret(SECRET);
    let mut site = site_toml("hq", sim, &secret, "");
    if let Some(source) = source {
        site = site.replace(
            "\n[site.policy]",
            &format!("source_address = \"{source}\"\n\n[site.policy]"),
        );
    }
    let text = format!(
        "{}\n[cluster]\nendpoints = {}\nname = \"{CLUSTER}\"\ninstance = \"{name}\"\nlease_ttl = \"{}s\"\n",
        config_toml("auto", &ws.path(&format!("state-{name}")), &site),
        etcd.endpoints_toml(),
        LEASE_TTL.as_secs()
    );
    let config = ws.path(&format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    Instance {
        name: name.to_string(),
        config,
        log: ws.path(&format!("{name}.log")),
        watchdog: None,
    }
}

fn start(instance: &mut Instance, env: &[(&str, &str)]) {
    instance.watchdog = Some(Watchdog::start_with(
        &instance.config,
        &instance.log,
        "info",
        env,
    ));
}

async fn healthy(instance: &Instance) {
    instance
        .watchdog()
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
}

/// Waits until exactly one of the running instances leads the site; its index.
async fn the_leader(instances: &[Instance]) -> usize {
    let end = Instant::now() + LONG;
    loop {
        let mut leaders = Vec::new();
        for (index, instance) in instances.iter().enumerate() {
            if instance.leads().await {
                leaders.push(index);
            }
        }
        assert!(
            leaders.len() <= 1,
            "two instances lead the site at once: {leaders:?}"
        );
        if let [leader] = leaders[..] {
            return leader;
        }
        assert!(
            Instant::now() < end,
            "no instance came to lead the site:\n{}",
            logs(instances)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn logs(instances: &[Instance]) -> String {
    instances
        .iter()
        .map(|i| {
            format!(
                "--- {} ---\n{}",
                i.name,
                std::fs::read_to_string(&i.log).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn called(instance: &Instance) -> bool {
    std::fs::read_to_string(&instance.log)
        .unwrap_or_default()
        .contains("calling POST /failover-role")
}

async fn three(
    ws: &Workspace,
    sim: &Simulator,
    etcd: &EtcdCluster,
    sources: [Option<&str>; 3],
) -> Vec<Instance> {
    let mut instances: Vec<Instance> = ["w1", "w2", "w3"]
        .iter()
        .zip(sources)
        .map(|(name, source)| instance(ws, sim, etcd, name, source))
        .collect();
    for instance in &mut instances {
        start(instance, &[]);
    }
    for instance in &instances {
        healthy(instance).await;
    }
    instances
}

#[tokio::test(flavor = "multi_thread")]
async fn the_primary_dies_one_call_by_the_leader() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let instances = three(&ws, &sim, &etcd, [None; 3]).await;
    let leader = the_leader(&instances).await;
    sim.set_faults(0, unhealthy());
    until(LONG, "the failover call", || !calls(&sim).is_empty()).await;
    instances[leader]
        .watchdog()
        .wait_for_site(LONG, "the failover to end", |s| {
            s["last_failover"]["outcome"] == "success"
        })
        .await;
    // The others keep observing for a while: nothing more is called.
    for instance in &instances {
        instance
            .watchdog()
            .wait_for_site(LONG, "west seen as primary", |s| {
                s["appliances"][1]["failover_role"] == "primary"
            })
            .await;
    }
    assert_eq!(calls(&sim), one_swap(), "{}", logs(&instances));
    for (index, instance) in instances.iter().enumerate() {
        assert_eq!(
            called(instance),
            index == leader,
            "only the leader calls:\n{}",
            logs(&instances)
        );
    }
    let leader_log = std::fs::read_to_string(&instances[leader].log).unwrap();
    assert!(
        leader_log.contains("intent at etcd revision"),
        "{leader_log}"
    );
    let site = instances[(leader + 1) % 3].watchdog().site().await;
    assert_eq!(site["cluster"]["role"], "follower", "{site:#}");
    assert_eq!(
        site["cluster"]["leader"], instances[leader].name,
        "{site:#}"
    );
    // A leader stopped gracefully gives its lease back; another instance takes the site.
    let mut instances = instances;
    instances[leader].watchdog.as_mut().unwrap().stop();
    let stopped_log = std::fs::read_to_string(&instances[leader].log).unwrap();
    assert!(stopped_log.contains("lease given back"), "{stopped_log}");
    instances[leader].watchdog = None;
    let successor = the_leader(&instances).await;
    assert_ne!(successor, leader);
}

/// The leader is killed with SIGKILL at `hold` of an automatic failover; another instance
/// leads then, reads the intent from etcd and finishes that episode: exactly one call in all
/// (the former leader's if it left, else the successor's, sent once after the roles show it
/// never took effect), never a second.
async fn the_leader_killed_during_a_failover(hold: &str) {
    let etcd = EtcdCluster::start(3);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut instances: Vec<Instance> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| instance(&ws, &sim, &etcd, name, None))
        .collect();
    // w1 first, alone, so that it leads; only it stops at the hold.
    start(&mut instances[0], &[(HOLD, hold)]);
    healthy(&instances[0]).await;
    assert_eq!(the_leader(&instances).await, 0);
    for instance in &mut instances[1..] {
        start(instance, &[]);
    }
    for instance in &instances {
        healthy(instance).await;
    }
    sim.set_faults(0, unhealthy());
    instances[0]
        .watchdog()
        .wait_for_log(LONG, &format!("test hold {hold}"))
        .await;
    let sent = calls(&sim);
    instances[0].watchdog.as_mut().unwrap().kill9();
    instances[0].watchdog = None;
    let successor = the_leader(&instances).await;
    assert_ne!(successor, 0);
    let site = instances[successor]
        .watchdog()
        .wait_for_site(LONG, "the failover to end", |s| {
            s["failover_in_progress"].is_null() && s["last_failover"].is_object()
        })
        .await;
    let said: Vec<String> = site["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        said.iter().any(|d| d.contains("resumed episode")),
        "{said:#?}"
    );
    // Well past what a second decision would take: still the one call.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        assert_eq!(calls(&sim), one_swap(), "{}", logs(&instances));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(site["last_failover"]["outcome"], "success", "{site:#}");
    assert!(
        site["cooldown_remaining_seconds"].as_f64().unwrap() > 500.0,
        "the cooldown written with the intent holds: {site:#}"
    );
    if hold == "call-answered" {
        assert_eq!(sent, one_swap(), "the former leader's call left");
        assert!(!called(&instances[successor]), "{}", logs(&instances));
    } else {
        assert!(
            sent.is_empty(),
            "the former leader's call never left: {sent:?}"
        );
        assert!(
            called(&instances[successor]),
            "the successor sends the call that never left: {}",
            logs(&instances)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_killed_after_its_call_another_finishes_the_episode_without_a_second_call() {
    the_leader_killed_during_a_failover("call-answered").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_killed_after_its_intent_another_sends_the_call_once() {
    the_leader_killed_during_a_failover("intent-written").await;
}

/// The leader wrote its intent and waits on the pre-failover hook (it may, up to the hook's
/// timeout) when it is frozen for longer than its lease: another instance takes the site,
/// resumes that intent and sends its call. When the former leader runs again and its hook
/// answers "proceed", its call must not leave: it no longer leads. (Before the lease was
/// checked again at the call, this made two calls for one failure.)
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_lost_its_lease_while_its_call_waited_never_sends_it() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut instances: Vec<Instance> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| instance(&ws, &sim, &etcd, name, None))
        .collect();
    // Only w1 has a hook, and it answers "proceed" once the test says so.
    let release = ws.path("release");
    let hook = format!(
        "\n[pre_failover]\ncommand = [\"/bin/sh\", \"-c\", \"cat > /dev/null; while [ ! -e {} ]; do sleep 0.05; done; exit 0\"]\ntimeout = \"120s\"\n",
        release.display()
    );
    let mut text = std::fs::read_to_string(&instances[0].config).unwrap();
    text.push_str(&hook);
    std::fs::write(&instances[0].config, text).unwrap();
    start(&mut instances[0], &[]);
    healthy(&instances[0]).await;
    assert_eq!(the_leader(&instances).await, 0);
    for instance in &mut instances[1..] {
        start(instance, &[]);
    }
    for instance in &instances {
        healthy(instance).await;
    }
    sim.set_faults(0, unhealthy());
    // The intent is in etcd and the call waits on the hook.
    instances[0]
        .watchdog()
        .wait_for_log(LONG, "calling POST /failover-role")
        .await;
    instances[0].watchdog().signal("STOP");
    // Another instance leads, resumes the intent, and sends its call once.
    until(LONG, "the successor's call", || !calls(&sim).is_empty()).await;
    assert_eq!(calls(&sim), one_swap());
    // The former leader runs again, and its hook says "proceed".
    std::fs::write(&release, "").unwrap();
    instances[0].watchdog().signal("CONT");
    until(
        LONG,
        "the former leader to give up its call, or to make it",
        || {
            calls(&sim).len() > 1
                || std::fs::read_to_string(&instances[0].log)
                    .unwrap_or_default()
                    .contains("not calling POST /failover-role after all")
        },
    )
    .await;
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        assert_eq!(calls(&sim), one_swap(), "{}", logs(&instances));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The former leader tells nothing untrue of the episode it lost: the failover was carried
    // out (by its successor), not "not carried out", and it counts no failover of its own.
    instances[0]
        .watchdog()
        .wait_for_log(LONG, "the leader's now")
        .await;
    let metrics = instances[0].watchdog().metrics().await;
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("beyondtrust_watchdog_failovers_total") && !l.ends_with(" 0"))
        .collect();
    assert!(counted.is_empty(), "{counted:?}");
    let log = std::fs::read_to_string(&instances[0].log).unwrap_or_default();
    assert!(!log.contains("not carried out"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_cut_off_from_the_primary_reports_a_partition_and_nothing_happens() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut instances: Vec<Instance> = ["w1", "w2", "w3"]
        .iter()
        .zip(sources)
        .map(|(name, source)| instance(&ws, &sim, &etcd, name, Some(source)))
        .collect();
    // The cut-off instance leads: the hardest case (the one that would act).
    start(&mut instances[2], &[]);
    healthy(&instances[2]).await;
    assert_eq!(the_leader(&instances).await, 2);
    for instance in &mut instances[..2] {
        start(instance, &[]);
    }
    for instance in &instances {
        healthy(instance).await;
    }
    sim.set_faults(
        0,
        FaultsPatch {
            ignored_sources: Some(vec!["127.0.0.3".parse().unwrap()]),
            ..Default::default()
        },
    );
    let partitioned = "beyondtrust_watchdog_partitioned{appliance=\"east\",site=\"hq\"}";
    let end = Instant::now() + LONG;
    while metric(&instances[2].watchdog().metrics().await, partitioned) != Some(1.0) {
        assert!(Instant::now() < end, "{}", logs(&instances));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    no_call_for(
        &sim,
        Duration::from_secs(5),
        "one instance's broken path caused a failover",
    )
    .await;
    let site = instances[2].watchdog().site().await;
    assert_eq!(site["cluster"]["role"], "leader", "{site:#}");
    assert_eq!(
        site["cluster"]["vantage"][0]["partitioned"], true,
        "{site:#}"
    );
    assert_eq!(
        site["cluster"]["vantage"][0]["failing_views"], 1,
        "{site:#}"
    );
    for instance in &instances[..2] {
        let metrics = instance.watchdog().metrics().await;
        assert_eq!(metric(&metrics, partitioned), Some(0.0));
        let site = instance.watchdog().site().await;
        assert_eq!(site["state"], "healthy", "{site:#}");
    }
    let log = std::fs::read_to_string(&instances[2].log).unwrap();
    assert!(log.contains("partitioned"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_etcd_nothing_acts_and_when_it_returns_the_decision_is_made_once() {
    let mut etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let instances = three(&ws, &sim, &etcd, [None; 3]).await;
    the_leader(&instances).await;
    etcd.kill(0);
    for instance in &instances {
        let end = Instant::now() + LONG;
        while instance.cluster_up().await != Some(0.0) {
            assert!(Instant::now() < end, "{}", logs(&instances));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    sim.set_faults(0, unhealthy());
    for instance in &instances {
        instance
            .watchdog()
            .wait_for_site(LONG, "east seen failing", |s| {
                s["appliances"][0]["healthy"] == false
            })
            .await;
        assert!(!instance.leads().await);
    }
    no_call_for(
        &sim,
        Duration::from_secs(4),
        "an instance acted without etcd",
    )
    .await;
    let site = instances[0].watchdog().site().await;
    assert_eq!(site["cluster"]["role"], "lost", "{site:#}");
    // The exporter keeps working and says why.
    assert!(
        site["cluster"]["reason"]
            .as_str()
            .unwrap()
            .contains("etcd cannot be reached"),
        "{site:#}"
    );
    etcd.restart(0);
    etcd.wait_healthy(LONG);
    until(LONG, "the failover call once etcd is back", || {
        !calls(&sim).is_empty()
    })
    .await;
    let leader = the_leader(&instances).await;
    instances[leader]
        .watchdog()
        .wait_for_site(LONG, "the failover to end", |s| {
            s["last_failover"]["outcome"] == "success"
        })
        .await;
    for instance in &instances {
        instance
            .watchdog()
            .wait_for_site(LONG, "west seen as primary", |s| {
                s["appliances"][1]["failover_role"] == "primary"
            })
            .await;
    }
    assert_eq!(calls(&sim), one_swap(), "{}", logs(&instances));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_etcd_member_lost_changes_nothing() {
    let mut etcd = EtcdCluster::start(3);
    let sim = pair().await;
    let ws = Workspace::new();
    let instances = three(&ws, &sim, &etcd, [None; 3]).await;
    let leader = the_leader(&instances).await;
    // The first endpoint: the one every instance talks to first.
    etcd.kill(0);
    // Two lease TTLs: the leader keeps the site all along, and nobody else takes it.
    let end = Instant::now() + LEASE_TTL * 2;
    while Instant::now() < end {
        assert_eq!(the_leader(&instances).await, leader, "{}", logs(&instances));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for instance in &instances {
        assert_eq!(instance.cluster_up().await, Some(1.0));
        let log = std::fs::read_to_string(&instance.log).unwrap();
        assert!(!log.contains("no longer leads"), "{log}");
    }
    sim.set_faults(0, unhealthy());
    until(LONG, "the failover call", || !calls(&sim).is_empty()).await;
    instances[leader]
        .watchdog()
        .wait_for_site(LONG, "the failover to end", |s| {
            s["last_failover"]["outcome"] == "success"
        })
        .await;
    assert_eq!(calls(&sim), one_swap(), "{}", logs(&instances));
    assert!(called(&instances[leader]));
}

/// Runs the CLI against one instance's daemon (its own control socket).
fn cli(instance: &Instance, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(common::watchdog::BINARY)
        .args(args)
        .arg("--config")
        .arg(&instance.config)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_given_to_any_instance_are_carried_out_by_the_leader() {
    let mut etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let instances = three(&ws, &sim, &etcd, [None; 3]).await;
    let leader = the_leader(&instances).await;
    let follower = &instances[(leader + 1) % 3];
    // A pause given to a follower pauses the site where it counts: on the leader.
    let (ok, said) = cli(
        follower,
        &["pause", "--site", "hq", "--reason", "upgrading east"],
    );
    assert!(ok, "{said}");
    let site = instances[leader]
        .watchdog()
        .wait_for_site(LONG, "the leader paused", |s| s["state"] == "paused")
        .await;
    assert_eq!(site["pause"]["reason"], "upgrading east", "{site:#}");
    sim.set_faults(0, unhealthy());
    no_call_for(
        &sim,
        Duration::from_secs(3),
        "a paused site was failed over",
    )
    .await;
    let (ok, said) = cli(follower, &["resume", "--site", "hq"]);
    assert!(ok, "{said}");
    instances[leader]
        .watchdog()
        .wait_for_site(LONG, "the leader resumed", |s| s["pause"].is_null())
        .await;
    until(LONG, "the failover after the resume", || {
        !calls(&sim).is_empty()
    })
    .await;
    instances[leader]
        .watchdog()
        .wait_for_site(LONG, "the failover to end", |s| {
            s["last_failover"]["outcome"] == "success"
        })
        .await;
    assert_eq!(calls(&sim), one_swap());
    // Without etcd, a manual failover through any instance is refused, and nothing is sent.
    etcd.kill(0);
    for instance in &instances {
        let end = Instant::now() + LONG;
        while instance.cluster_up().await != Some(0.0) {
            assert!(Instant::now() < end, "{}", logs(&instances));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (ok, said) = cli(
        &instances[leader],
        &["failover", "--site", "hq", "--to", "east", "--confirm"],
    );
    assert!(!ok, "{said}");
    assert!(said.contains("--standalone"), "{said}");
    assert_eq!(calls(&sim), one_swap(), "nothing more was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_failover_is_refused_while_another_instance_leads() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut running = instance(&ws, &sim, &etcd, "w1", None);
    start(&mut running, &[]);
    healthy(&running).await;
    the_leader(std::slice::from_ref(&running)).await;
    // A second instance's host, its daemon stopped: the operator tries to act from there.
    let stopped = instance(&ws, &sim, &etcd, "w2", None);
    let (ok, said) = cli(
        &stopped,
        &[
            "failover",
            "--site",
            "hq",
            "--to",
            "west",
            "--confirm",
            "--standalone",
        ],
    );
    assert!(!ok, "{said}");
    assert!(said.contains("instance w1"), "{said}");
    assert!(said.contains("Nothing was changed"), "{said}");
    no_call_for(
        &sim,
        Duration::from_secs(1),
        "a standalone failover acted beside the leader",
    )
    .await;
}

/// The instances' configurations may list a site's two appliances in different orders (each
/// host's file is its own). A manual failover given to a follower names its target; the leader
/// must act on that name, not on the follower's position of it in its own list. (Routed as
/// a position, `--to east` with east already primary promoted west on the leader: a failover
/// nobody asked for; `--to west` was refused as "east is already the primary".)
#[tokio::test(flavor = "multi_thread")]
async fn a_routed_failover_acts_on_the_appliance_named_whatever_the_order_of_the_followers_list() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut leader = instance(&ws, &sim, &etcd, "w1", None);
    start(&mut leader, &[]);
    healthy(&leader).await;
    the_leader(std::slice::from_ref(&leader)).await;
    let mut follower = instance(&ws, &sim, &etcd, "w2", None);
    // w2 lists west first.
    let text = std::fs::read_to_string(&follower.config).unwrap();
    let east = format!("  {{ name = \"east\", url = \"{}\" }},\n", sim.url(0));
    let west = format!("  {{ name = \"west\", url = \"{}\" }},\n", sim.url(1));
    let swapped = text.replace(&format!("{east}{west}"), &format!("{west}{east}"));
    assert_ne!(
        swapped, text,
        "the appliances are listed in the other order"
    );
    std::fs::write(&follower.config, swapped).unwrap();
    start(&mut follower, &[]);
    healthy(&follower).await;
    let both = [leader, follower];
    assert_eq!(the_leader(&both).await, 0);
    // East is the primary already: nothing to do.
    let (ok, said) = cli(
        &both[1],
        &["failover", "--site", "hq", "--to", "east", "--confirm"],
    );
    no_call_for(
        &sim,
        Duration::from_secs(2),
        &format!("a failover to the primary east made calls ({said})"),
    )
    .await;
    assert!(!ok, "{said}");
    assert!(said.contains("east is already the primary"), "{said}");
    // To west: west is promoted, and only west is called.
    let (_, said) = cli(
        &both[1],
        &["failover", "--site", "hq", "--to", "west", "--confirm"],
    );
    assert!(said.contains("Started"), "{said}\n{}", logs(&both));
    both[0]
        .watchdog()
        .wait_for_site(LONG, "west primary", |s| {
            s["appliances"][1]["failover_role"] == "primary"
        })
        .await;
    let made = calls(&sim);
    assert!(
        !made.is_empty() && made.iter().all(|(appliance, _, _)| appliance == "west"),
        "{made:?}"
    );
}

/// What a follower says of the site is the site's own memory (pause, cooldown, the failover in
/// progress and the last one), not what its observing engine never did: a failover given to a
/// follower is followed to its end through that follower (it said "the daemon has no record of
/// its end" and exited as not done while the leader carried it out), and `status` on a follower
/// of a paused site says it is paused.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_tells_the_sites_memory_and_follows_a_routed_failover_to_its_end() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut instances: Vec<Instance> = ["w1", "w2"]
        .iter()
        .map(|name| instance(&ws, &sim, &etcd, name, None))
        .collect();
    start(&mut instances[0], &[]);
    healthy(&instances[0]).await;
    assert_eq!(the_leader(&instances).await, 0);
    start(&mut instances[1], &[]);
    healthy(&instances[1]).await;
    let (ok, said) = cli(
        &instances[1],
        &["pause", "--site", "hq", "--reason", "upgrading east"],
    );
    assert!(ok, "{said}");
    let site = instances[1]
        .watchdog()
        .wait_for_site(LONG, "the follower to say the site is paused", |s| {
            s["pause"]["reason"] == "upgrading east"
        })
        .await;
    assert_eq!(site["cluster"]["role"], "follower", "{site:#}");
    let (ok, said) = cli(&instances[1], &["resume", "--site", "hq"]);
    assert!(ok, "{said}");
    instances[1]
        .watchdog()
        .wait_for_site(LONG, "the follower to say the site is resumed", |s| {
            s["pause"].is_null()
        })
        .await;
    let (ok, said) = cli(
        &instances[1],
        &["failover", "--site", "hq", "--to", "west", "--confirm"],
    );
    assert!(ok, "{said}\n{}", logs(&instances));
    assert!(said.contains("Done: west is primary"), "{said}");
    let site = instances[1].watchdog().site().await;
    assert_eq!(site["last_failover"]["outcome"], "success", "{site:#}");
    assert!(
        site["cooldown_remaining_seconds"].as_f64().unwrap() > 60.0,
        "{site:#}"
    );
    assert_eq!(
        calls(&sim),
        vec![("west".to_string(), FailoverRole::Primary, false)]
    );
}

/// A reply left under `replies/` (its sender died before deleting it, or it was written by
/// hand) is not the answer to a new command that happens to get the same id: a restarted
/// instance with the same process id (PID 1 in a container) numbers its commands from 1
/// again. Believed, the operator was told "refused" while the leader carried the pause out.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_from_before_a_command_is_not_its_answer() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut instances: Vec<Instance> = ["w1", "w2"]
        .iter()
        .map(|name| instance(&ws, &sim, &etcd, name, None))
        .collect();
    start(&mut instances[0], &[]);
    healthy(&instances[0]).await;
    assert_eq!(the_leader(&instances).await, 0);
    start(&mut instances[1], &[]);
    healthy(&instances[1]).await;
    // Whatever the id is made of (the process id, once; this incarnation's lease now), a reply
    // already under it is not the answer.
    let pid = instances[1].watchdog().pid();
    let log = std::fs::read_to_string(&instances[1].log).unwrap();
    let lease = log
        .split("instance w2 joined (lease ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the lease in the log")
        .to_string();
    for n in 1..=3 {
        for id in [format!("w2-{pid}-{n}"), format!("w2-{lease}-{n}")] {
            etcd.put(
                &format!("/{CLUSTER}/sites/hq/replies/{id}"),
                r#"{"Err":"a stale answer to another command"}"#,
            );
        }
    }
    let (ok, said) = cli(
        &instances[1],
        &["pause", "--site", "hq", "--reason", "upgrading east"],
    );
    assert!(ok, "{said}");
    assert!(!said.contains("stale"), "{said}");
    instances[0]
        .watchdog()
        .wait_for_site(LONG, "the leader paused", |s| s["state"] == "paused")
        .await;
}

/// An instance whose lease expired (frozen, or cut off from etcd for longer than the lease)
/// loses its view with it; once it joins again it publishes its view again, even though the
/// view did not change meanwhile. (It published only changes: it counted as a live member
/// without a view, so the leader, cut off from east while that instance saw east fine, was
/// never told it was partitioned.)
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_joins_again_publishes_its_view_again() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut instances: Vec<Instance> = [("w1", "127.0.0.1"), ("w2", "127.0.0.2")]
        .iter()
        .map(|(name, source)| instance(&ws, &sim, &etcd, name, Some(source)))
        .collect();
    start(&mut instances[0], &[]);
    healthy(&instances[0]).await;
    assert_eq!(the_leader(&instances).await, 0);
    start(&mut instances[1], &[]);
    healthy(&instances[1]).await;
    // w2 frozen for longer than its lease: its membership and its view go.
    instances[1].watchdog().signal("STOP");
    tokio::time::sleep(LEASE_TTL * 2).await;
    instances[1].watchdog().signal("CONT");
    until(LONG, "w2 to join again with a new lease", || {
        std::fs::read_to_string(&instances[1].log)
            .unwrap_or_default()
            .matches("instance w2 joined")
            .count()
            == 2
    })
    .await;
    // The leader loses its path to east; w2 sees east fine: the leader is partitioned.
    sim.set_faults(
        0,
        FaultsPatch {
            ignored_sources: Some(vec!["127.0.0.1".parse().unwrap()]),
            ..Default::default()
        },
    );
    let partitioned = "beyondtrust_watchdog_partitioned{appliance=\"east\",site=\"hq\"}";
    let end = Instant::now() + LONG;
    while metric(&instances[0].watchdog().metrics().await, partitioned) != Some(1.0) {
        assert!(
            Instant::now() < end,
            "the leader never said it was partitioned: {}\n{}",
            instances[0].watchdog().site().await["cluster"],
            logs(&instances)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls(&sim).is_empty(), "{:?}", calls(&sim));
}

/// A leader that lost the site and leads it again (frozen or cut off from etcd for longer than
/// its lease, between two of its polls) reads the site's memory again: meanwhile another
/// instance may have led and changed it (here: paused the site, then stopped). It kept the
/// memory it had, so the pause was lost on takeover (and a cooldown, or an episode, would be).
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_leads_again_reads_the_memory_another_leader_left() {
    let etcd = EtcdCluster::start(1);
    let sim = pair().await;
    let ws = Workspace::new();
    let mut instances: Vec<Instance> = ["w1", "w2"]
        .iter()
        .map(|name| instance(&ws, &sim, &etcd, name, None))
        .collect();
    // w1 polls seldom: the whole sequence fits between two of its polls.
    let text = std::fs::read_to_string(&instances[0].config)
        .unwrap()
        .replace("poll_interval = \"200ms\"", "poll_interval = \"20s\"")
        .replace("health_interval = \"200ms\"", "health_interval = \"20s\"")
        .replace("stall_tolerance = \"3s\"", "stall_tolerance = \"2m\"");
    std::fs::write(&instances[0].config, text).unwrap();
    start(&mut instances[0], &[]);
    healthy(&instances[0]).await;
    assert_eq!(the_leader(&instances).await, 0);
    start(&mut instances[1], &[]);
    healthy(&instances[1]).await;
    instances[0].watchdog().signal("STOP");
    instances[1]
        .watchdog()
        .wait_for_log(LONG, "this instance (w2) now leads the site")
        .await;
    let (ok, said) = cli(
        &instances[1],
        &["pause", "--site", "hq", "--reason", "upgrading east"],
    );
    assert!(ok, "{said}");
    instances[1].watchdog.as_mut().unwrap().stop();
    instances[1].watchdog = None;
    instances[0].watchdog().signal("CONT");
    until(LONG, "w1 to lead again", || {
        std::fs::read_to_string(&instances[0].log)
            .unwrap_or_default()
            .matches("this instance (w1) now leads the site")
            .count()
            == 2
    })
    .await;
    let site = instances[0]
        .watchdog()
        .wait_for_site(LONG, "the pause w2 left", |s| {
            s["pause"]["reason"] == "upgrading east" && s["cluster"]["role"] == "leader"
        })
        .await;
    assert_eq!(site["state"], "paused", "{site:#}");
}
