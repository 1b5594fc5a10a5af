//! How a BeyondTrust failover pair behaves, as the vendor documents it (README, "What the simulated appliances do"),
//! with no IO and no clock: roles, the periodic data sync, what `POST /failover-role` does with
//! `data_sync_first` and `force`, the asynchronous swap during which both appliances read
//! `backup`, split brain, and what each appliance says about itself in `/health`.
//!
//! Two drivers use this one model, so that they cannot disagree about an appliance: the
//! simulator (behind its HTTP faces, for the integration tests, `simulate` and `demo`) and the
//! engine's scenario harness. Time is always passed in.
//!
//! The roles are lent to each call rather than owned: each driver keeps them with its own record
//! of an appliance (the simulator next to its tokens and counters, the harness in a plain array),
//! where an operator or a test may also set them directly.

use std::time::{Duration, SystemTime};

use crate::api::model::{FailoverRequest, FailoverRole};

/// What an unhealthy appliance says in the `message` of its `/health` answer.
pub(crate) const UNHEALTHY_MESSAGE: &str = "The appliance is unhealthy (injected fault).";
/// The shared IP the primary holds (a documentation address).
pub(crate) const SHARED_IP: &str = "192.0.2.10";

/// Everything about the pair that the rules read but never change: whether each appliance runs
/// and is healthy, the link between them, injected failures, and how the firmware reports.
/// Each driver keeps these in its own form (the simulator as control-API faults, the harness as
/// plain fields) and hands them in with every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// The appliance runs and answers, so its peer can reach it.
    pub up: [bool; 2],
    /// Its own health checks pass (`/health` and `/check_health` answer 200).
    pub healthy: [bool; 2],
    /// The two cannot reach each other, though both still answer the watchdog.
    pub partitioned: bool,
    /// `POST /failover-role` on this appliance answers 500.
    pub failover_failing: [bool; 2],
    /// The primary's data sync fails: it stops advancing and says so.
    pub sync_failing: bool,
    /// The primary's last sync is stuck at this time (the link carries no data, silently).
    pub sync_frozen_at: Option<SystemTime>,
    /// Whether the primary reports `last_data_sync` at all (some firmware leaves it out).
    pub reports_sync: bool,
    /// Whether a primary cut off from its peer says at once that its sync failed; real ones
    /// may keep saying "success" until their next sync attempt.
    pub reports_sync_failure: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            up: [true; 2],
            healthy: [true; 2],
            partitioned: false,
            failover_failing: [false; 2],
            sync_failing: false,
            sync_frozen_at: None,
            reports_sync: true,
            reports_sync_failure: true,
        }
    }
}

impl Conditions {
    fn peer_reachable(&self, from: usize) -> bool {
        !self.partitioned && self.up[1 - from]
    }
}

/// A `POST /failover-role` the appliance accepted (HTTP 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub message: &'static str,
    /// A `data_sync_first` swap was started; the roles change when it completes.
    pub completes_later: bool,
}

/// A `POST /failover-role` the appliance refused: 422 for an invalid role, 500 when the
/// failover failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub status: u16,
    pub message: &'static str,
}

/// What one appliance says about itself in `/health` (and, reduced to healthy or not,
/// `/check_health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthReport {
    pub role: FailoverRole,
    pub healthy: bool,
    /// Only the primary reports its last sync and its status.
    pub last_data_sync: Option<SystemTime>,
    pub last_data_sync_status: Option<String>,
    /// The primary holds the shared IP that clients follow.
    pub holds_shared_ip: bool,
}

#[derive(Debug, Clone, Copy)]
struct PendingSwap {
    complete_at: SystemTime,
    new_primary: usize,
}

/// The state of a pair that only the rules change: the data sync and a swap under way.
#[derive(Debug, Clone)]
pub(crate) struct PairModel {
    /// How long a `data_sync_first` swap takes.
    swap_duration: Duration,
    /// How often the primary syncs its data to the backup.
    sync_interval: Duration,
    last_sync: SystemTime,
    last_sync_ok: bool,
    swap: Option<PendingSwap>,
}

pub(crate) fn sole_primary(roles: [FailoverRole; 2]) -> Option<usize> {
    match roles.map(|r| r == FailoverRole::Primary) {
        [true, false] => Some(0),
        [false, true] => Some(1),
        _ => None,
    }
}

impl PairModel {
    pub fn new(swap_duration: Duration, sync_interval: Duration, now: SystemTime) -> Self {
        PairModel {
            swap_duration,
            sync_interval,
            last_sync: now,
            last_sync_ok: true,
            swap: None,
        }
    }

