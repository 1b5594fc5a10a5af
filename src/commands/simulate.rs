//! `bt-watchdog simulate`: serve a simulated pair until stopped.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sim::tls::TlsFiles;
use crate::sim::{SimApis, SimConfig, SimProduct, SimSettings, Simulator};

/// What `simulate` was asked for, with the command line's choices already made values; two
/// entries (primary first) in `names`, `apis` and `xml_namespaces`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub listen: IpAddr,
    pub ports: [u16; 2],
    pub control_port: u16,
    pub names: Vec<String>,
    pub client_id: String,
    /// Default: the secret `SimSettings` holds.
    pub client_secret_file: Option<PathBuf>,
    pub token_lifetime: Duration,
    pub product: SimProduct,
    pub swap_duration: Duration,
    pub sync_interval: Duration,
    pub tls: Option<TlsFiles>,
    pub apis: Vec<SimApis>,
    pub xml_namespaces: Vec<Option<String>>,
    pub pairs: usize,
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--client-secret-file {path}: cannot be read: {source}")]
    Secret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An option that cannot be used, in the words the operator reads.
    #[error("{0}")]
    Usage(&'static str),
    #[error(
        "cannot start the simulator (with many --pairs, raise the open-files limit: ulimit -n): {0}"
    )]
    Start(std::io::Error),
    #[error("{0}")]
    Signals(std::io::Error),
}

/// Serves the simulated pairs until `stop` resolves.
pub async fn run(
    options: SimulateOptions,
    stop: impl Future<Output = std::io::Result<()>>,
) -> Result<(), SimulateError> {
    let pairs = options.pairs;
    let ready_file = options.ready_file.clone();
    let product_name = match options.product {
        SimProduct::Rs => "Remote Support",
        SimProduct::Pra => "Privileged Remote Access",
    };
    let config = sim_config(options)?;
    let simulators = start(config, pairs, product_name, ready_file.as_ref())
        .await
        .map_err(SimulateError::Start)?;
    stop.await.map_err(SimulateError::Signals)?;
    tracing::info!("stopping the simulator");
    for simulator in simulators {
        simulator.shutdown().await;
    }
    Ok(())
}

/// Checks the options together and makes them the simulator's configuration.
fn sim_config(options: SimulateOptions) -> Result<SimConfig, SimulateError> {
    let client_secret = match &options.client_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| SimulateError::Secret {
                path: path.clone(),
                source,
            })?
            .trim()
            .to_string(),
        None => SimSettings::default().client_secret,
    };
    if client_secret.is_empty() {
        return Err(SimulateError::Usage(
            "--client-secret-file: the file is empty",
        ));
    }
    let (Ok(apis), Ok(xml_namespaces)) = (
        <[SimApis; 2]>::try_from(options.apis),
        <[Option<String>; 2]>::try_from(options.xml_namespaces),
    ) else {
        return Err(SimulateError::Usage(
            "--apis and --xml-namespaces take exactly two values, primary first (like --apis xml,v2)",
        ));
    };
    let [first, second] = <[String; 2]>::try_from(options.names)
        .map_err(|_| SimulateError::Usage("--names takes exactly two names"))?;
    if first == second || first.is_empty() || second.is_empty() {
        return Err(SimulateError::Usage(
            "--names: the two appliances need two different, non-empty names",
        ));
    }
    if !options.listen.is_loopback() {
        tracing::warn!(
            "the simulator listens on {}, which is not loopback: anyone who can reach it can change its faults",
            options.listen
        );
    }
    if options.pairs == 0 || options.pairs > 5000 {
        return Err(SimulateError::Usage("--pairs must be between 1 and 5000"));
    }
    if options.pairs > 1 && (options.ports != [0, 0] || options.control_port != 0) {
        return Err(SimulateError::Usage(
            "--pairs above 1 takes OS-chosen ports: drop --primary-port, --backup-port and --control-port",
        ));
    }
    let settings = SimSettings {
        names: [first, second],
        client_id: options.client_id,
        client_secret,
        token_lifetime: options.token_lifetime,
        product: options.product,
        swap_duration: options.swap_duration,
        sync_interval: options.sync_interval,
        apis,
        xml_namespaces,
        ..SimSettings::default()
    };
    Ok(SimConfig {
        settings,
        listen: options.listen,
        ports: options.ports,
        control_port: options.control_port,
        tls: options.tls,
        expired_tls: None,
    })
}

/// Writes through a temporary file and a rename, so readers never see half a file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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

/// Starts `pairs` simulated pairs and prints where they listen; the caller waits for a stop
/// signal. Several pairs (for benchmarks) all take OS-chosen ports.
pub async fn start(
    config: SimConfig,
    pairs: usize,
    product_name: &str,
    ready_file: Option<&PathBuf>,
) -> std::io::Result<Vec<Simulator>> {
    let names = config.settings.names.clone();
    let client_id = config.settings.client_id.clone();
    let mut simulators = Vec::with_capacity(pairs);
    for _ in 0..pairs.max(1) {
        simulators.push(Simulator::start(config.clone()).await?);
    }
    let first = &simulators[0];
    if simulators.len() == 1 {
        println!("bt-watchdog simulator ({product_name}) is running");
        println!("  appliance {} (primary): {}", names[0], first.url(0));
        println!("  appliance {} (backup):  {}", names[1], first.url(1));
        println!(
            "  control API:            {}   (curl it for the list of routes)",
            first.control_url()
        );
    } else {
        println!(
            "bt-watchdog simulator ({product_name}): {} pairs are running (see --ready-file for their URLs)",
            simulators.len()
        );
        println!(
            "  first pair: {} and {}, control API {}",
            first.url(0),
            first.url(1),
            first.control_url()
        );
    }
    println!("  client_id: {client_id}");
    if let Some(path) = ready_file {
        let describe = |sim: &Simulator| {
            serde_json::json!({
                "appliances": [
                    { "name": names[0], "url": sim.url(0) },
                    { "name": names[1], "url": sim.url(1) },
                ],
                "control": sim.control_url(),
            })
        };
        let ready = serde_json::json!({
            // The first pair at the top level, as for a single pair.
            "appliances": describe(first)["appliances"],
            "control": first.control_url(),
            "client_id": client_id,
            "pairs": simulators.iter().map(describe).collect::<Vec<_>>(),
        });
        write_atomically(path, format!("{ready:#}\n").as_bytes()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--ready-file {}: {e}", path.display()))
        })?;
    }
    Ok(simulators)
}
