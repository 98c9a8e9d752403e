//! DL06 truncate (opt-in): a plain `TRUNCATE` (without CASCADE, which is DL05) of tables that
//! were not created earlier in the same file or transaction.
//!
//! Severity: warning. It deletes every row at once under an ACCESS EXCLUSIVE lock, which is
//! sometimes exactly what a data migration means to do; hence opt-in, and a warning rather than
//! an error. With `RESTART IDENTITY` the owned sequences restart too, which the message says.

use pg_query::NodeEnum;
use pg_query::protobuf::DropBehavior;

use super::truncate_cascade::relations;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL06",
    name: "truncate",
    severity: Severity::Warning,
    default_on: false,
    summary: "TRUNCATE deletes every row of the table in a migration",
    help: "delete in batches (DELETE ... WHERE id IN (SELECT ... LIMIT n)) if only some rows must \
           go, or silence this where emptying the table is intended",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::TruncateStmt(t) = stmt.node else {
        return Vec::new();
    };
    if t.behavior == DropBehavior::DropCascade as i32 {
        return Vec::new();
    }
    let names: Vec<String> = relations(&t.relations)
        .into_iter()
        .filter(|rv| !ctx.is_new_table(&ast::rel_key(rv)))
        .map(ast::rel_name)
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let restart = if t.restart_seqs {
        ", restarts their owned sequences,"
    } else {
        ""
    };
    vec![Hit::new(format!(
        "TRUNCATE deletes every row of {}{restart} and locks them ACCESS EXCLUSIVE while it runs",
        names.join(", ")
    ))]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_plain_truncate() {
        assert_eq!(
            render("DL06", "TRUNCATE sessions;"),
            "m.sql:1:1: warning DL06 truncate: TRUNCATE deletes every row of sessions and locks them \
             ACCESS EXCLUSIVE while it runs\n  \
             1 | TRUNCATE sessions\n    \
             | ^^^^^^^^^^^^^^^^^\n  \
             help: delete in batches (DELETE ... WHERE id IN (SELECT ... LIMIT n)) if only some rows \
             must go, or silence this where emptying the table is intended\n"
        );
        let out = render("DL06", "TRUNCATE TABLE a, s.b RESTART IDENTITY;");
        assert!(
            out.contains("of a, s.b, restarts their owned sequences,"),
            "{out}"
        );
    }

    #[test]
    fn passes_cascade_new_tables_and_deletes() {
        // CASCADE is DL05's.
        assert_eq!(render("DL06", "TRUNCATE sessions CASCADE;"), "");
        assert_eq!(render("DL06", "CREATE TABLE t (id int);\nTRUNCATE t;"), "");
        assert_eq!(render("DL06", "DELETE FROM sessions;"), "");
        let out = render("DL06", "CREATE TABLE t (id int);\nTRUNCATE t, sessions;");
        assert!(out.contains("every row of sessions and"), "{out}");
    }
}
