//! One deployment's voice: every line goes to the console (by level) and to the journal
//! (`deployment.log`, later `pgship.deployment_logs`). Each phase logs its start, its decision
//! and its duration through [`Log::start`] and [`Log::end`].

use std::time::Instant;

use serde_json::{Value, json};

use super::decide::Phase;
use crate::journal::{Console, Journal, Level};

pub struct Log {
    pub journal: Journal,
    pub console: Console,
    phase_started: Instant,
}

impl Log {
    pub fn new(journal: Journal, console: Console) -> Log {
        Log {
            journal,
            console,
            phase_started: Instant::now(),
        }
    }

    pub fn id(&self) -> &str {
        &self.journal.id
    }

    /// A line of `phase` (a [`Phase`] name, or a terminal one such as `SUCCESS`).
    pub fn line(&mut self, phase: &str, level: Level, msg: impl Into<String>, meta: Value) {
        let msg = msg.into();
        self.console.line(level, &msg);
        self.journal.log(phase, level, msg, meta);
    }

    pub fn info(&mut self, phase: Phase, msg: impl Into<String>, meta: Value) {
        self.line(phase.as_str(), Level::Info, msg, meta);
    }

    pub fn warn(&mut self, phase: Phase, msg: impl Into<String>, meta: Value) {
        self.line(phase.as_str(), Level::Warn, msg, meta);
    }

    pub fn error(&mut self, phase: Phase, msg: impl Into<String>, meta: Value) {
        self.line(phase.as_str(), Level::Error, msg, meta);
    }

    /// A phase starts.
    pub fn start(&mut self, phase: Phase, msg: impl Into<String>, mut meta: Value) {
        self.phase_started = Instant::now();
        if let Value::Object(m) = &mut meta {
            m.insert("phase_event".into(), json!("start"));
        }
        self.info(phase, msg, meta);
    }

    /// A phase ends with its decision; returns its duration in milliseconds (also in the
    /// line's `metadata.duration_ms` and the log table's `duration`).
    pub fn end(
        &mut self,
        phase: Phase,
        level: Level,
        decision: &str,
        msg: impl Into<String>,
        mut meta: Value,
    ) -> u64 {
        let elapsed = self.phase_started.elapsed();
        if let Value::Object(m) = &mut meta {
            m.insert("phase_event".into(), json!("end"));
            m.insert("decision".into(), json!(decision));
        }
        let msg = msg.into();
        self.console.line(level, &msg);
        self.journal
            .log_timed(phase.as_str(), level, msg, elapsed, meta);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// An ERROR line with its error chain (the log table's `stack_trace`).
    pub fn failure(&mut self, phase: &str, msg: &str, chain: &str, meta: Value) {
        self.console.line(Level::Error, msg);
        self.journal.log_error(phase, msg, chain, meta);
    }
}
