//! TX04 transaction-nesting: transaction control that does not do what it seems to:
//! - `BEGIN` / `START TRANSACTION` while a `BEGIN` earlier in the file is still open
//!   (PostgreSQL only warns "there is already a transaction in progress", and the first
//!   `COMMIT` ends the outer transaction, so what follows is no longer atomic);
//! - `BEGIN`, `COMMIT`, `ROLLBACK` (and `END`, `ABORT`, `PREPARE TRANSACTION`, ...) in a file the
//!   runner wraps in a transaction (`--assume-in-transaction`): the file's `COMMIT` commits the
//!   runner's transaction early and the statements after it run outside any transaction;
//! - with pgship's engine, which gives top-level transaction control the meaning drizzle's
//!   `migrate()` gives it: a top-level `COMMIT` / `END` ends the transaction the migration runs
//!   in (and, in whole-run mode, the earlier migrations of the run with it) and the statements
//!   after it each commit on their own until a `BEGIN` opens a transaction again. The finding
//!   names those statements by line; it is raised at the end of the file
//!   ([`after_engine_commit`], called by `Context::end_file`), where they are known. `ROLLBACK`,
//!   `ABORT`, `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED` are refused by the
//!   engine;
//! - `COMMIT` / `ROLLBACK` with no transaction open (only a warning from PostgreSQL, but a sign
//!   the file expects a wrapping transaction it does not get), and `SAVEPOINT`, `RELEASE`,
//!   `ROLLBACK TO` with no transaction open (PostgreSQL refuses them).
//!
//! Severity: warning (PostgreSQL runs the statements; what is lost is atomicity). Error where
//! the statement or the migration is refused outright: the keywords pgship's engine refuses,
//! and `SAVEPOINT`/`RELEASE`/`ROLLBACK TO` outside a transaction.

use pg_query::NodeEnum;
use pg_query::protobuf::TransactionStmtKind as K;

use crate::lint::context::RunnerEnd;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap};

pub static RULE: Rule = Rule {
    id: "TX04",
    name: "transaction-nesting",
    severity: Severity::Warning,
    default_on: true,
    summary: "BEGIN inside an open transaction, or transaction control that ends the runner's \
              transaction early",
    help: "let one party own the transaction: remove the inner BEGIN/COMMIT (use SAVEPOINT for a \
           nested scope), or stop the runner from wrapping the file",
    check,
};

