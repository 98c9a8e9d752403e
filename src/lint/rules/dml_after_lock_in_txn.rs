//! LK22 dml-after-lock-in-txn: a backfill (`UPDATE`, `DELETE`, `INSERT ... SELECT ... FROM`,
//! `MERGE`) of a table in the same transaction that already locked that table ACCESS
//! EXCLUSIVE or SHARE ROW EXCLUSIVE (an `ALTER TABLE`, `LOCK TABLE`, ... earlier in it).
//! Tables created earlier in the same file or transaction are exempt: nobody else uses them
//! yet. `INSERT ... VALUES` is not a backfill and is not reported.
//!
//! Severity: error. A lock is held until the transaction ends, so the DDL's short lock becomes
//! as long as the whole backfill: writes (and, for ACCESS EXCLUSIVE, reads) of the table are
//! blocked for minutes on a big table. Committing the DDL first and backfilling in batches in
//! later transactions avoids it.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, RangeVar, SetOperation};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "LK22",
    name: "dml-after-lock-in-txn",
    severity: Severity::Error,
    default_on: true,
    summary: "a backfill (UPDATE/DELETE/INSERT ... SELECT) in the transaction that already holds a \
              strong lock on the table keeps that lock for the whole backfill",
    help: "commit the DDL first, then backfill in batches in separate transactions",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if !stmt.in_transaction {
        return Vec::new();
    }
    let (verb, rv): (&str, Option<&RangeVar>) = match stmt.node {
        NodeEnum::UpdateStmt(u) => ("UPDATE", u.relation.as_ref()),
        NodeEnum::DeleteStmt(d) => ("DELETE", d.relation.as_ref()),
        NodeEnum::MergeStmt(m) => ("MERGE", m.relation.as_ref()),
        NodeEnum::InsertStmt(i) if i.select_stmt.as_deref().is_some_and(is_query) => {
            ("INSERT ... SELECT", i.relation.as_ref())
        }
        _ => return Vec::new(),
    };
    let Some(rv) = rv else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) || !ctx.strongly_locked(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    vec![
        Hit::new(format!(
            "this {verb} of {table} runs in the transaction that already locked {table} ACCESS \
             EXCLUSIVE or SHARE ROW EXCLUSIVE: that lock, and the blocked reads or writes, last \
             until the whole backfill commits"
        ))
        .help(help(ctx, &table)),
    ]
}

/// A query that reads rows (`SELECT ... FROM`, a set operation), not a `VALUES` list or a
/// `SELECT` of constants.
fn is_query(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::SelectStmt(s)) => {
            s.values_lists.is_empty()
                && (!s.from_clause.is_empty()
                    || s.op != SetOperation::SetopNone as i32
                    || s.with_clause.is_some())
        }
        _ => false,
    }
}

