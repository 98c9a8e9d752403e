//! The apply engine: runs migrations on one connection that already holds the migration lock.
//! `migrate` uses it now; rehearsal and deploy reuse it.
//!
//! - All pending migrations run in one transaction by default (drizzle's semantics), or one
//!   transaction each (`TxMode::PerMigration`).
//! - Statements PostgreSQL refuses inside a transaction run alone, in order, between committed
//!   transactional segments. A migration cut by such a step is recorded as `partial` (with the
//!   number of committed statements) in the same transaction as those statements, so a rerun
//!   resumes exactly where it stopped. After a failed concurrent index build, the invalid
//!   index it left is dropped before the failure is reported.
//! - Every statement runs under the session's `lock_timeout` (a startup option, so a
//!   migration's `RESET` cannot remove it). A lock timeout rolls the whole segment back, so
//!   pgship holds no lock while it backs off, and the segment is retried a bounded number of
//!   times with exponential backoff and jitter.
//! - A migration's state rows are written in the same transaction as its last statements,
//!   after its session settings (search_path, role, ...) are reset so they cannot leak into
//!   the next migration.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::blockers::Blocker;
use super::measure::{self, Measurement};
use super::state::{self, RecordRow, StateTable};
use super::{describe_db, plan::version_of};
use crate::source::{MigrationId, split};

mod settle;
mod steps;

/// How pending migrations are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxMode {
    All,
    PerMigration,
}

impl std::str::FromStr for TxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(TxMode::All),
            "per-migration" => Ok(TxMode::PerMigration),
            other => Err(format!(
                "unknown tx mode `{other}`: expected `all` or `per-migration`"
            )),
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub tx_mode: TxMode,
    pub lock_retries: u32,
    /// First backoff after a lock timeout; doubled each retry, with jitter.
    pub backoff: Duration,
    pub deployment_id: String,
    pub server_major: u32,
    /// What to assume of an interrupted statement the catalog cannot judge (see `settle`).
    pub resolve_running: Option<ResolveRunning>,
}

pub use settle::ResolveRunning;
pub use steps::{Op, Step, Work, steps};

/// What the engine reports while it works.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    MigrationStarted {
        name: &'a str,
        resume_at: usize,
    },
    StatementDone {
        migration: &'a str,
        index: usize,
        line: u32,
        duration: Duration,
        alone: bool,
    },
    LockTimeout {
        migration: &'a str,
        index: usize,
        attempt: u32,
        retries: u32,
        backoff: Duration,
        /// Who holds the lock it waited for (see [`super::blockers`]).
        blocked_by: &'a [Blocker],
    },
    Committed {
        migrations: Vec<String>,
    },
    InvalidIndexDropped {
        index: String,
    },
    /// Statement `index` was running when an earlier run ended: `done` says whether it
    /// committed (it is then not run again), `why` how pgship knows.
    Interrupted {
        migration: &'a str,
        index: usize,
        done: bool,
        why: String,
    },
    MigrationApplied {
        name: &'a str,
        duration: Duration,
    },
    /// With a probe: what statement `index` of `migration` did. `started` is when it began;
    /// locks taken inside a transaction are held until the next `Committed` (or a rollback).
    Measured {
        migration: &'a str,
        index: usize,
        line: u32,
        started: Instant,
        duration: Duration,
        alone: bool,
        measurement: &'a Measurement,
    },
    /// The transaction was rolled back (before a retry, or on failure): measurements since
    /// the last `Committed` are void.
    RolledBack,
}

/// A second connection to the same database, for measuring (the rehearsal).
#[derive(Clone, Copy)]
pub struct Probe<'a> {
    pub observer: &'a Client,
    /// How often the observer samples `pg_locks` while a statement runs alone.
    pub every: Duration,
}

/// A successful run.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Names of the migrations applied, in order.
    pub applied: Vec<String>,
    pub duration: Duration,
}

