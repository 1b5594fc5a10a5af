//! One appliance's client, whichever API it speaks: a fixed flavour, or `auto` (detected on
//! first use by asking each flavour, in the order [`Flavor::ALL`] lists them, for its
//! `info`; a 404 means "not this one").

use std::sync::{Arc, Mutex};

use super::budget::{Priority, RateStatus};
use super::dialect::Dialect;
use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::flavor::Flavor;
use super::model::{
    ApiInfo, ApplianceRecord, ClientCounts, FailoverAccepted, FailoverRequest, Health, Probe,
};
use super::observer::ApiObserver;
use super::session::{ApplianceSettings, Session};
use super::target::Target;
use super::transport::{Answer, TransportSetupError};

/// How a dialect reads the answer to one query.
type Reader<T> = fn(&'static dyn Dialect, &Target, &Answer) -> Result<T, ApiError>;

#[derive(Debug)]
pub struct ApplianceClient {
    session: Session,
    /// Known for a fixed flavour; for `auto`, once detected. Held only to read or set it.
    flavor: Mutex<Option<Flavor>>,
}

impl ApplianceClient {
    pub fn new(
        settings: ApplianceSettings,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Self, TransportSetupError> {
        Ok(ApplianceClient {
            flavor: Mutex::new(settings.api.fixed()),
            session: Session::new(settings, observer)?,
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

    /// The flavour to use, detecting it for `auto`; the `info` read while detecting comes
    /// along so that an `info()` call does not ask twice.
    async fn detect(&self) -> Result<(Flavor, Option<ApiInfo>), ApiError> {
        if let Some(flavor) = self.flavor() {
            return Ok((flavor, None));
        }
        let mut not_found = None;
        for &flavor in Flavor::ALL {
            let dialect = flavor.dialect();
            match self.query(dialect, Endpoint::Info, Dialect::info).await {
                Ok(info) => {
                    tracing::info!(appliance = %self.name(), "api = auto: the appliance speaks {}", dialect.describe());
                    self.remember(flavor);
                    return Ok((flavor, Some(info)));
                }
                Err(error) if error.kind == ErrorKind::NotFound => {
                    tracing::info!(appliance = %self.name(), "api = auto: no {} here (404)", dialect.describe());
                    not_found = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(not_found.unwrap_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                self.name(),
                Endpoint::Info,
                "no command API flavour is known",
            )
        }))
    }

    /// One routine read in `dialect`.
    async fn query<T>(
        &self,
        dialect: &'static dyn Dialect,
        endpoint: Endpoint,
        read: Reader<T>,
    ) -> Result<T, ApiError> {
        let call = dialect.query(self.session.target(), endpoint);
        let answer = self.session.authenticated(&call, Priority::Routine).await?;
        read(dialect, self.session.target(), &answer)
    }

    /// One routine read in the appliance's flavour.
    async fn ask<T>(&self, endpoint: Endpoint, read: Reader<T>) -> Result<T, ApiError> {
        let dialect = self.detect().await?.0.dialect();
        self.query(dialect, endpoint, read).await
    }

    /// The unauthenticated `/check_health` probe (the same for every flavour).
    pub async fn check_health(&self) -> Result<Probe, ApiError> {
        self.session.check_health().await
    }

    pub async fn health(&self) -> Result<Health, ApiError> {
        self.ask(Endpoint::Health, Dialect::health).await
    }

    pub async fn appliances(&self) -> Result<Vec<ApplianceRecord>, ApiError> {
        self.ask(Endpoint::Appliance, Dialect::appliances).await
    }

    /// Connected clients per type (v2). Routine: skipped when the budget is short. On the
    /// XML API an error says there is no documented equivalent, without a request.
    pub async fn client_counts(&self) -> Result<ClientCounts, ApiError> {
        let (flavor, _) = self.detect().await?;
        if flavor == Flavor::Xml {
            return Err(super::xml::no_client_count(self.session.target()));
        }
        self.ask(Endpoint::ClientCount, Dialect::client_counts)
            .await
    }

    pub async fn info(&self) -> Result<ApiInfo, ApiError> {
        match self.detect().await? {
            (_, Some(info)) => Ok(info),
            (flavor, None) => {
                self.query(flavor.dialect(), Endpoint::Info, Dialect::info)
                    .await
            }
        }
    }

    /// Never retried here: a failover call is not idempotent in its effect on users, so
    /// retrying is the engine's decision, not the transport's.
    pub async fn set_failover_role(
        &self,
        request: FailoverRequest,
    ) -> Result<FailoverAccepted, ApiError> {
        let dialect = self.detect().await?.0.dialect();
        let target = self.session.target();
        let call = dialect.failover(target, &request)?;
        let answer = self
            .session
            .authenticated(&call, Priority::Critical)
            .await?;
        let mut accepted = dialect.accepted(target, &answer)?;
        accepted.completes_later |= request.data_sync_first;
        Ok(accepted)
    }
}
