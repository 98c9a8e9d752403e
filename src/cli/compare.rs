//! `pgship compare <source> <target>`: what would change in target if source's schema were
//! deployed onto it, with breaking changes marked, schema fingerprints, and with `--data`
//! row counts, content hashes and orphaned foreign-key rows. Read-only on both databases
//! (the fdw engine creates its objects in a transaction it rolls back).
//!
//! Two databases share no catalog identity, so a renamed table or column is only recognised
//! from SQL: the renames in the project's migrations that the target has not applied (the
//! catalog engine). Without a project, or with nothing pending, a rename is a removal plus an
//! addition.

use std::time::Instant;

use tokio_postgres::Client;

use super::Globals;
use crate::compare::data::{self, DataOptions, DataReport};
use crate::compare::model::Model;
use crate::compare::names::Names;
use crate::compare::renames::Renames;
use crate::compare::report::{self, Fingerprints, Report};
use crate::compare::{BreakingPolicy, SchemaFilter, diff, fdw, introspect};
use crate::config::Settings;
use crate::db::{ConnectOptions, DbError, DbUrl, connect, plan as dbplan, state};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::project::Project;
use crate::source::drizzle_config;

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

/// The schemas compared by default: all but system schemas, pgship's and the state schema.
pub fn schema_filter(settings: &Settings, args: &Args) -> SchemaFilter {
    let mut exclude = args.exclude_schemas.clone();
    if !args.include_state {
        exclude.push("pgship".into());
        let state = settings
            .file
            .migrations
            .drizzle_schema
            .clone()
            .or_else(|| {
                drizzle_config::find(&settings.project_dir)
                    .ok()
                    .flatten()
                    .map(|c| c.table.schema)
            })
            .unwrap_or_else(|| "drizzle".into());
        exclude.push(state);
    }
    SchemaFilter {
        include: args.schemas.clone(),
        exclude,
    }
}

