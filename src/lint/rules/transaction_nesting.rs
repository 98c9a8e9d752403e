//! TX04 transaction-nesting: transaction control that does not do what it seems to:
//! - `BEGIN` / `START TRANSACTION` while a `BEGIN` earlier in the file is still open
//!   (PostgreSQL only warns "there is already a transaction in progress", and the first
//!   `COMMIT` ends the outer transaction, so what follows is no longer atomic);
//! - `BEGIN`, `COMMIT`, `ROLLBACK` (and `END`, `ABORT`, `PREPARE TRANSACTION`, ...) in a file the
//!   runner wraps in a transaction (`--assume-in-transaction`): the file's `COMMIT` commits the
//!   runner's transaction early and the statements after it run outside any transaction;
//! - any transaction control (including `SAVEPOINT`) in a migration applied by pgship's engine,
//!   which manages transactions itself and refuses such migrations;
//! - `COMMIT` / `ROLLBACK` with no transaction open (only a warning from PostgreSQL, but a sign
//!   the file expects a wrapping transaction it does not get), and `SAVEPOINT`, `RELEASE`,
//!   `ROLLBACK TO` with no transaction open (PostgreSQL refuses them).
//!
//! Severity: warning (PostgreSQL runs the statements; what is lost is atomicity). Error where
//! the statement or the migration is refused outright: with pgship's engine, and for
//! `SAVEPOINT`/`RELEASE`/`ROLLBACK TO` outside a transaction.

use pg_query::NodeEnum;
use pg_query::protobuf::TransactionStmtKind as K;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap};

pub static RULE: Rule = Rule {
    id: "TX04",
    name: "transaction-nesting",
    severity: Severity::Warning,
    default_on: true,
    summary: "BEGIN inside an open transaction, or transaction control in a file the runner \
              already wraps in one",
    help: "let one party own the transaction: remove the inner BEGIN/COMMIT (use SAVEPOINT for a \
           nested scope), or stop the runner from wrapping the file",
    check,
};

