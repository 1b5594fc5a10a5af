//! The exporter's web configuration: TLS, mutual TLS, basic auth, and changes taking effect
//! without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bt_watchdog::sim::SimSettings;
use common::simulator;
use common::watchdog::{SECRET, Watchdog, Workspace, config_toml, site_toml};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn write_web_config(path: &Path, text: &str) {
    // Written in place, as an editor would; the watchdog re-reads it by its modification time.
    std::fs::write(path, text).unwrap();
}

/// exporter-toolkit's YAML, as Prometheus exporters read it with `--web.config.file`.
fn tls_section(client_ca: bool) -> String {
    let mut text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        fixture("appliance.pem").display(),
        fixture("appliance.key").display()
    );
    if client_ca {
        text.push_str(&format!(
            "  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
            fixture("client-ca.pem").display()
        ));
    }
    text
}

fn client(identity: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .use_rustls_tls();
    if identity {
        let mut pem = std::fs::read(fixture("client.pem")).unwrap();
        pem.extend(std::fs::read(fixture("client.key")).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

async fn start(web: &str) -> (bt_watchdog::sim::Simulator, Workspace, Watchdog) {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    write_web_config(&ws.path("web.yml"), web);
    let config = config_toml(
        "observe",
        &ws.path("state"),
        &site_toml("hq", &sim, &secret, ""),
    )
    .replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:0\"\nweb_config = \"{}\"",
            ws.path("web.yml").display()
        ),
    );
    std::fs::write(ws.path("config.toml"), config).unwrap();
    let watchdog = Watchdog::start(&ws.path("config.toml"), &ws.path("watchdog.log"), "info");
    (sim, ws, watchdog)
}

fn https(watchdog: &Watchdog) -> String {
    assert!(watchdog.base.starts_with("https://"), "{}", watchdog.base);
    watchdog.base.replace("127.0.0.1", "localhost")
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_test_ca_works_and_plain_http_does_not() {
    let (sim, _ws, watchdog) = start(&tls_section(false)).await;
    let base = https(&watchdog);
    let response = client(false)
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("beyondtrust_watchdog_build_info")
    );
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let answer = plain
        .get(base.replace("https://", "http://") + "/metrics")
        .send()
        .await;
    assert!(
        answer.is_err() || answer.unwrap().status() != 200,
        "plain HTTP must not be served"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_rejects_a_client_without_a_certificate() {
    let (sim, _ws, watchdog) = start(&tls_section(true)).await;
    let base = https(&watchdog);
    assert!(
        client(false)
            .get(format!("{base}/metrics"))
            .send()
            .await
            .is_err(),
        "no client certificate, no answer"
    );
    let response = client(true)
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_and_changes_without_a_restart() {
    let alice = bcrypt::hash("right-password", 4).unwrap();
    let (sim, ws, watchdog) = start(&format!(
        "basic_auth_users:\n  alice: {alice}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    ))
    .await;
    // The web configuration applies to new connections: each request opens one, so that the
    // test does not depend on whether an earlier answer left a connection to reuse.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("{}/metrics", watchdog.base);
    let status = |user: &'static str, password: Option<&'static str>| {
        let request = http.get(&url);
        let request = match password {
            Some(p) => request.basic_auth(user, Some(p)),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("alice", None).await, 401);
    assert_eq!(status("alice", Some("wrong-password")).await, 401);
    assert_eq!(status("alice", Some("right-password")).await, 200);
    assert_eq!(
        status("alice", Some("right-password")).await,
        200,
        "and again, from the cache"
    );

    // Alice is replaced by bob: it takes effect without a restart.
    let bob = bcrypt::hash("bobs-password", 4).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    write_web_config(
        &ws.path("web.yml"),
        &format!("basic_auth_users:\n  bob: '{bob}'\n"),
    );
    let until = Instant::now() + Duration::from_secs(15);
    while status("bob", Some("bobs-password")).await != 200 {
        assert!(
            Instant::now() < until,
            "the new web configuration was not applied:\n{}",
            watchdog.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status("alice", Some("right-password")).await, 401);

    // A broken file closes the exporter: nothing is served with settings that are no longer
    // the file's, and the log says so.
    std::thread::sleep(Duration::from_millis(1100));
    write_web_config(
        &ws.path("web.yml"),
        "basic_auth_users:\n  bob: not-a-hash\n",
    );
    let until = Instant::now() + Duration::from_secs(15);
    while !watchdog.logs().contains("the exporter is CLOSED") {
        let _ = http
            .get(&url)
            .basic_auth("bob", Some("bobs-password"))
            .send()
            .await;
        assert!(
            Instant::now() < until,
            "no closing logged:\n{}",
            watchdog.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in ["/metrics", "/healthz", "/status"] {
        let answer = http
            .get(format!("{}{path}", watchdog.base))
            .basic_auth("bob", Some("bobs-password"))
            .send()
            .await;
        assert!(answer.is_err(), "{path} answered while closed: {answer:?}");
    }
    assert!(
        watchdog.logs().contains("not a bcrypt hash"),
        "{}",
        watchdog.logs()
    );

    // Fixed: open again, and the metrics tell what happened.
    std::thread::sleep(Duration::from_millis(1100));
    write_web_config(
        &ws.path("web.yml"),
        &format!("basic_auth_users:\n  bob: '{bob}'\n"),
    );
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = http
            .get(&url)
            .basic_auth("bob", Some("bobs-password"))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(Instant::now() < until, "not reopened:\n{}", watchdog.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = http
        .get(&url)
        .basic_auth("bob", Some("bobs-password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        common::watchdog::metric(&text, "beyondtrust_watchdog_exporter_web_config_valid"),
        Some(1.0)
    );
    assert_eq!(
        common::watchdog::metric(
            &text,
            "beyondtrust_watchdog_exporter_web_config_reload_failures_total"
        ),
        Some(1.0)
    );
    // Two wrong passwords and one request without credentials earlier, at least.
    assert!(
        common::watchdog::metric(&text, "beyondtrust_watchdog_exporter_auth_failures_total")
            .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_without_credentials_and_the_rest_does_not() {
    let alice = bcrypt::hash("right-password", 4).unwrap();
    let (sim, _ws, watchdog) = start(&format!(
        "basic_auth_users:\n  alice: {alice}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    ))
    .await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = http
            .get(format!("{}/healthz", watchdog.base))
            .send()
            .await
            .unwrap();
        assert_ne!(answer.status(), 401, "/healthz asked for credentials");
        assert_eq!(answer.headers()["x-frame-options"], "deny");
        if answer.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < until,
            "never healthy:\n{}",
            watchdog.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The container image's HEALTHCHECK: the binary asks /healthz, without credentials.
    let probe = std::process::Command::new(common::watchdog::BINARY)
        .args([
            "healthcheck",
            "--url",
            &format!("{}/healthz", watchdog.base),
        ])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    for path in ["/metrics", "/status", "/"] {
        let answer = http
            .get(format!("{}{path}", watchdog.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{path}");
        assert_eq!(answer.headers()["x-frame-options"], "deny", "{path}");
    }
    sim.shutdown().await;
}

#[test]
fn an_invalid_web_config_stops_the_start() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path("web.toml"),
        "[tls]\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"\n",
    )
    .unwrap();
    let secret = ws.write_secret(SECRET);
    let config = format!(
        "state_dir = \"{}\"\n[exporter]\nlisten = \"127.0.0.1:0\"\nweb_config = \"{}\"\n[[site]]\nname = \"hq\"\nclient_id = \"x\"\nclient_secret_file = \"{}\"\nappliances = [{{ name = \"a\", url = \"https://a.example.com\" }}, {{ name = \"b\", url = \"https://b.example.com\" }}]\n",
        ws.path("state").display(),
        ws.path("web.toml").display(),
        secret.display()
    );
    std::fs::write(ws.path("config.toml"), config).unwrap();
    let output = std::process::Command::new(common::watchdog::BINARY)
        .args(["run", "--config"])
        .arg(ws.path("config.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("web_config") && stderr.contains("/nonexistent.pem"),
        "{stderr}"
    );
}
