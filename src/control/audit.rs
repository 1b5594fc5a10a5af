//! The audit log: one JSON line per manual action (who, what, when, preflight, outcome), in
//! `state_dir/audit.log`, appended and synced before the action's answer is given.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::protocol::FailoverRequest;
use crate::api::time::UtcTime;
use crate::engine::PreflightReport;

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

impl AuditRecord {
    /// A record of something done just now.
    pub fn now(
        who: String,
        site: &str,
        action: &str,
        details: serde_json::Value,
        outcome: String,
    ) -> AuditRecord {
        AuditRecord {
            at: UtcTime::from_system_time(std::time::SystemTime::now()),
            who,
            site: site.to_string(),
            action: action.to_string(),
            details,
            outcome,
        }
    }

    /// A manual failover request; `standalone` marks one carried out without a daemon.
    pub fn failover(
        who: String,
        request: &FailoverRequest,
        standalone: bool,
        outcome: String,
    ) -> AuditRecord {
        let mut details = serde_json::json!({
            "to": request.to, "data_sync_first": request.data_sync_first, "force": request.force,
            "confirm": request.confirm, "override_preflight": request.override_preflight,
        });
        if standalone {
            details["standalone"] = serde_json::Value::Bool(true);
        }
        if let Some(demote) = &request.demote {
            details["demote"] = serde_json::Value::String(demote.clone());
        }
        let action = if request.confirm {
            "failover"
        } else {
            "failover dry run"
        };
        AuditRecord::now(who, &request.site, action, details, outcome)
    }
}

/// What the engine's preflight made of a manual failover request, in the audit log's words.
pub fn preflight_outcome(report: &PreflightReport) -> String {
    match (report.started, report.passed) {
        (true, true) => "started".to_string(),
        (true, false) => format!(
            "started with the preflight overridden: {}",
            report.problems.join("; ")
        ),
        (false, true) => "preflight passed; nothing done (dry run)".to_string(),
        (false, false) => format!("refused: {}", report.problems.join("; ")),
    }
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
    super::ownership::match_directory(&file, state_dir)?;
    file.write_all(&line)?;
    file.sync_data()
}

/// Appends a record; a log that cannot be written is reported, and the action is not undone
/// for it (the operator has already seen its outcome).
pub fn record(state_dir: &Path, record: &AuditRecord) {
    if let Err(error) = append(state_dir, record) {
        tracing::error!(
            "cannot write the audit log {}: {error}",
            path(state_dir).display()
        );
    }
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

/// Who called, as far as the kernel vouches: "alice (uid 1000)"; "bob (login uid 1001), as
/// root (uid 0)" when the caller's login uid (kept through sudo) is readable; otherwise
/// "bob (as the CLI says), as root (uid 0)" when the CLI names someone else (`SUDO_USER`),
/// which is then marked as the caller's own word.
pub fn describe_caller(uid: u32, claimed: &str, login_uid: Option<u32>) -> String {
    let name = |id: u32| user_name(id).unwrap_or_else(|| format!("uid {id}"));
    let system = name(uid);
    match login_uid {
        Some(login) if login != uid => {
            format!(
                "{} (login uid {login}), as {system} (uid {uid})",
                name(login)
            )
        }
        _ if claimed.is_empty() || claimed == system => format!("{system} (uid {uid})"),
        Some(_) => format!("{system} (uid {uid}; the CLI named {claimed})"),
        None => format!("{claimed} (as the CLI says), as {system} (uid {uid})"),
    }
}

/// This process's caller, for a standalone run: its effective uid and login uid.
pub fn describe_self(claimed: &str) -> String {
    let uid = super::ownership::effective_uid().unwrap_or(u32::MAX);
    describe_caller(uid, claimed, super::ownership::login_uid(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_who_the_kernel_says_and_a_claim_is_marked_as_one() {
        assert_eq!(describe_caller(0, "", None), "root (uid 0)");
        assert_eq!(
            describe_caller(0, "alice", None),
            "alice (as the CLI says), as root (uid 0)"
        );
        let with_login = describe_caller(0, "mallory", Some(4242));
        assert!(
            with_login.starts_with("uid 4242 (login uid 4242), as root"),
            "{with_login}"
        );
        assert!(!with_login.contains("mallory"), "{with_login}");
    }
}
