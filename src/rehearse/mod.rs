//! SANDBOX_VALIDATION: apply the pending migrations to a sandbox exactly as a deploy applies
//! them to the target, measure what each statement does on real data, check the data, compare
//! the schema before and after, rehearse the rollback, and hand the facts to the decision.
//!
//! The order of work on the sandbox:
//! 1. record the schema model, its fingerprint, the constraint names and exact row counts;
//! 2. let [`crate::rollback::prepare`] save what a rollback needs;
//! 3. apply with the same engine, transaction mode and timeouts as a deploy, every statement
//!    measured ([`crate::db::measure`]); a failing statement stops the rehearsal there;
//! 4. row counts after (a renamed table's under its new name), rows new or NOT VALID
//!    constraints reject, the user's check queries, the app's tests (`--test-cmd`);
//! 5. the schema after and its differences from before (renamed tables and columns recognised
//!    by catalog identity, breaking ones marked by policy);
//! 6. roll back, prove the schema and the touched tables' contents are as they were, then
//!    apply again and prove the schema is the rehearsed one again.

pub mod data;
pub mod decide;
pub mod git;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::compare::{self, Difference, SchemaFilter};
use crate::db::apply::{self, ApplyFailure, ApplyOptions, Event, Probe, Work};
use crate::db::measure::{Lock, Measurement};
use crate::db::state::{self, StateTable};
use crate::db::tools::BinDir;
use crate::db::{ConnectOptions, DbError, DbUrl, connect};
use crate::journal::Level;
use crate::lint::{Finding, Severity};
use crate::source::Migration;

pub use decide::{Decision, Facts, Policy, Verdict};

/// What the rehearsal needs besides the sandbox.
pub struct Options<'a> {
    pub work: &'a [Work<'a>],
    pub state: &'a StateTable,
    /// The engine's settings, as the deploy will use them.
    pub apply: ApplyOptions,
    /// Startup options of the applying session (lock_timeout, statement_timeout).
    pub session: Vec<(String, String)>,
    pub connect_timeout: Duration,
    /// What the schema comparison and the row counts cover.
    pub filter: SchemaFilter,
    /// Check files and the names to show for them.
    pub checks: Vec<(PathBuf, String)>,
    pub test_cmd: Option<String>,
    pub test_timeout: Option<Duration>,
    /// Where the test command runs.
    pub project_dir: PathBuf,
    /// Variables that get the sandbox URL for the test command (`DATABASE_URL`,
    /// `<ENV>_POSTGRES_URL`).
    pub url_vars: Vec<String>,
    pub tools: BinDir,
    /// A private folder for the rollback's dumps.
    pub work_dir: PathBuf,
    pub breaking: compare::BreakingPolicy,
}

/// One statement as rehearsed.
#[derive(Debug, Clone, Serialize)]
pub struct StatementRun {
    pub migration: String,
    /// 1-based within the migration.
    pub statement: usize,
    pub line: u32,
    pub sql: String,
    pub duration_ms: f64,
    /// Ran outside a transaction (CREATE INDEX CONCURRENTLY and the like).
    pub alone: bool,
    pub rows: Option<u64>,
    pub locks: Vec<HeldLock>,
    pub rewritten: Vec<String>,
    /// Locks sampled from a second connection (a statement run alone).
    pub sampled: bool,
    /// Its transaction was rolled back (the rehearsal failed in it).
    pub rolled_back: bool,
    #[serde(skip)]
    started: Option<Instant>,
}

/// A lock the statement took (or needed and its transaction held already), and how long its
/// backend held it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldLock {
    /// `ACCESS EXCLUSIVE`, `SHARE`, ... as the PostgreSQL docs name modes.
    pub mode: String,
    /// `schema.name` before the migrations: the same for every statement on the relation,
    /// whatever renames came before (locks are attributed by OID).
    pub relation: String,
    /// The relation's name when the statement ran, when the migrations renamed it before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named: Option<String>,
    /// The statement needed this lock and its transaction held it already: `pg_locks` showed
    /// nothing new, the lock is the statement's all the same.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held_before: bool,
    /// The earlier statement of the same transaction that took it (`held_before`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_since: Option<Since>,
    /// From when the lock was taken (the statement's start, or `held_since`'s) until its
    /// transaction ended (a statement run alone: its own duration).
    pub held_ms: Option<f64>,
    /// The table's rows before the migrations, when it is a table.
    pub table_rows: Option<i64>,
    #[serde(skip)]
    raw: Lock,
    /// When the lock was taken, when an earlier statement took it.
    #[serde(skip)]
    since: Option<Instant>,
}

/// A statement of the rehearsal, by migration and 1-based index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Since {
    pub migration: String,
    pub statement: usize,
}

