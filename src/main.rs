//! Command-line wiring only: parse arguments, call the command the library has for them,
//! and hand its exit code back. The work, and the table of exit codes, live in the library.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bt_watchdog::commands::exit::Exit;
use bt_watchdog::commands::operator::{self, local_user};
use bt_watchdog::commands::simulate::{self, SimulateOptions};
use bt_watchdog::commands::{
    alerts, check_config, demo, failover, healthcheck, journal, load_config, replay, run, status,
    stop_signal,
};
use bt_watchdog::control::protocol::{FailoverRequest, Request};
use bt_watchdog::sim::tls::TlsFiles;
use bt_watchdog::sim::{SimApis, SimProduct};
use bt_watchdog::sim::{XML_NAMESPACE_BEYONDTRUST, XML_NAMESPACE_BOMGAR};
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

/// Default configuration file.
const DEFAULT_CONFIG: &str = "/etc/bt-watchdog/config.toml";

#[derive(Parser)]
#[command(
    name = "bt-watchdog",
    version,
    about = "Failover watchdog and health monitor for BeyondTrust RS/PRA appliance pairs",
    after_help = Exit::TABLE
)]
struct Cli {
    /// Log format: human-readable or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the watchdog daemon in the foreground.
    Run {
        /// The configuration file (reloaded on SIGHUP).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem.
    CheckConfig {
        /// The configuration file to check.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the live state of every site from a running daemon.
    Status(StatusArgs),
    /// Exit 0 when this host's daemon answers /healthz with 200 (for probes that can only run
    /// a command, such as the container image's HEALTHCHECK).
    Healthcheck {
        /// The URL to ask (default: /healthz of exporter.listen from --config, on loopback).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        /// The configuration file, for the exporter address.
        config: PathBuf,
    },
    /// Print the decision journal: what each site saw, decided and did, and why.
    Journal {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        /// The configuration file, for the state directory.
        config: PathBuf,
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// Only from this long ago (2h, 30m) or this UTC date-time on.
        #[arg(long)]
        since: Option<String>,
        /// Keep printing what is appended, until interrupted.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line, with every observation.
        #[arg(long)]
        json: bool,
    },
    /// Run the recorded observations through the engine with the recorded policy or another
    /// one, and show what it would have done, and when.
    Replay {
        /// Where the journal is found when JOURNAL is not given.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A journal file or directory (default: the configuration's state_dir/journal).
        journal: Option<PathBuf>,
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// A TOML file of policy keys (bare, or a [policy] table) applied over the recorded policy.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// One policy change, as in --set failover_after=10s (repeatable; also mode=auto).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// One JSON object; its `differences` array is empty when the decisions are the same.
        #[arg(long)]
        json: bool,
    },
    /// Fail a site over by hand: a preflight and a plan, carried out only with --confirm
    /// (or after typing the site name at a terminal).
    Failover(FailoverArgs),
    /// Stop automatic action for a site (manual failover stays possible).
    Pause {
        #[command(flatten)]
        on: OnSite,
        /// Why, for the audit log, the status and whoever reads them next.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Re-enable automatic action for a site.
    Resume {
        #[command(flatten)]
        on: OnSite,
    },
    /// End a site's cooldown (or a given-up failover) early.
    Ack {
        #[command(flatten)]
        on: OnSite,
        /// Why, for the audit log (what was checked before automatic action may resume).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Print the Prometheus alert rules with absolute runbook and dashboard links.
    Alerts {
        /// Where the runbook is: the daemon's own `http://HOST:PORT/runbook`, or a wiki copy
        /// of dashboards/runbook.md. Each alert links BASE#<alert name in lower case>.
        #[arg(long, value_parser = |v: &str| alerts::Base::parse("--runbook-base", v))]
        runbook_base: alerts::Base,
        /// Grafana's address (the dashboard has uid bt-watchdog); without it the rules carry
        /// no dashboard_url.
        #[arg(long, value_parser = |v: &str| alerts::Base::parse("--dashboard-base", v))]
        dashboard_base: Option<alerts::Base>,
        /// The rules to fill in (default: the ones built into this binary, as shipped).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Write to this file (atomically) instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Serve a simulated appliance pair with a fault-injection control API.
    Simulate(SimulateArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell to write completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff, every command on one page) to stdout.
    Manpage,
    /// Run a simulated pair and the watchdog against it, with a scripted failure.
    Demo {
        /// Where the demo's exporter listens.
        #[arg(long, default_value = "127.0.0.1:9877")]
        listen: SocketAddr,
        /// When the scripted failure kills the primary.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        kill_after: Duration,
        /// How long after the failover the old primary comes back.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        revive_after: Duration,
    },
}

#[derive(clap::Args)]
struct FailoverArgs {
    /// The site (a [[site]] name of the configuration).
    #[arg(long)]
    site: String,
    /// The appliance to make primary.
    #[arg(long, value_name = "APPLIANCE", required_unless_present = "demote")]
    to: Option<String>,
    /// End a split brain: demote this appliance (with force) and keep its peer primary.
    /// Refused unless both report primary now.
    #[arg(long, value_name = "APPLIANCE", conflicts_with_all = ["to", "data_sync_first"])]
    demote: Option<String>,
    /// Sync the data from the current primary first (disconnects every user on it).
    #[arg(long, conflicts_with = "force")]
    data_sync_first: bool,
    /// Demote the current primary with force first, even if it cannot reach its peer (no
    /// data sync is possible then: not with --data-sync-first).
    #[arg(long)]
    force: bool,
    /// Carry the plan out (without it: a dry run).
    #[arg(long)]
    confirm: bool,
    /// Carry it out even though the preflight refuses (recorded as such).
    #[arg(long)]
    override_preflight: bool,
    /// No daemon is running: act from this process, with the state directory locked.
    #[arg(long)]
    standalone: bool,
    /// The configuration that names the site, its appliances and the daemon's control socket.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

impl FailoverArgs {
    /// The request as the daemon (or the standalone site) takes it, from whoever runs the CLI.
    fn request(&self) -> FailoverRequest {
        FailoverRequest {
            site: self.site.clone(),
            // With --demote, the peer that stays primary is filled in from the configuration.
            to: self.to.clone().unwrap_or_default(),
            data_sync_first: self.data_sync_first,
            force: self.force,
            demote: self.demote.clone(),
            confirm: self.confirm,
            override_preflight: self.override_preflight,
            user: local_user(),
            shown_plan: None,
        }
    }
}

/// The site `pause`, `resume` and `ack` act on, and the configuration that says where its
/// daemon listens.
#[derive(clap::Args)]
struct OnSite {
    /// The site (a [[site]] name of the configuration).
    #[arg(long)]
    site: String,
    // Listed last in the help, as in every other command.
    /// The configuration that names the site and the daemon's control socket.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG, display_order = 100)]
    config: PathBuf,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// Print the daemon's JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The daemon's exporter, as http://HOST:PORT or https://HOST:PORT (default: exporter.listen
    /// from --config, with https when its exporter.web_config serves TLS).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// A CA certificate (PEM) to trust for the exporter's certificate, besides the system's
    /// (without --url, the exporter's own tls.cert_file is trusted too).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The user for the exporter's basic auth.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// A file holding the password for --user (default: $BT_WATCHDOG_EXPORTER_PASSWORD).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// A client certificate (PEM) for an exporter that requires mutual TLS.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// The configuration that names the exporter (not read when --url is given).
    #[arg(long, default_value = DEFAULT_CONFIG, display_order = 100)]
    config: PathBuf,
}

impl From<StatusArgs> for status::StatusOptions {
    fn from(args: StatusArgs) -> Self {
        status::StatusOptions {
            json: args.json,
            url: args.url,
            config: args.config,
            ca_file: args.ca_file,
            user: args.user,
            password_file: args.password_file,
            client_cert: args.client_cert,
            client_key: args.client_key,
        }
    }
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Address to listen on (keep it on loopback: the control API has no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Port of the first appliance (starts as primary); 0 lets the OS choose.
    #[arg(long, default_value_t = 0)]
    primary_port: u16,
    /// Port of the second appliance (starts as backup); 0 lets the OS choose.
    #[arg(long, default_value_t = 0)]
    backup_port: u16,
    /// Port of the control API; 0 lets the OS choose.
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    /// Names of the two appliances, primary first, separated by a comma.
    // One default value written as it is typed: help shows `[default: east,west]`, which
    // parses, where a list of defaults would show `east west`, which does not.
    #[arg(
        long,
        value_name = "PRIMARY,BACKUP",
        value_delimiter = ',',
        default_value = "east,west"
    )]
    names: Vec<String>,
    /// The OAuth client id the simulated appliances accept.
    #[arg(long, default_value = "bt-watchdog")]
    client_id: String,
    /// File holding the client secret the simulated appliances accept (default: "simulated-secret").
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// Lifetime of the tokens it mints.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    token_lifetime: Duration,
    /// The product the appliances report: Remote Support or Privileged Remote Access.
    #[arg(long, value_enum, default_value_t = ProductArg::Rs)]
    product: ProductArg,
    /// How long a data_sync_first swap takes.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    swap_duration: Duration,
    /// How often the primary syncs data to the backup.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    sync_interval: Duration,
    /// Serve the appliances over HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Which command APIs each appliance serves, primary first: `both`, `v2` or `xml`.
    #[arg(
        long,
        value_name = "PRIMARY,BACKUP",
        value_delimiter = ',',
        default_value = "both,both"
    )]
    apis: Vec<ApisArg>,
    /// The XML namespace of each appliance, primary first: `bomgar` (older appliances),
    /// `beyondtrust` (newer ones) or `none`.
    #[arg(
        long,
        value_name = "PRIMARY,BACKUP",
        value_delimiter = ',',
        default_value = "bomgar,beyondtrust"
    )]
    xml_namespaces: Vec<NamespaceArg>,
    /// How many independent pairs to serve (benchmarks); their URLs are in --ready-file.
    #[arg(long, default_value_t = 1)]
    pairs: usize,
    /// Write the URLs as JSON to this file once listening (for scripts).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ApisArg {
    Both,
    V2,
    Xml,
}

#[derive(Clone, Copy, ValueEnum)]
enum NamespaceArg {
    Bomgar,
    Beyondtrust,
    None,
}

/// The async runtime a command runs on.
///
/// The daemon's work is a few small requests per appliance every few seconds: 1,000 pairs
/// keep a tenth of one core busy. Tokio's default of one worker per core would give a
/// 32-core host 32 threads, each with its own stack and, once it allocates, its own glibc
/// arena (the largest part of the daemon's memory after its metrics). Two workers keep one
/// slow step from holding up every site; the blocking pool (state files, large `/metrics`
/// encodings, bcrypt checks of the exporter's basic auth) is capped for the same reason.
/// The other commands keep tokio's defaults: `simulate` serves many pairs at once.
fn runtime_for(command: &Command) -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(command, Command::Run { .. }) {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        builder
            .worker_threads(cores.min(DAEMON_WORKERS))
            .max_blocking_threads(DAEMON_BLOCKING_THREADS)
            .thread_keep_alive(BLOCKING_KEEP_ALIVE);
    }
    builder
}

