//! BI01 rename-column: `ALTER TABLE ... RENAME [COLUMN] a TO b` (also on views, materialized
//! views and foreign tables) of a relation not created earlier in the same file or transaction.
//! Code deployed before the migration keeps using the old name until every instance runs the
//! new code, and its queries fail in between.
//!
//! Severity: warning. The change itself is instant (ACCESS EXCLUSIVE, briefly) and loses no
//! data, but it breaks running code; the expand/contract path avoids that at the cost of several
//! deploys, which is a trade-off rather than a must. A rename followed by a compatibility column
//! or view is not recognised (the rule sees one statement at a time): silence it with
//! `-- pgship:ignore BI01 <reason>`.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI01",
    name: "rename-column",
    severity: Severity::Warning,
    default_on: true,
    summary: "RENAME COLUMN breaks running code that still uses the old name",
    help: "expand/contract: add the new column, write both, backfill, switch reads, then drop the \
           old one; or rename only in the ORM mapping",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::RenameStmt(r) = stmt.node else {
        return Vec::new();
    };
    if r.rename_type != ObjectType::ObjectColumn as i32 {
        return Vec::new();
    }
    let Some(rv) = &r.relation else {
        return Vec::new();
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let (old, new) = (&r.subname, &r.newname);
    vec![
        Hit::new(format!(
            "renaming column {table}.{old} to {new} breaks running code that still uses {old} \
             until every instance is redeployed"
        ))
        .help(format!(
            "expand/contract: add {new}, write both (a trigger), backfill, switch reads to {new}, \
             then drop {old} in a later migration; or keep {old} and rename only in the ORM mapping"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    /// The exact statement of the Drizzle fixture `0002_rename_full_name.sql`.
    const DRIZZLE_0002: &str =
        r#"ALTER TABLE "users" RENAME COLUMN "full_name" TO "display_name";"#;

    #[test]
    fn flags_the_drizzle_fixture() {
        assert_eq!(
            render("BI01", DRIZZLE_0002),
            "m.sql:1:1: warning BI01 rename-column: renaming column users.full_name to display_name \
             breaks running code that still uses full_name until every instance is redeployed\n  \
             1 | ALTER TABLE \"users\" RENAME COLUMN \"full_name\" TO \"display_name\"\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: expand/contract: add display_name, write both (a trigger), backfill, switch \
             reads to display_name, then drop full_name in a later migration; or keep full_name and \
             rename only in the ORM mapping\n"
        );
        let file =
            include_str!("../../../tests/fixtures/drizzle-app/drizzle/0002_rename_full_name.sql");
        assert!(render("BI01", file).contains("users.full_name to display_name"));
    }

    #[test]
    fn flags_every_form() {
        let out = render("BI01", "ALTER TABLE app.users RENAME email TO mail;");
        assert!(out.contains("app.users.email to mail"), "{out}");
        let out = render(
            "BI01",
            "ALTER TABLE IF EXISTS ONLY users RENAME COLUMN a TO b;",
        );
        assert!(out.contains("users.a to b"), "{out}");
        let out = render("BI01", "ALTER VIEW users_v RENAME COLUMN a TO b;");
        assert!(out.contains("users_v.a to b"), "{out}");
        let out = render(
            "BI01",
            "ALTER MATERIALIZED VIEW stats RENAME COLUMN n TO total;",
        );
        assert!(out.contains("stats.n to total"), "{out}");
    }

    #[test]
    fn passes_new_tables_and_other_renames() {
        assert_eq!(
            render(
                "BI01",
                "CREATE TABLE t (a int);\nALTER TABLE t RENAME COLUMN a TO b;"
            ),
            ""
        );
        assert_eq!(render("BI01", "ALTER TABLE users RENAME TO people;"), "");
        assert_eq!(
            render("BI01", "ALTER TABLE users RENAME CONSTRAINT a TO b;"),
            ""
        );
        assert_eq!(
            render("BI01", "ALTER INDEX users_idx RENAME TO users_email_idx;"),
            ""
        );
        assert_eq!(
            render("BI01", "ALTER TYPE pair RENAME ATTRIBUTE a TO b;"),
            ""
        );
    }
}
