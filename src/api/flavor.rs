//! The command API flavours the watchdog speaks, named in one place.
//!
//! Each flavour is one file implementing [`Dialect`]. The list at the bottom names them, in the
//! order `api = auto` tries them, with the name the configuration and the status page use.
//! From that one line come the [`Flavor`] an appliance is found to speak, the [`ApiChoice`]
//! the configuration can make, and the dialect that serves it.

use super::dialect::Dialect;

macro_rules! flavours {
    ($($variant:ident = $name:literal => $dialect:path,)+) => {
        /// What an appliance speaks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub enum Flavor {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl Flavor {
            /// Every flavour, in the order `api = auto` tries them.
            pub(super) const ALL: &[Flavor] = &[$(Flavor::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Flavor::$variant => $name,)+
                }
            }

            pub(super) fn dialect(self) -> &'static dyn Dialect {
                match self {
                    $(Flavor::$variant => &$dialect,)+
                }
            }
        }

        /// What the configuration asks for: one flavour, or `Auto` (detected on first use).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ApiChoice {
            $($variant,)+
            Auto,
        }

        impl ApiChoice {
            /// Every choice a configuration can make, by the name it is written with.
            pub const NAMES: &[(&str, ApiChoice)] = &[$(($name, ApiChoice::$variant),)+ ("auto", ApiChoice::Auto)];

            /// The choice written as `name` in a configuration.
            pub fn from_name(name: &str) -> Option<ApiChoice> {
                Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
            }

            /// The flavour the configuration fixes; `None` when it is left to detection.
            pub(super) fn fixed(self) -> Option<Flavor> {
                match self {
                    $(ApiChoice::$variant => Some(Flavor::$variant),)+
                    ApiChoice::Auto => None,
                }
            }
        }
    };
}

flavours! {
    V2 = "v2" => super::v2::JsonV2,
    Xml = "xml" => super::xml::XmlCommands,
}

/// The current API unless the configuration says otherwise.
impl Default for ApiChoice {
    fn default() -> Self {
        ApiChoice::V2
    }
}
