//! DL01 drop-table: `DROP TABLE` (with or without `IF EXISTS`) of a table that was not created
//! earlier in the same file or transaction (dropping a table you just created loses nothing).
//! One finding per dropped table.
//!
//! Severity: error. Every row of the table is gone and only a backup brings it back, while the
//! safe path (stop using it, back it up or rename it, drop it later) costs one more deploy.
//! With `--database`, a table the catalog knows to be empty (0 rows and small) is only a
//! warning: no data is lost, but code that still uses it breaks. So is a table whose rows an
//! earlier statement of the run copied in full (`INSERT INTO t2 SELECT * FROM t`, `CREATE TABLE
//! t2 AS SELECT * FROM t`, or, with the catalog's list of columns, a full copy of each column;
//! see [`crate::lint::copies`]).
//!
//! Also home of the naming helpers the other DROP rules of this group share.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, ObjectType};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL01",
    name: "drop-table",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP TABLE deletes the table and all its rows",
    help: "stop using the table in code and deploy that first; back it up or rename it, and drop \
           it in a later migration",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::DropStmt(d) = stmt.node else {
        return Vec::new();
    };
    if d.remove_type != ObjectType::ObjectTable as i32 {
        return Vec::new();
    }
    d.objects
        .iter()
        .filter_map(qualified)
        .filter(|(_, key)| !ctx.is_new_table(key))
        .map(|(table, key)| hit(&table, &key, ctx))
        .collect()
}

fn hit(table: &str, key: &str, ctx: &Context) -> Hit {
    let known = ctx.catalog.as_ref().and_then(|c| c.table(key));
    let columns = known.map(|t| t.columns.keys().map(String::as_str).collect());
    if let Some(to) = ctx.copies.table(key, columns, ctx.file_no()) {
        return Hit::new(format!(
            "dropping table {table} loses no rows (they were copied to {to}), but running code \
             that still uses {table} fails"
        ))
        .severity(Severity::Warning)
        .help(format!(
            "deploy code that uses the copy and no longer {table} before the drop: copy in one \
             migration, and drop {table} in a later one"
        ));
    }
    let hit = Hit::new(format!(
        "dropping table {table} deletes all its rows, with its indexes, triggers and owned sequences"
    ))
    .help(format!(
        "stop using {table} in code and deploy that first; then back it up (pg_dump -t {table}) or \
         rename it (ALTER TABLE {table} RENAME TO {}_old) and drop it in a later migration",
        table.rsplit('.').next().unwrap_or(table)
    ));
    match ctx.catalog.as_ref().and_then(|c| c.table(key)) {
        Some(t) if t.rows == 0.0 && t.is_small() => hit.severity(Severity::Warning).help(format!(
            "{table} is empty according to the catalog, so no data is lost; make sure no \
                 deployed code still uses it"
        )),
        _ => hit,
    }
}

/// A DROP's object written as a qualified name (`[catalog.]schema.name` or `name`): the name as
/// written and the key tables are tracked by.
pub(super) fn qualified(node: &Node) -> Option<(String, String)> {
    let NodeEnum::List(l) = node.node.as_ref()? else {
        return None;
    };
    match ast::strings(&l.items).as_slice() {
        [name] => Some((name.to_string(), ast::key("", name))),
        [.., schema, name] => Some((format!("{schema}.{name}"), ast::key(schema, name))),
        [] => None,
    }
}

