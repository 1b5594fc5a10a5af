//! Engine tests: a small fake world (two appliances that follow the documented rules) driven
//! by a fake clock, the scenario table of the engine issue, and property tests.

mod harness;
mod properties;
mod purity;
mod scenarios;
mod wrong_calls;
