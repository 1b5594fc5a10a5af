//! The HTTP face of one simulated appliance: `/check_health`, `/oauth2/token` and the JSON
//! Command API v2 under `/api/command/v2`, with the documented header rules, status codes and
//! rate-limit headers, and the injected faults applied.

// Handlers return a ready response as their error; it is built once per request, so boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::body::SimBody;
use super::state::{Authorization, FailoverCall, Faults, Pair, RequestRecord, TokenAnswer};
use super::{Connection, Shared};
use crate::api::model::{FailoverRequest, FailoverRole};
use crate::api::time::UtcTime;

const API_BASE: &str = "/api/command/v2";
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// A hanging appliance still lets go eventually, so a forgotten fault cannot pin tasks forever.
const MAX_HANG: Duration = Duration::from_secs(600);
static MALFORMED_BODY: &[u8] = b"{\"version\": \"25.1.1\", \"failover_role\": \"prim";

pub(super) type Answer = Response<SimBody>;

/// Why a connection is cut without an answer (the appliance went down mid-request).
fn cut() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "simulated appliance is down",
    )
}

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    let mut response = Response::new(SimBody::text(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn message(status: StatusCode, text: &str) -> Answer {
    json_answer(status, &json!({ "message": text }))
}

fn empty(status: StatusCode) -> Answer {
    let mut response = Response::new(SimBody::empty());
    *response.status_mut() = status;
    response
}

fn allow(methods: &'static str, status: StatusCode) -> Answer {
    let mut response = if status == StatusCode::METHOD_NOT_ALLOWED {
        message(status, "Method Not Allowed")
    } else {
        empty(status)
    };
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    response
}

pub(super) fn header_text(request: &Request<Incoming>, name: header::HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub async fn handle(
    shared: Arc<Shared>,
    index: usize,
    connection: Connection,
    request: Request<Incoming>,
) -> Result<Answer, std::io::Error> {
    let reused = connection.note_request();
    let wants_close = request
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let faults = shared.with(|pair| {
        let counters = &mut pair.appliances[index].counters;
        counters.requests += 1;
        if reused {
            counters.connections_reused += 1;
        }
        if !wants_close {
            counters.missing_connection_close += 1;
        }
        pair.appliances[index].faults.clone()
    });
    if faults.down {
        return Err(cut());
    }
    if faults.hang {
        let started = Instant::now();
        let mut changes = shared.changes.subscribe();
        loop {
            let faults = shared.faults(index);
            if faults.down {
                return Err(cut());
            }
            if !faults.hang || started.elapsed() >= MAX_HANG {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
        }
    }
    if faults.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.slow_ms)).await;
        if shared.faults(index).down {
            return Err(cut());
        }
    }

    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut record = RequestRecord {
        appliance: shared.with(|p| p.appliances[index].name.clone()),
        connection: connection.id,
        method: method.to_string(),
        path: path.clone(),
        status: 0,
        accept: header_text(&request, header::ACCEPT),
        content_type: header_text(&request, header::CONTENT_TYPE),
        connection_header: header_text(&request, header::CONNECTION),
        authorization: request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_ascii_lowercase),
        body: None,
    };

    let mut response = match path.as_str() {
        "/check_health" => check_health(&shared, index, &method, &faults),
        "/oauth2/token" => token(&shared, index, request).await,
        p if p == API_BASE || p.starts_with(&format!("{API_BASE}/")) => {
            if shared.with(|pair| pair.settings.apis[index].v2) {
                api(&shared, index, request, &faults, &mut record).await
            } else {
                message(StatusCode::NOT_FOUND, "Not Found")
            }
        }
        super::xml_api::PATH => {
            if shared.with(|pair| pair.settings.apis[index].xml) {
                super::xml_api::handle(&shared, index, request, &faults, &mut record).await
            } else {
                message(StatusCode::NOT_FOUND, "Not Found")
            }
        }
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    };
    if method == Method::HEAD {
        *response.body_mut() = SimBody::empty();
    }
    record.status = response.status().as_u16();
    shared.with(|pair| pair.record_request(record));
    Ok(response)
}

