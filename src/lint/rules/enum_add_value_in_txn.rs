//! TX02 enum-add-value-in-txn: `ALTER TYPE ... ADD VALUE` inside a transaction block (after
//! an explicit `BEGIN`, in a file the runner wraps, or in pgship's engine from PostgreSQL 12 on,
//! where the engine keeps it in the migration's transaction).
//!
//! Before PostgreSQL 12 the statement is refused in a transaction block (pgship's engine runs
//! it alone there, so it is not reported then). From 12 it runs, but the new label cannot be
//! used (as a DEFAULT, in an UPDATE, a CHECK, a comparison or a cast) until the transaction
//! commits: such a use fails with "unsafe use of new value".
//!
//! Severity: warning from PostgreSQL 12 (the statement works; only a later use in the same
//! transaction fails, which the linter cannot see from this statement), error before 12 (the
//! statement itself always fails, and running it outside the transaction avoids it).

use pg_query::NodeEnum;
use pg_query::protobuf::AlterEnumStmt;

use super::concurrent_in_txn::txn_origin;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "TX02",
    name: "enum-add-value-in-txn",
    severity: Severity::Warning,
    default_on: true,
    summary: "ALTER TYPE ... ADD VALUE in a transaction: refused before PostgreSQL 12, and the new \
              value is unusable until the transaction commits",
    help: "add the value in a migration of its own and use it only in later migrations (after the \
           transaction that adds it has committed)",
    check,
};

/// `ADD VALUE` (not `RENAME VALUE`, which also fills `new_val`).
fn added_value(node: &NodeEnum) -> Option<&AlterEnumStmt> {
    match node {
        NodeEnum::AlterEnumStmt(e) if !e.new_val.is_empty() && e.old_val.is_empty() => Some(e),
        _ => None,
    }
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some(e) = added_value(stmt.node) else {
        return Vec::new();
    };
    let Some(origin) = txn_origin(stmt, ctx) else {
        return Vec::new();
    };
    let ty = ast::strings(&e.type_name).join(".");
    let label = &e.new_val;
    if ctx.pg_version < 12 {
        return vec![
            Hit::new(format!(
                "ALTER TYPE {ty} ADD VALUE '{label}' runs {origin}: PostgreSQL {} refuses it there \
                 (\"ALTER TYPE ... ADD cannot run inside a transaction block\"; allowed from 12)",
                ctx.pg_version
            ))
            .severity(Severity::Error)
            .help(
                "move it to a migration of its own without BEGIN/COMMIT that the runner does not \
                 wrap (pgship's engine runs it alone before PostgreSQL 12)",
            ),
        ];
    }
    // pgship's engine in its default mode: one transaction for the whole run.
    let whole_run = ctx.wrap
        == (Wrap::Engine {
            per_migration: false,
        })
        && !ctx.in_explicit_transaction();
    let until = if whole_run {
        " (pgship's engine runs all pending migrations in one transaction, so this includes \
         the later migrations of the same run)"
    } else {
        ""
    };
    vec![
        Hit::new(format!(
            "ALTER TYPE {ty} ADD VALUE '{label}' runs {origin}: until it commits, any use of \
             '{label}' in the same transaction{until} (a DEFAULT, an UPDATE, a CHECK, a \
             comparison) fails with \"unsafe use of new value\""
        ))
        .help(format!(
            "commit before using '{label}': add it in a migration of its own and use it from the \
             next one{}",
            if whole_run {
                " (with pgship's engine, set [apply] tx_mode = \"per-migration\" or deploy the two \
                 in separate runs)"
            } else {
                ""
            }
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    fn with(sql: &str, pg_version: u32, wrap: Wrap) -> String {
        render_with(
            "TX02",
            sql,
            Opts {
                pg_version,
                wrap,
                ..Default::default()
            },
        )
    }

    #[test]
    fn warns_from_12_that_the_value_is_unusable_until_commit() {
        assert_eq!(
            render(
                "TX02",
                "BEGIN;\nALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';\nCOMMIT;"
            ),
            "m.sql:2:1: warning TX02 enum-add-value-in-txn: ALTER TYPE mood ADD VALUE 'meh' runs \
             inside the transaction opened by the BEGIN earlier in this file: until it commits, \
             any use of 'meh' in the same transaction (a DEFAULT, an UPDATE, a CHECK, a \
             comparison) fails with \"unsafe use of new value\"\n  \
             2 | ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok'\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: commit before using 'meh': add it in a migration of its own and use it from \
             the next one\n"
        );
    }

    #[test]
    fn is_an_error_before_12() {
        let out = with(
            "ALTER TYPE app.mood ADD VALUE IF NOT EXISTS 'meh';",
            11,
            Wrap::File,
        );
        assert!(out.contains("error TX02"), "{out}");
        assert!(out.contains("PostgreSQL 11 refuses it there"), "{out}");
        assert!(out.contains("ALTER TYPE app.mood"), "{out}");
        let exp = with(
            "BEGIN;\nALTER TYPE mood ADD VALUE 'x';\nCOMMIT;",
            10,
            Wrap::None,
        );
        assert!(exp.contains("m.sql:2:1: error TX02"), "{exp}");
    }

    #[test]
    fn passes_outside_a_transaction() {
        for v in [11, 12, 17] {
            assert_eq!(with("ALTER TYPE mood ADD VALUE 'meh';", v, Wrap::None), "");
        }
        assert_eq!(
            render(
                "TX02",
                "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nALTER TYPE mood ADD VALUE 'meh';"
            ),
            ""
        );
    }

    #[test]
    fn rename_value_and_other_statements_pass() {
        for sql in [
            "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';",
            "CREATE TYPE mood AS ENUM ('ok', 'sad');",
            "ALTER TYPE mood RENAME TO feeling;",
        ] {
            assert_eq!(with(sql, 17, Wrap::File), "", "{sql}");
            assert_eq!(with(sql, 11, Wrap::File), "", "{sql}");
        }
    }

    #[test]
    fn pgships_engine_runs_it_alone_before_12_and_in_the_transaction_from_12() {
        let run = Wrap::Engine {
            per_migration: false,
        };
        assert_eq!(with("ALTER TYPE mood ADD VALUE 'meh';", 11, run), "");
        let out = with("ALTER TYPE mood ADD VALUE 'meh';", 12, run);
        assert!(out.contains("warning TX02"), "{out}");
        assert!(out.contains("later migrations of the same run"), "{out}");
        assert!(out.contains("per-migration"), "{out}");
        let per = with(
            "ALTER TYPE mood ADD VALUE 'meh';",
            17,
            Wrap::Engine {
                per_migration: true,
            },
        );
        assert!(per.contains("warning TX02"), "{per}");
        assert!(!per.contains("same run"), "{per}");
    }

    #[test]
    fn after_a_top_level_commit_the_value_commits_at_once() {
        let add = "ALTER TYPE mood ADD VALUE 'meh';";
        for per_migration in [false, true] {
            let engine = Wrap::Engine { per_migration };
            assert!(with(add, 17, engine).contains("warning TX02"));
            assert_eq!(with(&format!("COMMIT;\n{add}"), 17, engine), "");
            assert_eq!(with(&format!("COMMIT;\n{add}"), 11, engine), "");
        }
    }
}
