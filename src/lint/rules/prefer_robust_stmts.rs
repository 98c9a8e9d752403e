//! RB01 prefer-robust-stmts: a statement that runs outside any transaction and fails when the
//! migration is run a second time, after a failure part-way through left it applied:
//! - `CREATE TABLE/INDEX/SEQUENCE/SCHEMA/EXTENSION/MATERIALIZED VIEW`, `CREATE TABLE AS`
//!   without `IF NOT EXISTS`; `CREATE VIEW/FUNCTION/PROCEDURE/TRIGGER` without `OR REPLACE`;
//!   `CREATE TYPE` and `CREATE DOMAIN` (which have no `IF NOT EXISTS`); an unnamed
//!   `CREATE INDEX` (a rerun builds a second index);
//! - `DROP ...` without `IF EXISTS`;
//! - `ALTER TABLE`: `ADD COLUMN` without `IF NOT EXISTS`; `DROP COLUMN/CONSTRAINT` without
//!   `IF EXISTS`; `ADD CONSTRAINT` unless the same `ALTER TABLE` first drops it `IF EXISTS` (an
//!   unnamed CHECK is added a second time under a new name); `ALTER COLUMN ... TYPE ... USING`
//!   (the expression is applied to already converted values); `ATTACH/DETACH PARTITION`;
//!   `ADD IDENTITY`;
//! - `ALTER TYPE ... ADD VALUE` without `IF NOT EXISTS`; `RENAME` of anything.
//!
//! Statements inside a transaction (an explicit `BEGIN`, or a runner that wraps the file) are
//! exempt: a failure rolls them back. So are temporary tables, and every statement of a file
//! applied by pgship's engine, which records how far a failed migration got and resumes after
//! the last statement that committed. `ENABLE/DISABLE ROW LEVEL SECURITY`, `SET NOT NULL`,
//! `SET DEFAULT` and the like are idempotent (running them twice is harmless) and not reported.
//!
//! Severity: warning (opt-in). A rerun fails and needs a person, but nothing is lost or
//! locked.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, DropBehavior, ObjectType};

use super::concurrent_in_txn::dropped_names;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "RB01",
    name: "prefer-robust-stmts",
    severity: Severity::Warning,
    default_on: false,
    summary: "a statement outside a transaction that fails when the migration is rerun after a \
              partial failure",
    help: "make it idempotent (IF NOT EXISTS, IF EXISTS, OR REPLACE), or run the migration inside \
           BEGIN/COMMIT",
    check,
};

const RERUN: &str = "if the migration fails after it, a rerun fails here";

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if stmt.in_transaction || matches!(ctx.wrap, Wrap::Engine { .. }) {
        return Vec::new();
    }
    match stmt.node {
        NodeEnum::AlterTableStmt(_) => alter_table(stmt.node),
        NodeEnum::DropStmt(d) if !d.missing_ok => {
            let kind = object_kind(d.remove_type);
            let names = dropped_names(d).join(", ");
            let cascade = if d.behavior == DropBehavior::DropCascade as i32 {
                " CASCADE"
            } else {
                ""
            };
            vec![missing(
                format!("DROP {kind} {names} has no IF EXISTS"),
                format!("DROP {kind} IF EXISTS {names}{cascade}"),
            )]
        }
        NodeEnum::RenameStmt(_) => vec![
            Hit::new(format!(
                "a RENAME is not idempotent: {RERUN} (the old name is gone)"
            ))
            .help(
                "run the migration inside BEGIN/COMMIT, or guard the rename in a DO block that \
                 checks the catalog first",
            ),
        ],
        other => create(other).into_iter().collect(),
    }
}

fn missing(what: String, fix: String) -> Hit {
    Hit::new(format!("{what}: {RERUN}"))
        .help(format!("{fix} (or run the migration inside BEGIN/COMMIT)"))
}

