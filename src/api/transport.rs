//! One HTTP exchange with an appliance, with the vendor's transport rules applied.
//!
//! - "When making consecutive API calls, you must close the connection after each API call":
//!   every request says `Connection: close` and the client keeps no idle connections.
//! - Every exchange is bounded: a timeout covers connecting, the headers and the whole body,
//!   and the body is read up to a cap, so a hanging or endless answer cannot hold us.
//! - TLS is rustls, with the system roots or, when the site has one, only its private CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{self, HeaderMap, HeaderValue};

use super::endpoint::Endpoint;
use super::error::{ApiError, ErrorKind, LocalFault};

pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransportSetupError {
    #[error("url {url:?} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("ca_file {path}: cannot be read: {source}")]
    CaFileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_file {path}: {reason}")]
    CaFileInvalid { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// Checks an appliance base URL: http or https, a host, no path, query or credentials.
pub fn parse_base_url(url: &str) -> Result<reqwest::Url, TransportSetupError> {
    let invalid = |reason: &str| TransportSetupError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            "the scheme must be https (or http for a simulator)",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("credentials do not belong in the URL"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(
            "give only scheme, host and port (the API paths are added by the watchdog)",
        ));
    }
    Ok(parsed)
}

/// Reads a PEM bundle of CA certificates.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, TransportSetupError> {
    let pem = std::fs::read(path).map_err(|source| TransportSetupError::CaFileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        TransportSetupError::CaFileInvalid {
            path: path.to_path_buf(),
            reason: format!("not a PEM certificate bundle: {e}"),
        }
    })?;
    if certs.is_empty() {
        return Err(TransportSetupError::CaFileInvalid {
            path: path.to_path_buf(),
            reason: "contains no certificate".to_string(),
        });
    }
    Ok(certs)
}

/// An HTTP client for these settings, shared by every appliance that uses the same ones.
///
/// A reqwest client is meant to be shared (it is a handle), and building one parses the
/// system's root certificates: with a client per appliance, a watchdog of 1,000 pairs spent
/// most of its memory on 2,000 copies of the same trust store. Nothing is pooled either way.
pub(crate) fn shared_http_client(
    request_timeout: Duration,
    ca_file: Option<&Path>,
    proxy: Option<&str>,
    source_address: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, TransportSetupError> {
    // The CA file's modification time is part of the key, so a replaced bundle is read again
    // on the next reload.
    type Key = (
        Duration,
        Option<(PathBuf, Option<std::time::SystemTime>)>,
        Option<String>,
        Option<std::net::IpAddr>,
    );
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Key, reqwest::Client>>,
    > = std::sync::OnceLock::new();
    let key = (
        request_timeout,
        ca_file.map(|p| {
            (
                p.to_path_buf(),
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            )
        }),
        proxy.map(str::to_string),
        source_address,
    );
    let clients = CLIENTS.get_or_init(Default::default);
    if let Some(client) = clients.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(client.clone());
    }
    // Built outside the lock: a CA file is read from disk.
    let client = build_http_client(request_timeout, ca_file, proxy, source_address)?;
    clients
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, client.clone());
    Ok(client)
}

/// An HTTP client that never pools and always closes.
///
/// A proxy is used only when the site names one: `HTTPS_PROXY` and the like in the
/// environment are ignored, so that nobody who can set a variable for the process can route
/// the client secret through a host of their choice.
pub(crate) fn build_http_client(
    request_timeout: Duration,
    ca_file: Option<&Path>,
    proxy: Option<&str>,
    source_address: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, TransportSetupError> {
    let mut defaults = HeaderMap::new();
    defaults.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut builder = reqwest::Client::builder()
        .default_headers(defaults)
        .user_agent(concat!("bt-watchdog/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(0)
        .http1_only()
        .timeout(request_timeout)
        .connect_timeout(request_timeout)
        // An appliance that redirects an authenticated call elsewhere is not to be followed.
        .redirect(reqwest::redirect::Policy::none())
        .use_rustls_tls()
        .https_only(false)
        .local_address(source_address);
    builder = match proxy {
        None => builder.no_proxy(),
        Some(url) => builder.proxy(
            reqwest::Proxy::all(url)
                .map_err(|e| TransportSetupError::Client(format!("proxy {url:?}: {e}")))?,
        ),
    };
    if let Some(path) = ca_file {
        builder = builder.tls_built_in_root_certs(false);
        for cert in load_ca_bundle(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| TransportSetupError::Client(e.to_string()))
}

/// A complete answer, body read within the cap.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn header_u64(&self, name: &str) -> Option<u64> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }

    /// `Retry-After` as seconds or an HTTP date.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds.min(3600)));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        Some(
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(3600)),
        )
    }
}

