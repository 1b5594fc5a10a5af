//! Engine tests: a small fake world (two appliances that follow the documented rules) driven
//! by a fake clock, the scenario table of the documented rules, the wrong calls an adversarial review found, and property tests.

mod harness;
mod hostile_memory;
mod properties;
mod scenarios;
mod veto;
mod wrong_calls;
