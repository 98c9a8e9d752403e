//! BI02 rename-table: `ALTER TABLE ... RENAME TO` and `ALTER TABLE ... SET SCHEMA` (the table
//! moves, so its qualified name changes), also for views, materialized views and foreign
//! tables, of a relation not created earlier in the same file or transaction. Code deployed
//! before the migration keeps using the old name and fails until it is redeployed.
//!
//! Severity: warning. Instant (ACCESS EXCLUSIVE, briefly) and no data is lost, but running code
//! breaks; a view with the old name bridges the transition. A rename followed by such a view is
//! not recognised (the rule sees one statement at a time): silence it with
//! `-- pgship:ignore BI02 <reason>`.

use pg_query::NodeEnum;
use pg_query::protobuf::{ObjectType, RangeVar};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI02",
    name: "rename-table",
    severity: Severity::Warning,
    default_on: true,
    summary: "renaming a table (or moving it to another schema) breaks running code that uses the \
              old name",
    help: "create a view with the old name in the same transaction and drop it once every \
           instance uses the new name",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let (kind, rv, new_name, verb) = match stmt.node {
        NodeEnum::RenameStmt(r) => match (kind(r.rename_type), &r.relation) {
            (Some(k), Some(rv)) => {
                let new = if rv.schemaname.is_empty() {
                    r.newname.clone()
                } else {
                    format!("{}.{}", rv.schemaname, r.newname)
                };
                (k, rv, new, "renaming")
            }
            _ => return Vec::new(),
        },
        NodeEnum::AlterObjectSchemaStmt(s) => match (kind(s.object_type), &s.relation) {
            (Some(k), Some(rv)) => (k, rv, format!("{}.{}", s.newschema, rv.relname), "moving"),
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    vec![hit(kind, rv, &new_name, verb)]
}

fn hit(kind: &str, rv: &RangeVar, new_name: &str, verb: &str) -> Hit {
    let old = ast::rel_name(rv);
    let bridge = if kind == "table" {
        format!(
            "in the same transaction, CREATE VIEW {old} AS SELECT * FROM {new_name} (simple views \
             accept INSERT, UPDATE and DELETE), and drop the view once every instance uses {new_name}"
        )
    } else {
        format!(
            "keep a {kind} named {old} (e.g. CREATE VIEW {old} AS SELECT * FROM {new_name}) until \
             every instance uses {new_name}"
        )
    };
    Hit::new(format!(
        "{verb} {kind} {old} to {new_name} breaks running code that still uses {old} until every \
         instance is redeployed"
    ))
    .help(bridge)
}

/// The relation kinds whose renaming this rule reports.
fn kind(object_type: i32) -> Option<&'static str> {
    match ObjectType::try_from(object_type).ok()? {
        ObjectType::ObjectTable => Some("table"),
        ObjectType::ObjectView => Some("view"),
        ObjectType::ObjectMatview => Some("materialized view"),
        ObjectType::ObjectForeignTable => Some("foreign table"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_renaming_a_table() {
        assert_eq!(
            render("BI02", "ALTER TABLE users RENAME TO accounts;"),
            "m.sql:1:1: warning BI02 rename-table: renaming table users to accounts breaks running \
             code that still uses users until every instance is redeployed\n  \
             1 | ALTER TABLE users RENAME TO accounts\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: in the same transaction, CREATE VIEW users AS SELECT * FROM accounts (simple \
             views accept INSERT, UPDATE and DELETE), and drop the view once every instance uses \
             accounts\n"
        );
        let out = render(
            "BI02",
            "ALTER TABLE IF EXISTS app.users RENAME TO accounts;",
        );
        assert!(out.contains("table app.users to app.accounts"), "{out}");
        let out = render("BI02", "ALTER VIEW active_users RENAME TO current_users;");
        assert!(out.contains("renaming view active_users"), "{out}");
    }

    #[test]
    fn flags_set_schema() {
        let out = render("BI02", "ALTER TABLE users SET SCHEMA archive;");
        assert!(
            out.contains("moving table users to archive.users")
                && out.contains("CREATE VIEW users"),
            "{out}"
        );
        let out = render(
            "BI02",
            "ALTER MATERIALIZED VIEW app.stats SET SCHEMA reporting;",
        );
        assert!(
            out.contains("moving materialized view app.stats to reporting.stats"),
            "{out}"
        );
    }

    #[test]
    fn passes_new_tables_and_other_objects() {
        assert_eq!(
            render(
                "BI02",
                "CREATE TABLE t (a int);\nALTER TABLE t RENAME TO u;"
            ),
            ""
        );
        assert_eq!(
            render(
                "BI02",
                "CREATE TABLE t (a int);\nALTER TABLE t SET SCHEMA app;"
            ),
            ""
        );
        assert_eq!(
            render("BI02", "ALTER TABLE users RENAME COLUMN a TO b;"),
            ""
        );
        assert_eq!(
            render("BI02", "ALTER INDEX users_idx RENAME TO users_email_idx;"),
            ""
        );
        assert_eq!(render("BI02", "ALTER SEQUENCE s RENAME TO t;"), "");
        assert_eq!(render("BI02", "ALTER FUNCTION f() SET SCHEMA app;"), "");
        assert_eq!(render("BI02", "ALTER SCHEMA app RENAME TO core;"), "");
    }
}
