//! Command-line wiring only: parse arguments, start what was asked for, map errors to exit
//! codes. The work lives in the library.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bt_watchdog::sim::tls::TlsFiles;
use bt_watchdog::sim::{SimConfig, SimProduct, SimSettings, Simulator};
use clap::{Parser, Subcommand, ValueEnum};

/// Default configuration file.
const DEFAULT_CONFIG: &str = "/etc/bt-watchdog/config.toml";
/// sysexits.h EX_SOFTWARE: used for subcommands that do not exist yet.
const EXIT_NOT_IMPLEMENTED: u8 = 70;
/// sysexits.h EX_USAGE.
const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "bt-watchdog",
    version,
    about = "Failover watchdog and health monitor for BeyondTrust RS/PRA appliance pairs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        #[arg(long)]
        json: bool,
    },
    /// Fail a site over by hand (a dry run unless --confirm).
    Failover {
        #[arg(long)]
        site: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        data_sync_first: bool,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        confirm: bool,
    },
    /// Stop automatic action for a site.
    Pause {
        #[arg(long)]
        site: String,
        #[arg(long)]
        reason: String,
    },
    /// Re-enable automatic action for a site.
    Resume {
        #[arg(long)]
        site: String,
    },
    /// End a site's cooldown early.
    Ack {
        #[arg(long)]
        site: String,
        #[arg(long)]
        reason: String,
    },
    /// Serve a simulated appliance pair with a fault-injection control API.
    Simulate(SimulateArgs),
    /// Run a simulated pair and the watchdog against it, with a scripted failure.
    Demo,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Address to listen on (keep it on loopback: the simulator has no real security).
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
    #[arg(long, value_delimiter = ',', num_args = 2, default_values = ["east", "west"])]
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
    /// Write the URLs as JSON to this file once listening (for scripts).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProductArg {
    Rs,
    Pra,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Simulate(args) => runtime().and_then(|rt| rt.block_on(simulate(args))),
        Command::Run { .. }
        | Command::CheckConfig { .. }
        | Command::Status { .. }
        | Command::Failover { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Ack { .. }
        | Command::Demo => {
            eprintln!(
                "bt-watchdog: this subcommand is not implemented yet; `bt-watchdog simulate` is available"
            );
            return ExitCode::from(EXIT_NOT_IMPLEMENTED);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bt-watchdog: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BT_WATCHDOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
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
    let settings = SimSettings {
        names: [first.clone(), second.clone()],
        client_id: args.client_id.clone(),
        client_secret,
        token_lifetime: args.token_lifetime,
        product: match args.product {
            ProductArg::Rs => SimProduct::Rs,
            ProductArg::Pra => SimProduct::Pra,
        },
        swap_duration: args.swap_duration,
        sync_interval: args.sync_interval,
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
    let simulator = Simulator::start(config)
        .await
        .context("cannot start the simulator")?;
    println!("bt-watchdog simulator ({}) is running", args.product_name());
    println!("  appliance {first} (primary): {}", simulator.url(0));
    println!("  appliance {second} (backup):  {}", simulator.url(1));
    println!(
        "  control API:            {}   (curl it for the list of routes)",
        simulator.control_url()
    );
    println!("  client_id: {}", args.client_id);
    if let Some(path) = &args.ready_file {
        let ready = serde_json::json!({
            "appliances": [
                { "name": first, "url": simulator.url(0) },
                { "name": second, "url": simulator.url(1) },
            ],
            "control": simulator.control_url(),
            "client_id": args.client_id,
        });
        write_atomically(path, format!("{ready:#}\n").as_bytes())
            .with_context(|| format!("--ready-file {}", path.display()))?;
    }
    wait_for_stop_signal().await?;
    tracing::info!("stopping the simulator");
    simulator.shutdown().await;
    Ok(())
}

impl SimulateArgs {
    fn product_name(&self) -> &'static str {
        match self.product {
            ProductArg::Rs => "Remote Support",
            ProductArg::Pra => "Privileged Remote Access",
        }
    }
}

/// Writes through a temporary file and a rename, so readers never see half a file.
fn write_atomically(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
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
