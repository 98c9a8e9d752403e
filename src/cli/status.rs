//! `pgship status <target>`: what is applied, pending, edited, missing, skipped or partial,
//! the server version, the pg_dump later phases would use, and the lock holder. Read-only.
//! `--exit-code` makes it a CI gate: exit 1 unless the state is clean.

use super::Globals;
use crate::db::DbUrl;
use crate::error::{ExitCode, Result};
use crate::journal::console::Format;
use crate::project::Project;
use crate::status::{collect, render, unclean};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment name, `local`, or a postgres:// URL.
    pub target: String,
    /// Exit 1 when a migration is edited, skipped, missing or partially applied, a run was
    /// interrupted (left `running`, its session gone), or the state has a problem `migrate`
    /// would refuse on (pending migrations are clean).
    #[arg(long)]
    pub exit_code: bool,
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let (project, target, url) = globals.project_with_target(&args.target)?;
    let env = matches!(target.origin, crate::config::TargetOrigin::Environment(_))
        .then_some(target.name.as_str());
    show(globals, &project, &url, env, args.exit_code).await
}

/// Collect and print the status of `project` on `url`; with `exit_code`, exit 1 unless it is
/// clean.
pub async fn show(
    globals: &Globals,
    project: &Project,
    url: &DbUrl,
    environment: Option<&str>,
    exit_code: bool,
) -> Result<ExitCode> {
    let report = collect(project, url, environment).await?;
    if globals.console.format == Format::Json {
        globals.console.json(&report);
    } else {
        globals
            .console
            .result(&render(&report, globals.console.verbose > 0));
    }
    Ok(if exit_code && !unclean(&report).is_empty() {
        ExitCode::Refused
    } else {
        ExitCode::Ok
    })
}
