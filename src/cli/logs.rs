//! `pgship logs <deployment-id>`: a run's log lines, from `.deployments/<id>/` or the target's
//! `pgship.deployment_logs`. Parses, calls [`crate::journal::logs`], which prints as it reads.

use super::Globals;
use crate::config::Settings;
use crate::error::{ExitCode, Result};
use crate::journal::console::Format;
use crate::journal::{Level, logs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run's id, e.g. deploy-dev-1728149445123 (`pgship history` lists them).
    pub id: String,
    /// Only lines of this phase (PREFLIGHT, SANDBOX_VALIDATION, BACKUP, DEPLOY, ...).
    #[arg(long, value_name = "PHASE")]
    pub phase: Option<String>,
    /// Only lines at or above this level: DEBUG < INFO (and SUCCESS) < WARN < ERROR.
    #[arg(long, value_name = "LEVEL", value_parser = level_arg)]
    pub level: Option<Level>,
    /// Keep printing new lines while the run goes on (until it ends; Ctrl-C stops, exit 130).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

fn level_arg(s: &str) -> std::result::Result<Level, String> {
    Level::parse(s)
        .ok_or_else(|| format!("unknown level `{s}`: expected DEBUG, INFO, SUCCESS, WARN or ERROR"))
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let req = logs::Request {
        id: args.id,
        phase: args.phase,
        min_level: args.level,
        follow: args.follow,
        json: globals.console.format == Format::Json,
    };
    logs::run(&settings, &req).await
}
