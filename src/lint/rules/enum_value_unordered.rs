//! BI07 enum-value-unordered: `ALTER TYPE ... ADD VALUE` without `BEFORE` or `AFTER`. The value
//! is appended after every existing one, and enums sort by declaration order, so `ORDER BY`,
//! `<`, `>` and `max()` treat it as the greatest, which is rarely what the name means.
//!
//! Severity: warning. Nothing is locked for long or lost; appending may be exactly right (a
//! stage at the end of a workflow), so it asks for a decision. Enums created earlier in the same
//! file are not exempt: the lint context tracks created tables, not types.

use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI07",
    name: "enum-value-unordered",
    severity: Severity::Warning,
    default_on: true,
    summary: "ADD VALUE without BEFORE/AFTER appends the value, so it sorts after every existing \
              one",
    help: "say where the value belongs: ADD VALUE '<new>' BEFORE|AFTER '<existing>'",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let NodeEnum::AlterEnumStmt(e) = stmt.node else {
        return Vec::new();
    };
    if !e.old_val.is_empty() || e.new_val.is_empty() || !e.new_val_neighbor.is_empty() {
        return Vec::new();
    }
    let ty = ast::strings(&e.type_name).join(".");
    let new = &e.new_val;
    let exists = if e.skip_if_new_val_exists {
        " IF NOT EXISTS"
    } else {
        ""
    };
    vec![
        Hit::new(format!(
            "'{new}' is appended to enum {ty}: it sorts after every existing value (ORDER BY, <, \
             >, max)"
        ))
        .help(format!(
            "say where it belongs: ALTER TYPE {ty} ADD VALUE{exists} '{new}' BEFORE|AFTER \
             '<existing value>'"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_an_appended_value() {
        assert_eq!(
            render("BI07", "ALTER TYPE order_status ADD VALUE 'refunded';"),
            "m.sql:1:1: warning BI07 enum-value-unordered: 'refunded' is appended to enum \
             order_status: it sorts after every existing value (ORDER BY, <, >, max)\n  \
             1 | ALTER TYPE order_status ADD VALUE 'refunded'\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: say where it belongs: ALTER TYPE order_status ADD VALUE 'refunded' \
             BEFORE|AFTER '<existing value>'\n"
        );
        let out = render("BI07", "ALTER TYPE app.mood ADD VALUE IF NOT EXISTS 'meh';");
        assert!(
            out.contains("enum app.mood") && out.contains("ADD VALUE IF NOT EXISTS 'meh'"),
            "{out}"
        );
    }

    #[test]
    fn passes_ordered_values_and_renames() {
        assert_eq!(
            render("BI07", "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'sad';"),
            ""
        );
        assert_eq!(
            render(
                "BI07",
                "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh' AFTER 'ok';"
            ),
            ""
        );
        assert_eq!(
            render("BI07", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';"),
            ""
        );
        assert_eq!(
            render("BI07", "CREATE TYPE mood AS ENUM ('sad', 'ok');"),
            ""
        );
    }
}
