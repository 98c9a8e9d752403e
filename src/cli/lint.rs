//! `pgship lint [PATH...]`: the migration linter. With paths, lints those files and folders;
//! without, the project's migration source as pgship's engine would apply it; with
//! `--pending <target>`, only what is pending there; with `--database <target>`, sharpened
//! by that database's catalog. Parses, calls [`crate::lint::command::run`], prints.

use std::path::PathBuf;

use super::Globals;
use crate::error::{ExitCode, Result};
use crate::journal::console::Format;
use crate::lint::command::{self, Options};
use crate::lint::{Severity, report, rules};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files and folders to lint. A migrations folder (Drizzle, drizzle-kit v1, or
    /// <version>_<name>.sql files) is linted as pgship's engine applies it, like
    /// `--migrations DIR`; other folders: every .sql file in them, recursively, each on its
    /// own. Default: the project's migrations, as pgship's engine applies them.
    pub paths: Vec<PathBuf>,
    /// Lint only the migrations pending on this target (environment, `local` or URL).
    #[arg(long, value_name = "TARGET", conflicts_with = "paths")]
    pub pending: Option<String>,
    /// Use this database's catalog to sharpen findings (table sizes, column types, ...).
    #[arg(long, value_name = "TARGET")]
    pub database: Option<String>,
    /// PostgreSQL major version to lint for (default: the database's, else [lint] pg_version,
    /// else 17).
    #[arg(long, value_name = "N")]
    pub pg_version: Option<u32>,
    /// Each file runs inside one transaction (as a runner that wraps files would do).
    #[arg(long)]
    pub assume_in_transaction: bool,
    /// Turn rules on (IDs or names, comma-separated; `all` for every rule).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub enable: Vec<String>,
    /// Turn rules off (IDs or names, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub disable: Vec<String>,
    /// Fail (exit 1) on findings at or above this severity (default error, or [lint] fail_on).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
    /// List the rules and exit.
    #[arg(long)]
    pub list: bool,
}

impl Args {
    fn options(self, globals: &Globals) -> Options {
        Options {
            project_dir: globals.project.clone(),
            config: globals.config.clone(),
            migrations: globals.migrations.clone(),
            paths: self.paths,
            pending: self.pending,
            database: self.database,
            pg_version: self.pg_version,
            assume_in_transaction: self.assume_in_transaction,
            enable: self.enable,
            disable: self.disable,
            fail_on: self.fail_on,
        }
    }
}

/// The rules, as `--list` shows them.
fn list(globals: &Globals) {
    if globals.console.format == Format::Json {
        let rules: Vec<serde_json::Value> = rules::ALL
            .iter()
            .map(|r| serde_json::json!({"rule": r.id, "name": r.name, "severity": r.severity, "default": r.default_on, "summary": r.summary, "help": r.help}))
            .collect();
        globals.console.json(&serde_json::json!(rules));
        return;
    }
    let mut out = String::new();
    for r in rules::ALL {
        out.push_str(&format!(
            "{} {:<32} {:<7} {:<3} {}\n",
            r.id,
            r.name,
            r.severity.as_str(),
            if r.default_on { "on" } else { "off" },
            r.summary
        ));
    }
    globals.console.result(out.trim_end());
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    if args.list {
        list(globals);
        return Ok(ExitCode::Ok);
    }
    let linted = command::run(&globals.console, &args.options(globals)).await?;
    let (console, outcome) = (&globals.console, &linted.outcome);
    match console.format {
        Format::Json => console.json(&report::json(outcome)),
        Format::Sarif => console.json(&report::sarif(outcome)),
        Format::Github => {
            let text = report::github(outcome);
            if !text.is_empty() {
                console.result(&text);
            }
        }
        Format::Text | Format::Markdown => console.result(&report::text(outcome)),
    }
    Ok(if linted.failed {
        ExitCode::Refused
    } else {
        ExitCode::Ok
    })
}
