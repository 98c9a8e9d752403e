//! PREFLIGHT: everything is read, nothing is changed. The target is reached over a read-only
//! session (never a transaction-mode pooler); the server version, the dump tools, the
//! migration state, the catalog and the git state are read concurrently; the pending list is
//! computed and every refusal (edited, skipped, missing, state kept elsewhere, transaction
//! control, a dirty migrations folder, a live deployment) is collected; the pending SQL is
//! linted with the target's catalog.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::Options;
use super::decide::Phase;
use super::log::Log;
use super::policy::{display, lint_pending};
use super::refusals::{lock_table_refusal, refusals, state_refusals};
use super::settings::Settings;
use crate::app::code::CodeOptions;
use crate::app::{App, CodeState, ProviderKind};
use crate::db::plan::{self as dbplan, Plan};
use crate::db::state::{self, DeadRun};
use crate::db::tools::{self, BinDir};
use crate::db::{ConnectOptions, DbUrl, connect};
use crate::error::{Error, Result};
use crate::lint::{Outcome, Severity, catalog};
use crate::project::Project;
use crate::rehearse::git::{self, GitState};
use crate::rehearse::report::Pending;

/// What PREFLIGHT found.
pub struct Preflight {
    pub settings: Settings,
    pub server_version: String,
    pub major: u32,
    pub tools: BinDir,
    pub plan: Plan,
    pub pending: Vec<Pending>,
    pub lint: Outcome,
    pub git: Option<GitState>,
    /// The code half's plan and findings (`[app] provider`).
    pub code: crate::app::code::Preflighted,
    /// Deployments left `running` by a process that is gone.
    pub dead: Vec<DeadRun>,
    /// Why the run must stop; empty when it may go on.
    pub refusals: Vec<String>,
}

/// Read everything PREFLIGHT needs from the target and the project.
pub async fn run(
    log: &mut Log,
    project: &Project,
    url: &DbUrl,
    opts: &Options,
    mut settings: Settings,
    app: &App,
) -> Result<Preflight> {
    let conn = connect_read_only(url, &settings).await?;
    let client = &conn.client;
    let major = conn.version.major();
    let project_dir = project.settings.project_dir.clone();
    let git_task = tokio::task::spawn_blocking(move || git::state(&project_dir));
    let tools_task = tokio::task::spawn_blocking(move || tools::find_dump_tools(major));
    let code_opts = CodeOptions {
        from: opts.from.clone(),
        // A plan only reports uncommitted changes.
        allow_dirty: opts.allow_dirty || opts.dry_run,
    };
    let (st, timeout, cat, dead, code) = tokio::join!(
        state::read(client, &project.state),
        crate::db::timeouts::resolve(client, settings.statement_timeout),
        catalog::load(client),
        dead_runs(client),
        app.preflight(&project.settings.project_dir, &code_opts),
    );
    let st = st?;
    honour_statement_timeout(log, &mut settings, timeout?);
    let git = git_task.await.ok().flatten();
    let tools = tools_task
        .await
        .map_err(|e| Error::usage(format!("finding pg_dump: {e}")))?
        .map_err(|e| {
            Error::usage(e).with_hint(
                "the rehearsal and the backup dump the target with them; install the PostgreSQL client tools of the server's version",
            )
        })?;
    let plan = dbplan::classify(
        &project.source.migrations,
        &st.records,
        &st.partials,
        project.state.matching(),
    );
    let mut refused = refusals(project, &plan, None);
    refused.extend(state_refusals(client, project, st.records.len(), &plan).await?);
    // With an app provider every tracked file is checked (the code half's refusals).
    if app.kind() == ProviderKind::None {
        refused.extend(git_refusal(project, git.as_ref(), opts));
    }
    refused.extend(code.refusals.iter().cloned());
    refused.extend(not_in_feature(project, &plan, app, &code, opts).await);
    // A batch whose transaction would not fit in the server's lock table fails there as it
    // would on the target: refused before a sandbox is made, with the way out.
    if refused.is_empty()
        && let Some((message, hint)) =
            lock_table_refusal(&conn, &plan, &project.source, &settings).await?
    {
        refused.push(format!("{message} ({hint})"));
    }
    let pending = pending(project, &plan);
    let lint = if pending.is_empty() || !refused.is_empty() {
        Outcome::default()
    } else {
        lint_pending(project, &plan.to_run(), settings.tx_mode, major, cat.ok())?
    };
    Ok(Preflight {
        settings,
        server_version: conn.version.text.clone(),
        major,
        tools,
        plan,
        pending,
        lint,
        git,
        code,
        dead: dead.unwrap_or_default(),
        refusals: refused,
    })
}

