//! `pgship compare <source> <target>`: what would change in target if source's schema were
//! deployed onto it, with breaking changes marked, schema fingerprints, and with `--data`
//! row counts, content hashes and orphaned foreign-key rows. Parses, calls
//! [`crate::compare::command::run`], prints the report.

use super::Globals;
use crate::compare::command::{self, Compared, Options};
use crate::compare::fdw::FdwPlace;
use crate::compare::report;
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Read both catalogs over two connections and diff them in pgship (covers everything).
    Catalog,
    /// Compute the differences in SQL in the source database through postgres_fdw (covers
    /// tables, columns, indexes, constraints and enums; names the kinds it does not cover).
    Fdw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FdwIn {
    /// In the source database, inside a transaction that is rolled back.
    Source,
    /// In a scratch database created (and dropped) on the source's server.
    Scratch,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The schema to deploy: an environment name, `local`, or a postgres:// URL.
    pub source: String,
    /// The database it would be deployed onto: an environment name, `local`, or a URL.
    pub target: String,
    /// How differences are computed.
    #[arg(long, value_enum, default_value = "catalog")]
    pub engine: Engine,
    /// Where the fdw engine creates its objects.
    #[arg(long, value_enum, default_value = "source", value_name = "WHERE")]
    pub fdw_in: FdwIn,
    /// Compare only this schema (repeatable).
    #[arg(long = "schema", value_name = "SCHEMA")]
    pub schemas: Vec<String>,
    /// Leave this schema out (repeatable).
    #[arg(long = "exclude-schema", value_name = "SCHEMA")]
    pub exclude_schemas: Vec<String>,
    /// Also compare pgship's own schema and the migration-state schema (drizzle's).
    #[arg(long)]
    pub include_state: bool,
    /// Also compare data: row counts, content hashes and orphaned foreign-key rows.
    #[arg(long)]
    pub data: bool,
    /// With --data: estimated row counts (pg_class.reltuples) instead of count(*), no hashes.
    #[arg(long, requires = "data")]
    pub fast: bool,
    /// With --data: tables larger than this get no content hash (default 256MB, or
    /// [compare] data_max_size).
    #[arg(long, value_name = "SIZE", requires = "data", value_parser = crate::util::parse_size)]
    pub data_max_size: Option<u64>,
    /// How long to wait for a lock on a table (reading the schema, and the rows with --data)
    /// before giving up and naming the session that holds it (default 5s, as the sandbox clone,
    /// or [compare] lock_wait_timeout; at least 1ms).
    #[arg(long, value_name = "DURATION", value_parser = super::duration_arg)]
    pub lock_wait_timeout: Option<std::time::Duration>,
    /// Exit 1 when anything differs.
    #[arg(long)]
    pub exit_code: bool,
}

impl Args {
    fn options(self, globals: &Globals) -> Options {
        Options {
            project_dir: globals.project.clone(),
            config: globals.config.clone(),
            migrations: globals.migrations.clone(),
            source: self.source,
            target: self.target,
            engine: match (self.engine, self.fdw_in) {
                (Engine::Catalog, _) => command::Engine::Catalog,
                (Engine::Fdw, FdwIn::Source) => command::Engine::Fdw(FdwPlace::Source),
                (Engine::Fdw, FdwIn::Scratch) => command::Engine::Fdw(FdwPlace::Scratch),
            },
            schemas: self.schemas,
            exclude_schemas: self.exclude_schemas,
            include_state: self.include_state,
            data: self.data,
            fast: self.fast,
            data_max_size: self.data_max_size,
            lock_wait_timeout: self.lock_wait_timeout,
        }
    }
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let exit_code = args.exit_code;
    let compared = command::run(&globals.console, &args.options(globals)).await?;
    print(globals, &compared)?;
    Ok(if exit_code && !compared.report.identical {
        ExitCode::Refused
    } else {
        ExitCode::Ok
    })
}

/// The report in the asked format.
fn print(globals: &Globals, Compared { report, data }: &Compared) -> Result<()> {
    let console = &globals.console;
    match console.format {
        Format::Json => console.result(
            &serde_json::to_string_pretty(report)
                .map_err(|e| Error::usage(format!("internal error: rendering the report: {e}")))?,
        ),
        Format::Markdown => console.result(&report::markdown(
            report,
            data.as_ref()
                .map(|d| report::data_markdown(d, &report.names))
                .as_deref(),
        )),
        Format::Text | Format::Sarif | Format::Github => console.result(&report::text(
            report,
            data.as_ref()
                .map(|d| report::data_text(d, &report.names))
                .as_deref(),
        )),
    }
    Ok(())
}
