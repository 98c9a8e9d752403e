//! `pgship migrate <target>`: apply pending migrations directly, under the migration lock.

use std::time::Duration;

use serde_json::json;

use super::project::Project;
use super::{Globals, confirm, duration_arg};
use crate::db::apply::{self, ApplyOptions, Event, ResolveRunning, TxMode, Work};
use crate::db::plan::{self, Plan, Status};
use crate::db::timeouts::{self, StatementTimeout};
use crate::db::{ConnectOptions, DbUrl, connect, lock, slots, state};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::journal::{Journal, Level, phase, run_id};
use crate::util::format_duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment name, `local`, or a postgres:// URL.
    pub target: String,
    /// Show what would be applied, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// How many times to retry after a lock timeout, with exponential backoff [default: 5].
    #[arg(long, value_name = "N")]
    pub lock_retries: Option<u32>,
    /// How long to wait for another pgship run's migration lock [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub lock_wait: Option<Duration>,
    /// Proceed although applied migrations were edited (logged as a warning).
    #[arg(long)]
    pub allow_edited: bool,
}

/// How the engine applies: shared by `migrate` and `plan` (which rehearses with what a deploy
/// will use).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// `all`: every pending migration in one transaction (drizzle's semantics);
    /// `per-migration`: commit each on its own [default: [apply] tx_mode, else all]. `migrate`
    /// refuses, before it starts, a batch whose transaction would not fit in the server's lock
    /// table.
    #[arg(long, value_name = "MODE")]
    pub tx_mode: Option<TxMode>,
    /// How long one statement may wait for a lock before it gives up and is retried
    /// [default: 2s]. At least 1ms (0 would wait forever); above 60s only with
    /// --allow-long-lock-timeout.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub lock_timeout: Option<Duration>,
    /// Accept a lock timeout above 60s (the app's queries on a table queue behind a statement
    /// waiting for its lock for that long).
    #[arg(long)]
    pub allow_long_lock_timeout: bool,
    /// Limit on one statement's run time [default: none]. A lower statement_timeout set on the
    /// database or role (ALTER DATABASE/ROLE ... SET) applies instead.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub statement_timeout: Option<Duration>,
    /// A statement that runs outside a transaction (a `CALL`, a `DO` block) was running when an
    /// earlier run ended, and the catalog cannot show whether it committed: `done` records it
    /// as committed, `rerun` runs it again. Without it such a run stops and asks.
    #[arg(long, value_name = "done|rerun")]
    pub resolve_running: Option<ResolveRunning>,
}

/// A lock timeout above this needs `--allow-long-lock-timeout`.
pub const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Resolved engine settings: flags over pgship.toml over defaults.
pub struct Settings {
    pub tx_mode: TxMode,
    pub lock_timeout: Duration,
    pub lock_retries: u32,
    pub lock_wait: Duration,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    /// Once connected: whose `statement_timeout` applies (pgship's or the server's lower one),
    /// already in `statement_timeout`.
    pub statement_timeout_from: Option<StatementTimeout>,
}