/// Where and why the run failed, and what it left committed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyFailure {
    pub migration: String,
    pub file: String,
    /// 1-based statement number within the migration.
    pub statement: usize,
    pub line: u32,
    pub sqlstate: Option<String>,
    pub error: String,
    /// Migrations fully committed by this run.
    pub committed: Vec<String>,
    /// A migration left partially applied: its name and committed statement count.
    pub partial: Option<(String, usize)>,
    /// Migrations of this run that were not committed.
    pub not_committed: Vec<String>,
    /// Invalid indexes dropped after a failed concurrent build.
    pub dropped_invalid_indexes: Vec<String>,
    pub lock_timeout: bool,
    /// After a lock timeout: who held the lock (see [`super::blockers`]).
    pub blocked_by: Vec<Blocker>,
    /// The text of the failing statement (trimmed).
    pub sql: String,
}

impl std::fmt::Display for ApplyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "migration {} failed at statement {} ({}:{}): {}",
            self.migration, self.statement, self.file, self.line, self.error
        )?;
        if self.lock_timeout {
            write!(f, "\n  gave up waiting for a lock after every retry")?;
            for line in super::blockers::describe(&self.blocked_by, 5) {
                write!(f, "\n  {line}")?;
            }
        }
        for idx in &self.dropped_invalid_indexes {
            write!(
                f,
                "\n  dropped the invalid index {idx} the failed statement left"
            )?;
        }
        if self.committed.is_empty() && self.partial.is_none() {
            write!(f, "\n  nothing was committed")?;
        } else if !self.committed.is_empty() {
            write!(
                f,
                "\n  committed: {}",
                crate::util::fold_list(&self.committed, 5, 3)
            )?;
        }
        if let Some((name, done)) = &self.partial {
            write!(
                f,
                "\n  partially committed: {name} (statements 1-{done}); a rerun resumes at statement {}",
                done + 1
            )?;
        }
        if !self.not_committed.is_empty() {
            write!(
                f,
                "\n  not committed: {}",
                crate::util::fold_list(&self.not_committed, 5, 3)
            )?;
        }
        Ok(())
    }
}

