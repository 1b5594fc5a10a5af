//! The simulator's control API: inject faults, read back what the appliances received.
//! It listens on its own port so that the appliance ports carry only appliance traffic.
//! Every route is listed in [`HELP`], which `GET /` returns and the README repeats.

// Handlers return a ready response as their error; it is built once per request, so boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Shared;
use super::body::SimBody;
use super::state::{Faults, FaultsPatch, PairFaultsPatch};
use crate::api::model::FailoverRole;

pub(super) const HELP: &str = "bt-watchdog simulator control API
GET    /sim/state                          roles, faults, counters of both appliances
POST   /sim/appliances/NAME/faults         merge faults, e.g. {\"down\": true}
DELETE /sim/appliances/NAME/faults         clear every fault of NAME
PUT    /sim/appliances/NAME/role           set a role directly: {\"role\": \"primary\"}
POST   /sim/appliances/NAME/revoke-tokens  invalidate NAME's tokens (like a regenerated secret)
POST   /sim/pair/faults                    merge pair faults: partitioned, sync_stale_secs, sync_failing
DELETE /sim/pair/faults                    clear pair faults
GET    /sim/requests?appliance=NAME&path=P&limit=N   recent requests (newest last)
GET    /sim/failover-calls                 every POST /failover-role received
POST   /sim/reset                          back to the start: roles, faults, tokens, counters, logs
Appliance faults: down hang unhealthy slow_ms malformed endless_body rate_limited retry_after_secs
                  token_failing reject_tokens forbidden no_check_health failover_failing
                  expired_certificate (TLS, when the simulator was given an expired certificate)
                  rate_limited_path (429 only there) ratelimit_remaining (reported instead)
                  token_expires_in (any JSON value) info_failing
                  ignored_sources ([\"127.0.0.3\"]: connections from these addresses hang)
                  status (every request answered with this HTTP status, 100-999)
";

type Answer = Response<SimBody>;

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    let mut response = Response::new(SimBody::text(format!("{value:#}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, text: impl Into<String>) -> Answer {
    json_answer(status, &json!({ "error": text.into() }))
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Answer, std::convert::Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let answer = match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => {
            let mut response = Response::new(SimBody::text(HELP));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        (&Method::GET, ["sim", "state"]) => json_answer(StatusCode::OK, &shared.snapshot()),
        (_, ["sim", "appliances", name, "faults"]) => {
            appliance_faults(&shared, &method, name, &body)
        }
        (&Method::PUT, ["sim", "appliances", name, "role"]) => set_role(&shared, name, &body),
        (&Method::POST, ["sim", "appliances", name, "revoke-tokens"]) => {
            match shared.index_of(name) {
                Ok(index) => {
                    shared.with(|pair| pair.revoke_tokens(index));
                    json_answer(StatusCode::OK, &json!({ "revoked": name }))
                }
                Err(answer) => answer,
            }
        }
        (_, ["sim", "pair", "faults"]) => pair_faults(&shared, &method, &body),
        (&Method::GET, ["sim", "requests"]) => requests(&shared, &query),
        (&Method::GET, ["sim", "failover-calls"]) => {
            let calls = shared
                .with(|pair| serde_json::to_value(&pair.failover_calls).unwrap_or(Value::Null));
            json_answer(StatusCode::OK, &calls)
        }
        (&Method::POST, ["sim", "reset"]) => {
            shared.with_change(|pair| pair.reset(SystemTime::now()));
            json_answer(StatusCode::OK, &shared.snapshot())
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no route {method} {path}; GET / lists the routes"),
        ),
    };
    Ok(answer)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Answer> {
    let text = if body.is_empty() {
        &b"{}"[..]
    } else {
        &body[..]
    };
    serde_json::from_slice(text)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

impl Shared {
    fn index_of(&self, name: &str) -> Result<usize, Answer> {
        self.with(|pair| {
            pair.index_of(name).ok_or_else(|| {
                let names: Vec<&str> = pair.appliances.iter().map(|a| a.name.as_str()).collect();
                error(
                    StatusCode::NOT_FOUND,
                    format!("no appliance named {name:?} (have: {})", names.join(", ")),
                )
            })
        })
    }
}

fn appliance_faults(shared: &Shared, method: &Method, name: &str, body: &Bytes) -> Answer {
    let index = match shared.index_of(name) {
        Ok(index) => index,
        Err(answer) => return answer,
    };
    let faults = match *method {
        Method::GET => shared.faults(index),
        Method::POST | Method::PATCH => match parse::<FaultsPatch>(body) {
            Ok(patch) => shared.with_change(|pair| {
                pair.appliances[index].faults.apply(patch);
                pair.appliances[index].faults.clone()
            }),
            Err(answer) => return answer,
        },
        Method::DELETE => shared.with_change(|pair| {
            pair.appliances[index].faults = Faults::default();
            Faults::default()
        }),
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST or DELETE"),
    };
    json_answer(
        StatusCode::OK,
        &json!({ "appliance": name, "faults": faults }),
    )
}

fn pair_faults(shared: &Shared, method: &Method, body: &Bytes) -> Answer {
    let faults = match *method {
        Method::GET => shared.with(|pair| pair.faults.clone()),
        Method::POST | Method::PATCH => match parse::<PairFaultsPatch>(body) {
            Ok(patch) => shared.with_change(|pair| {
                if let Some(v) = patch.partitioned {
                    pair.faults.partitioned = v;
                }
                if let Some(v) = patch.sync_stale_secs {
                    pair.set_sync_stale(v, SystemTime::now());
                }
                if let Some(v) = patch.sync_failing {
                    pair.faults.sync_failing = v;
                }
                pair.faults.clone()
            }),
            Err(answer) => return answer,
        },
        Method::DELETE => shared.with_change(|pair| {
            pair.clear_pair_faults();
            pair.faults.clone()
        }),
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST or DELETE"),
    };
    json_answer(StatusCode::OK, &json!({ "pair_faults": faults }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: FailoverRole,
}

fn set_role(shared: &Shared, name: &str, body: &Bytes) -> Answer {
    let index = match shared.index_of(name) {
        Ok(index) => index,
        Err(answer) => return answer,
    };
    match parse::<RoleBody>(body) {
        Ok(RoleBody { role }) => {
            shared.with_change(|pair| pair.appliances[index].role = role);
            json_answer(
                StatusCode::OK,
                &json!({ "appliance": name, "failover_role": role }),
            )
        }
        Err(answer) => answer,
    }
}

fn requests(shared: &Shared, query: &str) -> Answer {
    let mut appliance = None;
    let mut path = None;
    let mut limit = 100usize;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "appliance" => appliance = Some(value.into_owned()),
            "path" => path = Some(value.into_owned()),
            "limit" => match value.parse() {
                Ok(n) => limit = n,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("limit {value:?} is not a number"),
                    );
                }
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter {other:?}"),
                );
            }
        }
    }
    let records = shared.with(|pair| {
        let matching: Vec<_> = pair
            .requests
            .iter()
            .filter(|r| appliance.as_ref().is_none_or(|a| &r.appliance == a))
            .filter(|r| path.as_ref().is_none_or(|p| &r.path == p))
            .collect();
        let skip = matching.len().saturating_sub(limit);
        serde_json::to_value(&matching[skip..]).unwrap_or(Value::Null)
    });
    json_answer(StatusCode::OK, &records)
}

impl Shared {
    /// Everything the control API reports about the pair.
    pub(super) fn snapshot(&self) -> Value {
        let urls = self.urls.clone();
        self.with(|pair| {
            let now = Instant::now();
            let appliances: Vec<Value> = pair
                .appliances
                .iter()
                .zip(urls.iter())
                .map(|(a, url)| {
                    json!({
                        "name": a.name,
                        "url": url,
                        "id": a.id,
                        "hostname": a.hostname,
                        "failover_role": a.role,
                        "faults": a.faults,
                        "counters": a.counters,
                        "valid_tokens": a.valid_tokens(now),
                    })
                })
                .collect();
            json!({
                "product": pair.settings.product.as_str(),
                "appliances": appliances,
                "pair_faults": pair.faults,
                "swap_in_progress": pair.swap_in_progress(),
                "failover_calls": pair.failover_calls.len(),
            })
        })
    }
}
