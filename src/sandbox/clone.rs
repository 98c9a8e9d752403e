//! The clone engine: copy a target database into an existing, empty database (the sandbox) by
//! streaming `pg_dump -Fc -Z0 | pg_restore`, with no dump file unless one is asked for.
//!
//! How, and why:
//! - **One snapshot.** pgship opens a `REPEATABLE READ READ ONLY` transaction on the source,
//!   exports its snapshot and hands it to every `pg_dump` run (`--snapshot`), so the schema,
//!   the data and the indexes come from the same instant.
//! - **Schema and data in one stream, in one transaction.** `pg_dump --section=pre-data
//!   --section=data` flows into `pg_restore --single-transaction` through pgship, which moves
//!   pages from pipe to pipe with splice(2) and counts them (a copy loop with a 256 KiB buffer
//!   when it also writes `clone.dump`): copying through pgship's memory cost as much CPU as
//!   `pg_restore` itself. A table created and filled in one transaction skips WAL on a
//!   `wal_level=minimal` cluster (the throwaway local cluster): 10-15 % less CPU for the
//!   destination's COPY, the bottleneck. Schemas with more relations than the destination's
//!   lock table holds are restored without `-1`.
//! - **Indexes and constraints last, in parallel.** The post-data section (indexes, primary
//!   keys, unique and foreign keys, triggers, matview refreshes) is dumped at the start into a
//!   small schema-only archive in a private temp folder and restored after the data by
//!   `pg_restore -j <jobs>`, whose scheduler runs foreign keys after the indexes they need.
//! - **Several data streams** (each `pg_dump --section=data -t ...`, tables balanced by size)
//!   only with four or more cores: a stream keeps about two cores busy (the source's COPY and
//!   the destination's), and separate streams lose the WAL skip.
//! - **The schema matches the target's, grants included.** Roles that own objects or hold
//!   grants are created (`NOLOGIN`) in a throwaway destination when the caller allows it
//!   ([`CloneOptions::create_missing_roles`]); otherwise missing roles are an error naming them.
//!   Owners are kept when the destination user is a superuser. Extensions are created at the
//!   source's versions first where the destination offers them, so a newer major gives the
//!   same extension versions.
//!
//! What it must never do: write to the source (pgship's session and `pg_dump`'s are read-only);
//! queue behind the application's locks (`--lock-wait-timeout` on `pg_dump`, `lock_timeout` on
//! pgship's own session); put a password on a command line (a 0600 passfile in a 0700 folder,
//! removed afterwards; children get a password-less URL); hold a dump in memory.

mod dest;
mod plan;
pub(crate) mod private;
mod proc;
mod pump;
mod source;
mod stderr;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::db::tools::BinDir;
use crate::db::{ConnectOptions, DbError, DbUrl, connect};

use plan::{Plan, check_tools};
use private::PrivateDir;
use proc::{Failure, Pipeline, Tools};

/// What to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// Schema and rows.
    Full,
    /// The schema only: no rows, sequences at their start values.
    Schema,
}

/// How to clone.
#[derive(Debug, Clone)]
pub struct CloneOptions {
    pub data: DataMode,
    /// Parallel jobs for indexes and constraints (and data streams with four or more).
    pub jobs: usize,
    /// How long `pg_dump` waits for a table lock on the source before the clone gives up.
    pub lock_wait_timeout: Duration,
    /// Also write the dump to this file (`clone.dump`; mode 0600, never overwriting).
    pub keep_dump: Option<PathBuf>,
    /// `pg_dump`/`pg_restore` to use: major >= the source's and <= the destination's.
    pub tools: BinDir,
    /// Create roles the source's owners and grants reference but the destination lacks, as
    /// `NOLOGIN` roles. For throwaway clusters only: roles are cluster-wide and outlive the
    /// sandbox database.
    pub create_missing_roles: bool,
}

impl CloneOptions {
    /// Defaults: full data, one job per core, 5 s lock wait, no dump file, no role creation.
    pub fn new(tools: BinDir) -> CloneOptions {
        CloneOptions {
            data: DataMode::Full,
            jobs: default_jobs(),
            lock_wait_timeout: Duration::from_secs(5),
            keep_dump: None,
            tools,
            create_missing_roles: false,
        }
    }
}

