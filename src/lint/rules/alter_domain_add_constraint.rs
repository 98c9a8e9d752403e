//! LK18 alter-domain-add-constraint: `ALTER DOMAIN ... ADD CONSTRAINT` (a CHECK without `NOT
//! VALID`, or NOT NULL), `ALTER DOMAIN ... SET NOT NULL`, and, before PostgreSQL 19,
//! `ALTER DOMAIN ... VALIDATE CONSTRAINT`. Each one checks every stored value of every column
//! that uses the domain, holding a SHARE lock on each of those tables.
//!
//! Severity: error. SHARE blocks every INSERT, UPDATE and DELETE on all the tables that use the
//! domain for the whole scan, and there is a safe alternative: CHECK constraints on the
//! columns themselves (`NOT VALID`, then `VALIDATE` under SHARE UPDATE EXCLUSIVE), or a
//! `NOT VALID` domain CHECK that is validated later. Domain `VALIDATE CONSTRAINT` took SHARE
//! too until PostgreSQL 19 lowered it to SHARE UPDATE EXCLUSIVE. With `--database` the
//! message lists the tables that use the domain, and when none does it is only info.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterDomainStmt, ConstrType};

use crate::lint::catalog::Catalog;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK18",
    name: "alter-domain-add-constraint",
    severity: Severity::Error,
    default_on: true,
    summary: "ALTER DOMAIN ... ADD CONSTRAINT / SET NOT NULL scans every column using the domain \
              while blocking writes to their tables",
    help: "put the CHECK on the columns (ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT), \
           or add the domain CHECK NOT VALID",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::AlterDomainStmt(d) = stmt.node else {
        return Vec::new();
    };
    let domain = ast::strings(&d.type_name).join(".");
    let Some((what, help)) = action(d, &domain, ctx.pg_version) else {
        return Vec::new();
    };
    let base = format!(
        "{what} checks every value of every column that uses domain {domain}, holding a SHARE \
         lock on each of their tables: writes to them are blocked until the scan ends"
    );
    let Some(cat) = ctx.catalog.as_ref() else {
        return vec![Hit::new(base).help(help)];
    };
    let users = users(cat, &d.type_name);
    if users.is_empty() {
        return vec![
            Hit::new(format!(
                "{what} scans the columns that use domain {domain}, and no table column in the \
                 catalog uses it (domains over it and composite types are not looked at)"
            ))
            .severity(Severity::Info)
            .help(help),
        ];
    }
    let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
    let more = match users.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    vec![Hit::new(format!("{base} ({}{more})", shown.join(", "))).help(help)]
}

/// What the statement does and the advice for it, or None when it does not scan.
fn action(d: &AlterDomainStmt, domain: &str, pg_version: u32) -> Option<(String, String)> {
    let columns_check = "add CHECK (...) NOT VALID on each column that uses it, then VALIDATE \
                         CONSTRAINT in a later transaction (SHARE UPDATE EXCLUSIVE: writes go \
                         on)";
    let not_null = format!(
        "make the columns NOT NULL one by one (CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then \
         SET NOT NULL, see LK06) instead of constraining domain {domain}"
    );
    match d.subtype.as_str() {
        "C" => {
            let NodeEnum::Constraint(c) = d.def.as_ref()?.node.as_ref()? else {
                return None;
            };
            let name = if c.conname.is_empty() {
                String::new()
            } else {
                format!(" {}", c.conname)
            };
            match ast::constr_type(c) {
                ConstrType::ConstrCheck if !c.skip_validation => Some((
                    format!("adding CHECK constraint{name} to domain {domain}"),
                    format!(
                        "{} checks new values only; {}; or {columns_check}",
                        not_valid(d).unwrap_or_else(|| format!(
                            "ALTER DOMAIN {domain} ADD CONSTRAINT ... NOT VALID"
                        )),
                        validate_note(pg_version)
                    ),
                )),
                ConstrType::ConstrNotnull => Some((
                    format!("adding NOT NULL constraint{name} to domain {domain}"),
                    not_null,
                )),
                _ => None,
            }
        }
        "O" => Some((format!("SET NOT NULL on domain {domain}"), not_null)),
        "V" if pg_version < 19 => Some((
            format!(
                "validating constraint {} of domain {domain} (before PostgreSQL 19)",
                d.name
            ),
            format!(
                "keep the domain constraint NOT VALID (new values are checked) and {columns_check}; \
                 or validate it after upgrading to 19"
            ),
        )),
        _ => None,
    }
}

/// The statement with `NOT VALID` added, as PostgreSQL's deparser prints it.
fn not_valid(d: &AlterDomainStmt) -> Option<String> {
    let mut d = d.clone();
    if let Some(NodeEnum::Constraint(c)) = d.def.as_mut().and_then(|n| n.node.as_mut()) {
        c.skip_validation = true;
        c.initially_valid = false;
    }
    NodeEnum::AlterDomainStmt(Box::new(d))
        .deparse(Default::default())
        .ok()
}

