//! The deployment journal: every run that changes something gets an id and writes the
//! JSON-lines log (`timestamp`, `deploymentId`, `phase`, `level`, `message`, `metadata`) to
//! `.deployments/<id>/deployment.log` as it goes, and to `pgship.deployment_logs` when the
//! run's transactions are over (so a failed run is logged too).
//!
//! Nothing logged may hold a secret: callers pass redacted URLs only.

pub mod console;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use console::Console;

/// Pipeline phases, exactly as they appear in logs.
pub mod phase {
    pub const PREFLIGHT: &str = "PREFLIGHT";
    pub const SANDBOX_VALIDATION: &str = "SANDBOX_VALIDATION";
    pub const DEPLOY: &str = "DEPLOY";
    pub const SUCCESS: &str = "SUCCESS";
    pub const FAILED: &str = "FAILED";
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub timestamp: jiff::Timestamp,
    pub deployment_id: String,
    pub phase: String,
    pub level: Level,
    pub message: String,
    pub metadata: serde_json::Value,
}

/// A run's journal.
pub struct Journal {
    pub id: String,
    pub dir: PathBuf,
    file: std::fs::File,
    entries: Vec<Entry>,
    flushed: usize,
}

/// `migrate-dev-1795484177772`.
pub fn run_id(kind: &str, environment: &str) -> String {
    format!("{kind}-{environment}-{}", crate::util::unix_millis())
}

impl Journal {
    /// Create `.deployments/<id>/deployment.log` under `project_dir` (folder 0700, file 0600).
    pub fn create(project_dir: &Path, id: &str) -> std::io::Result<Journal> {
        let root = project_dir.join(".deployments");
        std::fs::create_dir_all(&root)?;
        let dir = root.join(id);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.join("deployment.log"))?;
        Ok(Journal {
            id: id.to_string(),
            dir,
            file,
            entries: Vec::new(),
            flushed: 0,
        })
    }

    /// Append a line to the file now; it reaches the database at the next [`Journal::flush_db`].
    pub fn log(
        &mut self,
        phase: &str,
        level: Level,
        message: impl Into<String>,
        metadata: serde_json::Value,
    ) {
        let entry = Entry {
            timestamp: jiff::Timestamp::now(),
            deployment_id: self.id.clone(),
            phase: phase.to_string(),
            level,
            message: message.into(),
            metadata,
        };
        if let Ok(line) = serde_json::to_string(&entry) {
            // A log line that cannot be written must not stop a deployment half-way.
            let _ = writeln!(self.file, "{line}");
        }
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Write the lines not yet in `pgship.deployment_logs`.
    pub async fn flush_db(
        &mut self,
        client: &tokio_postgres::Client,
    ) -> Result<(), crate::db::DbError> {
        let rows: Vec<crate::db::state::LogRow<'_>> = self.entries[self.flushed..]
            .iter()
            .map(|e| crate::db::state::LogRow {
                deployment_id: &e.deployment_id,
                timestamp: e.timestamp,
                phase: &e.phase,
                level: e.level.as_str(),
                message: &e.message,
                metadata: &e.metadata,
            })
            .collect();
        crate::db::state::write_logs(client, &rows).await?;
        self.flushed = self.entries.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_lines_privately() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "migrate-dev-1").unwrap();
        j.log(
            phase::DEPLOY,
            Level::Info,
            "applied",
            serde_json::json!({"n": 1}),
        );
        let path = dir.path().join(".deployments/migrate-dev-1/deployment.log");
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["deploymentId"], "migrate-dev-1");
        assert_eq!(v["phase"], "DEPLOY");
        assert_eq!(v["level"], "info");
        assert_eq!(v["metadata"]["n"], 1);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
