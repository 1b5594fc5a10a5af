//! `bt-watchdog check-config`: every problem of a configuration, with key paths, plus what
//! can only be checked on this machine (secrets, CA files, the exporter's web configuration,
//! the state directory).

use std::path::Path;

use super::exit::Exit;
use crate::api::transport::load_ca_bundle;
use crate::config::{self, Config, secret_file_warnings};

/// The outcome: problems make the configuration unusable, warnings do not.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub config: Option<Config>,
}

/// Prints every warning and problem, then a one-line verdict.
pub fn run(path: &Path) -> Exit {
    let report = check(path);
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for problem in &report.problems {
        println!("error: {problem}");
    }
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    if report.problems.is_empty() {
        let sites = report.config.as_ref().map(|c| c.sites.len()).unwrap_or(0);
        println!("{}: OK ({sites} site{})", path.display(), plural(sites));
        Exit::Done
    } else {
        let problems = report.problems.len();
        println!("{}: {problems} problem{}", path.display(), plural(problems));
        Exit::Usage
    }
}

/// One pass: the file's own problems and what only this machine can tell (secrets, CA files,
/// the state directory) are found together, for every site that could be read, so that an
/// administrator never fixes one list to be shown the next.
pub fn check(path: &Path) -> Report {
    let mut report = Report::default();
    let (config, found) = config::load_found(path);
    if let Err(error) = &config {
        report.problems = error
            .problems
            .iter()
            .map(|p| format!("{}: {p}", error.origin))
            .collect();
    }
    for site in &found.sites {
        let at = if site.name.is_empty() {
            site.path.clone()
        } else {
            format!("{} ({})", site.path, site.name)
        };
        if let Some(secret) = &site.client_secret {
            if let Err(message) = config::read_secret(secret) {
                report.problems.push(format!("{at}: {message}"));
            }
            if let Some(warning) = secret_file_warnings(secret) {
                report.warnings.push(format!("{at}: {warning}"));
            }
        }
        if let Some(ca_file) = &site.ca_file
            && let Err(error) = load_ca_bundle(ca_file)
        {
            report.problems.push(format!("{at}: {error}"));
        }
        if site.health_interval < std::time::Duration::from_secs(60) {
            report.warnings.push(format!(
                "{at}: health_interval is under a minute; appliances may answer /health from a one-minute cache, so this costs requests without fresher answers"
            ));
        }
    }
    if let Some(web_config) = &found.web_config
        && let Err(error) = crate::exporter::web_config::check(web_config)
    {
        report.problems.push(error.to_string());
    }
    if let Some(state_dir) = &found.state_dir {
        match std::fs::metadata(state_dir) {
            Ok(meta) if !meta.is_dir() => report.problems.push(format!(
                "state_dir {} is not a directory",
                state_dir.display()
            )),
            Ok(meta) if meta.permissions().readonly() => report
                .problems
                .push(format!("state_dir {} is read-only", state_dir.display())),
            Ok(_) => {}
            Err(_) => report.warnings.push(format!(
                "state_dir {} does not exist yet; the daemon will create it",
                state_dir.display()
            )),
        }
    }
    if let Ok(config) = &config
        && let Some(cluster) = &config.cluster
    {
        cluster_files(cluster, &mut report);
    }
    if let Ok(config) = config {
        if config.mode == crate::engine::Mode::Auto {
            report.warnings.push(
                "mode is auto: make sure the appliances' own automatic failover is off, the two together can conflict".to_string(),
            );
        }
        report.config = Some(config);
    }
    report
}

/// What only this machine can tell of `[cluster]`: its password, CA bundle, certificate and
/// key can be read (as the daemon reads them at start).
fn cluster_files(cluster: &crate::config::ClusterConfig, report: &mut Report) {
    if let Some(secret) = &cluster.password {
        if let Err(message) = config::read_secret(secret) {
            report
                .problems
                .push(format!("cluster: etcd password: {message}"));
        }
        if let Some(warning) = secret_file_warnings(secret) {
            report.warnings.push(format!("cluster: {warning}"));
        }
    }
    if let Some(ca_file) = &cluster.ca_file
        && let Err(error) = load_ca_bundle(ca_file)
    {
        report.problems.push(format!("cluster.ca_file: {error}"));
    }
    for (key, file) in [
        ("cert_file", &cluster.cert_file),
        ("key_file", &cluster.key_file),
    ] {
        if let Some(file) = file
            && let Err(error) = std::fs::metadata(file)
        {
            report
                .problems
                .push(format!("cluster.{key} {}: {error}", file.display()));
        }
    }
}