/// Sends a request and reads its answer within `max_body_bytes`.
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    appliance: &str,
    endpoint: Endpoint,
    max_body_bytes: usize,
) -> Result<Answer, ApiError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| classify(&e, appliance, endpoint))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let too_large = || {
        ApiError::new(
            ErrorKind::TooLarge,
            appliance,
            endpoint,
            format!("answer (HTTP {status}) is larger than the {max_body_bytes}-byte cap"),
        )
        .with_status(status)
    };
    if response
        .content_length()
        .is_some_and(|len| len > max_body_bytes as u64)
    {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify(&e, appliance, endpoint).with_status(status))?
    {
        if body.len() + chunk.len() > max_body_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body: body.freeze(),
    })
}

/// Turns a reqwest failure into one of our kinds, with a message that names the cause.
///
/// The boundary between the two sides is drawn here: a fault of the watchdog's own (out of
/// descriptors, the resolver, no local address or route, its own TLS setup) is
/// [`ErrorKind::Local`] and says nothing about the appliance; a certificate the appliance
/// presented and we refuse is [`ErrorKind::Certificate`] (it answered); everything else that
/// prevents an answer (refused, reset, a timeout) is the appliance's side or the path to it.
fn classify(error: &reqwest::Error, appliance: &str, endpoint: Endpoint) -> ApiError {
    let cause = root_cause(error);
    if let Some((fault, detail)) = local_fault(error) {
        return ApiError::local(
            fault,
            appliance,
            endpoint,
            format!("{detail}: {cause} (a fault on the watchdog's side, not the appliance's)"),
        );
    }
    let (kind, detail) = if let Some(tls) = find_in_chain::<rustls::Error>(error) {
        match tls {
            rustls::Error::InvalidCertificate(problem) => (
                ErrorKind::Certificate,
                certificate_advice(problem, appliance),
            ),
            // Our own side of TLS: no clock, no randomness, a trust store that cannot be used.
            rustls::Error::FailedToGetCurrentTime
            | rustls::Error::FailedToGetRandomBytes
            | rustls::Error::General(_)
            | rustls::Error::Other(_) => {
                return ApiError::local(
                    LocalFault::TlsSetup,
                    appliance,
                    endpoint,
                    format!(
                        "the watchdog's own TLS setup failed: {tls} (check ca_file and the host's clock; a fault on the watchdog's side, not the appliance's)"
                    ),
                );
            }
            other => (
                ErrorKind::Tls,
                format!(
                    "TLS handshake failed: {other} (check ca_file and the appliance certificate)"
                ),
            ),
        }
    } else if error.is_timeout() {
        (
            ErrorKind::Timeout,
            "no complete answer within the request timeout".to_string(),
        )
    } else if is_tls(error) {
        (
            ErrorKind::Tls,
            format!("TLS handshake failed: {cause} (check ca_file and the appliance certificate)"),
        )
    } else if error.is_connect() {
        (ErrorKind::Connect, format!("cannot connect: {cause}"))
    } else if error.is_body() || error.is_decode() {
        (
            ErrorKind::Connect,
            format!("connection lost while reading the answer: {cause}"),
        )
    } else if error.is_builder() {
        (
            ErrorKind::BadRequest,
            format!("request could not be built: {cause}"),
        )
    } else {
        (ErrorKind::Connect, format!("request failed: {cause}"))
    };
    ApiError::new(kind, appliance, endpoint, detail)
}

