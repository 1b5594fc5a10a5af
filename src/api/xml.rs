//! The older XML command API (`/api/command?action=…`), still present on older appliances.
//! Same token, same transport rules (Connection: close, timeouts, body cap, rate budget).

use super::dialect::{Body, Call, Dialect, Reading};
use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::model::json::Malformed;
use super::model::{
    ApiInfo, ApplianceRecord, ClientCounts, FailoverAccepted, FailoverRequest, Health,
};

/// The XML API lists `get_connected_client_list` and `get_connected_clients`, but the vendor
/// document gives neither's answer, so the watchdog does not guess at one.
pub(super) fn no_client_count(target: &Target) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        target.name(),
        Endpoint::ClientCount,
        "the XML command API documents no client count (get_connected_clients has no published answer); connected clients are read with the JSON API v2 only",
    )
}
use super::target::{Target, short};
use super::transport::Answer;
use super::xml_parse::{self, Answered};

const PATH: &str = "/api/command";
const ACCEPT: &str = "application/xml, text/xml";

pub(super) struct XmlCommands;

/// The XML action behind each endpoint.
fn action(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Health => "check_health",
        Endpoint::Appliance => "get_appliances",
        Endpoint::Info => "get_api_info",
        Endpoint::FailoverRole => "set_failover_role",
        Endpoint::Token => "token",
        Endpoint::CheckHealth => "check_health",
        // Never sent: the client answers for the XML API itself (no documented schema).
        Endpoint::ClientCount => "get_connected_clients",
    }
}

/// Reads an XML answer: HTTP errors as usual, then the document, then `<error>`.
fn read<T>(
    target: &Target,
    endpoint: Endpoint,
    answer: &Answer,
    parse: fn(&[u8]) -> Result<Answered<T>, Malformed>,
) -> Reading<T> {
    if answer.status != 200 {
        return Err(target.status_error(endpoint, answer));
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
                target.name(),
                endpoint,
                format!(
                    "XML action {} answered <error>: {}",
                    action(endpoint),
                    short(&message)
                ),
            )
            .with_status(200))
        }
        Err(problem) => Err(target.malformed(endpoint, answer, problem)),
    }
}

impl Dialect for XmlCommands {
    fn describe(&self) -> &'static str {
        "the XML command API"
    }

    fn query(&self, target: &Target, endpoint: Endpoint) -> Call {
        Call {
            endpoint,
            url: target.url(PATH, Some(&format!("action={}", action(endpoint)))),
            body: None,
            accept: ACCEPT,
        }
    }

    fn health(&self, target: &Target, answer: &Answer) -> Reading<Health> {
        read(target, Endpoint::Health, answer, xml_parse::check_health).map(Health::bounded)
    }

    fn appliances(&self, target: &Target, answer: &Answer) -> Reading<Vec<ApplianceRecord>> {
        read(target, Endpoint::Appliance, answer, xml_parse::appliances)
            .map(ApplianceRecord::bounded_list)
    }

    fn info(&self, target: &Target, answer: &Answer) -> Reading<ApiInfo> {
        read(target, Endpoint::Info, answer, xml_parse::api_info).map(ApiInfo::bounded)
    }

    fn client_counts(&self, target: &Target, _: &Answer) -> Reading<ClientCounts> {
        Err(no_client_count(target))
    }

    /// A form-encoded POST with `data_sync_first` and `force` as 0 or 1, as the XML API wants.
    fn failover(&self, target: &Target, request: &FailoverRequest) -> Reading<Call> {
        let flag = |b: bool| if b { "1" } else { "0" };
        let form = format!(
            "action=set_failover_role&role={}&data_sync_first={}&force={}",
            request.role.as_str(),
            flag(request.data_sync_first),
            flag(request.force)
        );
        Ok(Call {
            endpoint: Endpoint::FailoverRole,
            url: target.url(PATH, None),
            body: Some(Body::Form(form)),
            accept: ACCEPT,
        })
    }

    fn accepted(&self, target: &Target, answer: &Answer) -> Reading<FailoverAccepted> {
        read(
            target,
            Endpoint::FailoverRole,
            answer,
            xml_parse::failover_answer,
        )
    }
}
