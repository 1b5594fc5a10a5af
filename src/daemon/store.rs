//! Where the engine's memory lives: one seam ([`MemoryHome`]), two homes. Alone, a JSON file
//! per site in `state_dir` ([`StateStore`], the default); with `[cluster]`, a key per site in
//! etcd, written only by the site's leader in a transaction guarded by its lease (Patroni's
//! `AbstractDCS`: the site loop never knows which home it has, and "lost the cluster, so no
//! action" is decided in one place).
//!
//! The file:
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
    #[error("site memory in etcd ({key}): cannot be read: {error}")]
    ClusterRead { key: String, error: String },
    #[error(
        "site memory in etcd ({key}) is corrupt ({reason}); it was left untouched: fix it, or delete the key to start with empty memory (this forgets any cooldown and which appliance was promoted)"
    )]
    ClusterCorrupt { key: String, reason: String },
    #[error(
        "site memory in etcd ({key}) has version {found}, newer than this watchdog understands ({supported}): an instance of a newer version wrote it; upgrade this one"
    )]
    ClusterTooNew {
        key: String,
        found: u32,
        supported: u32,
    },
}

/// Why a memory could not be understood.
enum Unreadable {
    Corrupt(String),
    TooNew(u32),
}

/// A memory from its JSON text: an older version is upgraded, a newer one refused.
fn parse_memory(text: &[u8]) -> Result<Memory, Unreadable> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let version: Versioned =
        serde_json::from_slice(text).map_err(|e| Unreadable::Corrupt(e.to_string()))?;
    if version.version > MEMORY_VERSION {
        return Err(Unreadable::TooNew(version.version));
    }
    serde_json::from_slice::<Memory>(text)
        .map(Memory::upgraded)
        .map_err(|e| Unreadable::Corrupt(e.to_string()))
}

fn memory_text(memory: &Memory) -> Result<Vec<u8>, std::io::Error> {
    let mut text = serde_json::to_vec_pretty(memory).map_err(std::io::Error::other)?;
    text.push(b'\n');
    Ok(text)
}

/// A write of the memory that did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveFailure {
    /// This instance does not lead the site: only the leader writes (and acts). Not a fault.
    NotLeader(String),
    /// The home could not be written (a full disk, etcd out of reach).
    Failed(String),
}

/// Where a site's memory lives.
#[derive(Clone)]
pub enum MemoryHome {
    File(StateStore),
    Cluster {
        site: crate::cluster::ClusterSite,
        /// Still this instance's own: the audit log, the lock, the control socket.
        state_dir: PathBuf,
    },
}

impl MemoryHome {
    /// The local state directory (the audit log's home in both cases).
    pub fn dir(&self) -> &Path {
        match self {
            MemoryHome::File(store) => store.dir(),
            MemoryHome::Cluster { state_dir, .. } => state_dir,
        }
    }

    /// Where the memory is, for messages.
    pub fn place(&self) -> String {
        match self {
            MemoryHome::File(store) => store.path.display().to_string(),
            MemoryHome::Cluster { site, .. } => format!("etcd key {}", site.memory_key()),
        }
    }

    pub fn cluster(&self) -> Option<&crate::cluster::ClusterSite> {
        match self {
            MemoryHome::File(_) => None,
            MemoryHome::Cluster { site, .. } => Some(site),
        }
    }

    /// The remembered memory, or a fresh one when there is none yet.
    pub async fn load(&self) -> Result<Memory, StoreError> {
        match self {
            MemoryHome::File(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.load())
                    .await
                    .map_err(|e| StoreError::Read {
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })?
            }
            MemoryHome::Cluster { site, .. } => {
                let key = site.memory_key();
                let text = site.load().await.map_err(|e| StoreError::ClusterRead {
                    key: key.clone(),
                    error: e.to_string(),
                })?;
                let Some(text) = text else {
                    return Ok(Memory::default());
                };
                parse_memory(&text).map_err(|e| match e {
                    Unreadable::Corrupt(reason) => StoreError::ClusterCorrupt { key, reason },
                    Unreadable::TooNew(found) => StoreError::ClusterTooNew {
                        key,
                        found,
                        supported: MEMORY_VERSION,
                    },
                })
            }
        }
    }

    /// With `[cluster]`: the site's memory as the leader last wrote it, from this instance's
    /// current copy of etcd's keys (no request); `None` alone, or when it is not known now.
    pub fn shared(&self) -> Option<Memory> {
        match self {
            MemoryHome::File(_) => None,
            MemoryHome::Cluster { site, .. } => parse_memory(&site.cached_memory()?).ok(),
        }
    }

    /// Writes the memory durably: fsynced to the file, or committed by etcd's quorum in a
    /// transaction that holds only while this instance leads the site. The etcd revision it
    /// was written at, when clustered.
    pub async fn save(&self, memory: &Memory) -> Result<Option<i64>, SaveFailure> {
        match self {
            MemoryHome::File(store) => {
                let (store, memory) = (store.clone(), memory.clone());
                tokio::task::spawn_blocking(move || store.save(&memory))
                    .await
                    .map_err(|e| SaveFailure::Failed(format!("the write did not complete: {e}")))?
                    .map_err(|e| SaveFailure::Failed(e.to_string()))
                    .map(|()| None)
            }
            MemoryHome::Cluster { site, .. } => {
                let text = memory_text(memory)
                    .map_err(|e| SaveFailure::Failed(format!("cannot encode the memory: {e}")))?;
                match site.save(&text).await {
                    Ok(revision) => Ok(Some(revision)),
                    Err(error @ crate::cluster::SaveError::NotLeader { .. }) => {
                        Err(SaveFailure::NotLeader(error.to_string()))
                    }
                    Err(error) => Err(SaveFailure::Failed(format!(
                        "etcd key {}: {error}",
                        site.memory_key()
                    ))),
                }
            }
        }
    }
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
    parse_memory(text).map_err(|e| match e {
        Unreadable::Corrupt(reason) => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        Unreadable::TooNew(found) => StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: MEMORY_VERSION,
        },
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
        let text = memory_text(memory).map_err(write_error)?;
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
