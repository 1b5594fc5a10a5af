//! The dashboard and alert rules follow their conventions, and promtool accepts and tests the
//! rules. promtool comes from Debian's `prometheus` package, which the README's test command
//! installs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::path::PathBuf;
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo("dashboards/bt-watchdog.json")).unwrap())
        .unwrap()
}

/// Every panel of the dashboard, with nested rows flattened.
pub fn panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        out.push(panel.clone());
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(repo("dashboards"))
        .output()
        .expect("promtool is not installed: run ./scripts/test.sh, which installs Debian's prometheus package")
}

#[test]
fn promtool_checks_the_rules() {
    let output = promtool(&["check", "rules", "alerts.yml"]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_unit_tests_of_every_alert_pass() {
    let output = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Every alert is tested at least once firing.
    let rules = std::fs::read_to_string(repo("dashboards/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(repo("dashboards/alerts.test.yml")).unwrap();
    for line in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {line}")),
            "{line} has no unit test"
        );
    }
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_in_the_readme() {
    let rules = std::fs::read_to_string(repo("dashboards/alerts.yml")).unwrap();
    let readme = std::fs::read_to_string(repo("README.md"))
        .unwrap()
        .to_lowercase();
    let blocks: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(blocks.len() >= 13, "only {} alerts", blocks.len());
    for block in blocks {
        let name = block.lines().next().unwrap().trim();
        assert!(
            name.starts_with("BtWatchdog") && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{name} is not CamelCase with the common prefix"
        );
        let severity = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("severity: "))
            .unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary: ", "description: ", "runbook_url: "] {
            assert!(block.contains(annotation), "{name} lacks {annotation}");
        }
        let anchor = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook_url: README.md#"))
            .unwrap_or_default();
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook_url");
        assert!(
            readme.contains(&format!("### {anchor}\n")),
            "the README has no runbook entry ### {name}"
        );
    }
}

#[test]
fn the_dashboard_follows_the_conventions() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["query"], "prometheus");
    for name in ["site", "appliance"] {
        let var = variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("a {name} variable"));
        assert!(
            var["definition"]
                .as_str()
                .unwrap()
                .starts_with("label_values("),
            "{name} comes from label values"
        );
    }
    let appliance_metrics = ["beyondtrust_appliance_", "beyondtrust_api_"];
    let mut exprs = 0;
    for panel in panels(&dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(
            panel["description"].as_str().is_some_and(|d| d.len() > 20),
            "{title}: no description"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{title}: no unit"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: not on the datasource variable"
        );
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            exprs += 1;
            assert!(
                expr.contains("site=~\"$site\""),
                "{title}: {expr} ignores $site"
            );
            if appliance_metrics.iter().any(|m| expr.contains(m)) {
                assert!(
                    expr.contains("appliance=~\"$appliance\""),
                    "{title}: {expr} ignores $appliance"
                );
            }
            if expr.contains("rate(") || expr.contains("increase(") {
                assert!(
                    expr.contains("[$__rate_interval]"),
                    "{title}: {expr} must use $__rate_interval"
                );
            }
            let fixed_range = expr
                .split('[')
                .skip(1)
                .any(|after| !after.starts_with("$__rate_interval]"));
            assert!(!fixed_range, "{title}: {expr} has a fixed range");
        }
    }
    assert!(exprs >= 15, "{exprs} queries");
}
