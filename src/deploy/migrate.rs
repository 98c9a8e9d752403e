//! `migrate`: apply the pending migrations directly, with no rehearsal (local work, tests, the
//! engine's own face), under the migration lock, with the refusals every run makes first.

use std::time::Duration;

use serde_json::json;

use super::Ui;
use super::engine::{self, failure_text};
use super::refusals::{lock_table_refusal, refusals, state_refusals};
use super::settings::{EngineArgs, Settings};
use crate::db::apply::{ApplyOptions, Work};
use crate::db::plan::{self, Plan, Status};
use crate::db::timeouts;
use crate::db::{ConnectOptions, DbUrl, connect, lock, state};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::journal::{Journal, Level, phase};
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

/// What a run of `migrate` works with, once connected and locked.
struct Run<'a> {
    ui: &'a Ui,
    project: &'a Project,
    env_name: &'a str,
    url: &'a DbUrl,
    args: &'a Options,
    settings: &'a Settings,
    conn: &'a crate::db::Conn,
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
    let r = Run {
        ui,
        project,
        env_name,
        url,
        args,
        settings,
        conn,
    };
    let console = ui.console;
    let source = &project.source;
    let st = state::read(&conn.client, &project.state).await?;
    let plan = plan::classify(
        &source.migrations,
        &st.records,
        &st.partials,
        project.state.matching(),
    );
    r.refuse(&plan, st.records.len()).await?;
    let to_run = plan.to_run();
    if to_run.is_empty() {
        console.ok("nothing to apply: the target is up to date");
        if console.format == Format::Json {
            console.json(&json!({"target": url.redacted(), "status": "up-to-date", "applied": [], "dry_run": args.dry_run}));
        }
        return Ok(ExitCode::Ok);
    }
    if args.dry_run {
        r.show_dry_run(&to_run);
        return Ok(ExitCode::Ok);
    }
    if protected {
        console.confirm(
            ui.yes,
            &format!(
                "apply {} migration(s) to protected environment `{env_name}`?",
                to_run.len()
            ),
        )?;
    }
    r.apply(&plan).await
}

