//! The deployment journal: every run that changes something gets an id and writes the
//! JSON-lines log in the seed's format (`timestamp`, `deploymentId`, `phase`, `level`,
//! `message`, `metadata`; see seed-formats.md) to `.deployments/<id>/deployment.log` as it
//! goes, and to `pgship.deployment_logs` when the run's transactions are over (so a failed
//! run is logged too). `history` and `logs` read them back ([`history`], [`logs`]).
//!
//! Nothing logged may hold a secret: callers pass redacted URLs only, and an ERROR line's
//! error chain (`stackTrace`) is scrubbed of URL passwords once more before it is kept.

pub mod artifacts;
pub mod console;
pub mod history;
pub mod logs;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use console::Console;

/// Pipeline phases, exactly as they appear in logs.
pub mod phase {
    pub const PREFLIGHT: &str = "PREFLIGHT";
    pub const SANDBOX_VALIDATION: &str = "SANDBOX_VALIDATION";
    pub const BACKUP: &str = "BACKUP";
    pub const DEPLOY: &str = "DEPLOY";
    pub const POST_DEPLOY_VALIDATION: &str = "POST_DEPLOY_VALIDATION";
    pub const ROLLBACK: &str = "ROLLBACK";
    pub const ROLLED_BACK: &str = "ROLLED_BACK";
    pub const NEEDS_HUMAN: &str = "NEEDS_HUMAN";
    pub const SUCCESS: &str = "SUCCESS";
    pub const FAILED: &str = "FAILED";
    pub const ABORTED: &str = "ABORTED";
}

/// Log levels, upper case as the seed's logger wrote them. `SUCCESS` ranks as `INFO` when
/// filtering by a minimum level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Success,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Success => "SUCCESS",
        }
    }

    /// Severity for `--level` filters: DEBUG < INFO = SUCCESS < WARN < ERROR.
    pub fn rank(self) -> u8 {
        match self {
            Level::Debug => 0,
            Level::Info | Level::Success => 1,
            Level::Warn => 2,
            Level::Error => 3,
        }
    }

    /// Parse a level in any case (`warn`, `WARN`; `warning` too).
    pub fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" | "WARNING" => Some(Level::Warn),
            "ERROR" => Some(Level::Error),
            "SUCCESS" => Some(Level::Success),
            _ => None,
        }
    }

    /// Every level at or above `self`, as stored (for a SQL `= ANY` filter).
    pub fn at_least(self) -> Vec<&'static str> {
        [
            Level::Debug,
            Level::Info,
            Level::Success,
            Level::Warn,
            Level::Error,
        ]
        .into_iter()
        .filter(|l| l.rank() >= self.rank())
        .map(Level::as_str)
        .collect()
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the log: the seed's six keys, and beside them `stackTrace` on an ERROR line
/// that has an error chain. A phase's duration is `metadata.duration_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(with = "millis")]
    pub timestamp: jiff::Timestamp,
    pub deployment_id: String,
    pub phase: String,
    pub level: Level,
    pub message: String,
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

impl Entry {
    /// `metadata.duration_ms`, whole milliseconds (the log table's `duration` column).
    pub fn duration_ms(&self) -> Option<i32> {
        let v = self.metadata.get("duration_ms")?;
        let ms = v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f.round() as i64))?;
        Some(i32::try_from(ms.max(0)).unwrap_or(i32::MAX))
    }
}

/// Timestamps as the seed writes them: UTC, milliseconds, `Z`.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<jiff::Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `2025-10-05T16:30:45.123Z`.
pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Now, to the millisecond: the file and the table then hold the same instant.
fn now_millis() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// An error and its sources, one per line (`caused by: ...`), for an ERROR line's
/// `stackTrace`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str("\ncaused by: ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Replace the password of every `scheme://user:password@host` and every `password=...`
/// conninfo key with `***`: a last guard for error text that is kept.
pub fn scrub_secrets(text: &str) -> String {
    scrub_password_keys(&crate::http::redact_url_passwords(text))
}

