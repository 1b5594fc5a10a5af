//! What every API flavour shares for one appliance: the HTTP client, the token cache, the
//! rate budget, the observer, and the authenticated request with its single retry on 401.
//! The flavours (see [`super::flavor`]) only build requests and read answers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{self, HeaderValue};
use tokio::time::Instant;

use super::budget::{Admission, BudgetSettings, Priority, RateBudget, RateStatus, Refusal};
use super::dialect::{Body, Call};
use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::flavor::ApiChoice;
use super::model::{Probe, json};
use super::observer::{ApiObserver, TokenOutcome, status_label};
use super::target::{Target, short};
use super::token::{Lease, LeaseError, MintFailure, MintHold, TokenCache};
use super::transport::{self, Answer, TransportSetupError};
use crate::secret::Secret;

/// Everything needed to talk to one appliance.
#[derive(Debug, Clone)]
pub struct ApplianceSettings {
    /// The operator's name for the appliance ("east"); used in every message.
    pub name: String,
    /// `https://host[:port]`, no path.
    pub url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// A private CA bundle; when set, only these CAs are trusted.
    pub ca_file: Option<PathBuf>,
    /// An HTTP(S) proxy; without one none is used, whatever the environment says.
    pub proxy: Option<String>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub budget: BudgetSettings,
    /// Which command API to speak.
    pub api: ApiChoice,
    /// The local address requests leave from (`site[].source_address`).
    pub source_address: Option<std::net::IpAddr>,
}

impl ApplianceSettings {
    pub fn new(name: &str, url: &str, client_id: &str, client_secret: Secret) -> Self {
        ApplianceSettings {
            name: name.to_string(),
            url: url.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            ca_file: None,
            proxy: None,
            request_timeout: Duration::from_secs(5),
            max_body_bytes: transport::DEFAULT_MAX_BODY_BYTES,
            budget: BudgetSettings::default(),
            api: ApiChoice::V2,
            source_address: None,
        }
    }
}

