//! The older XML command API of a simulated appliance: `/api/command?action=…` by GET, or a
//! form-encoded POST, answering XML in the appliance's namespace, with `<error>` (HTTP 200)
//! for what the real API refuses.

// Handlers return a ready response as their error; it is built once per request.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::Shared;
use super::body::SimBody;
use super::http::{
    Answer, ApiCall, admit, answer_method, carry_out_failover, empty, info_failing, is_form,
    product_and_permission, read_body, self_report, with_body_faults, with_rate_headers,
};
use super::pair_model::{SHARED_IP, UNHEALTHY_MESSAGE};
use super::state::Faults;
use crate::api::model::{FailoverRequest, FailoverRole};
use crate::api::time::UtcTime;

const PATH: &str = "/api/command";

pub(super) fn serves(path: &str) -> bool {
    path == PATH
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml(namespace: &Option<String>, root: &str, inner: &str) -> Answer {
    let xmlns = namespace
        .as_ref()
        .map(|n| format!(" xmlns=\"{}\"", escape(n)))
        .unwrap_or_default();
    let body =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}{xmlns}>{inner}</{root}>\n");
    let mut response = Response::new(SimBody::text(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

fn error(namespace: &Option<String>, text: &str) -> Answer {
    xml(namespace, "error", &escape(text))
}

pub(super) async fn handle(call: ApiCall<'_>, request: Request<Incoming>) -> Answer {
    let (shared, index, faults) = (call.shared, call.index, call.faults);
    let method = request.method().clone();
    let serves = matches!(method, Method::GET | Method::HEAD | Method::POST);
    // Unlike the JSON API, the XML API's 405 carries no body.
    if let Some(answer) = answer_method(&method, "GET,HEAD,POST", serves, || {
        empty(StatusCode::METHOD_NOT_ALLOWED)
    }) {
        return answer;
    }
    let remaining = match admit(shared, index, &request, faults) {
        Ok(remaining) => remaining,
        Err(answer) => return answer,
    };
    let namespace = shared.with(|p| p.settings.xml_namespaces[index].clone());
    let query = request.uri().query().unwrap_or_default().to_string();
    let mut params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if method == Method::POST {
        // "POST requests must include a Content-Type: application/x-www-form-urlencoded".
        if !is_form(&request) {
            shared.with(|p| p.appliances[index].counters.header_violations += 1);
            return with_rate_headers(
                shared,
                error(
                    &namespace,
                    "POST requests must be application/x-www-form-urlencoded.",
                ),
                remaining,
                faults,
            );
        }
        match read_body(request).await {
            Ok(body) => params.extend(form_urlencoded::parse(&body).into_owned()),
            Err(answer) => return answer,
        }
    }
    call.record.body = Some(serde_json::to_value(&params).unwrap_or_default());
    let answer = match params.get("action").map(String::as_str) {
        Some("check_health") => with_body_faults(health(shared, index, &namespace), faults),
        Some("get_appliances") => with_body_faults(appliances(shared, &namespace), faults),
        Some("get_api_info") if faults.info_failing => info_failing(),
        Some("get_api_info") => with_body_faults(api_info(shared, &namespace, faults), faults),
        Some("set_failover_role") => set_failover_role(shared, index, &namespace, &params),
        Some(other) => error(&namespace, &format!("Invalid action: {other}")),
        None => error(&namespace, "The action parameter is required."),
    };
    with_rate_headers(shared, answer, remaining, faults)
}

fn health(shared: &Shared, index: usize, namespace: &Option<String>) -> Answer {
    let report = self_report(shared, index);
    let health = &report.health;
    let mut inner = format!(
        "<appliance id=\"{}\">{}</appliance><version>25.2.1 (31526)</version><success>{}</success>",
        escape(&report.id),
        escape(&report.hostname),
        u8::from(health.healthy)
    );
    if !health.healthy {
        inner.push_str(&format!(
            "<error_message>{UNHEALTHY_MESSAGE}</error_message>"
        ));
    }
    inner.push_str(&format!(
        "<failover_role>{}</failover_role>",
        health.role.as_str()
    ));
    if health.holds_shared_ip {
        inner.push_str(&format!(
            "<enabled_shared_ips><ip>{SHARED_IP}</ip></enabled_shared_ips>"
        ));
    }
    if let Some(at) = health.last_data_sync {
        let at = UtcTime::from_system_time(at);
        inner.push_str(&format!(
            "<last_data_sync_time ts=\"{}\">{}</last_data_sync_time>",
            at.unix_seconds(),
            at.to_api_string()
        ));
    }
    if let Some(status) = &health.last_data_sync_status {
        inner.push_str(&format!(
            "<last_data_sync_status>{}</last_data_sync_status>",
            escape(status)
        ));
    }
    xml(namespace, "health_check", &inner)
}

fn appliances(shared: &Shared, namespace: &Option<String>) -> Answer {
    let inner = shared.with(|pair| {
        pair.appliances
            .iter()
            .map(|a| {
                format!(
                    "<appliance id=\"{}\"><name>{}</name><public_hostname>{}</public_hostname><cluster_role>single</cluster_role><failover_role>{}</failover_role><accepting_connections>{}</accepting_connections><timezone_offset>0</timezone_offset></appliance>",
                    escape(&a.id),
                    escape(&a.name),
                    escape(&a.hostname),
                    a.role.as_str(),
                    u8::from(a.role == FailoverRole::Primary)
                )
            })
            .collect::<String>()
    });
    xml(namespace, "appliances", &inner)
}

fn api_info(shared: &Shared, namespace: &Option<String>, faults: &Faults) -> Answer {
    let (product, permission) = product_and_permission(shared, faults);
    let inner = format!(
        "<api_version>1.19.0</api_version><product>{product}</product><permissions><perm_command>{permission}</perm_command></permissions>"
    );
    xml(namespace, "api_information", &inner)
}

fn flag(value: Option<&String>) -> Result<bool, String> {
    match value.map(String::as_str) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(format!("{other:?} is not 0 or 1")),
    }
}

fn set_failover_role(
    shared: &Shared,
    index: usize,
    namespace: &Option<String>,
    params: &BTreeMap<String, String>,
) -> Answer {
    let role = match params.get("role").map(String::as_str) {
        Some("primary") => FailoverRole::Primary,
        Some("backup") => FailoverRole::Backup,
        _ => return error(namespace, "The role parameter must be primary or backup."),
    };
    let (data_sync_first, force) = match (
        flag(params.get("data_sync_first")),
        flag(params.get("force")),
    ) {
        (Ok(d), Ok(f)) => (d, f),
        (Err(e), _) => return error(namespace, &format!("data_sync_first: {e}")),
        (_, Err(e)) => return error(namespace, &format!("force: {e}")),
    };
    match carry_out_failover(
        shared,
        index,
        FailoverRequest {
            role,
            data_sync_first,
            force,
        },
    ) {
        (200, text) => xml(namespace, "success", &escape(&text)),
        (_, text) => error(namespace, &text),
    }
}