/// A DROP's object as written, whatever its form: a qualified name, a bare name (schema,
/// extension), a type name, or a function with its arguments.
pub(super) fn display(node: &Node) -> String {
    match node.node.as_ref() {
        Some(NodeEnum::List(l)) => ast::strings(&l.items).join("."),
        Some(NodeEnum::String(s)) => s.sval.clone(),
        Some(NodeEnum::TypeName(t)) => ast::type_name(t),
        Some(NodeEnum::ObjectWithArgs(f)) => {
            let name = ast::strings(&f.objname).join(".");
            if f.args_unspecified {
                name
            } else {
                let args: Vec<String> = f
                    .objargs
                    .iter()
                    .filter_map(|a| match a.node.as_ref()? {
                        NodeEnum::TypeName(t) => Some(ast::type_name(t)),
                        _ => None,
                    })
                    .collect();
                format!("{name}({})", args.join(", "))
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};
    use crate::lint::{Context, Outcome, Selection, Source, Wrap, lint_source};

    #[test]
    fn flags_dropping_an_existing_table() {
        assert_eq!(
            render("DL01", "DROP TABLE orders;"),
            "m.sql:1:1: error DL01 drop-table: dropping table orders deletes all its rows, with its \
             indexes, triggers and owned sequences\n  \
             1 | DROP TABLE orders\n    \
             | ^^^^^^^^^^^^^^^^^\n  \
             help: stop using orders in code and deploy that first; then back it up (pg_dump -t \
             orders) or rename it (ALTER TABLE orders RENAME TO orders_old) and drop it in a later \
             migration\n"
        );
        let out = render("DL01", "DROP TABLE IF EXISTS app.audit, legacy CASCADE;");
        assert_eq!(out.matches("error DL01").count(), 2, "{out}");
        assert!(
            out.contains("table app.audit") && out.contains("table legacy"),
            "{out}"
        );
        assert!(out.contains("RENAME TO audit_old"), "{out}");
    }

    #[test]
    fn a_table_created_earlier_in_the_file_or_transaction_is_exempt() {
        assert_eq!(
            render("DL01", "CREATE TABLE tmp (id int);\nDROP TABLE tmp;"),
            ""
        );
        assert_eq!(
            render(
                "DL01",
                "CREATE TABLE s.tmp AS SELECT 1 AS x;\nDROP TABLE s.tmp;"
            ),
            ""
        );
        // Only the old one of the two is reported.
        let out = render(
            "DL01",
            "CREATE TABLE tmp (id int);\nDROP TABLE tmp, old_orders;",
        );
        assert!(
            out.contains("old_orders") && !out.contains("table tmp"),
            "{out}"
        );
        // Same name in another schema: not the table that was created.
        let out = render("DL01", "CREATE TABLE app.tmp (id int);\nDROP TABLE tmp;");
        assert!(out.contains("m.sql:2:1"), "{out}");
        let out = render_with(
            "DL01",
            "BEGIN;\nCREATE TABLE t (id int);\nDROP TABLE t;\nCOMMIT;",
            Opts {
                wrap: Wrap::File,
                ..Default::default()
            },
        );
        assert_eq!(out, "");
    }

    /// Lint `files` in order as one run with `wrap`, DL01 only; the findings' file names.
    fn run(files: &[&str], wrap: Wrap) -> Vec<String> {
        let mut ctx = Context::new(17, None);
        let mut out = Outcome::default();
        let selection = Selection {
            enable: ["DL01".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for (i, text) in files.iter().enumerate() {
            let src = Source {
                name: format!("{i}.sql"),
                text,
                drizzle: false,
                wrap,
            };
            lint_source(&src, &mut ctx, &selection, &mut out);
        }
        out.findings.into_iter().map(|f| f.file).collect()
    }

    #[test]
    fn a_table_created_by_an_earlier_file_of_the_same_transaction_is_exempt() {
        let files = ["CREATE TABLE t (id int);", "DROP TABLE t;"];
        let whole_run = Wrap::Engine {
            per_migration: false,
        };
        assert!(run(&files, whole_run).is_empty());
        // Each file its own transaction: the table existed in between and may hold rows.
        let per_file = Wrap::Engine {
            per_migration: true,
        };
        assert_eq!(run(&files, per_file), ["1.sql"]);
        assert_eq!(run(&files, Wrap::None), ["1.sql"]);
    }

    #[test]
    fn other_drops_are_not_tables() {
        assert_eq!(render("DL01", "DROP VIEW orders_v;"), "");
        assert_eq!(render("DL01", "DROP INDEX orders_idx;"), "");
        assert_eq!(render("DL01", "DROP MATERIALIZED VIEW mv;"), "");
    }

    #[test]
    fn the_catalog_lowers_an_empty_table_to_a_warning() {
        let mut cat = Catalog::default();
        let table = |rows: f64, bytes: i64| Table {
            kind: 'r',
            rows,
            bytes,
            ..Default::default()
        };
        cat.tables.insert("public.empty".into(), table(0.0, 16384));
        cat.tables
            .insert("public.unknown".into(), table(-1.0, 8192));
        cat.tables.insert("public.big".into(), table(2e6, 1 << 30));
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let out = render_with("DL01", "DROP TABLE empty;", opts());
        assert!(
            out.contains("warning DL01") && out.contains("is empty"),
            "{out}"
        );
        // Never analyzed (-1 rows): not known to be empty.
        assert!(render_with("DL01", "DROP TABLE unknown;", opts()).contains("error DL01"));
        assert!(render_with("DL01", "DROP TABLE big;", opts()).contains("error DL01"));
        // Unknown to the catalog (created by an earlier migration of the run): still an error.
        assert!(render_with("DL01", "DROP TABLE other;", opts()).contains("error DL01"));
    }

    #[test]
    fn a_table_copied_before_the_drop_loses_no_rows_but_still_breaks_code() {
        // drizzle: a table replaced by a new one (custom migration), dropped with CASCADE.
        let sql = r#"CREATE TABLE "accounts" (
	"id" serial PRIMARY KEY NOT NULL,
	"email" text NOT NULL
);
--> statement-breakpoint
INSERT INTO "accounts" SELECT * FROM "users";--> statement-breakpoint
DROP TABLE "users" CASCADE;"#;
        assert_eq!(
            render("DL01", sql),
            "m.sql:7:1: warning DL01 drop-table: dropping table users loses no rows (they were \
             copied to accounts (line 6)), but running code that still uses users fails\n  \
             7 | DROP TABLE \"users\" CASCADE\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: deploy code that uses the copy and no longer users before the drop: copy in \
             one migration, and drop users in a later one\n"
        );
        assert!(
            render(
                "DL01",
                "CREATE TABLE users_old AS SELECT * FROM users;\nDROP TABLE users;"
            )
            .contains("warning DL01")
        );
        // Some rows only, or some columns without the catalog to say which there are.
        for sql in [
            "INSERT INTO accounts SELECT * FROM users WHERE active;\nDROP TABLE users;",
            "INSERT INTO accounts (id, email) SELECT id, email FROM users;\nDROP TABLE users;",
        ] {
            assert!(render("DL01", sql).contains("error DL01"), "{sql}");
        }
    }

    #[test]
    fn with_the_catalog_a_table_whose_every_column_was_copied_loses_no_rows() {
        use std::collections::HashMap;

        use crate::lint::catalog::Column;
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.users".into(),
            Table {
                kind: 'r',
                rows: 5e5,
                bytes: 1 << 30,
                columns: HashMap::from([
                    ("id".to_string(), Column::default()),
                    ("email".to_string(), Column::default()),
                ]),
                ..Default::default()
            },
        );
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let all =
            "INSERT INTO accounts (id, email) SELECT id, email FROM users;\nDROP TABLE users;";
        let out = render_with("DL01", all, opts());
        assert!(
            out.contains("warning DL01")
                && out.contains("copied to accounts.email (line 1), accounts.id (line 1))"),
            "{out}"
        );
        let some = "INSERT INTO accounts (id) SELECT id FROM users;\nDROP TABLE users;";
        assert!(render_with("DL01", some, opts()).contains("error DL01"));
    }
}
