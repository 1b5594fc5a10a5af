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
