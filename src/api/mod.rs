//! Talking to appliances: one client per appliance, with its token cache and rate budget.
//!
//! - [`client`]: one appliance's client, whichever API it speaks (`v2`, `xml`, `auto`);
//! - [`v2`]: the JSON Command API v2 (RS and PRA); [`xml`]: the older XML command API;
//! - [`session`]: what both share (token, budget, authenticated request with one retry);
//! - [`model`]: the typed answers shared by every API flavour;
//! - [`error`]: the closed set of failure kinds;
//! - [`token`], [`budget`]: the OAuth token cache and the request budget;
//! - [`transport`]: one bounded HTTP exchange with the vendor's transport rules.

pub mod budget;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod model;
#[cfg(test)]
mod model_props;
pub mod observer;
pub mod session;
pub mod time;
pub mod token;
pub mod transport;
pub mod v2;
pub mod xml;
pub mod xml_parse;

pub use client::{ApiChoice, ApplianceClient, Flavor};
pub use endpoint::Endpoint;
pub use error::{ApiError, ErrorKind};
pub use observer::{ApiObserver, NoObserver, TokenOutcome};
pub use session::ApplianceSettings;
