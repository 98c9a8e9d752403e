//! `pgship compare <source> <target>` as a library call: resolve both databases from the
//! project's settings, read both schemas (and with `--data`, compare rows), compute the
//! differences with the chosen engine, mark breaking ones by `[policy.breaking]`, and return
//! the report. Progress goes to the console; the result is left to the caller to print.
//!
//! Read-only on both databases (the fdw engine creates its objects in a transaction it rolls
//! back, or in a scratch database it drops). Two databases share no catalog identity, so a
//! renamed table or column is only recognised from SQL: the renames in the project's
//! migrations that the target has not applied (the catalog engine). Without a project, or with
//! nothing pending, a rename is a removal plus an addition.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::data::{self, DataOptions, DataReport};
use super::model::Model;
use super::names::Names;
use super::renames::Renames;
use super::report::{Fingerprints, Report};
use super::{BreakingPolicy, Difference, SchemaFilter, diff, fdw, introspect};
use crate::config::Settings;
use crate::db::{Conn, ConnectOptions, DbError, DbUrl, connect, plan as dbplan, state};
use crate::error::{Error, Result};
use crate::journal::Console;
use crate::project::Project;
use crate::source::drizzle_config;

/// How differences are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Both catalogs read over two connections and diffed in pgship (covers everything).
    Catalog,
    /// In SQL through postgres_fdw, in the given place (covers a subset of the kinds).
    Fdw(fdw::FdwPlace),
}

/// What to compare, as `pgship compare` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project folder, `--config` and `--migrations`: settings, targets, and the pending
    /// migrations whose renames are looked for.
    pub project_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub migrations: Option<PathBuf>,
    /// The schema to deploy and the database it would be deployed onto: environment names,
    /// `local`, or URLs.
    pub source: String,
    pub target: String,
    pub engine: Engine,
    /// Only these schemas (empty: all), and not these.
    pub schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    /// Also pgship's own schema and the migration-state schema.
    pub include_state: bool,
    /// Also compare data; `fast`: estimated counts, no hashes; `data_max_size`: over
    /// `[compare] data_max_size`.
    pub data: bool,
    pub fast: bool,
    pub data_max_size: Option<u64>,
    /// Over `[compare] lock_wait_timeout`.
    pub lock_wait_timeout: Option<Duration>,
}

/// What a comparison found.
pub struct Compared {
    pub report: Report,
    /// With `--data`: the data comparison (also in `report.data`, as JSON).
    pub data: Option<DataReport>,
}

/// Both databases, resolved.
struct Sides {
    source: DbUrl,
    target: DbUrl,
}

