//! `pgship lint [PATH...]`: the migration linter. With paths, lints those files and folders;
//! without, the project's migration source as pgship's engine would apply it; with
//! `--pending <target>`, only what is pending there; with `--database <target>`, sharpened
//! by that database's catalog.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::Globals;
use crate::config::Settings;
use crate::db::apply::TxMode;
use crate::db::plan::{self, Status};
use crate::db::{ConnectOptions, DbError, DbUrl, connect, state};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::lint::input::{self, Input};
use crate::lint::{self, Context, Hit, Outcome, Selection, Severity, Wrap, catalog, report, rules};
use crate::project::{Located, Project};
use crate::source::{self, Listed, Migration};

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

fn selection(settings: &Settings, args: &Args) -> Result<Selection> {
    let mut s = Selection::default();
    // Command-line switches win over pgship.toml's.
    let cli_enable: BTreeSet<String> = args.enable.iter().map(|x| x.trim().to_string()).collect();
    let cli_disable: BTreeSet<String> = args.disable.iter().map(|x| x.trim().to_string()).collect();
    for e in &settings.file.lint.enable {
        if !cli_disable.contains(e) {
            s.enable.insert(e.clone());
        }
    }
    for d in &settings.file.lint.disable {
        if !cli_enable.contains(d) {
            s.disable.insert(d.clone());
        }
    }
    s.enable.extend(cli_enable);
    s.disable.extend(cli_disable);
    s.validate().map_err(|e| {
        Error::usage(e)
            .with_hint("rules are named by ID (LK01) or name (create-index-not-concurrently)")
    })?;
    Ok(s)
}

/// RB08's findings: migrations ordered before the newest applied one (classified Skipped,
/// which migrate refuses), reported with the pending ones.
fn out_of_order(st: &state::State, ms: &[Migration], p: &plan::Plan) -> Vec<(String, Hit)> {
    let newest = st
        .records
        .iter()
        .map(|r| r.version.as_str())
        .filter(|v| !v.is_empty())
        .max_by(|a, b| crate::source::sql_dir::compare_versions(a, b));
    let pending: Vec<(String, String)> = p
        .statuses
        .iter()
        .zip(ms)
        .filter(|(s, _)| {
            matches!(
                s,
                Status::Pending | Status::Partial { .. } | Status::Skipped
            )
        })
        .map(|(_, m)| (m.name.clone(), plan::version_of(m)))
        .collect();
    rules::non_linear_history::out_of_order(&pending, newest)
}

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
    let console = &globals.console;
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let sel = selection(&settings, &args)?;
    let fail_on = match (args.fail_on, settings.file.lint.fail_on.as_deref()) {
        (Some(s), _) => s,
        (None, None) => Severity::Error,
        (None, Some(s)) => <Severity as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            Error::usage(format!(
                "[lint] fail_on = \"{s}\": expected error, warning or info"
            ))
        })?,
    };
    let opts = ConnectOptions::default();
    let url_of = |arg: &str| -> Result<DbUrl> {
        let t = settings.target(arg)?;
        Ok(DbUrl::parse(&t.url).map_err(DbError::from)?)
    };

    // The catalog, when asked for.
    let mut server_major = None;
    let mut cat = None;
    if let Some(db) = &args.database {
        let url = url_of(db)?;
        console.step(&format!("reading the catalog of {}", url.redacted()));
        let conn = connect(&url, &opts).await?;
        server_major = Some(conn.version.major());
        cat = Some(catalog::load(&conn.client).await?);
    }

    let explicit_wrap = args.assume_in_transaction.then_some(Wrap::File);
    let per_migration = matches!(
        settings
            .file
            .apply
            .tx_mode
            .as_deref()
            .map(str::parse::<TxMode>),
        Some(Ok(TxMode::PerMigration))
    );
    // Without a target, each migration is linted as if the earlier ones were applied already
    // (a table created by an earlier migration is an existing table); with --pending, the
    // pending ones run together as the engine will run them.
    let engine_wrap = explicit_wrap.unwrap_or(Wrap::Engine {
        per_migration: per_migration || args.pending.is_none(),
    });
    let mut extra: Vec<(String, Hit)> = Vec::new();
    let inputs = if !args.paths.is_empty() {
        input::read_paths(
            &globals.project,
            &args.paths,
            explicit_wrap.unwrap_or(Wrap::None),
            engine_wrap,
        )?
    } else if let Some(target) = &args.pending {
        // What is pending is told from the whole source (checksums, partial states); the
        // files are read again one at a time to lint them.
        let project = Project::load(
            &globals.project,
            globals.config.as_deref(),
            globals.migrations.as_deref(),
        )?;
        let url = url_of(target)?;
        console.step(&format!("reading what is pending on {}", url.redacted()));
        let conn = connect(&url, &opts).await?;
        server_major.get_or_insert(conn.version.major());
        let st = state::read(&conn.client, &project.state).await?;
        let ms = &project.source.migrations;
        let p = plan::classify(ms, &st.records, &st.partials, project.state.matching());
        let chosen: Vec<Listed> = p
            .statuses
            .iter()
            .zip(ms)
            .filter(|(s, _)| matches!(s, Status::Pending | Status::Partial { .. }))
            .map(|(_, m)| Listed {
                name: m.name.clone(),
                path: m.path.clone(),
            })
            .collect();
        extra = out_of_order(&st, ms, &p);
        input::from_migrations(&globals.project, project.source.kind, &chosen, engine_wrap)
    } else {
        let located = Located::new(
            &globals.project,
            globals.config.as_deref(),
            globals.migrations.as_deref(),
        )?;
        let listed = source::list_as(&located.dir, located.kind)?;
        input::from_migrations(&globals.project, located.kind, &listed, engine_wrap)
    };

    let pg_version = args
        .pg_version
        .or(server_major)
        .or(settings.file.lint.pg_version)
        .unwrap_or(17);
    let mut ctx = Context::new(pg_version, cat);
    let mut outcome = Outcome::default();
    // One file at a time, parsed ahead on every core (see lint::run).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    lint::run::lint_files(
        inputs.iter().map(Input::read),
        &mut ctx,
        &sel,
        &mut outcome,
        threads,
    )?;
    if let Some(rb08) = rules::find("RB08").filter(|r| sel.runs(r)) {
        for (name, hit) in extra {
            outcome.findings.push(lint::Finding {
                rule: rb08.id,
                name: rb08.name,
                severity: hit.severity.unwrap_or(rb08.severity),
                file: inputs
                    .iter()
                    .find(|i| i.name.contains(&name))
                    .map(|i| i.name.clone())
                    .unwrap_or(name),
                line: 1,
                column: 1,
                statement: String::new(),
                message: hit.message,
                help: hit.help.unwrap_or_else(|| rb08.help.to_string()),
            });
        }
    }

    match console.format {
        Format::Json => console.json(&report::json(&outcome)),
        Format::Sarif => console.json(&report::sarif(&outcome)),
        Format::Github => {
            let text = report::github(&outcome);
            if !text.is_empty() {
                console.result(&text);
            }
        }
        Format::Text | Format::Markdown => console.result(&report::text(&outcome)),
    }
    Ok(if outcome.findings.iter().any(|f| f.severity >= fail_on) {
        ExitCode::Refused
    } else {
        ExitCode::Ok
    })
}
