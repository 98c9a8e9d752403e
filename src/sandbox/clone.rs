//! The clone engine: copy a target database into an existing, empty database (the sandbox):
//! the schema and the indexes with `pg_dump | pg_restore`, the rows with `COPY` relayed by
//! pgship itself, with no dump file unless one is asked for.
//!
//! How, and why (measured on a 2-core machine, `scripts/bench-clone`):
//! - **One snapshot.** pgship opens a `REPEATABLE READ READ ONLY` transaction on the source,
//!   exports its snapshot and hands it to every `pg_dump` run (`--snapshot`) and every session
//!   that reads rows, so the schema, the data and the indexes come from the same instant.
//! - **The source is read while the destination gets ready** ([`clone_pending`]): the snapshot,
//!   the catalog, `ACCESS SHARE` locks on the tables pgship copies (as `pg_dump` takes them, with
//!   the same lock timeout), and the schema (pre-data) and post-data archives, dumped into a
//!   private temp folder while a throwaway cluster starts.
//! - **Rows by `COPY`, without `pg_dump` and `pg_restore`** (`copy`): `COPY ... TO STDOUT` in the
//!   snapshot relayed into `COPY ... FROM STDIN`, in the binary format when every column's type
//!   is a built-in one whose binary form means the same on any server (else text, as
//!   `pg_dump` writes it). Large tables are truncated and filled in one transaction with
//!   `FREEZE`: no WAL on a `wal_level=minimal` cluster, no hint-bit writes when the indexes are
//!   built. Each stream runs on a thread of its own with its connections. This took the
//!   destination's `COPY` (the bottleneck) from about 3.9 to about 3.0 CPU-seconds on a 700 MB
//!   pgbench database, and the relay costs less CPU than `pg_dump` and `pg_restore` did. What pgship
//!   does not copy itself (sequence values, large objects, extension configuration tables,
//!   tables beyond the first thousand) goes through `pg_dump --section=data
//!   --exclude-table-data=... | pg_restore` at the same time, only when there is any.
//! - **Indexes and constraints last, in parallel.** The post-data archive (indexes, primary
//!   keys, unique and foreign keys, triggers, matview refreshes) is restored after the data by
//!   `pg_restore -j <jobs>`, whose scheduler runs foreign keys after the indexes they need, with
//!   a small `maintenance_work_mem` ([`plan::index_memory_mb`]: sorts that fit the CPU's caches
//!   built the benchmark's indexes 1.6x faster than 1 GB did).
//! - **`--keep-dump`** takes the old path: one `pg_dump -Fc -Z0` streamed through pgship (which
//!   moves pages from pipe to pipe and tees them into `clone.dump`) into `pg_restore`, then the
//!   post-data section from the kept file.
//! - **The schema matches the target's, grants included.** Roles that own objects or hold
//!   grants are created (`NOLOGIN`) in a throwaway destination when the caller allows it
//!   ([`CloneOptions::create_missing_roles`]); otherwise missing roles are an error naming them.
//!   Owners are kept when the destination user is a superuser. Extensions are created at the
//!   source's versions first where the destination offers them, so a newer major gives the
//!   same extension versions. Schemas with more relations than the destination's lock table
//!   holds are restored without `--single-transaction`.
//!
//! What it must never do: write to the source (every session of pgship's and `pg_dump`'s is
//! read-only); queue behind the application's locks (`--lock-wait-timeout` on `pg_dump`,
//! `lock_timeout` on pgship's sessions); read rows a row-level security policy would hide
//! (`row_security = off`: an error instead, as with `pg_dump`); put a password on a command line
//! (a 0600 passfile in a 0700 folder, removed afterwards; children get a password-less URL);
//! hold a dump in memory.

mod copy;
mod dest;
mod plan;
mod post;
pub(crate) mod private;
mod proc;
mod pump;
mod source;
mod stderr;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::tools::BinDir;
use crate::db::{Conn, ConnectOptions, DbError, DbUrl, connect};

use copy::{CopyStream, CopyThread};
use plan::{CopyTable, Plan, check_dump_tools, check_tools};
use private::PrivateDir;
use proc::{Failure, Pipeline, Tools};
use source::Inventory;

/// What to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataMode {
    /// Schema and rows.
    #[default]
    Full,
    /// The schema only: no rows, sequences at their start values.
    Schema,
}