/// The keyword as written (`END` and `ABORT` parse as COMMIT and ROLLBACK).
fn keyword(kind: K, sql: &str) -> &'static str {
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    match kind {
        K::TransStmtBegin => "BEGIN",
        K::TransStmtStart => "START TRANSACTION",
        K::TransStmtCommit if first.eq_ignore_ascii_case("end") => "END",
        K::TransStmtCommit => "COMMIT",
        K::TransStmtRollback if first.eq_ignore_ascii_case("abort") => "ABORT",
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
    let kw = keyword(kind, stmt.sql);
    let opens = matches!(kind, K::TransStmtBegin | K::TransStmtStart);
    let ends = matches!(
        kind,
        K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare
    );
    let inner = matches!(
        kind,
        K::TransStmtSavepoint | K::TransStmtRelease | K::TransStmtRollbackTo
    );
    let refused_by_engine = matches!(
        kind,
        K::TransStmtRollback
            | K::TransStmtPrepare
            | K::TransStmtCommitPrepared
            | K::TransStmtRollbackPrepared
    );
    let engine = matches!(ctx.wrap, Wrap::Engine { .. });
    let hit = if engine && refused_by_engine {
        Some(engine_refuses(kw))
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
    } else if (opens || ends) && ctx.wrap == Wrap::File && ctx.runner_open() {
        Some(wrapped_file(kw, opens))
    } else if ctx.in_explicit_transaction() || ctx.runner_open() {
        // Inside a transaction: a savepoint nests; with the engine, a BEGIN does nothing and a
        // COMMIT ends its transaction (reported at the end of the file, see the module doc).
        None
    } else if ends {
        Some(no_transaction_open(kw, engine))
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

fn engine_refuses(kw: &str) -> Hit {
    Hit::new(format!(
        "{kw} at the top level of a migration would throw away or hand off the transaction the \
         migration runs in: pgship's engine refuses to apply it"
    ))
    .severity(Severity::Error)
    .help(
        "remove it: top-level BEGIN and COMMIT are honoured, and SAVEPOINT / ROLLBACK TO \
         SAVEPOINT undo part of a transaction",
    )
}

fn wrapped_file(kw: &str, opens: bool) -> Hit {
    let effect = if opens {
        "this BEGIN only warns (\"there is already a transaction in progress\"), and the \
         file's COMMIT then commits the runner's transaction early: the statements after it \
         run outside any transaction"
            .to_string()
    } else {
        format!(
            "this {kw} ends the runner's transaction early: the statements after it run outside \
             any transaction, and the runner's own COMMIT finds none"
        )
    };
    Hit::new(format!(
        "the runner already wraps this file in a transaction (--assume-in-transaction): {effect}"
    ))
    .help(
        "remove BEGIN/COMMIT from the file and let the runner own the transaction (or stop the \
         runner from wrapping this file)",
    )
}

fn no_transaction_open(kw: &str, engine: bool) -> Hit {
    if engine {
        return Hit::new(format!(
            "{kw} with no transaction open: the COMMIT earlier in this file already ended the \
             migration's transaction, so PostgreSQL only warns (\"there is no transaction in \
             progress\") and the statements before it were not atomic"
        ))
        .help(format!(
            "add the BEGIN this {kw} belongs to, or remove it (in a migration not yet applied)"
        ));
    }
    Hit::new(format!(
        "{kw} with no transaction open in this file: PostgreSQL only warns (\"there is no \
         transaction in progress\"), so the statements before it were not atomic"
    ))
    .help(
        "add the BEGIN the COMMIT belongs to, or remove it; if the runner wraps the file in a \
         transaction, lint with --assume-in-transaction",
    )
}

/// The TX04 finding of a top-level COMMIT that ended the transaction of pgship's engine: which
/// statements are then not atomic with the rest, by line. `None` when nothing is: the COMMIT
/// ends the file and commits only what the file's own transaction held.
pub(crate) fn after_engine_commit(end: &RunnerEnd, per_migration: bool) -> Option<Hit> {
    if !end.commit || (end.after.is_empty() && end.earlier_migrations == 0) {
        return None;
    }
    let kw = if end.sql.to_ascii_uppercase().starts_with("END") {
        "END"
    } else {
        "COMMIT"
    };
    let what = match end.earlier_migrations {
        _ if per_migration => "the migration".to_string(),
        0 => "the migration".to_string(),
        1 => "this migration and the one before it in the run".to_string(),
        n => format!("this migration and the {n} before it in the run"),
    };
    let mut message = format!(
        "this {kw} ends the transaction pgship's engine applies {what} in: what ran before it \
         commits here"
    );
    let (alone, blocks) = groups(&end.after);
    if !alone.is_empty() {
        message.push_str(&format!(
            "; the statements at {} run outside the migration's transaction: each commits on \
             its own",
            lines(&alone)
        ));
    }
    for (begin, span) in &blocks {
        message.push_str(&format!(
            "; those at {} run together in the transaction the BEGIN at line {begin} opens",
            lines(std::slice::from_ref(span))
        ));
    }
    message.push_str(if end.after.is_empty() {
        "; a failure later in the run no longer rolls it back"
    } else {
        "; a failure there leaves the earlier statements committed"
    });
    Some(Hit::new(message).help(
        "no COMMIT is needed for CREATE INDEX CONCURRENTLY and the like: pgship's engine runs \
         them outside the transaction by itself; keep it for statements that must commit on their \
         own (a CALL of a procedure that commits), and do not edit a migration already applied \
         (its hash would change): pgship records each statement that commits, so a fixed \
         migration continues where it stopped",
    ))
}

/// First and last line of consecutive statements.
type Span = (u32, u32);

/// The statements after the COMMIT as spans of consecutive statements: those in autocommit,
/// and those inside each later BEGIN (with the BEGIN's line).
fn groups(after: &[(u32, Option<u32>)]) -> (Vec<Span>, Vec<(u32, Span)>) {
    let mut alone: Vec<Span> = Vec::new();
    let mut blocks: Vec<(u32, Span)> = Vec::new();
    let mut prev: Option<Option<u32>> = None;
    for &(line, block) in after {
        let same = prev == Some(block);
        match block {
            None if same => alone.last_mut().expect("a span is open").1 = line,
            None => alone.push((line, line)),
            Some(_) if same => blocks.last_mut().expect("a block is open").1.1 = line,
            Some(begin) => blocks.push((begin, (line, line))),
        }
        prev = Some(block);
    }
    (alone, blocks)
}

/// `line 5`, `lines 5-9`, `lines 5-9 and 12`.
fn lines(spans: &[(u32, u32)]) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let word = if spans.len() == 1 && spans[0].0 == spans[0].1 {
        "line"
    } else {
        "lines"
    };
    match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{word} {} and {last}", rest.join(", "))
        }
        _ => format!("{word} {}", parts.join("")),
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::{Opts, render, render_with};
    use crate::lint::{Context, Outcome, Selection, Source, Wrap, lint_source};

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

    const ENGINE: Wrap = Wrap::Engine {
        per_migration: true,
    };
    const WHOLE_RUN: Wrap = Wrap::Engine {
        per_migration: false,
    };

    /// A drizzle custom migration: work, then COMMIT so that the index can be built
    /// concurrently and a procedure can commit in batches.
    const CUSTOM: &str = "-- Custom SQL migration file, put your code below! --\n\
                          ALTER TABLE \"orders\" ADD COLUMN \"region\" text;\n\
                          COMMIT;\n\
                          CREATE INDEX CONCURRENTLY \"orders_region_idx\" ON \"orders\" (\"region\");\n\
                          CALL backfill_regions(1000);\n\
                          CREATE INDEX CONCURRENTLY \"orders_created_idx\" ON \"orders\" (\"created_at\");";

    #[test]
    fn with_the_engine_a_top_level_commit_names_what_runs_outside_the_transaction() {
        for wrap in [ENGINE, WHOLE_RUN] {
            assert_eq!(
                wrapped(CUSTOM, wrap),
                "m.sql:3:1: warning TX04 transaction-nesting: this COMMIT ends the transaction \
                 pgship's engine applies the migration in: what ran before it commits here; the \
                 statements at lines 4-6 run outside the migration's transaction: each commits \
                 on its own; a failure there leaves the earlier statements committed\n  \
                 3 | COMMIT\n    \
                 | ^^^^^^\n  \
                 help: no COMMIT is needed for CREATE INDEX CONCURRENTLY and the like: pgship's \
                 engine runs them outside the transaction by itself; keep it for statements that \
                 must commit on their own (a CALL of a procedure that commits), and do not edit a \
                 migration already applied (its hash would change): pgship records each \
                 statement that commits, so a fixed migration continues where it stopped\n",
                "{wrap:?}"
            );
        }
    }

    #[test]
    fn a_begin_after_the_commit_groups_statements_again() {
        let sql = "CREATE TABLE a (id int);\nEND;\nCREATE INDEX CONCURRENTLY a_idx ON a (id);\n\
                   BEGIN;\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\nCOMMIT;\n\
                   VACUUM a;";
        let out = wrapped(sql, ENGINE);
        assert!(
            out.contains(
                "m.sql:2:1: warning TX04 transaction-nesting: this END ends the transaction \
                 pgship's engine applies the migration in: what ran before it commits here; the \
                 statements at lines 3 and 8 run outside the migration's transaction: each \
                 commits on its own; those at lines 5-6 run together in the transaction the \
                 BEGIN at line 4 opens; a failure there"
            ),
            "{out}"
        );
        // The BEGIN and the COMMIT that closes it are fine; only one finding.
        assert_eq!(out.matches("TX04").count(), 1, "{out}");
    }

    #[test]
    fn a_file_wrapped_in_begin_commit_is_atomic_per_migration_but_not_in_the_run() {
        let sql = "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;";
        // The BEGIN does nothing inside the engine's transaction; nothing runs after the COMMIT.
        assert_eq!(wrapped(sql, ENGINE), "");
        assert_eq!(wrapped(sql, WHOLE_RUN), "");
        // In whole-run mode the COMMIT of a later migration commits the earlier ones with it.
        let mut ctx = Context::new(17, None);
        let mut out = Outcome::default();
        let sel = Selection {
            enable: ["TX04".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for (i, text) in ["CREATE TABLE z (id int);", "CREATE TABLE y (id int);", sql]
            .iter()
            .enumerate()
        {
            let src = Source {
                name: format!("{i}.sql"),
                text,
                drizzle: false,
                wrap: WHOLE_RUN,
            };
            lint_source(&src, &mut ctx, &sel, &mut out);
        }
        let msgs: Vec<(&str, u32, &str)> = out
            .findings
            .iter()
            .map(|f| (f.file.as_str(), f.line, f.message.as_str()))
            .collect();
        assert_eq!(
            msgs,
            [(
                "2.sql",
                3,
                "this COMMIT ends the transaction pgship's engine applies this migration and the \
                 2 before it in the run in: what ran before it commits here; a failure later in \
                 the run no longer rolls it back"
            )]
        );
    }

    #[test]
    fn a_second_commit_finds_no_transaction() {
        let out = wrapped("CREATE TABLE a (id int);\nCOMMIT;\nCOMMIT;", ENGINE);
        assert!(
            out.contains("m.sql:3:1: warning TX04")
                && out.contains("the COMMIT earlier in this file already ended"),
            "{out}"
        );
        // The first one ends the file: nothing after it, no finding of its own.
        assert!(!out.contains("m.sql:2:1"), "{out}");
    }

    #[test]
    fn the_engine_refuses_rollback_and_prepared_transactions() {
        for per_migration in [false, true] {
            for (sql, kw) in [
                ("ROLLBACK;", "ROLLBACK"),
                ("ABORT;", "ABORT"),
                ("PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION"),
                ("COMMIT PREPARED 'x';", "COMMIT PREPARED"),
                ("ROLLBACK PREPARED 'x';", "ROLLBACK PREPARED"),
                ("COMMIT;\nBEGIN;\nROLLBACK;", "ROLLBACK"),
            ] {
                let out = wrapped(sql, Wrap::Engine { per_migration });
                assert!(
                    out.contains(&format!(
                        "error TX04 transaction-nesting: {kw} at the top level"
                    )) && out.contains("pgship's engine refuses"),
                    "{sql}: {out}"
                );
            }
        }
    }

    #[test]
    fn savepoints_are_ordinary_inside_the_engines_transaction_but_not_after_its_commit() {
        let sql = "SAVEPOINT s;\nCREATE TABLE a (id int);\nROLLBACK TO SAVEPOINT s;\nRELEASE s;";
        assert_eq!(wrapped(sql, ENGINE), "");
        let out = wrapped(&format!("COMMIT;\n{sql}"), ENGINE);
        assert!(
            out.contains("m.sql:2:1: error TX04")
                && out.contains("SAVEPOINT can only be used in transaction blocks"),
            "{out}"
        );
        // Inside a BEGIN after the COMMIT they nest again.
        let out = wrapped(&format!("COMMIT;\nBEGIN;\n{sql}\nCOMMIT;"), ENGINE);
        assert!(!out.contains("error"), "{out}");
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

    #[test]
    fn a_drizzle_file_split_at_breakpoints_gets_the_same_finding() {
        let text = "ALTER TABLE \"orders\" ADD COLUMN \"region\" text;--> statement-breakpoint\n\
                    COMMIT;--> statement-breakpoint\n\
                    CREATE INDEX CONCURRENTLY IF NOT EXISTS \"orders_region_idx\" ON \"orders\" USING btree (\"region\");--> statement-breakpoint\n\
                    CALL backfill_regions(1000);";
        let mut ctx = Context::new(17, None);
        let mut out = Outcome::default();
        let sel = Selection {
            enable: ["all".to_string()].into(),
            disable: Default::default(),
        };
        let src = Source {
            name: "0004_region.sql".into(),
            text,
            drizzle: true,
            wrap: WHOLE_RUN,
        };
        lint_source(&src, &mut ctx, &sel, &mut out);
        let tx: Vec<(&str, u32, &str)> = out
            .findings
            .iter()
            .filter(|f| f.rule.starts_with("TX"))
            .map(|f| (f.rule, f.line, f.message.as_str()))
            .collect();
        assert_eq!(tx.len(), 1, "{tx:?}");
        assert_eq!(tx[0].1, 2);
        assert!(
            tx[0]
                .2
                .contains("the statements at lines 3-4 run outside the migration's transaction"),
            "{tx:?}"
        );
    }
}
