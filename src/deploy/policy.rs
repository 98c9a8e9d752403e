//! What the pipeline decides with: `[policy]`, the schemas it compares, and the static lint of
//! the pending migrations as the engine will run them.

use std::path::Path;

use crate::compare::{BreakingPolicy, SchemaFilter};
use crate::db::apply::TxMode;
use crate::error::{Error, Result};
use crate::lint::{self, Context, Outcome, Selection, Source as LintSource, Wrap, catalog};
use crate::project::Project;
use crate::rehearse::Policy;
use crate::source::SourceKind;

/// `[policy]` with the seed's defaults; every bad value names its key.
pub fn policy(project: &Project) -> Result<Policy> {
    let f = &project.settings.file.policy;
    let mut p = Policy {
        breaking: BreakingPolicy::from_config(&f.breaking).map_err(Error::usage)?,
        ..Policy::default()
    };
    if let Some(ms) = f.max_exclusive_lock_ms {
        p.max_exclusive_lock_ms = ms;
    }
    let keys: [(&str, &Option<String>, &mut crate::compare::Action); 6] = [
        ("long_lock", &f.long_lock, &mut p.long_lock),
        ("lint_error", &f.lint_error, &mut p.lint_error),
        ("lint_warning", &f.lint_warning, &mut p.lint_warning),
        ("rows_lost", &f.rows_lost, &mut p.rows_lost),
        ("violations", &f.violations, &mut p.violations),
        (
            "rollback_unproven",
            &f.rollback_unproven,
            &mut p.rollback_unproven,
        ),
    ];
    for (key, value, slot) in keys {
        if let Some(v) = value {
            *slot = crate::compare::Action::parse(v).ok_or_else(|| {
                Error::usage(format!(
                    "[policy] {key} = \"{v}\": expected abort, warn or allow"
                ))
            })?;
        }
    }
    Ok(p)
}

/// The schemas the rehearsal compares and counts: all but pgship's and the state schema.
pub fn filter(project: &Project) -> SchemaFilter {
    let mut exclude = vec!["pgship".to_string()];
    if let Some(q) = &project.state.drizzle {
        exclude.push(q.schema.clone());
    }
    SchemaFilter {
        include: Vec::new(),
        exclude,
    }
}

pub fn display(project_dir: &Path, path: &Path) -> String {
    path.strip_prefix(project_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Lint the pending migrations as the engine will run them, with the target's catalog.
pub fn lint_pending(
    project: &Project,
    chosen: &[(usize, usize)],
    tx_mode: TxMode,
    pg_version: u32,
    cat: Option<catalog::Catalog>,
) -> Result<Outcome> {
    let f = &project.settings.file.lint;
    let sel = Selection {
        enable: f.enable.iter().cloned().collect(),
        disable: f.disable.iter().cloned().collect(),
    };
    sel.validate()
        .map_err(|e| Error::usage(format!("[lint]: {e}")))?;
    let mut ctx = Context::new(pg_version, cat);
    let mut out = Outcome::default();
    let drizzle = project.source.kind != SourceKind::Sql;
    for (i, _) in chosen {
        let m = &project.source.migrations[*i];
        let src = LintSource {
            name: display(&project.settings.project_dir, &m.path),
            text: m.raw.as_str(),
            drizzle,
            wrap: Wrap::Engine {
                per_migration: tx_mode == TxMode::PerMigration,
            },
        };
        lint::lint_source(&src, &mut ctx, &sel, &mut out);
    }
    Ok(out)
}