/// The number of cores pgship may use.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What a clone did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CloneReport {
    /// Tables created in the destination.
    pub tables: usize,
    /// Bytes of dump streamed through pgship.
    pub bytes: u64,
    pub seconds: f64,
    /// Each step and its seconds.
    pub steps: Vec<(String, f64)>,
    /// Roles created in the destination because the source references them.
    pub roles_created: Vec<String>,
    /// Things the caller should know (e.g. an extension at another version than the source's).
    pub warnings: Vec<String>,
}

impl CloneReport {
    /// One line for logs and non-terminal output.
    pub fn summary(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(s, t)| format!("{s} {t:.1}s"))
            .collect();
        format!(
            "cloned {} tables ({}) in {:.1}s: {}",
            self.tables,
            human_bytes(self.bytes),
            self.seconds,
            steps.join(", ")
        )
    }
}

/// The phase a progress report belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    Prepare,
    /// Schema, and rows unless several data streams run separately.
    SchemaAndData,
    Schema,
    Data,
    /// Indexes, constraints, triggers.
    PostData,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::SchemaAndData => "schema and data",
            Phase::Schema => "schema",
            Phase::Data => "data",
            Phase::PostData => "indexes and constraints",
        }
    }
}

/// Progress, reported at the start, about four times a second while it changes, and at the
/// end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub tables_done: usize,
    /// Tables with rows to copy.
    pub tables_total: usize,
    pub bytes: u64,
    /// The source's table sizes: a rough guide, not the dump's size.
    pub bytes_estimate: u64,
    /// The table being copied.
    pub table: Option<String>,
}

impl Progress {
    /// `data: 3/4 tables, 312.5 MiB of ~640.0 MiB (public.accounts)`.
    pub fn line(&self) -> String {
        let mut s = format!("{}: ", self.phase.label());
        match self.phase {
            Phase::Prepare | Phase::Schema | Phase::PostData => {
                s.truncate(s.len() - 2);
                return s;
            }
            Phase::SchemaAndData | Phase::Data => {}
        }
        s.push_str(&format!(
            "{}/{} tables, {}",
            self.tables_done,
            self.tables_total,
            human_bytes(self.bytes)
        ));
        if self.bytes_estimate > 0 {
            s.push_str(&format!(" of ~{}", human_bytes(self.bytes_estimate)));
        }
        if let Some(t) = &self.table {
            s.push_str(&format!(" ({t})"));
        }
        s
    }
}

/// `512 B`, `1.5 KiB`, `312.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Why a clone failed. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Tools(String),
    #[error("refusing to clone {0} onto itself")]
    SameDatabase(String),
    #[error("the destination {dest} is not empty: it has {relations} tables, views or sequences")]
    NotEmpty { dest: String, relations: i64 },
    #[error(
        "the destination server lacks roles that own objects or hold grants in the source: {}",
        roles.join(", ")
    )]
    MissingRoles { roles: Vec<String> },
    #[error(
        "{what} is locked by another session on the source: the clone gave up after {} instead of queueing behind the application's locks{}",
        crate::util::format_duration(*timeout),
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Locked {
        what: String,
        holder: Option<String>,
        timeout: Duration,
    },
    #[error("{step} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") })]
    Step {
        step: String,
        status: String,
        stderr: String,
    },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl CloneError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CloneError::Db(e) => e.hint(),
            CloneError::Locked { .. } => Some(
                "retry when the application's migration or maintenance is done, or raise --lock-wait-timeout".into(),
            ),
            CloneError::MissingRoles { .. } => Some(
                "create them on the sandbox server (CREATE ROLE name NOLOGIN), or use the local sandbox strategy".into(),
            ),
            CloneError::NotEmpty { .. } => {
                Some("clone into a freshly created database".into())
            }
            _ => None,
        }
    }
}

impl From<CloneError> for crate::Error {
    fn from(e: CloneError) -> Self {
        let hint = e.hint();
        let mut err = crate::Error::usage(e.to_string());
        err.hint = hint;
        err
    }
}

/// Shared counters the pipes and `pg_restore -v` update and progress reads.
#[derive(Default)]
pub(crate) struct Counters {
    /// Shared with the pump threads.
    pub bytes: Arc<AtomicU64>,
    pub tables_created: Cell<usize>,
    pub tables_done: Cell<usize>,
    pub current: RefCell<Option<String>>,
}