pub(super) struct Session {
    settings: ApplianceSettings,
    target: Target,
    basic_auth: Secret,
    http: reqwest::Client,
    tokens: TokenCache,
    // Held for a few arithmetic operations, never across an await.
    budget: Mutex<RateBudget>,
    observer: Arc<dyn ApiObserver>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("appliance", &self.settings.name)
            .field("url", &self.target.url("/", None).as_str())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(super) fn new(
        settings: ApplianceSettings,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Self, TransportSetupError> {
        let target = Target::new(&settings.name, transport::parse_base_url(&settings.url)?);
        let http = transport::shared_http_client(
            settings.request_timeout,
            settings.ca_file.as_deref(),
            settings.proxy.as_deref(),
            settings.source_address,
        )?;
        let basic_auth = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                settings.client_id,
                settings.client_secret.expose()
            ))
        ));
        let budget = Mutex::new(RateBudget::new(settings.budget.clone(), Instant::now()));
        Ok(Session {
            settings,
            target,
            basic_auth,
            http,
            tokens: TokenCache::new(),
            budget,
            observer,
        })
    }

    pub(super) fn name(&self) -> &str {
        self.target.name()
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    /// What the appliance last reported about its rate limit.
    pub(super) fn rate_status(&self) -> RateStatus {
        self.budget.lock().map(|b| b.status()).unwrap_or_default()
    }

    /// The unauthenticated liveness probe `GET /check_health`: no token, no rate budget.
    pub(super) async fn check_health(&self) -> Result<Probe, ApiError> {
        let endpoint = Endpoint::CheckHealth;
        let request = self
            .http
            .get(self.target.url(endpoint.method_and_path().1, None));
        let answer = self.send(endpoint, request).await?;
        match answer.status {
            200 => Ok(Probe::Healthy),
            500 => Ok(Probe::Unhealthy),
            _ => Err(self.target.status_error(endpoint, &answer)),
        }
    }

    /// Sends one request, timing it and reporting it to the observer.
    async fn send(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ApiError> {
        let started = Instant::now();
        let result =
            transport::exchange(request, self.name(), endpoint, self.settings.max_body_bytes).await;
        let code = match &result {
            Ok(answer) => status_label(answer.status),
            Err(error) => error
                .status
                .map_or_else(|| error.kind.label(), status_label),
        };
        self.observer
            .request(self.name(), endpoint, code, started.elapsed());
        if let Ok(answer) = &result
            && endpoint != Endpoint::CheckHealth
        {
            let limit = answer.header_u64("x-ratelimit-limit");
            let remaining = answer.header_u64("x-ratelimit-remaining");
            if let Ok(mut budget) = self.budget.lock() {
                budget.observe(
                    Instant::now(),
                    answer.status,
                    limit,
                    remaining,
                    answer.retry_after(),
                );
            }
        }
        result
    }

    /// Waits for or refuses a place in the rate budget.
    async fn admit(&self, endpoint: Endpoint, priority: Priority) -> Result<(), ApiError> {
        let deadline = Instant::now() + self.settings.request_timeout.max(Duration::from_secs(30));
        loop {
            let admission = match self.budget.lock() {
                Ok(mut budget) => budget.admit(priority, Instant::now()),
                Err(_) => Admission::Go,
            };
            match admission {
                Admission::Go => return Ok(()),
                Admission::Wait(wait) if Instant::now() + wait <= deadline => {
                    tokio::time::sleep(wait).await
                }
                Admission::Wait(wait) => {
                    return Err(ApiError::new(
                        ErrorKind::RateLimited,
                        self.name(),
                        endpoint,
                        format!(
                            "rate limit: would have to wait {} for a request slot",
                            humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
                        ),
                    ));
                }
                Admission::Refuse(refusal) => {
                    let kind = match refusal {
                        Refusal::BackingOff { .. } => ErrorKind::RateLimited,
                        _ => ErrorKind::Budget,
                    };
                    return Err(ApiError::new(
                        kind,
                        self.name(),
                        endpoint,
                        refusal.to_string(),
                    ));
                }
            }
        }
    }

    /// A bearer-authenticated request; on a 401 the token is replaced once and the request
    /// retried once, never more.
    pub(super) async fn authenticated(
        &self,
        call: &Call,
        priority: Priority,
    ) -> Result<Answer, ApiError> {
        self.authenticated_tracked(call, priority, &mut false).await
    }

    /// [`Self::authenticated`], setting `sent` once the request has been handed to the network:
    /// an error with `sent` still false was decided here (budget, token backoff) and never
    /// reached the appliance.
    pub(super) async fn authenticated_tracked(
        &self,
        call: &Call,
        priority: Priority,
        sent: &mut bool,
    ) -> Result<Answer, ApiError> {
        let endpoint = call.endpoint;
        self.admit(endpoint, priority).await?;
        let lease = self.lease(endpoint, priority).await?;
        *sent = true;
        let answer = self.send(endpoint, self.request(call, &lease)).await?;
        if answer.status != 401 {
            self.settle_token(&lease, &answer).await;
            return Ok(answer);
        }
        self.tokens.rejected(lease.generation).await;
        self.admit(endpoint, priority).await?;
        let lease = self.lease(endpoint, priority).await?;
        let answer = self.send(endpoint, self.request(call, &lease)).await?;
        if answer.status == 401 {
            self.tokens.rejected(lease.generation).await;
            let said = json::message(&answer.body)
                .map(|m| format!(": {}", short(&m)))
                .unwrap_or_default();
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                self.name(),
                endpoint,
                format!("rejected a freshly minted token too (401{said}); check that the API account still exists and its secret was not regenerated"),
            )
            .with_status(401));
        }
        self.settle_token(&lease, &answer).await;
        Ok(answer)
    }

    async fn settle_token(&self, lease: &Lease, answer: &Answer) {
        if answer.status != 403 {
            self.tokens.accepted(lease.generation).await;
        }
    }

    fn request(&self, call: &Call, lease: &Lease) -> reqwest::RequestBuilder {
        let bearer =
            HeaderValue::from_str(&format!("Bearer {}", lease.token.expose())).map(|mut v| {
                v.set_sensitive(true);
                v
            });
        let mut request = match &call.body {
            Some(Body::Json(body)) => self
                .http
                .post(call.url.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone()),
            Some(Body::Form(body)) => self
                .http
                .post(call.url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone()),
            None => self.http.get(call.url.clone()),
        };
        request = request.header(header::ACCEPT, call.accept);
        if let Ok(bearer) = bearer {
            request = request.header(header::AUTHORIZATION, bearer);
        }
        request
    }

    async fn lease(&self, endpoint: Endpoint, priority: Priority) -> Result<Lease, ApiError> {
        let result = self.tokens.lease(|| self.mint(priority)).await;
        match result {
            Ok(lease) => Ok(lease),
            Err(LeaseError::Mint(error)) => Err(ApiError { endpoint, ..error }),
            Err(LeaseError::BackingOff { retry_in, why }) => {
                self.observer.token(self.name(), TokenOutcome::BackedOff);
                let retry_in =
                    humantime::format_duration(Duration::from_secs(retry_in.as_secs().max(1)));
                let detail = match why {
                    MintHold::RejectedUnused => format!(
                        "the appliance rejected a token it had just issued; not minting another for {retry_in} (each new token can invalidate another integration's: an API account holds at most 30)"
                    ),
                    MintHold::MintFailed => format!(
                        "the last token requests failed at the appliance; asking again in {retry_in}"
                    ),
                    MintHold::TooSoon => format!(
                        "a token was minted less than {} ago and is no longer usable; minting the next in {retry_in} (at most one token per appliance per {}, whatever the appliance says)",
                        humantime::format_duration(super::token::MIN_MINT_INTERVAL),
                        humantime::format_duration(super::token::MIN_MINT_INTERVAL),
                    ),
                };
                Err(ApiError::new(
                    ErrorKind::Unauthorized,
                    self.name(),
                    endpoint,
                    detail,
                ))
            }
        }
    }

    /// `POST /oauth2/token` with the client credentials.
    async fn mint(&self, priority: Priority) -> Result<(Secret, Option<Duration>), ApiError> {
        let endpoint = Endpoint::Token;
        self.admit(endpoint, priority).await?;
        let mut authorization = HeaderValue::from_str(self.basic_auth.expose()).map_err(|_| {
            ApiError::new(
                ErrorKind::BadRequest,
                self.name(),
                endpoint,
                "client_id or client secret contains characters that cannot be sent in a header",
            )
        })?;
        authorization.set_sensitive(true);
        let request = self
            .http
            .post(self.target.url(endpoint.method_and_path().1, None))
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body("grant_type=client_credentials");
        let answer = match self.send(endpoint, request).await {
            Ok(answer) => answer,
            Err(error) => {
                self.observer.token(self.name(), TokenOutcome::Failed);
                return Err(error);
            }
        };
        match answer.status {
            200 => match json::token(&answer.body) {
                Ok((token, expires_in)) => {
                    self.observer.token(self.name(), TokenOutcome::Minted);
                    // Clamped by the cache; from_secs takes any u64.
                    Ok((Secret::new(token), expires_in.map(Duration::from_secs)))
                }
                Err(m) => {
                    self.observer.token(self.name(), TokenOutcome::Failed);
                    Err(self.target.malformed(endpoint, &answer, m))
                }
            },
            400 | 401 => {
                self.observer.token(self.name(), TokenOutcome::Rejected);
                Err(ApiError::new(
                    ErrorKind::Unauthorized,
                    self.name(),
                    endpoint,
                    format!(
                        "token request rejected ({}): check client_id and the client secret",
                        answer.status
                    ),
                )
                .with_status(answer.status))
            }
            _ => {
                self.observer.token(self.name(), TokenOutcome::Failed);
                Err(self.target.status_error(endpoint, &answer))
            }
        }
    }
}

/// A failed token request backs the cache off only if the appliance answered it: a
/// connection that never opened costs no token and says nothing about asking again.
impl MintFailure for ApiError {
    fn reached_appliance(&self) -> bool {
        self.status.is_some()
    }
}
