//! LK07 add-check-validating: `ADD [CONSTRAINT c] CHECK (...)` without `NOT VALID` on a table
//! that was not created earlier in the same file or transaction; also `ADD COLUMN ... CHECK
//! (...)`, which cannot be NOT VALID and scans the table too (checked on PostgreSQL 15: the
//! check runs once per existing row even when the new column is all NULL).
//!
//! Severity: error. PostgreSQL validates every existing row while it holds ACCESS EXCLUSIVE,
//! so reads and writes wait for a full scan, and `NOT VALID` followed by `VALIDATE
//! CONSTRAINT` in a later transaction (SHARE UPDATE EXCLUSIVE) avoids it. With `--database`,
//! a small table (under 10,000 rows and 8 MB) is only a warning.
//!
//! Also home to the helpers the other constraint rules of this group share: the deparsed
//! `ALTER TABLE` of a suggestion, PostgreSQL's default constraint names, and the parsed
//! expression of a catalog CHECK definition.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ConstrType, Constraint, DropBehavior, Node,
    ObjectType, RangeVar,
};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK07",
    name: "add-check-validating",
    severity: Severity::Error,
    default_on: true,
    summary: "ADD CHECK without NOT VALID scans the whole table under ACCESS EXCLUSIVE",
    help: "add the constraint NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a later \
           transaction (SHARE UPDATE EXCLUSIVE: reads and writes go on)",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        match t {
            AlterTableType::AtAddConstraint => {
                let Some(c) = ast::constraint_def(cmd) else {
                    continue;
                };
                if ast::constr_type(c) != ConstrType::ConstrCheck || c.skip_validation {
                    continue;
                }
                let name = constraint_name(c, &rv.relname);
                let mut message = format!(
                    "adding CHECK constraint {name} to {table} scans every row of {table} under \
                     ACCESS EXCLUSIVE to validate it: reads and writes wait until the scan \
                     finishes"
                );
                if c.raw_expr
                    .as_deref()
                    .and_then(crate::lint::context::is_not_null_test)
                    .is_some()
                {
                    message.push_str(
                        " (as the first step of the SET NOT NULL recipe it must be NOT VALID)",
                    );
                }
                hits.push(Hit::new(message).help(not_valid_help(rv, c, &name)));
            }
            AlterTableType::AtAddColumn => {
                let Some(col) = ast::column_def(cmd) else {
                    continue;
                };
                for c in ast::column_constraints(col) {
                    if ast::constr_type(c) != ConstrType::ConstrCheck {
                        continue;
                    }
                    let name = if c.conname.is_empty() {
                        format!("{}_{}_check", rv.relname, col.colname)
                    } else {
                        c.conname.clone()
                    };
                    hits.push(
                        Hit::new(format!(
                            "adding column {} to {table} with CHECK constraint {name} scans every \
                             row of {table} under ACCESS EXCLUSIVE to check it, even though the \
                             new column is the same in every row",
                            col.colname
                        ))
                        .help(format!(
                            "add the column without the CHECK, then {}",
                            not_valid_help(rv, c, &name)
                        )),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.is_small()
    {
        for h in &mut hits {
            h.severity = Some(Severity::Warning);
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

/// "add it NOT VALID: `ALTER TABLE ... NOT VALID;` then, in a later transaction, `VALIDATE`".
fn not_valid_help(rv: &RangeVar, c: &Constraint, name: &str) -> String {
    let mut nv = c.clone();
    nv.conname = name.to_string();
    nv.skip_validation = true;
    nv.initially_valid = false;
    let add = alter_sql(rv, vec![add_constraint_cmd(nv)]).unwrap_or_else(|| {
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {name} ... NOT VALID",
            ast::rel_name(rv)
        )
    });
    format!(
        "add it NOT VALID: {add}; then, in a later transaction, ALTER TABLE {} VALIDATE \
         CONSTRAINT {name} (SHARE UPDATE EXCLUSIVE: reads and writes go on)",
        ast::rel_name(rv)
    )
}

pub(super) use crate::lint::ast::{column_refs, constraint_name};

/// An `ADD CONSTRAINT` subcommand carrying `c`.
pub(super) fn add_constraint_cmd(c: Constraint) -> AlterTableCmd {
    AlterTableCmd {
        subtype: AlterTableType::AtAddConstraint as i32,
        def: Some(Box::new(Node {
            node: Some(NodeEnum::Constraint(Box::new(c))),
        })),
        behavior: DropBehavior::DropRestrict as i32,
        ..Default::default()
    }
}

/// `ALTER TABLE <rv> <cmds>` as PostgreSQL's deparser prints it.
pub(super) fn alter_sql(rv: &RangeVar, cmds: Vec<AlterTableCmd>) -> Option<String> {
    NodeEnum::AlterTableStmt(AlterTableStmt {
        relation: Some(rv.clone()),
        cmds: cmds
            .into_iter()
            .map(|c| Node {
                node: Some(NodeEnum::AlterTableCmd(Box::new(c))),
            })
            .collect(),
        objtype: ObjectType::ObjectTable as i32,
        missing_ok: false,
    })
    .deparse(Default::default())
    .ok()
}

/// The expression of a catalog CHECK definition (`pg_get_constraintdef`: `CHECK ((a > 0))`,
/// possibly followed by `NOT VALID`), parsed.
pub(super) fn check_definition_expr(definition: &str) -> Option<NodeEnum> {
    let body = definition.strip_prefix("CHECK ")?;
    let body = body.strip_suffix(" NOT VALID").unwrap_or(body);
    let body = body.strip_suffix(" NO INHERIT").unwrap_or(body);
    let parsed = pg_query::parse(&format!("SELECT {body}"), 0).ok()?;
    let stmt = parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?;
    let NodeEnum::SelectStmt(s) = stmt else {
        return None;
    };
    match s.target_list.first()?.node.as_ref()? {
        NodeEnum::ResTarget(r) => r.val.as_ref()?.node.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_validating_check() {
        assert_eq!(
            render(
                "LK07",
                "ALTER TABLE orders ADD CONSTRAINT qty_pos CHECK (qty > 0);"
            ),
            "m.sql:1:1: error LK07 add-check-validating: adding CHECK constraint qty_pos to \
             orders scans every row of orders under ACCESS EXCLUSIVE to validate it: reads and \
             writes wait until the scan finishes\n  \
             1 | ALTER TABLE orders ADD CONSTRAINT qty_pos CHECK (qty > 0)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: add it NOT VALID: ALTER TABLE orders ADD CONSTRAINT qty_pos CHECK (qty > 0) \
             NOT VALID; then, in a later transaction, ALTER TABLE orders VALIDATE CONSTRAINT \
             qty_pos (SHARE UPDATE EXCLUSIVE: reads and writes go on)\n"
        );
    }

    #[test]
    fn an_unnamed_check_gets_postgres_default_name_in_the_advice() {
        let one = render("LK07", "ALTER TABLE app.orders ADD CHECK (qty > 0);");
        assert!(
            one.contains(
                "ALTER TABLE app.orders ADD CONSTRAINT orders_qty_check CHECK (qty > 0) NOT VALID"
            ),
            "{one}"
        );
        assert!(
            one.contains("VALIDATE CONSTRAINT orders_qty_check"),
            "{one}"
        );
        let two = render(
            "LK07",
            "ALTER TABLE orders ADD CHECK (qty > 0 AND price >= 0);",
        );
        assert!(two.contains("constraint orders_check "), "{two}");
    }

    #[test]
    fn a_not_null_check_is_the_set_not_null_recipe_done_wrong() {
        let out = render(
            "LK07",
            "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL);",
        );
        assert!(
            out.contains("first step of the SET NOT NULL recipe"),
            "{out}"
        );
    }

    #[test]
    fn flags_a_check_on_a_new_column() {
        let out = render(
            "LK07",
            "ALTER TABLE orders ADD COLUMN qty int CHECK (qty > 0);",
        );
        assert!(
            out.contains("adding column qty to orders with CHECK constraint orders_qty_check"),
            "{out}"
        );
        assert!(
            out.contains(
                "add the column without the CHECK, then add it NOT VALID: ALTER TABLE orders ADD \
                 CONSTRAINT orders_qty_check CHECK (qty > 0) NOT VALID"
            ),
            "{out}"
        );
    }

    #[test]
    fn passes_not_valid_validate_and_new_tables() {
        for sql in [
            "ALTER TABLE orders ADD CONSTRAINT qty_pos CHECK (qty > 0) NOT VALID;",
            "ALTER TABLE orders VALIDATE CONSTRAINT qty_pos;",
            "ALTER TABLE orders ADD COLUMN qty int;",
            "ALTER TABLE orders ADD CONSTRAINT u UNIQUE (a);",
            "CREATE TABLE orders (qty int CHECK (qty > 0));",
            "CREATE TABLE orders (qty int);\nALTER TABLE orders ADD CONSTRAINT qty_pos CHECK (qty > 0);",
            "BEGIN;\nCREATE TABLE orders (qty int);\nCOMMIT;\nALTER TABLE orders ADD CHECK (qty > 0);",
        ] {
            assert_eq!(render("LK07", sql), "", "{sql}");
        }
    }

    #[test]
    fn a_table_created_in_another_file_is_not_new() {
        let mut ctx = crate::lint::Context::new(17, None);
        let mut out = crate::lint::Outcome::default();
        let sel = crate::lint::Selection {
            enable: ["LK07".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for text in [
            "CREATE TABLE orders (qty int);",
            "ALTER TABLE orders ADD CHECK (qty > 0);",
        ] {
            crate::lint::lint_source(
                &crate::lint::Source {
                    name: "m.sql".into(),
                    text,
                    drizzle: false,
                    wrap: crate::lint::Wrap::None,
                },
                &mut ctx,
                &sel,
                &mut out,
            );
        }
        assert_eq!(out.findings.iter().filter(|f| f.rule == "LK07").count(), 1);
    }

    #[test]
    fn a_table_created_earlier_in_the_same_run_transaction_is_new() {
        // pgship's engine in whole-run mode: two files, one transaction.
        let mut ctx = crate::lint::Context::new(17, None);
        let mut out = crate::lint::Outcome::default();
        let sel = crate::lint::Selection {
            enable: ["LK07".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for text in [
            "CREATE TABLE orders (qty int);",
            "ALTER TABLE orders ADD CHECK (qty > 0);",
        ] {
            crate::lint::lint_source(
                &crate::lint::Source {
                    name: "m.sql".into(),
                    text,
                    drizzle: false,
                    wrap: crate::lint::Wrap::Engine {
                        per_migration: false,
                    },
                },
                &mut ctx,
                &sel,
                &mut out,
            );
        }
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn each_check_of_a_multi_command_alter_is_reported() {
        let out = render(
            "LK07",
            "ALTER TABLE t ADD CONSTRAINT a CHECK (x > 0), ADD CONSTRAINT b CHECK (y > 0) NOT VALID, \
             ADD CONSTRAINT c CHECK (z > 0);",
        );
        assert_eq!(out.matches("error LK07").count(), 2, "{out}");
        assert!(
            out.contains("constraint a to t") && out.contains("constraint c to t"),
            "{out}"
        );
    }

    #[test]
    fn the_catalog_lowers_small_tables() {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.small".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 3.0,
                ..Default::default()
            },
        );
        let out = render_with(
            "LK07",
            "ALTER TABLE small ADD CHECK (x > 0);",
            Opts {
                catalog: Some(cat),
                ..Default::default()
            },
        );
        assert!(
            out.contains("warning LK07") && out.contains("small is small: 3 rows"),
            "{out}"
        );
    }

    #[test]
    fn catalog_definitions_parse() {
        let e = check_definition_expr("CHECK ((email IS NOT NULL)) NOT VALID").unwrap();
        assert_eq!(column_refs(&e), vec!["email"]);
        let e = check_definition_expr("CHECK (((a > 0) AND (b IS NOT NULL)))").unwrap();
        assert_eq!(column_refs(&e), vec!["a", "b"]);
        assert!(check_definition_expr("FOREIGN KEY (a) REFERENCES b(id)").is_none());
    }
}
