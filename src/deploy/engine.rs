//! Running the engine for a command: progress on the console, every event in the journal,
//! SIGINT/SIGTERM honoured (the running statement cancelled, the open transaction rolled back,
//! the run recorded `interrupted` with what it committed). Shared by `migrate` and DEPLOY.

use std::time::Duration;

use serde_json::json;

use super::settings::Settings;
use crate::db::apply::{self, ApplyOptions, ApplyReport, Event, TxMode, Work};
use crate::db::state::{self, StateTable};
use crate::error::{Error, Result};
use crate::journal::{Console, Journal, Level, phase};
use crate::util::format_duration;

/// The engine's result: the report, or the failure (what it left committed included).
pub type Applied = std::result::Result<ApplyReport, Box<apply::ApplyFailure>>;

/// Apply `work` on `conn` (the caller holds the migration lock). `Err` only when a signal
/// interrupted it (the error carries the exit code 130 or 143 and what was committed).
pub async fn run(
    conn: &crate::db::Conn,
    table: &StateTable,
    work: &[Work<'_>],
    opts: &ApplyOptions,
    journal: &mut Journal,
    console: Console,
) -> Result<Applied> {
    let mode = match opts.tx_mode {
        TxMode::All => "in one transaction",
        TxMode::PerMigration => "one transaction each",
    };
    console.step(&format!("applying {} migration(s), {mode}", work.len()));
    let mut signal = None;
    let mut signals = crate::signals::Signals::install()
        .map_err(|e| Error::usage(format!("cannot install signal handlers: {e}")))?;
    let outcome = {
        let mut progress = Progress::new(work.len(), console.verbose > 0);
        let mut on_event = |e: Event<'_>| log_event(journal, &console, &mut progress, e);
        let applying = apply::apply(&conn.client, table, work, opts, &mut on_event);
        tokio::select! {
            r = applying => Some(r),
            s = signals.recv() => { signal = Some(s); None }
        }
    };
    match outcome {
        Some(o) => Ok(o),
        None => {
            let s = signal.expect("set with the interruption");
            Err(interrupted(conn, &opts.deployment_id, journal, s).await)
        }
    }
}

/// After SIGINT or SIGTERM during the apply: cancel the running statement, roll back what is
/// open, record the run `interrupted` with what it committed, and say so in one line.
pub async fn interrupted(
    conn: &crate::db::Conn,
    id: &str,
    journal: &mut Journal,
    signal: crate::signals::Signal,
) -> Error {
    conn.cancel_running().await;
    let bounded = Duration::from_secs(5);
    let _ = tokio::time::timeout(bounded, conn.client.batch_execute("ROLLBACK")).await;
    let progress = tokio::time::timeout(bounded, state::run_progress(&conn.client, id)).await;
    let (committed, partial) = match progress {
        Ok(Ok(p)) => p,
        _ => (Vec::new(), None),
    };
    let mut msg = format!(
        "interrupted by {}: the open transaction was rolled back; ",
        signal.name()
    );
    msg.push_str(&match (&committed[..], &partial) {
        ([], None) => "nothing was committed".to_string(),
        ([], Some(_)) => String::new(),
        (c, _) => format!("committed: {}", crate::util::fold_list(c, 5, 3)),
    });
    if let Some((name, done)) = &partial {
        msg.push_str(&format!(
            "{}partially committed: {name} (statements 1-{done}); a rerun resumes after them",
            if committed.is_empty() { "" } else { "; " }
        ));
    }
    journal.log(
        phase::FAILED,
        Level::Error,
        msg.clone(),
        json!({"signal": signal.name(), "committed": committed}),
    );
    let applied = i32::try_from(committed.len()).unwrap_or(i32::MAX);
    let record =
        state::finish_deployment(&conn.client, id, "interrupted", applied, Some(&msg), None);
    let _ = tokio::time::timeout(bounded, record).await;
    let _ = tokio::time::timeout(bounded, journal.flush_db(&conn.client)).await;
    Error {
        code: signal.exit_code(),
        message: msg,
        hint: None,
    }
}

/// The failure as reported; a statement cancelled by `statement_timeout` says which limit
/// applied (pgship's or the server's).
pub fn failure_text(f: &apply::ApplyFailure, settings: &Settings) -> String {
    let text = f.to_string();
    if f.sqlstate.as_deref() != Some("57014") || !f.error.contains("statement timeout") {
        return text;
    }
    let Some(line) = settings.statement_timeout_line() else {
        return text;
    };
    // Right under the server's message, before what was committed.
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("\n{rest}")
    };
    format!("{first}\n  the limit that applied: {line}{rest}")
}

/// Which migrations' progress lines the console shows: all of a short batch (or with -v);
/// of a long one the first few and the last few, the others counted in one line (the log
/// holds every line).
struct Progress {
    total: usize,
    started: usize,
    all: bool,
    /// The migration running now is shown.
    current: bool,
}

