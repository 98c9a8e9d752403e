//! The `neon` strategy: a branch of the target's Neon branch at the current point in time,
//! named `pgship-backup-<id>`, made through the Neon API (seconds whatever the size), and
//! the restore of the target's branch from it.
//!
//! It uses `crate::sandbox::neon::NeonClient`, so the API key stays in its `Secret` and out
//! of every message. A branch Neon created but could not finish is deleted before the error
//! is returned, so a failed backup leaves no branch behind. Backup branches are not named
//! like sandboxes, so `sandbox gc` never deletes them.

use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::config::Env;
use crate::db::DbUrl;
use crate::sandbox::neon::NeonClient;

/// Every backup branch's name starts with this.
pub const BACKUP_PREFIX: &str = "pgship-backup-";

/// A backup branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeonBackup {
    pub project_id: String,
    /// The backup branch.
    pub branch_id: String,
    pub name: String,
    /// The target's branch it copies.
    pub parent_branch_id: String,
    /// As Neon reports it (RFC 3339).
    pub created_at: Option<String>,
}

fn client(env: &Env) -> Result<NeonClient, BackupError> {
    Ok(NeonClient::from_env(env)?)
}

/// Branch the branch serving `target` as `pgship-backup-<id>`.
pub async fn branch(env: &Env, target: &DbUrl, id: &str) -> Result<NeonBackup, BackupError> {
    let neon = client(env)?;
    let parent = neon.branch_for_host(target.host()).await?;
    let name = format!("{BACKUP_PREFIX}{id}");
    match neon.create_branch(&parent, &name).await {
        Ok(b) => Ok(NeonBackup {
            project_id: neon.project_id().to_string(),
            branch_id: b.id,
            name: b.name,
            parent_branch_id: parent,
            created_at: b.created_at,
        }),
        Err(e) => {
            if let Some(made) = e.created_branch() {
                let _ = neon.delete_branch(made).await;
            }
            Err(e.into())
        }
    }
}

/// Restore the target's branch to the backup branch's state. Its state before the restore is
/// kept as `pgship-rolled-back-<backup id>` (Neon requires a name for a branch with children).
pub async fn restore(env: &Env, backup: &NeonBackup) -> Result<(), BackupError> {
    let neon = NeonClient::for_project(env, &backup.project_id)?;
    let id = backup
        .name
        .strip_prefix(BACKUP_PREFIX)
        .unwrap_or(&backup.branch_id);
    let keep = format!("pgship-rolled-back-{id}");
    neon.restore_branch(&backup.parent_branch_id, &backup.branch_id, &keep)
        .await?;
    Ok(())
}
