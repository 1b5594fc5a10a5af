//! The HTTP face of one simulated appliance: the faults that act before any answer (down,
//! hang, slow), the record of every request, the unauthenticated `/check_health` and
//! `/oauth2/token`, and the dispatch to the command API flavours it serves.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use super::body::SimBody;
use super::http::{
    Answer, ApiCall, answer_method, empty, header_text, is_form, json_answer,
    json_method_not_allowed, message, read_body,
};
use super::state::{Faults, RequestRecord, TokenAnswer};
use super::{Connection, Shared, v2_api, xml_api};

/// A hanging appliance still lets go eventually, so a forgotten fault cannot pin tasks forever.
const MAX_HANG: Duration = Duration::from_secs(600);

/// Why a connection is cut without an answer (the appliance went down mid-request).
fn cut() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "simulated appliance is down",
    )
}

pub(super) async fn handle(
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

    let apis = shared.with(|pair| pair.settings.apis[index]);
    let call = ApiCall {
        shared: &shared,
        index,
        faults: &faults,
        record: &mut record,
    };
    // One line per API flavour; an appliance without it answers 404 there.
    let forced = faults
        .status
        .map(|code| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let mut response = match path.as_str() {
        _ if let Some(status) = forced => empty(status),
        "/check_health" => check_health(&shared, index, &method, &faults),
        "/oauth2/token" => token(&shared, index, request).await,
        p if apis.v2 && v2_api::serves(p) => v2_api::handle(call, request).await,
        p if apis.xml && xml_api::serves(p) => xml_api::handle(call, request).await,
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
    let serves = matches!(*method, Method::GET | Method::HEAD);
    if let Some(answer) = answer_method(method, "GET,HEAD", serves, json_method_not_allowed) {
        return answer;
    }
    if faults.unhealthy {
        empty(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        empty(StatusCode::OK)
    }
}

async fn token(shared: &Shared, index: usize, request: Request<Incoming>) -> Answer {
    let method = request.method();
    if let Some(answer) = answer_method(
        method,
        "POST",
        method == Method::POST,
        json_method_not_allowed,
    ) {
        return answer;
    }
    let form = is_form(&request);
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
        TokenAnswer::Minted { token, expires_in } => {
            let expires_in = shared
                .faults(index)
                .token_expires_in
                .unwrap_or_else(|| json!(expires_in));
            json_answer(
                StatusCode::OK,
                &json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