/// Compare `opts.source` against `opts.target`. See the module docs.
pub async fn run(console: &Console, opts: &Options) -> Result<Compared> {
    let settings = Settings::load(&opts.project_dir, opts.config.as_deref())?;
    let policy = breaking_policy(&settings)?;
    let sides = Sides {
        source: resolve(&settings, &opts.source)?,
        target: resolve(&settings, &opts.target)?,
    };
    let filter = schema_filter(&settings, opts);
    let lock_wait = lock_wait(&settings, opts)?;
    let started = Instant::now();

    console.step(&format!(
        "connecting to {} and {}",
        sides.source.redacted(),
        sides.target.redacted()
    ));
    // Reading the catalog can wait for a table's lock too (pg_get_indexdef): never for long.
    let connect_opts = ConnectOptions {
        settings: vec![(
            "lock_timeout".into(),
            lock_wait.as_millis().max(1).to_string(),
        )],
        ..ConnectOptions::default()
    };
    let (source, target) = tokio::try_join!(
        connect(&sides.source, &connect_opts),
        connect(&sides.target, &connect_opts)
    )?;
    console.step("reading both schemas");
    let models = read_models(&source.client, &target.client, &sides, &filter).await?;
    console.detail(&format!(
        "source: {} objects, target: {} objects ({} catalog queries each)",
        models.0.object_count(),
        models.1.object_count(),
        introspect::query_count()
    ));
    let data_opts = data_options(&settings, opts, lock_wait)?;
    let found = match opts.engine {
        Engine::Catalog => {
            let conns = (&source, &target);
            by_catalog(console, opts, conns, &models, &filter, data_opts.as_ref()).await?
        }
        Engine::Fdw(place) => {
            drop((source, target));
            let fdw_opts = fdw::FdwOptions {
                place,
                filter: filter.clone(),
                data: data_opts.clone(),
            };
            by_fdw(console, &sides, &connect_opts, &fdw_opts).await?
        }
    };
    let compared = assemble(&sides, &models, &policy, found)?;
    console.ok(&format!(
        "compared in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(compared)
}

/// `[policy.breaking]`; a bad value names the configuration file.
fn breaking_policy(settings: &Settings) -> Result<BreakingPolicy> {
    BreakingPolicy::from_config(&settings.file.policy.breaking).map_err(|e| {
        Error::usage(format!(
            "{}: {e}",
            settings
                .config_path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "pgship.toml".into())
        ))
    })
}

/// What an engine found.
struct Found {
    engine: &'static str,
    differences: Vec<Difference>,
    not_covered: Vec<&'static str>,
    data: Option<DataReport>,
}

/// Both schemas, read at once; an error names the side.
async fn read_models(
    source: &Client,
    target: &Client,
    sides: &Sides,
    filter: &SchemaFilter,
) -> Result<(Model, Model)> {
    let on = |side: &str, url: &DbUrl| {
        let what = format!("the {side} ({})", url.redacted());
        move |e: DbError| DbError::Other(format!("{what}: {e}"))
    };
    Ok(tokio::try_join!(
        async {
            introspect::introspect(source, filter)
                .await
                .map_err(on("source", &sides.source))
        },
        async {
            introspect::introspect(target, filter)
                .await
                .map_err(on("target", &sides.target))
        }
    )?)
}

/// The catalog engine: the models diffed with the pending migrations' renames, and the data
/// compared over the same connections.
async fn by_catalog(
    console: &Console,
    opts: &Options,
    (source, target): (&Conn, &Conn),
    (source_model, target_model): &(Model, Model),
    filter: &SchemaFilter,
    data_opts: Option<&DataOptions>,
) -> Result<Found> {
    let renames = match pending_renames(opts, &target.client, source_model, target_model).await {
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
    let data = match data_opts {
        Some(d) => {
            console.step("comparing data (row counts, content hashes, orphaned rows)");
            Some(data::compare(&source.client, &target.client, filter, d).await?)
        }
        None => None,
    };
    Ok(Found {
        engine: "catalog",
        differences: diff::diff_with(source_model, target_model, &renames),
        not_covered: Vec::new(),
        data,
    })
}

/// The fdw engine, in the source's server.
async fn by_fdw(
    console: &Console,
    sides: &Sides,
    connect_opts: &ConnectOptions,
    fdw_opts: &fdw::FdwOptions,
) -> Result<Found> {
    console.step("computing the differences through postgres_fdw in the source's server");
    let out = fdw::compare(&sides.source, &sides.target, connect_opts, fdw_opts).await?;
    for l in &out.removed_leftovers {
        console.warn(&format!(
            "removed a leftover of an earlier, killed run: {l}"
        ));
    }
    let mut differences = out.differences;
    super::sort(&mut differences);
    Ok(Found {
        engine: "fdw",
        differences,
        not_covered: out.not_covered,
        data: out.data,
    })
}

/// The report: breaking changes marked by the policy, fingerprints, and the data as JSON.
fn assemble(
    sides: &Sides,
    (source_model, target_model): &(Model, Model),
    policy: &BreakingPolicy,
    mut found: Found,
) -> Result<Compared> {
    policy.apply(&mut found.differences);
    let identical =
        found.differences.is_empty() && !found.data.as_ref().is_some_and(DataReport::differs);
    let report = Report {
        source: sides.source.redacted(),
        target: sides.target.redacted(),
        engine: found.engine,
        identical,
        fingerprints: Fingerprints {
            source: source_model.fingerprint(),
            target: target_model.fingerprint(),
        },
        differences: found.differences,
        not_covered: found.not_covered,
        names: Names::from_models(&[source_model, target_model]),
        data: found
            .data
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::usage(format!("internal error: rendering the data report: {e}")))?,
    };
    Ok(Compared {
        report,
        data: found.data,
    })
}

/// The schemas compared by default: all but system schemas, pgship's and the state schema.
pub fn schema_filter(settings: &Settings, opts: &Options) -> SchemaFilter {
    let mut exclude = opts.exclude_schemas.clone();
    if !opts.include_state {
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
        include: opts.schemas.clone(),
        exclude,
    }
}

/// The renames that the project's migrations pending on the target make, kept where both
/// schemas agree (the old name in the target, the new one in the source), and how many
/// migrations are pending. Nothing when there is no project folder pgship can read or its
/// state cannot be read from the target: then no SQL says what was renamed.
async fn pending_renames(
    opts: &Options,
    target: &Client,
    source_model: &Model,
    target_model: &Model,
) -> std::result::Result<(Renames, usize), String> {
    let project = Project::load(
        &opts.project_dir,
        opts.config.as_deref(),
        opts.migrations.as_deref(),
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
fn lock_wait(settings: &Settings, opts: &Options) -> Result<Duration> {
    let (wait, origin) = match (
        opts.lock_wait_timeout,
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

/// With `--data`: how, from the flags over `[compare]` over the defaults.
fn data_options(
    settings: &Settings,
    opts: &Options,
    lock_wait: Duration,
) -> Result<Option<DataOptions>> {
    if !opts.data {
        return Ok(None);
    }
    let max_bytes = match (opts.data_max_size, &settings.file.compare.data_max_size) {
        (Some(n), _) => n,
        (None, Some(text)) => crate::util::parse_size(text)
            .map_err(|e| Error::usage(format!("[compare] data_max_size: {e}")))?,
        (None, None) => DataOptions::default().max_bytes,
    };
    Ok(Some(DataOptions {
        fast: opts.fast,
        max_bytes,
        lock_wait,
    }))
}

fn resolve(settings: &Settings, arg: &str) -> Result<DbUrl> {
    let target = settings.target(arg)?;
    Ok(DbUrl::parse(&target.url).map_err(DbError::from)?)
}