    pub fn swap_in_progress(&self) -> bool {
        self.swap.is_some()
    }

    /// Lets what happens on its own happen: a pending swap completing, the periodic data sync.
    pub fn tick(&mut self, now: SystemTime, roles: &mut [FailoverRole; 2], on: &Conditions) {
        if let Some(swap) = self.swap
            && now >= swap.complete_at
        {
            roles[swap.new_primary] = FailoverRole::Primary;
            roles[1 - swap.new_primary] = FailoverRole::Backup;
            self.swap = None;
            // The swap synced the data before it changed the roles.
            self.last_sync = now;
            self.last_sync_ok = true;
        }
        // With two primaries (split brain) there is no backup to receive the data.
        let Some(primary) = sole_primary(*roles) else {
            return;
        };
        if on.sync_frozen_at.is_some() || !on.up[primary] {
            return;
        }
        if on.sync_failing || !on.peer_reachable(primary) {
            self.last_sync_ok = false;
            return;
        }
        // Syncs happen on a fixed grid, so the reported time moves in steps like a real one.
        let interval = self.sync_interval.as_secs().max(1);
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let grid =
            SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch - since_epoch % interval);
        if grid > self.last_sync {
            self.last_sync = grid;
        }
        self.last_sync_ok = true;
    }

    /// What appliance `slot` reports in `/health`.
    pub fn health(&self, slot: usize, roles: [FailoverRole; 2], on: &Conditions) -> HealthReport {
        let role = roles[slot];
        let is_primary = role == FailoverRole::Primary;
        let status = if on.sync_failing {
            "failed: injected fault"
        } else if !self.last_sync_ok && on.reports_sync_failure {
            "failed: peer appliance unreachable"
        } else {
            "success"
        };
        HealthReport {
            role,
            healthy: on.healthy[slot],
            last_data_sync: (is_primary && on.reports_sync)
                .then(|| on.sync_frozen_at.unwrap_or(self.last_sync)),
            last_data_sync_status: is_primary.then(|| status.to_string()),
            holds_shared_ip: is_primary,
        }
    }

    /// `POST /failover-role` on appliance `slot`, which the caller has reached.
    pub fn set_failover_role(
        &mut self,
        slot: usize,
        request: FailoverRequest,
        now: SystemTime,
        roles: &mut [FailoverRole; 2],
        on: &Conditions,
    ) -> Result<Accepted, Refused> {
        let failed = |message| {
            Err(Refused {
                status: 500,
                message,
            })
        };
        let done = |message| {
            Ok(Accepted {
                message,
                completes_later: false,
            })
        };
        let peer = 1 - slot;
        if on.failover_failing[slot] {
            return failed("The failover operation failed (injected fault).");
        }
        // Documented: a data_sync_first swap blocks other operations until it completes.
        if self.swap.is_some() {
            return failed("A role change is already in progress.");
        }
        if roles[slot] == FailoverRole::None {
            return failed("Failover is not configured on this appliance.");
        }
        let peer_ok = on.peer_reachable(slot);
        match request.role {
            FailoverRole::None => Err(Refused {
                status: 422,
                message: "The selected role is invalid.",
            }),
            FailoverRole::Primary if roles[slot] == FailoverRole::Primary => {
                done("This appliance is already the primary.")
            }
            FailoverRole::Backup if roles[slot] == FailoverRole::Backup => {
                done("This appliance is already the backup.")
            }
            FailoverRole::Primary => {
                if request.data_sync_first {
                    if !peer_ok {
                        return failed("Unable to contact the peer appliance to sync data.");
                    }
                    return Ok(self.start_swap(slot, now, roles));
                }
                roles[slot] = FailoverRole::Primary;
                // A peer it cannot reach keeps believing it is primary: split brain on its return.
                if peer_ok {
                    roles[peer] = FailoverRole::Backup;
                }
                done("Successfully changed role.")
            }
            FailoverRole::Backup => {
                if !peer_ok {
                    // Documented: force lets a primary step down even without its peer.
                    if request.force {
                        roles[slot] = FailoverRole::Backup;
                        return done("Successfully changed role.");
                    }
                    return failed(
                        "Unable to contact the peer appliance; set force to become backup anyway.",
                    );
                }
                if request.data_sync_first {
                    return Ok(self.start_swap(peer, now, roles));
                }
                roles[slot] = FailoverRole::Backup;
                roles[peer] = FailoverRole::Primary;
                done("Successfully changed role.")
            }
        }
    }

    /// Documented: the role change is asynchronous and both appliances may read `backup` until
    /// it completes.
    fn start_swap(
        &mut self,
        new_primary: usize,
        now: SystemTime,
        roles: &mut [FailoverRole; 2],
    ) -> Accepted {
        *roles = [FailoverRole::Backup; 2];
        self.swap = Some(PendingSwap {
            complete_at: now + self.swap_duration,
            new_primary,
        });
        Accepted {
            message: "Successfully started data sync. Role change will occur upon successful completion.",
            completes_later: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailoverRole::{Backup, None as NoRole, Primary};

    const SWAP: Duration = Duration::from_secs(3);

    /// A model, its roles and its conditions, the way a driver holds them.
    struct Pair {
        model: PairModel,
        roles: [FailoverRole; 2],
        on: Conditions,
        now: SystemTime,
    }

    impl Pair {
        fn new() -> Self {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            Pair {
                model: PairModel::new(SWAP, Duration::from_secs(60), now),
                roles: [Primary, Backup],
                on: Conditions::default(),
                now,
            }
        }

        fn call(&mut self, slot: usize, role: FailoverRole, sync: bool, force: bool) -> u16 {
            let request = FailoverRequest {
                role,
                data_sync_first: sync,
                force,
            };
            match self
                .model
                .set_failover_role(slot, request, self.now, &mut self.roles, &self.on)
            {
                Ok(_) => 200,
                Err(refused) => refused.status,
            }
        }

        fn pass(&mut self, span: Duration) {
            self.now += span;
            self.model.tick(self.now, &mut self.roles, &self.on);
        }

        fn health(&self, slot: usize) -> HealthReport {
            self.model.health(slot, self.roles, &self.on)
        }
    }

    #[test]
    fn a_swap_blocks_other_calls_until_it_completes() {
        let mut p = Pair::new();
        assert_eq!(p.call(1, Primary, true, false), 200);
        assert_eq!(p.roles, [Backup, Backup]);
        assert_eq!(p.call(0, Primary, false, false), 500);
        p.pass(SWAP);
        assert_eq!(p.roles, [Backup, Primary]);
        assert_eq!(p.call(0, Primary, false, false), 200);
    }

    #[test]
    fn demoting_with_data_sync_first_swaps_asynchronously() {
        let mut p = Pair::new();
        assert_eq!(p.call(0, Backup, true, false), 200);
        assert_eq!(p.roles, [Backup, Backup]);
        p.pass(SWAP);
        assert_eq!(p.roles, [Backup, Primary]);
    }

    #[test]
    fn demoting_a_backup_changes_nothing_even_when_cut_off() {
        let mut p = Pair::new();
        p.on.partitioned = true;
        assert_eq!(p.call(1, Backup, false, false), 200);
        p.on.partitioned = false;
        assert_eq!(p.call(1, Backup, false, false), 200);
        assert_eq!(p.roles, [Primary, Backup]);
    }

    #[test]
    fn an_appliance_outside_failover_refuses_every_role_change() {
        let mut p = Pair::new();
        p.roles = [NoRole, NoRole];
        assert_eq!(p.call(1, Primary, false, false), 500);
        assert_eq!(p.roles, [NoRole, NoRole]);
        let mut p = Pair::new();
        assert_eq!(p.call(1, NoRole, false, false), 422);
    }

    #[test]
    fn split_brain_stops_the_sync_and_a_frozen_sync_reports_its_time() {
        let mut p = Pair::new();
        p.pass(Duration::from_secs(120));
        let synced = p.health(0).last_data_sync;
        p.roles = [Primary, Primary];
        p.pass(Duration::from_secs(600));
        assert_eq!(p.health(0).last_data_sync, synced);
        assert_eq!(p.health(1).last_data_sync, synced);

        let mut p = Pair::new();
        let frozen = p.now - Duration::from_secs(1200);
        p.on.sync_frozen_at = Some(frozen);
        p.pass(Duration::from_secs(600));
        assert_eq!(p.health(0).last_data_sync, Some(frozen));
    }

    #[test]
    fn a_cut_off_primary_says_its_sync_failed_unless_its_firmware_is_slow_to() {
        let mut p = Pair::new();
        p.on.partitioned = true;
        p.pass(Duration::from_secs(5));
        let status = p.health(0).last_data_sync_status.unwrap();
        assert!(status.starts_with("failed"), "{status}");
        p.on.reports_sync_failure = false;
        assert_eq!(p.health(0).last_data_sync_status.unwrap(), "success");
        assert_eq!(p.health(1).last_data_sync_status, None);
    }
}