/// A read-only session on the target (never a transaction-mode pooler), with the engine's
/// timeouts.
async fn connect_read_only(url: &DbUrl, settings: &Settings) -> Result<crate::db::Conn> {
    if let Some(host) = url.pooler_host() {
        return Err(Error::usage(format!(
            "{} is a connection pooler host ({host}): pgship needs a direct connection",
            url.redacted()
        ))
        .with_hint("use the endpoint host without `-pooler`"));
    }
    let mut session = vec![(
        "default_transaction_read_only".to_string(),
        "on".to_string(),
    )];
    session.extend(settings.session());
    Ok(connect(
        url,
        &ConnectOptions {
            connect_timeout: settings.connect_timeout,
            settings: session,
        },
    )
    .await?)
}

/// The rehearsal and the apply use the lower of pgship's and the server's statement_timeout;
/// say which (at INFO when the server's applies).
fn honour_statement_timeout(
    log: &mut Log,
    settings: &mut Settings,
    t: crate::db::timeouts::StatementTimeout,
) {
    let server_set = t.configured.is_some();
    settings.honour(t);
    if let Some(line) = settings.statement_timeout_line() {
        let level = if server_set {
            crate::journal::Level::Info
        } else {
            crate::journal::Level::Debug
        };
        log.line(
            Phase::Preflight.as_str(),
            level,
            line,
            json!({"statement_timeout": settings.statement_timeout_from}),
        );
    }
}

/// Runs left `running` whose session is gone (none when pgship's schema does not exist).
async fn dead_runs(client: &tokio_postgres::Client) -> Result<Vec<DeadRun>> {
    Ok(state::dead_runs(client, false).await?)
}

fn pending(project: &Project, plan: &Plan) -> Vec<Pending> {
    plan.to_run()
        .iter()
        .map(|(i, start)| {
            let m = &project.source.migrations[*i];
            Pending {
                name: m.name.clone(),
                file: display(&project.settings.project_dir, &m.path),
                statements: m.statements.len(),
                resume_at: *start,
            }
        })
        .collect()
}

/// With the code half, the pending migrations must be in the feature commit as they are on
/// disk: the database gets the files read from the working tree, the app gets the commit, and
/// an untracked, uncommitted (`--allow-dirty`) or other branch's (`--from`) migration would be
/// applied without the code that goes with it (and, not being in the repository, be missing
/// for the next deploy). A plan does not check it.
async fn not_in_feature(
    project: &Project,
    plan: &Plan,
    app: &App,
    code: &crate::app::code::Preflighted,
    opts: &Options,
) -> Vec<String> {
    let Some(c) = code.plan.as_ref() else {
        return Vec::new();
    };
    let files = plan
        .to_run()
        .iter()
        .map(|(i, _)| project.source.migrations[*i].path.clone())
        .collect::<Vec<_>>();
    if files.is_empty() || opts.dry_run {
        return Vec::new();
    }
    let dir = &project.settings.project_dir;
    match app.not_in_feature(dir, c, files.clone()).await {
        Ok(missing) if missing.is_empty() => match &code.merged {
            Some(merged) => not_in_merge(app, dir, c, merged, files).await,
            None => Vec::new(),
        },
        Ok(missing) => {
            let shown: Vec<String> = missing.iter().map(|p| display(dir, p)).collect();
            vec![format!(
                "pending migration(s) {} are not in {} ({}) as they are on disk (untracked, uncommitted, or from another branch): the database would get them without the code; commit them to {}, or deploy the branch that has them",
                crate::util::fold_list(&shown, 5, 3),
                c.feature,
                &c.feature_commit[..c.feature_commit.len().min(12)],
                c.feature
            )]
        }
        Err(e) => vec![e],
    }
}

