//! Several watchdogs acting as one, coordinated through etcd (`[cluster]`).
//!
//! - [`etcd`]: etcd's v3 API through its JSON gateway;
//! - [`vote`]: the multi-vantage vote, pure;
//! - here: this instance's membership (one lease, kept alive), a cache of the cluster's keys
//!   kept current by a watch, the campaign for each site's leadership, and the guarded write
//!   of a site's memory.
//!
//! The keys, under `/<name>/`:
//!
//! | key | value | lease |
//! | --- | --- | --- |
//! | `members/<instance>` | who and since when | the instance's |
//! | `sites/<site>/leader` | the leading instance | the leader's |
//! | `sites/<site>/memory` | the engine's memory (as the state file) | none: it outlives everyone |
//! | `sites/<site>/views/<instance>` | its [`vote::Vantage`] | the instance's |
//! | `sites/<site>/requests/<id>`, `replies/<id>` | operator commands routed to the leader | the sender's |
//!
//! Fail safe, decided here once: this instance leads a site only while its lease is alive by
//! its own reckoning (the last keep-alive *sent* plus the TTL etcd granted, which is never later
//! than etcd's own expiry), its cache of the keys is current, and the leader key holds its
//! name and lease. Every write of a site's memory is a transaction that compares the leader
//! key with this instance's name and lease: a former leader whose lease expired cannot write
//! an intent, so it cannot make a call.

pub mod etcd;
pub mod vote;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::config::ClusterConfig;
use etcd::{Compare, Etcd, EtcdError, Event, Kv, Op, WatchBatch};

/// Bound on each etcd request: well under a keep-alive period, so that a silent member cannot
/// make this instance miss its own lease.
fn request_timeout(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

fn site_key(prefix: &str, site: &str, rest: &str) -> String {
    format!("{prefix}sites/{site}/{rest}")
}

/// The instance that leads `site` now, read once from etcd; `None` when none does. For
/// `failover --standalone`, which runs without the membership task: acting beside a live
/// leader would be two actors on one pair, on a memory (intent, cooldown) that is not the
/// cluster's.
pub async fn current_leader(
    config: &ClusterConfig,
    site: &str,
) -> Result<Option<String>, EtcdError> {
    let etcd = Etcd::new(config, request_timeout(config.lease_ttl))?;
    let key = site_key(&format!("/{}/", config.name), site, "leader");
    let (_, leader) = etcd.get(&key).await?;
    Ok(leader.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
}

/// Whether this instance may act for a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    Leader,
    /// Another instance leads (named when known), or nobody does right now.
    Follower {
        leader: Option<String>,
    },
    /// etcd cannot be reached, or this instance's lease is gone: nobody can be sure who leads.
    Lost {
        reason: String,
    },
}

/// A guarded write that did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SaveError {
    #[error("this instance ({instance}) does not lead site {site}{}", leader.as_ref().map(|l| format!(" (the leader is {l})")).unwrap_or_else(|| " (no instance leads it right now)".to_string()))]
    NotLeader {
        instance: String,
        site: String,
        leader: Option<String>,
    },
    #[error("{0}")]
    Etcd(String),
}

#[derive(Debug, Clone, Default)]
struct Shared {
    lease: Option<i64>,
    /// Until when the lease is alive by this instance's reckoning.
    valid_until: Option<Instant>,
    /// The keys under the prefix, as of the last range and the watch's events since.
    cache: BTreeMap<String, Kv>,
    /// Whether the cache is current (a watch is running on it).
    synced: bool,
    /// Since when it is not (a watch that ended is replaced at once, but not instantly).
    stale_since: Option<Instant>,
    /// Whether it was ever read.
    ever_synced: bool,
    /// Whether etcd answered the last request.
    up: bool,
    last_error: Option<String>,
    sites: BTreeSet<String>,
    /// Where operator commands routed to this instance go, per site it may lead.
    routes: BTreeMap<String, tokio::sync::mpsc::Sender<Routed>>,
}

/// An operator command another instance routed to this one, as the site's leader.
#[derive(Debug)]
pub struct Routed {
    pub id: String,
    pub command: crate::engine::Command,
    /// The site's two appliances as the sender's configuration lists them: the command's
    /// slots (a manual failover's target) are positions in that list, not in the leader's.
    pub appliances: [String; 2],
}

