//! `bt-watchdog alerts`: the shipped Prometheus rules with their links filled in.
//!
//! The rules in `dashboards/alerts.yml` carry placeholder bases (on the reserved `.invalid`
//! domain) in every `runbook_url` and `dashboard_url`, as monitoring mixins do with their
//! `runbookURLPattern`. This command replaces them with the installation's own: the runbook
//! the daemon serves at `/runbook` (or a wiki copy of `dashboards/runbook.md`), and the Grafana
//! that has the dashboard. Only those two annotations are touched, line by line, so the rules
//! stay exactly as written (comments, order, expressions).

use std::path::{Path, PathBuf};

use super::exit::Exit;

/// The rules as shipped, compiled in so that the command works without the packaged file.
pub const SHIPPED_RULES: &str = include_str!("../../dashboards/alerts.yml");
/// The runbook base the shipped rules use until `alerts` fills in the real one.
pub const RUNBOOK_PLACEHOLDER: &str = "https://bt-watchdog.invalid/runbook";
/// The Grafana base the shipped rules use until `alerts` fills in the real one.
pub const DASHBOARD_PLACEHOLDER: &str = "https://grafana.invalid";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AlertsError {
    #[error("{flag} {value:?} is not an absolute http(s) URL: {why}")]
    BadBase {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "{source_name} line {line}: {annotation} does not start with the placeholder {placeholder:?} (are these rules already filled in? start from the shipped file)"
    )]
    NotPlaceholder {
        source_name: String,
        line: usize,
        annotation: &'static str,
        placeholder: &'static str,
    },
    #[error("{source_name} has no runbook_url annotation: is it the bt-watchdog alert rules?")]
    NoRunbook { source_name: String },
}

/// A base URL given on the command line: absolute, http or https, no query or fragment, kept
/// without a trailing slash so that `BASE#anchor` and `BASE/d/...` join cleanly.
#[derive(Debug, Clone, PartialEq)]
pub struct Base(String);

impl Base {
    pub fn parse(flag: &'static str, value: &str) -> Result<Base, AlertsError> {
        let bad = |why: &str| AlertsError::BadBase {
            flag,
            value: value.to_string(),
            why: why.to_string(),
        };
        let url = reqwest::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "a base has no ?query or #fragment (the alert's own part is appended)",
            ));
        }
        // Quotes and spaces would end the YAML scalar or the URL.
        if value.contains(['\'', '"', ' ', '{', '}']) {
            return Err(bad("it contains a quote, a space or a brace"));
        }
        Ok(Base(value.trim_end_matches('/').to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What to generate: from which rules, with which bases, to where.
#[derive(Debug)]
pub struct AlertsOptions {
    pub runbook_base: Base,
    /// Without one, the `dashboard_url` annotations are left out (no Grafana to link to).
    pub dashboard_base: Option<Base>,
    /// The rules to start from (default: the ones compiled into this binary).
    pub rules: Option<PathBuf>,
    /// Where to write (atomically); default stdout.
    pub output: Option<PathBuf>,
}

/// The rules with both bases filled in. `source_name` names the input in errors.
pub fn render(
    rules: &str,
    source_name: &str,
    runbook: &Base,
    dashboard: Option<&Base>,
) -> Result<String, AlertsError> {
    let mut out = String::with_capacity(rules.len() + 512);
    let mut runbooks = 0;
    for (index, line) in rules.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let annotation = if trimmed.starts_with("runbook_url:") {
            Some(("runbook_url", RUNBOOK_PLACEHOLDER, Some(runbook)))
        } else if trimmed.starts_with("dashboard_url:") {
            Some(("dashboard_url", DASHBOARD_PLACEHOLDER, dashboard))
        } else {
            None
        };
        let Some((name, placeholder, base)) = annotation else {
            out.push_str(line);
            out.push('\n');
            if index == 0 {
                out.push_str(&generated_note(runbook, dashboard));
            }
            continue;
        };
        let value = trimmed[name.len() + 1..].trim();
        // Either quoting YAML allows for a URL, or none.
        let (quote, unquoted) = match value.chars().next() {
            Some(q @ ('\'' | '"')) if value.len() >= 2 && value.ends_with(q) => {
                (q.to_string(), &value[1..value.len() - 1])
            }
            _ => (String::new(), value),
        };
        let rest = unquoted
            .strip_prefix(placeholder)
            .filter(|rest| rest.starts_with(['#', '/', '?']))
            .ok_or_else(|| AlertsError::NotPlaceholder {
                source_name: source_name.to_string(),
                line: index + 1,
                annotation: name,
                placeholder,
            })?;
        if name == "runbook_url" {
            runbooks += 1;
        }
        if let Some(base) = base {
            out.push_str(&format!(
                "{indent}{name}: {quote}{}{rest}{quote}\n",
                base.as_str()
            ));
        }
    }
    if runbooks == 0 {
        return Err(AlertsError::NoRunbook {
            source_name: source_name.to_string(),
        });
    }
    Ok(out)
}

fn generated_note(runbook: &Base, dashboard: Option<&Base>) -> String {
    format!(
        "# Generated by `bt-watchdog alerts` (v{}) with runbook base {} and {}.\n",
        env!("CARGO_PKG_VERSION"),
        runbook.as_str(),
        match dashboard {
            Some(base) => format!("dashboard base {}", base.as_str()),
            None => "no dashboard base (no dashboard_url annotations)".to_string(),
        }
    )
}

pub fn run(options: &AlertsOptions) -> Exit {
    let (rules, source_name) = match &options.rules {
        None => (SHIPPED_RULES.to_string(), "the built-in rules".to_string()),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (text, path.display().to_string()),
            Err(error) => {
                eprintln!("bt-watchdog: cannot read {}: {error}", path.display());
                return Exit::Usage;
            }
        },
    };
    let generated = match render(
        &rules,
        &source_name,
        &options.runbook_base,
        options.dashboard_base.as_ref(),
    ) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            return Exit::Usage;
        }
    };
    match &options.output {
        None => {
            use std::io::Write as _;
            match std::io::stdout().write_all(generated.as_bytes()) {
                Ok(()) => Exit::Done,
                Err(error) => {
                    eprintln!("bt-watchdog: cannot write the rules to stdout: {error}");
                    Exit::NotDone
                }
            }
        }
        Some(path) => write_to(path, &generated),
    }
}

