//! The deployment pipeline (DESIGN.md): PREFLIGHT -> SANDBOX_VALIDATION -> BACKUP -> DEPLOY ->
//! POST_DEPLOY_VALIDATION -> SUCCESS, or ROLLBACK -> ROLLED_BACK | NEEDS_HUMAN.

pub mod alerts;
pub mod app;
pub mod apply;
pub mod backup;
pub mod code_only;
pub mod decide;
pub mod engine;
pub mod guard;
pub mod log;
pub mod manual;
pub mod migrate;
mod pipeline;
pub mod policy;
pub mod post_deploy;
pub mod preflight;
pub mod refusals;
pub mod report;
pub mod rollback;
pub mod sandbox_validation;
pub mod settings;
pub mod state_file;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::config::Target;
use crate::db::DbUrl;
use crate::error::{Error, ExitCode, Result};
use crate::journal::{Console, Journal};
use crate::project::Project;

/// Tables up to this size get a row count and content hash in the data-loss guard's reads
/// (bigger ones only their write counters).
pub const GUARD_HASH_MAX_BYTES: i64 = 64 << 20;

/// What the pipeline needs to talk to the user: the console, and whether `--yes` was given.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub console: Console,
    pub yes: bool,
}

/// What `deploy` (and `plan`, its dry run) was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Stop after SANDBOX_VALIDATION and print the rehearsal's report (`plan`).
    pub dry_run: bool,
    /// How to make the sandbox (default: `[sandbox] strategy`, else auto).
    pub sandbox: Option<crate::sandbox::Strategy>,
    /// The sandbox's rows: the target's (full) or none (schema).
    pub data: crate::sandbox::clone::DataMode,
    /// The app's tests, run against the sandbox.
    pub test_cmd: Option<String>,
    pub keep_sandbox: bool,
    /// Check queries that must return no rows on the sandbox.
    pub checks: Option<std::path::PathBuf>,
    pub engine: settings::EngineArgs,
    pub lock_retries: Option<u32>,
    pub lock_wait: Option<std::time::Duration>,
    /// `--backup`: overrides `[backup] strategy`.
    pub backup: Option<String>,
    /// Deploy although the migrations folder (or, with an app provider, any tracked file) has
    /// uncommitted changes.
    pub allow_dirty: bool,
    /// The ref whose code is merged into the environment's branch (default: the current
    /// branch).
    pub from: Option<String>,
}

/// One deployment's fixed inputs.
pub struct Ctx<'a> {
    pub project: &'a Project,
    pub target: &'a Target,
    pub url: &'a DbUrl,
    pub id: String,
    pub resolve_running: Option<crate::db::apply::ResolveRunning>,
    /// The project folder, absolute (paths in the artifacts must not depend on the current
    /// folder).
    pub project_dir: std::path::PathBuf,
}

/// A new deployment id, `<kind>-<env>-<unix-millis>`, unique in this project: its folder under
/// `.deployments/` is created exclusively, and a taken millisecond moves to the next one.
pub fn new_id(project_dir: &Path, kind: &str, env: &str) -> Result<String> {
    let root = project_dir.join(".deployments");
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::usage(format!("cannot write {}: {e}", root.display())))?;
    let mut millis = crate::util::unix_millis();
    loop {
        let id = format!("{kind}-{env}-{millis}");
        match std::fs::DirBuilder::new()
            .mode(0o700)
            .create(root.join(&id))
        {
            Ok(()) => return Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => millis += 1,
            Err(e) => {
                return Err(Error::usage(format!(
                    "cannot create {}: {e}",
                    root.join(&id).display()
                )));
            }
        }
    }
}

/// `pgship deploy <env>` (and `plan <env>`, its dry run): the whole pipeline.
pub async fn run(
    ui: &Ui,
    project: &Project,
    target: &Target,
    url: &DbUrl,
    opts: &Options,
) -> Result<ExitCode> {
    let kind = if opts.dry_run { "plan" } else { "deploy" };
    // Paths recorded in rollback-state.json must not depend on the current folder.
    let abs = std::path::absolute(&project.settings.project_dir)
        .map_err(|e| Error::usage(format!("{}: {e}", project.settings.project_dir.display())))?;

    let id = new_id(&abs, kind, &target.name)?;
    let journal = Journal::create(&abs, &id).map_err(|e| {
        Error::usage(format!(
            "cannot write the deployment log under .deployments/: {e}"
        ))
    })?;
    let mut log = log::Log::new(journal, ui.console);
    let ctx = Ctx {
        project,
        target,
        url,
        id,
        resolve_running: opts.engine.resolve_running,
        project_dir: abs,
    };
    if target.protected && !opts.dry_run {
        ui.console.confirm(
            ui.yes,
            &format!("deploy to protected environment `{}`?", target.name),
        )?;
    }
    let result = pipeline::run(&mut log, &ctx, opts).await;
    if let Err(e) = &result {
        alerts::failed_run(&mut log, &ctx, opts, e).await;
    }
    result
}