/// The renames that the project's migrations pending on the target make, kept where both
/// schemas agree (the old name in the target, the new one in the source), and how many
/// migrations are pending. Nothing when there is no project folder pgship can read or its
/// state cannot be read from the target: then no SQL says what was renamed.
async fn pending_renames(
    globals: &Globals,
    target: &Client,
    source_model: &Model,
    target_model: &Model,
) -> std::result::Result<(Renames, usize), String> {
    let project = Project::load(
        &globals.project,
        globals.config.as_deref(),
        globals.migrations.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let st = state::read(target, &project.state)
        .await
        .map_err(|e| e.to_string())?;
    let migrations = &project.source.migrations;
    let to_run = dbplan::classify(
        migrations,
        &st.records,
        &st.partials,
        project.state.matching(),
    )
    .to_run();
    let statements = to_run
        .iter()
        .flat_map(|(i, start)| migrations[*i].statements.iter().skip(*start))
        .map(|s| s.sql.as_str());
    let renames = Renames::from_sql(statements).validated(source_model, target_model);
    Ok((renames, to_run.len()))
}

/// `--lock-wait-timeout`, else `[compare] lock_wait_timeout`, else the clone's 5s. Zero is
/// refused: as a `lock_timeout` it means waiting forever.
fn lock_wait(settings: &Settings, args: &Args) -> Result<std::time::Duration> {
    let (wait, origin) = match (
        args.lock_wait_timeout,
        &settings.file.compare.lock_wait_timeout,
    ) {
        (Some(d), _) => (d, "--lock-wait-timeout".to_string()),
        (None, Some(text)) => (
            crate::util::parse_duration(text)
                .map_err(|e| Error::usage(format!("[compare] lock_wait_timeout: {e}")))?,
            "[compare] lock_wait_timeout".to_string(),
        ),
        (None, None) => return Ok(DataOptions::default().lock_wait),
    };
    if wait.as_millis() == 0 {
        return Err(Error::usage(format!(
            "{origin} must be at least 1ms: as a lock_timeout, 0 means waiting forever behind \
             the application's locks"
        )));
    }
    Ok(wait)
}

fn resolve(settings: &Settings, arg: &str) -> Result<DbUrl> {
    let target = settings.target(arg)?;
    Ok(DbUrl::parse(&target.url).map_err(DbError::from)?)
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let console = &globals.console;
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let policy = BreakingPolicy::from_config(&settings.file.policy.breaking).map_err(|e| {
        Error::usage(format!(
            "{}: {e}",
            settings
                .config_path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "pgship.toml".into())
        ))
    })?;
    let source_url = resolve(&settings, &args.source)?;
    let target_url = resolve(&settings, &args.target)?;
    let filter = schema_filter(&settings, &args);
    let lock_wait = lock_wait(&settings, &args)?;
    let started = Instant::now();

    console.step(&format!(
        "connecting to {} and {}",
        source_url.redacted(),
        target_url.redacted()
    ));
    // Reading the catalog can wait for a table's lock too (pg_get_indexdef): never for long.
    let opts = ConnectOptions {
        settings: vec![(
            "lock_timeout".into(),
            lock_wait.as_millis().max(1).to_string(),
        )],
        ..ConnectOptions::default()
    };
    let (source, target) =
        tokio::try_join!(connect(&source_url, &opts), connect(&target_url, &opts))?;
    console.step("reading both schemas");
    let on = |side: &str, url: &DbUrl| {
        let what = format!("the {side} ({})", url.redacted());
        move |e: DbError| DbError::Other(format!("{what}: {e}"))
    };
    let (source_model, target_model) = tokio::try_join!(
        async {
            introspect::introspect(&source.client, &filter)
                .await
                .map_err(on("source", &source_url))
        },
        async {
            introspect::introspect(&target.client, &filter)
                .await
                .map_err(on("target", &target_url))
        }
    )?;
    console.detail(&format!(
        "source: {} objects, target: {} objects ({} catalog queries each)",
        source_model.object_count(),
        target_model.object_count(),
        introspect::query_count()
    ));
    let fingerprints = Fingerprints {
        source: source_model.fingerprint(),
        target: target_model.fingerprint(),
    };
    let data_opts = if args.data {
        let max_bytes = match (args.data_max_size, &settings.file.compare.data_max_size) {
            (Some(n), _) => n,
            (None, Some(text)) => crate::util::parse_size(text)
                .map_err(|e| Error::usage(format!("[compare] data_max_size: {e}")))?,
            (None, None) => DataOptions::default().max_bytes,
        };
        Some(DataOptions {
            fast: args.fast,
            max_bytes,
            lock_wait,
        })
    } else {
        None
    };
    let (engine, mut differences, not_covered, data_report) =
        match args.engine {
            Engine::Catalog => {
                let renames =
                    match pending_renames(globals, &target.client, &source_model, &target_model)
                        .await
                    {
                        Ok((r, pending)) => {
                            console.detail(&format!(
                            "{} rename(s) from the {pending} migration(s) pending on the target",
                            r.tables.len() + r.columns.len()
                        ));
                            r
                        }
                        Err(why) => {
                            console.detail(&format!(
                            "renames are not looked for (no migration SQL to read them from): {why}"
                        ));
                            Renames::default()
                        }
                    };
                let data_report = match &data_opts {
                    Some(opts) => {
                        console.step("comparing data (row counts, content hashes, orphaned rows)");
                        Some(data::compare(&source.client, &target.client, &filter, opts).await?)
                    }
                    None => None,
                };
                (
                    "catalog",
                    diff::diff_with(&source_model, &target_model, &renames),
                    Vec::new(),
                    data_report,
                )
            }
            Engine::Fdw => {
                drop((source, target));
                console
                    .step("computing the differences through postgres_fdw in the source's server");
                let out = fdw::compare(
                    &source_url,
                    &target_url,
                    &opts,
                    &fdw::FdwOptions {
                        place: match args.fdw_in {
                            FdwIn::Source => fdw::FdwPlace::Source,
                            FdwIn::Scratch => fdw::FdwPlace::Scratch,
                        },
                        filter: filter.clone(),
                        data: data_opts.clone(),
                    },
                )
                .await?;
                for l in &out.removed_leftovers {
                    console.warn(&format!(
                        "removed a leftover of an earlier, killed run: {l}"
                    ));
                }
                let mut d = out.differences;
                crate::compare::sort(&mut d);
                ("fdw", d, out.not_covered, out.data)
            }
        };
    policy.apply(&mut differences);
    let identical =
        differences.is_empty() && !data_report.as_ref().is_some_and(DataReport::differs);
    let report = Report {
        source: source_url.redacted(),
        target: target_url.redacted(),
        engine,
        identical,
        fingerprints,
        differences,
        not_covered,
        names: Names::from_models(&[&source_model, &target_model]),
        data: data_report
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::usage(format!("internal error: rendering the data report: {e}")))?,
    };
    console.ok(&format!(
        "compared in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    match console.format {
        Format::Json => console.result(
            &serde_json::to_string_pretty(&report)
                .map_err(|e| Error::usage(format!("internal error: rendering the report: {e}")))?,
        ),
        Format::Markdown => console.result(&report::markdown(
            &report,
            data_report
                .as_ref()
                .map(|d| report::data_markdown(d, &report.names))
                .as_deref(),
        )),
        Format::Text | Format::Sarif | Format::Github => console.result(&report::text(
            &report,
            data_report
                .as_ref()
                .map(|d| report::data_text(d, &report.names))
                .as_deref(),
        )),
    }
    Ok(if args.exit_code && !report.identical {
        ExitCode::Refused
    } else {
        ExitCode::Ok
    })
}
