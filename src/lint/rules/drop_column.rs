//! DL02 drop-column: `ALTER TABLE ... DROP COLUMN` on a table that was not created earlier in
//! the same file or transaction. One finding per dropped column.
//!
//! Severity: error. The column's data is gone (the drop itself is instant: the space is only
//! reclaimed by a later rewrite), the indexes and constraints that use it go with it, and
//! running code that still selects or inserts it fails, while the safe path (remove it from
//! the code and deploy, then drop) only costs one more deploy.
//! With `--database`: a column the catalog does not list on a table it knows is not this
//! rule's business (the statement fails, is a no-op with `IF EXISTS`, or drops a column added
//! earlier in the same run): no finding. A column of an empty table (0 rows and small) is only a
//! warning: no data is lost, but code that uses it still breaks.

use pg_query::protobuf::AlterTableType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL02",
    name: "drop-column",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP COLUMN deletes the column's data and breaks code that still uses it",
    help: "remove the column from the code (and ORM models) and deploy that first, then drop it \
           in a later migration",
    check,
};

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
        .filter(|(_, t)| *t == AlterTableType::AtDropColumn)
        .filter(|(cmd, _)| known.is_none_or(|t| t.columns.is_empty() || t.columns.contains_key(&cmd.name)))
        .map(|(cmd, _)| {
            let column = &cmd.name;
            let hit = Hit::new(format!(
                "dropping column {table}.{column} deletes its data, with the indexes and \
                 constraints that use it; running code that still reads or writes {column} fails"
            ))
            .help(format!(
                "remove {column} from the code and ORM models (e.g. Rails ignored_columns, Drizzle \
                 schema) and deploy that first, then drop it in a later migration"
            ));
            match known {
                Some(t) if t.rows == 0.0 && t.is_small() => {
                    hit.severity(Severity::Warning).help(format!(
                        "{table} is empty according to the catalog, so no data is lost; make sure no \
                         deployed code still uses {column}"
                    ))
                }
                _ => hit,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::lint::catalog::{Catalog, Column, Table};
    use crate::lint::testing::{Opts, render, render_with};

    /// The exact statement of the Drizzle fixture `0003_drop_order_total.sql`.
    const DRIZZLE_0003: &str = r#"ALTER TABLE "orders" DROP COLUMN "total_cents";"#;

    #[test]
    fn flags_the_drizzle_fixture() {
        assert_eq!(
            render("DL02", DRIZZLE_0003),
            "m.sql:1:1: error DL02 drop-column: dropping column orders.total_cents deletes its data, \
             with the indexes and constraints that use it; running code that still reads or writes \
             total_cents fails\n  \
             1 | ALTER TABLE \"orders\" DROP COLUMN \"total_cents\"\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: remove total_cents from the code and ORM models (e.g. Rails ignored_columns, \
             Drizzle schema) and deploy that first, then drop it in a later migration\n"
        );
        // The file itself still says that.
        let file =
            include_str!("../../../tests/fixtures/drizzle-app/drizzle/0003_drop_order_total.sql");
        assert!(render("DL02", file).contains("orders.total_cents"));
    }

    #[test]
    fn flags_every_dropped_column_and_every_form() {
        let out = render(
            "DL02",
            "ALTER TABLE app.users DROP COLUMN a, DROP b CASCADE, ADD COLUMN c int, DROP COLUMN IF EXISTS d;",
        );
        assert_eq!(out.matches("error DL02").count(), 3, "{out}");
        for c in ["app.users.a", "app.users.b", "app.users.d"] {
            assert!(out.contains(c), "{c}: {out}");
        }
    }

    #[test]
    fn passes_new_tables_and_other_drops() {
        assert_eq!(
            render(
                "DL02",
                "CREATE TABLE t (a int, b int);\nALTER TABLE t DROP COLUMN b;"
            ),
            ""
        );
        assert_eq!(
            render("DL02", "ALTER TABLE t DROP CONSTRAINT t_a_check;"),
            ""
        );
        assert_eq!(
            render("DL02", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
            ""
        );
        // Not a table: the attribute of a composite type.
        assert_eq!(render("DL02", "ALTER TYPE pair DROP ATTRIBUTE b;"), "");
    }

    #[test]
    fn the_catalog_leaves_unknown_columns_and_lowers_empty_tables() {
        let mut cat = Catalog::default();
        let table = |rows: f64| Table {
            kind: 'r',
            rows,
            bytes: 16384,
            columns: HashMap::from([("total_cents".to_string(), Column::default())]),
            ..Default::default()
        };
        cat.tables.insert("public.orders".into(), table(5e5));
        cat.tables.insert("public.drafts".into(), table(0.0));
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        assert!(render_with("DL02", DRIZZLE_0003, opts()).contains("error DL02"));
        assert_eq!(
            render_with(
                "DL02",
                "ALTER TABLE orders DROP COLUMN IF EXISTS gone;",
                opts()
            ),
            ""
        );
        let out = render_with(
            "DL02",
            "ALTER TABLE drafts DROP COLUMN total_cents;",
            opts(),
        );
        assert!(
            out.contains("warning DL02") && out.contains("is empty"),
            "{out}"
        );
        // A table the catalog does not know: reported as usual.
        assert!(
            render_with("DL02", "ALTER TABLE other DROP COLUMN x;", opts()).contains("error DL02")
        );
    }
}
