//! What a command API flavour is: how it asks for each thing and how it reads the answers.
//!
//! A dialect does no IO. The session sends its calls (token, rate budget, the one retry on
//! 401) and hands back the answer, so a flavour is request building and parsing only, and the
//! authentication rules cannot drift apart between flavours.

use super::endpoint::Endpoint;
use super::error::ApiError;
use super::model::{
    ApiInfo, ApplianceRecord, ClientCounts, FailoverAccepted, FailoverRequest, Health,
};
use super::target::Target;
use super::transport::Answer;

/// A request body.
#[derive(Debug, Clone)]
pub(super) enum Body {
    Json(Vec<u8>),
    Form(String),
}

/// One authenticated request, as a dialect describes it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub endpoint: Endpoint,
    pub url: reqwest::Url,
    pub body: Option<Body>,
    pub accept: &'static str,
}

/// What reading an answer gives: the value, or why there is none.
pub(super) type Reading<T> = Result<T, ApiError>;

pub(super) trait Dialect: Sync {
    /// How the logs name it ("the JSON Command API v2").
    fn describe(&self) -> &'static str;

    /// The request that reads `endpoint`: [`Endpoint::Health`], [`Endpoint::Appliance`] or
    /// [`Endpoint::Info`].
    fn query(&self, target: &Target, endpoint: Endpoint) -> Call;

    fn health(&self, target: &Target, answer: &Answer) -> Reading<Health>;

    fn appliances(&self, target: &Target, answer: &Answer) -> Reading<Vec<ApplianceRecord>>;

    fn info(&self, target: &Target, answer: &Answer) -> Reading<ApiInfo>;

    fn client_counts(&self, target: &Target, answer: &Answer) -> Reading<ClientCounts>;

    /// The failover call; encoding the request can fail.
    fn failover(&self, target: &Target, request: &FailoverRequest) -> Reading<Call>;

    /// Reads the answer to [`Dialect::failover`]'s call. Whether the request asked for a data
    /// sync first is added by the caller: that means "completes later" in every flavour.
    fn accepted(&self, target: &Target, answer: &Answer) -> Reading<FailoverAccepted>;
}
