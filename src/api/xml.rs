//! The older XML command API (`/api/command?action=…`), still present on older appliances.
//! Same token, same transport rules (Connection: close, timeouts, body cap, rate budget).

use super::budget::Priority;
use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::model::json::Malformed;
use super::model::{ApiInfo, ApplianceRecord, FailoverAccepted, FailoverRequest, Health};
use super::session::{Body, Call, Session, short};
use super::transport::Answer;
use super::xml_parse::{self, Answered};

pub const PATH: &str = "/api/command";

/// The XML action behind each endpoint.
pub fn action(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Health => "check_health",
        Endpoint::Appliance => "get_appliances",
        Endpoint::Info => "get_api_info",
        Endpoint::FailoverRole => "set_failover_role",
        Endpoint::Token => "token",
        Endpoint::CheckHealth => "check_health",
    }
}

const ACCEPT: &str = "application/xml, text/xml";

impl Session {
    fn xml_get(&self, endpoint: Endpoint) -> Call {
        Call {
            endpoint,
            url: self.url(PATH, Some(&format!("action={}", action(endpoint)))),
            body: None,
            accept: ACCEPT,
        }
    }

    /// Reads an XML answer: HTTP errors as usual, then the document, then `<error>`.
    fn xml_answer<T>(
        &self,
        endpoint: Endpoint,
        answer: &Answer,
        parse: fn(&[u8]) -> Result<Answered<T>, Malformed>,
    ) -> Result<T, ApiError> {
        if answer.status != 200 {
            return Err(self.status_error(endpoint, answer));
        }
        match parse(&answer.body) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => {
                let kind = if message.to_ascii_lowercase().contains("permission") {
                    ErrorKind::Forbidden
                } else if endpoint == Endpoint::FailoverRole {
                    ErrorKind::Server
                } else {
                    ErrorKind::BadRequest
                };
                Err(ApiError::new(
                    kind,
                    self.name(),
                    endpoint,
                    format!(
                        "XML action {} answered <error>: {}",
                        action(endpoint),
                        short(&message)
                    ),
                )
                .with_status(200))
            }
            Err(problem) => Err(self.malformed(endpoint, answer, problem)),
        }
    }

    pub(super) async fn xml_health(&self) -> Result<Health, ApiError> {
        let endpoint = Endpoint::Health;
        let answer = self
            .authenticated(&self.xml_get(endpoint), Priority::Routine)
            .await?;
        self.xml_answer(endpoint, &answer, xml_parse::check_health)
    }

    pub(super) async fn xml_appliances(&self) -> Result<Vec<ApplianceRecord>, ApiError> {
        let endpoint = Endpoint::Appliance;
        let answer = self
            .authenticated(&self.xml_get(endpoint), Priority::Routine)
            .await?;
        self.xml_answer(endpoint, &answer, xml_parse::appliances)
    }

    pub(super) async fn xml_info(&self) -> Result<ApiInfo, ApiError> {
        let endpoint = Endpoint::Info;
        let answer = self
            .authenticated(&self.xml_get(endpoint), Priority::Routine)
            .await?;
        self.xml_answer(endpoint, &answer, xml_parse::api_info)
    }

    /// A form-encoded POST with `data_sync_first` and `force` as 0 or 1, as the XML API wants.
    pub(super) async fn xml_set_failover_role(
        &self,
        request: FailoverRequest,
    ) -> Result<FailoverAccepted, ApiError> {
        let endpoint = Endpoint::FailoverRole;
        let flag = |b: bool| if b { "1" } else { "0" };
        let form = format!(
            "action=set_failover_role&role={}&data_sync_first={}&force={}",
            request.role.as_str(),
            flag(request.data_sync_first),
            flag(request.force)
        );
        let call = Call {
            endpoint,
            url: self.url(PATH, None),
            body: Some(Body::Form(form)),
            accept: ACCEPT,
        };
        let answer = self.authenticated(&call, Priority::Critical).await?;
        let mut accepted = self.xml_answer(endpoint, &answer, xml_parse::failover_answer)?;
        accepted.completes_later |= request.data_sync_first;
        Ok(accepted)
    }
}