/// `password=secret` → `password=***` (conninfo strings, case-insensitive).
fn scrub_password_keys(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(i) = lower[at..].find("password=") {
        let start = at + i + "password=".len();
        out.push_str(&text[at..start]);
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '&' || c == '\'' || c == '"')
            .map_or(text.len(), |n| start + n);
        if end > start {
            out.push_str("***");
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// A run's journal.
pub struct Journal {
    pub id: String,
    pub dir: PathBuf,
    file: std::fs::File,
    entries: Vec<Entry>,
    flushed: usize,
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
        self.push(phase, level, message.into(), metadata, None);
    }

    /// A line that closes a phase (or a step): `metadata.duration_ms` and the table's
    /// `duration` column hold `elapsed` in milliseconds.
    pub fn log_timed(
        &mut self,
        phase: &str,
        level: Level,
        message: impl Into<String>,
        elapsed: Duration,
        metadata: serde_json::Value,
    ) {
        let mut metadata = object(metadata);
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        metadata["duration_ms"] = serde_json::json!(ms);
        self.push(phase, level, message.into(), metadata, None);
    }

    /// An ERROR line with its error chain (`stackTrace` in the file, `stack_trace` in the
    /// table), scrubbed of URL passwords. Build the chain with [`error_chain`] or pass the
    /// text a failure renders.
    pub fn log_error(
        &mut self,
        phase: &str,
        message: impl Into<String>,
        chain: &str,
        metadata: serde_json::Value,
    ) {
        let trace = (!chain.trim().is_empty()).then(|| scrub_secrets(chain));
        self.push(phase, Level::Error, message.into(), metadata, trace);
    }

    fn push(
        &mut self,
        phase: &str,
        level: Level,
        message: String,
        metadata: serde_json::Value,
        stack_trace: Option<String>,
    ) {
        let entry = Entry {
            timestamp: now_millis(),
            deployment_id: self.id.clone(),
            phase: phase.to_string(),
            level,
            message,
            metadata: object(metadata),
            stack_trace,
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
                duration: e.duration_ms(),
                stack_trace: e.stack_trace.as_deref(),
            })
            .collect();
        crate::db::state::write_logs(client, &rows).await?;
        self.flushed = self.entries.len();
        Ok(())
    }
}

/// Metadata is always an object (the seed's format); anything else is kept under `value`.
fn object(metadata: serde_json::Value) -> serde_json::Value {
    match metadata {
        serde_json::Value::Object(_) => metadata,
        serde_json::Value::Null => serde_json::json!({}),
        other => serde_json::json!({ "value": other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_line(dir: &Path, id: &str) -> serde_json::Value {
        let path = dir.join(".deployments").join(id).join("deployment.log");
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

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
        let v = first_line(dir.path(), "migrate-dev-1");
        assert_eq!(v["deploymentId"], "migrate-dev-1");
        assert_eq!(v["phase"], "DEPLOY");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["metadata"]["n"], 1);
        assert!(v.get("stackTrace").is_none(), "{v}");
        let ts = v["timestamp"].as_str().unwrap();
        // 2025-10-05T16:30:45.123Z: milliseconds, always three digits, UTC.
        assert_eq!(ts.len(), 24, "{ts}");
        assert_eq!(&ts[19..20], ".", "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn levels_are_upper_case_and_success_ranks_as_info() {
        for (l, s) in [
            (Level::Debug, "\"DEBUG\""),
            (Level::Info, "\"INFO\""),
            (Level::Warn, "\"WARN\""),
            (Level::Error, "\"ERROR\""),
            (Level::Success, "\"SUCCESS\""),
        ] {
            assert_eq!(serde_json::to_string(&l).unwrap(), s);
            assert_eq!(format!("\"{}\"", l.as_str()), s);
            assert_eq!(Level::parse(&l.as_str().to_lowercase()), Some(l));
        }
        assert_eq!(Level::Success.rank(), Level::Info.rank());
        assert_eq!(Level::Warn.at_least(), vec!["WARN", "ERROR"]);
        assert_eq!(
            Level::Info.at_least(),
            vec!["INFO", "SUCCESS", "WARN", "ERROR"]
        );
        assert_eq!(Level::parse("loud"), None);
    }

    #[test]
    fn timed_and_error_lines_carry_duration_and_a_scrubbed_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "deploy-dev-2").unwrap();
        j.log_timed(
            phase::BACKUP,
            Level::Success,
            "backup verified",
            Duration::from_millis(1234),
            serde_json::json!({"bytes": 10}),
        );
        j.log_error(
            phase::DEPLOY,
            "apply failed",
            "connect failed\ncaused by: postgres://app:hunter2@db/x password=hunter2 refused",
            serde_json::Value::Null,
        );
        let e = &j.entries()[0];
        assert_eq!(e.duration_ms(), Some(1234));
        assert_eq!(e.metadata["bytes"], 10);
        let err = &j.entries()[1];
        assert_eq!(err.level, Level::Error);
        assert_eq!(err.metadata, serde_json::json!({}));
        let trace = err.stack_trace.as_deref().unwrap();
        assert!(!trace.contains("hunter2"), "{trace}");
        assert!(
            trace.contains("postgres://app:***@db/x password=***"),
            "{trace}"
        );
        let text =
            std::fs::read_to_string(dir.path().join(".deployments/deploy-dev-2/deployment.log"))
                .unwrap();
        let lines: Vec<Entry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0].level, Level::Success);
        assert_eq!(
            lines[0].timestamp, e.timestamp,
            "the file keeps the instant"
        );
        assert_eq!(lines[1].stack_trace.as_deref(), Some(trace));
        assert!(text.contains("\"stackTrace\":"), "{text}");
    }

    #[test]
    fn error_chain_lists_sources() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("reading the dump")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&e), "reading the dump\ncaused by: disk full");
    }
}