/// The rollback rehearsal's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub method: String,
    pub why_method: String,
    pub proven: bool,
    /// What still differed after the rollback (schema lines, tables whose contents differ).
    pub remaining: Vec<String>,
    /// The migrations applied again after the rollback.
    pub reapplied: bool,
    /// The schema after re-applying equals the rehearsed post-migration schema.
    pub reapplied_same_schema: bool,
    pub error: Option<String>,
    pub seconds: f64,
}

/// Everything the rehearsal found.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub statements: Vec<StatementRun>,
    pub failure: Option<ApplyFailure>,
    pub applied: Vec<String>,
    pub apply_ms: f64,
    pub row_counts: Vec<data::RowCount>,
    pub violations: Vec<data::Violation>,
    pub checks: Vec<data::CheckResult>,
    pub tests: Option<data::TestRun>,
    pub fingerprint_before: String,
    pub fingerprint_after: Option<String>,
    pub differences: Vec<Difference>,
    pub rollback: Option<RollbackReport>,
}

impl Rehearsal {
    /// Rows of `table` before the migrations.
    pub fn rows_before(&self, table: &str) -> Option<i64> {
        self.row_counts
            .iter()
            .find(|c| c.table == table)
            .and_then(|c| c.before)
    }
}

type Log<'l> = dyn FnMut(Level, String, serde_json::Value) + 'l;