/// How to clone.
#[derive(Debug, Clone)]
pub struct CloneOptions {
    pub data: DataMode,
    /// Parallel jobs for indexes and constraints (and a `COPY` stream per two).
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
    /// Add the source's validated foreign keys without checking the rows again, marking them
    /// validated in the catalog (the rows come from one snapshot of a database where the keys
    /// hold). Needs a superuser destination; for throwaway clusters only.
    pub trust_foreign_keys: bool,
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
            trust_foreign_keys: false,
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

/// Shared counters the pipes, `pg_restore -v` and the copy threads update and progress reads.
#[derive(Default, Clone)]
pub(crate) struct Counters {
    /// Shared with the pump and copy threads.
    pub bytes: Arc<AtomicU64>,
    pub tables_created: Arc<AtomicUsize>,
    pub tables_done: Arc<AtomicUsize>,
    /// The table being copied.
    pub current: Arc<Mutex<Option<String>>>,
}

impl Counters {
    pub fn table_done(&self) {
        self.tables_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn table_created(&self) {
        self.tables_created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_current(&self, table: Option<String>) {
        if let Ok(mut c) = self.current.lock() {
            *c = table;
        }
    }

    pub fn current(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }
}

/// Clone `source` into the existing empty database `dest`. Read-only on the source.
pub async fn clone(
    source: &DbUrl,
    dest: &DbUrl,
    opts: &CloneOptions,
    progress: &dyn Fn(Progress),
) -> Result<CloneReport, CloneError> {
    let dest = dest.clone();
    let ready = async move { Ok::<DbUrl, std::convert::Infallible>(dest) };
    clone_pending(source, ready, opts, progress)
        .await
        .map_err(|e| match e {
            PendingError::Clone(e) => e,
            PendingError::Dest(never) => match never {},
        })
}

/// Why [`clone_pending`] failed: the clone, or the destination it waited for.
#[derive(Debug)]
pub enum PendingError<E> {
    Clone(CloneError),
    Dest(E),
}

/// Clone `source` into the empty database `dest` resolves to: pgship reads the source
/// (snapshot, catalog, the schema and the post-data archive) while `dest` gets ready (a
/// throwaway cluster starting), then restores. If `dest` fails, the clone stops with its
/// error; if the clone fails first, `dest` is dropped. Read-only on the source.
pub async fn clone_pending<E>(
    source: &DbUrl,
    dest: impl std::future::Future<Output = Result<DbUrl, E>>,
    opts: &CloneOptions,
    progress: &dyn Fn(Progress),
) -> Result<CloneReport, PendingError<E>> {
    // The dump file first: an existing file stops the clone before anything happens.
    let sink = match &opts.keep_dump {
        Some(p) => Some(private::create_dump_file(p).map_err(PendingError::Clone)?),
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

/// What pgship reads from the source before the destination is needed.
struct SourceSide {
    /// The copy streams; the first reads through `src` and runs its connection's task.
    streams: Vec<CopyStream>,
    /// pgship's snapshot session.
    src: Arc<Conn>,
    inv: Inventory,
    /// The tables pgship copies itself, locked and measured.
    copied: Vec<CopyTable>,
    dir: PrivateDir,
    tools: Tools,
    /// The schema (pre-data) and post-data archives (none with a kept dump, which holds
    /// everything).
    pre_data: PathBuf,
    post_data: PathBuf,
    /// Constraints pgship may add itself (`post`).
    constraints: Vec<post::Constraint>,
    warnings: Vec<String>,
}

async fn read_source(source: &DbUrl, opts: &CloneOptions) -> Result<SourceSide, CloneError> {
    let session = source_session(opts.lock_wait_timeout);
    // The session lives on the first copy stream's thread, which relays its rows.
    let thread = CopyThread::start()?;
    let src = Arc::new(thread.connect(source, &session).await?);
    let mut streams = vec![CopyStream {
        src: src.clone(),
        thread,
    }];
    let major = src.version.major();
    check_dump_tools(&opts.tools, major)?;
    let mut warnings = Vec::new();
    let snapshot = source::begin_snapshot(&src.client, &mut warnings).await?;
    let inv = source::inventory(&src.client, major).await?;
    let copied = plan::copied_tables(opts, &inv.tables);
    let locked: Vec<&source::TableInfo> = copied.iter().map(|c| &c.table).collect();
    if let Err(e) = source::lock_tables(&src.client, &locked).await {
        let locking = Some(format!("{} table(s) pgship copies", locked.len()));
        return Err(failure_error(&src.client, lock_failure(e, locking), opts).await);
    }
    let sizes = source::measure_tables(&src.client, &locked).await?;
    let constraints = post::read_constraints(&src.client).await?;
    let copied = plan::measured(copied, &sizes);
    if let Some(id) = &snapshot {
        for _ in 1..plan::copy_streams(opts.jobs, copied.len()) {
            match CopyStream::open(source, &session, id, &copied).await {
                Ok(s) => streams.push(s),
                Err(f) => return Err(failure_error(&src.client, f, opts).await),
            }
        }
    }
    let dir = PrivateDir::create()?;
    let tools = Tools::new(opts, &dir, source, snapshot.as_deref())?;
    let pre_data = dir.path().join("pre-data.dump");
    let post_data = dir.path().join("post-data.dump");
    if opts.keep_dump.is_none() {
        let schema_only = opts.data == DataMode::Schema;
        let dumped = tokio::try_join!(
            tools.dump_pre_data(&pre_data, schema_only),
            tools.dump_post_data(&post_data)
        );
        if let Err(f) = dumped {
            return Err(failure_error(&src.client, f, opts).await);
        }
    }
    Ok(SourceSide {
        streams,
        src,
        inv,
        copied,
        dir,
        tools,
        pre_data,
        post_data,
        constraints,
        warnings,
    })
}

/// A failed `LOCK TABLE` of pgship's own session.
fn lock_failure(e: tokio_postgres::Error, locking: Option<String>) -> Failure {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        Failure::Locked(locking)
    } else {
        Failure::Io(CloneError::Db(DbError::query(
            "locking the tables to copy on the source",
            &e,
        )))
    }
}

/// The error for a failed step; a lock that was not granted in time names who holds it.
async fn failure_error(
    src: &tokio_postgres::Client,
    f: Failure,
    opts: &CloneOptions,
) -> CloneError {
    match f {
        Failure::Step(f) if f.lock_timeout => {
            source::locked_error(src, source::locking_in(&f.stderr), opts.lock_wait_timeout).await
        }
        Failure::Locked(locking) => {
            // pgship's session may be the one that gave up: its transaction is over.
            let _ = src.batch_execute("ROLLBACK").await;
            source::locked_error(src, locking, opts.lock_wait_timeout).await
        }
        other => other.into(),
    }
}

async fn clone_into<E>(
    source: &DbUrl,
    dest: impl std::future::Future<Output = Result<DbUrl, E>>,
    opts: &CloneOptions,
    sink: Option<std::fs::File>,
    progress: &dyn Fn(Progress),
) -> Result<CloneReport, PendingError<E>> {
    let started = Instant::now();
    let mut report = CloneReport::default();
    let counters = Counters::default();
    let phase = Cell::new(Phase::Prepare);
    let (tables_total, bytes_estimate) = (Cell::new(0usize), Cell::new(0u64));
    let snapshot = || Progress {
        phase: phase.get(),
        tables_done: counters.tables_done.load(Ordering::Relaxed),
        tables_total: tables_total.get(),
        bytes: counters.bytes.load(Ordering::Relaxed),
        bytes_estimate: bytes_estimate.get(),
        table: counters.current(),
    };
    progress(snapshot());
    private::sweep();

    // The source is read while the destination gets ready.
    let (side, dest) = tokio::try_join!(
        async { read_source(source, opts).await.map_err(PendingError::Clone) },
        async { dest.await.map_err(PendingError::Dest) },
    )?;
    // Declared first, dropped last: the threads run the sessions' connections.
    let SourceSide {
        streams,
        src,
        inv,
        copied,
        dir,
        mut tools,
        pre_data,
        post_data,
        constraints,
        warnings,
    } = side;
    report.warnings = warnings;
    let c = PendingError::Clone;
    let dst = connect(&dest, &ConnectOptions::default())
        .await
        .map_err(|e| c(e.into()))?;
    check_tools(&opts.tools, src.version.major(), dst.version.major()).map_err(c)?;
    source::check_not_same(&src.client, &dst.client, source)
        .await
        .map_err(c)?;
    source::check_empty(&dst.client, &dest).await.map_err(c)?;
    if opts.data == DataMode::Full {
        tables_total.set(inv.tables.len());
        bytes_estimate.set(inv.tables.iter().map(|t| t.bytes).sum());
    }
    let dest_info = dest::prepare_dest(&dst.client, &inv, opts, &mut report)
        .await
        .map_err(c)?;
    drop(dst);
    tools
        .set_dest(opts, &dir, &dest, dest_info.superuser)
        .map_err(c)?;
    let plan = Plan::new(opts, &inv, &dest_info, copied);
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
        src: &src.client,
        streams: &streams,
        dest: &dest,
        pre_data: &pre_data,
        post_data: &post_data,
        constraints: &constraints,
    };
    let all = run.all(sink, &mut report);
    if let Err(f) = with_ticker(all, &snapshot, progress).await {
        return Err(c(failure_error(&src.client, f, opts).await));
    }
    drop(src);
    drop(streams);
    report.tables = counters.tables_created.load(Ordering::Relaxed);
    report.bytes = counters.bytes.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// pgship's own sessions on the source: read-only, never waiting long for a lock, never cut
/// by an idle-in-transaction timeout while `pg_dump` uses its snapshot; row security off (a
/// policy that would hide rows is an error, as with `pg_dump`), and text values written so
/// that any server reads them back the same (as `pg_dump` sets them).
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
            ("row_security".into(), "off".into()),
            ("datestyle".into(), "ISO".into()),
            ("intervalstyle".into(), "postgres".into()),
            ("extra_float_digits".into(), "3".into()),
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
    /// pgship's snapshot session.
    src: &'a tokio_postgres::Client,
    streams: &'a [CopyStream],
    dest: &'a DbUrl,
    pre_data: &'a Path,
    post_data: &'a Path,
    constraints: &'a [post::Constraint],
}

impl Run<'_> {
    async fn all(
        &self,
        sink: Option<std::fs::File>,
        report: &mut CloneReport,
    ) -> Result<(), Failure> {
        let post_archive = match &self.opts.keep_dump {
            Some(kept) => {
                let first = if self.plan.schema_only {
                    Phase::Schema
                } else {
                    Phase::SchemaAndData
                };
                self.timed(report, first, self.kept(first, sink)).await?;
                kept.as_path()
            }
            None => {
                let schema = self
                    .tools
                    .restore_pre_data(self.pre_data, self.plan, self.counters);
                self.timed(report, Phase::Schema, schema).await?;
                if !self.plan.schema_only {
                    self.timed(report, Phase::Data, self.data()).await?;
                }
                self.post_data
            }
        };
        self.counters.set_current(None);
        // The source is no longer needed: end the snapshot transaction so that it does not
        // hold back the source's vacuum while indexes are built.
        self.src.batch_execute("COMMIT").await.map_err(|e| {
            Failure::Io(CloneError::Db(DbError::query(
                "ending the snapshot transaction",
                &e,
            )))
        })?;
        let step = self.indexes(post_archive);
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

    /// With a kept dump: the whole archive from one `pg_dump`, written to `clone.dump` on
    /// its way to `pg_restore` (schema and data; the post-data restore reads the file).
    async fn kept(&self, phase: Phase, sink: Option<std::fs::File>) -> Result<(), Failure> {
        Pipeline {
            step: phase.label().to_string(),
            dump: self.tools.dump_all(self.plan),
            restore: self.tools.restore_all(self.plan),
            sink,
        }
        .run(self.tools, self.counters)
        .await
    }

    /// The rows: pgship's `COPY` streams, and `pg_dump | pg_restore` for the rest.
    async fn data(&self) -> Result<(), Failure> {
        let rest = async {
            if !self.plan.rest {
                return Ok(());
            }
            Pipeline {
                step: "data".into(),
                dump: self.tools.dump_rest(&self.plan.copied),
                restore: self.tools.restore_data(),
                sink: None,
            }
            .run(self.tools, self.counters)
            .await
        };
        let copied = copy::copy_tables(self.streams, self.dest, &self.plan.copied, self.counters);
        tokio::try_join!(rest, copied)?;
        Ok(())
    }

    /// The post-data section: plain indexes by `pg_restore -j` while pgship builds the
    /// primary keys' and unique constraints' indexes, then those constraints, then the rest
    /// by `pg_restore -j`, then (in a throwaway cluster) the foreign keys (see `post`).
    async fn indexes(&self, archive: &Path) -> Result<(), Failure> {
        let mut list = self.tools.list(archive).await?;
        if self.plan.schema_only {
            // A schema-only clone keeps materialized views empty.
            list = list
                .lines()
                .filter(|l| !l.contains(" MATERIALIZED VIEW DATA "))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        let mut split = post::split(&list, self.constraints, self.plan.trust_foreign_keys);
        if split.unique.is_empty() {
            // Nothing to build beside pg_restore's index builds: one pg_restore runs them
            // together with the rest.
            let rest = std::mem::take(&mut split.rest);
            split.indexes.extend(rest);
        }
        let (jobs, memory) = (self.opts.jobs, self.plan.index_memory_mb);
        let restore = |name: &'static str, lines: Vec<String>| async move {
            if lines.is_empty() {
                return Ok(());
            }
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let path = self.dir.write(name, text.as_bytes()).map_err(Failure::Io)?;
            self.tools
                .restore_post_data(archive, Some(&path), jobs, memory)
                .await
        };
        // pg_restore's jobs and pgship's sessions together: more builds than cores keeps
        // every core busy to the end instead of leaving one idle behind the largest build.
        let sessions = (jobs / 2).max(1);
        tokio::try_join!(
            restore("post-data-indexes.list", split.indexes),
            post::build_unique(self.dest, &split.unique, sessions, memory),
        )?;
        post::attach_unique(self.dest, &split.unique).await?;
        restore("post-data-rest.list", split.rest).await?;
        post::add_foreign_keys(self.dest, &split.foreign_keys).await
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
            // Callers with the source's session name the holder (`failure_error`).
            Failure::Locked(what) => CloneError::Locked {
                what: what.unwrap_or_else(|| "a table".into()),
                holder: None,
                timeout: Duration::ZERO,
            },
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
