//! The BACKUP phase's own work: dumps of the target before DEPLOY changes it, their
//! verification, the manifest that seals them, an optional trial restore, and Neon branches.
//!
//! ```text
//! choose(requested, neon_target, neon_key, restore_needs_full) -> (Strategy, why)
//! dump::full(url, tools, dir, lock_wait)            dir/backup.dump
//! dump::touched(url, tools, dir, tables, lock_wait) dir/backup-schema.dump (+ backup-data.dump)
//! dump::remove_leftovers(dir)                     *.partial and passfiles of a killed run
//! verify::seal(url, tools, files, dir, strategy)    pg_restore --list, sha256, manifest.json
//! verify::check(dir)                                re-hash against manifest.json
//! trial::trial_restore(manifest, dir, tools)        restore into a throwaway cluster, count rows
//! neon::branch(env, target, id)                     a Neon branch at the current point in time
//! neon::restore(env, backup)                        the target's branch back to the backup's state
//! ```
//!
//! Every file this module writes is new (created exclusively, never through a symlink), mode
//! 0600, in a folder that is 0700; a dump that fails is removed before the error is returned,
//! so a folder never holds a partial backup that looks whole. It must never put a password in
//! a child's arguments, an error, the manifest or a log (the tools get it through a passfile,
//! see `rollback::tools`), never wait behind the application for a lock
//! (`--lock-wait-timeout`), and never back up the `pgship` schema (history survives a
//! rollback). It does not know about deployments: the orchestrator (`deploy`) calls it.

pub mod dump;
pub mod neon;
pub mod trial;
pub mod verify;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::rollback::RollbackError;
use crate::sandbox::neon::NeonError;

pub use dump::{full, touched};
pub use neon::NeonBackup;
pub use trial::{TrialReport, trial_restore};
pub use verify::{Manifest, check, seal};

/// `[backup] strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Neon for a Neon target with an API key, else touched when the rollback needs no more,
    /// else full.
    Auto,
    /// `pg_dump` of the whole target (without `pgship`).
    Full,
    /// The schema and the rows of the tables the migrations touch.
    Touched,
    /// A Neon branch of the target's branch.
    Neon,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Full => "full",
            Strategy::Touched => "touched",
            Strategy::Neon => "neon",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = BackupError;

    fn from_str(s: &str) -> Result<Strategy, BackupError> {
        match s.trim() {
            "auto" => Ok(Strategy::Auto),
            "full" => Ok(Strategy::Full),
            "touched" => Ok(Strategy::Touched),
            "neon" => Ok(Strategy::Neon),
            other => Err(BackupError::Invalid(format!(
                "[backup] strategy = \"{}\" is not a strategy: use auto, full, touched or neon",
                other
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(40)
                    .collect::<String>()
            ))),
        }
    }
}

/// The strategy to use and why. `auto` picks neon for a Neon target when `NEON_API_KEY` is
/// set, else touched when the proven rollback needs no more than the touched tables
/// (`restore_needs_full` false), else full. An explicit choice is kept as it is (the caller
/// reports what it cannot do, e.g. neon for a target that is not on Neon).
pub fn choose(
    requested: Strategy,
    neon_target: bool,
    neon_key: bool,
    restore_needs_full: bool,
) -> (Strategy, String) {
    match requested {
        Strategy::Auto if neon_target && neon_key => (
            Strategy::Neon,
            "auto: the target is on Neon and NEON_API_KEY is set: a branch takes seconds whatever the size".into(),
        ),
        Strategy::Auto if !restore_needs_full => (
            Strategy::Touched,
            format!(
                "auto: the proven rollback needs only the schema and the touched tables' rows{}",
                if neon_target { " (NEON_API_KEY is not set, so no Neon branch)" } else { "" }
            ),
        ),
        Strategy::Auto => (
            Strategy::Full,
            "auto: the proven rollback may need more than the touched tables: a full dump".into(),
        ),
        s => (s, format!("[backup] strategy = \"{s}\"")),
    }
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Hex sha256 of the file; empty until [`verify::seal`] computed it.
    pub sha256: String,
}

/// What the BACKUP phase made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub strategy: Strategy,
    /// The dump files (none for neon).
    pub files: Vec<BackupFile>,
    /// `manifest.json` (none for neon).
    pub manifest: Option<PathBuf>,
    pub seconds: f64,
    pub neon_branch: Option<NeonBackup>,
}

/// Why a backup could not be made or verified. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Neon(#[from] NeonError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("backup folder {path}: {message}")]
    Folder { path: String, message: String },
    #[error("{step}: {message}")]
    Dump { step: String, message: String },
    #[error("{file} is not a readable dump ({message}); it was not sealed")]
    Unreadable { file: String, message: String },
    #[error("backup file {file} does not match its manifest: {message}")]
    Mismatch { file: String, message: String },
    #[error("{path}: {message}")]
    Manifest { path: String, message: String },
    #[error("trial restore: {0}")]
    Trial(String),
    #[error("{0}")]
    Invalid(String),
}

impl BackupError {
    /// Advice for a person, printed on its own line.
    pub fn hint(&self) -> Option<String> {
        match self {
            BackupError::Dump { message, .. } if message.contains("LOCK TABLE") => Some(
                "another session holds a lock on that table; retry when it is done, or raise [backup] lock_wait_timeout".into(),
            ),
            BackupError::Mismatch { .. } => Some(
                "the backup was changed or damaged after it was taken: do not restore from it".into(),
            ),
            BackupError::Folder { .. } => Some(
                "use a folder of your own that is not a symlink (pgship makes it 0700)".into(),
            ),
            _ => None,
        }
    }
}

impl From<RollbackError> for BackupError {
    fn from(e: RollbackError) -> BackupError {
        match e {
            RollbackError::Db(d) => BackupError::Db(d),
            RollbackError::Tool { step, message } => BackupError::Dump { step, message },
            RollbackError::Io { path, message } => BackupError::Io { path, message },
            other => BackupError::Invalid(other.to_string()),
        }
    }
}

pub(crate) fn io_error(path: &std::path::Path, e: &std::io::Error) -> BackupError {
    BackupError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choosing_a_strategy() {
        use Strategy::*;
        // (requested, neon target, key, restore needs full) -> chosen
        let cases = [
            (Auto, true, true, true, Neon),
            (Auto, true, true, false, Neon),
            (Auto, true, false, false, Touched),
            (Auto, true, false, true, Full),
            (Auto, false, true, false, Touched),
            (Auto, false, false, true, Full),
            (Full, true, true, false, Full),
            (Touched, false, false, true, Touched),
            (Neon, false, false, false, Neon),
        ];
        for (req, target, key, needs_full, want) in cases {
            let (got, why) = choose(req, target, key, needs_full);
            assert_eq!(got, want, "{req} {target} {key} {needs_full}: {why}");
            assert!(!why.is_empty());
        }
        assert!(choose(Auto, true, false, false).1.contains("NEON_API_KEY"));
        assert!(
            choose(Full, false, false, false)
                .1
                .contains("[backup] strategy")
        );
    }

    #[test]
    fn strategies_parse_and_print() {
        for s in ["auto", "full", "touched", "neon"] {
            let parsed: Strategy = s.parse().unwrap();
            assert_eq!(parsed.to_string(), s);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{s}\""));
        }
        let e = "snapshot".parse::<Strategy>().unwrap_err().to_string();
        assert!(
            e.contains("[backup] strategy") && e.contains("snapshot"),
            "{e}"
        );
    }
}
