//! `migrate`: apply the pending migrations directly, with no rehearsal (local work, tests, the
//! engine's own face), under the migration lock, with the refusals every run makes first.

use std::time::Duration;

use serde_json::json;

use super::Ui;
use super::engine::{self, failure_text};
use super::refusals::{lock_table_refusal, refusals, state_refusals};
use super::settings::{EngineArgs, Settings};
use crate::db::apply::{ApplyOptions, Work};
use crate::db::plan::{self, Status};
use crate::db::timeouts;
use crate::db::{ConnectOptions, DbUrl, connect, lock, state};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::journal::{Journal, Level, phase, run_id};
use crate::project::Project;
use crate::util::format_duration;

/// What `migrate` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub engine: EngineArgs,
    pub lock_retries: Option<u32>,
    pub lock_wait: Option<Duration>,
    pub allow_edited: bool,
}

/// Apply `project`'s pending migrations to `url`. Shared with `demo`.
pub async fn execute(
    ui: &Ui,
    project: &Project,
    env_name: &str,
    protected: bool,
    url: &DbUrl,
    args: &Options,
) -> Result<ExitCode> {
    let console = ui.console;
    let mut settings = Settings::resolve(project, &args.engine, args.lock_retries, args.lock_wait)?;
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
        ui, project, env_name, protected, url, args, &settings, &conn,
    )
    .await;
    let _ = lock::release(&conn.client, lock::MIGRATE_LOCK_KEY).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn locked(
    ui: &Ui,
    project: &Project,
    env_name: &str,
    protected: bool,
    url: &DbUrl,
    args: &Options,
    settings: &Settings,
    conn: &crate::db::Conn,
) -> Result<ExitCode> {
    let console = ui.console;
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
        console.confirm(
            ui.yes,
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
    let outcome = match engine::run(
        conn,
        &project.state,
        &work,
        &apply_opts,
        &mut journal,
        console,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return Err(e),
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
        None,
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
