//! The pre-failover hook: asked before the first call of an automatic failover (and for a
//! manual failover's plan). Yes is a 2xx answer or exit 0; no is a 4xx/5xx answer or a
//! non-zero exit, with what it said as the reason; no answer within its timeout (or no
//! connection, or a program that cannot run) follows `on_timeout`.

use std::sync::Arc;

use super::Event;
use super::deliver::{Delivery, Problem};
use crate::config::{OnTimeout, PRE_FAILOVER_HOOK, PreFailoverConfig};
use crate::exporter::metrics::Metrics;

/// The hook's answer, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Proceed(String),
    Veto(String),
}

pub struct Gate {
    delivery: Delivery,
    on_timeout: OnTimeout,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl Gate {
    pub fn new(config: &PreFailoverConfig, metrics: Arc<Metrics>) -> Result<Gate, String> {
        metrics.register_hook(PRE_FAILOVER_HOOK);
        Ok(Gate {
            delivery: Delivery::new(PRE_FAILOVER_HOOK, &config.target, config.timeout)?,
            on_timeout: config.on_timeout,
            metrics,
        })
    }

    /// Asks once; never takes longer than the hook's timeout.
    pub async fn ask(&self, event: &Event) -> Verdict {
        let hook = self.delivery.name();
        match self.delivery.deliver(event).await {
            Ok(said) => {
                self.metrics.count_notification(hook, "delivered");
                self.metrics.notification_succeeded(hook);
                Verdict::Proceed(if said.is_empty() {
                    "the pre-failover hook agreed".to_string()
                } else {
                    format!("the pre-failover hook agreed: {said}")
                })
            }
            Err(Problem::Refused(why)) => {
                self.metrics.count_notification(hook, "vetoed");
                self.metrics.notification_succeeded(hook);
                Verdict::Veto(why)
            }
            Err(Problem::NoAnswer(why)) => {
                self.metrics.count_notification(hook, "timed_out");
                match self.on_timeout {
                    OnTimeout::Proceed => Verdict::Proceed(format!(
                        "the pre-failover hook did not answer ({why}); proceeding (on_timeout = \"proceed\")"
                    )),
                    OnTimeout::Abort => Verdict::Veto(format!(
                        "the pre-failover hook did not answer ({why}); aborting (on_timeout = \"abort\")"
                    )),
                }
            }
        }
    }
}
