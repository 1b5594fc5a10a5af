//! `bt-watchdog simulate`: serve a simulated pair until stopped.

use std::path::{Path, PathBuf};

use crate::sim::{SimConfig, Simulator};

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

/// Starts the simulator and prints where it listens; the caller waits for a stop signal.
pub async fn start(
    config: SimConfig,
    product_name: &str,
    ready_file: Option<&PathBuf>,
) -> std::io::Result<Simulator> {
    let names = config.settings.names.clone();
    let client_id = config.settings.client_id.clone();
    let simulator = Simulator::start(config).await?;
    println!("bt-watchdog simulator ({product_name}) is running");
    println!("  appliance {} (primary): {}", names[0], simulator.url(0));
    println!("  appliance {} (backup):  {}", names[1], simulator.url(1));
    println!(
        "  control API:            {}   (curl it for the list of routes)",
        simulator.control_url()
    );
    println!("  client_id: {client_id}");
    if let Some(path) = ready_file {
        let ready = serde_json::json!({
            "appliances": [
                { "name": names[0], "url": simulator.url(0) },
                { "name": names[1], "url": simulator.url(1) },
            ],
            "control": simulator.control_url(),
            "client_id": client_id,
        });
        write_atomically(path, format!("{ready:#}\n").as_bytes()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--ready-file {}: {e}", path.display()))
        })?;
    }
    Ok(simulator)
}