/// Clone `source` into the existing empty database `dest`. Read-only on the source.
pub async fn clone(
    source: &DbUrl,
    dest: &DbUrl,
    opts: &CloneOptions,
    progress: &dyn Fn(Progress),
) -> Result<CloneReport, CloneError> {
    // The dump file first: an existing file stops the clone before anything happens.
    let sink = match &opts.keep_dump {
        Some(p) => Some(private::create_dump_file(p)?),
        None => None,
    };
    let result = clone_into(source, dest, opts, sink, progress).await;
    if result.is_err() {
        // A partial dump is of no use; this run created the file, so it may remove it.
        if let Some(path) = &opts.keep_dump {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

async fn clone_into(
    source: &DbUrl,
    dest: &DbUrl,
    opts: &CloneOptions,
    sink: Option<std::fs::File>,
    progress: &dyn Fn(Progress),
) -> Result<CloneReport, CloneError> {
    let started = Instant::now();
    let mut report = CloneReport::default();
    let counters = Counters::default();
    let phase = Cell::new(Phase::Prepare);
    let (tables_total, bytes_estimate) = (Cell::new(0usize), Cell::new(0u64));
    let snapshot = || Progress {
        phase: phase.get(),
        tables_done: counters.tables_done.get(),
        tables_total: tables_total.get(),
        bytes: counters.bytes.load(Ordering::Relaxed),
        bytes_estimate: bytes_estimate.get(),
        table: counters.current.borrow().clone(),
    };
    progress(snapshot());
    private::sweep();

    let src = connect(source, &source_session(opts.lock_wait_timeout)).await?;
    let dst = connect(dest, &ConnectOptions::default()).await?;
    check_tools(&opts.tools, src.version.major(), dst.version.major())?;
    source::check_not_same(&src.client, &dst.client, source).await?;
    source::check_empty(&dst.client, dest).await?;

    let snapshot_id = source::begin_snapshot(&src.client, &mut report.warnings).await?;
    let inv = source::inventory(&src.client).await?;
    if opts.data == DataMode::Full {
        tables_total.set(inv.tables.len());
        bytes_estimate.set(inv.tables.iter().map(|t| t.bytes).sum());
    }
    let dest_info = dest::prepare_dest(&dst.client, &inv, opts, &mut report).await?;
    drop(dst);

    let dir = PrivateDir::create()?;
    let tools = Tools::new(opts, &dir, source, dest, snapshot_id, dest_info.superuser)?;
    let plan = Plan::new(opts, &inv, &dest_info);
    report
        .steps
        .push(("prepare".into(), started.elapsed().as_secs_f64()));

    let run = Run {
        plan: &plan,
        tools: &tools,
        dir: &dir,
        opts,
        counters: &counters,
        phase: &phase,
    };
    let all = run.all(sink, &src.client, &mut report);
    if let Err(e) = with_ticker(all, &snapshot, progress).await {
        return Err(match e {
            Failure::Step(f) if f.lock_timeout => {
                source::locked_error(&src.client, &f.stderr, opts.lock_wait_timeout).await
            }
            other => other.into(),
        });
    }
    drop(src);
    report.tables = counters.tables_created.get();
    report.bytes = counters.bytes.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// pgship's own session on the source: read-only, never waiting long for a lock, never cut by
/// an idle-in-transaction timeout while `pg_dump` uses its snapshot.
fn source_session(lock_wait: Duration) -> ConnectOptions {
    ConnectOptions {
        settings: vec![
            ("default_transaction_read_only".into(), "on".into()),
            (
                "lock_timeout".into(),
                format!("{}ms", lock_wait.as_millis().max(1)),
            ),
            ("idle_in_transaction_session_timeout".into(), "0".into()),
            ("statement_timeout".into(), "0".into()),
        ],
        ..ConnectOptions::default()
    }
}

/// One clone's steps, run in order.
struct Run<'a> {
    plan: &'a Plan,
    tools: &'a Tools,
    dir: &'a PrivateDir,
    opts: &'a CloneOptions,
    counters: &'a Counters,
    phase: &'a Cell<Phase>,
}

impl Run<'_> {
    async fn all(
        &self,
        sink: Option<std::fs::File>,
        src: &tokio_postgres::Client,
        report: &mut CloneReport,
    ) -> Result<(), Failure> {
        let post_archive = match &self.opts.keep_dump {
            Some(p) => p.clone(),
            None => self.dir.path().join("post-data.dump"),
        };
        let first = if self.plan.schema_only || self.plan.streams.is_some() {
            Phase::Schema
        } else {
            Phase::SchemaAndData
        };
        let step = self.first(first, sink, &post_archive);
        self.timed(report, first, step).await?;
        if let Some(streams) = &self.plan.streams {
            self.timed(report, Phase::Data, self.data(streams)).await?;
        }
        *self.counters.current.borrow_mut() = None;
        // The source is no longer needed: end the snapshot transaction so that it does not
        // hold back the source's vacuum while indexes are built.
        src.batch_execute("COMMIT").await.map_err(|e| {
            Failure::Io(CloneError::Db(DbError::query(
                "ending the snapshot transaction",
                &e,
            )))
        })?;
        let step = self.post_data(&post_archive);
        self.timed(report, Phase::PostData, step).await
    }

    async fn timed(
        &self,
        report: &mut CloneReport,
        phase: Phase,
        step: impl std::future::Future<Output = Result<(), Failure>>,
    ) -> Result<(), Failure> {
        let t = Instant::now();
        self.phase.set(phase);
        step.await?;
        report
            .steps
            .push((phase.label().into(), t.elapsed().as_secs_f64()));
        Ok(())
    }

    /// The schema (and data, in one stream) while the post-data section is dumped.
    async fn first(
        &self,
        phase: Phase,
        sink: Option<std::fs::File>,
        post_archive: &std::path::Path,
    ) -> Result<(), Failure> {
        let main = Pipeline {
            step: phase.label().to_string(),
            dump: self.tools.dump_first(self.plan),
            restore: self.tools.restore_first(self.plan),
            sink,
        };
        let post_dump = async {
            if self.plan.keep_dump {
                Ok(())
            } else {
                self.tools.dump_post_data(post_archive).await
            }
        };
        tokio::try_join!(main.run(self.tools, self.counters), post_dump)?;
        Ok(())
    }

    async fn data(&self, streams: &[Vec<String>]) -> Result<(), Failure> {
        let runs = (0..=streams.len()).map(|i| Pipeline {
            step: format!("data stream {}", i + 1),
            dump: self.tools.dump_data_stream(streams, i),
            restore: self.tools.restore_data(),
            sink: None,
        });
        futures_join_all(runs.map(|p| p.run(self.tools, self.counters))).await
    }

    async fn post_data(&self, archive: &std::path::Path) -> Result<(), Failure> {
        let list = if self.plan.schema_only {
            Some(self.tools.list_without_data(archive, self.dir).await?)
        } else {
            None
        };
        self.tools
            .restore_post_data(archive, list.as_deref(), self.opts.jobs)
            .await
    }
}

/// Run futures concurrently; the first error drops (and so kills) the rest.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Result<(), Failure>
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        let mut i = 0;
        while i < pending.len() {
            match pending[i].as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(())) => {
                    pending.swap_remove(i);
                }
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => i += 1,
            }
        }
        if pending.is_empty() {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Drive `work`, reporting progress every 250 ms and at each phase change.
async fn with_ticker<T>(
    work: impl std::future::Future<Output = T>,
    snapshot: &dyn Fn() -> Progress,
    progress: &dyn Fn(Progress),
) -> T {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    let mut last = snapshot();
    loop {
        tokio::select! {
            out = &mut work => {
                progress(snapshot());
                return out;
            }
            _ = tick.tick() => {
                let now = snapshot();
                if now != last {
                    progress(now.clone());
                    last = now;
                }
            }
        }
    }
}

impl From<Failure> for CloneError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Step(s) => CloneError::Step {
                step: s.step,
                status: s.status,
                stderr: s.stderr,
            },
            Failure::Io(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let p = Progress {
            phase: Phase::Data,
            tables_done: 3,
            tables_total: 4,
            bytes: 312 << 20,
            bytes_estimate: 640 << 20,
            table: Some("public.accounts".into()),
        };
        assert_eq!(
            p.line(),
            "data: 3/4 tables, 312.0 MiB of ~640.0 MiB (public.accounts)"
        );
        let p = Progress {
            phase: Phase::PostData,
            ..p
        };
        assert_eq!(p.line(), "indexes and constraints");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn summary_line() {
        let r = CloneReport {
            tables: 4,
            bytes: 3 << 20,
            seconds: 2.04,
            steps: vec![
                ("prepare".into(), 0.1),
                ("schema and data".into(), 1.5),
                ("indexes and constraints".into(), 0.4),
            ],
            ..Default::default()
        };
        assert_eq!(
            r.summary(),
            "cloned 4 tables (3.0 MiB) in 2.0s: prepare 0.1s, schema and data 1.5s, indexes and constraints 0.4s"
        );
    }
}
