//! The engine's memory on disk: one JSON file per site in `state_dir`.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the directory), so a crash or a
//! power cut leaves either the old file or the new one, never half of one. A file that cannot
//! be read or understood is an error that stops the start: silently starting from empty memory
//! would forget a cooldown or which appliance this watchdog promoted.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::MEMORY_VERSION;
use crate::engine::Memory;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: cannot be read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state file {path} is corrupt ({reason}); it was left untouched: fix or move it away to start with empty memory (this forgets any cooldown and which appliance was promoted)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "state file {path} has version {found}, newer than this watchdog understands ({supported}); upgrade the watchdog or move the file away"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("state file {path}: cannot be written: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The largest memory file read (a real one is a few kilobytes).
const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;

/// The file's bytes, or an error when it is larger than `limit`.
fn read_capped(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "larger than {limit} bytes: not a memory file this watchdog wrote"
        )));
    }
    Ok(bytes)
}

/// A memory file's bytes (read from `path`) as the engine's memory: whatever the bytes, an
/// error or a memory, never a panic (the fuzz target `state_file` holds it to that).
pub(crate) fn decode(path: &Path, text: &[u8]) -> Result<Memory, StoreError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let version: Versioned = serde_json::from_slice(text).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if version.version > MEMORY_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version.version,
            supported: MEMORY_VERSION,
        });
    }
    serde_json::from_slice::<Memory>(text)
        .map(Memory::upgraded)
        .map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    path: PathBuf,
}

impl StateStore {
    pub fn new(state_dir: &Path, site: &str) -> Self {
        StateStore {
            dir: state_dir.to_path_buf(),
            path: state_dir.join(format!("{site}.state.json")),
        }
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the state directory if needed (mode 0700: the file says what the watchdog did).
    pub fn ensure_dir(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| StoreError::Directory {
                path: self.dir.clone(),
                source,
            })
    }

    /// The remembered memory, or a fresh one when there is no file yet.
    pub fn load(&self) -> Result<Memory, StoreError> {
        // A memory file is a few kilobytes; reading is capped so that a replaced or damaged
        // file cannot make the start allocate without bound.
        let text = match read_capped(&self.path, MAX_STATE_BYTES) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Memory::default()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        decode(&self.path, &text)
    }

    pub fn save(&self, memory: &Memory) -> Result<(), StoreError> {
        let write_error = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let mut text =
            serde_json::to_vec_pretty(memory).map_err(|e| write_error(std::io::Error::other(e)))?;
        text.push(b'\n');
        let temporary = self.dir.join(format!(
            ".{}.tmp",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temporary)?;
            // Written by root (a standalone failover), it must stay the daemon user's.
            crate::control::ownership::match_directory(&file, &self.dir)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)?;
            // The rename is only durable once the directory itself is synced.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result.map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::time::UtcTime;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "support");
        assert_eq!(
            store.load().unwrap(),
            Memory::default(),
            "no file is empty memory"
        );
        let memory = Memory {
            promoted: Some("west".into()),
            cooldown_until: UtcTime::parse("2030-01-01T00:00:00Z").ok(),
            ..Memory::default()
        };
        store.save(&memory).unwrap();
        assert_eq!(store.load().unwrap(), memory);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary file is left: {leftovers:?}"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "support");
        std::fs::write(store.path(), "{\"version\": 1, \"promoted\": ").unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(
            error.contains("corrupt") && error.contains("support.state.json"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(store.path()).unwrap(),
            "{\"version\": 1, \"promoted\": "
        );
    }

    #[test]
    fn a_newer_version_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "support");
        std::fs::write(store.path(), "{\"version\": 99}").unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
