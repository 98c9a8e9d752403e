//! `pgship rollback <deployment-id>`: undo a finished deployment (see `crate::deploy::manual`).

use std::time::Duration;

use super::{Globals, duration_arg};
use crate::deploy::manual::{self, Options};
use crate::error::{ExitCode, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment to undo: `deploy-<env>-<unix-millis>` (see `pgship history`).
    pub deployment_id: String,
    /// Say what would be done, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for another run's migration lock [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub lock_wait: Option<Duration>,
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let project = crate::project::Project::load(
        &globals.project,
        globals.config.as_deref(),
        globals.migrations.as_deref(),
    )?;
    let opts = Options {
        dry_run: args.dry_run,
        lock_wait: args.lock_wait,
    };
    manual::run(&globals.ui(), &project, &args.deployment_id, &opts).await
}
