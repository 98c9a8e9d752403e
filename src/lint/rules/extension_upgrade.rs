//! BI12 extension-upgrade: `ALTER EXTENSION ... UPDATE [TO 'version']`. The extension's upgrade
//! scripts can change or drop functions, types and operators that code and other objects use,
//! and can take locks or rewrite data of their own.
//!
//! Severity: info. Upgrading is deliberate and usually fine; what it does is written in the
//! extension's scripts, not in the migration, so the finding is a reminder to read them.

use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI12",
    name: "extension-upgrade",
    severity: Severity::Info,
    default_on: true,
    summary: "ALTER EXTENSION ... UPDATE runs the extension's upgrade scripts, which the migration \
              does not show",
    help: "read the extension's changelog and upgrade scripts, and rehearse the upgrade on a copy",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let NodeEnum::AlterExtensionStmt(e) = stmt.node else {
        return Vec::new();
    };
    let version = e.options.iter().find_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) if d.defname == "new_version" => {
            d.arg.as_deref().and_then(ast::string)
        }
        _ => None,
    });
    let ext = &e.extname;
    let to = match version {
        Some(v) => format!("to {v}"),
        None => "to its default version".to_string(),
    };
    vec![
        Hit::new(format!(
            "updating extension {ext} {to} runs its upgrade scripts, which can change or drop \
             functions, types and operators that code uses, and take locks of their own"
        ))
        .help(format!(
            "read {ext}'s changelog and upgrade scripts (SELECT * FROM \
             pg_extension_update_paths('{ext}')), and rehearse the upgrade on a copy"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_extension_updates() {
        assert_eq!(
            render("BI12", "ALTER EXTENSION postgis UPDATE TO '3.4.2';"),
            "m.sql:1:1: info BI12 extension-upgrade: updating extension postgis to 3.4.2 runs its \
             upgrade scripts, which can change or drop functions, types and operators that code \
             uses, and take locks of their own\n  \
             1 | ALTER EXTENSION postgis UPDATE TO '3.4.2'\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: read postgis's changelog and upgrade scripts (SELECT * FROM \
             pg_extension_update_paths('postgis')), and rehearse the upgrade on a copy\n"
        );
        let out = render("BI12", "ALTER EXTENSION pg_trgm UPDATE;");
        assert!(out.contains("pg_trgm to its default version"), "{out}");
    }

    #[test]
    fn passes_other_extension_statements() {
        assert_eq!(
            render("BI12", "CREATE EXTENSION IF NOT EXISTS pg_trgm;"),
            ""
        );
        assert_eq!(
            render("BI12", "ALTER EXTENSION pg_trgm SET SCHEMA ext;"),
            ""
        );
        assert_eq!(
            render("BI12", "ALTER EXTENSION pg_trgm ADD FUNCTION f();"),
            ""
        );
        assert_eq!(render("BI12", "DROP EXTENSION pg_trgm;"), "");
    }
}