impl Run<'_> {
    /// Stop, changing nothing, when the state or the server's lock table says no.
    async fn refuse(&self, plan: &Plan, records: usize) -> Result<()> {
        let (console, url) = (self.ui.console, self.url);
        let client = &self.conn.client;
        let mut refusals = refusals(self.project, plan, Some(self.args.allow_edited));
        refusals.extend(state_refusals(client, self.project, records, plan).await?);
        if !refusals.is_empty() {
            if console.format == Format::Json {
                console.json(&json!({"target": url.redacted(), "status": "refused", "reasons": refusals, "applied": []}));
            }
            return Err(Error::refused(format!("refusing to migrate:\n  {}", refusals.join("\n  ")))
                .with_hint("pgship never repairs state by itself: restore the files as they were applied, or fix the database by hand"));
        }
        let source = &self.project.source;
        if let Some((message, hint)) =
            lock_table_refusal(self.conn, plan, source, self.settings).await?
        {
            if console.format == Format::Json {
                console.json(&json!({"target": url.redacted(), "status": "refused", "reasons": [message], "applied": []}));
            }
            return Err(Error::refused(format!("refusing to migrate: {message}")).with_hint(hint));
        }
        Ok(())
    }

    /// `--dry-run`: what would be applied (a long list folded unless -v).
    fn show_dry_run(&self, to_run: &[(usize, usize)]) {
        let console = self.ui.console;
        let source = &self.project.source;
        if console.format == Format::Json {
            let names: Vec<&str> = to_run
                .iter()
                .map(|(i, _)| source.migrations[*i].name.as_str())
                .collect();
            console.json(&json!({"target": self.url.redacted(), "status": "dry-run", "pending": names, "applied": [], "dry_run": true}));
            return;
        }
        console.result(&format!(
            "would apply {} migration(s) to {}:",
            to_run.len(),
            self.url.redacted()
        ));
        let shown = if console.verbose > 0 {
            to_run.iter().map(Ok).collect()
        } else {
            crate::util::fold_items(to_run, 5, 3)
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

    /// Record the run, finish runs killed earlier, and start the journal.
    async fn begin(&self, plan: &Plan) -> Result<(String, Journal)> {
        let (console, conn, source) = (self.ui.console, self.conn, &self.project.source);
        state::bootstrap(&conn.client).await?;
        // Runs killed earlier: nobody else holds the lock, so they are over; say what they left.
        for run in &state::dead_runs(&conn.client, true).await? {
            if state::mark_interrupted(&conn.client, run).await? {
                console.warn(&format!("interrupted earlier: {}", run.describe()));
            }
        }
        let id = super::new_id(&self.project.settings.project_dir, "migrate", self.env_name)?;
        let mut journal =
            Journal::create(&self.project.settings.project_dir, &id).map_err(|e| {
                Error::usage(format!(
                    "cannot write the deployment log under .deployments/: {e}"
                ))
            })?;
        let url = self.url.redacted();
        state::start_deployment(&conn.client, &id, "migrate", self.env_name, &url).await?;
        let names: Vec<&str> = plan
            .to_run()
            .iter()
            .map(|(i, _)| source.migrations[*i].name.as_str())
            .collect();
        let settings = self.settings;
        journal.log(
            phase::PREFLIGHT,
            Level::Info,
            format!("{} pending migration(s)", names.len()),
            json!({"target": url, "server_version": conn.version.text, "source": source.kind.as_str(),
                   "dir": source.dir.display().to_string(), "pending": names, "tx_mode": settings.tx_mode,
                   "lock_timeout_ms": settings.lock_timeout.as_millis() as u64, "lock_retries": settings.lock_retries,
                   "statement_timeout": settings.statement_timeout_from}),
        );
        let edited = plan.indices(|s| {
            matches!(
                s,
                Status::Edited { .. }
                    | Status::Partial {
                        edited: Some(_),
                        ..
                    }
            )
        });
        for i in edited {
            let name = &source.migrations[i].name;
            journal.log(
                phase::PREFLIGHT,
                Level::Warn,
                format!(
                    "applied migration {name} was edited; proceeding because of --allow-edited"
                ),
                json!({"migration": name, "allow_edited": true}),
            );
            console.warn(&format!(
                "{name} was edited after it was applied (--allow-edited)"
            ));
        }
        Ok((id, journal))
    }

    /// Apply, record the result, and say it.
    async fn apply(&self, plan: &Plan) -> Result<ExitCode> {
        let (id, mut journal) = self.begin(plan).await?;
        let (console, conn, settings) = (self.ui.console, self.conn, self.settings);
        let work: Vec<Work<'_>> = plan.work(&self.project.source.migrations);
        let apply_opts = ApplyOptions {
            tx_mode: settings.tx_mode,
            lock_retries: settings.lock_retries,
            backoff: Duration::from_millis(500),
            deployment_id: id.clone(),
            server_major: conn.version.major(),
            resolve_running: self.args.engine.resolve_running,
        };
        let outcome = engine::run(
            conn,
            &self.project.state,
            &work,
            &apply_opts,
            &mut journal,
            console,
        )
        .await?;
        let (status, applied, failure) = log_outcome(&mut journal, &outcome);
        let err_text = failure.as_ref().map(|f| failure_text(f, settings));
        let applied_count = i32::try_from(applied.len()).unwrap_or(i32::MAX);
        // A session lost during the run cannot record its result: the run's own failure is what
        // the user must see (the next run marks the row interrupted).
        let recorded = state::finish_deployment(
            &conn.client,
            &id,
            status,
            applied_count,
            err_text.as_deref(),
            None,
        );
        if let Err(e) = recorded.await {
            console.warn(&format!("could not record the run's result: {e}"));
        }
        if let Err(e) = journal.flush_db(&conn.client).await {
            console.warn(&format!("could not write pgship.deployment_logs: {e}"));
        }
        let log_path = journal.dir.join("deployment.log");
        if console.format == Format::Json {
            console.json(&json!({
                "target": self.url.redacted(), "deployment_id": id, "status": status, "applied": applied,
                "failure": failure, "statement_timeout": settings.statement_timeout_from,
                "log": log_path.display().to_string(),
            }));
        }
        match failure {
            None => {
                console.ok(&format!("applied {} migration(s) ({id})", applied.len()));
                Ok(ExitCode::Ok)
            }
            Some(f) => Err(Error::refused(failure_text(&f, settings))
                .with_hint(format!("the log is in {}", log_path.display()))),
        }
    }
}

/// The run's last line: SUCCESS with its duration, or FAILED with the error chain. Returns the
/// status, the migrations committed and the failure.
fn log_outcome(
    journal: &mut Journal,
    outcome: &engine::Applied,
) -> (
    &'static str,
    Vec<String>,
    Option<crate::db::apply::ApplyFailure>,
) {
    match outcome {
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
            ("succeeded", report.applied.clone(), None)
        }
        Err(f) => {
            let text = f.to_string();
            journal.log_error(
                phase::FAILED,
                text.lines().next().unwrap_or_default(),
                &text,
                serde_json::to_value(f.as_ref()).unwrap_or_default(),
            );
            ("failed", f.committed.clone(), Some(f.as_ref().clone()))
        }
    }
}
