//! The dashboard and alert rules follow their conventions (the Grafana dashboard-linter's
//! rules, the monitoring-mixin's absolute runbook links), and promtool accepts and tests the
//! rules as `bt-watchdog alerts` generates them. promtool comes from Debian's `prometheus` package, which the README's test command
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

/// The example bases `alerts.test.yml` expects the rules to be generated with.
const RUNBOOK_BASE: &str = "https://watchdog.example.com:9877/runbook";
const DASHBOARD_BASE: &str = "https://grafana.example.com";
const RUNBOOK_PLACEHOLDER: &str = "https://bt-watchdog.invalid/runbook";
const DASHBOARD_PLACEHOLDER: &str = "https://grafana.invalid";

/// The rules as `bt-watchdog alerts` generates them with the example bases, next to their
/// unit tests, in a fresh directory.
fn generated_rules() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bt-watchdog"))
        .args(["alerts", "--runbook-base", RUNBOOK_BASE])
        .args(["--dashboard-base", DASHBOARD_BASE, "--rules"])
        .arg(repo("dashboards/alerts.yml"))
        .arg("--output")
        .arg(dir.path().join("alerts.yml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bt-watchdog alerts: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::copy(
        repo("dashboards/alerts.test.yml"),
        dir.path().join("alerts.test.yml"),
    )
    .unwrap();
    dir
}

fn promtool_in(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is not installed: run ./scripts/test.sh, which installs Debian's prometheus package");
    assert!(
        output.status.success(),
        "promtool {args:?} in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_as_shipped_and_as_generated() {
    promtool_in(&repo("dashboards"), &["check", "rules", "alerts.yml"]);
    let generated = generated_rules();
    promtool_in(generated.path(), &["check", "rules", "alerts.yml"]);
}

#[test]
fn promtool_unit_tests_of_every_alert_pass_on_the_generated_rules() {
    let generated = generated_rules();
    promtool_in(generated.path(), &["test", "rules", "alerts.test.yml"]);
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
    // The tests expect absolute links, so they fail if the generator stops filling them in.
    assert!(tests.contains(&format!("runbook_url: {RUNBOOK_BASE}#")));
    assert!(tests.contains(&format!("dashboard_url: {DASHBOARD_BASE}/d/bt-watchdog/")));
}

#[test]
fn every_alert_has_severity_summary_description_and_absolute_links() {
    let rules = std::fs::read_to_string(repo("dashboards/alerts.yml")).unwrap();
    let runbook = std::fs::read_to_string(repo("dashboards/runbook.md")).unwrap();
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
        for annotation in [
            "summary: ",
            "description: ",
            "runbook_url: ",
            "dashboard_url: ",
        ] {
            assert!(block.contains(annotation), "{name} lacks {annotation}");
        }
        let runbook_url = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook_url: "))
            .unwrap_or_default();
        assert_eq!(
            runbook_url,
            format!("{RUNBOOK_PLACEHOLDER}#{}", name.to_lowercase()),
            "{name}: runbook_url (the placeholder base, the alert's anchor)"
        );
        let dashboard_url = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("dashboard_url: "))
            .unwrap_or_default()
            .trim_matches('\'');
        assert!(
            dashboard_url.starts_with(&format!(
                "{DASHBOARD_PLACEHOLDER}/d/bt-watchdog/bt-watchdog?var-"
            )),
            "{name}: dashboard_url {dashboard_url}"
        );
        assert!(
            runbook.contains(&format!("\n### {name}\n")),
            "dashboards/runbook.md has no section ### {name}"
        );
    }
}

/// The panels the runbook tells an operator to look at exist on the dashboard.
#[test]
fn the_runbook_names_only_panels_that_exist() {
    let titles: Vec<String> = panels(&dashboard())
        .iter()
        .filter_map(|p| p["title"].as_str().map(str::to_string))
        .collect();
    let runbook = std::fs::read_to_string(repo("dashboards/runbook.md")).unwrap();
    let mut named = 0;
    for line in runbook.lines().filter(|l| l.starts_with("- **Confirm:** ")) {
        let after_label = line.trim_start_matches("- **Confirm:** ");
        // The odd pieces between single asterisks are panel names.
        for title in after_label.split('*').skip(1).step_by(2) {
            named += 1;
            assert!(
                titles.iter().any(|t| t == title),
                "the runbook names a panel the dashboard lacks: {title:?}"
            );
        }
    }
    assert!(named >= 16, "only {named} panels named");
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
    for name in ["job", "instance", "site", "appliance"] {
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
            for variable in ["job", "instance"] {
                assert!(
                    expr.contains(&format!("{variable}=~\"${variable}\"")),
                    "{title}: {expr} ignores ${variable}"
                );
            }
            // The scrape's own `up`, the watchdog's build info, its runtime, its exporter, its
            // hooks and its membership of a cluster have no site.
            assert!(
                expr.starts_with("up{")
                    || expr.starts_with("beyondtrust_watchdog_build_info{")
                    || expr.contains("beyondtrust_watchdog_exporter_")
                    || expr.contains("beyondtrust_watchdog_notification")
                    || expr.contains("beyondtrust_watchdog_cluster_")
                    || expr.contains("beyondtrust_watchdog_runtime_tasks")
                    || expr.contains("site=~\"$site\""),
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
    for row in panels(&dashboard).iter().filter(|p| p["type"] == "row") {
        assert!(
            row["title"].as_str().is_some_and(|t| !t.is_empty()),
            "a row without a title"
        );
    }
}

/// Every metric of the README's reference is drawn somewhere: a feature that adds a metric
/// adds its panel (the rows "The watchdog itself" and "Data sync per appliance and failover
/// history" were added this way).
#[test]
fn every_metric_of_the_reference_is_on_the_dashboard() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let reference = readme
        .split("## Metrics reference")
        .nth(1)
        .and_then(|r| r.split("\n## ").next())
        .unwrap();
    let queries: String = panels(&dashboard())
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    let mut metrics = 0;
    for line in reference
        .lines()
        .filter(|l| l.starts_with("| `beyondtrust_"))
    {
        let cell = line.split('|').nth(1).unwrap();
        for metric in cell.split('`').filter(|m| m.starts_with("beyondtrust_")) {
            metrics += 1;
            assert!(
                queries.contains(metric),
                "{metric} is in the metrics reference but on no dashboard panel"
            );
        }
    }
    assert!(metrics >= 20, "only {metrics} metrics in the reference");
}