impl Progress {
    const HEAD: usize = 5;
    const TAIL: usize = 3;

    fn new(total: usize, all: bool) -> Progress {
        Progress {
            total,
            started: 0,
            all: all || total <= Self::HEAD + Self::TAIL + 1,
            current: true,
        }
    }

    /// A migration starts: whether to show it, and the line that stands for those not shown
    /// (once, at the first of them).
    fn start(&mut self) -> (bool, Option<String>) {
        let i = self.started;
        self.started += 1;
        self.current = self.all || i < Self::HEAD || i >= self.total.saturating_sub(Self::TAIL);
        let gap = (!self.all && i == Self::HEAD).then(|| {
            let hidden = self.total - Self::HEAD - Self::TAIL;
            format!("... {hidden} more migration(s) (-v shows each) ...")
        });
        (self.current, gap)
    }
}

fn log_event(
    journal: &mut Journal,
    console: &crate::journal::Console,
    progress: &mut Progress,
    e: Event<'_>,
) {
    match e {
        Event::MigrationStarted { name, resume_at } => {
            let msg = if resume_at > 0 {
                format!("resuming {name} at statement {}", resume_at + 1)
            } else {
                format!("applying {name}")
            };
            let (show, gap) = progress.start();
            if let Some(gap) = gap {
                console.step(&gap);
            }
            if show {
                console.step(&msg);
            }
            journal.log(
                phase::DEPLOY,
                Level::Info,
                msg,
                json!({"migration": name, "resume_at": resume_at}),
            );
        }
        Event::StatementDone {
            migration,
            index,
            line,
            duration,
            alone,
        } => {
            let ms = duration.as_secs_f64() * 1000.0;
            console.detail(&format!(
                "{migration} statement {index} (line {line}) {ms:.1}ms{}",
                if alone { ", outside a transaction" } else { "" }
            ));
            journal.log(
                phase::DEPLOY,
                Level::Debug,
                format!("{migration}: statement {index} done"),
                json!({"migration": migration, "statement": index, "line": line, "duration_ms": ms, "outside_transaction": alone}),
            );
        }
        Event::LockTimeout {
            migration,
            index,
            attempt,
            retries,
            backoff,
            blocked_by,
        } => {
            let msg = format!(
                "{migration} statement {index}: lock timeout; rolled back, retry {attempt}/{retries} in {}; {}",
                format_duration(backoff),
                crate::db::blockers::describe(blocked_by, 3).join("; ")
            );
            console.warn(&msg);
            journal.log(phase::DEPLOY, Level::Warn, msg, json!({"migration": migration, "statement": index, "attempt": attempt, "backoff_ms": backoff.as_millis() as u64, "blocked_by": blocked_by}));
        }
        Event::Committed { migrations } => {
            journal.log(
                phase::DEPLOY,
                Level::Info,
                format!("committed {}", crate::util::fold_list(&migrations, 5, 3)),
                json!({"migrations": migrations}),
            );
        }
        Event::Interrupted {
            migration,
            index,
            done,
            why,
        } => {
            let msg = format!(
                "{migration} statement {index} was running when an earlier run ended: {why}; {}",
                if done {
                    "recorded as done"
                } else {
                    "running it"
                }
            );
            console.warn(&msg);
            journal.log(
                phase::DEPLOY,
                Level::Warn,
                msg,
                json!({"migration": migration, "statement": index, "done": done}),
            );
        }
        Event::InvalidIndexDropped { index } => {
            let msg = format!("dropped invalid index {index} left by a failed concurrent build");
            console.warn(&msg);
            journal.log(phase::DEPLOY, Level::Warn, msg, json!({"index": index}));
        }
        Event::MigrationApplied { name, duration } => {
            if progress.current {
                console.ok(&format!("{name} ({})", format_duration(duration)));
            }
            journal.log(
                phase::DEPLOY,
                Level::Info,
                format!("applied {name}"),
                json!({"migration": name, "duration_ms": duration.as_millis() as u64}),
            );
        }
        // `migrate` runs without a probe.
        Event::Measured { .. } | Event::RolledBack => {}
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    fn shown(total: usize, all: bool) -> (Vec<usize>, Vec<String>) {
        let mut p = Progress::new(total, all);
        let mut shown = Vec::new();
        let mut gaps = Vec::new();
        for i in 0..total {
            let (show, gap) = p.start();
            gaps.extend(gap);
            if show {
                shown.push(i);
            }
        }
        (shown, gaps)
    }

    #[test]
    fn a_long_batch_shows_its_first_and_last_migrations() {
        let (ids, gaps) = shown(2000, false);
        assert_eq!(ids, [0, 1, 2, 3, 4, 1997, 1998, 1999]);
        assert_eq!(gaps, ["... 1992 more migration(s) (-v shows each) ..."]);
        assert_eq!(shown(9, false), ((0..9).collect(), vec![]));
        assert_eq!(shown(2000, true).0.len(), 2000);
    }
}
