//! BI03 rename-schema: `ALTER SCHEMA ... RENAME TO`. Every qualified name in running code, every
//! `search_path` that lists the schema, and every function body that names it (PostgreSQL does
//! not track those) still uses the old name.
//!
//! Severity: warning. Instant and no data is lost, but it breaks running code; the alternative
//! (a new schema and a transition) costs several deploys, a trade-off rather than a must.
//! Schemas created earlier in the same file are not exempt: the lint context tracks created
//! tables, not schemas.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt};

pub static RULE: Rule = Rule {
    id: "BI03",
    name: "rename-schema",
    severity: Severity::Warning,
    default_on: true,
    summary: "renaming a schema breaks running code, search_path settings and function bodies \
              that use the old name",
    help: "create the new schema, move objects with views left behind in the old one, and drop \
           the old schema once nothing uses it",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let NodeEnum::RenameStmt(r) = stmt.node else {
        return Vec::new();
    };
    if r.rename_type != ObjectType::ObjectSchema as i32 {
        return Vec::new();
    }
    let (old, new) = (&r.subname, &r.newname);
    vec![
        Hit::new(format!(
            "renaming schema {old} to {new} breaks running code, search_path settings and function \
             bodies that still name {old}"
        ))
        .help(format!(
            "create {new}, move the objects with ALTER ... SET SCHEMA {new} leaving views with the \
             old names in {old}, and drop {old} once nothing uses it"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_renaming_a_schema() {
        assert_eq!(
            render("BI03", "ALTER SCHEMA billing RENAME TO payments;"),
            "m.sql:1:1: warning BI03 rename-schema: renaming schema billing to payments breaks \
             running code, search_path settings and function bodies that still name billing\n  \
             1 | ALTER SCHEMA billing RENAME TO payments\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: create payments, move the objects with ALTER ... SET SCHEMA payments leaving \
             views with the old names in billing, and drop billing once nothing uses it\n"
        );
        let out = render("BI03", "ALTER SCHEMA \"Billing\" RENAME TO billing;");
        assert!(out.contains("schema Billing to billing"), "{out}");
    }

    #[test]
    fn passes_other_statements() {
        assert_eq!(render("BI03", "ALTER SCHEMA billing OWNER TO app;"), "");
        assert_eq!(
            render("BI03", "ALTER TABLE billing RENAME TO payments;"),
            ""
        );
        assert_eq!(render("BI03", "CREATE SCHEMA payments;"), "");
        assert_eq!(render("BI03", "ALTER TABLE t SET SCHEMA payments;"), "");
    }
}
