//! The JSON Command API v2 (`/api/command/v2`), spoken by RS and PRA appliances alike.

use super::budget::Priority;
use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::model::{ApiInfo, ApplianceRecord, FailoverAccepted, FailoverRequest, Health, json};
use super::session::{Body, Call, Session};

impl Session {
    fn v2_call(&self, endpoint: Endpoint, body: Option<Body>) -> Call {
        Call {
            endpoint,
            url: self.url(endpoint.method_and_path().1, None),
            body,
            accept: "application/json",
        }
    }

    /// `GET /health`: 200 is healthy, 500 with a HealthBase body is unhealthy.
    pub(super) async fn v2_health(&self) -> Result<Health, ApiError> {
        let endpoint = Endpoint::Health;
        let answer = self
            .authenticated(&self.v2_call(endpoint, None), Priority::Routine)
            .await?;
        match answer.status {
            200 => {
                let (health, _) = json::health(&answer.body, true)
                    .map_err(|m| self.malformed(endpoint, &answer, m))?;
                Ok(Health::Healthy(health))
            }
            500 => match json::health(&answer.body, false) {
                Ok((health, message)) => Ok(Health::Unhealthy { health, message }),
                Err(_) => Err(self.status_error(endpoint, &answer)),
            },
            _ => Err(self.status_error(endpoint, &answer)),
        }
    }

    /// `GET /appliance`.
    pub(super) async fn v2_appliances(&self) -> Result<Vec<ApplianceRecord>, ApiError> {
        let endpoint = Endpoint::Appliance;
        let answer = self
            .authenticated(&self.v2_call(endpoint, None), Priority::Routine)
            .await?;
        if answer.status != 200 {
            return Err(self.status_error(endpoint, &answer));
        }
        json::appliances(&answer.body).map_err(|m| self.malformed(endpoint, &answer, m))
    }

    /// `GET /info`.
    pub(super) async fn v2_info(&self) -> Result<ApiInfo, ApiError> {
        let endpoint = Endpoint::Info;
        let answer = self
            .authenticated(&self.v2_call(endpoint, None), Priority::Routine)
            .await?;
        if answer.status != 200 {
            return Err(self.status_error(endpoint, &answer));
        }
        json::info(&answer.body).map_err(|m| self.malformed(endpoint, &answer, m))
    }

    /// `POST /failover-role`. Never retried here: a failover call is not idempotent in its
    /// effect on users, so retrying is the engine's decision, not the transport's.
    pub(super) async fn v2_set_failover_role(
        &self,
        request: FailoverRequest,
    ) -> Result<FailoverAccepted, ApiError> {
        let endpoint = Endpoint::FailoverRole;
        let body = serde_json::to_vec(&request).map_err(|e| {
            ApiError::new(
                ErrorKind::BadRequest,
                self.name(),
                endpoint,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let answer = self
            .authenticated(
                &self.v2_call(endpoint, Some(Body::Json(body))),
                Priority::Critical,
            )
            .await?;
        if answer.status != 200 {
            return Err(self.status_error(endpoint, &answer));
        }
        let message = json::message(&answer.body).unwrap_or_default();
        let completes_later =
            request.data_sync_first || message.contains("upon successful completion");
        Ok(FailoverAccepted {
            message,
            completes_later,
        })
    }
}
