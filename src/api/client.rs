//! One appliance's client, whichever API it speaks: the JSON v2 API, the older XML API, or
//! `auto` (detected on first use: v2 `/info`, falling back to the XML `get_api_info`).

use std::sync::{Arc, Mutex};

use super::budget::RateStatus;
use super::error::{ApiError, ErrorKind};
use super::model::{ApiInfo, ApplianceRecord, FailoverAccepted, FailoverRequest, Health, Probe};
use super::observer::ApiObserver;
use super::session::ApplianceSettings;
use super::session::Session;
use super::transport::TransportSetupError;

/// What the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiChoice {
    #[default]
    V2,
    Xml,
    Auto,
}

/// What an appliance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    V2,
    Xml,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::V2 => "v2",
            Flavor::Xml => "xml",
        }
    }
}

pub struct ApplianceClient {
    session: Session,
    choice: ApiChoice,
    /// Known for `v2` and `xml`; for `auto`, once detected. Held only to read or set it.
    flavor: Mutex<Option<Flavor>>,
}

impl std::fmt::Debug for ApplianceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplianceClient")
            .field("session", &self.session)
            .field("choice", &self.choice)
            .finish()
    }
}

impl ApplianceClient {
    pub fn new(
        settings: ApplianceSettings,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Self, TransportSetupError> {
        let choice = settings.api;
        let known = match choice {
            ApiChoice::V2 => Some(Flavor::V2),
            ApiChoice::Xml => Some(Flavor::Xml),
            ApiChoice::Auto => None,
        };
        Ok(ApplianceClient {
            session: Session::new(settings, observer)?,
            choice,
            flavor: Mutex::new(known),
        })
    }

    pub fn name(&self) -> &str {
        self.session.name()
    }

    pub fn rate_status(&self) -> RateStatus {
        self.session.rate_status()
    }

    /// The API this appliance speaks, when known.
    pub fn flavor(&self) -> Option<Flavor> {
        *self.flavor.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, flavor: Flavor) {
        *self.flavor.lock().unwrap_or_else(|p| p.into_inner()) = Some(flavor);
    }

    /// For `auto`: asks v2 `/info`; a 404 means no v2 API, so the XML `get_api_info` is tried.
    async fn detect(&self) -> Result<(Flavor, Option<ApiInfo>), ApiError> {
        if let Some(flavor) = self.flavor() {
            return Ok((flavor, None));
        }
        match self.session.v2_info().await {
            Ok(info) => {
                tracing::info!(appliance = %self.name(), "api = auto: the appliance speaks the JSON Command API v2");
                self.remember(Flavor::V2);
                Ok((Flavor::V2, Some(info)))
            }
            Err(error) if error.kind == ErrorKind::NotFound => {
                let info = self.session.xml_info().await?;
                tracing::info!(appliance = %self.name(), "api = auto: no v2 API here (404); the appliance speaks the XML command API");
                self.remember(Flavor::Xml);
                Ok((Flavor::Xml, Some(info)))
            }
            Err(error) => Err(error),
        }
    }

    /// The unauthenticated `/check_health` probe (the same for every flavour).
    pub async fn check_health(&self) -> Result<Probe, ApiError> {
        self.session.check_health().await
    }

    pub async fn health(&self) -> Result<Health, ApiError> {
        match self.detect().await?.0 {
            Flavor::V2 => self.session.v2_health().await,
            Flavor::Xml => self.session.xml_health().await,
        }
    }

    pub async fn appliances(&self) -> Result<Vec<ApplianceRecord>, ApiError> {
        match self.detect().await?.0 {
            Flavor::V2 => self.session.v2_appliances().await,
            Flavor::Xml => self.session.xml_appliances().await,
        }
    }

    pub async fn info(&self) -> Result<ApiInfo, ApiError> {
        match self.detect().await? {
            (_, Some(info)) => Ok(info),
            (Flavor::V2, None) => self.session.v2_info().await,
            (Flavor::Xml, None) => self.session.xml_info().await,
        }
    }

    /// Never retried here: a failover call is not idempotent in its effect on users, so
    /// retrying is the engine's decision, not the transport's.
    pub async fn set_failover_role(
        &self,
        request: FailoverRequest,
    ) -> Result<FailoverAccepted, ApiError> {
        match self.detect().await?.0 {
            Flavor::V2 => self.session.v2_set_failover_role(request).await,
            Flavor::Xml => self.session.xml_set_failover_role(request).await,
        }
    }
}
