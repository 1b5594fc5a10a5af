//! Securing the exporter, in the style of the Prometheus exporter-toolkit: an optional web
//! configuration file (`exporter.web_config`) with TLS (certificate, key, an optional client CA
//! for mutual TLS, a minimum version) and basic-auth users with bcrypt-hashed passwords.
//!
//! The file (and the certificate files it names) is looked at again at most once a second
//! when connections arrive, so a rotated certificate or a new user takes effect without a
//! restart. A changed file that is invalid is logged and the previous configuration is kept.
//!
//! ```toml
//! [tls]
//! cert_file = "/etc/bt-watchdog/exporter.pem"
//! key_file = "/etc/bt-watchdog/exporter.key"
//! client_ca_file = "/etc/bt-watchdog/prometheus-ca.pem"   # optional: require client certificates
//! min_version = "1.2"                                     # or "1.3"
//!
//! [basic_auth_users]
//! prometheus = "$2y$10$…"                                 # htpasswd -nBC 10 "" | tr -d ':'
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    tls: Option<TlsSection>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
}

/// The configuration in force.
pub struct Active {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    users: BTreeMap<String, String>,
    /// (user, SHA-256 of the password) pairs already verified: bcrypt is deliberately slow,
    /// and Prometheus sends the same credentials on every scrape.
    verified: Mutex<HashSet<(String, Vec<u8>)>>,
}

impl Active {
    fn open() -> Self {
        Active {
            tls: None,
            users: BTreeMap::new(),
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// Whether an `Authorization` header value carries valid basic-auth credentials.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes())
            .as_ref()
            .to_vec();
        let key = (user.to_string(), digest);
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            verified.insert(key);
        }
        ok
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
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let file: WebConfigFile =
        toml::from_str(&text).map_err(|e| fail(format!("not valid: {}", e.message())))?;
    for (user, hash) in &file.basic_auth_users {
        if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
            return Err(fail(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':'`)"
            )));
        }
    }
    let tls = match &file.tls {
        None => None,
        Some(tls) => Some(acceptor(tls).map_err(fail)?),
    };
    Ok(Active {
        tls,
        users: file.basic_auth_users,
        verified: Mutex::new(HashSet::new()),
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
    let fail = |message: String| WebConfigError {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let file: WebConfigFile =
        toml::from_str(&text).map_err(|e| fail(format!("not valid: {}", e.message())))?;
    Ok(ClientView {
        client_certificate: file
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_file.is_some()),
        tls_cert_file: file.tls.map(|tls| tls.cert_file),
        basic_auth: !file.basic_auth_users.is_empty(),
    })
}

fn acceptor(tls: &TlsSection) -> Result<tokio_rustls::TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", tls.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate",
            tls.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| format!("tls.key_file {}: {e}", tls.key_file.display()))?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version.as_deref() {
        None | Some("1.2") | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("1.3") | Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => return Err(format!("tls.min_version {other:?}: use \"1.2\" or \"1.3\"")),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls.client_ca_file {}: {e}", ca.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.client_ca_file {}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("tls.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Each file that matters, with its modification time and length.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The files whose change means "read the configuration again".
fn stamp(path: &Path) -> Stamp {
    let mut files = vec![path.to_path_buf()];
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(file) = toml::from_str::<WebConfigFile>(&text)
        && let Some(tls) = file.tls
    {
        files.push(tls.cert_file);
        files.push(tls.key_file);
        files.extend(tls.client_ca_file);
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
    /// The configuration in force, the stamp it was read at, and when it was last checked.
    state: Mutex<(Arc<Active>, Stamp, Instant)>,
}

const CHECK_EVERY: Duration = Duration::from_secs(1);

impl WebConfig {
    /// No file: plain HTTP, no authentication.
    pub fn open() -> Self {
        WebConfig {
            path: None,
            state: Mutex::new((Arc::new(Active::open()), Vec::new(), Instant::now())),
        }
    }

    /// Loads the file; an invalid one stops the start.
    pub fn from_file(path: &Path) -> Result<Self, WebConfigError> {
        let active = load(path)?;
        Ok(WebConfig {
            path: Some(path.to_path_buf()),
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
            match load(path) {
                Ok(active) => {
                    tracing::info!("exporter web configuration {} re-read", path.display());
                    state.0 = Arc::new(active);
                }
                Err(error) => tracing::error!("{error}; keeping the previous web configuration"),
            }
        }
        state.0.clone()
    }
}
