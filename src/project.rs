//! Resolving the project: settings, the migrations folder and its kind, and where its state
//! lives. Shared by every command that reads migrations. Reads files only; never connects.

use std::path::{Path, PathBuf};

use crate::config::{Settings, Target};
use crate::db::DbUrl;
use crate::db::state::StateTable;
use crate::error::{Error, Result};
use crate::source::{self, DrizzleTable, Source, SourceKind, drizzle_config};

/// A project, read and validated.
pub struct Project {
    pub settings: Settings,
    pub source: Source,
    pub state: StateTable,
}

/// A project's settings and where its migrations are, before they are read.
pub struct Located {
    pub settings: Settings,
    pub dir: PathBuf,
    pub kind: SourceKind,
    pub state: StateTable,
}

impl Located {
    /// Settings, the migrations folder and its kind, and where its state lives. Reads no
    /// migration. Touches nothing.
    pub fn new(
        project_dir: &Path,
        config: Option<&Path>,
        migrations: Option<&Path>,
    ) -> Result<Located> {
        if !project_dir.is_dir() {
            return Err(Error::usage(format!(
                "{}: project folder not found (from --project)",
                project_dir.display()
            )));
        }
        let settings = Settings::load(project_dir, config)?;
        let dcfg = drizzle_config::find(project_dir)?;
        let (dir, origin) = migrations_dir(&settings, dcfg.as_ref(), migrations)?;
        if !dir.exists() {
            return Err(Error::usage(format!(
                "{}: migrations folder not found ({origin})",
                dir.display()
            )));
        }
        let kind = match settings.file.migrations.kind.as_deref() {
            None | Some("auto") => source::detect(&dir)?,
            Some("drizzle") => SourceKind::Drizzle,
            Some("drizzle-v1") => SourceKind::DrizzleV1,
            Some("sql") => SourceKind::Sql,
            Some(other) => {
                return Err(Error::usage(format!(
                    "{}: [migrations] kind = \"{other}\": expected auto, drizzle, drizzle-v1 or sql",
                    settings
                        .config_path
                        .as_deref()
                        .unwrap_or(Path::new("pgship.toml"))
                        .display()
                )));
            }
        };
        let mut table = dcfg.map(|c| c.table).unwrap_or_default();
        if let Some(s) = &settings.file.migrations.drizzle_schema {
            table.schema = s.clone();
        }
        if let Some(t) = &settings.file.migrations.drizzle_table {
            table.table = t.clone();
        }
        let state = StateTable::for_source(kind, &table);
        Ok(Located {
            settings,
            dir,
            kind,
            state,
        })
    }
}

impl Project {
    /// Load settings and read the migration source. Touches nothing.
    pub fn load(
        project_dir: &Path,
        config: Option<&Path>,
        migrations: Option<&Path>,
    ) -> Result<Project> {
        let located = Located::new(project_dir, config, migrations)?;
        let source = source::read_as(&located.dir, located.kind)?;
        Ok(Project {
            settings: located.settings,
            source,
            state: located.state,
        })
    }

    /// Load the project and resolve a `<target>` argument against it.
    pub fn with_target(
        project_dir: &Path,
        config: Option<&Path>,
        migrations: Option<&Path>,
        arg: &str,
    ) -> Result<(Project, Target, DbUrl)> {
        let project = Project::load(project_dir, config, migrations)?;
        let target = project.settings.target(arg)?;
        let url = DbUrl::parse(&target.url).map_err(crate::db::DbError::from)?;
        Ok((project, target, url))
    }

    pub fn drizzle_table(&self) -> Option<&DrizzleTable> {
        self.state.drizzle.as_ref()
    }
}

/// The migrations folder and where its path came from (for errors). A relative `--migrations`
/// is taken from the current folder, as every command line does; paths from configuration are
/// relative to the project folder.
fn migrations_dir(
    settings: &Settings,
    dcfg: Option<&drizzle_config::DrizzleConfig>,
    flag: Option<&Path>,
) -> Result<(PathBuf, String)> {
    let base = &settings.project_dir;
    if let Some(f) = flag {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::usage(format!("cannot read the current folder: {e}")))?;
        return Ok((cwd.join(f), "from --migrations".into()));
    }
    if let Some(d) = &settings.file.migrations.dir {
        let file = settings
            .config_path
            .as_deref()
            .unwrap_or(Path::new("pgship.toml"));
        return Ok((
            base.join(d),
            format!("[migrations] dir in {}", file.display()),
        ));
    }
    if let Some(c) = dcfg {
        let from = format!("`out` in {}", c.path.display());
        if let Some(out) = &c.out {
            let out = out.trim_start_matches("./");
            return Ok((base.join(if out.is_empty() { "." } else { out }), from));
        }
        if c.non_literal.iter().any(|k| k == "out") {
            return Err(Error::usage(format!(
                "{}: `out` is not a string literal, so pgship cannot read it without running Node",
                c.path.display()
            ))
            .with_hint("pass --migrations DIR or set [migrations] dir in pgship.toml"));
        }
        return Ok((
            base.join("drizzle"),
            format!("drizzle's default `out` for {}", c.path.display()),
        ));
    }
    for candidate in ["drizzle", "migrations"] {
        let p = base.join(candidate);
        if p.is_dir() {
            return Ok((p, "found in the project folder".into()));
        }
    }
    Err(
        Error::usage(format!("no migrations folder found in {}", base.display())).with_hint(
            "pass --migrations DIR, set [migrations] dir in pgship.toml, or add drizzle.config.ts",
        ),
    )
}
