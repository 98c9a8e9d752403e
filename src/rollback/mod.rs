//! Rolling a database back to its state before pending migrations ran, and proving it. The
//! rehearsal uses it on the sandbox, the deploy on the target.
//!
//! ```text
//! prepare(&inputs)          BEFORE applying: record, decide the method, dump what is needed
//! roll_back(&inputs, &p)    AFTER applying all or part of the migrations
//! prove(&inputs, &p)        after roll_back: is the database what was recorded?
//! ```
//!
//! [`prepare`] records the schema model and fingerprint (over [`Inputs::filter`], which must
//! leave out pgship's own schema), works out from the SQL what the migrations touch
//! ([`touched`], [`scope`]), records the row count and content hash of every touched table,
//! and picks the method:
//!
//! - [`Method::Down`] when every pending migration has a down script: they run in reverse
//!   order, each in a transaction with the deletion of its state rows.
//! - [`Method::Restore`] otherwise. `prepare` also takes an inventory of every object by
//!   catalog identity, the sequence values, a schema-only dump of the database (without
//!   `pgship`) and a data-only dump of the touched tables, in [`Inputs::work_dir`].
//!   [`roll_back`] then drops what the migrations created and restores what they changed or
//!   dropped from the dumps (see [`plan`] for how it decides), checking its drops with a dry
//!   run first; everything it changes, the deletion of the state rows included, runs in one
//!   transaction (`psql --single-transaction`), so a failed rollback leaves the database as it
//!   found it. It works after a partial apply too: it compares what is there with what was
//!   recorded, not with what the migrations say.
//!
//! [`prove`] compares the fingerprint with the recorded one (listing the differences when
//! they differ) and each touched table's row count and content hash with the recorded ones.
//! A rollback that cannot be proven is reported as not proven, never as an error.
//!
//! [`Prepared`], [`RolledBack`] and [`Proof`] serialize (the deploy keeps `Prepared` in
//! `rollback-state.json`). This module never prints, never puts a password in an error, a log
//! or a child process's arguments, and never touches the `pgship` schema except to delete
//! the rolled-back migrations' rows.
//!
//! The whole interface:
//!
//! ```text
//! pub async fn prepare(i: &Inputs<'_>) -> Result<Prepared, RollbackError>
//! pub async fn roll_back(i: &Inputs<'_>, p: &Prepared) -> Result<RolledBack, RollbackError>
//! pub async fn prove(i: &Inputs<'_>, p: &Prepared) -> Result<Proof, RollbackError>
//! pub fn method_for(pending: &[&Migration]) -> (Method, String)
//! ```
//!
//! `Inputs::tools` must hold `psql` next to `pg_dump` and `pg_restore` (every PostgreSQL
//! client package does). Passwords reach the tools only through a passfile in the work folder,
//! removed when each tool exits; the scripts of a successful rollback (they hold copies of
//! rows) are removed too, those of a failed one are kept there for inspection.
//!
//! Known limits: objects the inventory does not track (operators, casts, text search
//! configurations, publications, event triggers, large objects) are neither dropped nor
//! restored; a materialized view's contents are rebuilt by `REFRESH`, not restored; a
//! restored table gets exactly its recorded rows, so rows others wrote to it after `prepare`
//! are lost (the deploy's data-loss guard is what prevents that); rows the SQL changes in a
//! way pgship cannot see (a function called from a default, a trigger on a table only
//! altered) are caught by the proof, not restored; a table whose definition changed is
//! restored whole (a large table costs its reload); sequences keep their value unless their
//! table is restored or the SQL named them (moving a live sequence back would hand out taken
//! keys); an extension downgrade needs its downgrade script; no lock or statement timeout is
//! set for the rollback's own statements.

pub mod catalog;
mod down;
mod fixes;
pub mod guard;
pub mod plan;
mod proof;
pub(crate) mod restore;
pub mod scope;
mod state_rows;
pub mod toc;
pub(crate) mod tools;
pub mod touched;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compare::SchemaFilter;
use crate::compare::introspect::introspect;
use crate::compare::model::Model;
use crate::db::state::StateTable;
use crate::db::tools::BinDir;
use crate::db::{ConnectOptions, DbError, DbUrl, connect};
use crate::source::Migration;

