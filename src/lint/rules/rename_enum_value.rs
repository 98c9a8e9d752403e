//! BI04 rename-enum-value: `ALTER TYPE ... RENAME VALUE 'a' TO 'b'`. Code deployed before the
//! migration still writes `'a'`, which is now an invalid input value, and compares against it.
//!
//! Severity: warning. Instant and the stored rows follow the rename, but running code breaks;
//! the alternative (add the new value, let code accept both, backfill) is several deploys, a
//! trade-off rather than a must. `RENAME VALUE` exists from PostgreSQL 10; on an older target
//! the message says it will fail.

use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI04",
    name: "rename-enum-value",
    severity: Severity::Warning,
    default_on: true,
    summary: "renaming an enum value breaks running code that still writes or compares the old \
              value",
    help: "add the new value, make the code accept both, backfill rows to it, and stop writing \
           the old one",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::AlterEnumStmt(e) = stmt.node else {
        return Vec::new();
    };
    if e.old_val.is_empty() {
        return Vec::new();
    }
    let ty = ast::strings(&e.type_name).join(".");
    let (old, new) = (&e.old_val, &e.new_val);
    let mut message = format!(
        "renaming value '{old}' of enum {ty} to '{new}': running code that still writes '{old}' \
         fails (invalid input value) and comparisons with '{old}' fail"
    );
    if ctx.pg_version < 10 {
        message.push_str(&format!(
            "; RENAME VALUE does not exist before PostgreSQL 10 (target: {})",
            ctx.pg_version
        ));
    }
    vec![Hit::new(message).help(format!(
        "ALTER TYPE {ty} ADD VALUE '{new}' AFTER '{old}'; make the code accept both; UPDATE the \
         rows from '{old}' to '{new}'; stop writing '{old}' (enum values cannot be removed)"
    ))]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_rename_value() {
        assert_eq!(
            render(
                "BI04",
                "ALTER TYPE order_status RENAME VALUE 'canceled' TO 'cancelled';"
            ),
            "m.sql:1:1: warning BI04 rename-enum-value: renaming value 'canceled' of enum \
             order_status to 'cancelled': running code that still writes 'canceled' fails (invalid \
             input value) and comparisons with 'canceled' fail\n  \
             1 | ALTER TYPE order_status RENAME VALUE 'canceled' TO 'cancelled'\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: ALTER TYPE order_status ADD VALUE 'cancelled' AFTER 'canceled'; make the code \
             accept both; UPDATE the rows from 'canceled' to 'cancelled'; stop writing 'canceled' \
             (enum values cannot be removed)\n"
        );
        let out = render("BI04", "ALTER TYPE app.mood RENAME VALUE 'sad' TO 'blue';");
        assert!(out.contains("enum app.mood"), "{out}");
    }

    #[test]
    fn says_it_fails_before_10() {
        let out = render_with(
            "BI04",
            "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';",
            Opts {
                pg_version: 9,
                ..Default::default()
            },
        );
        assert!(
            out.contains("does not exist before PostgreSQL 10 (target: 9)"),
            "{out}"
        );
        assert!(
            !render("BI04", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';").contains("before")
        );
    }

    #[test]
    fn passes_add_value_and_other_renames() {
        assert_eq!(render("BI04", "ALTER TYPE mood ADD VALUE 'meh';"), "");
        assert_eq!(
            render("BI04", "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'sad';"),
            ""
        );
        assert_eq!(render("BI04", "ALTER TYPE mood RENAME TO feeling;"), "");
        assert_eq!(
            render("BI04", "ALTER TYPE pair RENAME ATTRIBUTE a TO b;"),
            ""
        );
    }
}
