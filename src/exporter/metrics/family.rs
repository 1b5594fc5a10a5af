//! Gauges declared as data: a name, a help text and how the value is read from a sample, so
//! that setting and forgetting them is written once for all.

use prometheus::core::Collector;
use prometheus::{GaugeVec, Opts, Registry};

/// Registers a metric. The definitions are constants of this program: a failure is a
/// programming error that every test catches, so it panics.
#[expect(
    clippy::panic,
    reason = "metric definitions are constants: a bad one is a bug every test run catches"
)]
pub(super) fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    made: prometheus::Result<C>,
) -> C {
    let collector = made.unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(collector.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    collector
}

pub(super) fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// One gauge of a family, read from a sample of type `S`.
pub(super) struct Gauge<S> {
    pub name: &'static str,
    pub help: &'static str,
    pub reading: Reading<S>,
}

pub(super) enum Reading<S> {
    /// One series; `None` removes it (the appliance did not say).
    Value(fn(&S) -> Option<f64>),
    /// One 0/1 series per possible value of the label `label`, so that dashboards never see
    /// series appear and vanish (for the failover role, where "all 0" says "unknown" and the
    /// alerts compare roles across a pair).
    OneOf {
        label: &'static str,
        values: fn() -> Vec<&'static str>,
        holds: fn(&S, &str) -> bool,
    },
    /// A series of value 1 for each value of the label `label` that holds now, and none for
    /// the others: `{state="blind"} == 1` selects the same as with one series per value, but
    /// a site costs one series instead of one per possible state (12 states, 14 blockers, 6
    /// alerts: two thirds of a pair's series at the defaults before they were cut).
    Current {
        label: &'static str,
        values: fn() -> Vec<&'static str>,
        holds: fn(&S, &str) -> bool,
    },
}

/// The registered gauges of one table of [`Gauge`]s, all with the same leading labels.
pub(super) struct Family<S: 'static> {
    gauges: Vec<(GaugeVec, &'static Reading<S>)>,
}

impl<S> Family<S> {
    pub fn new(registry: &Registry, labels: &[&str], table: &'static [Gauge<S>]) -> Self {
        let gauges = table
            .iter()
            .map(|gauge| {
                let mut names = labels.to_vec();
                if let Reading::OneOf { label, .. } | Reading::Current { label, .. } =
                    &gauge.reading
                {
                    names.push(label);
                }
                let vec = GaugeVec::new(Opts::new(gauge.name, gauge.help), &names);
                (register(registry, gauge.name, vec), &gauge.reading)
            })
            .collect();
        Family { gauges }
    }

    pub fn set(&self, labels: &[&str], sample: &S) {
        for (vec, reading) in &self.gauges {
            match reading {
                Reading::Value(value) => match value(sample) {
                    Some(v) => vec.with_label_values(labels).set(v),
                    None => {
                        let _ = vec.remove_label_values(labels);
                    }
                },
                Reading::OneOf { values, holds, .. } => {
                    for value in values() {
                        vec.with_label_values(&with(labels, value))
                            .set(bool_value(holds(sample, value)));
                    }
                }
                Reading::Current { values, holds, .. } => {
                    for value in values() {
                        if holds(sample, value) {
                            vec.with_label_values(&with(labels, value)).set(1.0);
                        } else {
                            let _ = vec.remove_label_values(&with(labels, value));
                        }
                    }
                }
            }
        }
    }

    pub fn forget(&self, labels: &[&str]) {
        for (vec, reading) in &self.gauges {
            match reading {
                Reading::Value(_) => {
                    let _ = vec.remove_label_values(labels);
                }
                Reading::OneOf { values, .. } | Reading::Current { values, .. } => {
                    for value in values() {
                        let _ = vec.remove_label_values(&with(labels, value));
                    }
                }
            }
        }
    }
}

fn with<'a>(labels: &[&'a str], last: &'a str) -> Vec<&'a str> {
    let mut all = labels.to_vec();
    all.push(last);
    all
}
