//! The JSON Command API v2 of a simulated appliance, under `/api/command/v2`, with the
//! documented header rules, status codes and rate-limit headers, and the injected faults applied.

// Handlers return a ready response as their error; it is built once per request, so boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

use std::time::SystemTime;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::http::{
    Answer, ApiCall, admit, answer_method, carry_out_failover, header_text, info_failing,
    json_answer, json_method_not_allowed, message, product_and_permission, read_body, self_report,
    with_body_faults, with_rate_headers,
};
use super::pair_model::{SHARED_IP, UNHEALTHY_MESSAGE};
use super::state::{Faults, RequestRecord};
use crate::api::model::{FailoverRequest, FailoverRole};
use crate::api::time::UtcTime;

const API_BASE: &str = "/api/command/v2";

pub(super) fn serves(path: &str) -> bool {
    path.strip_prefix(API_BASE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The methods each API resource allows (GET resources also take HEAD, as documented).
fn allowed_methods(resource: &str) -> Option<&'static str> {
    match resource {
        "/health" | "/appliance" | "/info" | "/appliance/client-count" => Some("GET,HEAD"),
        "/failover-role" => Some("POST"),
        _ => None,
    }
}

pub(super) async fn handle(call: ApiCall<'_>, request: Request<Incoming>) -> Answer {
    let ApiCall {
        shared,
        index,
        faults,
        record,
    } = call;
    let resource = request
        .uri()
        .path()
        .trim_start_matches(API_BASE)
        .to_string();
    let method = request.method().clone();
    let Some(allowed) = allowed_methods(&resource) else {
        return message(
            StatusCode::NOT_FOUND,
            "The requested resource was not found.",
        );
    };
    let is_get = method == Method::GET || method == Method::HEAD;
    let serves = if allowed == "POST" {
        method == Method::POST
    } else {
        is_get
    };
    if let Some(answer) = answer_method(&method, allowed, serves, json_method_not_allowed) {
        return answer;
    }
    if is_get
        && !header_text(&request, header::ACCEPT).is_some_and(|v| v.contains("application/json"))
    {
        shared.with(|p| p.appliances[index].counters.header_violations += 1);
        return message(
            StatusCode::NOT_ACCEPTABLE,
            "GET requests must send Accept: application/json.",
        );
    }
    if !is_get
        && !header_text(&request, header::CONTENT_TYPE)
            .is_some_and(|v| v.starts_with("application/json"))
    {
        shared.with(|p| p.appliances[index].counters.header_violations += 1);
        return message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Requests with a body must send Content-Type: application/json.",
        );
    }
    let remaining = match admit(shared, index, &request, faults) {
        Ok(remaining) => remaining,
        Err(answer) => return answer,
    };
    let answer = match resource.as_str() {
        "/health" => with_body_faults(health(shared, index), faults),
        "/appliance" => with_body_faults(appliances(shared), faults),
        "/info" if faults.info_failing => info_failing(),
        "/info" => with_body_faults(info(shared, faults), faults),
        "/appliance/client-count" => with_body_faults(client_count(shared, faults), faults),
        _ => failover_role(shared, index, request, record).await,
    };
    with_rate_headers(shared, answer, remaining, faults)
}

fn health(shared: &Shared, index: usize) -> Answer {
    let report = self_report(shared, index);
    let health = &report.health;
    let mut value = json!({
        "version": "25.2.1",
        "build": "31526",
        "appliance_hostname": report.hostname,
        "appliance_id": report.id,
        "cluster_role": "single",
        "failover_role": health.role.as_str(),
        "last_data_sync": health.last_data_sync.map(|t| UtcTime::from_system_time(t).to_api_string()),
        "last_data_sync_status": health.last_data_sync_status,
        // Responses may gain fields at any time; this one proves that clients ignore them.
        "simulator_extension": { "since": "always" },
    });
    if health.holds_shared_ip {
        value["enabled_shared_ips"] = json!([SHARED_IP]);
    }
    if health.healthy {
        json_answer(StatusCode::OK, &value)
    } else {
        value["message"] = json!(UNHEALTHY_MESSAGE);
        json_answer(StatusCode::INTERNAL_SERVER_ERROR, &value)
    }
}

fn appliances(shared: &Shared) -> Answer {
    let list = shared.with(|pair| {
        pair.appliances
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "hostname": a.hostname,
                    "failover_role": a.role.as_str(),
                    "cluster_role": "single",
                    "accepting_connections": a.role == FailoverRole::Primary,
                })
            })
            .collect::<Vec<_>>()
    });
    json_answer(StatusCode::OK, &Value::Array(list))
}

