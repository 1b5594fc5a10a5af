//! The audit log: one JSON line per manual action (who, what, when, preflight, outcome), in
//! `state_dir/audit.log`, appended and synced before the action's answer is given.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::api::time::UtcTime;

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub at: UtcTime,
    /// "alice (uid 1000)", as far as the local system can tell.
    pub who: String,
    pub site: String,
    pub action: String,
    pub details: serde_json::Value,
    pub outcome: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("audit.log")
}

pub fn append(state_dir: &Path, record: &AuditRecord) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(state_dir))?;
    file.write_all(&line)?;
    file.sync_data()
}

/// A user name for a uid, from /etc/passwd when it is there.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let id: u32 = fields.next()?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// "alice (uid 1000)", or "bob, as root (uid 0)" when the CLI says who used sudo.
pub fn describe_caller(uid: u32, claimed: &str) -> String {
    let system = user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
    if claimed.is_empty() || claimed == system {
        format!("{system} (uid {uid})")
    } else {
        format!("{claimed}, as {system} (uid {uid})")
    }
}
