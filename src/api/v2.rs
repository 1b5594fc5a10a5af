//! The JSON Command API v2 (`/api/command/v2`), spoken by RS and PRA appliances alike.

use super::dialect::{Body, Call, Dialect, Reading};
use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::model::json::{self, Malformed};
use super::model::{
    ApiInfo, ApplianceRecord, ClientCounts, FailoverAccepted, FailoverRequest, Health,
};
use super::target::Target;
use super::transport::Answer;

pub(super) struct JsonV2;

fn call(target: &Target, endpoint: Endpoint, body: Option<Body>) -> Call {
    Call {
        endpoint,
        url: target.url(endpoint.method_and_path().1, None),
        body,
        accept: "application/json",
    }
}

/// A 200 with a body `parse` understands; anything else is an error.
fn read<T>(
    target: &Target,
    endpoint: Endpoint,
    answer: &Answer,
    parse: fn(&[u8]) -> Result<T, Malformed>,
) -> Reading<T> {
    if answer.status != 200 {
        return Err(target.status_error(endpoint, answer));
    }
    parse(&answer.body).map_err(|m| target.malformed(endpoint, answer, m))
}

impl Dialect for JsonV2 {
    fn describe(&self) -> &'static str {
        "the JSON Command API v2"
    }

    fn query(&self, target: &Target, endpoint: Endpoint) -> Call {
        call(target, endpoint, None)
    }

    /// 200 is healthy, 500 with a HealthBase body is unhealthy.
    fn health(&self, target: &Target, answer: &Answer) -> Reading<Health> {
        let endpoint = Endpoint::Health;
        match answer.status {
            200 => {
                let (health, _) = json::health(&answer.body, true)
                    .map_err(|m| target.malformed(endpoint, answer, m))?;
                Ok(Health::Healthy(health).bounded())
            }
            500 => match json::health(&answer.body, false) {
                Ok((health, message)) => Ok(Health::Unhealthy { health, message }.bounded()),
                Err(_) => Err(target.status_error(endpoint, answer)),
            },
            _ => Err(target.status_error(endpoint, answer)),
        }
    }

    fn appliances(&self, target: &Target, answer: &Answer) -> Reading<Vec<ApplianceRecord>> {
        read(target, Endpoint::Appliance, answer, json::appliances)
            .map(ApplianceRecord::bounded_list)
    }

    fn info(&self, target: &Target, answer: &Answer) -> Reading<ApiInfo> {
        read(target, Endpoint::Info, answer, json::info).map(ApiInfo::bounded)
    }

    fn client_counts(&self, target: &Target, answer: &Answer) -> Reading<ClientCounts> {
        read(target, Endpoint::ClientCount, answer, json::client_counts)
    }

    /// `POST /failover-role` with the request as JSON.
    fn failover(&self, target: &Target, request: &FailoverRequest) -> Reading<Call> {
        let endpoint = Endpoint::FailoverRole;
        let body = serde_json::to_vec(request).map_err(|e| {
            ApiError::new(
                ErrorKind::BadRequest,
                target.name(),
                endpoint,
                format!("cannot encode the request: {e}"),
            )
        })?;
        Ok(call(target, endpoint, Some(Body::Json(body))))
    }

    fn accepted(&self, target: &Target, answer: &Answer) -> Reading<FailoverAccepted> {
        read(target, Endpoint::FailoverRole, answer, |body| {
            let message = json::message(body).unwrap_or_default();
            Ok(FailoverAccepted {
                completes_later: message.contains("upon successful completion"),
                message,
            })
        })
    }
}
