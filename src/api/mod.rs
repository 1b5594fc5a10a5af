//! Talking to appliances: one client per appliance, with its token cache and rate budget.
//!
//! - [`v2`]: the JSON Command API v2 (RS and PRA);
//! - [`model`]: the typed answers shared by every API flavour;
//! - [`error`]: the closed set of failure kinds;
//! - [`token`], [`budget`]: the OAuth token cache and the request budget;
//! - [`transport`]: one bounded HTTP exchange with the vendor's transport rules.

pub mod budget;
pub mod endpoint;
pub mod error;
pub mod model;
#[cfg(test)]
mod model_props;
pub mod observer;
pub mod time;
pub mod token;
pub mod transport;
pub mod v2;

pub use endpoint::Endpoint;
pub use error::{ApiError, ErrorKind};
pub use observer::{ApiObserver, NoObserver, TokenOutcome};
pub use v2::{ApplianceSettings, V2Client};
