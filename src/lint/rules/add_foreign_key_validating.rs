//! LK08 add-foreign-key-validating: `ADD [CONSTRAINT c] FOREIGN KEY ... REFERENCES` without
//! `NOT VALID` on a table that was not created earlier in the same file or transaction; and
//! `ADD COLUMN ... REFERENCES` when PostgreSQL has to check existing rows, which is when the
//! statement also gives an added column a value (a DEFAULT, a serial type, a generated
//! expression). Without one the new column is NULL everywhere and PostgreSQL marks the key
//! valid without a scan (`transformFKConstraints`; checked on PostgreSQL 15).
//!
//! Validation scans the referencing table and looks every value up in the referenced one,
//! holding SHARE ROW EXCLUSIVE on both: writes to both tables wait for the whole check.
//!
//! Severity: error, a lock hazard with a safe alternative: `NOT VALID`, then `VALIDATE
//! CONSTRAINT` in a later transaction (SHARE UPDATE EXCLUSIVE on the table, ROW SHARE on the
//! referenced one). With `--database`, a small referencing table is a warning, and on a
//! partitioned table before PostgreSQL 18, where NOT VALID foreign keys are refused, the
//! advice is per partition (and a NOT VALID one is reported as failing).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, Constraint, Node, RangeVar};

use super::add_check_validating::{add_constraint_cmd, alter_sql};
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK08",
    name: "add-foreign-key-validating",
    severity: Severity::Error,
    default_on: true,
    summary: "ADD FOREIGN KEY without NOT VALID scans the table while blocking writes to both \
              tables",
    help: "add the foreign key NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a later \
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
    let cmds = ast::alter_cmds(a);
    // PostgreSQL checks the keys of new columns only when an added column gets a value.
    let valued = cmds.iter().any(|(cmd, t)| {
        *t == AlterTableType::AtAddColumn && ast::column_def(cmd).is_some_and(gets_a_value)
    });
    let partitioned_before_18 = ctx.pg_version < 18
        && ctx
            .catalog
            .as_ref()
            .and_then(|c| c.table(&key))
            .is_some_and(|t| t.kind == 'p');
    let mut hits = Vec::new();
    for (cmd, t) in &cmds {
        match t {
            AlterTableType::AtAddConstraint => {
                let Some(c) = ast::constraint_def(cmd) else {
                    continue;
                };
                if ast::constr_type(c) != ConstrType::ConstrForeign {
                    continue;
                }
                let cols = ast::strings(&c.fk_attrs);
                let name = fk_name(c, &rv.relname, &cols);
                if c.skip_validation {
                    if partitioned_before_18 {
                        hits.push(
                            Hit::new(format!(
                                "{table} is partitioned: PostgreSQL {} refuses NOT VALID foreign \
                                 keys on partitioned tables (18+ allows them), so this statement \
                                 fails",
                                ctx.pg_version
                            ))
                            .help(partition_help(&table, &name)),
                        );
                    }
                    continue;
                }
                let mut hit = Hit::new(format!(
                    "adding foreign key {name} ({}) to {table} checks every row of {table} \
                     against {} while holding SHARE ROW EXCLUSIVE on both: writes to both tables \
                     wait until the check finishes",
                    cols.join(", "),
                    referenced(c)
                ));
                hit = if partitioned_before_18 {
                    hit.help(partition_help(&table, &name))
                } else {
                    hit.help(not_valid_help(rv, c, &name))
                };
                hits.push(hit);
            }
            AlterTableType::AtAddColumn if valued => {
                let Some(col) = ast::column_def(cmd) else {
                    continue;
                };
                for c in ast::column_constraints(col) {
                    if ast::constr_type(c) != ConstrType::ConstrForeign {
                        continue;
                    }
                    let name = fk_name(c, &rv.relname, &[col.colname.as_str()]);
                    let mut fk = c.clone();
                    fk.fk_attrs = vec![Node {
                        node: Some(NodeEnum::String(pg_query::protobuf::String {
                            sval: col.colname.clone(),
                        })),
                    }];
                    hits.push(
                        Hit::new(format!(
                            "adding column {} to {table} with a value and REFERENCES {} checks \
                             every row of {table} against {} while holding SHARE ROW EXCLUSIVE on \
                             it (and ACCESS EXCLUSIVE on {table})",
                            col.colname,
                            referenced(c),
                            referenced(c)
                        ))
                        .help(format!(
                            "add the column without REFERENCES, then {}",
                            not_valid_help(rv, &fk, &name)
                        )),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.kind != 'p'
        && t.is_small()
    {
        for h in &mut hits {
            h.severity.get_or_insert(Severity::Warning);
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

/// Whether an added column gets a value in existing rows, which makes PostgreSQL check the
/// foreign keys of the statement's new columns: a DEFAULT, a serial type, a generated column.
fn gets_a_value(col: &pg_query::protobuf::ColumnDef) -> bool {
    let serial = col.type_name.as_ref().is_some_and(|t| {
        matches!(
            ast::base_type(t).as_str(),
            "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
        )
    });
    serial
        || col.raw_default.is_some()
        || ast::column_constraints(col).iter().any(|c| {
            matches!(
                ast::constr_type(c),
                ConstrType::ConstrDefault | ConstrType::ConstrGenerated
            )
        })
}

fn referenced(c: &Constraint) -> String {
    c.pktable
        .as_ref()
        .map(ast::rel_name)
        .unwrap_or_else(|| "the referenced table".into())
}

/// The constraint's name, or PostgreSQL's default: `<table>_<col>[_<col>...]_fkey`.
fn fk_name(c: &Constraint, relname: &str, cols: &[&str]) -> String {
    if c.conname.is_empty() {
        format!("{relname}_{}_fkey", cols.join("_"))
    } else {
        c.conname.clone()
    }
}

fn not_valid_help(rv: &RangeVar, c: &Constraint, name: &str) -> String {
    let mut nv = c.clone();
    nv.conname = name.to_string();
    nv.skip_validation = true;
    nv.initially_valid = false;
    let table = ast::rel_name(rv);
    let add = alter_sql(rv, vec![add_constraint_cmd(nv)])
        .unwrap_or_else(|| format!("ALTER TABLE {table} ADD CONSTRAINT {name} ... NOT VALID"));
    format!(
        "add it NOT VALID: {add}; then, in a later transaction, ALTER TABLE {table} VALIDATE \
         CONSTRAINT {name} (SHARE UPDATE EXCLUSIVE on {table}, ROW SHARE on {}: reads and writes \
         go on)",
        referenced(c)
    )
}

fn partition_help(table: &str, name: &str) -> String {
    format!(
        "before PostgreSQL 18, add the foreign key NOT VALID to each partition of {table} and \
         VALIDATE it there in a later transaction; then ALTER TABLE {table} ADD CONSTRAINT {name} \
         ... adopts the partitions' validated keys"
    )
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_validating_foreign_key() {
        assert_eq!(
            render(
                "LK08",
                "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) \
                 REFERENCES users (id);"
            ),
            "m.sql:1:1: error LK08 add-foreign-key-validating: adding foreign key orders_user_fk \
             (user_id) to orders checks every row of orders against users while holding SHARE \
             ROW EXCLUSIVE on both: writes to both tables wait until the check finishes\n  \
             1 | ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) \
             REFERENCES users (id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: add it NOT VALID: ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY \
             (user_id) REFERENCES users (id) NOT VALID; then, in a later transaction, ALTER TABLE \
             orders VALIDATE CONSTRAINT orders_user_fk (SHARE UPDATE EXCLUSIVE on orders, ROW \
             SHARE on users: reads and writes go on)\n"
        );
    }

    #[test]
    fn an_unnamed_key_gets_postgres_default_name() {
        let out = render(
            "LK08",
            "ALTER TABLE app.items ADD FOREIGN KEY (order_id, line) REFERENCES app.lines ON \
             DELETE CASCADE;",
        );
        assert!(
            out.contains(
                "ALTER TABLE app.items ADD CONSTRAINT items_order_id_line_fkey FOREIGN KEY \
                 (order_id, line) REFERENCES app.lines ON DELETE CASCADE NOT VALID"
            ),
            "{out}"
        );
        assert!(
            out.contains("VALIDATE CONSTRAINT items_order_id_line_fkey"),
            "{out}"
        );
    }

    #[test]
    fn add_column_references_is_flagged_only_when_rows_get_a_value() {
        // NULL in every row: PostgreSQL marks the key valid without a scan.
        assert_eq!(
            render(
                "LK08",
                "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users;"
            ),
            ""
        );
        let out = render(
            "LK08",
            "ALTER TABLE orders ADD COLUMN user_id bigint DEFAULT 1 REFERENCES users (id);",
        );
        assert!(
            out.contains("adding column user_id to orders with a value and REFERENCES users"),
            "{out}"
        );
        assert!(
            out.contains(
                "add the column without REFERENCES, then add it NOT VALID: ALTER TABLE orders ADD \
                 CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT \
                 VALID"
            ),
            "{out}"
        );
        // A value given to another column of the same statement triggers the check too.
        let other = render(
            "LK08",
            "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users, ADD COLUMN n int \
             DEFAULT 0;",
        );
        assert!(other.contains("error LK08"), "{other}");
        let serial = render(
            "LK08",
            "ALTER TABLE orders ADD COLUMN user_id serial REFERENCES users;",
        );
        assert!(serial.contains("error LK08"), "{serial}");
    }

    #[test]
    fn passes_not_valid_new_tables_and_create_table() {
        for sql in [
            "ALTER TABLE orders ADD CONSTRAINT f FOREIGN KEY (user_id) REFERENCES users NOT VALID;",
            "ALTER TABLE orders VALIDATE CONSTRAINT f;",
            "CREATE TABLE orders (id int, user_id int REFERENCES users);",
            "CREATE TABLE orders (id int, user_id int);\nALTER TABLE orders ADD FOREIGN KEY \
             (user_id) REFERENCES users;",
            "ALTER TABLE orders ADD CONSTRAINT c CHECK (id > 0);",
        ] {
            assert_eq!(render("LK08", sql), "", "{sql}");
        }
    }

    #[test]
    fn a_table_created_in_an_earlier_transaction_of_the_file_is_still_new() {
        // Same file: exempt (pgship tracks new tables per file and per transaction).
        let sql = "BEGIN;\nCREATE TABLE orders (user_id int);\nCOMMIT;\n\
                   ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users;";
        assert_eq!(
            render_with(
                "LK08",
                sql,
                Opts {
                    wrap: Wrap::None,
                    ..Default::default()
                }
            ),
            ""
        );
    }

    fn cat(kind: char, rows: f64) -> Catalog {
        let mut c = Catalog::default();
        c.tables.insert(
            "public.orders".into(),
            Table {
                kind,
                bytes: if rows < 100.0 { 8192 } else { 1 << 30 },
                rows,
                ..Default::default()
            },
        );
        c
    }

    #[test]
    fn the_catalog_lowers_small_tables() {
        let out = render_with(
            "LK08",
            "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users;",
            Opts {
                catalog: Some(cat('r', 5.0)),
                ..Default::default()
            },
        );
        assert!(
            out.contains("warning LK08") && out.contains("orders is small: 5 rows"),
            "{out}"
        );
    }

    #[test]
    fn partitioned_tables_before_18_cannot_use_not_valid() {
        let opts = |v| Opts {
            pg_version: v,
            catalog: Some(cat('p', 1e7)),
            ..Default::default()
        };
        let valid = render_with(
            "LK08",
            "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users;",
            opts(17),
        );
        assert!(
            valid.contains("error LK08") && valid.contains("to each partition of orders"),
            "{valid}"
        );
        let not_valid = render_with(
            "LK08",
            "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users NOT VALID;",
            opts(17),
        );
        assert!(not_valid.contains("this statement fails"), "{not_valid}");
        assert_eq!(
            render_with(
                "LK08",
                "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users NOT VALID;",
                opts(18),
            ),
            ""
        );
        let v18 = render_with(
            "LK08",
            "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users;",
            opts(18),
        );
        assert!(v18.contains("add it NOT VALID"), "{v18}");
    }
}
