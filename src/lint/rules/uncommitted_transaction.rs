//! TX05 uncommitted-transaction: a `BEGIN` / `START TRANSACTION` with no `COMMIT` or
//! `ROLLBACK` after it in the file. When the runner's session ends, PostgreSQL rolls the open
//! transaction back: the migration looks applied (no error) but none of its changes stay.
//!
//! The finding is only known at the end of the file, so the framework raises it
//! (`Context::end_file`), located at the `BEGIN` that opened the transaction; this rule's
//! per-statement check finds nothing.
//!
//! Severity: error. Every change of the transaction is silently lost, and adding the `COMMIT`
//! is all it takes.

use crate::lint::{Context, Hit, Rule, Severity, Stmt};

pub static RULE: Rule = Rule {
    id: "TX05",
    name: "uncommitted-transaction",
    severity: Severity::Error,
    default_on: true,
    summary: "BEGIN without a COMMIT or ROLLBACK before the end of the file: its changes are \
              rolled back when the session ends",
    help: "add COMMIT at the end of the transaction",
    check,
};

/// Nothing per statement: see the module doc.
fn check(_stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_a_begin_that_is_never_committed_at_the_begin() {
        assert_eq!(
            render(
                "TX05",
                "-- add a column\nBEGIN;\nALTER TABLE users ADD COLUMN note text;\n"
            ),
            "m.sql:2:1: error TX05 uncommitted-transaction: this transaction is never committed: \
             its changes are rolled back when the session ends\n  \
             2 | BEGIN\n    \
             | ^^^^^\n  \
             help: add COMMIT at the end of the transaction\n"
        );
    }

    #[test]
    fn flags_the_last_of_several_transactions() {
        let out = render(
            "TX05",
            "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nSTART TRANSACTION;\nCREATE TABLE b (id int);",
        );
        assert!(out.starts_with("m.sql:4:1: error TX05"), "{out}");
        assert!(out.contains("4 | START TRANSACTION"), "{out}");
        assert_eq!(out.matches("TX05").count(), 1, "{out}");
    }

    #[test]
    fn passes_committed_and_rolled_back_transactions() {
        for sql in [
            "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;",
            "BEGIN;\nCREATE TABLE a (id int);\nEND;",
            "BEGIN;\nCREATE TABLE a (id int);\nROLLBACK;",
            "START TRANSACTION;\nCREATE TABLE a (id int);\nABORT;",
            "CREATE TABLE a (id int);",
            // The nested BEGIN is TX04's: the first COMMIT closes the transaction.
            "BEGIN;\nBEGIN;\nCREATE TABLE a (id int);\nCOMMIT;",
        ] {
            assert_eq!(render("TX05", sql), "", "{sql}");
        }
    }

    #[test]
    fn a_commit_in_a_comment_or_string_does_not_count() {
        let out = render(
            "TX05",
            "BEGIN;\n-- COMMIT;\nINSERT INTO log VALUES ('COMMIT;');\n/* COMMIT; */",
        );
        assert!(out.contains("m.sql:1:1: error TX05"), "{out}");
    }

    #[test]
    fn a_begin_on_the_last_line_is_reported() {
        let out = render("TX05", "BEGIN;\nCOMMIT;\nBEGIN;");
        assert!(out.starts_with("m.sql:3:1: error TX05"), "{out}");
    }

    #[test]
    fn a_commit_in_the_next_file_does_not_close_the_transaction() {
        use crate::lint::{Context, Outcome, Selection, Source, Wrap, lint_source};
        let mut ctx = Context::new(17, None);
        let mut out = Outcome::default();
        let sel = Selection {
            enable: ["TX05".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for (name, text) in [
            ("1.sql", "BEGIN;\nCREATE TABLE a (id int);"),
            ("2.sql", "COMMIT;"),
        ] {
            let src = Source {
                name: name.into(),
                text,
                drizzle: false,
                wrap: Wrap::None,
            };
            lint_source(&src, &mut ctx, &sel, &mut out);
        }
        let tx05: Vec<_> = out.findings.iter().filter(|f| f.rule == "TX05").collect();
        assert_eq!(tx05.len(), 1, "{:?}", out.findings);
        assert_eq!((tx05[0].file.as_str(), tx05[0].line), ("1.sql", 1));
    }
}
