//! BI11 untracked-dependency: statements whose dependents PostgreSQL cannot track, so nothing
//! stops them and the breakage shows only when the dependent code runs:
//! - `DROP FUNCTION/PROCEDURE/ROUTINE`: calls from string function bodies (plpgsql, and
//!   `LANGUAGE sql AS '...'`) and from application code are not recorded;
//! - `CREATE OR REPLACE FUNCTION/PROCEDURE` whose body is a string: what the new body uses is not
//!   recorded, so the tables, columns and functions it names can be dropped or renamed later
//!   without error. Only SQL-standard bodies (`BEGIN ATOMIC ... END`, `RETURN ...`, PostgreSQL
//!   14+) have their dependencies recorded, and are exempt;
//! - `DROP EXTENSION`: code that calls its functions or uses its types;
//! - `DROP SEQUENCE`: `nextval('seq')` in function bodies and code (column defaults are tracked).
//!
//! Severity: info. These are ordinary, intended changes; the finding is a reminder to inventory
//! the callers. Functions and sequences created earlier in the same file are not exempt: the lint
//! context tracks created tables only.

use pg_query::NodeEnum;
use pg_query::protobuf::{CreateFunctionStmt, DropStmt, ObjectType};

use super::drop_table::display;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI11",
    name: "untracked-dependency",
    severity: Severity::Info,
    default_on: true,
    summary: "a dropped or replaced function, extension or sequence has dependents PostgreSQL \
              cannot track",
    help: "inventory the callers (function bodies, triggers, application code) before deploying",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::DropStmt(d) => drop_stmt(d),
        NodeEnum::CreateFunctionStmt(f) if f.replace && f.sql_body.is_none() => replace(f),
        _ => Vec::new(),
    }
}

fn drop_stmt(d: &DropStmt) -> Vec<Hit> {
    let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    let (word, untracked) = match kind {
        ObjectType::ObjectFunction => ("function", "calls to it from string function bodies"),
        ObjectType::ObjectProcedure => ("procedure", "CALLs of it from string function bodies"),
        ObjectType::ObjectRoutine => ("routine", "calls to it from string function bodies"),
        ObjectType::ObjectExtension => (
            "extension",
            "uses of its functions and types in string function bodies",
        ),
        ObjectType::ObjectSequence => (
            "sequence",
            "nextval, currval and setval calls on it in function bodies",
        ),
        _ => return Vec::new(),
    };
    d.objects
        .iter()
        .map(display)
        .map(|name| {
            Hit::new(format!(
                "dropping {word} {name}: PostgreSQL does not track {untracked} or from application \
                 code, so those fail only when they run"
            ))
            .help(format!(
                "inventory the callers of {name} (grep the code; search pg_proc.prosrc) and remove \
                 them first"
            ))
        })
        .collect()
}

fn replace(f: &CreateFunctionStmt) -> Vec<Hit> {
    let language = f.options.iter().find_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) if d.defname == "language" => d.arg.as_deref().and_then(ast::string),
        _ => None,
    });
    let word = if f.is_procedure {
        "procedure"
    } else {
        "function"
    };
    let name = ast::strings(&f.funcname).join(".");
    let body = match language {
        Some(l) => format!("its {l} body"),
        None => "its body".to_string(),
    };
    let sql_standard = if language == Some("sql") {
        "write it as a SQL-standard body (BEGIN ATOMIC ... END, PostgreSQL 14+), whose dependencies \
         are recorded, or "
    } else {
        ""
    };
    vec![
        Hit::new(format!(
            "replacing {word} {name}: PostgreSQL does not record what {body} uses, so the tables, \
             columns and functions it names can be dropped or renamed later without error and \
             {name} fails only when it runs"
        ))
        .help(format!(
            "{sql_standard}keep a list of what {name} uses, and check its callers still match its \
             new behaviour"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_dropping_a_function() {
        assert_eq!(
            render("BI11", "DROP FUNCTION app.total(bigint);"),
            "m.sql:1:1: info BI11 untracked-dependency: dropping function app.total(bigint): \
             PostgreSQL does not track calls to it from string function bodies or from application \
             code, so those fail only when they run\n  \
             1 | DROP FUNCTION app.total(bigint)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: inventory the callers of app.total(bigint) (grep the code; search pg_proc.prosrc) \
             and remove them first\n"
        );
        let out = render("BI11", "DROP FUNCTION IF EXISTS f, g(int);");
        assert_eq!(out.matches("info BI11").count(), 2, "{out}");
        assert!(
            render("BI11", "DROP PROCEDURE archive_orders;").contains("procedure archive_orders")
        );
        assert!(render("BI11", "DROP ROUTINE r;").contains("routine r"));
    }

    #[test]
    fn flags_dropping_extensions_and_sequences() {
        let out = render("BI11", "DROP EXTENSION IF EXISTS pg_trgm;");
        assert!(out.contains("extension pg_trgm"), "{out}");
        let out = render("BI11", "DROP SEQUENCE app.invoice_no;");
        assert!(
            out.contains("sequence app.invoice_no") && out.contains("nextval"),
            "{out}"
        );
    }

    #[test]
    fn flags_replacing_a_string_bodied_function() {
        let out = render(
            "BI11",
            "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             BEGIN NEW.updated_at = now(); RETURN NEW; END $$;",
        );
        assert!(
            out.contains(
                "replacing function touch: PostgreSQL does not record what its plpgsql body"
            ),
            "{out}"
        );
        // A quoted SQL body is not tracked either.
        let out = render(
            "BI11",
            "CREATE OR REPLACE FUNCTION n() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM users';",
        );
        assert!(
            out.contains("its sql body") && out.contains("BEGIN ATOMIC"),
            "{out}"
        );
        let out = render(
            "BI11",
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN END $$;",
        );
        assert!(out.contains("replacing procedure p"), "{out}");
    }

    #[test]
    fn passes_sql_standard_bodies_and_new_functions() {
        assert_eq!(
            render(
                "BI11",
                "CREATE OR REPLACE FUNCTION n() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM users; END;"
            ),
            ""
        );
        assert_eq!(
            render(
                "BI11",
                "CREATE OR REPLACE FUNCTION one() RETURNS int LANGUAGE sql RETURN 1;"
            ),
            ""
        );
        // A new function: nothing calls it yet.
        assert_eq!(
            render(
                "BI11",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;"
            ),
            ""
        );
        assert_eq!(render("BI11", "DROP TABLE t;"), "");
        assert_eq!(render("BI11", "DROP TRIGGER tr ON t;"), "");
        assert_eq!(render("BI11", "ALTER EXTENSION pg_trgm UPDATE;"), "");
    }
}
