//! Talking to appliances: one client per appliance, with its token cache and rate budget.
//!
//! - `client`: one appliance's client, whichever API flavour it speaks (or `auto`);
//! - `flavor`: the list of flavours; each is one file implementing `dialect::Dialect`
//!   (`v2`: the JSON Command API v2 of RS and PRA; `xml`: the older XML command API);
//! - `session`: what every flavour shares (token, budget, authenticated request with one
//!   retry), and `target`: the appliance an answer is read against;
//! - [`model`]: the typed answers shared by every flavour; `error`: the closed set of failure
//!   kinds;
//! - `token`, [`budget`]: the OAuth token cache and the request budget;
//! - [`transport`]: one bounded HTTP exchange with the vendor's transport rules.

pub mod budget;
mod client;
mod dialect;
mod endpoint;
mod error;
mod flavor;
pub mod model;
#[cfg(test)]
mod model_props;
mod observer;
mod session;
mod target;
pub mod time;
pub(crate) mod token;
pub mod transport;
mod v2;
mod xml;
pub(crate) mod xml_parse;

pub use client::{ApplianceClient, FailoverError};
pub use endpoint::Endpoint;
pub use error::{ApiError, ErrorKind, LocalFault};
pub use flavor::{ApiChoice, Flavor};
pub use observer::{ApiObserver, TokenOutcome, code_labels, status_label};
pub use session::ApplianceSettings;
