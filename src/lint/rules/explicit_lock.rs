//! LK21 explicit-lock (opt-in): `LOCK TABLE` in SHARE mode or stronger (the mode defaults to
//! ACCESS EXCLUSIVE) on a table that was not created earlier in the same file or transaction.
//!
//! Severity: info. An explicit lock is usually deliberate (to serialize a data fix, or to take
//! the strongest lock first and avoid lock upgrades), so it is an advisory: it blocks writes
//! (SHARE and up) or everything (ACCESS EXCLUSIVE) until the transaction ends, and while it
//! waits it queues every conflicting query. `LOCK TABLE` outside a transaction block is refused
//! by PostgreSQL, which is reported as an error.

use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK21",
    name: "explicit-lock",
    severity: Severity::Info,
    default_on: false,
    summary: "LOCK TABLE in SHARE mode or stronger blocks writes (or everything) until the \
              transaction ends",
    help: "lock only what is needed, with SET LOCAL lock_timeout (or NOWAIT), and commit soon",
    check,
};

/// PostgreSQL's lock mode numbers (lockdefs.h), SHARE and up.
fn mode_name(mode: i32) -> Option<(&'static str, &'static str)> {
    match mode {
        5 => Some(("SHARE", "writes")),
        6 => Some(("SHARE ROW EXCLUSIVE", "writes")),
        7 => Some(("EXCLUSIVE", "writes and SELECT ... FOR UPDATE/SHARE")),
        8 => Some(("ACCESS EXCLUSIVE", "reads and writes")),
        _ => None,
    }
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::LockStmt(l) = stmt.node else {
        return Vec::new();
    };
    if !stmt.in_transaction {
        return vec![
            Hit::new(
                "LOCK TABLE can only be used in transaction blocks: outside one this statement \
                 fails",
            )
            .severity(Severity::Error)
            .help("put it inside BEGIN ... COMMIT together with the statements it protects"),
        ];
    }
    let Some((mode, blocks)) = mode_name(l.mode) else {
        return Vec::new();
    };
    let tables: Vec<String> = l
        .relations
        .iter()
        .filter_map(|r| match r.node.as_ref()? {
            NodeEnum::RangeVar(rv) if !ctx.is_new_table(&ast::rel_key(rv)) && !ast::is_temp(rv) => {
                Some(ast::rel_name(rv))
            }
            _ => None,
        })
        .collect();
    if tables.is_empty() {
        return Vec::new();
    }
    let wait = if l.nowait {
        "NOWAIT fails at once instead of queueing"
    } else {
        "while it waits for the lock, every conflicting query queues behind it"
    };
    vec![Hit::new(format!(
        "LOCK {} IN {mode} MODE blocks {blocks} until the transaction ends; {wait}",
        tables.join(", ")
    ))]
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    fn in_file_txn(sql: &str) -> String {
        render_with(
            "LK21",
            sql,
            Opts {
                wrap: Wrap::File,
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_the_default_mode() {
        assert_eq!(
            render("LK21", "BEGIN;\nLOCK TABLE orders;\nCOMMIT;"),
            "m.sql:2:1: info LK21 explicit-lock: LOCK orders IN ACCESS EXCLUSIVE MODE blocks \
             reads and writes until the transaction ends; while it waits for the lock, every \
             conflicting query queues behind it\n  \
             2 | LOCK TABLE orders\n    \
             | ^^^^^^^^^^^^^^^^^\n  \
             help: lock only what is needed, with SET LOCAL lock_timeout (or NOWAIT), and commit \
             soon\n"
        );
    }

    #[test]
    fn flags_share_and_stronger_and_notes_nowait() {
        let out = in_file_txn("LOCK TABLE orders, app.lines IN SHARE MODE NOWAIT;");
        assert!(
            out.contains("LOCK orders, app.lines IN SHARE MODE blocks writes")
                && out.contains("NOWAIT fails at once"),
            "{out}"
        );
        let out = in_file_txn("LOCK orders IN EXCLUSIVE MODE;");
        assert!(out.contains("IN EXCLUSIVE MODE"), "{out}");
        let out = in_file_txn("LOCK orders IN SHARE ROW EXCLUSIVE MODE;");
        assert!(out.contains("IN SHARE ROW EXCLUSIVE MODE"), "{out}");
    }

    #[test]
    fn passes_weak_modes_and_new_tables() {
        for sql in [
            "LOCK orders IN ACCESS SHARE MODE;",
            "LOCK orders IN ROW EXCLUSIVE MODE;",
            "LOCK orders IN SHARE UPDATE EXCLUSIVE MODE;",
            "CREATE TABLE t (id int);\nLOCK t;",
        ] {
            assert_eq!(in_file_txn(sql), "", "{sql}");
        }
        // With pgship's engine the statement runs in its transaction.
        let engine = Opts {
            wrap: Wrap::Engine {
                per_migration: true,
            },
            ..Default::default()
        };
        assert!(render_with("LK21", "LOCK orders;", engine).contains("info LK21"));
    }

    #[test]
    fn outside_a_transaction_it_fails() {
        let out = render("LK21", "LOCK TABLE orders IN ACCESS SHARE MODE;");
        assert!(
            out.contains("error LK21") && out.contains("can only be used in transaction blocks"),
            "{out}"
        );
    }
}
