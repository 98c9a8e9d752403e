//! `pgship deploy <env>`: the whole pipeline (see `crate::deploy`). `plan <env>` is its dry run.

use std::path::PathBuf;
use std::time::Duration;

use super::sandbox::DataArg;
use super::{Globals, duration_arg};
use crate::deploy::settings::EngineArgs;
use crate::deploy::{self, Options};
use crate::error::{ExitCode, Result};
use crate::sandbox::Strategy;

/// How the rehearsal runs: shared by `deploy` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct RehearsalArgs {
    /// How to make the sandbox (default: [sandbox] strategy, else auto).
    #[arg(long, value_enum)]
    pub sandbox: Option<Strategy>,
    /// `full` (default): the target's rows; `schema`: no rows (faster, measures less).
    #[arg(long, value_enum, default_value = "full")]
    pub data: DataArg,
    /// The app's tests, run with DATABASE_URL and <ENV>_POSTGRES_URL pointing at the
    /// sandbox after the migrations; a non-zero exit aborts (default: [rehearsal] test_cmd).
    #[arg(long, value_name = "COMMAND")]
    pub test_cmd: Option<String>,
    /// Keep the sandbox afterwards (drop it with `pgship sandbox drop <id>`).
    #[arg(long)]
    pub keep_sandbox: bool,
    /// Folder of check queries that must return no rows (default: [rehearsal] checks_dir,
    /// else pgship/checks).
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
    /// The engine's settings, as the deploy will use them.
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl RehearsalArgs {
    pub fn options(self) -> Options {
        Options {
            sandbox: self.sandbox,
            data: self.data.mode(),
            test_cmd: self.test_cmd,
            keep_sandbox: self.keep_sandbox,
            checks: self.checks,
            engine: self.engine,
            ..Options::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment name, `local`, or a postgres:// URL.
    pub target: String,
    /// Stop after SANDBOX_VALIDATION (the same as `plan`): the target is only read.
    #[arg(long)]
    pub dry_run: bool,
    /// `auto`, `full`, `touched` or `neon` (default: [backup] strategy, else auto).
    #[arg(long, value_name = "STRATEGY")]
    pub backup: Option<String>,
    /// Deploy although there are uncommitted changes (in the migrations folder; with an app
    /// provider, in any tracked file): the committed state is what the code half merges.
    #[arg(long)]
    pub allow_dirty: bool,
    /// With an app provider: the ref merged into the environment's branch (default: the
    /// current branch).
    #[arg(long, value_name = "REF")]
    pub from: Option<String>,
    /// How many times to retry after a lock timeout, with exponential backoff [default: 5].
    #[arg(long, value_name = "N")]
    pub lock_retries: Option<u32>,
    /// How long to wait for another run's migration lock [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub lock_wait: Option<Duration>,
    #[command(flatten)]
    pub rehearsal: RehearsalArgs,
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let (project, target, url) = globals.project_with_target(&args.target)?;
    let opts = Options {
        dry_run: args.dry_run,
        backup: args.backup,
        allow_dirty: args.allow_dirty,
        from: args.from,
        lock_retries: args.lock_retries,
        lock_wait: args.lock_wait,
        ..args.rehearsal.options()
    };
    deploy::run(&globals.ui(), &project, &target, &url, &opts).await
}