pub use catalog::{Object, SequenceValue, TableSpec};
pub use scope::Scope;
pub use touched::Touched;

/// What the rollback works on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The database to roll back (the sandbox in a rehearsal).
    pub url: &'a DbUrl,
    /// `pg_dump`, `pg_restore` and `psql` of a major version >= the server's.
    pub tools: &'a BinDir,
    /// The migrations about to be applied, in order.
    pub pending: &'a [&'a Migration],
    /// Where migration state rows live.
    pub state: &'a StateTable,
    /// What the fingerprint covers; must leave out the `pgship` schema (and should leave out
    /// the migration-state schema, as `compare` does).
    pub filter: &'a SchemaFilter,
    /// A private (0700) folder for the dumps and scripts.
    pub work_dir: &'a Path,
}

/// How the database is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The migrations' own down scripts, in reverse order.
    Down,
    /// Drop what the migrations created, restore what they changed from dumps.
    Restore,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Down => "down",
            Method::Restore => "restore",
        }
    }
}

/// A touched table's recorded contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    #[serde(flatten)]
    pub spec: TableSpec,
    pub rows: i64,
    /// md5 of the rows ([`crate::compare::data::hash_sql`]).
    pub hash: String,
}

/// The dumps the restore method uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dumps {
    /// `pg_dump -Fc --schema-only` of the database without `pgship`.
    pub schema: PathBuf,
    /// `pg_dump -Fc --data-only` of the touched tables (none when nothing is touched).
    pub data: Option<PathBuf>,
}

/// What `prepare` recorded and decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub method: Method,
    /// Why this method.
    pub why: String,
    /// The pending migrations, in order.
    pub migrations: Vec<String>,
    pub server_major: u32,
    /// The schema model's fingerprint before the migrations.
    pub fingerprint: String,
    pub model: Model,
    pub touched: Touched,
    pub scope: Scope,
    /// The touched tables that existed, with their rows and content hash.
    pub tables: Vec<TableSnapshot>,
    /// Every object by catalog identity (restore method).
    pub objects: Vec<Object>,
    /// Every sequence's value (restore method).
    pub sequences: Vec<SequenceValue>,
    pub dumps: Option<Dumps>,
}

/// What `roll_back` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    pub method: Method,
    /// Migrations rolled back (their state rows deleted), in the order they were undone.
    pub migrations: Vec<String>,
    /// Objects dropped, in order.
    pub dropped: Vec<String>,
    /// Objects restored from the schema dump.
    pub restored: Vec<String>,
    /// Tables dropped and restored with their rows, and why.
    pub recreated_tables: Vec<String>,
    /// Changes made in place.
    pub fixed: Vec<String>,
    /// What could not be put back (the proof shows the consequence).
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

/// A touched table, compared with its recorded contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCheck {
    pub table: String,
    pub rows: i64,
    /// `None` when the table could not be read.
    pub actual_rows: Option<i64>,
    pub equal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether the database is what `prepare` recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub proven: bool,
    pub fingerprint: String,
    pub actual_fingerprint: String,
    /// Differences from the recorded schema, in the compare vocabulary ("what would change
    /// in the database if the recorded schema were deployed onto it").
    pub differences: Vec<String>,
    /// Every touched table; `equal` is false for those that differ.
    pub tables: Vec<TableCheck>,
}

impl Proof {
    /// What still differs: the schema difference lines, then one line per table that
    /// differs. Empty when proven.
    pub fn remaining(&self) -> Vec<String> {
        let mut out = self.differences.clone();
        if out.is_empty() && self.fingerprint != self.actual_fingerprint {
            out.push("the schema fingerprint differs".into());
        }
        for t in self.tables.iter().filter(|t| !t.equal) {
            out.push(match (&t.note, t.actual_rows) {
                (None, Some(a)) if a != t.rows => {
                    format!("table {}: {a} rows, {} recorded", t.table, t.rows)
                }
                (Some(n), _) => format!("table {}: {n}", t.table),
                _ => format!("table {}: its contents differ", t.table),
            });
        }
        out
    }

