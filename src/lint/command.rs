//! `pgship lint` as a library call: which rules run (flags over `[lint]`), what is linted (the
//! given paths, the project's migrations as the engine applies them, or only what is pending
//! on a target), the catalog that sharpens findings, and whether the findings fail the run.
//!
//! The one part of the linter that reads settings and connects (through [`crate::db`]): to a
//! target's catalog (`--database`) and migration state (`--pending`), read-only. The rules
//! themselves stay free of IO.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::input::{self, Input};
use super::{Context, Finding, Hit, Outcome, Selection, Severity, Wrap, catalog, rules};
use crate::config::Settings;
use crate::db::apply::TxMode;
use crate::db::plan::{self, Status};
use crate::db::{ConnectOptions, DbError, DbUrl, connect, state};
use crate::error::{Error, Result};
use crate::journal::Console;
use crate::project::{Located, Project};
use crate::source::{self, Listed, Migration};

/// What to lint and how, as `pgship lint` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The project folder, `--config` and `--migrations`.
    pub project_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub migrations: Option<PathBuf>,
    /// Files and folders to lint (empty: the project's migrations).
    pub paths: Vec<PathBuf>,
    /// Only the migrations pending on this target.
    pub pending: Option<String>,
    /// The target whose catalog sharpens findings.
    pub database: Option<String>,
    /// Over the database's version, `[lint] pg_version` and 17.
    pub pg_version: Option<u32>,
    /// Each file runs inside one transaction.
    pub assume_in_transaction: bool,
    /// Rules turned on and off, over `[lint]`'s.
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    /// Over `[lint] fail_on` and `error`.
    pub fail_on: Option<Severity>,
}

/// What a lint run found.
pub struct Linted {
    pub outcome: Outcome,
    /// A finding at or above the fail-on severity exists.
    pub failed: bool,
}

/// What is linted, and the findings found besides the files' (RB08's, from the state).
struct Inputs {
    files: Vec<Input>,
    out_of_order: Vec<(String, Hit)>,
    server_major: Option<u32>,
}

/// Lint as `opts` asks. Progress (what is read from which database) goes to the console.
pub async fn run(console: &Console, opts: &Options) -> Result<Linted> {
    let settings = Settings::load(&opts.project_dir, opts.config.as_deref())?;
    let sel = selection(&settings, opts)?;
    let fail_on = fail_on(&settings, opts)?;
    let url_of = |arg: &str| -> Result<DbUrl> {
        let t = settings.target(arg)?;
        Ok(DbUrl::parse(&t.url).map_err(DbError::from)?)
    };

    // The catalog, when asked for.
    let mut server_major = None;
    let mut cat = None;
    if let Some(db) = &opts.database {
        let url = url_of(db)?;
        console.step(&format!("reading the catalog of {}", url.redacted()));
        let conn = connect(&url, &ConnectOptions::default()).await?;
        server_major = Some(conn.version.major());
        cat = Some(catalog::load(&conn.client).await?);
    }
    let inputs = inputs(console, &settings, opts, url_of).await?;
    let pg_version = opts
        .pg_version
        .or(server_major)
        .or(inputs.server_major)
        .or(settings.file.lint.pg_version)
        .unwrap_or(17);
    let mut ctx = Context::new(pg_version, cat);
    let mut outcome = Outcome::default();
    // One file at a time, parsed ahead on every core (see lint::run).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    super::run::lint_files(
        inputs.files.iter().map(Input::read),
        &mut ctx,
        &sel,
        &mut outcome,
        threads,
    )?;
    add_out_of_order(&mut outcome, &sel, &inputs.files, inputs.out_of_order);
    let failed = outcome.findings.iter().any(|f| f.severity >= fail_on);
    Ok(Linted { outcome, failed })
}

/// The files to lint: the paths given, what is pending on a target, or the project's
/// migrations.
async fn inputs(
    console: &Console,
    settings: &Settings,
    opts: &Options,
    url_of: impl Fn(&str) -> Result<DbUrl>,
) -> Result<Inputs> {
    let explicit_wrap = opts.assume_in_transaction.then_some(Wrap::File);
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
        per_migration: per_migration || opts.pending.is_none(),
    });
    let mut out = Inputs {
        files: Vec::new(),
        out_of_order: Vec::new(),
        server_major: None,
    };
    if !opts.paths.is_empty() {
        out.files = input::read_paths(
            &opts.project_dir,
            &opts.paths,
            explicit_wrap.unwrap_or(Wrap::None),
            engine_wrap,
        )?;
    } else if let Some(target) = &opts.pending {
        out = pending(console, opts, target, url_of, engine_wrap).await?;
    } else {
        let located = Located::new(
            &opts.project_dir,
            opts.config.as_deref(),
            opts.migrations.as_deref(),
        )?;
        let listed = source::list_as(&located.dir, located.kind)?;
        out.files = input::from_migrations(&opts.project_dir, located.kind, &listed, engine_wrap);
    }
    Ok(out)
}

/// The migrations pending (or partial) on `target`, and the ones ordered before its newest
/// applied one.
async fn pending(
    console: &Console,
    opts: &Options,
    target: &str,
    url_of: impl Fn(&str) -> Result<DbUrl>,
    wrap: Wrap,
) -> Result<Inputs> {
    // What is pending is told from the whole source (checksums, partial states); the files
    // are read again one at a time to lint them.
    let project = Project::load(
        &opts.project_dir,
        opts.config.as_deref(),
        opts.migrations.as_deref(),
    )?;
    let url = url_of(target)?;
    console.step(&format!("reading what is pending on {}", url.redacted()));
    let conn = connect(&url, &ConnectOptions::default()).await?;
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
    Ok(Inputs {
        files: input::from_migrations(&opts.project_dir, project.source.kind, &chosen, wrap),
        out_of_order: out_of_order(&st, ms, &p),
        server_major: Some(conn.version.major()),
    })
}

/// The rules that run: command-line switches win over pgship.toml's.
fn selection(settings: &Settings, opts: &Options) -> Result<Selection> {
    let mut s = Selection::default();
    let cli_enable: BTreeSet<String> = opts.enable.iter().map(|x| x.trim().to_string()).collect();
    let cli_disable: BTreeSet<String> = opts.disable.iter().map(|x| x.trim().to_string()).collect();
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

/// `--fail-on`, else `[lint] fail_on`, else error.
fn fail_on(settings: &Settings, opts: &Options) -> Result<Severity> {
    Ok(
        match (opts.fail_on, settings.file.lint.fail_on.as_deref()) {
            (Some(s), _) => s,
            (None, None) => Severity::Error,
            (None, Some(s)) => <Severity as clap::ValueEnum>::from_str(s, true).map_err(|_| {
                Error::usage(format!(
                    "[lint] fail_on = \"{s}\": expected error, warning or info"
                ))
            })?,
        },
    )
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

/// RB08's findings added to the outcome when RB08 runs, each on the file it names.
fn add_out_of_order(
    outcome: &mut Outcome,
    sel: &Selection,
    files: &[Input],
    found: Vec<(String, Hit)>,
) {
    let Some(rb08) = rules::find("RB08").filter(|r| sel.runs(r)) else {
        return;
    };
    for (name, hit) in found {
        outcome.findings.push(Finding {
            rule: rb08.id,
            name: rb08.name,
            severity: hit.severity.unwrap_or(rb08.severity),
            file: files
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