/// What to renew or trust, for a certificate the appliance presented and we refuse.
fn certificate_advice(problem: &rustls::CertificateError, appliance: &str) -> String {
    use rustls::CertificateError as E;
    match problem {
        E::Expired | E::ExpiredContext { .. } => format!(
            "certificate refused: the certificate of appliance {appliance} has expired; renew it on the appliance (/appliance > Security > Certificates)"
        ),
        E::NotValidYet | E::NotValidYetContext { .. } => format!(
            "certificate refused: the certificate of appliance {appliance} is not valid yet; check the clocks of the watchdog's host and of the appliance"
        ),
        E::UnknownIssuer => format!(
            "certificate refused: the certificate of appliance {appliance} is signed by a CA the watchdog does not trust; put that CA in ca_file, or renew the certificate with a trusted CA"
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => format!(
            "certificate refused: the certificate of appliance {appliance} is not issued for the host in its url; use the name it was issued for, or reissue it with that name"
        ),
        E::Revoked => format!(
            "certificate refused: the certificate of appliance {appliance} is revoked; renew it on the appliance"
        ),
        other => format!(
            "certificate refused: the certificate of appliance {appliance} is not acceptable ({other:?}); renew it, or check ca_file"
        ),
    }
}

/// A fault of the watchdog's own side in the error's chain: an OS error about this host's
/// resources or routes, or the resolver.
fn local_fault(error: &(dyn std::error::Error + 'static)) -> Option<(LocalFault, &'static str)> {
    // errno values of Linux (and every other Unix for these five but ENOBUFS/ENETUNREACH,
    // which are the same on the BSDs and macOS as well).
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const EADDRINUSE: i32 = 98;
    const EADDRNOTAVAIL: i32 = 99;
    const ENETUNREACH: i32 = 101;
    const ENOBUFS: i32 = 105;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.raw_os_error() {
                Some(EMFILE) => {
                    return Some((
                        LocalFault::Descriptors,
                        "out of file descriptors (EMFILE: raise LimitNOFILE)",
                    ));
                }
                Some(ENFILE) => {
                    return Some((
                        LocalFault::Descriptors,
                        "the system is out of file descriptors (ENFILE)",
                    ));
                }
                Some(EADDRNOTAVAIL | EADDRINUSE) => {
                    return Some((LocalFault::LocalAddress, "no local address to connect from"));
                }
                Some(ENETUNREACH) => {
                    return Some((LocalFault::LocalAddress, "no route from this host"));
                }
                Some(ENOBUFS | ENOMEM) => {
                    return Some((LocalFault::Memory, "the kernel is out of memory or buffers"));
                }
                _ => {}
            }
            if let Some(inner) = io.get_ref()
                && let Some(found) = local_fault(inner)
            {
                return Some(found);
            }
        }
        // hyper-util's connector says "dns error" for a name that could not be resolved; its
        // error type is private, so its message is the only sign.
        if e.to_string().starts_with("dns error") {
            return Some((
                LocalFault::Resolver,
                "the appliance's name cannot be resolved",
            ));
        }
        current = e.source();
    }
    None
}

/// The first error of type `T` in the chain, looking inside io errors too (hyper-rustls
/// wraps rustls errors in io errors, whose `source` skips what they wrap).
fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    if let Some(found) = error.downcast_ref::<T>() {
        return Some(found);
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(found) = find_in_chain::<T>(inner)
    {
        return Some(found);
    }
    error.source().and_then(find_in_chain::<T>)
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    // reqwest's own messages carry the URL; the innermost cause is the useful part.
    current.to_string()
}

fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    find_in_chain::<rustls::Error>(error).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("https://east.example.com").is_ok());
        assert!(parse_base_url("https://east.example.com:8443/").is_ok());
        assert!(parse_base_url("http://127.0.0.1:9000").is_ok());
        for bad in [
            "east.example.com",
            "ftp://east.example.com",
            "https://east.example.com/api/command/v2",
            "https://user:pw@east.example.com",
            "https://east.example.com/?x=1",
            "",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn faults_of_this_host_are_told_apart_from_the_appliances() {
        let os = std::io::Error::from_raw_os_error;
        assert_eq!(
            local_fault(&os(24)).map(|f| f.0),
            Some(LocalFault::Descriptors)
        );
        assert_eq!(
            local_fault(&os(23)).map(|f| f.0),
            Some(LocalFault::Descriptors)
        );
        assert_eq!(
            local_fault(&os(99)).map(|f| f.0),
            Some(LocalFault::LocalAddress)
        );
        assert_eq!(
            local_fault(&os(101)).map(|f| f.0),
            Some(LocalFault::LocalAddress)
        );
        assert_eq!(local_fault(&os(105)).map(|f| f.0), Some(LocalFault::Memory));
        // Refused, reset, unreachable host: the appliance's side or the path to it.
        for appliance_side in [111, 104, 113, 110] {
            assert_eq!(
                local_fault(&os(appliance_side)),
                None,
                "errno {appliance_side}"
            );
        }
        // Wrapped the way hyper wraps them.
        let wrapped = std::io::Error::other(os(24));
        assert_eq!(
            local_fault(&wrapped).map(|f| f.0),
            Some(LocalFault::Descriptors)
        );
        #[derive(Debug, thiserror::Error)]
        #[error("dns error")]
        struct Dns(#[source] std::io::Error);
        assert_eq!(
            local_fault(&Dns(std::io::Error::other(
                "failed to lookup address information"
            )))
            .map(|f| f.0),
            Some(LocalFault::Resolver)
        );
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let missing = Path::new("/nonexistent/ca.pem");
        let err = load_ca_bundle(missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("btw-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = load_ca_bundle(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.pem"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let answer = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            Answer {
                status: 429,
                headers,
                body: Bytes::new(),
            }
        };
        assert_eq!(answer("7").retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            answer("99999").retry_after(),
            Some(Duration::from_secs(3600))
        );
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let d = answer(&soon).retry_after().unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(answer("soon").retry_after(), None);
    }
}