fn check_health(shared: &Shared, index: usize, method: &Method, faults: &Faults) -> Answer {
    shared.with(|pair| pair.appliances[index].counters.check_health_requests += 1);
    if faults.no_check_health {
        return empty(StatusCode::NOT_FOUND);
    }
    match *method {
        Method::GET | Method::HEAD if faults.unhealthy => empty(StatusCode::INTERNAL_SERVER_ERROR),
        Method::GET | Method::HEAD => empty(StatusCode::OK),
        Method::OPTIONS => allow("GET,HEAD", StatusCode::OK),
        _ => allow("GET,HEAD", StatusCode::METHOD_NOT_ALLOWED),
    }
}

pub(super) async fn read_body(request: Request<Incoming>) -> Result<Bytes, Answer> {
    match Limited::new(request.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large.",
        )),
    }
}

async fn token(shared: &Shared, index: usize, request: Request<Incoming>) -> Answer {
    if request.method() == Method::OPTIONS {
        return allow("POST", StatusCode::OK);
    }
    if request.method() != Method::POST {
        return allow("POST", StatusCode::METHOD_NOT_ALLOWED);
    }
    let form = header_text(&request, header::CONTENT_TYPE)
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let credentials = header_text(&request, header::AUTHORIZATION).and_then(|v| decode_basic(&v));
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let oauth_error = |status, error: &str, description: &str| {
        json_answer(
            status,
            &json!({ "error": error, "error_description": description }),
        )
    };
    if !form {
        shared.with(|p| p.appliances[index].counters.header_violations += 1);
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let grant_ok = std::str::from_utf8(&body)
        .map(|b| {
            b.split('&')
                .any(|pair| pair == "grant_type=client_credentials")
        })
        .unwrap_or(false);
    if !grant_ok {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let Some((client_id, secret)) = credentials else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Basic client credentials are required",
        );
    };
    let answer = shared.with(|pair| pair.mint_token(index, &client_id, &secret, Instant::now()));
    match answer {
        TokenAnswer::Minted { token, expires_in } => json_answer(
            StatusCode::OK,
            &json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
        ),
        TokenAnswer::BadCredentials => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        ),
        TokenAnswer::Failing => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Token service unavailable (injected fault).",
        ),
    }
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The methods each API resource allows (GET resources also take HEAD, as documented).
fn allowed_methods(resource: &str) -> Option<&'static str> {
    match resource {
        "/health" | "/appliance" | "/info" => Some("GET,HEAD"),
        "/failover-role" => Some("POST"),
        _ => None,
    }
}

async fn api(
    shared: &Shared,
    index: usize,
    request: Request<Incoming>,
    faults: &Faults,
    record: &mut RequestRecord,
) -> Answer {
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
    if method == Method::OPTIONS {
        return allow(allowed, StatusCode::OK);
    }
    let is_get = method == Method::GET || method == Method::HEAD;
    let method_ok = if allowed == "POST" {
        method == Method::POST
    } else {
        is_get
    };
    if !method_ok {
        return allow(allowed, StatusCode::METHOD_NOT_ALLOWED);
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
        "/info" => with_body_faults(info(shared, faults), faults),
        _ => failover_role(shared, index, request, record).await,
    };
    with_rate_headers(shared, answer, remaining)
}

