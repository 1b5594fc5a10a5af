//! What the simulated appliance's HTTP faces share, whichever API flavour they serve: answers,
//! headers, request bodies, the gate every authenticated request goes through (rate limit,
//! token, permission), the body faults, and carrying out a failover request.

// Handlers return a ready response as their error; it is built once per request, so boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Shared;
use super::body::SimBody;
use super::pair_model::HealthReport;
use super::state::{Authorization, FailoverCall, Faults, RequestRecord};
use crate::api::model::FailoverRequest;
use crate::api::time::UtcTime;

const MAX_REQUEST_BODY: usize = 64 * 1024;
static MALFORMED_BODY: &[u8] = b"{\"version\": \"25.1.1\", \"failover_role\": \"prim";

pub(super) type Answer = Response<SimBody>;

/// An authenticated API request on its way from the router to the flavour that serves it.
pub(super) struct ApiCall<'a> {
    pub shared: &'a Shared,
    pub index: usize,
    /// The appliance's faults when the request arrived.
    pub faults: &'a Faults,
    /// What the request log will say of it; a flavour adds the body it parsed.
    pub record: &'a mut RequestRecord,
}

pub(super) fn json_answer(status: StatusCode, value: &Value) -> Answer {
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

pub(super) fn empty(status: StatusCode) -> Answer {
    let mut response = Response::new(SimBody::empty());
    *response.status_mut() = status;
    response
}

/// The 405 of the JSON endpoints, which explain themselves in a `message`.
pub(super) fn json_method_not_allowed() -> Answer {
    message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// What the method alone decides: OPTIONS lists the `allowed` methods, and a method the
/// resource does not `serve` gets `refusal` (a 405). `None` lets the request through.
pub(super) fn answer_method(
    method: &Method,
    allowed: &'static str,
    serves: bool,
    refusal: fn() -> Answer,
) -> Option<Answer> {
    let mut answer = if *method == Method::OPTIONS {
        empty(StatusCode::OK)
    } else if !serves {
        refusal()
    } else {
        return None;
    };
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    Some(answer)
}

pub(super) fn header_text(request: &Request<Incoming>, name: header::HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether the request's `Content-Type` is a form, as token and XML POSTs must be.
pub(super) fn is_form(request: &Request<Incoming>) -> bool {
    header_text(request, header::CONTENT_TYPE)
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
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
        if faults.rate_limits(request.uri().path()) {
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
            return Err(with_rate_headers(shared, answer, 0, faults));
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
            faults,
        )),
        Authorization::Valid if faults.forbidden => Err(with_rate_headers(
            shared,
            message(
                StatusCode::FORBIDDEN,
                "This API account does not have permission to use the Command API.",
            ),
            remaining,
            faults,
        )),
        Authorization::Valid => Ok(remaining),
    }
}

pub(super) fn with_rate_headers(
    shared: &Shared,
    mut answer: Answer,
    remaining: u32,
    faults: &Faults,
) -> Answer {
    let remaining = faults.ratelimit_remaining.unwrap_or(remaining);
    let headers = answer.headers_mut();
    headers.insert(
        "x-ratelimit-limit",
        shared.with(|p| p.settings.hourly_limit).into(),
    );
    headers.insert("x-ratelimit-remaining", remaining.into());
    answer
}

/// The injected `info_failing` fault's answer, for either API.
pub(super) fn info_failing() -> Answer {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error (injected fault).",
    )
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

/// What an appliance says about itself, whichever API is asked.
pub(super) struct SelfReport {
    pub id: String,
    pub hostname: String,
    pub health: HealthReport,
}

/// Appliance `index`'s answer to a health question, counted as one.
pub(super) fn self_report(shared: &Shared, index: usize) -> SelfReport {
    shared.with(|pair| {
        let appliance = &mut pair.appliances[index];
        appliance.counters.health_requests += 1;
        let (id, hostname) = (appliance.id.clone(), appliance.hostname.clone());
        SelfReport {
            id,
            hostname,
            health: pair.health(index),
        }
    })
}

/// The product and whether the account may use the Command API, as `/info` and
/// `get_api_info` report them.
pub(super) fn product_and_permission(
    shared: &Shared,
    faults: &Faults,
) -> (&'static str, &'static str) {
    let product = shared.with(|pair| pair.settings.product.as_str());
    let permission = if faults.forbidden {
        "deny"
    } else {
        "full_access"
    };
    (product, permission)
}

/// Applies a valid failover request to the pair and records it: (status, message).
pub(super) fn carry_out_failover(
    shared: &Shared,
    index: usize,
    request: FailoverRequest,
) -> (u16, String) {
    let wall = SystemTime::now();
    let at = UtcTime::from_system_time(wall).to_api_string();
    shared.with(|pair| {
        pair.appliances[index].counters.failover_calls += 1;
        let (status, text) = match pair.set_failover_role(index, request, wall) {
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
