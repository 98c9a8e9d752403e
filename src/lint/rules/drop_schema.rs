//! DL03 drop-schema: `DROP SCHEMA`. One finding per schema.
//!
//! Severity: error with `CASCADE`, which deletes every table (and all their rows), view,
//! function and type in the schema at once, a data-loss hazard with a safe path (move or back up
//! what it holds, drop the objects one by one). Without `CASCADE` PostgreSQL refuses to drop a
//! schema that still contains anything, so no data can be lost: a warning, for the code that
//! still names the schema. With `--database`, the message lists the tables the catalog knows in
//! the schema.
//!
//! Schemas created earlier in the same file are not exempt: the lint context tracks created
//! tables, not schemas.

use pg_query::NodeEnum;
use pg_query::protobuf::{DropBehavior, ObjectType};

use crate::lint::catalog::Catalog;
use crate::lint::{Context, Hit, Rule, Severity, Stmt};

pub static RULE: Rule = Rule {
    id: "DL03",
    name: "drop-schema",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP SCHEMA deletes the schema, and with CASCADE every table and row in it",
    help: "move or back up what the schema holds, stop using it in code, then drop its objects \
           explicitly and the empty schema without CASCADE",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::DropStmt(d) = stmt.node else {
        return Vec::new();
    };
    if d.remove_type != ObjectType::ObjectSchema as i32 {
        return Vec::new();
    }
    let cascade = d.behavior == DropBehavior::DropCascade as i32;
    d.objects
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::String(s) => Some(s.sval.as_str()),
            _ => None,
        })
        .map(|schema| {
            let tables = ctx
                .catalog
                .as_ref()
                .map(|c| tables_in(c, schema))
                .unwrap_or_default();
            hit(schema, &tables, cascade)
        })
        .collect()
}

fn hit(schema: &str, tables: &[String], cascade: bool) -> Hit {
    let listed = if tables.is_empty() {
        String::new()
    } else {
        format!(" ({})", list(tables))
    };
    if cascade {
        return Hit::new(format!(
            "DROP SCHEMA {schema} CASCADE deletes every table{listed}, view, function and type in \
             {schema}, with all their rows"
        ))
        .help(format!(
            "back up {schema} (pg_dump -n {schema}) and stop using it in code first; then drop its \
             objects explicitly and the empty schema without CASCADE"
        ));
    }
    let fails = if tables.is_empty() {
        String::new()
    } else {
        format!("; it still holds{listed}, so this statement will fail")
    };
    Hit::new(format!(
        "dropping schema {schema} breaks code that still names it (it can only be dropped once \
         empty, so no data is lost){fails}"
    ))
    .severity(Severity::Warning)
    .help(format!(
        "make sure no deployed code or search_path still uses {schema}"
    ))
}

/// Names of the tables, views and materialized views of `schema` in the catalog, sorted.
fn tables_in(cat: &Catalog, schema: &str) -> Vec<String> {
    let prefix = format!("{schema}.");
    let mut out: Vec<String> = cat
        .tables
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .cloned()
        .collect();
    out.sort();
    out
}

/// `a, b, c and 4 more`.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_drop_schema_cascade_as_an_error() {
        assert_eq!(
            render("DL03", "DROP SCHEMA legacy CASCADE;"),
            "m.sql:1:1: error DL03 drop-schema: DROP SCHEMA legacy CASCADE deletes every table, view, \
             function and type in legacy, with all their rows\n  \
             1 | DROP SCHEMA legacy CASCADE\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: back up legacy (pg_dump -n legacy) and stop using it in code first; then drop its \
             objects explicitly and the empty schema without CASCADE\n"
        );
        let out = render("DL03", "DROP SCHEMA IF EXISTS a, b CASCADE;");
        assert_eq!(out.matches("error DL03").count(), 2, "{out}");
    }

    #[test]
    fn without_cascade_it_is_a_warning() {
        let out = render("DL03", "DROP SCHEMA legacy;");
        assert!(
            out.contains("warning DL03") && out.contains("no data is lost"),
            "{out}"
        );
        assert!(render("DL03", "DROP SCHEMA legacy RESTRICT;").contains("warning DL03"));
    }

    #[test]
    fn other_drops_are_not_schemas() {
        assert_eq!(render("DL03", "DROP TABLE legacy CASCADE;"), "");
        assert_eq!(render("DL03", "DROP OWNED BY legacy CASCADE;"), "");
        assert_eq!(render("DL03", "ALTER SCHEMA legacy RENAME TO old;"), "");
    }

    #[test]
    fn the_catalog_lists_what_the_schema_holds() {
        let mut cat = Catalog::default();
        for t in ["a", "b", "c", "d", "e", "f", "g"] {
            cat.tables.insert(format!("legacy.{t}"), Table::default());
        }
        cat.tables.insert("public.keep".into(), Table::default());
        cat.tables.insert("legacy2.x".into(), Table::default());
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let out = render_with("DL03", "DROP SCHEMA legacy CASCADE;", opts());
        assert!(
            out.contains(
                "every table (legacy.a, legacy.b, legacy.c, legacy.d, legacy.e and 2 more)"
            ),
            "{out}"
        );
        assert!(!out.contains("keep") && !out.contains("legacy2"), "{out}");
        let out = render_with("DL03", "DROP SCHEMA legacy;", opts());
        assert!(
            out.contains("warning DL03") && out.contains("will fail"),
            "{out}"
        );
        let out = render_with("DL03", "DROP SCHEMA empty;", opts());
        assert!(
            out.contains("warning DL03") && !out.contains("will fail"),
            "{out}"
        );
    }
}
