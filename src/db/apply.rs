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

use super::measure::{self, Measurement};
use super::state::{self, RecordRow, StateTable};
use super::{describe_db, plan::version_of};
use crate::source::{Migration, MigrationId, split};

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
}

/// One migration to run, and how many of its statements are already committed.
#[derive(Debug, Clone, Copy)]
pub struct Work<'a> {
    pub migration: &'a Migration,
    pub start_at: usize,
}

/// One operation of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Run statement `stmt` of work item `work`.
    Statement { work: usize, stmt: usize },
    /// Reset session settings a migration may have changed.
    Reset,
    /// Write work item `work`'s state: complete, or partial with `done` statements committed.
    Record {
        work: usize,
        complete: bool,
        done: usize,
    },
}

/// A unit the engine runs: a transaction, or one statement alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Tx(Vec<Op>),
    Alone(Op),
}

/// Group work into steps. Pure, so the grouping is tested without a database.
pub fn steps(work: &[Work<'_>], mode: TxMode, server_major: u32) -> Vec<Step> {
    let mut out = Vec::new();
    let mut cur: Vec<Op> = Vec::new();
    for (wi, w) in work.iter().enumerate() {
        let stmts = &w.migration.statements;
        for si in w.start_at..stmts.len() {
            if stmts[si].tx.allows_transaction(server_major) {
                cur.push(Op::Statement { work: wi, stmt: si });
                continue;
            }
            if si > w.start_at
                && cur
                    .iter()
                    .any(|op| matches!(op, Op::Statement { work, .. } if *work == wi))
            {
                cur.push(Op::Reset);
                cur.push(Op::Record {
                    work: wi,
                    complete: false,
                    done: si,
                });
            }
            if !cur.is_empty() {
                out.push(Step::Tx(std::mem::take(&mut cur)));
            }
            out.push(Step::Alone(Op::Statement { work: wi, stmt: si }));
            if si + 1 < stmts.len() {
                cur.push(Op::Record {
                    work: wi,
                    complete: false,
                    done: si + 1,
                });
            }
        }
        cur.retain(|op| !matches!(op, Op::Record { work, complete: false, .. } if *work == wi));
        cur.push(Op::Reset);
        cur.push(Op::Record {
            work: wi,
            complete: true,
            done: stmts.len(),
        });
        if mode == TxMode::PerMigration {
            out.push(Step::Tx(std::mem::take(&mut cur)));
        }
    }
    if !cur.is_empty() {
        out.push(Step::Tx(cur));
    }
    out
}

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
    },
    Committed {
        migrations: Vec<String>,
    },
    InvalidIndexDropped {
        index: String,
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
            write!(f, "\n  committed: {}", self.committed.join(", "))?;
        }
        if let Some((name, done)) = &self.partial {
            write!(
                f,
                "\n  partially committed: {name} (statements 1-{done}); a rerun resumes at statement {}",
                done + 1
            )?;
        }
        if !self.not_committed.is_empty() {
            write!(f, "\n  not committed: {}", self.not_committed.join(", "))?;
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
        done: Vec::new(),
        partial: None,
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
    /// Migrations committed so far.
    done: Vec<String>,
    partial: Option<(String, usize)>,
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
                    if e.is_lock_timeout() && attempt < self.opts.lock_retries {
                        attempt += 1;
                        let delay = backoff(self.opts.backoff, attempt);
                        if let OpError::Statement { work, stmt, .. } = &e {
                            on_event(Event::LockTimeout {
                                migration: &self.work[*work].migration.name,
                                index: stmt + 1,
                                attempt,
                                retries: self.opts.lock_retries,
                                backoff: delay,
                            });
                        }
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let attempts_exhausted = e.is_lock_timeout();
                    return Err(self.failure(e, ops, attempts_exhausted, Vec::new()));
                }
            }
        }
        let mut committed = Vec::new();
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
                } => {
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
            Op::Statement { work, .. } | Op::Record { work, .. } => Some(*work),
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
        for op in ops {
            self.run_op(*op, false, on_event).await?;
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
                if stmt == self.work[work].start_at {
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
                .batch_execute("RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL")
                .await
                .map_err(|error| OpError::State { work: 0, error }),
            Op::Record {
                work,
                complete,
                done,
            } => {
                let m = self.work[work].migration;
                let version = version_of(m);
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
                    duration_ms: i64::try_from(self.durations[work].as_millis())
                        .unwrap_or(i64::MAX),
                    deployment_id: &self.opts.deployment_id,
                };
                state::write_record(self.client, self.table, &row)
                    .await
                    .map_err(|error| OpError::State { work, error })
            }
        }
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
                    if e.is_lock_timeout() && attempt < self.opts.lock_retries {
                        attempt += 1;
                        let delay = backoff(self.opts.backoff, attempt);
                        on_event(Event::LockTimeout {
                            migration: &self.work[work].migration.name,
                            index: stmt + 1,
                            attempt,
                            retries: self.opts.lock_retries,
                            backoff: delay,
                        });
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let exhausted = e.is_lock_timeout();
                    let mut f = self.failure(e, &[op], exhausted, dropped);
                    if stmt > 0 || self.work[work].start_at > 0 {
                        f.partial = Some((self.work[work].migration.name.clone(), stmt));
                    }
                    return Err(f);
                }
            }
        }
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

    fn base_failure(&self, work: usize, stmt: usize, dropped: Vec<String>) -> ApplyFailure {
        let m = self.work[work].migration;
        let s = &m.statements[stmt];
        let mut not_committed: Vec<String> = Vec::new();
        for w in self.work {
            if !self.done.contains(&w.migration.name) && !not_committed.contains(&w.migration.name)
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
                let text = String::from_utf8_lossy(&m.raw);
                f.line = split::line_at(&text, s.offset + byte);
            }
        }
        if let OpError::State { .. } = e {
            f.error = format!("writing migration state: {}", f.error);
        }
        Box::new(f)
    }
}

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
    use crate::source::{Statement, TxRequirement};
    use std::path::PathBuf;

    fn mig(name: &str, txs: &[TxRequirement]) -> Migration {
        Migration {
            name: name.into(),
            order: 0,
            id: MigrationId::Sql {
                version: "1".into(),
            },
            checksum: "h".into(),
            raw: Vec::new(),
            path: PathBuf::from(name),
            statements: txs
                .iter()
                .map(|t| Statement {
                    sql: "SELECT 1".into(),
                    offset: 0,
                    line: 1,
                    tx: *t,
                })
                .collect(),
            down: None,
        }
    }

    use Op::{Record, Reset, Statement as S};
    use TxRequirement::{Any, NoTransaction, NoTransactionBeforePg12};

    #[test]
    fn all_in_one_transaction() {
        let a = mig("a", &[Any, Any]);
        let b = mig("b", &[Any]);
        let w = [
            Work {
                migration: &a,
                start_at: 0,
            },
            Work {
                migration: &b,
                start_at: 0,
            },
        ];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![Step::Tx(vec![
                S { work: 0, stmt: 0 },
                S { work: 0, stmt: 1 },
                Reset,
                Record {
                    work: 0,
                    complete: true,
                    done: 2
                },
                S { work: 1, stmt: 0 },
                Reset,
                Record {
                    work: 1,
                    complete: true,
                    done: 1
                },
            ])]
        );
        let per = steps(&w, TxMode::PerMigration, 15);
        assert_eq!(per.len(), 2);
    }

    #[test]
    fn concurrent_statement_runs_alone_between_segments() {
        let a = mig("a", &[Any]);
        let b = mig("b", &[Any, NoTransaction, Any]);
        let w = [
            Work {
                migration: &a,
                start_at: 0,
            },
            Work {
                migration: &b,
                start_at: 0,
            },
        ];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![
                Step::Tx(vec![
                    S { work: 0, stmt: 0 },
                    Reset,
                    Record {
                        work: 0,
                        complete: true,
                        done: 1
                    },
                    S { work: 1, stmt: 0 },
                    Reset,
                    Record {
                        work: 1,
                        complete: false,
                        done: 1
                    },
                ]),
                Step::Alone(S { work: 1, stmt: 1 }),
                Step::Tx(vec![
                    S { work: 1, stmt: 2 },
                    Reset,
                    Record {
                        work: 1,
                        complete: true,
                        done: 3
                    },
                ]),
            ]
        );
    }

    #[test]
    fn migration_ending_with_concurrent_statement() {
        let a = mig("a", &[NoTransaction]);
        let w = [Work {
            migration: &a,
            start_at: 0,
        }];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![
                Step::Alone(S { work: 0, stmt: 0 }),
                Step::Tx(vec![
                    Reset,
                    Record {
                        work: 0,
                        complete: true,
                        done: 1
                    }
                ])
            ]
        );
    }

    #[test]
    fn resume_and_enum_before_pg12() {
        let a = mig("a", &[Any, NoTransactionBeforePg12, Any]);
        let w = [Work {
            migration: &a,
            start_at: 1,
        }];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![Step::Tx(vec![
                S { work: 0, stmt: 1 },
                S { work: 0, stmt: 2 },
                Reset,
                Record {
                    work: 0,
                    complete: true,
                    done: 3
                }
            ])]
        );
        assert_eq!(
            steps(&w, TxMode::All, 11)[0],
            Step::Alone(S { work: 0, stmt: 1 })
        );
    }

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