fn help(ctx: &Context, table: &str) -> String {
    let batches =
        format!("in batches (UPDATE {table} ... WHERE id BETWEEN x AND y, one per transaction)");
    if ctx.in_explicit_transaction() {
        return format!("COMMIT right after the DDL, then backfill {batches}");
    }
    match ctx.wrap {
        Wrap::Engine {
            per_migration: false,
        } => format!(
            "pgship's engine runs the whole deploy in one transaction ([apply] tx_mode = \"all\"): \
             backfill after the deploy {batches}, or set tx_mode = \"per-migration\" and give the \
             backfill its own migration"
        ),
        _ => format!(
            "each migration file is one transaction here: move the backfill to a later migration \
             and run it {batches}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    fn wrapped(sql: &str, wrap: Wrap) -> String {
        render_with(
            "LK22",
            sql,
            Opts {
                wrap,
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_a_backfill_after_alter_in_the_same_transaction() {
        assert_eq!(
            render(
                "LK22",
                "BEGIN;\nALTER TABLE orders ADD COLUMN status text;\n\
                 UPDATE orders SET status = 'new';\nCOMMIT;"
            ),
            "m.sql:3:1: error LK22 dml-after-lock-in-txn: this UPDATE of orders runs in the \
             transaction that already locked orders ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE: that \
             lock, and the blocked reads or writes, last until the whole backfill commits\n  \
             3 | UPDATE orders SET status = 'new'\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: COMMIT right after the DDL, then backfill in batches (UPDATE orders ... WHERE \
             id BETWEEN x AND y, one per transaction)\n"
        );
    }

    #[test]
    fn flags_delete_insert_select_merge_and_lock_table() {
        let ddl = "ALTER TABLE app.orders ADD CONSTRAINT c CHECK (qty > 0) NOT VALID;\n";
        for (dml, verb) in [
            ("DELETE FROM app.orders WHERE qty = 0;", "DELETE"),
            (
                "INSERT INTO app.orders SELECT * FROM app.orders_old;",
                "INSERT ... SELECT",
            ),
            (
                "MERGE INTO app.orders o USING app.x s ON o.id = s.id WHEN MATCHED THEN DELETE;",
                "MERGE",
            ),
        ] {
            let out = wrapped(&format!("{ddl}{dml}"), Wrap::File);
            assert!(
                out.contains(&format!("this {verb} of app.orders")),
                "{dml}: {out}"
            );
        }
        let out = render(
            "LK22",
            "BEGIN;\nLOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE;\nUPDATE orders SET a = 1;\nCOMMIT;",
        );
        assert!(out.contains("m.sql:3:1: error LK22"), "{out}");
    }

    #[test]
    fn passes_separate_transactions_other_tables_and_values() {
        for sql in [
            // Autocommit: the ALTER committed on its own.
            "ALTER TABLE orders ADD COLUMN status text;\nUPDATE orders SET status = 'new';",
            "BEGIN;\nALTER TABLE orders ADD COLUMN status text;\nCOMMIT;\n\
             UPDATE orders SET status = 'new';",
            "BEGIN;\nALTER TABLE orders ADD COLUMN status text;\nUPDATE customers SET a = 1;\nCOMMIT;",
            "BEGIN;\nALTER TABLE orders ADD COLUMN status text;\n\
             INSERT INTO orders (id) VALUES (1);\nINSERT INTO orders (id) SELECT 2;\nCOMMIT;",
            // SHARE UPDATE EXCLUSIVE forms do not count.
            "BEGIN;\nALTER TABLE orders VALIDATE CONSTRAINT c;\nUPDATE orders SET a = 1;\nCOMMIT;",
            "BEGIN;\nLOCK orders IN SHARE UPDATE EXCLUSIVE MODE;\nUPDATE orders SET a = 1;\nCOMMIT;",
            // A table created in the same transaction is nobody else's yet.
            "BEGIN;\nCREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN a int;\n\
             UPDATE t SET a = 1;\nCOMMIT;",
        ] {
            assert_eq!(render("LK22", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_help_follows_the_runner() {
        let sql = "ALTER TABLE orders ADD COLUMN status text;\nUPDATE orders SET status = 'new';";
        let out = wrapped(sql, Wrap::File);
        assert!(
            out.contains("each migration file is one transaction here"),
            "{out}"
        );
        let out = wrapped(
            sql,
            Wrap::Engine {
                per_migration: true,
            },
        );
        assert!(
            out.contains("move the backfill to a later migration"),
            "{out}"
        );
        let out = wrapped(
            sql,
            Wrap::Engine {
                per_migration: false,
            },
        );
        assert!(
            out.contains("runs the whole deploy in one transaction")
                && out.contains("tx_mode = \"per-migration\""),
            "{out}"
        );
    }

    #[test]
    fn a_backfill_after_a_top_level_commit_runs_in_autocommit() {
        let engine = Wrap::Engine {
            per_migration: true,
        };
        let ddl = "ALTER TABLE orders ADD COLUMN region text;\n";
        let backfill = "UPDATE orders SET region = 'eu';";
        assert!(wrapped(&format!("{ddl}{backfill}"), engine).contains("error LK22"));
        assert_eq!(wrapped(&format!("{ddl}COMMIT;\n{backfill}"), engine), "");
        assert_eq!(
            wrapped(&format!("{ddl}COMMIT;\n{backfill}"), Wrap::File),
            ""
        );
        // The engine's BEGIN inside its own transaction does nothing: still the same one.
        assert!(wrapped(&format!("BEGIN;\n{ddl}{backfill}"), engine).contains("error LK22"));
    }
}
