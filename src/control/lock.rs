//! An exclusive lock on the state directory: the daemon holds it while it runs, and
//! `failover --standalone` takes it, so the two can never act on the same sites at once.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another bt-watchdog holds {path} (a daemon is running, or a standalone failover): only one may act on these sites at a time"
    )]
    Held { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

pub fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("lock")
}

pub fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
    let path = lock_path(state_dir);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // Taken by root for a standalone run, it must stay openable by the daemon's user.
    super::ownership::match_directory(&file, state_dir).map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Held { path }),
        Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        assert!(matches!(acquire(dir.path()), Err(LockError::Held { .. })));
        drop(first);
        assert!(acquire(dir.path()).is_ok());
    }
}