fn validate_note(pg_version: u32) -> &'static str {
    if pg_version < 19 {
        "its later VALIDATE CONSTRAINT still takes SHARE on every table before PostgreSQL 19"
    } else {
        "VALIDATE CONSTRAINT it later (SHARE UPDATE EXCLUSIVE on 19+)"
    }
}

/// `table.column` of every column whose type is the domain (or an array of it), as
/// `format_type` prints it: qualified only when the schema is not on the search path.
fn users(cat: &Catalog, type_name: &[pg_query::protobuf::Node]) -> Vec<String> {
    let parts = ast::strings(type_name);
    let written = parts.join(".");
    let written = written.as_str();
    let bare = parts.last().copied().unwrap_or_default();
    let mut out: Vec<String> = cat
        .tables
        .iter()
        .filter(|(_, t)| matches!(t.kind, 'r' | 'p' | 'm'))
        .flat_map(|(table, t)| {
            let table = table.strip_prefix("public.").unwrap_or(table);
            t.columns.iter().filter_map(move |(col, c)| {
                let ty = c.data_type.trim_end_matches("[]");
                (ty == written || ty == bare).then(|| format!("{table}.{col}"))
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Column, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn with_users(users: &[(&str, &str, &str)]) -> Opts {
        let mut cat = Catalog::default();
        for (table, col, ty) in users {
            let t = cat.tables.entry(table.to_string()).or_insert(Table {
                kind: 'r',
                ..Default::default()
            });
            t.columns.insert(
                col.to_string(),
                Column {
                    data_type: ty.to_string(),
                    not_null: false,
                    indexed: false,
                },
            );
        }
        Opts {
            catalog: Some(cat),
            ..Default::default()
        }
    }

    #[test]
    fn flags_adding_a_check() {
        assert_eq!(
            render(
                "LK18",
                "ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (VALUE > 0);"
            ),
            "m.sql:1:1: error LK18 alter-domain-add-constraint: adding CHECK constraint positive \
             to domain positive_int checks every value of every column that uses domain \
             positive_int, holding a SHARE lock on each of their tables: writes to them are \
             blocked until the scan ends\n  \
             1 | ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (VALUE > 0)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (value > 0) NOT VALID checks new values \
             only; its later VALIDATE CONSTRAINT still takes SHARE on every table before \
             PostgreSQL 19; or add CHECK (...) NOT VALID on each column that uses it, then \
             VALIDATE CONSTRAINT in a later transaction (SHARE UPDATE EXCLUSIVE: writes go on)\n"
        );
    }

    #[test]
    fn flags_not_null_in_both_spellings() {
        let out = render("LK18", "ALTER DOMAIN app.email SET NOT NULL;");
        assert!(
            out.contains("SET NOT NULL on domain app.email") && out.contains("see LK06"),
            "{out}"
        );
        let out = render(
            "LK18",
            "ALTER DOMAIN email ADD CONSTRAINT email_nn NOT NULL;",
        );
        assert!(out.contains("adding NOT NULL constraint email_nn"), "{out}");
    }

    #[test]
    fn passes_not_valid_and_harmless_forms() {
        for sql in [
            "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0) NOT VALID;",
            "ALTER DOMAIN d DROP NOT NULL;",
            "ALTER DOMAIN d DROP CONSTRAINT c;",
            "ALTER DOMAIN d SET DEFAULT 0;",
            "ALTER DOMAIN d RENAME CONSTRAINT c TO c2;",
            "CREATE DOMAIN d AS int CHECK (VALUE > 0);",
        ] {
            assert_eq!(render("LK18", sql), "", "{sql}");
        }
    }

    #[test]
    fn validate_takes_share_before_19() {
        let sql = "ALTER DOMAIN d VALIDATE CONSTRAINT c;";
        let out = render_with(
            "LK18",
            sql,
            Opts {
                pg_version: 18,
                ..Default::default()
            },
        );
        assert!(
            out.contains("error LK18") && out.contains("validating constraint c of domain d"),
            "{out}"
        );
        let v19 = Opts {
            pg_version: 19,
            ..Default::default()
        };
        assert_eq!(render_with("LK18", sql, v19), "");
        let v19 = Opts {
            pg_version: 19,
            ..Default::default()
        };
        let out = render_with("LK18", "ALTER DOMAIN d ADD CHECK (VALUE > 0);", v19);
        assert!(out.contains("SHARE UPDATE EXCLUSIVE on 19+"), "{out}");
    }

    #[test]
    fn the_catalog_lists_the_tables() {
        let sql = "ALTER DOMAIN positive_int ADD CONSTRAINT positive CHECK (VALUE > 0);";
        let out = render_with(
            "LK18",
            sql,
            with_users(&[
                ("public.orders", "qty", "positive_int"),
                ("shop.lines", "qty", "positive_int[]"),
                ("public.orders", "id", "bigint"),
            ]),
        );
        assert!(
            out.contains("error LK18")
                && out.contains("blocked until the scan ends (orders.qty, shop.lines.qty)"),
            "{out}"
        );
        let out = render_with(
            "LK18",
            sql,
            with_users(&[("public.orders", "id", "bigint")]),
        );
        assert!(
            out.contains("info LK18") && out.contains("no table column in the catalog uses it"),
            "{out}"
        );
    }
}
