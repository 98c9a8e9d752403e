//! DL07 drop-sequence: `DROP SEQUENCE`, and `ALTER TABLE ... ALTER COLUMN ... DROP IDENTITY`
//! (which drops the identity column's sequence) on a table not created earlier in the same file
//! or transaction. A sequence's current value is state: once it is gone, a sequence created
//! later starts over and hands out ids that already exist. (A serial column whose type is
//! changed keeps its sequence in PostgreSQL; only a schema-diff tool drops it, as a
//! `DROP SEQUENCE` this rule sees.)
//!
//! Severity: warning. The value can be recorded and restored with `setval`, and the dropped
//! sequence usually goes with an intended redesign, so it asks for a check rather than blocking.
//! Sequences created earlier in the same file are not exempt: the lint context tracks created
//! tables, not sequences.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};

use super::drop_table::qualified;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL07",
    name: "drop-sequence",
    severity: Severity::Warning,
    default_on: true,
    summary: "dropping a sequence loses its current value",
    help: "keep the sequence; if it must go, record its value (SELECT last_value) and setval the \
           replacement past it",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if let NodeEnum::DropStmt(d) = stmt.node {
        if d.remove_type != ObjectType::ObjectSequence as i32 {
            return Vec::new();
        }
        return d
            .objects
            .iter()
            .filter_map(qualified)
            .map(|(seq, _)| {
                Hit::new(format!(
                    "dropping sequence {seq} loses its current value: a sequence created in its \
                     place starts over and hands out ids that already exist"
                ))
                .help(format!(
                    "keep {seq}; if it must go, record SELECT last_value FROM {seq} first and setval \
                     its replacement past that value"
                ))
            })
            .collect();
    }
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(_, t)| *t == AlterTableType::AtDropIdentity)
        .map(|(cmd, _)| {
            let column = &cmd.name;
            Hit::new(format!(
                "DROP IDENTITY on {table}.{column} drops the column's sequence and its current \
                 value; INSERTs that leave {column} out then fail (it stays NOT NULL)"
            ))
            .help(format!(
                "keep the identity; to replace it, record SELECT max({column}) FROM {table}, then in \
                 one transaction create a sequence starting past it and SET DEFAULT nextval(...) on \
                 {column}"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_drop_sequence() {
        assert_eq!(
            render("DL07", "DROP SEQUENCE order_number_seq;"),
            "m.sql:1:1: warning DL07 drop-sequence: dropping sequence order_number_seq loses its \
             current value: a sequence created in its place starts over and hands out ids that \
             already exist\n  \
             1 | DROP SEQUENCE order_number_seq\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: keep order_number_seq; if it must go, record SELECT last_value FROM \
             order_number_seq first and setval its replacement past that value\n"
        );
        let out = render("DL07", "DROP SEQUENCE IF EXISTS app.a, b CASCADE;");
        assert_eq!(out.matches("warning DL07").count(), 2, "{out}");
        assert!(
            out.contains("sequence app.a") && out.contains("sequence b"),
            "{out}"
        );
    }

    #[test]
    fn flags_drop_identity() {
        let out = render(
            "DL07",
            "ALTER TABLE orders ALTER COLUMN id DROP IDENTITY IF EXISTS;",
        );
        assert!(
            out.contains("warning DL07") && out.contains("DROP IDENTITY on orders.id"),
            "{out}"
        );
    }

    #[test]
    fn passes_other_statements() {
        assert_eq!(render("DL07", "DROP TABLE orders;"), "");
        assert_eq!(render("DL07", "ALTER SEQUENCE s RESTART;"), "");
        assert_eq!(
            render("DL07", "ALTER TABLE orders ALTER COLUMN id DROP DEFAULT;"),
            ""
        );
        // The serial keeps its sequence when the type changes.
        assert_eq!(
            render("DL07", "ALTER TABLE orders ALTER COLUMN id TYPE bigint;"),
            ""
        );
        assert_eq!(
            render(
                "DL07",
                "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY);\nALTER TABLE t ALTER id DROP IDENTITY;"
            ),
            ""
        );
    }
}