/// A routed command as it travels through etcd: the command with the sender's names for its
/// slots.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RoutedRequest {
    command: crate::engine::Command,
    appliances: [String; 2],
}

impl Routed {
    /// The command in the leader's terms: a slot is a position in the sender's list of the
    /// site's appliances, and each host's configuration may list them in its own order. Refused
    /// when the two configurations do not name the same two appliances (then nobody can say
    /// which one the operator meant).
    pub fn in_terms_of(&self, leader: &[String; 2]) -> Result<crate::engine::Command, String> {
        let sender = &self.appliances;
        let same = (sender[0] == leader[0] && sender[1] == leader[1])
            || (sender[0] == leader[1] && sender[1] == leader[0]);
        if !same {
            return Err(format!(
                "not carried out: the instance the command was given to names this site's appliances {} and {}, the leader {} and {}; give every instance the same appliance names",
                sender[0], sender[1], leader[0], leader[1]
            ));
        }
        let mut command = self.command.clone();
        if let crate::engine::Command::Failover(request) = &mut command {
            let named = &sender[request.target.min(1)];
            request.target = usize::from(leader[0] != *named);
        }
        Ok(command)
    }
}

/// What the leader answers to a routed command: its site loop's answer, or why it did not
/// carry it out.
pub type RoutedAnswer = Result<crate::control::protocol::OperatorAnswer, String>;

/// How long a routed command waits for the leader to answer, and again once the leader took
/// it up (the control socket's server waits 30s in all).
const ROUTE_TIMEOUT: Duration = Duration::from_secs(8);

/// What `/status` and the metrics say about the cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub instance: String,
    pub up: bool,
    pub members: Vec<String>,
    pub error: Option<String>,
    pub requests: u64,
}