/// The pending migrations must also be in what merging the feature gives: a revert of an
/// earlier merge of the feature on the environment's branch (git takes the reverted commits as
/// merged) or a change there would leave them out of the pushed code.
async fn not_in_merge(
    app: &App,
    dir: &Path,
    c: &CodeState,
    merged: &str,
    files: Vec<PathBuf>,
) -> Vec<String> {
    let what = format!("{} merged into {}", c.feature, c.branch);
    match app.not_at(dir, merged, &what, files).await {
        Ok(missing) if missing.is_empty() => Vec::new(),
        Ok(missing) => {
            let shown: Vec<String> = missing.iter().map(|p| display(dir, p)).collect();
            vec![format!(
                "pending migration(s) {} are in {} but not as they are on disk in what merging it into {}/{} gives: the branch reverted an earlier merge of them, or changed them; revert that revert on {} (`git revert <revert commit>`), or rebase {} onto {}/{}",
                crate::util::fold_list(&shown, 5, 3),
                c.feature,
                c.remote,
                c.branch,
                c.branch,
                c.feature,
                c.remote,
                c.branch
            )]
        }
        Err(e) => vec![e],
    }
}

/// A deploy refuses uncommitted changes inside the migrations folder (it would deploy what git
/// does not hold) unless `--allow-dirty`; a plan only reports them. Other changes, untracked
/// files elsewhere and `.deployments/` never block.
fn git_refusal(project: &Project, git: Option<&GitState>, opts: &Options) -> Vec<String> {
    if opts.dry_run || opts.allow_dirty || git.is_none() {
        return Vec::new();
    }
    let dirty = git::dirty_in(&project.settings.project_dir, &project.source.dir);
    if dirty.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "uncommitted changes in the migrations folder {}: {} (commit them, or pass --allow-dirty to deploy the files as they are)",
        display(&project.settings.project_dir, &project.source.dir),
        crate::util::fold_list(&dirty, 5, 3)
    )]
}

/// A killed run's passfiles and partial dumps, in its local folder (if this machine ran it):
/// a passfile holds the password, and is never left behind once the run is known dead.
fn remove_leftovers(log: &mut Log, id: &str) {
    if crate::journal::artifacts::parse_run_id(id).is_err() {
        return;
    }
    let Some(root) = log.journal.dir.parent().map(Path::to_path_buf) else {
        return;
    };
    for sub in ["", "rollback"] {
        let dir = root.join(id).join(sub);
        match crate::backup::dump::remove_leftovers(&dir) {
            Ok(removed) if !removed.is_empty() => log.info(
                Phase::Preflight,
                format!("removed {} leftover file(s) of {id}", removed.len()),
                json!({"removed": removed}),
            ),
            Ok(_) => {}
            Err(e) => log.warn(Phase::Preflight, e.to_string(), json!({})),
        }
    }
}

/// Log what PREFLIGHT found and end the phase.
pub fn report(log: &mut Log, pf: &Preflight, started: Duration) {
    match &pf.git {
        Some(g) => log.info(
            Phase::Preflight,
            format!(
                "git: {} at {}{}",
                g.branch.as_deref().unwrap_or("(detached HEAD)"),
                &g.commit[..g.commit.len().min(12)],
                if g.clean {
                    ""
                } else {
                    " with uncommitted changes"
                }
            ),
            json!({"branch": g.branch, "commit": g.commit, "clean": g.clean}),
        ),
        None => log.line(
            Phase::Preflight.as_str(),
            crate::journal::Level::Debug,
            "git: the project is not in a git repository",
            json!({}),
        ),
    }
    for note in &pf.code.notes {
        log.info(Phase::Preflight, note.clone(), json!({}));
    }
    if let Some(c) = &pf.code.plan {
        log.info(
            Phase::Preflight,
            format!(
                "app: {} serves {} now",
                c.provider,
                c.previous_deployment
                    .as_deref()
                    .unwrap_or("no known deployment")
            ),
            json!({"code": c}),
        );
    }
    for d in &pf.dead {
        remove_leftovers(log, &d.id);
        log.warn(
            Phase::Preflight,
            format!("an earlier run was interrupted: {}", d.describe()),
            json!({"interrupted": d}),
        );
    }
    let errors = pf
        .lint
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    log.info(
        Phase::Preflight,
        format!(
            "PostgreSQL {}, {} pending migration(s), pg_dump from {}; static lint: {} finding(s), {errors} at error severity",
            pf.server_version,
            pf.pending.len(),
            pf.tools.dir.display(),
            pf.lint.findings.len()
        ),
        json!({"server_version": pf.server_version,
               "pending": pf.pending.iter().map(|p| &p.name).collect::<Vec<_>>(),
               "pg_dump": pf.tools.dir.display().to_string(), "tx_mode": pf.settings.tx_mode,
               "findings": pf.lint.findings.len(), "errors": errors,
               "elapsed_ms": started.as_millis() as u64}),
    );
}
