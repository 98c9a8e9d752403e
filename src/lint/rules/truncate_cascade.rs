//! DL05 truncate-cascade: `TRUNCATE ... CASCADE`, which also empties every table that
//! references the truncated ones through a foreign key, and the tables referencing those,
//! recursively.
//!
//! Severity: error. Rows of tables the statement does not name are deleted, under an ACCESS
//! EXCLUSIVE lock on all of them, and the safe alternative costs nothing: name every table to
//! empty, without CASCADE (PostgreSQL then refuses if a referencing table was forgotten).
//! No exemption for tables created in the same file: the tables that reference them may be old.
//! With `--database`, the message lists the foreign keys of other tables that reference the
//! truncated ones (the first level of the cascade).

use pg_query::NodeEnum;
use pg_query::protobuf::DropBehavior;

use super::drop_cascade::referencing_fks;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL05",
    name: "truncate-cascade",
    severity: Severity::Error,
    default_on: true,
    summary: "TRUNCATE ... CASCADE also empties every table that references the truncated ones",
    help: "name every table to empty explicitly, without CASCADE",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::TruncateStmt(t) = stmt.node else {
        return Vec::new();
    };
    if t.behavior != DropBehavior::DropCascade as i32 {
        return Vec::new();
    }
    let tables: Vec<_> = relations(&t.relations);
    let names: Vec<String> = tables.iter().map(|rv| ast::rel_name(rv)).collect();
    let names = names.join(", ");
    let mut message = format!(
        "TRUNCATE {names} CASCADE also empties every table that references {names} through a \
         foreign key, recursively, without naming them"
    );
    if let Some(cat) = &ctx.catalog {
        let fks: Vec<String> = tables
            .iter()
            .flat_map(|rv| referencing_fks(cat, &ast::rel_key(rv)))
            .collect();
        if !fks.is_empty() {
            message.push_str(&format!(
                "; the catalog has these foreign keys on them: {}",
                fks.join(", ")
            ));
        }
    }
    vec![Hit::new(message).help(format!(
        "name every table to empty: TRUNCATE {names}, <the referencing tables> without CASCADE \
         (PostgreSQL refuses if one is missing)"
    ))]
}

/// The tables of a TRUNCATE.
pub(super) fn relations(nodes: &[pg_query::protobuf::Node]) -> Vec<&pg_query::protobuf::RangeVar> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::RangeVar(rv) => Some(rv),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Constraint};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_truncate_cascade() {
        assert_eq!(
            render("DL05", "TRUNCATE users CASCADE;"),
            "m.sql:1:1: error DL05 truncate-cascade: TRUNCATE users CASCADE also empties every table \
             that references users through a foreign key, recursively, without naming them\n  \
             1 | TRUNCATE users CASCADE\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: name every table to empty: TRUNCATE users, <the referencing tables> without \
             CASCADE (PostgreSQL refuses if one is missing)\n"
        );
        let out = render(
            "DL05",
            "TRUNCATE TABLE ONLY app.a, b RESTART IDENTITY CASCADE;",
        );
        assert!(out.contains("TRUNCATE app.a, b CASCADE"), "{out}");
        // A table created in this file can still be referenced by old ones.
        let out = render(
            "DL05",
            "CREATE TABLE t (id int primary key);\nTRUNCATE t CASCADE;",
        );
        assert!(out.contains("error DL05"), "{out}");
    }

    #[test]
    fn passes_plain_truncate_and_deletes() {
        assert_eq!(render("DL05", "TRUNCATE users;"), "");
        assert_eq!(render("DL05", "TRUNCATE users RESTRICT;"), "");
        assert_eq!(render("DL05", "DELETE FROM users;"), "");
        assert_eq!(render("DL05", "DROP TABLE users CASCADE;"), "");
    }

    #[test]
    fn the_catalog_names_the_referencing_tables() {
        let mut cat = Catalog::default();
        cat.constraints.insert(
            ("public.orders".into(), "orders_user_id_fkey".into()),
            Constraint {
                kind: 'f',
                validated: true,
                definition: "FOREIGN KEY (user_id) REFERENCES users(id)".into(),
            },
        );
        cat.constraints.insert(
            ("public.orders".into(), "orders_total_check".into()),
            Constraint {
                kind: 'c',
                validated: true,
                definition: "CHECK ((total >= 0))".into(),
            },
        );
        let out = render_with(
            "DL05",
            "TRUNCATE users CASCADE;",
            Opts {
                catalog: Some(cat),
                ..Default::default()
            },
        );
        assert!(
            out.contains(
                "; the catalog has these foreign keys on them: orders (orders_user_id_fkey)\n"
            ),
            "{out}"
        );
    }
}
