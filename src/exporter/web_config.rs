//! Securing the exporter with the file Prometheus exporters already use: exporter-toolkit's
//! `--web.config.file` YAML (`exporter.web_config`), so that operators reuse the files they
//! have. TLS (certificate and key as files or inline PEM, a client CA with a
//! `client_auth_type`, minimum and maximum versions), basic-auth users with bcrypt hashes, and
//! extra response headers (`http_server_config.headers`):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/bt-watchdog/exporter.pem
//!   key_file: /etc/bt-watchdog/exporter.key
//!   client_ca_file: /etc/bt-watchdog/prometheus-ca.pem
//!   client_auth_type: RequireAndVerifyClientCert
//!   min_version: TLS12
//! http_server_config:
//!   headers:
//!     X-Content-Type-Options: nosniff
//! basic_auth_users:
//!   prometheus: $2y$10$…        # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```
//!
//! A file whose name ends in `.toml` is read in this program's earlier TOML form (`[tls]` and
//! `[basic_auth_users]`), which costs one small struct to keep.
//!
//! The file (and the certificate files it names) is looked at again at most once a second when
//! connections arrive, so a rotated certificate or a new user takes effect without a restart.
//! A changed file that is invalid **closes** the exporter (connections are dropped unanswered)
//! until the file is fixed: serving on with the previous settings would hide that the file an
//! operator just wrote is not in force, and serving without them would open what was meant to
//! be closed. The logs and `beyondtrust_watchdog_exporter_web_config_valid` say so.
//!
//! Basic-auth verification runs on the blocking pool, at most [`VERIFY_AT_ONCE`] at a time, so
//! that a flood of wrong passwords costs bounded CPU and never an async worker; successful
//! verifications are remembered (an HMAC of user and password under a key made at start, at
//! most [`CACHE_ENTRIES`] of them), as Prometheus sends the same credentials on every scrape.
//! An unknown user costs a bcrypt verification against a configured hash of the highest cost,
//! so that a wrong user name cannot be told from a wrong password by timing.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::metrics::ExporterMetrics;

/// bcrypt verifications running at once; more wait (within the connection's deadline).
pub const VERIFY_AT_ONCE: usize = 2;
/// Successful verifications remembered.
pub const CACHE_ENTRIES: usize = 64;
/// A web configuration file is small; a larger one is refused unread.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// exporter-toolkit's web configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolkitFile {
    tls_server_config: Option<ToolkitTls>,
    http_server_config: Option<ToolkitHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Not supported: refused by name rather than ignored (it is a protection).
    rate_limit: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolkitTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted and ignored (logged): rustls offers only modern suites and curves.
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolkitHttp {
    /// Accepted and ignored: this exporter speaks HTTP/1.1 only.
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The earlier TOML form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    tls: Option<TomlTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
}

/// PEM text from a file or written inline.
#[derive(Debug, Clone)]
enum Pem {
    File(PathBuf),
    Inline(String),
}

impl Pem {
    fn either(
        file: Option<PathBuf>,
        inline: Option<String>,
        key: &str,
    ) -> Result<Option<Pem>, String> {
        match (file, inline) {
            (Some(_), Some(_)) => Err(format!(
                "tls_server_config: give {key}_file or {key}, not both"
            )),
            (Some(path), None) => Ok(Some(Pem::File(path))),
            (None, Some(text)) => Ok(Some(Pem::Inline(text))),
            (None, None) => Ok(None),
        }
    }

    fn bytes(&self, key: &str) -> Result<Vec<u8>, String> {
        match self {
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
            Pem::File(path) => {
                read_capped(path).map_err(|e| format!("{key} {}: {e}", path.display()))
            }
        }
    }