impl Settings {
    pub fn resolve(project: &Project, args: &Args) -> Result<Settings> {
        let f = &project.settings.file.apply;
        let file_path = project
            .settings
            .config_path
            .clone()
            .unwrap_or_else(|| "pgship.toml".into());
        let dur = |v: &Option<String>, key: &str, default: Duration| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) => crate::util::parse_duration(s).map_err(|e| {
                    Error::usage(format!("{}: [apply] {key}: {e}", file_path.display()))
                }),
            }
        };
        let tx_mode = match (&args.engine.tx_mode, &f.tx_mode) {
            (Some(m), _) => *m,
            (None, Some(s)) => s.parse().map_err(|e| {
                Error::usage(format!("{}: [apply] tx_mode: {e}", file_path.display()))
            })?,
            (None, None) => TxMode::All,
        };
        let allow_long =
            args.engine.allow_long_lock_timeout || f.allow_long_lock_timeout == Some(true);
        let file_key = |key: &str| format!("{}: [apply] {key}", file_path.display());
        Ok(Settings {
            tx_mode,
            lock_timeout: match args.engine.lock_timeout {
                Some(d) => check_lock_timeout(d, "--lock-timeout", allow_long)?,
                None => check_lock_timeout(
                    dur(&f.lock_timeout, "lock_timeout", Duration::from_secs(2))?,
                    &file_key("lock_timeout"),
                    allow_long,
                )?,
            },
            lock_retries: args.lock_retries.or(f.lock_retries).unwrap_or(5),
            lock_wait: match args.lock_wait {
                Some(d) => d,
                None => dur(&f.lock_wait, "lock_wait", Duration::from_secs(60))?,
            },
            statement_timeout: match args.engine.statement_timeout {
                Some(d) => check_statement_timeout(d, "--statement-timeout")?,
                None => check_statement_timeout(
                    dur(&f.statement_timeout, "statement_timeout", Duration::ZERO)?,
                    &file_key("statement_timeout"),
                )?,
            },
            connect_timeout: dur(
                &f.connect_timeout,
                "connect_timeout",
                Duration::from_secs(10),
            )?,
            statement_timeout_from: None,
        })
    }

    /// Take the lower of pgship's and the server's `statement_timeout` (see
    /// [`crate::db::timeouts`]); returns whether the server's replaces pgship's, in which case
    /// the session must be opened again with [`Settings::session`].
    pub fn honour(&mut self, st: StatementTimeout) -> bool {
        let replaced = st.from_server();
        self.statement_timeout = st.value;
        self.statement_timeout_from = Some(st);
        replaced
    }

    /// The line saying which `statement_timeout` applies, once known.
    pub fn statement_timeout_line(&self) -> Option<String> {
        self.statement_timeout_from
            .as_ref()
            .map(StatementTimeout::describe)
    }

    /// Session settings sent as startup options.
    pub fn session(&self) -> Vec<(String, String)> {
        vec![
            (
                "lock_timeout".into(),
                self.lock_timeout.as_millis().to_string(),
            ),
            (
                "statement_timeout".into(),
                self.statement_timeout.as_millis().to_string(),
            ),
        ]
    }
}

/// Refuse a lock timeout that is no limit: under 1ms (PostgreSQL gets 0, which waits forever),
/// or above [`MAX_LOCK_TIMEOUT`] unless `allow_long`. `origin` names the flag or the key.
pub fn check_lock_timeout(d: Duration, origin: &str, allow_long: bool) -> Result<Duration> {
    if d.as_millis() == 0 {
        return Err(Error::usage(format!(
            "{origin} must be at least 1ms: PostgreSQL reads a lock_timeout of 0 as no limit, so a \
             statement of pgship's would wait for its lock for ever while the app's queries on \
             that table queue behind it"
        ))
        .with_hint(
            "keep it short (the default is 2s): after a lock timeout pgship rolls back and retries \
             (--lock-retries)",
        ));
    }
    if d > MAX_LOCK_TIMEOUT && !allow_long {
        return Err(Error::usage(format!(
            "{origin} {} is above {}: the app's queries on a table would queue behind a statement \
             of pgship's waiting for its lock for up to that long",
            format_duration(d),
            format_duration(MAX_LOCK_TIMEOUT)
        ))
        .with_hint(
            "pass --allow-long-lock-timeout (or set [apply] allow_long_lock_timeout = true) to \
             accept it, or keep it short and raise --lock-retries",
        ));
    }
    Ok(d)
}

/// Refuse a statement timeout under 1ms but not zero: PostgreSQL would get 0, no limit.
pub fn check_statement_timeout(d: Duration, origin: &str) -> Result<Duration> {
    if !d.is_zero() && d.as_millis() == 0 {
        return Err(Error::usage(format!(
            "{origin} is under 1ms, which PostgreSQL would read as 0 (no limit): use 0 for none, \
             or at least 1ms"
        )));
    }
    Ok(d)
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let (project, target, url) = Project::with_target(globals, &args.target)?;
    execute(
        globals,
        &project,
        &target.name,
        target.protected,
        &url,
        &args,
    )
    .await
}

