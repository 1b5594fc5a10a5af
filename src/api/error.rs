//! The closed set of ways an appliance call can fail.
//!
//! [`ErrorKind`] is deliberately small and stable: it becomes the `code`/`kind` label of the
//! request metrics and the engine's view of "why is this appliance not answering well", so a
//! new variant is a change of a public contract.

// The engine uses these types: they must be as pure as the engine (see clippy.toml).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fmt;
use std::time::Duration;

use super::endpoint::Endpoint;
use super::model::ErrorBag;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No TCP connection: refused, unreachable, DNS failure.
    Connect,
    /// No complete answer within the request timeout (connect, headers or body).
    Timeout,
    /// The TLS handshake failed for another reason than the certificate (protocol mismatch,
    /// a handshake cut short): the appliance's side did not complete it.
    Tls,
    /// The appliance presented a certificate the watchdog refuses (expired, signed by a CA it
    /// does not trust, issued for another name). The appliance answered: this is not silence,
    /// and never a reason to promote its peer.
    Certificate,
    /// A fault on the watchdog's own side (out of file descriptors, the resolver, no local
    /// address or route, its own TLS setup): nothing was learnt about the appliance.
    Local,
    /// 401 even after one fresh token, or the token endpoint refused our credentials.
    Unauthorized,
    /// 403: the API account lacks Command API permission.
    Forbidden,
    /// 404: the endpoint does not exist on this appliance.
    NotFound,
    /// 400, 405, 406 and other 4xx: we sent something the appliance does not accept.
    BadRequest,
    /// 422: a request field was invalid (the error bag says which).
    Unprocessable,
    /// 429 from the appliance, or a `Retry-After` we are still honouring.
    RateLimited,
    /// Our own budget (requests per second, share of the hourly limit) said no.
    Budget,
    /// 5xx (other than the documented unhealthy `/health` answer).
    Server,
    /// The body could not be understood.
    Malformed,
    /// The body was larger than the configured cap.
    TooLarge,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Certificate,
        ErrorKind::Local,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::BadRequest,
        ErrorKind::Unprocessable,
        ErrorKind::RateLimited,
        ErrorKind::Budget,
        ErrorKind::Server,
        ErrorKind::Malformed,
        ErrorKind::TooLarge,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Certificate => "certificate",
            ErrorKind::Local => "local",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Budget => "budget",
            ErrorKind::Server => "server_error",
            ErrorKind::Malformed => "malformed",
            ErrorKind::TooLarge => "too_large",
        }
    }

    /// Whether the appliance answered at all. A watchdog that sees only these errors for an
    /// appliance knows the appliance is alive (it spoke HTTP), even if the answer was unusable.
    pub fn appliance_answered(self) -> bool {
        !matches!(
            self,
            ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::Tls
                | ErrorKind::Budget
                | ErrorKind::Local
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What went wrong on the watchdog's own side; the `kind` label of
/// `beyondtrust_watchdog_local_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalFault {
    /// EMFILE/ENFILE: this process or the system is out of file descriptors.
    Descriptors,
    /// The appliance's name could not be resolved (the resolver, /etc/hosts, DNS).
    Resolver,
    /// No local address or route to the appliance (EADDRNOTAVAIL, ENETUNREACH, EADDRINUSE).
    LocalAddress,
    /// The kernel refused memory or buffers (ENOBUFS, ENOMEM).
    Memory,
    /// The watchdog's own TLS setup failed (no clock, no randomness, an unusable trust store).
    TlsSetup,
}

impl LocalFault {
    pub const ALL: [LocalFault; 5] = [
        LocalFault::Descriptors,
        LocalFault::Resolver,
        LocalFault::LocalAddress,
        LocalFault::Memory,
        LocalFault::TlsSetup,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LocalFault::Descriptors => "descriptors",
            LocalFault::Resolver => "resolver",
            LocalFault::LocalAddress => "local_address",
            LocalFault::Memory => "memory",
            LocalFault::TlsSetup => "tls_setup",
        }
    }
}

impl fmt::Display for LocalFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A failed call, with enough context for a log line an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("appliance {appliance}: {endpoint}: {detail}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub appliance: String,
    pub endpoint: Endpoint,
    /// What happened and, where it helps, what to do. Never contains a secret or token.
    pub detail: String,
    pub status: Option<u16>,
    /// The 422 error bag, when the appliance sent one.
    pub errors: Option<ErrorBag>,
    /// How long the appliance asked us to wait (429 `Retry-After`).
    pub retry_after: Option<Duration>,
    /// Which watchdog-side fault, when `kind` is [`ErrorKind::Local`].
    pub local: Option<LocalFault>,
}

impl ApiError {
    pub fn new(
        kind: ErrorKind,
        appliance: &str,
        endpoint: Endpoint,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            kind,
            appliance: appliance.to_string(),
            endpoint,
            detail: detail.into(),
            status: None,
            errors: None,
            retry_after: None,
            local: None,
        }
    }

    /// A fault on the watchdog's own side.
    pub fn local(
        fault: LocalFault,
        appliance: &str,
        endpoint: Endpoint,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            local: Some(fault),
            ..ApiError::new(ErrorKind::Local, appliance, endpoint, detail)
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}
