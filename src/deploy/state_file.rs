//! `rollback-state.json`: the seed's fields (deploymentId, timestamp, environment,
//! databaseBackup, gitCommit, gitBranch, canRollback) and beside them what a rollback needs
//! later, from this run or from `pgship rollback <id>`: the backup's files and sha256, the
//! pre-deploy and rehearsed post-deploy fingerprints, the rollback method and what `prepare`
//! recorded, the data-loss guard's counters, and the code half's commits and deployments. A copy goes into `pgship.deployments` so a
//! rollback works when the local folder is gone, and so a tampered file is noticed.
//! Written 0600, created exclusively (never through a symlink); never holds a password.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Ctx;
use super::preflight::Preflight;
use crate::backup::{Backup, BackupFile};
use crate::rollback::{Prepared, guard};

pub const FILE: &str = "rollback-state.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackState {
    pub deployment_id: String,
    pub timestamp: String,
    pub environment: String,
    /// The backup's main file (or folder), relative to the project like the seed's.
    pub database_backup: Option<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    pub can_rollback: bool,
    /// The target, redacted.
    pub target: String,
    pub migrations: Vec<String>,
    pub backup: Backup,
    /// sha256 of the backup's files, in order.
    pub backup_sha256: Vec<String>,
    /// The dumps the restore method restores from (`prepare`'s), with their sha256.
    pub rollback_dumps: Vec<BackupFile>,
    pub fingerprint_before: String,
    /// The sandbox's fingerprint after the migrations: what the target must become.
    pub fingerprint_after: Option<String>,
    pub rollback_method: String,
    pub prepared: Prepared,
    /// The guard's counters: before the backup, before and after the apply.
    pub guard: Guard,
    /// The code half (`[app] provider` other than none): branch, commits, the host's
    /// deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::app::CodeState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// The oids of the existing tables the rollback would replace.
    #[serde(default)]
    pub watched: Vec<u32>,
    pub before_backup: Option<guard::Snapshot>,
    pub before_apply: Option<guard::Snapshot>,
    pub after_apply: Option<guard::Snapshot>,
}

impl RollbackState {
    pub fn new(
        id: &str,
        t: &Ctx<'_>,
        pf: &Preflight,
        prepared: &Prepared,
        backup: &Backup,
        s0: guard::Snapshot,
    ) -> RollbackState {
        let rel = |p: &Path| -> String {
            match p.strip_prefix(&t.project_dir) {
                Ok(r) => format!("./{}", r.display()),
                Err(_) => p.display().to_string(),
            }
        };
        let database_backup = match (&backup.files[..], &backup.neon_branch) {
            ([one], _) => Some(rel(&one.path)),
            ([first, ..], _) => first.path.parent().map(rel),
            ([], Some(b)) => Some(format!("neon:{}", b.branch_id)),
            ([], None) => None,
        };
        RollbackState {
            deployment_id: id.to_string(),
            timestamp: crate::util::iso_millis(jiff::Timestamp::now()),
            environment: t.target.name.clone(),
            database_backup,
            // The environment branch's state before the deploy when the code is deployed; the
            // project's checkout otherwise.
            git_commit: match &pf.code.plan {
                Some(c) => Some(c.before.clone()),
                None => pf.git.as_ref().map(|g| g.commit.clone()),
            },
            git_branch: match &pf.code.plan {
                Some(c) => Some(c.branch.clone()),
                None => pf.git.as_ref().and_then(|g| g.branch.clone()),
            },
            can_rollback: true,
            target: t.url.redacted(),
            migrations: prepared.migrations.clone(),
            backup: backup.clone(),
            backup_sha256: backup.files.iter().map(|f| f.sha256.clone()).collect(),
            rollback_dumps: dumps_of(prepared),
            fingerprint_before: prepared.fingerprint.clone(),
            fingerprint_after: None,
            rollback_method: prepared.method.as_str().to_string(),
            prepared: prepared.clone(),
            guard: Guard {
                watched: super::guard::watched(
                    &s0,
                    &prepared.scope.tables.iter().cloned().collect::<Vec<_>>(),
                ),
                before_backup: Some(s0),
                ..Guard::default()
            },
            code: pf.code.plan.clone(),
        }
    }

    /// Create `dir/rollback-state.json`; an existing file or a symlink there is refused.
    pub fn write_new(&self, dir: &Path) -> std::io::Result<()> {
        write(&dir.join(FILE), self)
    }

    /// Replace the file (written beside it, then renamed over it).
    pub fn rewrite(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!(".{FILE}.{}", crate::util::random_hex(4)));
        write(&tmp, self)?;
        std::fs::rename(&tmp, dir.join(FILE))
    }

    pub fn read(dir: &Path) -> Result<RollbackState, String> {
        let path: PathBuf = dir.join(FILE);
        let text = fs_err::read_to_string(&path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// `prepare`'s dumps with their size and sha256 (unreadable ones get an empty hash, which a
/// later check refuses).
fn dumps_of(p: &Prepared) -> Vec<BackupFile> {
    let Some(d) = &p.dumps else {
        return Vec::new();
    };
    std::iter::once(&d.schema)
        .chain(d.data.as_ref())
        .map(|path| {
            let (bytes, sha256) = crate::util::sha256_file(path).unwrap_or_default();
            BackupFile {
                path: path.clone(),
                bytes,
                sha256,
            }
        })
        .collect()
}

fn write(path: &Path, s: &RollbackState) -> std::io::Result<()> {
    let mut f = crate::db::child::create_private(path)?;
    let text = serde_json::to_string_pretty(s).map_err(std::io::Error::other)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