fn write_to(path: &Path, generated: &str) -> Exit {
    match super::simulate::write_atomically(path, generated.as_bytes()) {
        Ok(()) => Exit::Done,
        Err(error) => {
            eprintln!("bt-watchdog: cannot write {}: {error}", path.display());
            Exit::NotDone
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base(value: &str) -> Base {
        Base::parse("--runbook-base", value).unwrap()
    }

    #[test]
    fn fills_in_both_bases_and_nothing_else() {
        let out = render(
            SHIPPED_RULES,
            "shipped",
            &base("https://wd.example.com:9877/runbook/"),
            Some(&base("https://grafana.example.com")),
        )
        .unwrap();
        assert!(!out.contains("runbook_url: https://bt-watchdog.invalid"));
        assert!(!out.contains("dashboard_url: 'https://grafana.invalid"));
        assert!(out.contains("runbook_url: https://wd.example.com:9877/runbook#btwatchdogdown\n"));
        assert!(out.contains(
            "dashboard_url: 'https://grafana.example.com/d/bt-watchdog/bt-watchdog?var-site={{ $labels.site | urlquery }}'\n"
        ));
        // Every other line is untouched, in order.
        let kept: Vec<&str> = SHIPPED_RULES
            .lines()
            .filter(|l| !l.contains("_url: "))
            .collect();
        let out_kept: Vec<&str> = out
            .lines()
            .filter(|l| !l.contains("_url: ") && !l.starts_with("# Generated by"))
            .collect();
        assert_eq!(kept, out_kept);
    }

    #[test]
    fn without_a_dashboard_base_the_dashboard_links_are_left_out() {
        let out = render(
            SHIPPED_RULES,
            "shipped",
            &base("http://wd:9877/runbook"),
            None,
        )
        .unwrap();
        assert!(
            !out.lines()
                .any(|l| l.trim_start().starts_with("dashboard_url:")),
            "{out}"
        );
        assert_eq!(
            out.matches("runbook_url: http://wd:9877/runbook#").count(),
            SHIPPED_RULES.matches("- alert: ").count()
        );
    }

    #[test]
    fn rules_already_filled_in_are_refused_with_the_line() {
        let once = render(SHIPPED_RULES, "shipped", &base("http://wd/runbook"), None).unwrap();
        let error = render(&once, "alerts.yml", &base("http://other/runbook"), None).unwrap_err();
        assert!(
            matches!(error, AlertsError::NotPlaceholder { line, annotation: "runbook_url", .. } if line > 1),
            "{error}"
        );
        let error = render("groups: []\n", "x.yml", &base("http://wd/runbook"), None).unwrap_err();
        assert!(matches!(error, AlertsError::NoRunbook { .. }));
    }

    #[test]
    fn bases_must_be_absolute_http_urls_without_query_or_fragment() {
        for bad in [
            "runbook",
            "/runbook",
            "ftp://x/runbook",
            "http://x/runbook#a",
            "http://x/runbook?a=1",
            "http://x/run'book",
        ] {
            assert!(Base::parse("--runbook-base", bad).is_err(), "{bad}");
        }
        assert_eq!(
            base("http://x:9877/runbook/").as_str(),
            "http://x:9877/runbook"
        );
    }
}
