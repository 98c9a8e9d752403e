//! The sandbox registry: one private file per sandbox under pgship's temp root
//! (`$TMPDIR/pgship/sandboxes-<uid>/<id>.json`, folder 0700, files 0600, since a record holds
//! the sandbox's URL with its password). A record is written as soon as the sandbox exists and
//! removed when it is destroyed, so one that outlives its owning process is a leftover for
//! `sandbox gc`; kept sandboxes are marked `kept` and only `sandbox drop` removes them.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{SandboxError, Strategy};
use crate::cluster::KeptCluster;

/// What a sandbox is made of, enough to remove it later.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Kind {
    Local(KeptCluster),
    Database { admin: String, name: String },
    Neon { project: String, branch: String },
}

/// A sandbox's record.
#[derive(Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub strategy: Strategy,
    /// The sandbox's URL (a secret: it carries the password).
    pub url: String,
    pub kept: bool,
    pub pid: u32,
    pub host: String,
    pub created_at: String,
    pub kind: Kind,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("strategy", &self.strategy)
            .field("kept", &self.kept)
            .field("pid", &self.pid)
            .finish()
    }
}

/// This machine's name, to tell our own processes from other machines'.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn dir() -> Result<PathBuf, SandboxError> {
    let root = crate::cluster::temp_root()?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let d = root.join(format!("sandboxes-{uid}"));
    if !d.exists() {
        std::fs::create_dir_all(&d)
            .map_err(|e| SandboxError::Other(format!("{}: {e}", d.display())))?;
    }
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| SandboxError::Other(format!("{}: {e}", d.display())))?;
    Ok(d)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Write (or replace) a record.
pub fn save(r: &Record) -> Result<(), SandboxError> {
    let d = dir()?;
    let path = d.join(format!("{}.json", r.id));
    let tmp = d.join(format!(".{}.json.tmp", r.id));
    let _ = std::fs::remove_file(&tmp);
    let text = serde_json::to_vec(r).map_err(|e| SandboxError::Other(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| SandboxError::Other(format!("{}: {e}", tmp.display())))?;
    f.write_all(&text)
        .map_err(|e| SandboxError::Other(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| SandboxError::Other(format!("{}: {e}", path.display())))
}

/// The record of sandbox `id`, if any.
pub fn load(id: &str) -> Result<Option<Record>, SandboxError> {
    if !valid_id(id) {
        return Err(SandboxError::Refused(format!("`{id}` is not a sandbox id")));
    }
    let path = dir()?.join(format!("{id}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SandboxError::Other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::Other(format!("{}: {e}", path.display()))),
    }
}

/// Every record (unreadable files are skipped).
pub fn all() -> Vec<Record> {
    let Ok(d) = dir() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(d) else {
        return Vec::new();
    };
    let mut out: Vec<Record> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Remove a record.
pub fn forget(id: &str) {
    if valid_id(id)
        && let Ok(d) = dir()
    {
        let _ = std::fs::remove_file(d.join(format!("{id}.json")));
    }
}
