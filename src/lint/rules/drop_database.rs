//! DL04 drop-database: `DROP DATABASE` (with or without `IF EXISTS` and `WITH (FORCE)`).
//!
//! Severity: error. It deletes a whole database, which a migration has no business doing, and
//! the alternative (do it by hand, after a backup, outside the migration history) is always
//! available. It also cannot run inside a transaction block (TX03).

use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Severity, Stmt};

pub static RULE: Rule = Rule {
    id: "DL04",
    name: "drop-database",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP DATABASE deletes a whole database",
    help: "do not drop databases in a migration: back it up and drop it by hand",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let NodeEnum::DropdbStmt(d) = stmt.node else {
        return Vec::new();
    };
    let force = d
        .options
        .iter()
        .any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(e)) if e.defname == "force"));
    let db = &d.dbname;
    let sessions = if force {
        ", and WITH (FORCE) first terminates every session connected to it"
    } else {
        ""
    };
    vec![
        Hit::new(format!(
            "DROP DATABASE {db} deletes the whole database and everything in it{sessions}"
        ))
        .help(format!(
            "do not drop databases in a migration: back {db} up (pg_dump -Fc {db}) and drop it by hand"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_drop_database() {
        assert_eq!(
            render("DL04", "DROP DATABASE staging;"),
            "m.sql:1:1: error DL04 drop-database: DROP DATABASE staging deletes the whole database and \
             everything in it\n  \
             1 | DROP DATABASE staging\n    \
             | ^^^^^^^^^^^^^^^^^^^^^\n  \
             help: do not drop databases in a migration: back staging up (pg_dump -Fc staging) and \
             drop it by hand\n"
        );
        assert!(render("DL04", "DROP DATABASE IF EXISTS \"Old\";").contains("DROP DATABASE Old"));
        let out = render("DL04", "DROP DATABASE old WITH (FORCE);");
        assert!(out.contains("terminates every session"), "{out}");
    }

    #[test]
    fn passes_other_statements() {
        assert_eq!(render("DL04", "CREATE DATABASE staging;"), "");
        assert_eq!(render("DL04", "DROP SCHEMA staging;"), "");
        assert_eq!(render("DL04", "ALTER DATABASE staging RENAME TO old;"), "");
    }
}