fn keyword(kind: K) -> &'static str {
    match kind {
        K::TransStmtBegin => "BEGIN",
        K::TransStmtStart => "START TRANSACTION",
        K::TransStmtCommit => "COMMIT",
        K::TransStmtRollback => "ROLLBACK",
        K::TransStmtSavepoint => "SAVEPOINT",
        K::TransStmtRelease => "RELEASE SAVEPOINT",
        K::TransStmtRollbackTo => "ROLLBACK TO SAVEPOINT",
        K::TransStmtPrepare => "PREPARE TRANSACTION",
        K::TransStmtCommitPrepared => "COMMIT PREPARED",
        K::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
        K::Undefined => "transaction control",
    }
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::TransactionStmt(t) = stmt.node else {
        return Vec::new();
    };
    let kind = K::try_from(t.kind).unwrap_or(K::Undefined);
    let kw = keyword(kind);
    let opens = matches!(kind, K::TransStmtBegin | K::TransStmtStart);
    let ends = matches!(
        kind,
        K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare
    );
    let inner = matches!(
        kind,
        K::TransStmtSavepoint | K::TransStmtRelease | K::TransStmtRollbackTo
    );
    let hit = if matches!(ctx.wrap, Wrap::Engine { .. }) {
        Some(
            Hit::new(format!(
                "{kw} is transaction control: pgship's engine runs each migration in a \
                 transaction it manages itself and refuses migrations that contain it"
            ))
            .severity(Severity::Error)
            .help(
                "remove the transaction control: pgship applies the migration in a transaction, \
                 and runs statements that cannot be in one (CREATE INDEX CONCURRENTLY, ...) \
                 alone",
            ),
        )
    } else if opens && ctx.in_explicit_transaction() {
        Some(
            Hit::new(format!(
                "{kw} while the transaction opened earlier in this file is still open: PostgreSQL \
                 only warns (\"there is already a transaction in progress\"), and the first \
                 COMMIT ends the outer transaction, so the statements after it are not atomic"
            ))
            .help(format!(
                "remove this {kw} (use SAVEPOINT for a nested scope), or COMMIT the first \
                 transaction before it"
            )),
        )
    } else if (opens || ends) && ctx.wrap == Wrap::File {
        let effect = if opens {
            "this BEGIN only warns (\"there is already a transaction in progress\"), and the \
             file's COMMIT then commits the runner's transaction early: the statements after it \
             run outside any transaction"
                .to_string()
        } else {
            format!(
                "this {kw} ends the runner's transaction early: the statements after it run \
                 outside any transaction, and the runner's own COMMIT finds none"
            )
        };
        Some(
            Hit::new(format!(
                "the runner already wraps this file in a transaction (--assume-in-transaction): \
                 {effect}"
            ))
            .help(
                "remove BEGIN/COMMIT from the file and let the runner own the transaction (or \
                 stop the runner from wrapping this file)",
            ),
        )
    } else if ctx.in_explicit_transaction() || ctx.wrap == Wrap::File {
        None
    } else if ends {
        Some(
            Hit::new(format!(
                "{kw} with no transaction open in this file: PostgreSQL only warns (\"there is \
                 no transaction in progress\"), so the statements before it were not atomic"
            ))
            .help(
                "add the BEGIN the COMMIT belongs to, or remove it; if the runner wraps the file \
                 in a transaction, lint with --assume-in-transaction",
            ),
        )
    } else if inner {
        Some(
            Hit::new(format!(
                "{kw} with no transaction open: PostgreSQL refuses it (\"{kw} can only be used in \
                 transaction blocks\")"
            ))
            .severity(Severity::Error)
            .help("open a transaction with BEGIN before it, or remove it"),
        )
    } else {
        None
    };
    hit.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    fn wrapped(sql: &str, wrap: Wrap) -> String {
        render_with(
            "TX04",
            sql,
            Opts {
                wrap,
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_a_begin_inside_an_open_transaction() {
        assert_eq!(
            render(
                "TX04",
                "BEGIN;\nCREATE TABLE a (id int);\nBEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\nCOMMIT;"
            ),
            "m.sql:3:1: warning TX04 transaction-nesting: BEGIN while the transaction opened \
             earlier in this file is still open: PostgreSQL only warns (\"there is already a \
             transaction in progress\"), and the first COMMIT ends the outer transaction, so the \
             statements after it are not atomic\n  \
             3 | BEGIN\n    \
             | ^^^^^\n  \
             help: remove this BEGIN (use SAVEPOINT for a nested scope), or COMMIT the first \
             transaction before it\n\n\
             m.sql:6:1: warning TX04 transaction-nesting: COMMIT with no transaction open in this \
             file: PostgreSQL only warns (\"there is no transaction in progress\"), so the \
             statements before it were not atomic\n  \
             6 | COMMIT\n    \
             | ^^^^^^\n  \
             help: add the BEGIN the COMMIT belongs to, or remove it; if the runner wraps the \
             file in a transaction, lint with --assume-in-transaction\n"
        );
        let start = render(
            "TX04",
            "START TRANSACTION;\nBEGIN ISOLATION LEVEL SERIALIZABLE;",
        );
        assert!(start.contains("m.sql:2:1: warning TX04"), "{start}");
    }

    #[test]
    fn passes_a_single_transaction_and_savepoints_inside_it() {
        for sql in [
            "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;",
            "START TRANSACTION;\nSAVEPOINT s;\nCREATE TABLE a (id int);\nROLLBACK TO s;\nRELEASE s;\nEND;",
            "BEGIN;\nCOMMIT;\nBEGIN;\nROLLBACK;",
            "CREATE TABLE a (id int);",
            "BEGIN;\nABORT;",
        ] {
            assert_eq!(render("TX04", sql), "", "{sql}");
        }
    }

    #[test]
    fn flags_begin_and_commit_in_a_wrapped_file() {
        let out = wrapped("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;", Wrap::File);
        assert!(out.contains("m.sql:1:1: warning TX04"), "{out}");
        assert!(out.contains("m.sql:3:1: warning TX04"), "{out}");
        assert!(out.contains("--assume-in-transaction"), "{out}");
        let rollback = wrapped("CREATE TABLE a (id int);\nROLLBACK;", Wrap::File);
        assert!(
            rollback.contains("this ROLLBACK ends the runner's transaction early"),
            "{rollback}"
        );
        // Savepoints nest properly in the runner's transaction.
        assert_eq!(
            wrapped(
                "SAVEPOINT s;\nCREATE TABLE a (id int);\nRELEASE SAVEPOINT s;",
                Wrap::File
            ),
            ""
        );
    }

    #[test]
    fn pgships_engine_refuses_any_transaction_control() {
        for per_migration in [false, true] {
            for sql in ["BEGIN;", "COMMIT;", "SAVEPOINT s;", "ROLLBACK;"] {
                let out = wrapped(sql, Wrap::Engine { per_migration });
                assert!(out.contains("error TX04"), "{sql}: {out}");
                assert!(out.contains("pgship's engine"), "{sql}: {out}");
            }
        }
    }

    #[test]
    fn savepoint_without_a_transaction_is_refused() {
        let out = render("TX04", "SAVEPOINT s;\nCREATE TABLE a (id int);");
        assert!(out.contains("error TX04"), "{out}");
        assert!(
            out.contains("SAVEPOINT can only be used in transaction blocks"),
            "{out}"
        );
    }
}