    /// One line for a report.
    pub fn summary(&self) -> String {
        if self.proven {
            return format!(
                "proven: the schema fingerprint and the contents of {} touched table(s) match",
                self.tables.len()
            );
        }
        format!("not proven: {}", self.remaining().join("; "))
    }
}

/// Why the rollback could not be prepared or done. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{step}: {message}")]
    Tool { step: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("reading the dump's table of contents: {0}")]
    Archive(#[from] toc::TocError),
    #[error(
        "cannot restore table {table} ({why}): its rows were not dumped before the migrations ran, because pgship did not see them touch it"
    )]
    MissingData { table: String, why: String },
    #[error("rolling back {object}: {message}")]
    Restore { object: String, message: String },
    #[error(
        "the down script of {migration} failed at statement {statement} ({file}:{line}): {message}{}",
        if done.is_empty() { String::new() } else { format!("\n  already rolled back: {}", crate::util::fold_list(done, 5, 3)) }
    )]
    Down {
        migration: String,
        file: String,
        statement: usize,
        line: u32,
        message: String,
        done: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl RollbackError {
    /// Advice for a person, printed on its own line.
    pub fn hint(&self) -> Option<String> {
        match self {
            RollbackError::MissingData { .. } => Some(
                "give the migrations down scripts (`<version>_<name>.down.sql`), or restore the target from its backup".into(),
            ),
            RollbackError::Restore { .. } => Some(
                "the rollback changed nothing; fix the cause, or restore from the backup".into(),
            ),
            RollbackError::Down { .. } => Some(
                "the failing migration's down script was rolled back; migrations listed as already rolled back stay so".into(),
            ),
            _ => None,
        }
    }
}

async fn open(i: &Inputs<'_>) -> Result<crate::db::Conn, RollbackError> {
    Ok(connect(i.url, &ConnectOptions::default()).await?)
}

/// Record the database before the migrations run, decide the method, and dump what the
/// restore method needs.
pub async fn prepare(i: &Inputs<'_>) -> Result<Prepared, RollbackError> {
    if i.filter.allows("pgship") {
        return Err(RollbackError::Invalid(
            "the rollback's schema filter must leave out the `pgship` schema (its history survives a rollback)".into(),
        ));
    }
    let conn = open(i).await?;
    let client = &conn.client;
    let model = introspect(client, i.filter).await?;
    let functions: BTreeSet<String> = model
        .functions
        .keys()
        .filter_map(|k| k.split_once('.').map(|(_, f)| f))
        .filter_map(|f| f.split_once('(').map(|(name, _)| name.to_string()))
        .collect();
    let touched = touched::analyze(i.pending, &functions);
    let spread = catalog::spread(client).await?;
    let scope = scope::scope(&touched, &model, &spread);
    let (method, why) = method_for(i.pending);
    let specs: Vec<TableSpec> = scope
        .tables
        .iter()
        .filter_map(|k| {
            let t = model.tables.get(k)?;
            let (schema, table) = k.split_once('.')?;
            Some(TableSpec {
                schema: schema.into(),
                table: table.into(),
                partitioned: t.partition_key.is_some(),
                columns: t.columns.keys().cloned().collect(),
            })
        })
        .collect();
    let contents = catalog::contents(client, &specs).await?;
    let mut tables = Vec::with_capacity(specs.len());
    for spec in specs {
        match contents.get(&spec.key()) {
            Some(Ok((rows, hash))) => tables.push(TableSnapshot {
                spec,
                rows: *rows,
                hash: hash.clone(),
            }),
            Some(Err(e)) => {
                return Err(RollbackError::Invalid(format!(
                    "cannot read table {}: {e}",
                    spec.key()
                )));
            }
            None => {}
        }
    }
    let mut prepared = Prepared {
        method,
        why,
        migrations: i.pending.iter().map(|m| m.name.clone()).collect(),
        server_major: conn.version.major(),
        fingerprint: model.fingerprint(),
        model,
        touched,
        scope,
        tables,
        objects: Vec::new(),
        sequences: Vec::new(),
        dumps: None,
    };
    if method == Method::Restore {
        prepared.objects = catalog::inventory(client).await?;
        prepared.sequences = catalog::sequence_values(client).await?;
        prepared.dumps = Some(restore::dump(i, &prepared).await?);
    }
    Ok(prepared)
}

/// Down scripts when every pending migration has one, else restore.
pub fn method_for(pending: &[&Migration]) -> (Method, String) {
    if pending.is_empty() {
        return (Method::Down, "nothing is pending: nothing to undo".into());
    }
    let without: Vec<&str> = pending
        .iter()
        .filter(|m| m.down.is_none())
        .map(|m| m.name.as_str())
        .collect();
    if without.is_empty() {
        (
            Method::Down,
            "every pending migration has a down script".into(),
        )
    } else {
        (
            Method::Restore,
            format!(
                "{} of {} pending migration(s) have no down script ({}): restoring what they touch from dumps taken before applying",
                without.len(),
                pending.len(),
                crate::util::fold_list(&without, 5, 3)
            ),
        )
    }
}

/// Roll the database back to what `prepare` recorded, after all or part of the migrations
/// were applied.
pub async fn roll_back(i: &Inputs<'_>, p: &Prepared) -> Result<RolledBack, RollbackError> {
    let started = std::time::Instant::now();
    let conn = open(i).await?;
    let mut done = match p.method {
        Method::Down => down::run(&conn, i).await?,
        Method::Restore => restore::run(&conn, i, p).await?,
    };
    done.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(done)
}

/// Compare the database with what `prepare` recorded.
pub async fn prove(i: &Inputs<'_>, p: &Prepared) -> Result<Proof, RollbackError> {
    let conn = open(i).await?;
    proof::run(&conn.client, i, p).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::DownScript;

    fn mig(name: &str, down: bool) -> Migration {
        Migration {
            down: down.then(|| DownScript {
                path: format!("{name}.down.sql").into(),
                raw: Default::default(),
                statements: vec![],
            }),
            ..crate::source::testing::migration(name)
        }
    }

    #[test]
    fn the_filter_must_leave_out_pgship() {
        let url = DbUrl::parse("postgres://u:hunter2@127.0.0.1:1/x").unwrap();
        let tools = BinDir {
            dir: "/nonexistent".into(),
            version: "15.2".into(),
            major: 15,
            preferred: false,
        };
        let state = StateTable::for_source(
            crate::source::SourceKind::Sql,
            &crate::source::DrizzleTable::default(),
        );
        let filter = SchemaFilter::default();
        let work = std::env::temp_dir();
        let i = Inputs {
            url: &url,
            tools: &tools,
            pending: &[],
            state: &state,
            filter: &filter,
            work_dir: &work,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(prepare(&i)).unwrap_err().to_string();
        assert!(err.contains("`pgship` schema"), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn method_decision() {
        let (a, b) = (mig("001_a", true), mig("002_b", true));
        assert_eq!(method_for(&[&a, &b]).0, Method::Down);
        let c = mig("003_c", false);
        let (m, why) = method_for(&[&a, &c]);
        assert_eq!(m, Method::Restore);
        assert!(why.contains("1 of 2") && why.contains("003_c"), "{why}");
        assert_eq!(method_for(&[]).0, Method::Down);
    }

    #[test]
    fn proof_summary() {
        let mut p = Proof {
            proven: true,
            fingerprint: "a".into(),
            actual_fingerprint: "a".into(),
            differences: vec![],
            tables: vec![TableCheck {
                table: "public.t".into(),
                rows: 3,
                actual_rows: Some(3),
                equal: true,
                note: None,
            }],
        };
        assert!(p.summary().starts_with("proven"));
        p.proven = false;
        p.actual_fingerprint = "b".into();
        p.differences = vec!["table-removed public.n".into()];
        p.tables[0].actual_rows = Some(2);
        p.tables[0].equal = false;
        assert_eq!(
            p.summary(),
            "not proven: table-removed public.n; table public.t: 2 rows, 3 recorded"
        );
    }
}