/// Rehearse on the sandbox at `url`. Errors are the sandbox's own failures (it could not be
/// reached or read); a failing migration is a finding, in [`Rehearsal::failure`].
pub async fn rehearse(
    url: &DbUrl,
    o: &Options<'_>,
    log: &mut Log<'_>,
) -> Result<Rehearsal, DbError> {
    let opts = ConnectOptions {
        connect_timeout: o.connect_timeout,
        settings: o.session.clone(),
    };
    let conn = connect(url, &opts).await?;
    let observer = connect(
        url,
        &ConnectOptions {
            connect_timeout: o.connect_timeout,
            settings: Vec::new(),
        },
    )
    .await?;
    let client = &conn.client;

    // 1. Before.
    let before_model = compare::introspect::introspect(client, &o.filter).await?;
    let fingerprint_before = before_model.fingerprint();
    let old_constraints = data::constraint_names(client, &o.filter).await?;
    let counts_before = data::row_counts(client, &o.filter).await?;
    let oids_before = data::table_oids(client, &o.filter).await?;
    log(
        Level::Info,
        format!(
            "sandbox before: {} tables, {} rows, fingerprint {}",
            counts_before.len(),
            counts_before.values().sum::<i64>(),
            short(&fingerprint_before)
        ),
        json!({"fingerprint": fingerprint_before, "tables": counts_before.len()}),
    );

    // 2. What a rollback needs.
    let pending: Vec<&Migration> = o.work.iter().map(|w| w.migration).collect();
    let rb_inputs = crate::rollback::Inputs {
        url,
        tools: &o.tools,
        pending: &pending,
        state: o.state,
        filter: &o.filter,
        work_dir: &o.work_dir,
    };
    let prepared = crate::rollback::prepare(&rb_inputs).await;
    if let Err(e) = &prepared {
        log(
            Level::Warn,
            format!("the rollback cannot be prepared: {e}"),
            json!({}),
        );
    }

    // 3. Apply, measured.
    state::bootstrap(client).await?;
    // OID -> name before the migrations: what a lock is reported under, whatever renames come.
    let existing: BTreeMap<u32, String> = crate::db::measure::relations(client)
        .await
        .map_err(|e| DbError::query("listing relations", &e))?
        .into_iter()
        .map(|(oid, r)| (oid, r.name))
        .collect();
    let probe = Probe {
        observer: &observer.client,
        every: Duration::from_millis(2),
    };
    let mut runs: Vec<StatementRun> = Vec::new();
    let started = Instant::now();
    let outcome = {
        let mut on_event = |e: Event<'_>| on_apply_event(&mut runs, o.work, &existing, e, log);
        apply::apply_probed(
            client,
            Some(probe),
            o.state,
            o.work,
            &o.apply,
            &mut on_event,
        )
        .await
    };
    let apply_ms = started.elapsed().as_secs_f64() * 1000.0;
    for r in &mut runs {
        for l in &mut r.locks {
            l.table_rows = counts_before.get(&l.relation).copied();
        }
    }
    let (applied, failure) = match outcome {
        Ok(rep) => (rep.applied, None),
        Err(f) => (f.committed.clone(), Some(*f)),
    };
    let mut rehearsal = Rehearsal {
        statements: runs,
        failure,
        applied,
        apply_ms,
        row_counts: Vec::new(),
        violations: Vec::new(),
        checks: Vec::new(),
        tests: None,
        fingerprint_before,
        fingerprint_after: None,
        differences: Vec::new(),
        rollback: None,
    };
    if let Some(f) = &rehearsal.failure {
        log(
            Level::Error,
            format!("rehearsal stopped: {f}"),
            serde_json::to_value(f).unwrap_or_default(),
        );
        return Ok(rehearsal);
    }

    // 4. Data.
    let counts_after = data::row_counts(client, &o.filter).await?;
    let removers: BTreeSet<String> = pending
        .iter()
        .flat_map(|m| m.statements.iter())
        .flat_map(|s| data::row_removers(&s.sql))
        .collect();
    let renamed = data::renamed_tables(&oids_before, &data::table_oids(client, &o.filter).await?);
    rehearsal.row_counts = data::join_counts(&counts_before, &counts_after, &removers, &renamed);
    rehearsal.violations = data::violations(client, &o.filter, &old_constraints).await?;
    for (file, shown) in &o.checks {
        let r = data::run_check(client, file, shown).await;
        log(
            if r.passed { Level::Info } else { Level::Error },
            format!(
                "check {shown}: {}",
                if r.passed {
                    "passed".to_string()
                } else if let Some(e) = &r.error {
                    format!("failed: {e}")
                } else {
                    format!("returned {} row(s)", r.row_count)
                }
            ),
            json!({"check": shown, "passed": r.passed, "rows": r.row_count}),
        );
        rehearsal.checks.push(r);
    }
    if let Some(cmd) = &o.test_cmd {
        log(
            Level::Info,
            format!("running the tests: {cmd}"),
            json!({"command": cmd}),
        );
        let vars: Vec<(String, String)> = o
            .url_vars
            .iter()
            .map(|v| (v.clone(), url.expose()))
            .collect();
        let secrets: Vec<String> = url
            .password
            .iter()
            .flat_map(|p| {
                [
                    p.expose().to_string(),
                    crate::db::url::percent_encode(p.expose()),
                ]
            })
            .collect();
        let t = data::run_tests(cmd, &o.project_dir, &vars, &secrets, o.test_timeout).await;
        log(
            if t.passed { Level::Info } else { Level::Error },
            format!(
                "tests {} (exit {}, {:.1}s)",
                if t.passed { "passed" } else { "failed" },
                t.exit_code.map_or("none".to_string(), |c| c.to_string()),
                t.seconds
            ),
            json!({"command": cmd, "exit_code": t.exit_code, "passed": t.passed}),
        );
        rehearsal.tests = Some(t);
    }

    // 5. Schema after.
    let after_model = compare::introspect::introspect(client, &o.filter).await?;
    let fingerprint_after = after_model.fingerprint();
    // Both models are of this sandbox: the same oid (attnum) is the same table (column).
    let renames = compare::renames::Renames::by_identity(&after_model, &before_model);
    let mut diffs = compare::diff::diff_with(&after_model, &before_model, &renames);
    o.breaking.apply(&mut diffs);
    compare::sort(&mut diffs);
    log(
        Level::Info,
        format!(
            "schema after: {} difference(s), {} breaking, fingerprint {}",
            diffs.len(),
            diffs.iter().filter(|d| d.breaking).count(),
            short(&fingerprint_after)
        ),
        json!({"fingerprint": fingerprint_after, "differences": diffs.len()}),
    );
    rehearsal.fingerprint_after = Some(fingerprint_after.clone());
    rehearsal.differences = diffs;
    drop(observer);

    // 6. The rollback, proven, then the migrations again.
    let rb_started = Instant::now();
    let mut rb = match &prepared {
        Err(e) => RollbackReport {
            method: "none".into(),
            why_method: String::new(),
            proven: false,
            remaining: Vec::new(),
            reapplied: false,
            reapplied_same_schema: false,
            error: Some(format!("preparing it failed: {e}")),
            seconds: 0.0,
        },
        Ok(p) => {
            let mut rb = RollbackReport {
                method: p.method.as_str().to_string(),
                why_method: p.why.clone(),
                proven: false,
                remaining: Vec::new(),
                reapplied: false,
                reapplied_same_schema: false,
                error: None,
                seconds: 0.0,
            };
            match crate::rollback::roll_back(&rb_inputs, p).await {
                Err(e) => rb.error = Some(e.to_string()),
                Ok(_) => match crate::rollback::prove(&rb_inputs, p).await {
                    Err(e) => rb.error = Some(format!("proving it failed: {e}")),
                    Ok(proof) => {
                        rb.proven = proof.proven;
                        rb.remaining = proof.remaining();
                    }
                },
            }
            rb
        }
    };
    if rb.proven {
        let mut ignore = |_e: Event<'_>| {};
        let again = apply::apply(client, o.state, o.work, &o.apply, &mut ignore).await;
        match again {
            Err(f) => {
                rb.error = Some(format!(
                    "the migrations did not apply again after the rollback: {f}"
                ))
            }
            Ok(_) => {
                rb.reapplied = true;
                let m = compare::introspect::introspect(client, &o.filter).await?;
                rb.reapplied_same_schema = m.fingerprint() == fingerprint_after;
                if !rb.reapplied_same_schema {
                    let d = compare::diff::diff(&m, &after_model);
                    rb.remaining.extend(
                        d.into_iter()
                            .map(|d| format!("after re-applying: {}", d.line)),
                    );
                }
            }
        }
    }
    rb.seconds = rb_started.elapsed().as_secs_f64();
    log(
        if rb.proven && rb.reapplied_same_schema {
            Level::Info
        } else {
            Level::Error
        },
        format!(
            "rollback ({}): {}",
            rb.method,
            if rb.proven && rb.reapplied_same_schema {
                "proven, and the migrations re-apply".to_string()
            } else if let Some(e) = &rb.error {
                format!("not proven: {e}")
            } else {
                format!("not proven: {}", rb.remaining.join("; "))
            }
        ),
        serde_json::to_value(&rb).unwrap_or_default(),
    );
    rehearsal.rollback = Some(rb);
    Ok(rehearsal)
}