pub struct Cluster {
    config: ClusterConfig,
    etcd: Etcd,
    shared: Mutex<Shared>,
    wake: Notify,
    prefix: String,
    /// The membership task, awaited on shutdown so that the lease is given back before exit.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Connects nothing yet: the membership task does, and keeps trying while etcd is away
    /// (a watchdog whose etcd is down still polls, exports and explains; it only never acts).
    pub fn start(
        config: ClusterConfig,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Cluster>, EtcdError> {
        let etcd = Etcd::new(&config, request_timeout(config.lease_ttl))?;
        let cluster = Arc::new(Cluster {
            prefix: format!("/{}/", config.name),
            config,
            etcd,
            shared: Mutex::new(Shared::default()),
            wake: Notify::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(cluster.clone().membership(stop));
        *cluster.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(cluster)
    }

    /// Waits (briefly) for the membership task to give the lease back after `stop`: the
    /// other instances then take this one's sites at once rather than after a TTL.
    pub async fn finish(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(request_timeout(self.config.lease_ttl) * 2, task).await;
        }
    }

    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn member_key(&self, instance: &str) -> String {
        format!("{}members/{instance}", self.prefix)
    }

    fn site_key(&self, site: &str, rest: &str) -> String {
        site_key(&self.prefix, site, rest)
    }

    /// A site's handle; the membership task campaigns for its leadership from now on.
    pub fn site(self: &Arc<Self>, site: &str) -> ClusterSite {
        self.lock().sites.insert(site.to_string());
        self.wake.notify_one();
        ClusterSite {
            cluster: self.clone(),
            site: site.to_string(),
        }
    }

    pub fn status(&self) -> ClusterStatus {
        let shared = self.lock();
        ClusterStatus {
            name: self.config.name.clone(),
            instance: self.config.instance.clone(),
            up: self.alive(&shared),
            members: self.members(&shared),
            error: shared.last_error.clone(),
            requests: self
                .etcd
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This instance's lease is alive, and its cache current. A cache being read again after
    /// its watch ended counts as current for a short while: the writes that matter are
    /// guarded by etcd itself, and dropping the lead at every reconnection would rebuild the
    /// engine (and forget its streaks) for nothing.
    fn alive(&self, shared: &Shared) -> bool {
        let current = shared.synced
            || (shared.ever_synced
                && shared
                    .stale_since
                    .is_some_and(|since| since.elapsed() < self.config.lease_ttl));
        shared.up
            && current
            && shared.lease.is_some()
            && shared
                .valid_until
                .is_some_and(|until| Instant::now() < until)
    }

    fn members(&self, shared: &Shared) -> Vec<String> {
        let prefix = self.member_key("");
        shared
            .cache
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    fn note_error(&self, error: &EtcdError) {
        let text = error.to_string();
        let mut shared = self.lock();
        if shared.up || shared.last_error.as_deref() != Some(text.as_str()) {
            tracing::warn!(
                "cluster: etcd does not answer: {text}; no site is led by this instance until it does"
            );
        }
        shared.up = false;
        shared.last_error = Some(text);
    }

    /// The cache is no longer kept current: read it again.
    fn stale(&self) {
        let mut shared = self.lock();
        if shared.synced {
            shared.synced = false;
            shared.stale_since = Some(Instant::now());
        }
    }

    fn note_answer(&self) {
        let mut shared = self.lock();
        if !shared.up {
            tracing::info!("cluster: etcd answers");
        }
        shared.up = true;
        shared.last_error = None;
    }

    /// The membership task: the lease and its keep-alives, the cache and its watch, the
    /// campaigns. Runs until `stop`, then gives the lease back so that another instance
    /// takes over at once instead of after a TTL.
    async fn membership(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let ttl = self.config.lease_ttl;
        let period = ttl / 3;
        let mut next_keep_alive = Instant::now();
        let mut watcher: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let now = Instant::now();
            let lease = self.lock().lease;
            match lease {
                None => match self.etcd.grant(ttl).await {
                    Ok(id) => {
                        self.note_answer();
                        {
                            let mut shared = self.lock();
                            shared.lease = Some(id);
                            shared.valid_until = Some(now + ttl);
                        }
                        tracing::info!(
                            "cluster {}: instance {} joined (lease {id:x}, TTL {}s)",
                            self.config.name,
                            self.config.instance,
                            ttl.as_secs()
                        );
                        next_keep_alive = now + period;
                        self.announce(id).await;
                    }
                    Err(e) => {
                        self.note_error(&e);
                        next_keep_alive = now + period;
                    }
                },
                Some(id) if now >= next_keep_alive => {
                    next_keep_alive = now + period;
                    match self.etcd.keep_alive(id).await {
                        Ok(Some(granted)) => {
                            let was_down = !self.lock().up;
                            self.note_answer();
                            self.lock().valid_until = Some(now + granted);
                            if was_down {
                                // The watch may have died with the connection: read again.
                                if let Some(task) = watcher.take() {
                                    task.abort();
                                }
                                self.stale();
                            }
                        }
                        Ok(None) => {
                            self.note_answer();
                            tracing::warn!(
                                "cluster: this instance's lease expired (etcd was out of reach for longer than lease_ttl); its leaderships and views are gone, joining again"
                            );
                            let mut shared = self.lock();
                            shared.lease = None;
                            shared.valid_until = None;
                            drop(shared);
                            next_keep_alive = now;
                            continue;
                        }
                        Err(e) => self.note_error(&e),
                    }
                }
                Some(_) => {}
            }
            let (up, synced, lease) = {
                let shared = self.lock();
                (shared.up, shared.synced, shared.lease)
            };
            if up && (!synced || watcher.as_ref().is_none_or(|t| t.is_finished())) {
                match self.etcd.range_prefix(&self.prefix).await {
                    Ok((revision, kvs)) => {
                        {
                            let mut shared = self.lock();
                            shared.cache = kvs.into_iter().map(|kv| (kv.key_text(), kv)).collect();
                            shared.synced = true;
                            shared.ever_synced = true;
                            shared.stale_since = None;
                        }
                        match self.etcd.watch(&self.prefix, revision + 1).await {
                            Ok(stream) => {
                                if let Some(task) = watcher.take() {
                                    task.abort();
                                }
                                watcher = Some(tokio::spawn(self.clone().follow(stream)));
                            }
                            Err(e) => {
                                self.stale();
                                self.note_error(&e);
                            }
                        }
                    }
                    Err(e) => self.note_error(&e),
                }
            }
            if let Some(id) = lease
                && self.lock().synced
            {
                self.campaign(id).await;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_keep_alive) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {
                    if let Some(task) = watcher.take() {
                        task.abort();
                    }
                    let lease = self.lock().lease.take();
                    if let Some(id) = lease {
                        match self.etcd.revoke(id).await {
                            Ok(()) => tracing::info!("cluster: lease given back; another instance takes over at once"),
                            Err(e) => tracing::warn!("cluster: cannot give the lease back ({e}); another instance takes over when it expires"),
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Applies a watch's events to the cache until it ends; wakes the membership task when a
    /// leader key goes (a campaign is due) and when the watch ends (read everything again).
    async fn follow(self: Arc<Self>, mut stream: etcd::Watch) {
        loop {
            match stream.next().await {
                WatchBatch::Events(events) => {
                    let mut campaign = false;
                    {
                        let mut shared = self.lock();
                        for event in events {
                            match event {
                                Event::Put(kv) => {
                                    self.deliver(&shared, &kv);
                                    shared.cache.insert(kv.key_text(), kv);
                                }
                                Event::Delete(key) => {
                                    campaign |= key.ends_with("/leader")
                                        || key == self.member_key(&self.config.instance);
                                    shared.cache.remove(&key);
                                }
                            }
                        }
                    }
                    if campaign {
                        self.wake.notify_one();
                    }
                }
                WatchBatch::Ended(reason) => {
                    tracing::info!("cluster: {reason}; reading the keys again");
                    self.stale();
                    self.wake.notify_one();
                    return;
                }
            }
        }
    }

    /// A command routed to a site this instance leads goes to that site's loop, once (only new
    /// events are delivered: a request left over from a former leader is never carried out).
    fn deliver(&self, shared: &Shared, kv: &Kv) {
        let key = kv.key_text();
        let Some(rest) = key.strip_prefix(&format!("{}sites/", self.prefix)) else {
            return;
        };
        let Some((site, id)) = rest.split_once("/requests/") else {
            return;
        };
        let leads = shared
            .cache
            .get(&self.site_key(site, "leader"))
            .is_some_and(|leader| {
                leader.value == self.config.instance.as_bytes()
                    && Some(leader.lease) == shared.lease
            });
        if !leads {
            return;
        }
        let Some(route) = shared.routes.get(site) else {
            return;
        };
        match serde_json::from_slice::<RoutedRequest>(&kv.value) {
            Ok(request) => {
                let _ = route.try_send(Routed {
                    id: id.to_string(),
                    command: request.command,
                    appliances: request.appliances,
                });
            }
            Err(e) => {
                tracing::warn!(site = %site, "cluster: a routed command that cannot be read ({e}); ignored")
            }
        }
    }

    /// Publishes this instance's membership under its lease.
    async fn announce(&self, lease: i64) {
        let value = serde_json::json!({
            "instance": self.config.instance,
            "since": crate::api::time::UtcTime::from_system_time(std::time::SystemTime::now()).to_string(),
            "version": env!("CARGO_PKG_VERSION"),
        });
        let key = self.member_key(&self.config.instance);
        match self
            .etcd
            .put(&key, value.to_string().as_bytes(), Some(lease))
            .await
        {
            Ok(()) => {}
            Err(e) => self.note_error(&e),
        }
    }

    /// For each site nobody leads: create the leader key under this instance's lease, if it is
    /// still absent (etcd's create-if-absent decides between instances that try together).
    async fn campaign(&self, lease: i64) {
        let (vacant, member_missing) = {
            let shared = self.lock();
            let vacant: Vec<String> = shared
                .sites
                .iter()
                .filter(|site| !shared.cache.contains_key(&self.site_key(site, "leader")))
                .cloned()
                .collect();
            (
                vacant,
                !shared
                    .cache
                    .contains_key(&self.member_key(&self.config.instance)),
            )
        };
        if member_missing {
            self.announce(lease).await;
        }
        for site in vacant {
            let key = self.site_key(&site, "leader");
            let won = self
                .etcd
                .txn(
                    &[Compare::Absent(key.clone())],
                    &[Op::Put {
                        key: key.clone(),
                        value: self.config.instance.as_bytes().to_vec(),
                        lease: Some(lease),
                    }],
                )
                .await;
            match won {
                Ok(outcome) if outcome.succeeded => {
                    tracing::info!(site = %site, "cluster: this instance ({}) now leads the site (revision {})", self.config.instance, outcome.revision);
                    // The watch brings the same key; set now, so that the lead starts at once.
                    self.lock().cache.insert(
                        key.clone(),
                        Kv {
                            key: key.into_bytes(),
                            value: self.config.instance.as_bytes().to_vec(),
                            lease,
                            mod_revision: outcome.revision,
                        },
                    );
                }
                Ok(_) => {}
                Err(e) => self.note_error(&e),
            }
        }
    }
}

/// The other instances' views of a site (keys under `views`), from the cache. A view counts
/// only as the view of a live member: its instance's membership key exists and the view is
/// held by that membership's lease. A view written under no lease (by hand, or by anything
/// that is not a running instance) or under a lease that is not its instance's (a former
/// incarnation's, about to expire) is nobody's current view and never votes; nor does this
/// instance's own key, nor a key below an instance's (`views/a/b`), nor a value that is not
/// a view.
fn live_views(
    cache: &BTreeMap<String, Kv>,
    views: &str,
    members: &str,
    own: &str,
) -> Vec<(String, vote::Vantage)> {
    cache
        .range(views.to_string()..)
        .take_while(|(k, _)| k.starts_with(views))
        .filter_map(|(k, kv)| {
            let instance = k.strip_prefix(views)?;
            if instance == own || instance.is_empty() || instance.contains('/') || kv.lease == 0 {
                return None;
            }
            let member = cache.get(&format!("{members}{instance}"))?;
            if member.lease != kv.lease {
                return None;
            }
            let view = serde_json::from_slice(&kv.value).ok()?;
            Some((instance.to_string(), view))
        })
        .collect()
}

/// One site's side of the cluster: its leadership, its memory in etcd, the instances' views.
#[derive(Clone)]
pub struct ClusterSite {
    cluster: Arc<Cluster>,
    site: String,
}

impl ClusterSite {
    pub fn instance(&self) -> &str {
        self.cluster.instance()
    }

    pub fn leadership(&self) -> Leadership {
        let cluster = &self.cluster;
        let shared = cluster.lock();
        if !cluster.alive(&shared) {
            let reason = if !shared.up {
                format!(
                    "etcd cannot be reached ({})",
                    shared.last_error.as_deref().unwrap_or("no answer yet")
                )
            } else if shared.lease.is_none() {
                "this instance has no lease".to_string()
            } else if !shared.synced {
                "this instance's copy of the cluster's keys is being read again".to_string()
            } else {
                "this instance's lease may have expired (no keep-alive answered within lease_ttl)"
                    .to_string()
            };
            return Leadership::Lost { reason };
        }
        let leader = shared.cache.get(&cluster.site_key(&self.site, "leader"));
        match leader {
            Some(kv)
                if kv.value == cluster.config.instance.as_bytes()
                    && Some(kv.lease) == shared.lease =>
            {
                Leadership::Leader
            }
            Some(kv) => Leadership::Follower {
                leader: Some(String::from_utf8_lossy(&kv.value).into_owned()),
            },
            None => Leadership::Follower { leader: None },
        }
    }

    /// This instance's term as the site's leader: the revision at which its leader key was
    /// written, while it leads. A new term (another campaign won, even by this instance) may
    /// follow another instance's leadership, which may have changed the site's memory.
    pub fn term(&self) -> Option<i64> {
        let cluster = &self.cluster;
        let shared = cluster.lock();
        if !cluster.alive(&shared) {
            return None;
        }
        shared
            .cache
            .get(&cluster.site_key(&self.site, "leader"))
            .filter(|kv| {
                kv.value == cluster.config.instance.as_bytes() && Some(kv.lease) == shared.lease
            })
            .map(|kv| kv.mod_revision)
    }

    /// Whether a failover call may leave now: only while this instance leads the site with a
    /// lease alive by its own reckoning (never later than etcd's). The reason when not.
    pub fn may_call(&self) -> Result<(), String> {
        match self.leadership() {
            Leadership::Leader => Ok(()),
            Leadership::Follower { leader } => Err(format!(
                "this instance ({}) no longer leads site {}{}",
                self.instance(),
                self.site,
                leader.map(|l| format!(" ({l} does)")).unwrap_or_default()
            )),
            Leadership::Lost { reason } => Err(format!(
                "this instance ({}) can no longer be sure it leads site {}: {reason}",
                self.instance(),
                self.site
            )),
        }
    }

    /// The leading instance, as far as this one knows.
    pub fn leader(&self) -> Option<String> {
        match self.leadership() {
            Leadership::Leader => Some(self.instance().to_string()),
            Leadership::Follower { leader } => leader,
            Leadership::Lost { .. } => None,
        }
    }

    /// The site's memory as etcd holds it now (read with a quorum), as text; `None` when the
    /// site has none yet.
    pub async fn load(&self) -> Result<Option<Vec<u8>>, EtcdError> {
        let key = self.cluster.site_key(&self.site, "memory");
        let (_, kv) = self.cluster.etcd.get(&key).await?;
        Ok(kv.map(|kv| kv.value))
    }

    /// The site's memory as this instance's copy of the keys holds it (kept current by the
    /// watch): what a follower shows, as the leader wrote it last. `None` when the copy is not
    /// current or the site has none.
    pub fn cached_memory(&self) -> Option<Vec<u8>> {
        let cluster = &self.cluster;
        let shared = cluster.lock();
        if !cluster.alive(&shared) {
            return None;
        }
        shared
            .cache
            .get(&self.memory_key())
            .map(|kv| kv.value.clone())
    }

    /// Where the memory lives, for messages.
    pub fn memory_key(&self) -> String {
        self.cluster.site_key(&self.site, "memory")
    }

    /// Writes the site's memory if, and only if, this instance leads the site with its current
    /// lease (compared by etcd in the same transaction); the revision written at.
    pub async fn save(&self, memory: &[u8]) -> Result<i64, SaveError> {
        let cluster = &self.cluster;
        let not_leader = |leader| SaveError::NotLeader {
            instance: cluster.config.instance.clone(),
            site: self.site.clone(),
            leader,
        };
        let lease = match self.leadership() {
            Leadership::Leader => cluster.lock().lease,
            Leadership::Follower { leader } => return Err(not_leader(leader)),
            Leadership::Lost { reason } => return Err(SaveError::Etcd(reason)),
        };
        let Some(lease) = lease else {
            return Err(not_leader(None));
        };
        let leader_key = cluster.site_key(&self.site, "leader");
        let outcome = cluster
            .etcd
            .txn(
                &[
                    Compare::ValueIs(
                        leader_key.clone(),
                        cluster.config.instance.as_bytes().to_vec(),
                    ),
                    Compare::LeaseIs(leader_key, lease),
                ],
                &[Op::Put {
                    key: self.memory_key(),
                    value: memory.to_vec(),
                    lease: None,
                }],
            )
            .await
            .map_err(|e| {
                cluster.note_error(&e);
                SaveError::Etcd(e.to_string())
            })?;
        if outcome.succeeded {
            Ok(outcome.revision)
        } else {
            // Fenced: etcd says this instance no longer leads. Forget the cached key, so that
            // nothing here believes otherwise until the watch says who leads now.
            cluster
                .lock()
                .cache
                .remove(&cluster.site_key(&self.site, "leader"));
            cluster.wake.notify_one();
            Err(not_leader(None))
        }
    }

    /// Routed commands for this site, while this instance leads it (one receiver per site).
    pub fn requests(&self) -> tokio::sync::mpsc::Receiver<Routed> {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        self.cluster.lock().routes.insert(self.site.clone(), sender);
        receiver
    }

    /// Sends an operator command to the instance that leads the site and waits for its answer
    /// (pause, resume, ack and manual failover go through the leader: only its memory counts,
    /// and only it may call). The request key is the command's ticket, as the local
    /// [`crate::daemon::site::Ticket`] is: the leader takes it (deletes it in a transaction that
    /// requires it) before carrying the command out, and a sender that gives up deletes it the
    /// same way. Exactly one of them succeeds, so a command answered "not carried out" never
    /// is carried out later.
    pub async fn route(
        &self,
        command: &crate::engine::Command,
        appliances: &[String; 2],
    ) -> RoutedAnswer {
        let cluster = &self.cluster;
        let leader = match self.leadership() {
            Leadership::Leader => {
                return Err("this instance leads the site: not routed".to_string());
            }
            Leadership::Follower {
                leader: Some(leader),
            } => leader,
            Leadership::Follower { leader: None } => {
                return Err(format!(
                    "no instance leads site {} right now (a leadership is being taken over); nothing was changed: ask again in a few seconds",
                    self.site
                ));
            }
            Leadership::Lost { reason } => {
                return Err(format!(
                    "refused: {reason}, so no instance can be sure it alone acts on site {}. Nothing was changed. To act without the cluster, stop this instance (systemctl stop bt-watchdog) and run `bt-watchdog failover --standalone` here: the others cannot act while etcd is out of their reach either",
                    self.site
                ));
            }
        };
        let Some(lease) = cluster.lock().lease else {
            return Err("this instance has no lease; nothing was changed".to_string());
        };
        // The lease makes the id this incarnation's alone: a process id repeats (PID 1 in a
        // container, after every restart) and so would a counter started afresh.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = format!(
            "{}-{lease:x}-{}",
            cluster.config.instance,
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let request = cluster.site_key(&self.site, &format!("requests/{id}"));
        let reply = cluster.site_key(&self.site, &format!("replies/{id}"));
        let text = serde_json::to_vec(&RoutedRequest {
            command: command.clone(),
            appliances: appliances.clone(),
        })
        .map_err(|e| e.to_string())?;
        let sent = cluster
            .etcd
            .txn(
                &[],
                &[Op::Put {
                    key: request.clone(),
                    value: text,
                    lease: Some(lease),
                }],
            )
            .await
            .map_err(|e| {
                format!(
                    "cannot route the command to the leader {leader} ({e}); nothing was changed"
                )
            })?;
        // Only a reply written after the request answers it: one already there (left over, or
        // written by hand) answers nothing.
        let after = sent.revision;
        let answer = match self.await_reply(&reply, after, ROUTE_TIMEOUT).await {
            Some(answer) => answer,
            None => {
                let abandoned = cluster
                    .etcd
                    .txn(
                        &[Compare::Present(request.clone())],
                        &[Op::Delete(request.clone())],
                    )
                    .await;
                match abandoned {
                    Ok(outcome) if outcome.succeeded => Err(format!(
                        "the leader {leader} did not take the command up within {}s; it was NOT carried out and will not be",
                        ROUTE_TIMEOUT.as_secs()
                    )),
                    // The leader took it: its answer is the truth to give.
                    Ok(_) => self.await_reply(&reply, after, ROUTE_TIMEOUT).await.unwrap_or_else(|| {
                        Err(format!(
                            "the leader {leader} took the command up but did not answer within {}s: its outcome is unknown; check `bt-watchdog status`",
                            2 * ROUTE_TIMEOUT.as_secs()
                        ))
                    }),
                    Err(e) => Err(format!(
                        "the leader {leader} did not answer within {}s and etcd cannot be asked whether it took the command up ({e}): its outcome is unknown; check `bt-watchdog status`",
                        ROUTE_TIMEOUT.as_secs()
                    )),
                }
            }
        };
        let _ = cluster.etcd.delete(&reply).await;
        answer.map_err(|e| format!("{e} (routed to the leader {leader})"))
    }

    /// The leader's reply under `reply` written after revision `after`, once the watch
    /// brings it; `None` after `wait`.
    async fn await_reply(&self, reply: &str, after: i64, wait: Duration) -> Option<RoutedAnswer> {
        let end = Instant::now() + wait;
        loop {
            let found = self
                .cluster
                .lock()
                .cache
                .get(reply)
                .filter(|kv| kv.mod_revision > after)
                .map(|kv| kv.value.clone());
            if let Some(found) = found {
                return Some(
                    serde_json::from_slice::<RoutedAnswer>(&found).unwrap_or_else(|e| {
                        Err(format!("the leader's answer cannot be read: {e}"))
                    }),
                );
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The leader's side of a routed command's ticket: true if this instance took it (it is
    /// to be carried out), false if its sender gave up on it first.
    pub async fn take_request(&self, id: &str) -> Result<bool, EtcdError> {
        let request = self.cluster.site_key(&self.site, &format!("requests/{id}"));
        self.cluster
            .etcd
            .txn(&[Compare::Present(request.clone())], &[Op::Delete(request)])
            .await
            .map(|outcome| outcome.succeeded)
    }

    /// The leader's answer to a routed command, under its lease.
    pub async fn answer(&self, id: &str, answer: &RoutedAnswer) {
        let cluster = &self.cluster;
        let Some(lease) = cluster.lock().lease else {
            return;
        };
        let reply = cluster.site_key(&self.site, &format!("replies/{id}"));
        let Ok(text) = serde_json::to_vec(answer) else {
            return;
        };
        if let Err(e) = cluster.etcd.put(&reply, &text, Some(lease)).await {
            tracing::warn!(site = %self.site, "cluster: cannot answer a routed command: {e}");
        }
    }

    /// This instance's lease now, if it has one.
    pub fn lease(&self) -> Option<i64> {
        self.cluster.lock().lease
    }

    /// Publishes this instance's view of the site under its lease; the lease it was published
    /// under. The caller publishes changes, and again under each new lease: the view goes with
    /// the lease it was written under.
    pub async fn publish_view(&self, view: &vote::Vantage) -> Result<i64, EtcdError> {
        let cluster = &self.cluster;
        let Some(lease) = cluster.lock().lease else {
            return Err(EtcdError::Setup("no lease yet".to_string()));
        };
        let key = cluster.site_key(&self.site, &format!("views/{}", cluster.config.instance));
        let value = serde_json::to_vec(view).map_err(|e| EtcdError::Setup(e.to_string()))?;
        cluster.etcd.put(&key, &value, Some(lease)).await?;
        Ok(lease)
    }

    /// The other live instances' views of the site, and how many instances are live (this one
    /// included). Empty while the cache is not current: nobody's view is known then.
    pub fn views(&self) -> (Vec<(String, vote::Vantage)>, usize) {
        let cluster = &self.cluster;
        let shared = cluster.lock();
        if !cluster.alive(&shared) {
            return (Vec::new(), 1);
        }
        let views = live_views(
            &shared.cache,
            &cluster.site_key(&self.site, "views/"),
            &cluster.member_key(""),
            &cluster.config.instance,
        );
        let members = cluster.members(&shared).len().max(1);
        (views, members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Command, ManualRequest};

    fn names(a: &str, b: &str) -> [String; 2] {
        [a.to_string(), b.to_string()]
    }

    fn failover_to(target: usize, sender: [String; 2]) -> Routed {
        Routed {
            id: "w2-1".to_string(),
            command: Command::Failover(ManualRequest {
                request_id: 1,
                target,
                data_sync_first: false,
                force: false,
                demote_peer: false,
                confirmed: true,
                override_preflight: false,
                by: "ops".to_string(),
                shown_plan: None,
                hook: None,
            }),
            appliances: sender,
        }
    }

    fn target(command: Result<Command, String>) -> usize {
        match command {
            Ok(Command::Failover(request)) => request.target,
            other => panic!("{other:?}"),
        }
    }

    fn kv(key: &str, value: &str, lease: i64) -> (String, Kv) {
        (
            key.to_string(),
            Kv {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                lease,
                mod_revision: 1,
            },
        )
    }

    /// Only a live member's own view votes: not one written under no lease, nor under a lease
    /// that is not its instance's membership, nor one of an instance that is no member, nor
    /// this instance's own (it is counted once, as its own), nor a value that is not a view.
    #[test]
    fn only_live_members_views_count() {
        let view = r#"{"appliances":[{"name":"east","failing":true,"since":"2026-01-01T00:00:00Z","streak":3}]}"#;
        let cache: BTreeMap<String, Kv> = [
            kv("/c/members/w1", "{}", 11),
            kv("/c/members/w2", "{}", 22),
            kv("/c/members/w3", "{}", 33),
            kv("/c/sites/hq/views/w1", view, 11),
            kv("/c/sites/hq/views/w2", view, 22),
            // Written by hand, under no lease.
            kv("/c/sites/hq/views/forged", view, 0),
            // w3's view under a lease that is not its membership's (a former incarnation).
            kv("/c/sites/hq/views/w3", view, 99),
            // No member of that name, though under a lease.
            kv("/c/sites/hq/views/w4", view, 44),
            kv("/c/sites/hq/views/w2/x", view, 22),
            kv("/c/sites/hq/views/", view, 22),
            kv("/c/members/w5", "{}", 55),
            kv("/c/sites/hq/views/w5", "not a view", 55),
        ]
        .into_iter()
        .collect();
        let views = live_views(&cache, "/c/sites/hq/views/", "/c/members/", "w1");
        let who: Vec<&str> = views.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(who, vec!["w2"]);
    }

    #[test]
    fn a_routed_failover_targets_the_appliance_the_sender_named() {
        let leader = names("east", "west");
        // The sender lists west first: its slot 1 is east.
        assert_eq!(
            target(failover_to(1, names("west", "east")).in_terms_of(&leader)),
            0
        );
        assert_eq!(
            target(failover_to(0, names("west", "east")).in_terms_of(&leader)),
            1
        );
        assert_eq!(
            target(failover_to(1, names("east", "west")).in_terms_of(&leader)),
            1
        );
        // Other names: nobody can say which appliance was meant.
        let refused = failover_to(0, names("east", "south")).in_terms_of(&leader);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("south")),
            "{refused:?}"
        );
    }
}
