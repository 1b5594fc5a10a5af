//! One appliance's client, whichever API it speaks: a fixed flavour, or `auto` (detected on
//! first use by asking each flavour, in the order [`Flavor::ALL`] lists them, for its
//! `info`; a 404 means "not this one").
//!
//! Detection never blocks polling: while it fails (an `/info` that answers 500, a timeout),
//! the client speaks the first flavour of the list, which a successful answer then confirms,
//! and detection is retried with a growing backoff. The client also remembers whether the
//! appliance serves the unauthenticated `/check_health` probe, and asks again now and then
//! when it did not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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

/// First wait after a failed flavour detection; doubles up to [`MAX_DETECTION_BACKOFF`].
const FIRST_DETECTION_BACKOFF: Duration = Duration::from_secs(30);
const MAX_DETECTION_BACKOFF: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
struct Detection {
    /// Known for a fixed flavour; for `auto`, once detected or confirmed by an answer.
    flavor: Option<Flavor>,
    failures: u32,
    next_attempt: Option<Instant>,
    /// Why the flavour is assumed rather than known, for the logs and `/status`.
    problem: Option<String>,
}

/// A failover call that failed, and whether it ever left the watchdog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct FailoverError {
    pub error: ApiError,
    /// False when the call was held back here (token backoff, a token that could not be
    /// minted): the appliance never saw it.
    pub sent: bool,
}

#[derive(Debug)]
pub struct ApplianceClient {
    session: Session,
    /// Held only to read or set it, never across an await.
    detection: Mutex<Detection>,
    /// Held across one detection, so that the concurrent reads of a poll share it instead of
    /// each asking `/info`.
    detecting: tokio::sync::Mutex<()>,
    /// When `/check_health` answered 404: it is asked again `probe_recheck` later (a
    /// firmware update or a fixed load balancer brings the cheap probe back).
    probe_missing_since: Mutex<Option<Instant>>,
    probe_recheck: Duration,
}