/// Runtime workers of the daemon (fewer on a one-core host).
const DAEMON_WORKERS: usize = 2;
/// Threads for blocking work in the daemon; more waits in a queue.
const DAEMON_BLOCKING_THREADS: usize = 4;
/// How long an idle blocking thread waits for more work. Tokio's 10 s is shorter than the
/// gap between two scrapes of a large `/metrics` (each encoded on a blocking thread) or two
/// state writes, so a thread was started and ended again every few seconds: a new stack
/// each time, and a thread count that moved between 5 and 8 all day (the soak). Ten minutes
/// keeps the few threads the work needs; the cap above still bounds them.
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Clone, Copy, ValueEnum)]
enum ProductArg {
    Rs,
    Pra,
}

fn main() -> ExitCode {
    // A command line that cannot be used is EX_USAGE (64), as everywhere else in the table;
    // clap's own code for it would be 2.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Done.into()
            };
        }
    };
    init_logging(cli.log_format);
    bt_watchdog::fatal::install();
    let runtime = match runtime_for(&cli.command).build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bt-watchdog: cannot start the async runtime: {error}");
            return Exit::NotDone.into();
        }
    };
    let exit = match cli.command {
        Command::Run { config } => runtime.block_on(run::run(config)),
        Command::CheckConfig { config } => check_config::run(&config),
        Command::Status(args) => runtime.block_on(status::run(args.into())),
        Command::Alerts {
            runbook_base,
            dashboard_base,
            rules,
            output,
        } => alerts::run(&alerts::AlertsOptions {
            runbook_base,
            dashboard_base,
            rules,
            output,
        }),
        Command::Healthcheck { url, config } => runtime.block_on(healthcheck::run(url, &config)),
        Command::Journal {
            config,
            site,
            since,
            follow,
            json,
        } => runtime.block_on(journal::run(
            &config,
            journal::JournalOptions {
                site,
                since,
                follow,
                json,
            },
        )),
        Command::Replay {
            config,
            journal,
            site,
            policy,
            set,
            json,
        } => replay::run(
            config.as_deref(),
            Path::new(DEFAULT_CONFIG),
            replay::ReplayOptions {
                journal,
                site,
                policy,
                set,
                json,
            },
        ),
        Command::Simulate(args) => {
            Exit::done_or_usage(runtime.block_on(simulate::run(args.into(), stop_signal())))
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "bt-watchdog",
                &mut std::io::stdout(),
            );
            Exit::Done
        }
        Command::Manpage => {
            match bt_watchdog::commands::manpage::render(Cli::command(), &mut std::io::stdout()) {
                Ok(()) => Exit::Done,
                Err(error) => {
                    eprintln!("bt-watchdog: cannot write the man page: {error}");
                    Exit::NotDone
                }
            }
        }
        Command::Demo {
            listen,
            kill_after,
            revive_after,
        } => {
            let options = demo::DemoOptions {
                listen,
                kill_after,
                revive_after,
            };
            let stop = async {
                let _ = stop_signal().await;
            };
            Exit::done_or_usage(runtime.block_on(demo::run(options, stop)))
        }
        Command::Failover(args) => match load_config(&args.config) {
            Ok(config) => {
                runtime.block_on(failover::failover(&config, args.request(), args.standalone))
            }
            Err(exit) => exit,
        },
        Command::Pause { on, reason } => operator(&runtime, on, |site, user| Request::Pause {
            site,
            reason,
            user,
        }),
        Command::Resume { on } => {
            operator(&runtime, on, |site, user| Request::Resume { site, user })
        }
        Command::Ack { on, reason } => operator(&runtime, on, |site, user| Request::Ack {
            site,
            reason,
            user,
        }),
    };
    exit.into()
}

