//! `pgship alert test [--channel slack|email|webhook]` (see `crate::alert::command`).

use super::Globals;
use crate::alert::{Channel, command};
use crate::error::{ExitCode, Result};
use crate::journal::console::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AlertCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AlertCommand {
    /// Send a test alert to every configured channel (routing aside) and say, per channel,
    /// whether it was delivered.
    ///
    /// Exit 0: every configured channel delivered it; 1: a configured channel failed (why is
    /// said, without its URL, token or password); 2: no channel asked for is configured.
    Test {
        /// Only this channel.
        #[arg(long, value_enum)]
        channel: Option<Channel>,
    },
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let AlertCommand::Test { channel } = args.command;
    let settings = crate::config::Settings::load(&globals.project, globals.config.as_deref())?;
    let (code, deliveries) = command::test(&settings, channel).await?;
    let console = globals.console;
    match console.format {
        Format::Json => console.json(&serde_json::to_value(&deliveries).unwrap_or_default()),
        _ => {
            let lines: Vec<String> = deliveries.iter().map(|d| d.describe()).collect();
            console.result(&lines.join("\n"));
        }
    }
    Ok(code)
}
