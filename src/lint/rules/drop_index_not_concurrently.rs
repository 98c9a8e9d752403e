//! LK02 drop-index-not-concurrently: `DROP INDEX` without `CONCURRENTLY`.
//!
//! Dropping an index takes ACCESS EXCLUSIVE on the table that owns it. The drop itself is
//! quick, but while it waits for the lock (behind any long query on the table) every later
//! read and write of the table queues behind it.
//!
//! Severity: error. It is a lock hazard on the whole table with a drop-in safe alternative,
//! `DROP INDEX CONCURRENTLY` (SHARE UPDATE EXCLUSIVE: reads and writes go on). When the
//! statement drops several indexes or uses CASCADE, which CONCURRENTLY does not allow, the help
//! says how to split it. The index's table is not known from the statement, so there is no
//! new-table exemption and no catalog adjustment.

use pg_query::NodeEnum;
use pg_query::protobuf::{DropBehavior, ObjectType};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK02",
    name: "drop-index-not-concurrently",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP INDEX without CONCURRENTLY locks the index's table against reads and writes",
    help: "use DROP INDEX CONCURRENTLY (one index per statement, no CASCADE, outside a \
           transaction; pgship's engine runs it alone)",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let NodeEnum::DropStmt(d) = stmt.node else {
        return Vec::new();
    };
    if d.remove_type != ObjectType::ObjectIndex as i32 || d.concurrent {
        return Vec::new();
    }
    let names: Vec<String> = d
        .objects
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::List(l) => Some(ast::strings(&l.items).join(".")),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let cascade = d.behavior == DropBehavior::DropCascade as i32;
    let what = if names.len() == 1 {
        format!("dropping index {}", names[0])
    } else {
        format!("dropping indexes {}", names.join(", "))
    };
    let if_exists = if d.missing_ok { "IF EXISTS " } else { "" };
    let stmts: Vec<String> = names
        .iter()
        .map(|n| format!("DROP INDEX CONCURRENTLY {if_exists}{n}"))
        .collect();
    let mut help = if names.len() == 1 {
        format!("use {}", stmts[0])
    } else {
        format!("drop them one per statement: {}", stmts.join("; "))
    };
    if cascade {
        help.push_str(
            "; CONCURRENTLY does not allow CASCADE: drop the objects that depend on the index \
             (constraints, other objects) explicitly first",
        );
    } else {
        help.push_str(" (outside a transaction; pgship's engine runs it alone)");
    }
    vec![
        Hit::new(format!(
            "{what} takes ACCESS EXCLUSIVE on its table: while it waits for the lock, every read \
             and write of the table queues behind it"
        ))
        .help(help),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_a_plain_drop_index() {
        assert_eq!(
            render("LK02", "DROP INDEX orders_user_idx;"),
            "m.sql:1:1: error LK02 drop-index-not-concurrently: dropping index orders_user_idx \
             takes ACCESS EXCLUSIVE on its table: while it waits for the lock, every read and \
             write of the table queues behind it\n  \
             1 | DROP INDEX orders_user_idx\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: use DROP INDEX CONCURRENTLY orders_user_idx (outside a transaction; pgship's \
             engine runs it alone)\n"
        );
    }

    #[test]
    fn keeps_if_exists_and_the_schema_in_the_advice() {
        let out = render("LK02", "DROP INDEX IF EXISTS app.users_email_idx;");
        assert!(out.contains("dropping index app.users_email_idx"), "{out}");
        assert!(
            out.contains("use DROP INDEX CONCURRENTLY IF EXISTS app.users_email_idx ("),
            "{out}"
        );
    }

    #[test]
    fn splits_several_indexes_and_explains_cascade() {
        let out = render("LK02", "DROP INDEX a_idx, b_idx CASCADE;");
        assert!(out.contains("dropping indexes a_idx, b_idx"), "{out}");
        assert!(
            out.contains(
                "drop them one per statement: DROP INDEX CONCURRENTLY a_idx; DROP INDEX \
                 CONCURRENTLY b_idx; CONCURRENTLY does not allow CASCADE"
            ),
            "{out}"
        );
        assert!(out.contains("does not allow CASCADE"), "{out}");
    }

    #[test]
    fn passes_concurrent_drops_and_other_objects() {
        assert_eq!(
            render("LK02", "DROP INDEX CONCURRENTLY orders_user_idx;"),
            ""
        );
        assert_eq!(
            render("LK02", "DROP INDEX CONCURRENTLY IF EXISTS orders_user_idx;"),
            ""
        );
        assert_eq!(render("LK02", "DROP TABLE orders;"), "");
        assert_eq!(render("LK02", "ALTER INDEX i RENAME TO j;"), "");
    }
}
