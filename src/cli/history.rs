//! `pgship history [env]`: past runs, newest first, from the targets' `pgship.deployments`
//! and the local `.deployments/` folders. Parses, calls [`crate::journal::history`], prints.

use super::Globals;
use crate::config::Settings;
use crate::error::{ExitCode, Result};
use crate::journal::console::Format;
use crate::journal::history;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An environment (dev, uat, prod, or one in pgship.toml); without it, every environment
    /// whose URL is set, plus the local folders.
    pub env: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let found = history::collect(&settings, args.env.as_deref(), args.limit).await?;
    let console = &globals.console;
    for note in &found.notes {
        console.warn(note);
    }
    if console.format == Format::Json {
        console.json(&serde_json::to_value(&found.items).unwrap_or_default());
    } else if found.items.is_empty() {
        console.result("no deployments");
    } else {
        console.result(&history::render(&found.items));
    }
    Ok(ExitCode::Ok)
}
