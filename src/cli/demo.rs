//! `pgship demo`: the whole deploy story on a throwaway local cluster with the example shop
//! project. Parses its one option and calls [`crate::demo::run`].

use std::path::PathBuf;

use super::Globals;
use crate::error::{ExitCode, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Use the PostgreSQL server binaries in this folder (default: the newest installed). The
    /// deploys dump with pg_dump of the server's major or newer: for a newer major than the
    /// installed client tools, also set PGSHIP_PG_BIN to this folder.
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let opts = crate::demo::Options {
        pg_bin: args.pg_bin,
    };
    crate::demo::run(&globals.ui(), &opts).await
}
