//! BI06 add-required-column: `ALTER TABLE ... ADD COLUMN ... NOT NULL` (or `PRIMARY KEY`, which
//! implies it) with no `DEFAULT`, on a table not created earlier in the same file or
//! transaction. It fails as soon as the table has a row (every existing row would be NULL), and
//! even on an empty table, INSERTs from code deployed before the migration (which does not know
//! the column) fail. Exempt: a default, a serial type (an implicit default), identity and
//! generated columns (PostgreSQL fills them).
//!
//! Severity: warning. Nothing is locked for long or lost; the statement fails or old code's
//! INSERTs do, and the fix is a matter of design. With `--database`, the message says whether
//! the table has rows (the statement will fail) or is empty (only old INSERTs fail).

use pg_query::protobuf::{AlterTableType, ColumnDef, ConstrType};

use crate::lint::catalog::Table;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI06",
    name: "add-required-column",
    severity: Severity::Warning,
    default_on: true,
    summary: "ADD COLUMN ... NOT NULL without a DEFAULT fails on a non-empty table and breaks old \
              code's INSERTs",
    help: "add the column nullable, or NOT NULL with a non-volatile DEFAULT (instant on \
           PostgreSQL 11+)",
    check,
};

const SERIAL: &[&str] = &[
    "smallserial",
    "serial",
    "bigserial",
    "serial2",
    "serial4",
    "serial8",
];

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let known = ctx.catalog.as_ref().and_then(|c| c.table(&key));
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(_, t)| *t == AlterTableType::AtAddColumn)
        .filter_map(|(cmd, _)| ast::column_def(cmd))
        .filter(|c| required(c))
        .map(|c| hit(&table, c, known, ctx.pg_version))
        .collect()
}

fn hit(table: &str, c: &ColumnDef, known: Option<&Table>, pg_version: u32) -> Hit {
    let column = &c.colname;
    let ty = c.type_name.as_ref().map(ast::type_name).unwrap_or_default();
    let rows = match known {
        Some(t) if t.rows > 0.0 => format!(
            "{table} has about {} rows, so this statement will fail",
            t.rows as i64
        ),
        Some(t) if t.rows == 0.0 && t.is_small() => {
            format!("{table} is empty, so the column is added")
        }
        _ => format!("it fails if {table} has any row"),
    };
    let help = if pg_version >= 11 {
        format!(
            "add it nullable and backfill, or give it a default: ADD COLUMN {column} {ty} NOT NULL \
             DEFAULT <value> (instant on PostgreSQL 11+ when the default is not volatile)"
        )
    } else {
        format!(
            "add it nullable, backfill it in batches, then SET NOT NULL (on PostgreSQL {pg_version} \
             a DEFAULT rewrites the whole table)"
        )
    };
    Hit::new(format!(
        "adding NOT NULL column {table}.{column} without a DEFAULT: {rows}, and INSERTs from \
         running code that does not know {column} fail"
    ))
    .help(help)
}