/// Apply `work` on `client`, which must hold the migration lock.
pub async fn apply(
    client: &Client,
    table: &StateTable,
    work: &[Work<'_>],
    opts: &ApplyOptions,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<ApplyReport, Box<ApplyFailure>> {
    apply_probed(client, None, table, work, opts, on_event).await
}

/// [`apply`], measuring every statement with `probe` (see [`measure`]).
pub async fn apply_probed(
    client: &Client,
    probe: Option<Probe<'_>>,
    table: &StateTable,
    work: &[Work<'_>],
    opts: &ApplyOptions,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<ApplyReport, Box<ApplyFailure>> {
    let started = Instant::now();
    if let Some(f) = refused_control(work) {
        return Err(f);
    }
    let plan = steps(work, opts.tx_mode, opts.server_major);
    let pid = match probe {
        Some(_) => match client.query_one("SELECT pg_backend_pid()", &[]).await {
            Ok(r) => r.get::<_, i32>(0),
            Err(e) => {
                return Err(Box::new(ApplyFailure {
                    migration: work
                        .first()
                        .map(|w| w.migration.name.clone())
                        .unwrap_or_default(),
                    file: String::new(),
                    statement: 0,
                    line: 0,
                    sqlstate: e.code().map(|c| c.code().to_string()),
                    error: format!("reading the backend pid: {}", super::describe(&e)),
                    committed: Vec::new(),
                    partial: None,
                    not_committed: work.iter().map(|w| w.migration.name.clone()).collect(),
                    dropped_invalid_indexes: Vec::new(),
                    lock_timeout: false,
                    blocked_by: Vec::new(),
                    sql: String::new(),
                }));
            }
        },
        None => 0,
    };
    let mut run = Run {
        client,
        probe: probe.map(|p| (p, pid)),
        table,
        work,
        opts,
        durations: vec![Duration::ZERO; work.len()],
        recorded: vec![Duration::ZERO; work.len()],
        done: Vec::new(),
        partial: None,
        first_sent: first_sent(&plan, work.len()),
    };
    for step in &plan {
        match step {
            Step::Tx(ops) => run.transaction(ops, on_event).await?,
            Step::Alone(op) => run.alone(*op, on_event).await?,
        }
    }
    Ok(ApplyReport {
        applied: run.done,
        duration: started.elapsed(),
    })
}

struct Run<'a> {
    client: &'a Client,
    probe: Option<(Probe<'a>, i32)>,
    table: &'a StateTable,
    work: &'a [Work<'a>],
    opts: &'a ApplyOptions,
    durations: Vec<Duration>,
    /// Per work item, the part of `durations` already committed to its state row (each record
    /// adds what ran since the previous one, so a migration recorded in steps is not counted
    /// twice).
    recorded: Vec<Duration>,
    /// Migrations committed so far.
    done: Vec<String>,
    partial: Option<(String, usize)>,
    /// Per work item, the first statement the plan sends (transaction control never is).
    first_sent: Vec<Option<usize>>,
}

/// Per work item, the index of the first statement that `plan` sends.
fn first_sent(plan: &[Step], n: usize) -> Vec<Option<usize>> {
    let mut first = vec![None; n];
    let ops = plan.iter().flat_map(|s| match s {
        Step::Tx(ops) => ops.as_slice(),
        Step::Alone(op) => std::slice::from_ref(op),
    });
    for op in ops {
        if let Op::Statement { work, stmt } = *op {
            first[work].get_or_insert(stmt);
        }
    }
    first
}

/// A failure naming the first pending statement whose transaction control pgship refuses to
/// apply; checked before anything is sent.
fn refused_control(work: &[Work<'_>]) -> Option<Box<ApplyFailure>> {
    let (m, idx, stmt) = work.iter().find_map(|w| {
        let m = w.migration;
        let (idx, stmt) = m
            .statements
            .iter()
            .enumerate()
            .skip(w.start_at)
            .find(|(_, s)| matches!(s.control, Some(crate::source::TxControl::Refused(_))))?;
        Some((m, idx, stmt))
    })?;
    Some(Box::new(ApplyFailure {
        migration: m.name.clone(),
        file: m.path.display().to_string(),
        statement: idx + 1,
        line: stmt.line,
        sqlstate: None,
        error: m.control_refusal().unwrap_or_default(),
        committed: Vec::new(),
        partial: None,
        not_committed: work.iter().map(|w| w.migration.name.clone()).collect(),
        dropped_invalid_indexes: Vec::new(),
        lock_timeout: false,
        blocked_by: Vec::new(),
        sql: stmt.sql.trim().to_string(),
    }))
}

enum OpError {
    Statement {
        work: usize,
        stmt: usize,
        error: tokio_postgres::Error,
    },
    State {
        work: usize,
        error: tokio_postgres::Error,
    },
}

impl OpError {
    fn pg(&self) -> &tokio_postgres::Error {
        match self {
            OpError::Statement { error, .. } | OpError::State { error, .. } => error,
        }
    }

    fn is_lock_timeout(&self) -> bool {
        self.pg().code().is_some_and(|c| c.code() == "55P03")
    }
}

impl Run<'_> {
    async fn transaction(
        &mut self,
        ops: &[Op],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Box<ApplyFailure>> {
        let mut attempt = 0;
        loop {
            let saved = self.durations.clone();
            match self.try_transaction(ops, on_event).await {
                Ok(()) => break,
                Err(e) => {
                    let _ = self.client.batch_execute("ROLLBACK").await;
                    on_event(Event::RolledBack);
                    self.durations = saved;
                    let blocked_by = self.blocked_by(&e).await;
                    let at = match &e {
                        OpError::Statement { work, stmt, .. } => Some((*work, *stmt)),
                        OpError::State { .. } => None,
                    };
                    if self
                        .retry_after_lock_timeout(&e, &mut attempt, at, &blocked_by, on_event)
                        .await
                    {
                        continue;
                    }
                    let attempts_exhausted = e.is_lock_timeout();
                    let mut f = self.failure(e, ops, attempts_exhausted, Vec::new());
                    f.blocked_by = blocked_by;
                    return Err(f);
                }
            }
        }
        let mut committed = Vec::new();
        for op in ops {
            if let Op::Record { work, .. } | Op::Intent { work, .. } = op {
                self.recorded[*work] = self.durations[*work];
            }
        }
        for op in ops {
            match op {
                Op::Record {
                    work,
                    complete: true,
                    ..
                } => {
                    let name = self.work[*work].migration.name.clone();
                    on_event(Event::MigrationApplied {
                        name: &self.work[*work].migration.name,
                        duration: self.durations[*work],
                    });
                    committed.push(name.clone());
                    self.done.push(name);
                    if self
                        .partial
                        .as_ref()
                        .is_some_and(|(n, _)| *n == self.work[*work].migration.name)
                    {
                        self.partial = None;
                    }
                }
                Op::Record {
                    work,
                    complete: false,
                    done,
                }
                | Op::Intent { work, stmt: done }
                    if *done > 0 =>
                {
                    self.partial = Some((self.work[*work].migration.name.clone(), *done));
                }
                _ => {}
            }
        }
        if !committed.is_empty() {
            on_event(Event::Committed {
                migrations: committed,
            });
        }
        Ok(())
    }

    async fn try_transaction(
        &mut self,
        ops: &[Op],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), OpError> {
        let first_work = ops.iter().find_map(|op| match op {
            Op::Statement { work, .. } | Op::Record { work, .. } | Op::Intent { work, .. } => {
                Some(*work)
            }
            Op::Reset => None,
        });
        let begin = self.client.batch_execute("BEGIN").await;
        begin.map_err(|error| OpError::State {
            work: first_work.unwrap_or(0),
            error,
        })?;
        if let Some(ddl) = self.table.drizzle_ddl() {
            if ops
                .iter()
                .any(|op| matches!(op, Op::Record { complete: true, .. }))
            {
                self.client
                    .batch_execute(&ddl)
                    .await
                    .map_err(|error| OpError::State {
                        work: first_work.unwrap_or(0),
                        error,
                    })?;
            }
        }
        let mut i = 0;
        while i < ops.len() {
            // A reset and the record after it go in one pipeline (one round trip).
            if let (
                Op::Reset,
                Some(&Op::Record {
                    work,
                    complete,
                    done,
                }),
            ) = (ops[i], ops.get(i + 1))
            {
                let reset = self.client.batch_execute(RESET_SQL);
                let record = self.record(work, complete, done, None);
                let (reset, record) = tokio::join!(reset, record);
                reset.map_err(|error| OpError::State { work, error })?;
                record?;
                i += 2;
                continue;
            }
            self.run_op(ops[i], false, on_event).await?;
            i += 1;
        }
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|error| OpError::State {
                work: first_work.unwrap_or(0),
                error,
            })
    }

    async fn run_op(
        &mut self,
        op: Op,
        alone: bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), OpError> {
        match op {
            Op::Statement { work, stmt } => {
                let m = self.work[work].migration;
                let s = &m.statements[stmt];
                if self.first_sent[work] == Some(stmt) {
                    on_event(Event::MigrationStarted {
                        name: &m.name,
                        resume_at: stmt,
                    });
                }
                let t = Instant::now();
                match self.probe {
                    None => self
                        .client
                        .batch_execute(&s.sql)
                        .await
                        .map_err(|error| OpError::Statement { work, stmt, error })?,
                    Some((probe, pid)) => {
                        let m = self
                            .measured(probe, pid, &s.sql, alone)
                            .await
                            .map_err(|error| OpError::Statement { work, stmt, error })?;
                        on_event(Event::Measured {
                            migration: &self.work[work].migration.name,
                            index: stmt + 1,
                            line: s.line,
                            started: t,
                            duration: t.elapsed(),
                            alone,
                            measurement: &m,
                        });
                    }
                }
                let duration = t.elapsed();
                self.durations[work] += duration;
                on_event(Event::StatementDone {
                    migration: &m.name,
                    index: stmt + 1,
                    line: s.line,
                    duration,
                    alone,
                });
                Ok(())
            }
            Op::Reset => self
                .client
                .batch_execute(RESET_SQL)
                .await
                .map_err(|error| OpError::State { work: 0, error }),
            Op::Record {
                work,
                complete,
                done,
            } => self.record(work, complete, done, None).await,
            Op::Intent { work, stmt } => self.record(work, false, stmt, Some(stmt)).await,
        }
    }

    /// Write work item `work`'s state row (see [`state::write_record`]).
    async fn record(
        &self,
        work: usize,
        complete: bool,
        done: usize,
        running: Option<usize>,
    ) -> Result<(), OpError> {
        let m = self.work[work].migration;
        let version = version_of(m);
        let done_hash = m.prefix_hash(done);
        let created_at = match m.id {
            MigrationId::Drizzle { when } => Some(when),
            MigrationId::Sql { .. } => None,
        };
        let row = RecordRow {
            version: &version,
            name: &m.name,
            checksum: &m.checksum,
            created_at,
            complete,
            statements_done: done,
            statement_count: m.statements.len(),
            duration_ms: i64::try_from(
                self.durations[work]
                    .saturating_sub(self.recorded[work])
                    .as_millis(),
            )
            .unwrap_or(i64::MAX),
            deployment_id: &self.opts.deployment_id,
            done_hash: &done_hash,
            running,
        };
        state::write_record(self.client, self.table, &row)
            .await
            .map_err(|error| OpError::State { work, error })
    }

    /// Run one statement with the probe: snapshots of relations and own locks around it, or
    /// sampling from the observer when it runs alone.
    async fn measured(
        &self,
        probe: Probe<'_>,
        pid: i32,
        sql: &str,
        alone: bool,
    ) -> Result<Measurement, tokio_postgres::Error> {
        let before_rels = measure::relations(self.client).await?;
        if alone {
            let mut seen = std::collections::BTreeSet::new();
            let rows = {
                let exec = measure::execute_counting(self.client, sql);
                let sampler = measure::sample(probe.observer, pid, probe.every, &mut seen);
                tokio::pin!(exec);
                tokio::pin!(sampler);
                tokio::select! {
                    biased;
                    r = &mut exec => r?,
                    () = &mut sampler => unreachable!("the sampler loops until dropped"),
                }
            };
            let after_rels = measure::relations(self.client).await?;
            return Ok(measure::measurement(
                &before_rels,
                &after_rels,
                &Default::default(),
                &seen,
                &[],
                rows,
                true,
            ));
        }
        let before_locks = measure::locks(self.client, pid).await?;
        let needed = measure::needed(self.client, sql).await?;
        let rows = measure::execute_counting(self.client, sql).await?;
        let after_rels = measure::relations(self.client).await?;
        let after_locks = measure::locks(self.client, pid).await?;
        Ok(measure::measurement(
            &before_rels,
            &after_rels,
            &before_locks,
            &after_locks,
            &needed,
            rows,
            false,
        ))
    }

    async fn alone(
        &mut self,
        op: Op,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Box<ApplyFailure>> {
        let Op::Statement { work, stmt } = op else {
            return Ok(());
        };
        let sql = self.work[work].migration.statements[stmt].sql.clone();
        let w = self.work[work];
        if w.uncertain && stmt == w.start_at && self.settle(work, stmt, on_event).await? {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            let before = self.invalid_indexes().await.unwrap_or_default();
            self.drop_leftover_index(&sql, on_event).await;
            match self.run_op(op, true, on_event).await {
                Ok(()) => {
                    let left = self.new_invalid_indexes(&before).await;
                    if left.is_empty() {
                        return Ok(());
                    }
                    let dropped = self.drop_indexes(&left, on_event).await;
                    let failure = ApplyFailure {
                        error: format!("the statement left invalid index(es) {}", left.join(", ")),
                        sqlstate: None,
                        ..self.base_failure(work, stmt, dropped)
                    };
                    return Err(Box::new(failure));
                }
                Err(e) => {
                    let left = self.new_invalid_indexes(&before).await;
                    let dropped = self.drop_indexes(&left, on_event).await;
                    let blocked_by = self.blocked_by(&e).await;
                    if self
                        .retry_after_lock_timeout(
                            &e,
                            &mut attempt,
                            Some((work, stmt)),
                            &blocked_by,
                            on_event,
                        )
                        .await
                    {
                        continue;
                    }
                    let exhausted = e.is_lock_timeout();
                    // It failed, so it did not commit: the intent is cleared (best effort; a
                    // stale one only makes the next run check the catalog).
                    let _ = self.record(work, false, stmt, None).await;
                    let mut f = self.failure(e, &[op], exhausted, dropped);
                    f.blocked_by = blocked_by;
                    return Err(f);
                }
            }
        }
    }

    /// Judge statement `stmt`, interrupted by an earlier run: `true` when it committed.
    async fn settle(
        &self,
        work: usize,
        stmt: usize,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<bool, Box<ApplyFailure>> {
        use settle::Settled;
        let m = self.work[work].migration;
        let verdict = settle::settle(self.client, &m.statements[stmt].sql)
            .await
            .map_err(|e| self.failure(OpError::State { work, error: e }, &[], false, Vec::new()))?;
        let verdict = match (verdict, self.opts.resolve_running) {
            (Settled::Unknown(why), Some(ResolveRunning::Done)) => {
                Settled::Done(format!("{why}; --resolve-running done says it committed"))
            }
            (Settled::Unknown(why), Some(ResolveRunning::Rerun)) => {
                Settled::Rerun(format!("{why}; --resolve-running rerun runs it again"))
            }
            (v, _) => v,
        };
        let (done, why) = match verdict {
            Settled::Done(why) => (true, why),
            Settled::Rerun(why) => (false, why),
            Settled::Unknown(why) => {
                let s = &m.statements[stmt];
                return Err(Box::new(ApplyFailure {
                    error: format!(
                        "statement {} ({}:{}) was running outside a transaction when an earlier \
                         run ended, and {why}: check what it did, then run again with \
                         --resolve-running done (it committed) or --resolve-running rerun (run \
                         it again)",
                        stmt + 1,
                        m.path.display(),
                        s.line
                    ),
                    ..self.base_failure(work, stmt, Vec::new())
                }));
            }
        };
        on_event(Event::Interrupted {
            migration: &m.name,
            index: stmt + 1,
            done,
            why,
        });
        Ok(done)
    }

    async fn invalid_indexes(&self) -> Result<Vec<u32>, tokio_postgres::Error> {
        let rows = self
            .client
            .query("SELECT indexrelid FROM pg_index WHERE NOT indisvalid", &[])
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, u32>(0)).collect())
    }

    async fn new_invalid_indexes(&self, before: &[u32]) -> Vec<String> {
        let Ok(rows) = self
            .client
            .query(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid AND NOT (indexrelid = ANY($1))",
                &[&before],
            )
            .await
        else {
            return Vec::new();
        };
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// A concurrent build killed with pgship leaves an invalid index that the statement's own
    /// `IF NOT EXISTS` would then accept silently: drop it before building again.
    async fn drop_leftover_index(&self, sql: &str, on_event: &mut dyn FnMut(Event<'_>)) {
        let Some(name) = concurrent_index_name(sql) else {
            return;
        };
        let Ok(rows) = self
            .client
            .query(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid AND indexrelid = to_regclass($1)",
                &[&name],
            )
            .await
        else {
            return;
        };
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        self.drop_indexes(&names, on_event).await;
    }

    async fn drop_indexes(
        &self,
        names: &[String],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Vec<String> {
        let mut dropped = Vec::new();
        for name in names {
            // `name` is regclass output: already quoted and qualified as needed.
            if self
                .client
                .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                .await
                .is_ok()
            {
                on_event(Event::InvalidIndexDropped {
                    index: name.clone(),
                });
                dropped.push(name.clone());
            }
        }
        dropped
    }

    /// After a lock timeout with retries left: say so (naming statement `at` and who blocked
    /// it), wait the jittered backoff, and return `true` to retry. `false` for any other error
    /// or when the retries are spent.
    async fn retry_after_lock_timeout(
        &self,
        e: &OpError,
        attempt: &mut u32,
        at: Option<(usize, usize)>,
        blocked_by: &[Blocker],
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> bool {
        if !e.is_lock_timeout() || *attempt >= self.opts.lock_retries {
            return false;
        }
        *attempt += 1;
        let delay = backoff(self.opts.backoff, *attempt);
        if let Some((work, stmt)) = at {
            on_event(Event::LockTimeout {
                migration: &self.work[work].migration.name,
                index: stmt + 1,
                attempt: *attempt,
                retries: self.opts.lock_retries,
                backoff: delay,
                blocked_by,
            });
        }
        tokio::time::sleep(delay).await;
        true
    }

    /// Who holds the lock `e` gave up waiting for; nobody unless it is a lock timeout. Run
    /// after the failed transaction's ROLLBACK.
    async fn blocked_by(&self, e: &OpError) -> Vec<Blocker> {
        if !e.is_lock_timeout() {
            return Vec::new();
        }
        let sql = match e {
            OpError::Statement { work, stmt, .. } => {
                self.work[*work].migration.statements[*stmt].sql.as_str()
            }
            OpError::State { .. } => "",
        };
        super::blockers::after_timeout(self.client, sql, e.pg()).await
    }

    fn base_failure(&self, work: usize, stmt: usize, dropped: Vec<String>) -> ApplyFailure {
        let m = self.work[work].migration;
        let s = &m.statements[stmt];
        let mut not_committed: Vec<String> = Vec::new();
        let partial = self.partial.as_ref().map(|(name, _)| name);
        for w in self.work {
            if !self.done.contains(&w.migration.name)
                && partial != Some(&w.migration.name)
                && !not_committed.contains(&w.migration.name)
            {
                not_committed.push(w.migration.name.clone());
            }
        }
        ApplyFailure {
            migration: m.name.clone(),
            file: m.path.display().to_string(),
            statement: stmt + 1,
            line: s.line,
            sqlstate: None,
            error: String::new(),
            committed: self.done.clone(),
            partial: self.partial.clone(),
            not_committed,
            dropped_invalid_indexes: dropped,
            lock_timeout: false,
            blocked_by: Vec::new(),
            sql: s.sql.trim().to_string(),
        }
    }

    fn failure(
        &self,
        e: OpError,
        ops: &[Op],
        lock_timeout: bool,
        dropped: Vec<String>,
    ) -> Box<ApplyFailure> {
        let (work, stmt) = match &e {
            OpError::Statement { work, stmt, .. } => (*work, *stmt),
            OpError::State { work, .. } => {
                let last = ops.iter().rev().find_map(|op| match op {
                    Op::Statement { work: w, stmt } if w == work => Some(*stmt),
                    _ => None,
                });
                (*work, last.unwrap_or(0))
            }
        };
        let mut f = self.base_failure(work, stmt, dropped);
        f.lock_timeout = lock_timeout;
        let pg = e.pg();
        f.sqlstate = pg.code().map(|c| c.code().to_string());
        f.error = match pg.as_db_error() {
            Some(db) => describe_db(db),
            None => super::describe(pg),
        };
        if let (OpError::Statement { .. }, Some(db)) = (&e, pg.as_db_error()) {
            if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
                let m = self.work[work].migration;
                let s = &m.statements[stmt];
                let byte = s
                    .sql
                    .char_indices()
                    .nth((*pos as usize).saturating_sub(1))
                    .map_or(0, |(b, _)| b);
                f.line = split::line_at(&m.raw, s.offset + byte);
            }
        }
        if let OpError::State { .. } = e {
            f.error = format!("writing migration state: {}", f.error);
        }
        Box::new(f)
    }
}

/// Undoes the session settings a migration may have changed.
const RESET_SQL: &str = "RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL";

/// `base * 2^(attempt-1)`, capped at 30 s, scaled by a random factor in [0.5, 1.0).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(30));
    let r = u64::from_str_radix(&crate::util::random_hex(2), 16).unwrap_or(0) as f64 / 65536.0;
    exp.mul_f64(0.5 + r / 2.0)
}

/// The qualified, quoted name a `CREATE INDEX CONCURRENTLY` statement builds, if it names one.
fn concurrent_index_name(sql: &str) -> Option<String> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let stmt = parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?;
    let pg_query::NodeEnum::IndexStmt(idx) = stmt else {
        return None;
    };
    if !idx.concurrent || idx.idxname.is_empty() {
        return None;
    }
    let schema = idx
        .relation
        .as_ref()
        .map(|r| r.schemaname.as_str())
        .unwrap_or("");
    let name = super::quote_ident(&idx.idxname);
    Some(if schema.is_empty() {
        name
    } else {
        format!("{}.{name}", super::quote_ident(schema))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names() {
        assert_eq!(
            concurrent_index_name(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"i\" ON app.t (c)"
            )
            .as_deref(),
            Some("\"app\".\"i\"")
        );
        assert_eq!(
            concurrent_index_name("CREATE INDEX CONCURRENTLY ON t (c)"),
            None
        );
        assert_eq!(concurrent_index_name("CREATE INDEX i ON t (c)"), None);
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let b = Duration::from_millis(500);
        assert!(backoff(b, 1) >= Duration::from_millis(250) && backoff(b, 1) < b);
        assert!(backoff(b, 3) >= Duration::from_millis(1000));
        assert!(backoff(b, 30) <= Duration::from_secs(30));
    }
}
