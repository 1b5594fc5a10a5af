//! `bt-watchdog healthcheck`: asks the running daemon's `/healthz` on this host and exits 0
//! when it answers 200, for probes that can only run a command (the container image's
//! `HEALTHCHECK`, which has no shell and no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::exit::Exit;

/// The loopback URL of the configured exporter: a wildcard listen address is asked on
/// loopback, and https when the web configuration asks for TLS.
fn local_url(config: &crate::config::Config) -> String {
    let listen = config.exporter.listen;
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let tls = config
        .exporter
        .web_config
        .as_deref()
        .is_some_and(crate::exporter::web_config::serves_tls);
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}/healthz", SocketAddr::new(ip, listen.port()))
}

pub async fn run(url: Option<String>, config_path: &Path) -> Exit {
    let url = match url {
        Some(url) => url,
        None => match crate::config::load(config_path) {
            Ok(config) => local_url(&config),
            Err(error) => {
                eprintln!("bt-watchdog: {error}");
                return Exit::Usage;
            }
        },
    };
    // This process asks its own host's daemon: the certificate is the exporter's own, and the
    // answer says only whether the loops run, so it is not verified.
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("bt-watchdog: cannot set up the HTTP client: {error}");
            return Exit::NotDone;
        }
    };
    match client.get(&url).send().await {
        Ok(answer) if answer.status() == 200 => {
            println!("{url}: ok");
            Exit::Done
        }
        Ok(answer) => {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            eprintln!("bt-watchdog: {url}: {status}: {}", body.trim());
            Exit::Unavailable
        }
        Err(error) => {
            eprintln!("bt-watchdog: {url}: {error}");
            Exit::Unavailable
        }
    }
}