/// NOT NULL (or PRIMARY KEY) and nothing that fills existing and new rows.
fn required(c: &ColumnDef) -> bool {
    let kinds: Vec<ConstrType> = ast::column_constraints(c)
        .into_iter()
        .map(ast::constr_type)
        .collect();
    let not_null = c.is_not_null
        || kinds
            .iter()
            .any(|k| matches!(k, ConstrType::ConstrNotnull | ConstrType::ConstrPrimary));
    let filled = c.raw_default.is_some()
        || !c.identity.is_empty()
        || !c.generated.is_empty()
        || kinds.iter().any(|k| {
            matches!(
                k,
                ConstrType::ConstrDefault
                    | ConstrType::ConstrIdentity
                    | ConstrType::ConstrGenerated
            )
        })
        || c.type_name.as_ref().is_some_and(|t| {
            t.array_bounds.is_empty() && SERIAL.contains(&ast::base_type(t).as_str())
        });
    not_null && !filled
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_required_column_without_default() {
        assert_eq!(
            render(
                "BI06",
                "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;"
            ),
            "m.sql:1:1: warning BI06 add-required-column: adding NOT NULL column users.tenant_id \
             without a DEFAULT: it fails if users has any row, and INSERTs from running code that \
             does not know tenant_id fail\n  \
             1 | ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: add it nullable and backfill, or give it a default: ADD COLUMN tenant_id bigint \
             NOT NULL DEFAULT <value> (instant on PostgreSQL 11+ when the default is not volatile)\n"
        );
        let out = render(
            "BI06",
            "ALTER TABLE app.t ADD COLUMN IF NOT EXISTS code varchar(8) NOT NULL UNIQUE;",
        );
        assert!(
            out.contains("app.t.code") && out.contains("code character varying(8) NOT NULL"),
            "{out}"
        );
        // PRIMARY KEY implies NOT NULL.
        assert!(render("BI06", "ALTER TABLE t ADD COLUMN id bigint PRIMARY KEY;").contains("t.id"));
        // Several columns: only the required ones.
        let out = render(
            "BI06",
            "ALTER TABLE t ADD a int NOT NULL, ADD b int, ADD c int NOT NULL DEFAULT 0;",
        );
        assert_eq!(out.matches("warning BI06").count(), 1, "{out}");
        assert!(out.contains("t.a "), "{out}");
    }

    #[test]
    fn passes_defaults_generated_identity_serial_and_new_tables() {
        for sql in [
            "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0;",
            "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now() NOT NULL;",
            "ALTER TABLE t ADD COLUMN a int;",
            "ALTER TABLE t ADD COLUMN a int NULL;",
            "ALTER TABLE t ADD COLUMN a bigint GENERATED ALWAYS AS IDENTITY NOT NULL;",
            "ALTER TABLE t ADD COLUMN a bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY;",
            "ALTER TABLE t ADD COLUMN a int GENERATED ALWAYS AS (b * 2) STORED NOT NULL;",
            "ALTER TABLE t ADD COLUMN a bigserial NOT NULL;",
            "ALTER TABLE t ADD COLUMN a serial PRIMARY KEY;",
            "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN a int NOT NULL;",
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
        ] {
            assert_eq!(render("BI06", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_advice_depends_on_the_version() {
        let out = render_with(
            "BI06",
            "ALTER TABLE t ADD COLUMN a int NOT NULL;",
            Opts {
                pg_version: 10,
                ..Default::default()
            },
        );
        assert!(
            out.contains("on PostgreSQL 10 a DEFAULT rewrites the whole table"),
            "{out}"
        );
        let out = render_with(
            "BI06",
            "ALTER TABLE t ADD COLUMN a int NOT NULL;",
            Opts {
                pg_version: 11,
                ..Default::default()
            },
        );
        assert!(out.contains("instant on PostgreSQL 11+"), "{out}");
    }

    #[test]
    fn the_catalog_says_whether_it_will_fail() {
        let mut cat = Catalog::default();
        let table = |rows: f64| Table {
            kind: 'r',
            rows,
            bytes: 16384,
            ..Default::default()
        };
        cat.tables.insert("public.busy".into(), table(1200.0));
        cat.tables.insert("public.empty".into(), table(0.0));
        cat.tables.insert("public.unknown".into(), table(-1.0));
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let out = render_with("BI06", "ALTER TABLE busy ADD a int NOT NULL;", opts());
        assert!(
            out.contains("busy has about 1200 rows, so this statement will fail"),
            "{out}"
        );
        let out = render_with("BI06", "ALTER TABLE empty ADD a int NOT NULL;", opts());
        assert!(
            out.contains("warning BI06") && out.contains("empty is empty, so the column is added"),
            "{out}"
        );
        let out = render_with("BI06", "ALTER TABLE unknown ADD a int NOT NULL;", opts());
        assert!(out.contains("it fails if unknown has any row"), "{out}");
    }
}