fn on_apply_event(
    runs: &mut Vec<StatementRun>,
    work: &[Work<'_>],
    names_before: &BTreeMap<u32, String>,
    e: Event<'_>,
    log: &mut Log<'_>,
) {
    match e {
        Event::Interrupted { .. } => {}
        Event::Measured {
            migration,
            index,
            line,
            started,
            duration,
            alone,
            measurement,
        } => {
            let sql = work
                .iter()
                .find(|w| w.migration.name == migration)
                .and_then(|w| w.migration.statements.get(index - 1))
                .map(|s| s.sql.trim().to_string())
                .unwrap_or_default();
            let mut run = statement_run(
                migration,
                index,
                line,
                &sql,
                started,
                duration,
                alone,
                measurement,
                names_before,
            );
            attribute_held(runs, &mut run);
            log(
                Level::Debug,
                format!(
                    "{migration} statement {index}: {:.1} ms{}{}",
                    run.duration_ms,
                    if run.locks.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", locks {}",
                            run.locks
                                .iter()
                                .map(|l| format!("{} on {}", l.mode, l.relation))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                    if run.rewritten.is_empty() {
                        String::new()
                    } else {
                        format!(", rewrote {}", run.rewritten.join(", "))
                    }
                ),
                json!({"migration": migration, "statement": index, "line": line, "duration_ms": run.duration_ms,
                       "rows": run.rows, "locks": run.locks, "rewritten": run.rewritten, "outside_transaction": alone}),
            );
            runs.push(run);
        }
        Event::Committed { .. } => {
            let now = Instant::now();
            for r in runs.iter_mut().filter(|r| !r.alone && !r.rolled_back) {
                if let Some(s) = r.started.take() {
                    for l in &mut r.locks {
                        let from = l.since.unwrap_or(s);
                        l.held_ms = Some(now.duration_since(from).as_secs_f64() * 1000.0);
                    }
                }
            }
        }
        Event::RolledBack => {
            for r in runs.iter_mut().filter(|r| r.started.is_some() && !r.alone) {
                r.rolled_back = true;
                r.started = None;
            }
        }
        Event::LockTimeout {
            migration, index, ..
        } => {
            // The transaction is retried: what it measured before is void.
            runs.retain(|r| !r.rolled_back);
            log(
                Level::Warn,
                format!("{migration} statement {index}: lock timeout in the sandbox; retrying"),
                json!({"migration": migration, "statement": index}),
            );
        }
        Event::MigrationApplied { name, duration } => log(
            Level::Info,
            format!(
                "rehearsed {name} ({})",
                crate::util::format_duration(duration)
            ),
            json!({"migration": name, "duration_ms": duration.as_millis() as u64}),
        ),
        Event::InvalidIndexDropped { index } => log(
            Level::Warn,
            format!("dropped invalid index {index} left by a failed concurrent build"),
            json!({"index": index}),
        ),
        Event::MigrationStarted { .. } | Event::StatementDone { .. } => {}
    }
}

/// The statement as measured. Locks are kept on relations that existed before the migrations
/// (`names_before`, by OID; what the migrations created is nobody else's concern) and named as
/// they were then; rewritten tables too, when they existed.
#[allow(clippy::too_many_arguments)]
fn statement_run(
    migration: &str,
    index: usize,
    line: u32,
    sql: &str,
    started: Instant,
    duration: Duration,
    alone: bool,
    m: &Measurement,
    names_before: &BTreeMap<u32, String>,
) -> StatementRun {
    let ms = duration.as_secs_f64() * 1000.0;
    StatementRun {
        migration: migration.to_string(),
        statement: index,
        line,
        sql: sql.to_string(),
        duration_ms: ms,
        alone,
        rows: m.rows,
        locks: m
            .locks
            .iter()
            .filter_map(|l| {
                let before = names_before.get(&l.oid)?;
                Some(HeldLock {
                    mode: l.mode_words(),
                    relation: before.clone(),
                    named: (*before != l.relation).then(|| l.relation.clone()),
                    held_before: l.held_before,
                    held_since: None,
                    held_ms: alone.then_some(ms),
                    table_rows: None,
                    raw: l.clone(),
                    since: None,
                })
            })
            .collect(),
        rewritten: m
            .rewritten
            .iter()
            .map(|r| names_before.get(&r.oid).unwrap_or(&r.relation).clone())
            .collect(),
        sampled: m.sampled,
        rolled_back: false,
        started: (!alone).then_some(started),
    }
}

/// A lock `run` needed and its transaction held already dates from the earlier statement of
/// the transaction that took it: it is held from that statement's start.
fn attribute_held(runs: &[StatementRun], run: &mut StatementRun) {
    let in_txn: Vec<&StatementRun> = runs
        .iter()
        .filter(|r| r.started.is_some() && !r.alone && !r.rolled_back)
        .collect();
    for l in run.locks.iter_mut().filter(|l| l.raw.held_before) {
        let taker = in_txn.iter().find(|r| {
            r.locks
                .iter()
                .any(|x| !x.raw.held_before && x.raw.oid == l.raw.oid && x.raw.mode == l.raw.mode)
        });
        if let Some(t) = taker {
            l.held_since = Some(Since {
                migration: t.migration.clone(),
                statement: t.statement,
            });
            l.since = t.started;
        }
    }
}

fn short(fp: &str) -> &str {
    &fp[..fp.len().min(12)]
}

/// A lint finding as the rehearsal sharpened it.
#[derive(Debug, Clone, Serialize)]
pub struct Sharpened {
    #[serde(flatten)]
    pub finding: Finding,
    /// `raised` or `downgraded`, when the measurements changed its severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjusted: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_severity: Option<Severity>,
    /// What was measured that changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
    /// The rehearsal saw the change this finding warns about, and the breaking-change policy
    /// for it decides instead of the finding's severity (`breaking:column-removed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub governed_by: Option<String>,
}

/// Findings about a change the schema comparison reports as breaking: the policy for that
/// kind decides (`[policy.breaking]`), once, instead of the lint severity.
const GOVERNED: &[(&str, compare::Kind)] = &[
    ("DL01", compare::Kind::TableRemoved),
    ("DL02", compare::Kind::ColumnRemoved),
    ("BI01", compare::Kind::ColumnRenamed),
    ("BI02", compare::Kind::TableRenamed),
];

/// Tables with fewer rows than this are small: a lock or rewrite finding on them only is
/// downgraded.
pub const SMALL_TABLE_ROWS: i64 = 10_000;

/// Lock and rewrite findings (LK rules) meet the measurements of their statement: raised to
/// an error when the statement held ACCESS EXCLUSIVE on a non-empty table for longer than
/// `max_exclusive_lock_ms`; one step down when every table it locked or rewrote is small
/// and no lock was held that long. `files` maps a migration name to the name findings carry.
pub fn sharpen(
    findings: &[Finding],
    rehearsal: Option<&Rehearsal>,
    files: &BTreeMap<String, String>,
    policy: &Policy,
) -> Vec<Sharpened> {
    findings
        .iter()
        .map(|f| {
            let mut s = Sharpened {
                finding: f.clone(),
                adjusted: None,
                original_severity: None,
                measured: None,
                governed_by: None,
            };
            let Some(r) = rehearsal else {
                return s;
            };
            if let Some((_, kind)) = GOVERNED.iter().find(|(id, _)| *id == f.rule) {
                if r.differences.iter().any(|d| d.breaking && d.kind == *kind) {
                    s.governed_by = Some(format!("breaking:{}", kind.as_str()));
                }
                return s;
            }
            if !f.rule.starts_with("LK") {
                return s;
            }
            // The statement holding the finding: the last one of its file starting at or
            // before the finding's line.
            let Some(run) = r
                .statements
                .iter()
                .filter(|st| {
                    files.get(&st.migration).is_some_and(|n| *n == f.file) && st.line <= f.line
                })
                .max_by_key(|st| st.line)
            else {
                return s;
            };
            let long = run.locks.iter().find(|l| {
                l.raw.is_access_exclusive()
                    && l.table_rows.unwrap_or(0) > 0
                    && l.held_ms.unwrap_or(0.0) > policy.max_exclusive_lock_ms as f64
            });
            if let Some(l) = long {
                if f.severity != Severity::Error {
                    s.original_severity = Some(f.severity);
                    s.finding.severity = Severity::Error;
                    s.adjusted = Some("raised");
                }
                s.measured = Some(format!(
                    "held ACCESS EXCLUSIVE on {} ({} rows) for {:.0} ms in rehearsal{}",
                    l.relation,
                    l.table_rows.unwrap_or(0),
                    l.held_ms.unwrap_or(0.0),
                    l.held_since
                        .as_ref()
                        .map(|t| format!(
                            " (taken by {} statement {} in the same transaction)",
                            t.migration, t.statement
                        ))
                        .unwrap_or_default()
                ));
                return s;
            }
            let touched: Vec<(&str, i64)> = run
                .locks
                .iter()
                .map(|l| (l.relation.as_str(), l.table_rows.unwrap_or(0)))
                .chain(
                    run.rewritten
                        .iter()
                        .map(|t| (t.as_str(), r.rows_before(t).unwrap_or(0))),
                )
                .collect();
            if !touched.is_empty() && touched.iter().all(|(_, n)| *n < SMALL_TABLE_ROWS) {
                let lower = match f.severity {
                    Severity::Error => Severity::Warning,
                    _ => Severity::Info,
                };
                if lower != f.severity {
                    s.original_severity = Some(f.severity);
                    s.finding.severity = lower;
                    s.adjusted = Some("downgraded");
                }
                let mut seen = BTreeSet::new();
                let list: Vec<String> = touched
                    .iter()
                    .filter(|(t, _)| seen.insert(*t))
                    .map(|(t, n)| format!("{t} ({n} rows)"))
                    .collect();
                s.measured = Some(format!(
                    "{:.0} ms in rehearsal on small tables: {}",
                    run.duration_ms,
                    list.join(", ")
                ));
            }
            s
        })
        .collect()
}

/// The facts the decision looks at.
pub fn facts(
    r: Option<&Rehearsal>,
    lint: &[Sharpened],
    preflight_failure: Option<String>,
) -> Facts {
    let mut f = Facts {
        statement_failed: preflight_failure,
        ..Facts::default()
    };
    f.lint = lint
        .iter()
        .filter(|s| s.governed_by.is_none())
        .map(|s| {
            (
                s.finding.rule.to_string(),
                s.finding.severity,
                format!("{}:{}", s.finding.file, s.finding.line),
                s.finding.message.clone(),
            )
        })
        .collect();
    let Some(r) = r else {
        return f;
    };
    if let Some(fail) = &r.failure {
        f.statement_failed = Some(format!(
            "{} statement {} ({}:{}){}: {}",
            fail.migration,
            fail.statement,
            fail.file,
            fail.line,
            report::sqlstate_note(fail),
            fail.error
        ));
    }
    for c in r.checks.iter().filter(|c| !c.passed) {
        f.checks_failed.push(match &c.error {
            Some(e) => format!("check {} could not run: {e}", c.file),
            None => format!("check {} returned {} row(s)", c.file, c.row_count),
        });
    }
    if let Some(t) = r.tests.as_ref().filter(|t| !t.passed) {
        f.test_failed = Some(format!(
            "`{}` failed (exit {})",
            t.command,
            t.exit_code.map_or("none".to_string(), |c| c.to_string())
        ));
    }
    f.breaking = r
        .differences
        .iter()
        .filter(|d| d.breaking)
        .map(|d| (d.kind, d.object.clone(), d.line.clone()))
        .collect();
    for st in r.statements.iter().filter(|s| !s.rolled_back) {
        for l in st.locks.iter().filter(|l| l.raw.is_access_exclusive()) {
            if let (Some(rows), Some(held)) = (l.table_rows, l.held_ms) {
                if rows > 0 {
                    f.exclusive_locks.push(decide::LongLock {
                        migration: st.migration.clone(),
                        statement: st.statement,
                        relation: l.relation.clone(),
                        held_ms: held,
                        table_rows: rows,
                    });
                }
            }
        }
    }
    f.rows_lost = r
        .row_counts
        .iter()
        .filter(|c| c.unexplained_loss)
        .map(|c| {
            format!(
                "{}: {} -> {} rows",
                c.table,
                c.before.unwrap_or(0),
                c.after.unwrap_or(0)
            )
        })
        .collect();
    f.violations = r
        .violations
        .iter()
        .map(|v| {
            format!(
                "{} rejects {} existing row(s) ({}{})",
                v.constraint,
                v.rows,
                v.kind,
                if v.not_valid { ", NOT VALID" } else { "" }
            )
        })
        .collect();
    if r.failure.is_none() {
        f.rollback = Some(match &r.rollback {
            Some(rb) if rb.proven && rb.reapplied_same_schema => Ok(()),
            Some(rb) => Err(rb.error.clone().unwrap_or_else(|| rb.remaining.join("; "))),
            None => Err("it was not rehearsed".into()),
        });
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &'static str, severity: Severity, line: u32) -> Finding {
        Finding {
            rule,
            name: "x",
            severity,
            file: "migrations/002_x.sql".into(),
            line,
            column: 1,
            statement: String::new(),
            message: "m".into(),
            help: String::new(),
        }
    }

    fn run_with(line: u32, rel: &str, mode: &str, rows: i64, held: f64) -> StatementRun {
        StatementRun {
            migration: "002_x".into(),
            statement: 1,
            line,
            sql: String::new(),
            duration_ms: held / 2.0,
            alone: false,
            rows: None,
            locks: vec![HeldLock {
                mode: crate::db::measure::mode_words(mode),
                relation: rel.into(),
                named: None,
                held_before: false,
                held_since: None,
                held_ms: Some(held),
                table_rows: Some(rows),
                raw: Lock {
                    mode: mode.into(),
                    oid: 1,
                    relation: rel.into(),
                    held_before: false,
                },
                since: None,
            }],
            rewritten: Vec::new(),
            sampled: false,
            rolled_back: false,
            started: None,
        }
    }

    fn rehearsal(statements: Vec<StatementRun>, differences: Vec<Difference>) -> Rehearsal {
        Rehearsal {
            statements,
            failure: None,
            applied: Vec::new(),
            apply_ms: 0.0,
            row_counts: Vec::new(),
            violations: Vec::new(),
            checks: Vec::new(),
            tests: None,
            fingerprint_before: String::new(),
            fingerprint_after: None,
            differences,
            rollback: None,
        }
    }

    fn files() -> BTreeMap<String, String> {
        [("002_x".to_string(), "migrations/002_x.sql".to_string())].into()
    }

    #[test]
    fn lock_findings_follow_the_measurements() {
        let p = Policy::default();
        let r = rehearsal(
            vec![
                run_with(1, "public.small", "ShareLock", 3, 2.0),
                run_with(3, "public.big", "AccessExclusiveLock", 1_000_000, 4000.0),
                run_with(5, "public.mid", "ShareLock", 500_000, 300.0),
            ],
            Vec::new(),
        );
        let f = [
            finding("LK01", Severity::Error, 1),
            finding("LK05", Severity::Warning, 3),
            finding("LK01", Severity::Error, 5),
            finding("BI01", Severity::Warning, 1),
        ];
        let s = sharpen(&f, Some(&r), &files(), &p);
        assert_eq!(s[0].finding.severity, Severity::Warning);
        assert_eq!(s[0].adjusted, Some("downgraded"));
        assert_eq!(s[1].finding.severity, Severity::Error);
        assert_eq!(s[1].adjusted, Some("raised"));
        assert!(
            s[1].measured
                .as_deref()
                .unwrap()
                .contains("public.big (1000000 rows)")
        );
        assert_eq!(
            s[2].finding.severity,
            Severity::Error,
            "a big table keeps its finding"
        );
        assert_eq!(s[2].adjusted, None);
        assert_eq!(
            s[3].finding.severity,
            Severity::Warning,
            "only LK rules are sharpened"
        );
        // Without a rehearsal nothing changes.
        let none = sharpen(&f, None, &files(), &p);
        assert!(none.iter().all(|s| s.adjusted.is_none()));
    }

    #[test]
    fn drop_findings_are_governed_by_the_breaking_policy_when_the_change_happened() {
        let p = Policy::default();
        let diff = Difference::column_removed("public.orders.total");
        let f = [finding("DL02", Severity::Error, 1)];
        let with = sharpen(&f, Some(&rehearsal(Vec::new(), vec![diff])), &files(), &p);
        assert_eq!(
            with[0].governed_by.as_deref(),
            Some("breaking:column-removed")
        );
        let facts = facts(Some(&rehearsal(Vec::new(), Vec::new())), &with, None);
        assert!(
            facts.lint.is_empty(),
            "the breaking reason decides, not the lint one"
        );
        let without = sharpen(&f, Some(&rehearsal(Vec::new(), Vec::new())), &files(), &p);
        assert_eq!(
            without[0].governed_by, None,
            "no such change seen: the finding stands"
        );
    }

    fn lock(oid: u32, mode: &str, relation: &str, held_before: bool) -> Lock {
        Lock {
            mode: mode.into(),
            oid,
            relation: relation.into(),
            held_before,
        }
    }

    /// Feed measured statements `(migration, index, line, locks)` to the event handler as the
    /// engine does; `commit_after` lists the statements after which a transaction commits.
    fn replay(
        stmts: &[(&str, usize, u32, Vec<Lock>)],
        commit_after: &[usize],
        names_before: &BTreeMap<u32, String>,
    ) -> Vec<StatementRun> {
        let mut runs = Vec::new();
        let mut log = |_: Level, _: String, _: serde_json::Value| {};
        for (i, (migration, index, line, locks)) in stmts.iter().enumerate() {
            let m = Measurement {
                locks: locks.clone(),
                ..Measurement::default()
            };
            let started = Instant::now();
            std::thread::sleep(Duration::from_millis(3));
            let e = Event::Measured {
                migration,
                index: *index,
                line: *line,
                started,
                duration: started.elapsed(),
                alone: false,
                measurement: &m,
            };
            on_apply_event(&mut runs, &[], names_before, e, &mut log);
            if commit_after.contains(&i) {
                let e = Event::Committed {
                    migrations: Vec::new(),
                };
                on_apply_event(&mut runs, &[], names_before, e, &mut log);
            }
        }
        runs
    }

    #[test]
    fn locks_are_reported_under_the_name_before_the_migrations_and_held_since_their_taker() {
        let names: BTreeMap<u32, String> = [(1, "public.t".to_string())].into();
        let runs = replay(
            &[
                (
                    "002_x",
                    1,
                    1,
                    vec![lock(1, "AccessExclusiveLock", "public.t", false)],
                ),
                ("002_x", 2, 2, Vec::new()),
                (
                    "002_x",
                    3,
                    3,
                    vec![
                        lock(1, "AccessExclusiveLock", "public.u", true),
                        // Created by the migrations: nobody else's concern.
                        lock(7, "AccessExclusiveLock", "public.new", false),
                    ],
                ),
            ],
            &[2],
            &names,
        );
        let first = &runs[0].locks[0];
        let third = &runs[2].locks;
        assert_eq!(third.len(), 1, "{third:?}");
        assert_eq!(third[0].relation, "public.t");
        assert_eq!(third[0].named.as_deref(), Some("public.u"));
        assert!(third[0].held_before);
        assert_eq!(
            third[0].held_since,
            Some(Since {
                migration: "002_x".into(),
                statement: 1
            })
        );
        assert_eq!(first.named, None);
        // Held from the first statement's start: as long as the first statement's own lock.
        assert_eq!(third[0].held_ms, first.held_ms);
        assert!(third[0].held_ms.unwrap() > runs[2].duration_ms * 2.0);
    }

    #[test]
    fn a_lock_held_from_earlier_sharpens_like_a_lock_taken_anew() {
        // ADD COLUMN then SET NOT NULL (LK06 at line 2) on a small table, committed together
        // or apart: the finding is downgraded the same way.
        let names: BTreeMap<u32, String> = [(1, "public.small".to_string())].into();
        let ae = |held| lock(1, "AccessExclusiveLock", "public.small", held);
        let together = replay(
            &[
                ("002_x", 1, 1, vec![ae(false)]),
                ("002_x", 2, 2, vec![ae(true)]),
            ],
            &[1],
            &names,
        );
        let apart = replay(
            &[
                ("002_x", 1, 1, vec![ae(false)]),
                ("002_x", 2, 2, vec![ae(false)]),
            ],
            &[0, 1],
            &names,
        );
        let f = [finding("LK06", Severity::Error, 2)];
        let mut outcomes = Vec::new();
        for mut runs in [together, apart] {
            for l in runs.iter_mut().flat_map(|r| r.locks.iter_mut()) {
                l.table_rows = Some(40);
            }
            let s = sharpen(
                &f,
                Some(&rehearsal(runs, Vec::new())),
                &files(),
                &Policy::default(),
            );
            outcomes.push((s[0].finding.severity, s[0].adjusted));
        }
        assert_eq!(outcomes[0], (Severity::Warning, Some("downgraded")));
        assert_eq!(outcomes[0], outcomes[1]);
    }

    #[test]
    fn rename_findings_are_governed_by_the_rename_policies() {
        let p = Policy::default();
        let diffs = vec![
            Difference::table_renamed("public.a", "public.b"),
            Difference::column_renamed("public.b", "x", "y"),
        ];
        let f = [
            finding("BI02", Severity::Warning, 1),
            finding("BI01", Severity::Warning, 2),
        ];
        let s = sharpen(&f, Some(&rehearsal(Vec::new(), diffs)), &files(), &p);
        assert_eq!(s[0].governed_by.as_deref(), Some("breaking:table-renamed"));
        assert_eq!(s[1].governed_by.as_deref(), Some("breaking:column-renamed"));
    }
}