/// `CREATE ...` statements that fail on a rerun.
fn create(node: &NodeEnum) -> Option<Hit> {
    let if_not_exists = |kind: &str, name: String| {
        missing(
            format!("CREATE {kind} {name} has no IF NOT EXISTS"),
            format!("CREATE {kind} IF NOT EXISTS {name}"),
        )
    };
    let or_replace = |kind: &str, name: String| {
        missing(
            format!("CREATE {kind} {name} has no OR REPLACE"),
            format!("CREATE OR REPLACE {kind} {name}"),
        )
    };
    match node {
        NodeEnum::CreateStmt(c) if !c.if_not_exists => {
            let rv = c.relation.as_ref().filter(|rv| !ast::is_temp(rv))?;
            Some(if_not_exists("TABLE", ast::rel_name(rv)))
        }
        NodeEnum::CreateTableAsStmt(c) if !c.if_not_exists => {
            let rv = c
                .into
                .as_ref()
                .and_then(|i| i.rel.as_ref())
                .filter(|rv| !ast::is_temp(rv))?;
            let kind = if c.objtype == ObjectType::ObjectMatview as i32 {
                "MATERIALIZED VIEW"
            } else {
                "TABLE"
            };
            Some(if_not_exists(kind, ast::rel_name(rv)))
        }
        NodeEnum::IndexStmt(i) if !i.if_not_exists => {
            let table = i.relation.as_ref().map(ast::rel_name).unwrap_or_default();
            let concurrently = if i.concurrent { "CONCURRENTLY " } else { "" };
            if i.idxname.is_empty() {
                return Some(
                    Hit::new(format!(
                        "this index on {table} has no name: if the migration fails after it, a \
                         rerun builds a second, identical index"
                    ))
                    .help(format!(
                        "name it: CREATE INDEX {concurrently}IF NOT EXISTS <name> ON {table} ..."
                    )),
                );
            }
            Some(missing(
                format!("CREATE INDEX {} has no IF NOT EXISTS", i.idxname),
                format!(
                    "CREATE INDEX {concurrently}IF NOT EXISTS {} ON {table} ...",
                    i.idxname
                ),
            ))
        }
        NodeEnum::CreateSeqStmt(s) if !s.if_not_exists => {
            let rv = s.sequence.as_ref().filter(|rv| !ast::is_temp(rv))?;
            Some(if_not_exists("SEQUENCE", ast::rel_name(rv)))
        }
        NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists => {
            Some(if_not_exists("SCHEMA", s.schemaname.clone()))
        }
        NodeEnum::CreateExtensionStmt(e) if !e.if_not_exists => {
            Some(if_not_exists("EXTENSION", e.extname.clone()))
        }
        NodeEnum::ViewStmt(v) if !v.replace => {
            let rv = v.view.as_ref().filter(|rv| !ast::is_temp(rv))?;
            Some(or_replace("VIEW", ast::rel_name(rv)))
        }
        NodeEnum::CreateFunctionStmt(f) if !f.replace => {
            let kind = if f.is_procedure {
                "PROCEDURE"
            } else {
                "FUNCTION"
            };
            Some(or_replace(kind, ast::strings(&f.funcname).join(".")))
        }
        NodeEnum::CreateTrigStmt(t) if !t.replace => Some(missing(
            format!("CREATE TRIGGER {} has no OR REPLACE", t.trigname),
            format!(
                "CREATE OR REPLACE TRIGGER {} (PostgreSQL 14+), or DROP TRIGGER IF EXISTS {} ON \
                 {} first",
                t.trigname,
                t.trigname,
                t.relation.as_ref().map(ast::rel_name).unwrap_or_default()
            ),
        )),
        NodeEnum::CreateEnumStmt(_)
        | NodeEnum::CompositeTypeStmt(_)
        | NodeEnum::CreateDomainStmt(_)
        | NodeEnum::CreateRangeStmt(_) => Some(
            Hit::new(format!(
                "CREATE TYPE/DOMAIN has no IF NOT EXISTS: {RERUN} (\"already exists\")"
            ))
            .help(
                "run the migration inside BEGIN/COMMIT, or create the type in a DO block that \
                 checks pg_type first",
            ),
        ),
        NodeEnum::AlterEnumStmt(e)
            if !e.new_val.is_empty() && e.old_val.is_empty() && !e.skip_if_new_val_exists =>
        {
            let ty = ast::strings(&e.type_name).join(".");
            Some(missing(
                format!(
                    "ALTER TYPE {ty} ADD VALUE '{}' has no IF NOT EXISTS",
                    e.new_val
                ),
                format!("ALTER TYPE {ty} ADD VALUE IF NOT EXISTS '{}'", e.new_val),
            ))
        }
        _ => None,
    }
}

fn alter_table(node: &NodeEnum) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(node) else {
        return Vec::new();
    };
    if ast::is_temp(rv) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let cmds = ast::alter_cmds(a);
    // Constraints this statement drops IF EXISTS before adding them again.
    let dropped_first: Vec<&str> = cmds
        .iter()
        .filter(|(c, t)| *t == AlterTableType::AtDropConstraint && c.missing_ok)
        .map(|(c, _)| c.name.as_str())
        .collect();
    cmds.iter()
        .filter_map(|(cmd, t)| alter_cmd(&table, cmd, *t, &dropped_first))
        .collect()
}

