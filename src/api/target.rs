//! The appliance a request is about: its base URL, and the name every message about it uses.
//! The session and every flavour read answers against it, so each error names the appliance
//! and says what to do, whichever API produced it.

use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind};
use super::model::json;
use super::transport::Answer;

#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The operator's name for the appliance ("east").
    name: String,
    base: reqwest::Url,
}

impl Target {
    pub(super) fn new(name: &str, base: reqwest::Url) -> Self {
        Target {
            name: name.to_string(),
            base,
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The appliance's URL for `path` (and query).
    pub(super) fn url(&self, path: &str, query: Option<&str>) -> reqwest::Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query(query);
        url
    }

    pub(super) fn malformed(
        &self,
        endpoint: Endpoint,
        answer: &Answer,
        problem: json::Malformed,
    ) -> ApiError {
        ApiError::new(ErrorKind::Malformed, self.name(), endpoint, problem.0)
            .with_status(answer.status)
    }

    /// The error for a status the endpoint does not treat as success.
    pub(super) fn status_error(&self, endpoint: Endpoint, answer: &Answer) -> ApiError {
        let status = answer.status;
        let said = json::message(&answer.body)
            .map(|m| format!(": {}", short(&m)))
            .unwrap_or_default();
        let (kind, detail) = match status {
            401 => (ErrorKind::Unauthorized, format!("401 Unauthorized{said}")),
            403 => (
                ErrorKind::Forbidden,
                format!(
                    "403 Forbidden{said}: the API account lacks permission for the Command API; grant it on /login > Management > API Configuration"
                ),
            ),
            404 => (ErrorKind::NotFound, format!("404 Not Found{said}")),
            422 => (
                ErrorKind::Unprocessable,
                format!("422 Unprocessable Entity{said}"),
            ),
            429 => (
                ErrorKind::RateLimited,
                format!(
                    "429 Too Many Requests{said}; backing off{}",
                    answer
                        .retry_after()
                        .map(|d| format!(" for {}", humantime::format_duration(d)))
                        .unwrap_or_default()
                ),
            ),
            300..=399 => (
                ErrorKind::BadRequest,
                format!("unexpected redirect (HTTP {status}); redirects are not followed"),
            ),
            400..=499 => (ErrorKind::BadRequest, format!("HTTP {status}{said}")),
            500..=599 => (ErrorKind::Server, format!("HTTP {status}{said}")),
            _ => (
                ErrorKind::Malformed,
                format!("unexpected HTTP status {status}{said}"),
            ),
        };
        let mut error = ApiError::new(kind, self.name(), endpoint, detail).with_status(status);
        if status == 422
            && let Some((_, bag)) = json::error_bag(&answer.body)
            && !bag.is_empty()
        {
            let fields: Vec<String> = bag
                .iter()
                .map(|(field, problems)| format!("{field}: {}", problems.join("; ")))
                .collect();
            error.detail = format!("{} ({})", error.detail, short(&fields.join(", ")));
            error.errors = Some(bag);
        }
        if status == 429 {
            error.retry_after = answer.retry_after();
        }
        error
    }
}

/// Keeps appliance-supplied text in messages to a readable size.
pub(super) fn short(text: &str) -> String {
    const LIMIT: usize = 200;
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(LIMIT)
        .collect();
    if text.chars().count() > LIMIT {
        out.push('…');
    }
    out
}
