//! `pgship plan <target>`: `deploy --dry-run`. Reads the target only, rehearses the pending
//! migrations on a sandbox of it, and decides whether a deploy may proceed.

use super::Globals;
use super::deploy::RehearsalArgs;
use crate::deploy::{self, Options};
use crate::error::{ExitCode, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment name, `local`, or a postgres:// URL. Only read.
    pub target: String,
    #[command(flatten)]
    pub rehearsal: RehearsalArgs,
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let (project, target, url) = globals.project_with_target(&args.target)?;
    let opts = Options {
        dry_run: true,
        ..args.rehearsal.options()
    };
    deploy::run(&globals.ui(), &project, &target, &url, &opts).await
}