fn alter_cmd(table: &str, cmd: &AlterTableCmd, t: AlterTableType, dropped: &[&str]) -> Option<Hit> {
    let at = format!("ALTER TABLE {table}");
    match t {
        AlterTableType::AtAddColumn if !cmd.missing_ok => {
            let col = ast::column_def(cmd)
                .map(|c| c.colname.as_str())
                .unwrap_or_default();
            Some(missing(
                format!("{at} ADD COLUMN {col} has no IF NOT EXISTS"),
                format!("{at} ADD COLUMN IF NOT EXISTS {col} ..."),
            ))
        }
        AlterTableType::AtDropColumn if !cmd.missing_ok => Some(missing(
            format!("{at} DROP COLUMN {} has no IF EXISTS", cmd.name),
            format!("{at} DROP COLUMN IF EXISTS {}", cmd.name),
        )),
        AlterTableType::AtDropConstraint if !cmd.missing_ok => Some(missing(
            format!("{at} DROP CONSTRAINT {} has no IF EXISTS", cmd.name),
            format!("{at} DROP CONSTRAINT IF EXISTS {}", cmd.name),
        )),
        AlterTableType::AtAddConstraint => {
            let c = ast::constraint_def(cmd)?;
            if c.conname.is_empty() {
                return Some(
                    Hit::new(format!(
                        "{at} ADD CONSTRAINT without a name: if the migration fails after it, a \
                         rerun adds the constraint again under a new name (or fails, for a \
                         primary key)"
                    ))
                    .help(format!(
                        "name it and drop it first in the same statement: {at} DROP CONSTRAINT \
                         IF EXISTS <name>, ADD CONSTRAINT <name> ..."
                    )),
                );
            }
            if dropped.contains(&c.conname.as_str()) {
                return None;
            }
            Some(missing(
                format!("{at} ADD CONSTRAINT {} is not idempotent", c.conname),
                format!(
                    "{at} DROP CONSTRAINT IF EXISTS {0}, ADD CONSTRAINT {0} ... (one statement)",
                    c.conname
                ),
            ))
        }
        AlterTableType::AtAlterColumnType
            if ast::column_def(cmd).is_some_and(|d| d.raw_default.is_some()) =>
        {
            Some(
                Hit::new(format!(
                    "{at} ALTER COLUMN {} TYPE ... USING: if the migration fails after it, a rerun \
                     applies the USING expression to values it already converted",
                    cmd.name
                ))
                .help(
                    "run the migration inside BEGIN/COMMIT, or make the USING expression give the \
                     same result on converted values",
                ),
            )
        }
        AlterTableType::AtAttachPartition
        | AlterTableType::AtDetachPartition
        | AlterTableType::AtAddIdentity => Some(
            Hit::new(format!(
                "{at} {}: {RERUN}",
                match t {
                    AlterTableType::AtAttachPartition => "ATTACH PARTITION is not idempotent",
                    AlterTableType::AtDetachPartition => "DETACH PARTITION is not idempotent",
                    _ => "ADD GENERATED ... AS IDENTITY is not idempotent",
                }
            ))
            .help(
                "run the migration inside BEGIN/COMMIT (DETACH ... CONCURRENTLY cannot: give it a \
                 migration of its own), or guard it in a DO block that checks the catalog",
            ),
        ),
        _ => None,
    }
}

