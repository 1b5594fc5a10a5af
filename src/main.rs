//! Command-line wiring only: parse arguments, start what was asked for, map errors to exit
//! codes. The work lives in the library.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bt_watchdog::commands::{check_config, demo, operator, simulate, status};
use bt_watchdog::config;
use bt_watchdog::control::protocol::Request;
use bt_watchdog::daemon::{self, ConfigSource, DaemonError};
use bt_watchdog::sim::tls::TlsFiles;
use bt_watchdog::sim::{SimApis, SimConfig, SimProduct, SimSettings};
use bt_watchdog::sim::{XML_NAMESPACE_BEYONDTRUST, XML_NAMESPACE_BOMGAR};
use clap::{Parser, Subcommand, ValueEnum};

/// Default configuration file.
const DEFAULT_CONFIG: &str = "/etc/bt-watchdog/config.toml";
/// sysexits.h: EX_USAGE, for a configuration or command line that cannot be used.
const EXIT_USAGE: u8 = 64;
/// sysexits.h: EX_UNAVAILABLE, when no daemon answers.
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "bt-watchdog",
    version,
    about = "Failover watchdog and health monitor for BeyondTrust RS/PRA appliance pairs"
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
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem.
    CheckConfig {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the live state of every site from a running daemon.
    Status {
        /// Print the daemon's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The daemon's exporter address (default: exporter.listen from --config).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Fail a site over by hand: a preflight and a plan, carried out only with --confirm
    /// (or after typing the site name at a terminal).
    Failover {
        #[arg(long)]
        site: String,
        /// The appliance to make primary.
        #[arg(long)]
        to: String,
        /// Sync the data from the current primary first (disconnects every user on it).
        #[arg(long)]
        data_sync_first: bool,
        /// Demote the current primary with force first, even if it cannot reach its peer.
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
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Stop automatic action for a site (manual failover stays possible).
    Pause {
        #[arg(long)]
        site: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Re-enable automatic action for a site.
    Resume {
        #[arg(long)]
        site: String,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// End a site's cooldown (or a given-up failover) early.
    Ack {
        #[arg(long)]
        site: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Serve a simulated appliance pair with a fault-injection control API.
    Simulate(SimulateArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
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
    /// Names of the two appliances, primary first.
    #[arg(long, value_delimiter = ',', default_values = ["east", "west"])]
    names: Vec<String>,
    #[arg(long, default_value = "bt-watchdog")]
    client_id: String,
    /// File holding the client secret the simulated appliances accept (default: "simulated-secret").
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// Lifetime of the tokens it mints.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    token_lifetime: Duration,
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
    #[arg(long, value_delimiter = ',', default_values = ["both", "both"])]
    apis: Vec<ApisArg>,
    /// The XML namespace of each appliance, primary first: `bomgar` (older appliances),
    /// `beyondtrust` (newer ones) or `none`.
    #[arg(long, value_delimiter = ',', default_values = ["bomgar", "beyondtrust"])]
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

#[derive(Clone, Copy, ValueEnum)]
enum ProductArg {
    Rs,
    Pra,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bt-watchdog: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run { config } => runtime.block_on(run(config)),
        Command::CheckConfig { config } => check(&config),
        Command::Status { json, url, config } => runtime.block_on(show_status(json, url, config)),
        Command::Simulate(args) => finish(runtime.block_on(run_simulator(args))),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "bt-watchdog",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Manpage => {
            use clap::CommandFactory as _;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("bt-watchdog: cannot write the man page: {error}");
                    ExitCode::FAILURE
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
            finish(runtime.block_on(async {
                demo::run(options, async {
                    let _ = wait_for_stop_signal().await;
                })
                .await
                .map_err(anyhow::Error::from)
            }))
        }
        Command::Failover {
            site,
            to,
            data_sync_first,
            force,
            confirm,
            override_preflight,
            standalone,
            config,
        } => {
            let args = operator::FailoverArgs {
                site,
                to,
                data_sync_first,
                force,
                confirm,
                override_preflight,
                standalone,
            };
            with_config(&config, |config| {
                runtime.block_on(operator::failover(&config, args))
            })
        }
        Command::Pause {
            site,
            reason,
            config,
        } => with_config(&config, |config| {
            runtime.block_on(operator::simple(
                &config,
                Request::Pause {
                    site,
                    reason,
                    user: operator::local_user(),
                },
            ))
        }),
        Command::Resume { site, config } => with_config(&config, |config| {
            runtime.block_on(operator::simple(
                &config,
                Request::Resume {
                    site,
                    user: operator::local_user(),
                },
            ))
        }),
        Command::Ack {
            site,
            reason,
            config,
        } => with_config(&config, |config| {
            runtime.block_on(operator::simple(
                &config,
                Request::Ack {
                    site,
                    reason,
                    user: operator::local_user(),
                },
            ))
        }),
    }
}

/// Loads the configuration an operator command needs, then runs it.
fn with_config(path: &std::path::Path, run: impl FnOnce(config::Config) -> u8) -> ExitCode {
    match config::load(path) {
        Ok(config) => ExitCode::from(run(config)),
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bt-watchdog: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
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

async fn run(path: PathBuf) -> ExitCode {
    match daemon::run(ConfigSource::File(path)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ DaemonError::Config(_)) => {
            eprintln!("bt-watchdog: {error}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let report = check_config::check(path);
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for problem in &report.problems {
        println!("error: {problem}");
    }
    if report.problems.is_empty() {
        let sites = report.config.as_ref().map(|c| c.sites.len()).unwrap_or(0);
        println!(
            "{}: OK ({sites} site{})",
            path.display(),
            if sites == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{}: {} problem{}",
            path.display(),
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(EXIT_USAGE)
    }
}

async fn show_status(json: bool, url: Option<String>, config_path: PathBuf) -> ExitCode {
    let base = match url {
        Some(url) => url,
        None => match config::load(&config_path) {
            Ok(config) => format!("http://{}", config.exporter.listen),
            Err(error) => {
                eprintln!(
                    "bt-watchdog: {error}\n(give --url http://HOST:PORT to ask a daemon directly)"
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match status::fetch(&base).await {
        Ok(doc) if json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(doc) => {
            print!("{}", status::render(&doc));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bt-watchdog: {error}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

async fn run_simulator(args: SimulateArgs) -> anyhow::Result<()> {
    let client_secret = match &args.client_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--client-secret-file {}: cannot be read", path.display()))?
            .trim()
            .to_string(),
        None => SimSettings::default().client_secret,
    };
    if client_secret.is_empty() {
        anyhow::bail!("--client-secret-file: the file is empty");
    }
    if args.apis.len() != 2 || args.xml_namespaces.len() != 2 {
        anyhow::bail!(
            "--apis and --xml-namespaces take exactly two values, primary first (like --apis xml,v2)"
        );
    }
    let [first, second] = <[String; 2]>::try_from(args.names.clone())
        .map_err(|_| anyhow::anyhow!("--names takes exactly two names"))?;
    if first == second || first.is_empty() || second.is_empty() {
        anyhow::bail!("--names: the two appliances need two different, non-empty names");
    }
    if !args.listen.is_loopback() {
        tracing::warn!(
            "the simulator listens on {}, which is not loopback: anyone who can reach it can change its faults",
            args.listen
        );
    }
    let (product, product_name) = match args.product {
        ProductArg::Rs => (SimProduct::Rs, "Remote Support"),
        ProductArg::Pra => (SimProduct::Pra, "Privileged Remote Access"),
    };
    let settings = SimSettings {
        names: [first, second],
        client_id: args.client_id.clone(),
        client_secret,
        token_lifetime: args.token_lifetime,
        product,
        swap_duration: args.swap_duration,
        sync_interval: args.sync_interval,
        apis: [apis(args.apis[0]), apis(args.apis[1])],
        xml_namespaces: [
            namespace(args.xml_namespaces[0]),
            namespace(args.xml_namespaces[1]),
        ],
        ..SimSettings::default()
    };
    let config = SimConfig {
        settings,
        listen: args.listen,
        ports: [args.primary_port, args.backup_port],
        control_port: args.control_port,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    };
    if args.pairs == 0 || args.pairs > 5000 {
        anyhow::bail!("--pairs must be between 1 and 5000");
    }
    if args.pairs > 1 && (args.primary_port != 0 || args.backup_port != 0 || args.control_port != 0)
    {
        anyhow::bail!(
            "--pairs above 1 takes OS-chosen ports: drop --primary-port, --backup-port and --control-port"
        );
    }
    let simulators = simulate::start(config, args.pairs, product_name, args.ready_file.as_ref())
        .await
        .context(
            "cannot start the simulator (with many --pairs, raise the open-files limit: ulimit -n)",
        )?;
    wait_for_stop_signal().await?;
    tracing::info!("stopping the simulator");
    for simulator in simulators {
        simulator.shutdown().await;
    }
    Ok(())
}

fn apis(arg: ApisArg) -> SimApis {
    match arg {
        ApisArg::Both => SimApis {
            v2: true,
            xml: true,
        },
        ApisArg::V2 => SimApis {
            v2: true,
            xml: false,
        },
        ApisArg::Xml => SimApis {
            v2: false,
            xml: true,
        },
    }
}

fn namespace(arg: NamespaceArg) -> Option<String> {
    match arg {
        NamespaceArg::Bomgar => Some(XML_NAMESPACE_BOMGAR.to_string()),
        NamespaceArg::Beyondtrust => Some(XML_NAMESPACE_BEYONDTRUST.to_string()),
        NamespaceArg::None => None,
    }
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        // SIGINT - Ctrl-C at a terminal.
        result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT")?,
        // SIGTERM - sent by a supervisor or a test harness to stop.
        _ = terminate.recv() => {}
    }
    Ok(())
}
