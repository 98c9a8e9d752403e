//! `pgship migrate <target>`: apply pending migrations directly, under the migration lock.

use std::time::Duration;

use super::{Globals, duration_arg};
use crate::deploy::migrate::{self, Options};
use crate::deploy::settings::EngineArgs;
use crate::error::{ExitCode, Result};

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

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let (project, target, url) = globals.project_with_target(&args.target)?;
    let opts = Options {
        dry_run: args.dry_run,
        engine: args.engine,
        lock_retries: args.lock_retries,
        lock_wait: args.lock_wait,
        allow_edited: args.allow_edited,
    };
    migrate::execute(
        &globals.ui(),
        &project,
        &target.name,
        target.protected,
        &url,
        &opts,
    )
    .await
}
