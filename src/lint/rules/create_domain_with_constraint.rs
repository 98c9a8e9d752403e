//! LK19 create-domain-with-constraint: `CREATE DOMAIN` with a `CHECK` or `NOT NULL`
//! constraint.
//!
//! Severity: warning. Nothing is locked now: it is a design hazard. Every later change to a
//! domain constraint (`ALTER DOMAIN ... ADD CONSTRAINT`, `SET NOT NULL`, LK18) scans every
//! column that uses the domain at once while blocking writes to all their tables, and
//! changing a column's type to a constrained domain forces a rewrite. A plain type with CHECK
//! constraints on the columns can be changed one table at a time with `NOT VALID` and
//! `VALIDATE`.

use pg_query::NodeEnum;
use pg_query::protobuf::ConstrType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK19",
    name: "create-domain-with-constraint",
    severity: Severity::Warning,
    default_on: true,
    summary: "CREATE DOMAIN with a CHECK or NOT NULL constraint: later changes to it scan every \
              table that uses it at once",
    help: "use the plain base type and put CHECK / NOT NULL constraints on the columns",
    check,
};

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let NodeEnum::CreateDomainStmt(d) = stmt.node else {
        return Vec::new();
    };
    let kinds: Vec<&str> = d
        .constraints
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::Constraint(c) => match ast::constr_type(c) {
                ConstrType::ConstrCheck => Some("CHECK"),
                ConstrType::ConstrNotnull => Some("NOT NULL"),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if kinds.is_empty() {
        return Vec::new();
    }
    let mut kinds = kinds;
    kinds.sort_unstable();
    kinds.dedup();
    let domain = ast::strings(&d.domainname).join(".");
    let base = d.type_name.as_ref().map(ast::type_name).unwrap_or_default();
    vec![
        Hit::new(format!(
            "domain {domain} carries a {} constraint: changing it later scans every column of \
             every table that uses {domain} at once, blocking writes to all of them",
            kinds.join(" and ")
        ))
        .help(format!(
            "declare the columns as {base} with their own CHECK / NOT NULL constraints, which can \
             be changed table by table (NOT VALID, then VALIDATE)"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_a_check() {
        assert_eq!(
            render(
                "LK19",
                "CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);"
            ),
            "m.sql:1:1: warning LK19 create-domain-with-constraint: domain positive_int carries \
             a CHECK constraint: changing it later scans every column of every table that uses \
             positive_int at once, blocking writes to all of them\n  \
             1 | CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: declare the columns as integer with their own CHECK / NOT NULL constraints, \
             which can be changed table by table (NOT VALID, then VALIDATE)\n"
        );
    }

    #[test]
    fn flags_not_null_and_several_constraints() {
        let out = render("LK19", "CREATE DOMAIN app.email AS varchar(320) NOT NULL;");
        assert!(
            out.contains("domain app.email carries a NOT NULL constraint")
                && out.contains("as character varying(320)"),
            "{out}"
        );
        let out = render(
            "LK19",
            "CREATE DOMAIN code AS text NOT NULL CONSTRAINT short CHECK (length(VALUE) < 8) \
             CHECK (VALUE <> '');",
        );
        assert!(out.contains("a CHECK and NOT NULL constraint"), "{out}");
    }

    #[test]
    fn passes_plain_domains() {
        for sql in [
            "CREATE DOMAIN money_cents AS bigint;",
            "CREATE DOMAIN note AS text DEFAULT '' NULL;",
            "CREATE DOMAIN c AS text COLLATE \"C\";",
            "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0);",
        ] {
            assert_eq!(render("LK19", sql), "", "{sql}");
        }
    }
}
