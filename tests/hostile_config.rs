//! The files and people that configure the watchdog: a secret others can read, a URL that
//! would send it in clear. The real binary refuses to start, and `check-config` lists every
//! such problem at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use common::watchdog::{BINARY, Workspace};

fn site(name: &str, secret: &std::path::Path, url: &str) -> String {
    format!(
        "[[site]]\nname = \"{name}\"\nclient_id = \"x\"\nclient_secret_file = \"{}\"\nappliances = [{{ name = \"a\", url = \"{url}\" }}, {{ name = \"b\", url = \"https://b-{name}.example.com\" }}]\n",
        secret.display()
    )
}

fn run(args: &[&str], config: &std::path::Path) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn world_readable_secrets_are_refused_at_start_and_all_listed_by_check_config() {
    let ws = Workspace::new();
    let mut sites = String::new();
    let mut secrets = Vec::new();
    for name in ["one", "two"] {
        let secret = ws.path(&format!("{name}.secret"));
        std::fs::write(&secret, "s3cret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Each site its own appliances: one appliance in two pairs is refused on its own.
        sites.push_str(&site(
            name,
            &secret,
            &format!("https://a-{name}.example.com"),
        ));
        secrets.push(secret);
    }
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[exporter]\nlisten = \"127.0.0.1:0\"\n{sites}",
            ws.path("state").display()
        ),
    )
    .unwrap();

    let (ok, text) = run(&["check-config"], &config);
    assert!(!ok, "{text}");
    for secret in &secrets {
        assert!(
            text.contains(&format!("chmod o-rwx {}", secret.display())),
            "check-config does not list {}: {text}",
            secret.display()
        );
    }

    let (ok, text) = run(&["run"], &config);
    assert!(
        !ok,
        "the daemon started with a world-readable secret: {text}"
    );
    assert!(
        text.contains("readable by everyone") && text.contains("chmod o-rwx"),
        "{text}"
    );
}

#[test]
fn a_plain_http_appliance_url_is_refused_unless_the_site_allows_it() {
    let ws = Workspace::new();
    let secret = ws.write_secret("s3cret");
    let config = ws.path("config.toml");
    let text = format!(
        "state_dir = \"{}\"\n{}",
        ws.path("state").display(),
        site("hq", &secret, "http://a.example.com")
    );
    std::fs::write(&config, &text).unwrap();
    for command in [&["check-config"][..], &["run"][..]] {
        let (ok, output) = run(command, &config);
        assert!(!ok, "{command:?} accepted http://: {output}");
        assert!(
            output.contains("site[0].appliances[0].url") && output.contains("allow_plain_http"),
            "{command:?}: {output}"
        );
    }
    std::fs::write(
        &config,
        text.replace(
            "client_id = \"x\"",
            "client_id = \"x\"\nallow_plain_http = true",
        ),
    )
    .unwrap();
    let (ok, output) = run(&["check-config"], &config);
    assert!(ok, "{output}");
}

#[test]
fn check_config_reads_the_web_configuration_too() {
    let ws = Workspace::new();
    let secret = ws.write_secret("s3cret");
    let web = ws.path("web-config.yml");
    std::fs::write(&web, "basic_auth_users:\n  alice: not-a-hash\n").unwrap();
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[exporter]\nweb_config = \"{}\"\n{}",
            ws.path("state").display(),
            web.display(),
            site("hq", &secret, "https://a.example.com")
        ),
    )
    .unwrap();
    let (ok, text) = run(&["check-config"], &config);
    assert!(!ok, "{text}");
    assert!(
        text.contains("web-config.yml") && text.contains("not a bcrypt hash"),
        "{text}"
    );
}