/// What every authenticated request goes through, whichever API: the rate limit (or an
/// injected 429), the bearer token, the account's permission. `Ok` carries the requests left
/// this hour; `Err` is the answer to send instead.
pub(super) fn admit(
    shared: &Shared,
    index: usize,
    request: &Request<Incoming>,
    faults: &Faults,
) -> Result<u32, Answer> {
    let bearer = header_text(request, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
    let now = Instant::now();
    let limited = shared.with(|pair| {
        if faults.rate_limited {
            pair.appliances[index].counters.rate_limited += 1;
            return Err(faults.retry_after_secs);
        }
        pair.charge_rate_limit(index, now).map_err(Some)
    });
    let remaining = match limited {
        Ok(remaining) => remaining,
        Err(retry_after) => {
            let mut answer = message(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.");
            if let Some(seconds) = retry_after {
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            return Err(with_rate_headers(shared, answer, 0));
        }
    };
    match shared.with(|pair| pair.authorize(index, bearer.as_deref(), now)) {
        Authorization::Invalid => Err(with_rate_headers(
            shared,
            json_answer(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "access_denied", "message": "The resource owner or authorization server denied the request." }),
            ),
            remaining,
        )),
        Authorization::Valid if faults.forbidden => Err(with_rate_headers(
            shared,
            message(
                StatusCode::FORBIDDEN,
                "This API account does not have permission to use the Command API.",
            ),
            remaining,
        )),
        Authorization::Valid => Ok(remaining),
    }
}

pub(super) fn with_rate_headers(shared: &Shared, mut answer: Answer, remaining: u32) -> Answer {
    let headers = answer.headers_mut();
    headers.insert(
        "x-ratelimit-limit",
        shared.with(|p| p.settings.hourly_limit).into(),
    );
    headers.insert("x-ratelimit-remaining", remaining.into());
    answer
}

/// Applies the body faults to a successful read answer.
pub(super) fn with_body_faults(mut answer: Answer, faults: &Faults) -> Answer {
    if faults.endless_body {
        *answer.body_mut() = SimBody::Endless;
    } else if faults.malformed {
        *answer.body_mut() = SimBody::text(Bytes::from_static(MALFORMED_BODY));
    }
    answer
}

pub(super) fn health_value(pair: &Pair, index: usize, wall: SystemTime) -> Value {
    let appliance = &pair.appliances[index];
    let (last_sync, status) = pair.data_sync(index, wall);
    let mut value = json!({
        "version": "25.2.1",
        "build": "31526",
        "appliance_hostname": appliance.hostname,
        "appliance_id": appliance.id,
        "cluster_role": "single",
        "failover_role": appliance.role.as_str(),
        "last_data_sync": last_sync.map(|t| UtcTime::from_system_time(t).to_api_string()),
        "last_data_sync_status": status,
        // Responses may gain fields at any time; this one proves that clients ignore them.
        "simulator_extension": { "since": "always" },
    });
    if appliance.role == FailoverRole::Primary {
        value["enabled_shared_ips"] = json!(["192.0.2.10"]);
    }
    value
}

fn health(shared: &Shared, index: usize) -> Answer {
    let wall = SystemTime::now();
    let (value, unhealthy) = shared.with(|pair| {
        pair.appliances[index].counters.health_requests += 1;
        (
            health_value(pair, index, wall),
            pair.appliances[index].faults.unhealthy,
        )
    });
    if unhealthy {
        let mut value = value;
        value["message"] = json!("The appliance is unhealthy (injected fault).");
        json_answer(StatusCode::INTERNAL_SERVER_ERROR, &value)
    } else {
        json_answer(StatusCode::OK, &value)
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

fn info(shared: &Shared, faults: &Faults) -> Answer {
    let product = shared.with(|pair| pair.settings.product.as_str());
    let perm_command = if faults.forbidden {
        "deny"
    } else {
        "full_access"
    };
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

/// Applies a valid failover request to the pair and records it: (status, message).
pub(super) fn carry_out_failover(
    shared: &Shared,
    index: usize,
    request: FailoverRequest,
) -> (u16, String) {
    let at = UtcTime::from_system_time(SystemTime::now()).to_api_string();
    shared.with(|pair| {
        pair.appliances[index].counters.failover_calls += 1;
        let (status, text) = match pair.set_failover_role(index, request, Instant::now()) {
            Ok(text) => (200, text),
            Err((status, text)) => (status, text),
        };
        pair.failover_calls.push(FailoverCall {
            appliance: pair.appliances[index].name.clone(),
            at,
            role: request.role,
            data_sync_first: request.data_sync_first,
            force: request.force,
            status,
            message: text.clone(),
        });
        (status, text)
    })
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

    #[test]
    fn basic_credentials_are_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("id:se:cret");
        assert_eq!(
            decode_basic(&format!("Basic {encoded}")),
            Some(("id".into(), "se:cret".into()))
        );
        assert_eq!(decode_basic("Bearer x"), None);
        assert_eq!(decode_basic("Basic !!!"), None);
    }
}