/// Apply `project`'s pending migrations to `url`. Shared with `demo`.
pub async fn execute(
    globals: &Globals,
    project: &Project,
    env_name: &str,
    protected: bool,
    url: &DbUrl,
    args: &Args,
) -> Result<ExitCode> {
    let console = globals.console;
    let mut settings = Settings::resolve(project, args)?;
    let source = &project.source;
    console.step(&format!(
        "{} migrations in {} ({})",
        source.migrations.len(),
        source.dir.display(),
        source.kind.as_str()
    ));
    let mut opts = ConnectOptions {
        connect_timeout: settings.connect_timeout,
        settings: settings.session(),
    };
    let mut conn = connect(url, &opts).await?;
    let st = timeouts::resolve(&conn.client, settings.statement_timeout).await?;
    let server_set = st.configured.is_some();
    if settings.honour(st) {
        // Again as a startup option, so that a migration's RESET keeps the server's limit too.
        opts.settings = settings.session();
        conn = connect(url, &opts).await?;
    }
    console.step(&format!(
        "connected to {} (PostgreSQL {})",
        url.redacted(),
        conn.version.text
    ));
    if let Some(line) = settings.statement_timeout_line() {
        if server_set {
            console.step(&line);
        } else {
            console.detail(&line);
        }
    }
    for p in &url.ignored {
        console.detail(&format!("URL parameter `{p}` is not used by pgship"));
    }

    lock::acquire(
        &conn.client,
        lock::MIGRATE_LOCK_KEY,
        settings.lock_wait,
        |holder| {
            let who = holder.map_or_else(|| "another session".to_string(), ToString::to_string);
            console.warn(&format!(
                "waiting up to {} for the migration lock held by {who}",
                format_duration(settings.lock_wait)
            ));
        },
    )
    .await
    .map_err(|e| Error::refused(e.to_string()))?;

    let result = locked(
        globals, project, env_name, protected, url, args, &settings, &conn,
    )
    .await;
    let _ = lock::release(&conn.client, lock::MIGRATE_LOCK_KEY).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn locked(
    globals: &Globals,
    project: &Project,
    env_name: &str,
    protected: bool,
    url: &DbUrl,
    args: &Args,
    settings: &Settings,
    conn: &crate::db::Conn,
) -> Result<ExitCode> {
    let console = globals.console;
    let source = &project.source;
    let st = state::read(&conn.client, &project.state).await?;
    let plan = plan::classify(
        &source.migrations,
        &st.records,
        &st.partials,
        project.state.matching(),
    );
    let mut refusals = refusals(project, &plan, Some(args.allow_edited));
    refusals.extend(state_refusals(&conn.client, project, st.records.len(), &plan).await?);
    if !refusals.is_empty() {
        if console.format == Format::Json {
            console.json(&json!({"target": url.redacted(), "status": "refused", "reasons": refusals, "applied": []}));
        }
        return Err(Error::refused(format!("refusing to migrate:\n  {}", refusals.join("\n  ")))
            .with_hint("pgship never repairs state by itself: restore the files as they were applied, or fix the database by hand"));
    }
    if let Some((message, hint)) = lock_table_refusal(conn, &plan, source, settings).await? {
        if console.format == Format::Json {
            console.json(&json!({"target": url.redacted(), "status": "refused", "reasons": [message], "applied": []}));
        }
        return Err(Error::refused(format!("refusing to migrate: {message}")).with_hint(hint));
    }
    let to_run = plan.to_run();
    let names: Vec<&str> = to_run
        .iter()
        .map(|(i, _)| source.migrations[*i].name.as_str())
        .collect();
    if to_run.is_empty() {
        console.ok("nothing to apply: the target is up to date");
        if console.format == Format::Json {
            console.json(&json!({"target": url.redacted(), "status": "up-to-date", "applied": [], "dry_run": args.dry_run}));
        }
        return Ok(ExitCode::Ok);
    }
    if args.dry_run {
        if console.format == Format::Json {
            console.json(&json!({"target": url.redacted(), "status": "dry-run", "pending": names, "applied": [], "dry_run": true}));
        } else {
            console.result(&format!(
                "would apply {} migration(s) to {}:",
                names.len(),
                url.redacted()
            ));
            let shown = if console.verbose > 0 {
                to_run.iter().map(Ok).collect()
            } else {
                crate::util::fold_items(&to_run, 5, 3)
            };
            for item in shown {
                let Ok((i, start)) = item else {
                    let n = item.err().unwrap_or_default();
                    console.result(&format!("  ... {n} more (-v lists them all) ..."));
                    continue;
                };
                let m = &source.migrations[*i];
                let resume = if *start > 0 {
                    format!(" (resuming at statement {})", start + 1)
                } else {
                    String::new()
                };
                console.result(&format!(
                    "  {} ({} statements){resume}",
                    m.name,
                    m.statements.len()
                ));
            }
        }
        return Ok(ExitCode::Ok);
    }
    if protected {
        confirm(
            globals,
            &format!(
                "apply {} migration(s) to protected environment `{env_name}`?",
                names.len()
            ),
        )?;
    }
    let edited: Vec<usize> = plan.indices(|s| {
        matches!(
            s,
            Status::Edited { .. }
                | Status::Partial {
                    edited: Some(_),
                    ..
                }
        )
    });

    state::bootstrap(&conn.client).await?;
    // Runs killed earlier: nobody else holds the lock, so they are over; say what they left.
    let dead = state::dead_runs(&conn.client, true).await?;
    for run in &dead {
        if state::mark_interrupted(&conn.client, run).await? {
            console.warn(&format!("interrupted earlier: {}", run.describe()));
        }
    }
    let id = run_id("migrate", env_name);
    let mut journal = Journal::create(&project.settings.project_dir, &id).map_err(|e| {
        Error::usage(format!(
            "cannot write the deployment log under .deployments/: {e}"
        ))
    })?;
    state::start_deployment(&conn.client, &id, "migrate", env_name, &url.redacted()).await?;
    journal.log(
        phase::PREFLIGHT,
        Level::Info,
        format!("{} pending migration(s)", names.len()),
        json!({"target": url.redacted(), "server_version": conn.version.text, "source": source.kind.as_str(),
               "dir": source.dir.display().to_string(), "pending": names, "tx_mode": settings.tx_mode,
               "lock_timeout_ms": settings.lock_timeout.as_millis() as u64, "lock_retries": settings.lock_retries,
               "statement_timeout": settings.statement_timeout_from}),
    );
    for i in &edited {
        journal.log(
            phase::PREFLIGHT,
            Level::Warn,
            format!(
                "applied migration {} was edited; proceeding because of --allow-edited",
                source.migrations[*i].name
            ),
            json!({"migration": source.migrations[*i].name, "allow_edited": true}),
        );
        console.warn(&format!(
            "{} was edited after it was applied (--allow-edited)",
            source.migrations[*i].name
        ));
    }
    let work: Vec<Work<'_>> = plan.work(&source.migrations);
    let apply_opts = ApplyOptions {
        tx_mode: settings.tx_mode,
        lock_retries: settings.lock_retries,
        backoff: Duration::from_millis(500),
        deployment_id: id.clone(),
        server_major: conn.version.major(),
        resolve_running: args.engine.resolve_running,
    };
    let mode = match settings.tx_mode {
        TxMode::All => "in one transaction",
        TxMode::PerMigration => "one transaction each",
    };
    console.step(&format!("applying {} migration(s), {mode}", work.len()));
    let mut signal = None;
    let mut signals = crate::signals::Signals::install()
        .map_err(|e| Error::usage(format!("cannot install signal handlers: {e}")))?;
    let outcome = {
        let mut progress = Progress::new(work.len(), console.verbose > 0);
        let mut on_event = |e: Event<'_>| log_event(&mut journal, &console, &mut progress, e);
        let applying = apply::apply(
            &conn.client,
            &project.state,
            &work,
            &apply_opts,
            &mut on_event,
        );
        tokio::select! {
            r = applying => Some(r),
            s = signals.recv() => { signal = Some(s); None }
        }
    };
    let Some(outcome) = outcome else {
        let s = signal.expect("set with the interruption");
        return Err(interrupted(conn, &id, &mut journal, s).await);
    };
    let (code, status, applied, failure) = match &outcome {
        Ok(report) => {
            journal.log_timed(
                phase::SUCCESS,
                Level::Success,
                format!(
                    "applied {} migration(s) in {}",
                    report.applied.len(),
                    format_duration(report.duration)
                ),
                report.duration,
                json!({"applied": report.applied}),
            );
            (ExitCode::Ok, "succeeded", report.applied.clone(), None)
        }
        Err(f) => {
            let text = f.to_string();
            journal.log_error(
                phase::FAILED,
                text.lines().next().unwrap_or_default(),
                &text,
                serde_json::to_value(f.as_ref()).unwrap_or_default(),
            );
            (
                ExitCode::Refused,
                "failed",
                f.committed.clone(),
                Some(f.as_ref().clone()),
            )
        }
    };
    let err_text = failure.as_ref().map(|f| failure_text(f, settings));
    let applied_count = i32::try_from(applied.len()).unwrap_or(i32::MAX);
    // A session lost during the run cannot record its result: the run's own failure is what
    // the user must see (the next run marks the row interrupted).
    if let Err(e) = state::finish_deployment(
        &conn.client,
        &id,
        status,
        applied_count,
        err_text.as_deref(),
    )
    .await
    {
        console.warn(&format!("could not record the run's result: {e}"));
    }
    if let Err(e) = journal.flush_db(&conn.client).await {
        console.warn(&format!("could not write pgship.deployment_logs: {e}"));
    }
    if console.format == Format::Json {
        console.json(&json!({
            "target": url.redacted(), "deployment_id": id, "status": status, "applied": applied,
            "failure": failure, "statement_timeout": settings.statement_timeout_from,
            "log": journal.dir.join("deployment.log").display().to_string(),
        }));
    }
    match failure {
        None => {
            console.ok(&format!("applied {} migration(s) ({id})", applied.len()));
            Ok(code)
        }
        Some(f) => Err(
            Error::refused(failure_text(&f, settings)).with_hint(format!(
                "the log is in {}",
                journal.dir.join("deployment.log").display()
            )),
        ),
    }
}

/// After SIGINT or SIGTERM during the apply: cancel the running statement, roll back what is
/// open, record the run `interrupted` with what it committed, and say so in one line.
async fn interrupted(
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
    let record = state::finish_deployment(&conn.client, id, "interrupted", applied, Some(&msg));
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
fn failure_text(f: &apply::ApplyFailure, settings: &Settings) -> String {
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

/// Why the pending batch cannot run on this server as configured: a transaction that would not
/// fit in the server's lock table (see `db::slots`), as a refusal and its hint.
async fn lock_table_refusal(
    conn: &crate::db::Conn,
    plan: &Plan,
    source: &crate::source::Source,
    settings: &Settings,
) -> Result<Option<(String, String)>> {
    let work = plan.work(&source.migrations);
    if work.is_empty() {
        return Ok(None);
    }
    let demands = slots::demands(&work);
    let dependents = slots::dependents(&conn.client, &slots::named(&demands)).await?;
    let capacity = slots::capacity(&conn.client).await?;
    Ok(slots::refusal(
        &work,
        &demands,
        settings.tx_mode,
        conn.version.major(),
        &dependents,
        &capacity,
    ))
}

/// Why the target's state stops a run: edited (unless `allow_edited` is `Some(true)`; `None`
/// for a command without `--allow-edited`), skipped and missing migrations.
pub(super) fn refusals(project: &Project, plan: &Plan, allow_edited: Option<bool>) -> Vec<String> {
    let ms = &project.source.migrations;
    let mut out = Vec::new();
    for (i, s) in plan.statuses.iter().enumerate() {
        match s {
            Status::Edited { recorded } if allow_edited != Some(true) => out.push(format!(
                "edited: {} was applied with hash {} but {} now hashes to {}{}",
                ms[i].name,
                short(recorded),
                ms[i].path.display(),
                short(&ms[i].checksum),
                if allow_edited.is_some() {
                    " (use --allow-edited to proceed anyway)"
                } else {
                    ""
                }
            )),
            Status::Partial {
                statements_done,
                edited: Some(recorded),
                ..
            } if allow_edited != Some(true) => out.push(format!(
                "edited: {} is partially applied (statements 1-{statements_done} committed, hash {}) and {} changed since, after its committed statements{}",
                ms[i].name,
                short(recorded),
                ms[i].path.display(),
                if allow_edited.is_some() {
                    format!(" (use --allow-edited to continue at statement {} with the file as it is now)", statements_done + 1)
                } else {
                    String::new()
                }
            )),
            Status::PartialChanged {
                statements_done,
                recorded,
            } => out.push(format!(
                "edited: {} is partially applied (statements 1-{statements_done} committed, hash {}) and {} changed in those committed statements; pgship cannot continue it: restore the file as it was applied",
                ms[i].name,
                short(recorded),
                ms[i].path.display(),
            )),
            Status::Skipped => out.push(format!(
                "skipped: {} is not applied but is ordered before the newest applied migration (drizzle would skip it forever); give it a later position or apply it by hand",
                ms[i].name
            )),
            _ => {}
        }
    }
    for (i, start) in plan.to_run() {
        let m = &ms[i];
        if let Some((stmt, _)) = m.refused_control()
            && m.statements[start..].contains(stmt)
        {
            out.push(format!(
                "transaction control: {}:{}: {}",
                m.path.display(),
                stmt.line,
                m.control_refusal().unwrap_or_default()
            ));
        }
    }
    for r in &plan.missing {
        let what = r
            .name
            .clone()
            .unwrap_or_else(|| format!("version {}", r.version));
        out.push(format!(
            "missing: {what} (hash {}) is applied but its file is not in the source",
            short(&r.hash)
        ));
    }
    out
}

/// What the target says against applying the first pending migration: state kept in another
/// table than the configured one, or its objects already there (see `db::preflight`).
pub(super) async fn state_refusals(
    client: &tokio_postgres::Client,
    project: &Project,
    records: usize,
    plan: &Plan,
) -> Result<Vec<String>> {
    let work = plan.work(&project.source.migrations);
    let Some(w) = work.first() else {
        return Ok(Vec::new());
    };
    // An interrupted statement's objects may exist: the engine judges it from the catalog.
    let first = (w.migration, w.start_at + usize::from(w.uncertain));
    Ok(crate::db::preflight::state_mismatch(client, &project.state, records, Some(first)).await?)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
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
    use super::*;

    #[test]
    fn lock_timeouts_that_are_no_limit_are_refused() {
        let ms = Duration::from_millis;
        let e = check_lock_timeout(Duration::ZERO, "--lock-timeout", false).unwrap_err();
        assert_eq!(e.code, ExitCode::Usage);
        assert!(
            e.message.starts_with("--lock-timeout must be at least 1ms"),
            "{e}"
        );
        assert!(check_lock_timeout(Duration::from_micros(400), "k", true).is_err());
        let e =
            check_lock_timeout(ms(61_000), "pgship.toml: [apply] lock_timeout", false).unwrap_err();
        assert!(
            e.message
                .starts_with("pgship.toml: [apply] lock_timeout 61s is above 60s"),
            "{e}"
        );
        assert!(e.hint.unwrap().contains("--allow-long-lock-timeout"));
        assert_eq!(
            check_lock_timeout(ms(61_000), "k", true).unwrap(),
            ms(61_000)
        );
        assert_eq!(
            check_lock_timeout(ms(60_000), "k", false).unwrap(),
            ms(60_000)
        );
        assert_eq!(check_lock_timeout(ms(1), "k", false).unwrap(), ms(1));
    }

    #[test]
    fn a_statement_timeout_under_a_millisecond_is_refused_but_zero_is_none() {
        assert!(
            check_statement_timeout(Duration::from_micros(500), "--statement-timeout").is_err()
        );
        assert_eq!(
            check_statement_timeout(Duration::ZERO, "k").unwrap(),
            Duration::ZERO
        );
    }

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
