//! Telling the outside world: `[[notify]]` hooks (webhooks and programs) and the
//! `[pre_failover]` hook that may veto an automatic failover.
//!
//! - here: the events (what a step changed) and the [`Notifier`] that queues them per hook;
//! - [`deliver`]: one delivery by webhook (signed) or program, with its timeout;
//! - [`gate`]: the pre-failover hook's question and its answer.
//!
//! Every hook has its own bounded queue and its own task: a dead or slow receiver fills its
//! own queue (and loses events, counted as `dropped`), never the site loop's time.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::api::time::UtcTime;
use crate::config::NotifyConfig;
use crate::engine::{Action, AlertKind, Blocker, StateKind};
use crate::exporter::metrics::Metrics;

pub mod deliver;
pub mod gate;

pub use gate::Gate;

/// How many events may wait for one hook.
const QUEUE: usize = 64;

/// One event, as every hook receives it (the JSON body, the program's stdin).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `state_change`, `decision_taken`, `decision_refused`, `failover_outcome`,
    /// `split_brain`, `cooldown`, `pause` (or `pre_failover` for the veto hook).
    pub kind: &'static str,
    pub site: String,
    pub at: UtcTime,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocker: Option<String>,
    /// In words: the engine's reason for what happened.
    pub message: String,
    /// The call, the outcome, the plan: what the kind carries.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// What a site looked like before a step, to tell what the step changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Before {
    pub state: StateKind,
    pub blocker: Option<Blocker>,
    pub paused: bool,
}

/// The events one engine step makes: from its actions and from how the site's state changed.
#[allow(clippy::too_many_arguments)]
pub fn events(
    site: &str,
    at: UtcTime,
    before: &Before,
    after: &Before,
    reason: &str,
    actions: &[Action],
    impact: &serde_json::Value,
) -> Vec<Event> {
    let event = |kind: &'static str, message: String, details: serde_json::Value| Event {
        kind,
        site: site.to_string(),
        at,
        state: after.state.as_str().to_string(),
        previous_state: (before.state != after.state).then(|| before.state.as_str().to_string()),
        blocker: after.blocker.map(|b| b.as_str().to_string()),
        message,
        details,
    };
    let mut events = Vec::new();
    if before.state != after.state {
        events.push(event(
            "state_change",
            reason.to_string(),
            serde_json::Value::Null,
        ));
        if after.state == StateKind::Cooldown || before.state == StateKind::Cooldown {
            events.push(event(
                "cooldown",
                reason.to_string(),
                serde_json::Value::Null,
            ));
        }
    }
    if after.state == StateKind::FailoverBlocked
        && (before.state != StateKind::FailoverBlocked || before.blocker != after.blocker)
    {
        events.push(event(
            "decision_refused",
            reason.to_string(),
            serde_json::json!({ "impact": impact }),
        ));
    }
    if before.paused != after.paused {
        events.push(event("pause", reason.to_string(), serde_json::Value::Null));
    }
    for action in actions {
        match action {
            Action::CallFailover(call) if call.first => events.push(event(
                "decision_taken",
                call.reason.clone(),
                serde_json::json!({
                    "trigger": call.trigger.as_str(),
                    "appliance": call.appliance_name,
                    "request": call.request,
                    "impact": impact,
                }),
            )),
            Action::FailoverFinished(summary) => events.push(event(
                "failover_outcome",
                summary.reason.clone(),
                serde_json::to_value(summary).unwrap_or_default(),
            )),
            Action::Alert {
                alert: AlertKind::SplitBrain,
                raised,
                reason,
            } => events.push(event(
                "split_brain",
                reason.clone(),
                serde_json::json!({ "raised": raised }),
            )),
            _ => {}
        }
    }
    events
}

struct Hook {
    name: String,
    events: Vec<String>,
    queue: mpsc::Sender<Arc<Event>>,
}

/// The `[[notify]]` hooks; cheap to clone. With none configured it does nothing.
#[derive(Clone, Default)]
pub struct Notifier {
    hooks: Arc<Vec<Hook>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({} hooks)", self.hooks.len())
    }
}

impl Notifier {
    /// Starts one delivery task per hook (in the current runtime). Secrets are read here, so
    /// that a missing one stops the start with its name.
    pub fn start(configs: &[NotifyConfig], metrics: Arc<Metrics>) -> Result<Notifier, String> {
        let mut hooks = Vec::new();
        for config in configs {
            let delivery = deliver::Delivery::new(&config.name, &config.target, config.timeout)?;
            let (queue, receiver) = mpsc::channel(QUEUE);
            metrics.register_hook(&config.name);
            tokio::spawn(run_hook(
                delivery,
                config.clone(),
                receiver,
                metrics.clone(),
            ));
            hooks.push(Hook {
                name: config.name.clone(),
                events: config.events.clone(),
                queue,
            });
        }
        Ok(Notifier {
            hooks: Arc::new(hooks),
            metrics: Some(metrics),
        })
    }

    /// Queues the event for every hook that wants its kind; never waits.
    pub fn send(&self, event: Event) {
        let event = Arc::new(event);
        for hook in self.hooks.iter() {
            if !hook.events.iter().any(|k| k == event.kind) {
                continue;
            }
            if hook.queue.try_send(event.clone()).is_err() {
                if let Some(metrics) = &self.metrics {
                    metrics.count_notification(&hook.name, "dropped");
                }
                tracing::warn!(hook = %hook.name, site = %event.site, "notification {} dropped: the hook's queue is full (its receiver is slow or down)", event.kind);
            }
        }
    }
}

/// One hook's deliveries, one event at a time, each with its retries.
async fn run_hook(
    delivery: deliver::Delivery,
    config: NotifyConfig,
    mut receiver: mpsc::Receiver<Arc<Event>>,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = receiver.recv().await {
        let mut backoff = config.retry_backoff;
        let mut attempt = 0;
        loop {
            match delivery.deliver(&event).await {
                Ok(_) => {
                    metrics.count_notification(&config.name, "delivered");
                    metrics.notification_succeeded(&config.name);
                    break;
                }
                Err(problem) if attempt < config.retries => {
                    attempt += 1;
                    metrics.count_notification(&config.name, "retried");
                    tracing::debug!(hook = %config.name, "notification {} not delivered ({}); again in {}", event.kind, problem.describe(), humantime::format_duration(backoff));
                    tokio::time::sleep(backoff).await;
                    backoff = backoff
                        .saturating_mul(2)
                        .min(std::time::Duration::from_secs(300));
                }
                Err(problem) => {
                    metrics.count_notification(&config.name, "failed");
                    tracing::warn!(hook = %config.name, site = %event.site, "notification {} not delivered after {} attempts: {}", event.kind, attempt + 1, problem.describe());
                    break;
                }
            }
        }
    }
}