/// `pause`, `resume` and `ack`: one request, from whoever runs the CLI, to the daemon the
/// configuration names.
fn operator(
    runtime: &tokio::runtime::Runtime,
    on: OnSite,
    request: impl FnOnce(String, String) -> Request,
) -> Exit {
    match load_config(&on.config) {
        Ok(config) => match operator::check_site(&config, &on.site) {
            Ok(()) => runtime.block_on(operator::simple(&config, request(on.site, local_user()))),
            Err(message) => {
                eprintln!("bt-watchdog: {message}");
                Exit::Usage
            }
        },
        Err(exit) => exit,
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BT_WATCHDOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

impl From<SimulateArgs> for SimulateOptions {
    fn from(args: SimulateArgs) -> SimulateOptions {
        SimulateOptions {
            listen: args.listen,
            ports: [args.primary_port, args.backup_port],
            control_port: args.control_port,
            names: args.names,
            client_id: args.client_id,
            client_secret_file: args.client_secret_file,
            token_lifetime: args.token_lifetime,
            product: match args.product {
                ProductArg::Rs => SimProduct::Rs,
                ProductArg::Pra => SimProduct::Pra,
            },
            swap_duration: args.swap_duration,
            sync_interval: args.sync_interval,
            tls: match (args.tls_cert, args.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            apis: args.apis.into_iter().map(apis).collect(),
            xml_namespaces: args.xml_namespaces.into_iter().map(namespace).collect(),
            pairs: args.pairs,
            ready_file: args.ready_file,
        }
    }
}

fn apis(arg: ApisArg) -> SimApis {
    SimApis {
        v2: matches!(arg, ApisArg::Both | ApisArg::V2),
        xml: matches!(arg, ApisArg::Both | ApisArg::Xml),
    }
}

fn namespace(arg: NamespaceArg) -> Option<String> {
    match arg {
        NamespaceArg::Bomgar => Some(XML_NAMESPACE_BOMGAR.to_string()),
        NamespaceArg::Beyondtrust => Some(XML_NAMESPACE_BEYONDTRUST.to_string()),
        NamespaceArg::None => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly
    use super::*;

    /// Every option and argument of every command says what it is for, in `--help` and the
    /// man page alike.
    #[test]
    fn every_option_has_help_text() {
        let mut cli = Cli::command();
        cli.build();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        let mut commands = vec![(String::new(), cli)];
        while let Some((path, command)) = commands.pop() {
            let path = format!("{path} {}", command.get_name()).trim().to_string();
            for arg in command.get_arguments() {
                if arg.is_hide_set() || arg.get_help().is_some() {
                    continue;
                }
                missing.push(format!("{path} {}", arg.get_id()));
            }
            for sub in command.get_subcommands() {
                commands.push((path.clone(), sub.clone()));
            }
        }
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
