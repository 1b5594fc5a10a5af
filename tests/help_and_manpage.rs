//! What `--help` and the man page tell: every command on the one page the packages ship, and
//! defaults shown in a form the command line accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_bt-watchdog");

fn run(args: &[&str]) -> String {
    let output = Command::new(BINARY).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The commands `--help` lists.
fn commands() -> Vec<String> {
    let help = run(&["--help"]);
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("a command list")
        .split("\n\n")
        .next()
        .unwrap();
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn one_man_page_covers_every_command_and_refers_to_no_other_page() {
    let commands = commands();
    assert!(
        commands.iter().any(|c| c == "manpage"),
        "manpage is listed: {commands:?}"
    );
    let page = run(&["manpage"]);
    for command in &commands {
        let heading = format!(
            ".SH \"BT\\-WATCHDOG {}\"",
            command.to_uppercase().replace('-', "\\-")
        );
        assert!(page.contains(&heading), "{heading} missing from the page");
    }
    // Every option of every command, as --help shows them.
    for command in &commands {
        let help = run(&[command, "--help"]);
        for option in help
            .split_whitespace()
            .filter(|word| word.starts_with("--") && word.len() > 2)
        {
            let option = option.trim_end_matches([',', '.', ')', ':']);
            let roff = option.replace('-', "\\-");
            assert!(
                page.contains(&format!("\\fB{roff}")) || page.contains(&roff),
                "{command} {option} missing from the page"
            );
        }
    }
    // No reference to per-command pages that are not shipped (bt-watchdog-run(1), …).
    assert!(!page.contains("bt\\-watchdog\\-"), "refers to another page");
    assert!(page.contains(".SH \"EXIT STATUS\""), "the exit codes");
    assert!(page.contains("77 unauthorized"), "the exit codes");
}

/// The defaults `simulate --help` shows for its two-value lists are typed back as shown.
#[test]
fn simulate_accepts_the_defaults_its_help_shows() {
    let help = run(&["simulate", "--help"]);
    let shown = |option: &str| -> String {
        let at = help.find(&format!("{option} <")).expect(option);
        let rest = &help[at..];
        let start = rest.find("[default: ").expect("a default") + "[default: ".len();
        rest[start..][..rest[start..].find(']').unwrap()].to_string()
    };
    let names = shown("--names");
    let apis = shown("--apis");
    let namespaces = shown("--xml-namespaces");
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(BINARY)
        .args([
            "simulate",
            "--names",
            &names,
            "--apis",
            &apis,
            "--xml-namespaces",
            &namespaces,
            "--ready-file",
        ])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let info: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready)
            && let Ok(value) = serde_json::from_str(&text)
        {
            break value;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "simulate --names {names:?} --apis {apis:?} --xml-namespaces {namespaces:?} exited with {status}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(Instant::now() < until, "the simulator did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let expected: Vec<&str> = names.split(',').collect();
    assert_eq!(expected.len(), 2, "{names}");
    assert_eq!(info["appliances"][0]["name"], expected[0]);
    assert_eq!(info["appliances"][1]["name"], expected[1]);
}
