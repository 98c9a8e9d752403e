//! BI05 drop-not-null: `ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL` on a table not created
//! earlier in the same file or transaction. Code deployed before the migration assumes the
//! column is always set and may break on the NULLs newer code writes; and once NULLs exist,
//! restoring NOT NULL means a backfill and a scan (LK06).
//!
//! Severity: warning. Instant (ACCESS EXCLUSIVE, briefly) and no data is lost; the risk is in
//! the readers, which the migration cannot see.

use pg_query::protobuf::AlterTableType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI05",
    name: "drop-not-null",
    severity: Severity::Warning,
    default_on: true,
    summary: "DROP NOT NULL lets NULLs reach code that assumes the column is always set",
    help: "make every reader handle NULL and deploy that first, or keep NOT NULL and write a \
           sentinel value",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(_, t)| *t == AlterTableType::AtDropNotNull)
        .map(|(cmd, _)| {
            let column = &cmd.name;
            Hit::new(format!(
                "dropping NOT NULL on {table}.{column} lets NULLs reach running code that assumes \
                 {column} is always set; restoring it later needs a backfill and a full scan"
            ))
            .help(format!(
                "make every reader of {column} handle NULL and deploy that first, or keep NOT NULL \
                 and write a sentinel value"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_drop_not_null() {
        assert_eq!(
            render(
                "BI05",
                "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;"
            ),
            "m.sql:1:1: warning BI05 drop-not-null: dropping NOT NULL on users.email lets NULLs reach \
             running code that assumes email is always set; restoring it later needs a backfill and \
             a full scan\n  \
             1 | ALTER TABLE users ALTER COLUMN email DROP NOT NULL\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: make every reader of email handle NULL and deploy that first, or keep NOT NULL \
             and write a sentinel value\n"
        );
        let out = render(
            "BI05",
            "ALTER TABLE app.users ALTER a DROP NOT NULL, ALTER b DROP NOT NULL;",
        );
        assert_eq!(out.matches("warning BI05").count(), 2, "{out}");
        assert!(
            out.contains("app.users.a") && out.contains("app.users.b"),
            "{out}"
        );
    }

    #[test]
    fn passes_new_tables_and_other_changes() {
        assert_eq!(
            render(
                "BI05",
                "CREATE TABLE t (a int NOT NULL);\nALTER TABLE t ALTER a DROP NOT NULL;"
            ),
            ""
        );
        assert_eq!(
            render("BI05", "ALTER TABLE users ALTER email SET NOT NULL;"),
            ""
        );
        assert_eq!(
            render("BI05", "ALTER TABLE users ALTER email DROP DEFAULT;"),
            ""
        );
        assert_eq!(
            render("BI05", "ALTER TABLE users DROP CONSTRAINT email_not_null;"),
            ""
        );
    }
}
