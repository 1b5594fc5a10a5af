//! The decision engine: a pure, deterministic state machine per failover pair.
//!
//! `Engine::step(now, input) -> Vec<Action>`: observations, call results and operator commands
//! go in with the time; calls to make, polls to hurry, alerts, memory to persist and journal
//! lines come out. Nothing in this module reads a clock, opens a socket or touches a file
//! (its imports show it: no tokio, reqwest or hyper), so every rule is tested with a fake
//! clock, scenario tables and property tests.
//!
//! The principles it encodes are in the README's "How decisions are
//! made": observe by default, corroborate before acting, guard the data, fence before you
//! promote, one verified action at a time followed by a cooldown, explain everything.

// Sans-IO, enforced by the compiler: clippy.toml lists the clocks, sockets, files, processes
// and runtimes the engine may not reach for.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

mod action;
mod clock;
mod commands;
mod data_gate;
mod decision;
mod detection;
mod episode;
mod episode_runner;
mod impact;
mod machine;
mod manual;
mod memory;
mod narration;
mod observation;
mod policy;
mod split_brain;
mod stall;
mod state;
mod streak;
mod timers;
mod view;
mod words;

#[cfg(test)]
mod tests;

pub use action::{Action, AlertKind, FailoverCall, FailoverSummary, PreflightReport};
pub use machine::{Engine, SiteConfig};
pub use memory::{MEMORY_VERSION, Memory, Outcome, Trigger};
pub use observation::{
    ApplianceReport, CallResult, Command, HookAnswer, Input, ManualRequest, PollReport, ShownCall,
};
pub use policy::{Mode, Policy};
pub use state::{Blocker, StateKind};
pub use view::{ErrorMeaning, meaning};
/// Durations in every message read the same way ("3m 8s").
pub use words::duration as say_duration;