impl ApplianceClient {
    pub fn new(
        settings: ApplianceSettings,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Self, TransportSetupError> {
        Ok(ApplianceClient {
            detection: Mutex::new(Detection {
                flavor: settings.api.fixed(),
                ..Detection::default()
            }),
            detecting: tokio::sync::Mutex::new(()),
            probe_missing_since: Mutex::new(None),
            probe_recheck: settings.budget.probe_recheck,
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
        self.detection().flavor
    }

    /// Why the flavour is not known (`api = auto` and detection failed), when it is not.
    pub fn flavor_problem(&self) -> Option<String> {
        let detection = self.detection();
        if detection.flavor.is_some() {
            return None;
        }
        detection.problem.clone()
    }

    fn detection(&self) -> std::sync::MutexGuard<'_, Detection> {
        self.detection.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, flavor: Flavor) {
        let mut detection = self.detection();
        if detection.flavor.is_none() && detection.problem.is_some() {
            tracing::info!(appliance = %self.name(), "api = auto: {} answered; using it", flavor.dialect().describe());
        }
        *detection = Detection {
            flavor: Some(flavor),
            ..Detection::default()
        };
    }

    /// The flavour spoken while detection has not succeeded: the first of the list.
    fn assumed() -> Flavor {
        Flavor::ALL.first().copied().unwrap_or(Flavor::V2)
    }

    /// The flavour to use, detecting it for `auto`; the `info` read while detecting comes
    /// along so that an `info()` call does not ask twice. The flavour is `confirmed` when
    /// known; an assumed one is confirmed by the caller's first good answer.
    async fn detect(&self) -> Result<(Flavor, Option<ApiInfo>, bool), ApiError> {
        if let Some(flavor) = self.flavor() {
            return Ok((flavor, None, true));
        }
        let _detecting = self.detecting.lock().await;
        {
            let detection = self.detection();
            if let Some(flavor) = detection.flavor {
                return Ok((flavor, None, true));
            }
            if detection.next_attempt.is_some_and(|at| Instant::now() < at) {
                return Ok((Self::assumed(), None, false));
            }
        }
        let mut not_found = None;
        for &flavor in Flavor::ALL {
            let dialect = flavor.dialect();
            match self.query(dialect, Endpoint::Info, Dialect::info).await {
                Ok(info) => {
                    tracing::info!(appliance = %self.name(), "api = auto: the appliance speaks {}", dialect.describe());
                    self.remember(flavor);
                    return Ok((flavor, Some(info), true));
                }
                Err(error) if error.kind == ErrorKind::NotFound => {
                    tracing::info!(appliance = %self.name(), "api = auto: no {} here (404)", dialect.describe());
                    not_found = Some(error);
                }
                // No answer at all (down, timeout, our own budget): nothing was learnt, and the
                // appliance is asked again as soon as it answers, with no backoff.
                Err(error) if !error.kind.appliance_answered() => return Err(error),
                Err(error) => return Ok(self.detection_failed(error)),
            }
        }
        let error = not_found.unwrap_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                self.name(),
                Endpoint::Info,
                "no command API flavour is known",
            )
        });
        Ok(self.detection_failed(error))
    }

    /// Detection failed although the appliance answered (a 500, a body it cannot parse): back
    /// off, say so, and carry on with the assumed flavour.
    fn detection_failed(&self, error: ApiError) -> (Flavor, Option<ApiInfo>, bool) {
        let assumed = Self::assumed();
        let mut detection = self.detection();
        detection.failures = detection.failures.saturating_add(1);
        let doublings = detection.failures.saturating_sub(1).min(10);
        let wait = (FIRST_DETECTION_BACKOFF * 2u32.pow(doublings)).min(MAX_DETECTION_BACKOFF);
        detection.next_attempt = Some(Instant::now() + wait);
        let problem = format!(
            "api = auto: detection failed ({error}); speaking {} meanwhile, detecting again in {}",
            assumed.as_str(),
            humantime::format_duration(wait)
        );
        tracing::warn!(appliance = %self.name(), "{problem}");
        detection.problem = Some(problem);
        (assumed, None, false)
    }

    /// One routine read in `dialect`.
    async fn query<T>(
        &self,
        dialect: &'static dyn Dialect,
        endpoint: Endpoint,
        read: Reader<T>,
    ) -> Result<T, ApiError> {
        self.query_as(dialect, endpoint, read, Priority::Routine)
            .await
    }

    async fn query_as<T>(
        &self,
        dialect: &'static dyn Dialect,
        endpoint: Endpoint,
        read: Reader<T>,
        priority: Priority,
    ) -> Result<T, ApiError> {
        let call = dialect.query(self.session.target(), endpoint);
        let answer = self.session.authenticated(&call, priority).await?;
        read(dialect, self.session.target(), &answer)
    }

    /// One routine read in the appliance's flavour; a good answer in an assumed flavour
    /// confirms it.
    async fn ask<T>(
        &self,
        endpoint: Endpoint,
        read: Reader<T>,
        priority: Priority,
    ) -> Result<T, ApiError> {
        let (flavor, _, confirmed) = self.detect().await?;
        let result = self
            .query_as(flavor.dialect(), endpoint, read, priority)
            .await;
        if result.is_ok() && !confirmed {
            self.remember(flavor);
        }
        result
    }

    /// Whether `/check_health` is to be asked this poll: it is served, or it answered 404
    /// long enough ago to ask again.
    pub fn probe_due(&self) -> bool {
        self.probe_missing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|since| Instant::now() >= since + self.probe_recheck)
    }

    /// Whether the appliance is known to serve `/check_health` (or not known not to).
    pub fn probe_offered(&self) -> bool {
        self.probe_missing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// How long after a 404 `/check_health` is asked again.
    pub fn probe_recheck(&self) -> Duration {
        self.probe_recheck
    }

    /// The unauthenticated `/check_health` probe (the same for every flavour). A 404 is
    /// remembered: the probe is not asked again for the recheck interval.
    pub async fn check_health(&self) -> Result<Probe, ApiError> {
        let result = self.session.check_health().await;
        let mut missing = self
            .probe_missing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &result {
            Err(error) if error.kind == ErrorKind::NotFound => *missing = Some(Instant::now()),
            Ok(_) => *missing = None,
            Err(_) => {}
        }
        result
    }

    pub async fn health(&self) -> Result<Health, ApiError> {
        self.health_as(Priority::Routine).await
    }

    /// `health` at `priority`: critical while a failover is being verified, so that a backoff
    /// routine polling earned cannot hide whether the call took effect.
    pub(crate) async fn health_as(&self, priority: Priority) -> Result<Health, ApiError> {
        self.ask(Endpoint::Health, Dialect::health, priority).await
    }

    pub async fn appliances(&self) -> Result<Vec<ApplianceRecord>, ApiError> {
        self.appliances_as(Priority::Routine).await
    }

    pub(crate) async fn appliances_as(
        &self,
        priority: Priority,
    ) -> Result<Vec<ApplianceRecord>, ApiError> {
        self.ask(Endpoint::Appliance, Dialect::appliances, priority)
            .await
    }

    /// Connected clients per type (v2). Routine: skipped when the budget is short. On the
    /// XML API an error says there is no documented equivalent, without a request.
    pub async fn client_counts(&self) -> Result<ClientCounts, ApiError> {
        let (flavor, _, _) = self.detect().await?;
        if flavor == Flavor::Xml {
            return Err(super::xml::no_client_count(self.session.target()));
        }
        self.ask(
            Endpoint::ClientCount,
            Dialect::client_counts,
            Priority::Routine,
        )
        .await
    }

    pub async fn info(&self) -> Result<ApiInfo, ApiError> {
        match self.detect().await? {
            (_, Some(info), _) => Ok(info),
            (_, None, _) => {
                self.ask(Endpoint::Info, Dialect::info, Priority::Routine)
                    .await
            }
        }
    }

    /// Never retried here: a failover call is not idempotent in its effect on users, so
    /// retrying is the engine's decision, not the transport's. It never waits for flavour
    /// detection either (a routine read that the budget may refuse): it speaks the known
    /// flavour, or the assumed one.
    pub async fn set_failover_role(
        &self,
        request: FailoverRequest,
    ) -> Result<FailoverAccepted, FailoverError> {
        let flavor = self.flavor().unwrap_or_else(Self::assumed);
        let dialect = flavor.dialect();
        let target = self.session.target();
        let not_sent = |error| FailoverError { error, sent: false };
        let call = dialect.failover(target, &request).map_err(not_sent)?;
        let mut sent = false;
        let answer = self
            .session
            .authenticated_tracked(&call, Priority::Critical, &mut sent)
            .await
            .map_err(|error| FailoverError { error, sent })?;
        let mut accepted = dialect
            .accepted(target, &answer)
            .map_err(|error| FailoverError { error, sent: true })?;
        accepted.completes_later |= request.data_sync_first;
        Ok(accepted)
    }
}