/// Clients connected to the simulated site at `now`: they come and go with the clock (a few
/// consoles, a few dozen endpoint clients, two Jumpoint gateways), so that a test or a demo
/// sees counts change. Only a primary accepts clients.
pub fn simulated_clients(product: &str, now: SystemTime) -> [(&'static str, u64); 3] {
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let console = if product == "pra" {
        "access_console"
    } else {
        "rep_console"
    };
    [
        (console, 3 + (seconds / 7) % 4),
        ("asset_client", 40 + (seconds / 3) % 10),
        ("gateway", 2),
    ]
}

/// `GET /appliance/client-count`: each appliance of the pair with its counts per type. The
/// vendor publishes no schema for it; this is one plausible shape (the client reads others).
fn client_count(shared: &Shared, faults: &Faults) -> Answer {
    let (product, _) = product_and_permission(shared, faults);
    let counts = simulated_clients(product, SystemTime::now());
    let list = shared.with(|pair| {
        pair.appliances
            .iter()
            .map(|a| {
                let primary = a.role == FailoverRole::Primary;
                let by_type: serde_json::Map<String, Value> = counts
                    .iter()
                    .map(|(kind, n)| (kind.to_string(), json!(if primary { *n } else { 0 })))
                    .collect();
                json!({ "id": a.id, "hostname": a.hostname, "client_counts": by_type })
            })
            .collect::<Vec<_>>()
    });
    json_answer(StatusCode::OK, &Value::Array(list))
}

fn info(shared: &Shared, faults: &Faults) -> Answer {
    let (product, perm_command) = product_and_permission(shared, faults);
    json_answer(
        StatusCode::OK,
        &json!({
            "current_time": UtcTime::from_system_time(SystemTime::now()).to_api_string(),
            "command_api_version": "1.2.0",
            "product": product,
            "permissions": { "perm_command": perm_command, "perm_backup": false },
        }),
    )
}

/// Checks a `/failover-role` body the way the API does: 400 for unknown fields or bad JSON,
/// 422 with an error bag for missing or mistyped values.
fn validate_failover(body: &[u8]) -> Result<FailoverRequest, Answer> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON.",
        ));
    };
    let Value::Object(fields) = value else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
        ));
    };
    let unknown: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "role" | "data_sync_first" | "force"))
        .collect();
    if !unknown.is_empty() {
        return Err(message(
            StatusCode::BAD_REQUEST,
            &format!("Unrecognized field(s): {}.", unknown.join(", ")),
        ));
    }
    let mut errors = serde_json::Map::new();
    let role = match fields.get("role") {
        None => {
            errors.insert("role".into(), json!(["The role field is required."]));
            None
        }
        Some(Value::String(s)) if s == "primary" || s == "backup" => FailoverRole::parse(s),
        Some(_) => {
            errors.insert("role".into(), json!(["The selected role is invalid."]));
            None
        }
    };
    let mut flag = |name: &str| match fields.get(name) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.insert(
                name.into(),
                json!([format!("The {name} field must be true or false.")]),
            );
            false
        }
    };
    let data_sync_first = flag("data_sync_first");
    let force = flag("force");
    match role {
        Some(role) if errors.is_empty() => Ok(FailoverRequest {
            role,
            data_sync_first,
            force,
        }),
        _ => Err(json_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "message": "Validation failed.", "errors": errors }),
        )),
    }
}

async fn failover_role(
    shared: &Shared,
    index: usize,
    request: Request<Incoming>,
    record: &mut RequestRecord,
) -> Answer {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    record.body = serde_json::from_slice(&body).ok();
    match validate_failover(&body) {
        Ok(request) => {
            let (status, text) = carry_out_failover(shared, index, request);
            message(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &text,
            )
        }
        Err(answer) => {
            shared.with(|pair| pair.appliances[index].counters.failover_calls += 1);
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(body: &str) -> Result<FailoverRequest, u16> {
        validate_failover(body.as_bytes()).map_err(|a| a.status().as_u16())
    }

    #[test]
    fn failover_bodies_are_validated_like_the_api() {
        assert_eq!(
            status_of(r#"{"role":"primary","data_sync_first":true,"force":false}"#),
            Ok(FailoverRequest {
                role: FailoverRole::Primary,
                data_sync_first: true,
                force: false
            })
        );
        assert_eq!(
            status_of(r#"{"role":"backup"}"#).map(|r| r.force),
            Ok(false)
        );
        assert_eq!(status_of("not json"), Err(400));
        assert_eq!(status_of("[]"), Err(400));
        assert_eq!(status_of(r#"{"role":"primary","urgent":true}"#), Err(400));
        assert_eq!(status_of(r#"{"data_sync_first":true}"#), Err(422));
        assert_eq!(status_of(r#"{"role":"leader"}"#), Err(422));
        assert_eq!(status_of(r#"{"role":"primary","force":"true"}"#), Err(422));
        assert_eq!(
            status_of(r#"{"role":"primary","data_sync_first":1}"#),
            Err(422)
        );
    }
}
