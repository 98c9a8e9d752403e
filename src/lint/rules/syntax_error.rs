//! RB10 syntax-error: a statement PostgreSQL's parser rejects.
//!
//! The file is cut into statements first (by the Drizzle breakpoints, then by PostgreSQL's
//! scanner, which works on invalid SQL too), and each statement is parsed on its own, so a
//! statement that does not parse is reported at its own line and every other statement is
//! still linted. The finding is made by the linter itself ([`crate::lint::lint_source`]), not
//! by `check`, because a rule only ever sees statements that parsed.
//!
//! Severity: error. The migration will fail on the server at this statement.

use crate::lint::{Context, Hit, Rule, Severity, Stmt};

pub static RULE: Rule = Rule {
    id: "RB10",
    name: "syntax-error",
    severity: Severity::Error,
    default_on: true,
    summary: "the statement does not parse with PostgreSQL's grammar",
    help: "fix the statement: PostgreSQL will refuse it, and the migration fails there",
    check,
};

/// Statements that reach rules parsed; RB10 is reported by the linter before rules run.
fn check(_stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn reports_the_statement_that_does_not_parse_at_its_line() {
        assert_eq!(
            render(
                "RB10",
                "CREATE TABLE a (id int);\n\nCREATE TABEL b (id int);\nSELECT 1;"
            ),
            "m.sql:3:1: error RB10 syntax-error: the statement does not parse: syntax error at or \
             near \"TABEL\"\n  \
             3 | CREATE TABEL b (id int)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: fix the statement: PostgreSQL will refuse it, and the migration fails there\n"
        );
    }

    #[test]
    fn valid_sql_and_dollar_quoted_bodies_pass() {
        assert_eq!(
            render(
                "RB10",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\nSELECT 1;"
            ),
            ""
        );
    }

    #[test]
    fn an_unterminated_string_is_one_error() {
        let out = render("RB10", "SELECT 1;\nSELECT 'oops;\n");
        assert!(out.contains("m.sql:2:1: error RB10"), "{out}");
    }

    #[test]
    fn other_statements_are_still_linted_after_a_syntax_error() {
        let findings = crate::lint::lint_text(
            "CREATE INDEX a ON t (x);\nCREATE INDEX b ON t (y);\nCREATE INDX c ON t (z);\nCREATE INDEX d ON t (w);",
            17,
            crate::lint::Wrap::None,
        );
        let rules: Vec<(&str, u32)> = findings
            .iter()
            .filter(|f| f.rule == "LK01" || f.rule == "RB10")
            .map(|f| (f.rule, f.line))
            .collect();
        assert_eq!(
            rules,
            vec![("LK01", 1), ("LK01", 2), ("RB10", 3), ("LK01", 4)]
        );
    }
}
