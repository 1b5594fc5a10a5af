//! Who a failover disconnects: the clients last counted on the primary (representatives'
//! consoles, endpoint clients, Jumpoint gateways), said in every decision's reasons and plan,
//! and the policy's limit on disconnecting representatives automatically.

use std::time::SystemTime;

use super::action::Impact;
use super::clock::since;
use super::machine::Engine;
use super::observation::Slot;
use super::words::duration;
use crate::api::time::UtcTime;

impl Engine {
    pub fn impact_of(&self, primary: Slot, _now: SystemTime) -> Option<Impact> {
        let view = &self.views[primary.min(1)];
        view.clients.as_ref().map(|(counts, at)| Impact {
            appliance: view.name.clone(),
            clients: counts.clone(),
            representatives: counts.representatives(),
            counted_at: UtcTime::from_system_time(*at),
        })
    }

    /// The current primary's impact, for notifications.
    pub fn impact(&self, now: SystemTime) -> Option<Impact> {
        self.current_primary().and_then(|p| self.impact_of(p, now))
    }

    /// "disconnects 3 rep_console, 41 asset_client, 2 gateway on east (counted 4s ago)".
    pub(super) fn impact_text(&self, primary: Slot, now: SystemTime) -> String {
        let view = &self.views[primary.min(1)];
        match &view.clients {
            Some((counts, at)) => format!(
                "disconnects {} on {} (counted {} ago)",
                counts.describe(),
                view.name,
                duration(since(now, *at))
            ),
            None => format!("clients connected to {}: not known", view.name),
        }
    }

    /// Why the policy refuses to disconnect the representatives on an answering primary.
    pub(super) fn too_many_representatives(&self, primary: Slot) -> Option<String> {
        let limit = self.config.policy.max_representatives_for_switchover?;
        let view = &self.views[primary.min(1)];
        // A primary that does not answer has already lost its users: never held back.
        if !view.answering() {
            return None;
        }
        let (counts, _) = view.clients.as_ref()?;
        let connected = counts.representatives();
        (connected > u64::from(limit)).then(|| {
            format!(
                "{connected} representatives are connected to {}, more than max_representatives_for_switchover ({limit}) allows an automatic switchover to disconnect",
                view.name
            )
        })
    }
}