    fn describe(&self, key: &str) -> String {
        match self {
            Pem::File(path) => format!("{key}_file {}", path.display()),
            Pem::Inline(_) => format!("{key} (inline)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    /// Verified when given (`VerifyClientCertIfGiven`).
    Optional,
    /// Required and verified (`RequireAndVerifyClientCert`).
    Required,
}

/// The file's settings, before any certificate is read.
#[derive(Debug)]
struct Settings {
    tls: Option<TlsSettings>,
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Keys present that this exporter ignores, for the log.
    ignored: Vec<&'static str>,
}

#[derive(Debug)]
struct TlsSettings {
    cert: Pem,
    key: Pem,
    client_ca: Option<Pem>,
    client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

fn version(text: &str, key: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match text {
        "TLS13" | "1.3" => Ok(&rustls::version::TLS13),
        "TLS12" | "1.2" => Ok(&rustls::version::TLS12),
        "TLS10" | "TLS11" | "1.0" | "1.1" => Err(format!(
            "tls_server_config.{key} {text:?}: TLS 1.0 and 1.1 are not offered; use TLS12 or TLS13"
        )),
        other => Err(format!(
            "tls_server_config.{key} {other:?}: use TLS12 or TLS13"
        )),
    }
}

/// The headers exporter-toolkit allows, with the values it allows.
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    const ALLOWED: [&str; 5] = [
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "X-XSS-Protection",
        "Strict-Transport-Security",
    ];
    let Some(canonical) = ALLOWED.iter().find(|a| a.eq_ignore_ascii_case(name)) else {
        return Err(format!(
            "http_server_config.headers.{name}: not a header this file may set (use {})",
            ALLOWED.join(", ")
        ));
    };
    let lower = value.to_ascii_lowercase();
    let fits = match *canonical {
        "X-Frame-Options" => lower == "deny" || lower == "sameorigin",
        "X-Content-Type-Options" => lower == "nosniff",
        _ => !value.is_empty(),
    };
    if !fits {
        return Err(format!(
            "http_server_config.headers.{canonical}: {value:?} is not an accepted value"
        ));
    }
    let value = HeaderValue::from_str(value)
        .map_err(|_| format!("http_server_config.headers.{canonical}: not a valid header value"))?;
    Ok((HeaderName::from_static(canonical_lower(canonical)), value))
}

fn canonical_lower(name: &str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

fn from_toolkit(file: ToolkitFile) -> Result<Settings, String> {
    if file.rate_limit.is_some() {
        return Err("rate_limit: not supported by this exporter (it caps connections per client address instead); remove it".to_string());
    }
    let mut ignored = Vec::new();
    let tls = match file.tls_server_config {
        None => None,
        Some(tls) => {
            if tls.client_allowed_sans.is_some() {
                return Err("tls_server_config.client_allowed_sans: not supported; restrict clients with the client CA instead".to_string());
            }
            if tls.cipher_suites.is_some() {
                ignored.push("tls_server_config.cipher_suites");
            }
            if tls.prefer_server_cipher_suites.is_some() {
                ignored.push("tls_server_config.prefer_server_cipher_suites");
            }
            if tls.curve_preferences.is_some() {
                ignored.push("tls_server_config.curve_preferences");
            }
            let cert = Pem::either(tls.cert_file, tls.cert, "cert")?
                .ok_or("tls_server_config: cert_file (or cert) is required")?;
            let key = Pem::either(tls.key_file, tls.key, "key")?
                .ok_or("tls_server_config: key_file (or key) is required")?;
            let client_ca = Pem::either(tls.client_ca_file, tls.client_ca, "client_ca")?;
            let client_auth = match (tls.client_auth_type.as_deref(), &client_ca) {
                (None | Some("NoClientCert"), None) => ClientAuth::None,
                (None | Some("NoClientCert"), Some(_)) => {
                    return Err("tls_server_config: a client CA is given without a client_auth_type; set client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)".to_string());
                }
                (Some("RequireAndVerifyClientCert"), Some(_)) => ClientAuth::Required,
                (Some("VerifyClientCertIfGiven"), Some(_)) => ClientAuth::Optional,
                (Some("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), None) => {
                    return Err("tls_server_config.client_auth_type: verifying client certificates needs client_ca_file (or client_ca)".to_string());
                }
                (Some(other @ ("RequestClientCert" | "RequireAnyClientCert")), _) => {
                    return Err(format!(
                        "tls_server_config.client_auth_type {other}: accepts unverified certificates, which this exporter does not do; use RequireAndVerifyClientCert"
                    ));
                }
                (Some(other), _) => {
                    return Err(format!(
                        "tls_server_config.client_auth_type {other:?}: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                    ));
                }
            };
            let min = version(tls.min_version.as_deref().unwrap_or("TLS12"), "min_version")?;
            let max = version(tls.max_version.as_deref().unwrap_or("TLS13"), "max_version")?;
            let versions = match (min.version, max.version) {
                (rustls::ProtocolVersion::TLSv1_3, rustls::ProtocolVersion::TLSv1_2) => {
                    return Err("tls_server_config: min_version is above max_version".to_string());
                }
                (a, b) if a == b => vec![min],
                _ => vec![&rustls::version::TLS13, &rustls::version::TLS12],
            };
            Some(TlsSettings {
                cert,
                key,
                client_ca,
                client_auth,
                versions,
            })
        }
    };
    let mut headers = Vec::new();
    if let Some(http) = file.http_server_config {
        if http.http2.is_some() {
            ignored.push("http_server_config.http2");
        }
        for (name, value) in &http.headers {
            headers.push(header(name, value)?);
        }
    }
    Ok(Settings {
        tls,
        users: file.basic_auth_users.unwrap_or_default(),
        headers,
        ignored,
    })
}

fn from_toml(file: TomlFile) -> Result<Settings, String> {
    let tls = match file.tls {
        None => None,
        Some(tls) => {
            let min = version(tls.min_version.as_deref().unwrap_or("1.2"), "min_version")?;
            let versions = if min.version == rustls::ProtocolVersion::TLSv1_3 {
                vec![min]
            } else {
                vec![&rustls::version::TLS13, &rustls::version::TLS12]
            };
            Some(TlsSettings {
                cert: Pem::File(tls.cert_file),
                key: Pem::File(tls.key_file),
                client_auth: if tls.client_ca_file.is_some() {
                    ClientAuth::Required
                } else {
                    ClientAuth::None
                },
                client_ca: tls.client_ca_file.map(Pem::File),
                versions,
            })
        }
    };
    Ok(Settings {
        tls,
        users: file.basic_auth_users,
        headers: Vec::new(),
        ignored: Vec::new(),
    })
}

/// Parses web configuration text; `toml` selects the earlier TOML form. Public for the fuzz
/// target: whatever the text, an error, never a panic.
pub fn parse_text(text: &str, toml: bool) -> Result<(), String> {
    settings_from_text(text, toml).map(|_| ())
}

fn settings_from_text(text: &str, toml: bool) -> Result<Settings, String> {
    let settings = if toml {
        from_toml(toml::from_str(text).map_err(|e| format!("not valid: {}", e.message()))?)?
    } else if text.trim().is_empty() {
        // An empty YAML document: no TLS, no users, as exporter-toolkit reads it.
        from_toolkit(ToolkitFile::default())?
    } else {
        from_toolkit(serde_saphyr::from_str(text).map_err(|e| format!("not valid: {e}"))?)?
    };
    for (user, hash) in &settings.users {
        if user.is_empty() || user.contains(':') {
            return Err(format!(
                "basic_auth_users: {user:?} is not a user name (empty, or contains ':')"
            ));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            ));
        }
    }
    Ok(settings)
}

/// Reads the web configuration at `path` as the daemon would, certificates included
/// (`check-config`).
pub fn check(path: &Path) -> Result<(), WebConfigError> {
    load(path).map(|_| ())
}

/// Whether the web configuration at `path` asks for TLS (false when it cannot be read).
pub fn serves_tls(path: &Path) -> bool {
    settings(path).is_ok_and(|s| s.tls.is_some())
}

fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

fn settings(path: &Path) -> Result<Settings, String> {
    let bytes = read_capped(path).map_err(|e| format!("cannot be read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    settings_from_text(&text, is_toml(path))
}

/// The remembered tags, and the order they came in (the oldest is dropped first).
type Tags = (HashSet<Vec<u8>>, VecDeque<Vec<u8>>);

/// Remembered successful verifications: HMACs of (user, password), oldest dropped first.
struct Verified {
    key: ring::hmac::Key,
    tags: Mutex<Tags>,
}

impl Verified {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        // A fresh key per configuration: the tags mean nothing outside this process.
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand_fallback()));
        Verified {
            key,
            tags: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    fn tag(&self, user: &str, password: &str) -> Vec<u8> {
        let mut context = ring::hmac::Context::with_key(&self.key);
        context.update(user.as_bytes());
        context.update(&[0]);
        context.update(password.as_bytes());
        context.sign().as_ref().to_vec()
    }

    fn contains(&self, tag: &[u8]) -> bool {
        self.tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(tag)
    }

    fn insert(&self, tag: Vec<u8>) {
        let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        if tags.0.contains(&tag) {
            return;
        }
        if tags.1.len() >= CACHE_ENTRIES
            && let Some(oldest) = tags.1.pop_front()
        {
            tags.0.remove(&oldest);
        }
        tags.0.insert(tag.clone());
        tags.1.push_back(tag);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tags.lock().unwrap_or_else(|p| p.into_inner()).1.len()
    }
}

/// Only if the system's random source fails: the time and the process id, which at least
/// differ between runs.
fn rand_fallback() -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}{}", now.as_nanos(), std::process::id()).into_bytes()
}

struct BasicAuth {
    users: BTreeMap<String, String>,
    /// What an unknown user's password is verified against: a configured hash of the
    /// highest cost (its result is ignored).
    decoy: String,
    verified: Verified,
    verifying: Arc<Semaphore>,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Option<BasicAuth> {
        let decoy = users
            .values()
            .max_by_key(|hash| {
                hash.parse::<bcrypt::HashParts>()
                    .map(|p| p.get_cost())
                    .unwrap_or(0)
            })?
            .clone();
        Some(BasicAuth {
            users,
            decoy,
            verified: Verified::new(),
            verifying: Arc::new(Semaphore::new(VERIFY_AT_ONCE)),
        })
    }
}

/// How a request's credentials fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No authentication is configured, or the credentials are right.
    Allowed,
    Refused,
}

/// The configuration in force.
pub struct Active {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<BasicAuth>,
    /// Added to every response (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Why the exporter is closed: the file became invalid. Nothing is served meanwhile.
    pub closed: Option<String>,
}

fn credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl Active {
    fn open() -> Self {
        Active {
            tls: None,
            auth: None,
            headers: Vec::new(),
            closed: None,
        }
    }

    fn closed(reason: String) -> Self {
        Active {
            closed: Some(reason),
            ..Active::open()
        }
    }

    /// Checks an `Authorization` header value. bcrypt runs on the blocking pool, a bounded
    /// number at a time; an unknown user costs as much as a wrong password.
    pub async fn check(&self, header: Option<&str>) -> Verdict {
        let Some(auth) = &self.auth else {
            return Verdict::Allowed;
        };
        let (user, password) = credentials(header).unwrap_or_default();
        let tag = auth.verified.tag(&user, &password);
        if auth.verified.contains(&tag) {
            return Verdict::Allowed;
        }
        let (hash, known) = match auth.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (auth.decoy.clone(), false),
        };
        let Ok(_permit) = auth.verifying.clone().acquire_owned().await else {
            return Verdict::Refused;
        };
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if matches && known {
            auth.verified.insert(tag);
            Verdict::Allowed
        } else {
            Verdict::Refused
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("exporter.web_config {path}: {message}")]
pub struct WebConfigError {
    pub path: PathBuf,
    pub message: String,
}

fn load(path: &Path) -> Result<Active, WebConfigError> {
    let fail = |message: String| WebConfigError {
        path: path.to_path_buf(),
        message,
    };
    let settings = settings(path).map_err(fail)?;
    for key in &settings.ignored {
        tracing::warn!(
            "exporter.web_config {}: {key} is ignored (rustls chooses among modern suites and curves; HTTP/2 is not served)",
            path.display()
        );
    }
    let tls = match &settings.tls {
        None => None,
        Some(tls) => Some(acceptor(tls).map_err(fail)?),
    };
    Ok(Active {
        tls,
        auth: BasicAuth::new(settings.users),
        headers: settings.headers,
        closed: None,
    })
}

/// What a client of the exporter (`bt-watchdog status`) needs to know of its web
/// configuration. Read from the file alone: the key file is the daemon's, not the operator's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientView {
    /// The certificate file the exporter presents when it serves TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// Whether it asks for a user and password.
    pub basic_auth: bool,
    /// Whether it asks for a client certificate.
    pub client_certificate: bool,
}

pub fn client_view(path: &Path) -> Result<ClientView, WebConfigError> {
    let settings = settings(path).map_err(|message| WebConfigError {
        path: path.to_path_buf(),
        message,
    })?;
    let tls = settings.tls.as_ref();
    Ok(ClientView {
        client_certificate: tls.is_some_and(|tls| tls.client_ca.is_some()),
        tls_cert_file: tls.and_then(|tls| match &tls.cert {
            Pem::File(path) => Some(path.clone()),
            Pem::Inline(_) => None,
        }),
        basic_auth: !settings.users.is_empty(),
    })
}

fn certificates(pem: &Pem, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = pem.bytes(key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", pem.describe(key)))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", pem.describe(key)));
    }
    Ok(certs)
}

fn acceptor(tls: &TlsSettings) -> Result<tokio_rustls::TlsAcceptor, String> {
    let certs = certificates(&tls.cert, "cert")?;
    let key_bytes = tls.key.bytes("key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| format!("{}: {e}", tls.key.describe("key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&tls.versions)
        .map_err(|e| e.to_string())?;
    let builder = match (&tls.client_ca, tls.client_auth) {
        (Some(ca), ClientAuth::Required | ClientAuth::Optional) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client_ca")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.describe("client_ca")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if tls.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", ca.describe("client_ca")))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Each file that matters, with its modification time and length.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The files whose change means "read the configuration again".
fn stamp(path: &Path) -> Stamp {
    let mut files = vec![path.to_path_buf()];
    if let Ok(settings) = settings(path)
        && let Some(tls) = settings.tls
    {
        for pem in [Some(tls.cert), Some(tls.key), tls.client_ca]
            .into_iter()
            .flatten()
        {
            if let Pem::File(file) = pem {
                files.push(file);
            }
        }
    }
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map(|m| m.len()).unwrap_or(0);
            (f, modified, len)
        })
        .collect()
}