/// `TABLE`, `INDEX`, ... for messages.
fn object_kind(remove_type: i32) -> &'static str {
    match ObjectType::try_from(remove_type).unwrap_or(ObjectType::Undefined) {
        ObjectType::ObjectTable => "TABLE",
        ObjectType::ObjectIndex => "INDEX",
        ObjectType::ObjectView => "VIEW",
        ObjectType::ObjectMatview => "MATERIALIZED VIEW",
        ObjectType::ObjectSequence => "SEQUENCE",
        ObjectType::ObjectType => "TYPE",
        ObjectType::ObjectDomain => "DOMAIN",
        ObjectType::ObjectSchema => "SCHEMA",
        ObjectType::ObjectFunction => "FUNCTION",
        ObjectType::ObjectProcedure => "PROCEDURE",
        ObjectType::ObjectTrigger => "TRIGGER",
        ObjectType::ObjectExtension => "EXTENSION",
        ObjectType::ObjectPolicy => "POLICY",
        ObjectType::ObjectForeignTable => "FOREIGN TABLE",
        _ => "...",
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_create_table_without_if_not_exists() {
        assert_eq!(
            render("RB01", "CREATE TABLE orders (id bigint);"),
            "m.sql:1:1: warning RB01 prefer-robust-stmts: CREATE TABLE orders has no IF NOT \
             EXISTS: if the migration fails after it, a rerun fails here\n  \
             1 | CREATE TABLE orders (id bigint)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: CREATE TABLE IF NOT EXISTS orders (or run the migration inside BEGIN/COMMIT)\n"
        );
    }

    #[test]
    fn flags_non_idempotent_statements() {
        for (sql, fix) in [
            (
                "CREATE INDEX CONCURRENTLY i ON t (a);",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t",
            ),
            ("CREATE INDEX ON t (a);", "has no name"),
            ("DROP TABLE t;", "DROP TABLE IF EXISTS t"),
            (
                "DROP INDEX CONCURRENTLY app.i;",
                "DROP INDEX IF EXISTS app.i",
            ),
            ("DROP TYPE mood;", "DROP TYPE IF EXISTS mood"),
            ("DROP FUNCTION app.f(int);", "DROP FUNCTION IF EXISTS app.f"),
            (
                "DROP SCHEMA app CASCADE;",
                "DROP SCHEMA IF EXISTS app CASCADE",
            ),
            (
                "ALTER TABLE t ADD COLUMN a int;",
                "ADD COLUMN IF NOT EXISTS a",
            ),
            ("ALTER TABLE t DROP COLUMN a;", "DROP COLUMN IF EXISTS a"),
            (
                "ALTER TABLE t DROP CONSTRAINT c;",
                "DROP CONSTRAINT IF EXISTS c",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);",
                "DROP CONSTRAINT IF EXISTS c, ADD CONSTRAINT c",
            ),
            ("ALTER TABLE t ADD CHECK (a > 0);", "under a new name"),
            (
                "ALTER TABLE t ALTER COLUMN a TYPE bigint USING a * 100;",
                "already converted",
            ),
            (
                "ALTER TABLE p ATTACH PARTITION p1 FOR VALUES IN (1);",
                "ATTACH PARTITION",
            ),
            ("ALTER TABLE t RENAME COLUMN a TO b;", "RENAME"),
            ("CREATE VIEW v AS SELECT 1;", "CREATE OR REPLACE VIEW v"),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
                "CREATE OR REPLACE FUNCTION f",
            ),
            ("CREATE TYPE mood AS ENUM ('a');", "pg_type"),
            ("CREATE SCHEMA app;", "CREATE SCHEMA IF NOT EXISTS app"),
            (
                "CREATE EXTENSION pgcrypto;",
                "CREATE EXTENSION IF NOT EXISTS pgcrypto",
            ),
            ("CREATE SEQUENCE s;", "CREATE SEQUENCE IF NOT EXISTS s"),
            (
                "CREATE MATERIALIZED VIEW m AS SELECT 1;",
                "CREATE MATERIALIZED VIEW IF NOT EXISTS m",
            ),
            (
                "ALTER TYPE mood ADD VALUE 'x';",
                "ADD VALUE IF NOT EXISTS 'x'",
            ),
            (
                "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();",
                "DROP TRIGGER IF EXISTS tr ON t",
            ),
        ] {
            let out = render("RB01", sql);
            assert!(out.contains("warning RB01"), "{sql}: {out}");
            assert!(out.contains(fix), "{sql}: {out}");
        }
    }

    #[test]
    fn passes_idempotent_statements() {
        for sql in [
            "CREATE TABLE IF NOT EXISTS t (id int);",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
            "DROP TABLE IF EXISTS t;",
            "DROP INDEX CONCURRENTLY IF EXISTS i;",
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS a int;",
            "ALTER TABLE t DROP COLUMN IF EXISTS a, DROP CONSTRAINT IF EXISTS c;",
            "ALTER TABLE t DROP CONSTRAINT IF EXISTS c, ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
            "ALTER TABLE t ENABLE ROW LEVEL SECURITY;",
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL, ALTER COLUMN b SET DEFAULT 0;",
            "ALTER TABLE t ALTER COLUMN a TYPE bigint;",
            "ALTER TABLE t VALIDATE CONSTRAINT c;",
            "CREATE OR REPLACE VIEW v AS SELECT 1;",
            "CREATE TEMP TABLE s (id int) ON COMMIT DROP;",
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'x';",
            "UPDATE t SET a = 1;",
            "SELECT 1;",
        ] {
            assert_eq!(render("RB01", sql), "", "{sql}");
        }
    }

    #[test]
    fn statements_in_a_transaction_are_exempt() {
        assert_eq!(
            render(
                "RB01",
                "BEGIN;\nCREATE TABLE t (id int);\nDROP TABLE u;\nCOMMIT;"
            ),
            ""
        );
        let after = render(
            "RB01",
            "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nDROP TABLE u;",
        );
        assert!(after.contains("m.sql:4:1: warning RB01"), "{after}");
        assert!(!after.contains("m.sql:2:"), "{after}");
        let wrapped = render_with(
            "RB01",
            "CREATE TABLE t (id int);\nDROP TABLE u;",
            Opts {
                wrap: Wrap::File,
                ..Default::default()
            },
        );
        assert_eq!(wrapped, "");
    }

    #[test]
    fn pgships_engine_resumes_instead_of_rerunning() {
        for per_migration in [false, true] {
            let out = render_with(
                "RB01",
                "CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY i ON t (id);\nDROP INDEX CONCURRENTLY j;",
                Opts {
                    wrap: Wrap::Engine { per_migration },
                    ..Default::default()
                },
            );
            assert_eq!(out, "");
        }
    }
}
