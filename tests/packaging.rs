//! The packaging files are well-formed: the container file parses (no container engine runs
//! here to build it), the unit has what systemd needs, the example configuration is accepted.
//! Building and installing the packages is `packaging/check-packages.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::path::PathBuf;
use std::process::Command;

use bt_watchdog::config::keys::{KEYS, split};
use bt_watchdog::config::reference::{BLESS_HINT, example_config, update_readme};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The instructions of a Containerfile, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        current.push_str(trimmed.trim_end_matches('\\'));
        current.push(' ');
        if !trimmed.ends_with('\\') {
            let (keyword, rest) = current
                .trim()
                .split_once(' ')
                .unwrap_or((current.trim(), ""));
            out.push((keyword.to_string(), rest.trim().to_string()));
            current.clear();
        }
    }
    out
}

#[test]
fn the_containerfile_parses_and_runs_as_non_root() {
    let text = std::fs::read_to_string(repo("packaging/Containerfile")).unwrap();
    let steps = instructions(&text);
    let known = [
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "USER",
        "VOLUME",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "ENV",
        "ARG",
        "LABEL",
        "HEALTHCHECK",
    ];
    let mut stages = Vec::new();
    let mut last_user = None;
    for (keyword, args) in &steps {
        assert!(
            known.contains(&keyword.as_str()),
            "unknown instruction {keyword}"
        );
        assert!(!args.is_empty(), "{keyword} without arguments");
        match keyword.as_str() {
            "FROM" => {
                stages.push(
                    args.split_whitespace()
                        .nth(2)
                        .unwrap_or_default()
                        .to_string(),
                );
                last_user = None;
            }
            "USER" => last_user = Some(args.clone()),
            "HEALTHCHECK" => {
                // Exec form, running a subcommand the binary has (distroless has no shell).
                let command = args.split_once("CMD ").map(|(_, c)| c).unwrap_or_default();
                let argv: Vec<String> = serde_json::from_str(command)
                    .unwrap_or_else(|_| panic!("HEALTHCHECK CMD is not in exec form: {args}"));
                let output = std::process::Command::new(env!("CARGO_BIN_EXE_bt-watchdog"))
                    .arg(&argv[1])
                    .arg("--help")
                    .output()
                    .unwrap();
                assert!(output.status.success(), "no subcommand {:?}", argv[1]);
            }
            "COPY" => {
                if let Some(stage) = args.strip_prefix("--from=") {
                    let stage = stage.split_whitespace().next().unwrap();
                    assert!(
                        stages.contains(&stage.to_string()),
                        "COPY from unknown stage {stage}"
                    );
                } else {
                    for source in args.split_whitespace().rev().skip(1) {
                        assert!(
                            repo(source.trim_end_matches('/')).exists(),
                            "COPY source {source} does not exist"
                        );
                    }
                }
            }
            "ENTRYPOINT" | "CMD" => {
                assert!(
                    serde_json::from_str::<Vec<String>>(args).is_ok(),
                    "{keyword} is not in exec (JSON) form: {args}"
                );
            }
            _ => {}
        }
    }
    assert!(stages.len() >= 2, "a multi-stage build");
    let user = last_user.expect("the final stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "the image runs as {user}"
    );
}

#[test]
fn the_unit_has_what_systemd_needs() {
    let unit = std::fs::read_to_string(repo("packaging/systemd/bt-watchdog.service")).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "LimitNOFILE=",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=bt-watchdog",
        "StateDirectory=bt-watchdog",
        "RuntimeDirectory=bt-watchdog",
        "LoadCredential=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "LimitCORE=0",
        "PrivateIPC=yes",
        "PrivateUsers=yes",
        "#SocketBindAllow=",
        "#IPAddressAllow=",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
}

/// A secret file as systemd and `install -m 600` make them: readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `check-config` (and a standalone failover) run from a shell, where systemd's
/// `$CREDENTIALS_DIRECTORY` is not set: the packaged configuration's credential is read where
/// the unit's `LoadCredential=` would take it from, and a missing one says where it looked.
#[test]
fn the_packaged_configuration_is_checked_outside_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let example = std::fs::read_to_string(repo("packaging/config.example.toml")).unwrap();
    let line = "credentials_without_systemd = \"secrets:/etc/bt-watchdog/secrets\"";
    assert!(example.contains(line), "the example shows {line}");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        example.replace(
            line,
            &format!(
                "credentials_without_systemd = \"secrets:{}\"",
                secrets.display()
            ),
        ),
    )
    .unwrap();
    let check = || {
        let output = Command::new(env!("CARGO_BIN_EXE_bt-watchdog"))
            .args(["check-config", "--config"])
            .arg(&config)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };
    let (ok, text) = check();
    assert!(!ok, "{text}");
    assert!(
        text.contains(&secrets.join("support").display().to_string())
            && text.contains("credentials_without_systemd"),
        "the error says where it looked: {text}"
    );
    write_private(&secrets.join("support"), "dummy\n");
    let (ok, text) = check();
    assert!(ok, "{text}");
    assert!(text.contains("OK (1 site)"), "{text}");
}

#[test]
fn the_example_configuration_is_accepted_with_a_dummy_secret() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("secrets_support"), "dummy\n");
    let output = Command::new(env!("CARGO_BIN_EXE_bt-watchdog"))
        .args(["check-config", "--config"])
        .arg(repo("packaging/config.example.toml"))
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("OK (1 site)"), "{text}");
    // Every key of the configuration reference appears in the example.
    let example = std::fs::read_to_string(repo("packaging/config.example.toml")).unwrap();
    for key in KEYS {
        let (_, key) = split(key.path);
        assert!(
            example.contains(&format!("{key} =")),
            "the example lacks {key}"
        );
    }
}

/// The README's configuration reference and the example configuration are generated from the
/// key table; with `BLESS=1` this test rewrites them instead of failing.
#[test]
fn the_readme_and_the_example_follow_the_key_table() {
    let bless = std::env::var_os("BLESS").is_some();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let generated = [
        (
            "README.md",
            update_readme(&readme).unwrap_or_else(|e| panic!("{e}")),
        ),
        ("packaging/config.example.toml", example_config()),
    ];
    for (file, expected) in generated {
        let actual = std::fs::read_to_string(repo(file)).unwrap();
        if actual == expected {
            continue;
        }
        if bless {
            std::fs::write(repo(file), &expected).unwrap();
        } else {
            let line = actual
                .lines()
                .zip(expected.lines())
                .position(|(a, e)| a != e)
                .map_or(actual.lines().count().min(expected.lines().count()), |n| n)
                + 1;
            panic!("{file} differs from src/config/keys.rs from line {line}: {BLESS_HINT}");
        }
    }
}

#[test]
fn the_kubernetes_example_never_runs_two_watchdogs() {
    let text = std::fs::read_to_string(repo("packaging/kubernetes.yaml")).unwrap();
    assert!(
        text.contains("replicas: 1") && text.contains("type: Recreate"),
        "two watchdogs at once would race to fail over"
    );
    assert!(text.contains("path: /healthz"));
}
