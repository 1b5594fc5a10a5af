//! Files written into the state directory belong to the directory's owner.
//!
//! `failover --standalone` is typically run as root (sudo) while the daemon runs as its own
//! user. A lock, audit log or memory file that root created there would be root's, 0600: the
//! daemon could no longer open it and would refuse to start until someone noticed. So a file
//! created by root in a directory owned by someone else is handed to that owner at once.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// Gives `file` (just created or opened in `dir`) to `dir`'s owner and group when they
/// differ and this process may (it is root); otherwise leaves it as it is.
pub fn match_directory(file: &File, dir: &Path) -> std::io::Result<()> {
    let dir_meta = std::fs::metadata(dir)?;
    let file_meta = file.metadata()?;
    if file_meta.uid() == dir_meta.uid() && file_meta.gid() == dir_meta.gid() {
        return Ok(());
    }
    if effective_uid() != Some(0) {
        // Not root: the file is ours, in a directory we may write; nothing to hand over.
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(dir_meta.uid()), Some(dir_meta.gid()))
}

/// The effective uid of this process, from `/proc/self/status` (no unsafe call needed).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The login uid of a process (`/proc/PID/loginuid`, set at login and kept through sudo and
/// su), when it can be read and is set: who really sits behind a root caller.
pub fn login_uid(pid: Option<i32>) -> Option<u32> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/loginuid"),
        None => "/proc/self/loginuid".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let uid: u32 = text.trim().parse().ok()?;
    // (uid_t)-1: no login (a service, a container).
    (uid != u32::MAX).then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root (CI, the packaging checks), a file root creates in a directory owned by
    /// another user goes to that user: the daemon's user can open what a standalone run left.
    #[test]
    fn root_hands_files_to_the_directory_owner() {
        if effective_uid() != Some(0) {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let lock = crate::control::lock::acquire(dir.path()).unwrap();
        let record = crate::control::audit::AuditRecord::now(
            "root".into(),
            "hq",
            "pause",
            serde_json::json!({}),
            String::new(),
        );
        crate::control::audit::append(dir.path(), &record).unwrap();
        for name in ["lock", "audit.log"] {
            let meta = std::fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{name}");
        }
        drop(lock);
    }
}