/// The web configuration, re-read when its files change.
pub struct WebConfig {
    path: Option<PathBuf>,
    metrics: Option<ExporterMetrics>,
    /// The configuration in force, the stamp it was read at, and when it was last checked.
    state: Mutex<(Arc<Active>, Stamp, Instant)>,
}

impl WebConfig {
    /// No file: plain HTTP, no authentication.
    pub fn open() -> Self {
        WebConfig {
            path: None,
            metrics: None,
            state: Mutex::new((Arc::new(Active::open()), Vec::new(), Instant::now())),
        }
    }

    /// Loads the file; an invalid one stops the start.
    pub fn from_file(path: &Path, metrics: ExporterMetrics) -> Result<Self, WebConfigError> {
        let active = load(path)?;
        metrics.web_config_read(true);
        Ok(WebConfig {
            path: Some(path.to_path_buf()),
            metrics: Some(metrics),
            state: Mutex::new((Arc::new(active), stamp(path), Instant::now())),
        })
    }

    /// The configuration for a new connection, re-read first if its files changed.
    pub fn current(&self) -> Arc<Active> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(path) = &self.path else {
            return state.0.clone();
        };
        if state.2.elapsed() < CHECK_EVERY {
            return state.0.clone();
        }
        state.2 = Instant::now();
        let now = stamp(path);
        if now != state.1 {
            state.1 = now;
            let was_closed = state.0.closed.is_some();
            match load(path) {
                Ok(active) => {
                    if was_closed {
                        tracing::warn!(
                            "exporter web configuration {} is valid again: the exporter is open",
                            path.display()
                        );
                    } else {
                        tracing::info!("exporter web configuration {} re-read", path.display());
                    }
                    state.0 = Arc::new(active);
                    if let Some(metrics) = &self.metrics {
                        metrics.web_config_read(true);
                    }
                }
                Err(error) => {
                    tracing::error!(
                        "{error}; the exporter is CLOSED (connections are dropped unanswered) until the file is fixed"
                    );
                    state.0 = Arc::new(Active::closed(error.message));
                    if let Some(metrics) = &self.metrics {
                        metrics.web_config_read(false);
                    }
                }
            }
        }
        state.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(u, p)| (u.to_string(), bcrypt::hash(p, 4).unwrap()))
            .collect()
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn the_toolkit_format_is_read() {
        let yaml = r#"
tls_server_config:
  cert_file: /c.pem
  key_file: /k.pem
  client_ca_file: /ca.pem
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS13
http_server_config:
  http2: true
  headers:
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
"#;
        let settings = settings_from_text(yaml, false).unwrap();
        let tls = settings.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert_eq!(tls.versions.len(), 1);
        assert_eq!(settings.headers.len(), 2);
        assert_eq!(settings.users.len(), 1);
        assert_eq!(settings.ignored, ["http_server_config.http2"]);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        for (text, expected) in [
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: c\n",
                "unverified",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
                "TLS12",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
                "client_allowed_sans",
            ),
            ("rate_limit:\n  interval: 1s\n  burst: 2\n", "rate_limit"),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "X-Frame-Options",
            ),
            (
                "http_server_config:\n  headers:\n    Set-Cookie: a\n",
                "Set-Cookie",
            ),
            ("basic_auth_users:\n  alice: plain\n", "bcrypt"),
            ("tsl_server_config: {}\n", "tsl_server_config"),
        ] {
            let error = settings_from_text(text, false).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[tokio::test]
    async fn unknown_users_and_wrong_passwords_are_refused_and_successes_remembered() {
        let auth = Active {
            auth: BasicAuth::new(users(&[("alice", "right")])),
            ..Active::open()
        };
        let check = |h: String| {
            let auth = &auth;
            async move { auth.check(Some(&h)).await }
        };
        assert_eq!(check(basic("alice", "wrong")).await, Verdict::Refused);
        assert_eq!(check(basic("mallory", "right")).await, Verdict::Refused);
        assert_eq!(auth.check(None).await, Verdict::Refused);
        assert_eq!(check(basic("alice", "right")).await, Verdict::Allowed);
        assert_eq!(check(basic("alice", "right")).await, Verdict::Allowed);
        assert_eq!(auth.auth.as_ref().unwrap().verified.len(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let verified = Verified::new();
        for i in 0..(CACHE_ENTRIES * 3) {
            verified.insert(verified.tag("u", &i.to_string()));
        }
        assert_eq!(verified.len(), CACHE_ENTRIES);
        assert!(!verified.contains(&verified.tag("u", "0")));
        assert!(verified.contains(&verified.tag("u", &(CACHE_ENTRIES * 3 - 1).to_string())));
    }

    /// An unknown user must cost what a known user's wrong password costs: both run one
    /// bcrypt verification of the same cost. Measured as counts of bcrypt rounds would be
    /// ideal; short of that, the two timing distributions are compared by their medians
    /// relative to their spread (a Mann-Whitney-style rank test), not by a fixed threshold.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_password_timing_is_the_same_for_known_and_unknown_users() {
        let auth = Active {
            auth: BasicAuth::new(users(&[("alice", "right"), ("bob", "other")])),
            ..Active::open()
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..60 {
            // Interleaved, so that drift of the machine's load affects both alike.
            for (user, into) in [("alice", &mut known), ("nobody", &mut unknown)] {
                let header = basic(user, &format!("wrong{i}"));
                let started = std::time::Instant::now();
                assert_eq!(auth.check(Some(&header)).await, Verdict::Refused);
                into.push(started.elapsed().as_nanos() as f64);
            }
        }
        // Mann-Whitney U: with equal distributions, U is near n*m/2 with a known spread; the
        // z-score of a timing side channel of bcrypt-sized work (known: one verification,
        // unknown: none) is in the tens. |z| < 4 lets noise through, never a skipped hash.
        let n = known.len() as f64;
        let m = unknown.len() as f64;
        let u: f64 = known
            .iter()
            .map(|k| {
                unknown
                    .iter()
                    .map(|x| {
                        if k > x {
                            1.0
                        } else if k == x {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
            })
            .sum();
        let mean = n * m / 2.0;
        let sd = (n * m * (n + m + 1.0) / 12.0).sqrt();
        let z = (u - mean) / sd;
        assert!(
            z.abs() < 4.0,
            "known and unknown users' wrong passwords take different times (z = {z:.1})"
        );
    }

    #[test]
    fn any_text_gives_a_result_not_a_panic() {
        for text in [
            "",
            "~",
            "[]",
            "basic_auth_users: ~",
            "tls_server_config: 3",
            "{{{{",
            "\u{0}",
        ] {
            let _ = parse_text(text, false);
            let _ = parse_text(text, true);
        }
    }
}
