//! RB09 type-and-naming-style: type choices that are hard to change later, in `CREATE TABLE`,
//! `ALTER TABLE ... ADD COLUMN` and `ALTER COLUMN ... TYPE`:
//! - `integer` / `smallint` keys (primary key or identity columns; with `--database`, also the
//!   existing columns of an `ADD PRIMARY KEY`): 32-bit keys run out at 2,147,483,647 and
//!   widening them later rewrites the table and every referencing one;
//! - `serial` / `bigserial` / `smallserial` instead of an identity column;
//! - `varchar(n)`: changing the limit later takes an ACCESS EXCLUSIVE lock (and shrinking it
//!   scans or rewrites the table), where `text` with a CHECK can be changed online;
//! - `timestamp` without time zone;
//! - `char(n)` (`character(n)`, blank-padded);
//! - and non-unique indexes on more than three columns, which rarely help more than their first
//!   columns do.
//!
//! Column alignment padding and naming conventions (Atlas NM1xx) are not checked: pgship has
//! no naming convention to check against.
//!
//! Severity: info (opt-in). Style advice, not a safety hazard: nothing fails or locks now.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ColumnDef, ConstrType, Node, RangeVar, TypeName};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "RB09",
    name: "type-and-naming-style",
    severity: Severity::Info,
    default_on: false,
    summary: "a type that is hard to change later (int keys, serial, varchar(n), timestamp, \
              char(n)) or a wide non-unique index",
    help: "bigint identity keys, text (with a CHECK for a length limit), timestamptz, and \
           indexes on at most three columns",
    check,
};

/// A column as declared or retyped: table, column, type, and whether it is a key.
struct Col<'a> {
    table: String,
    name: &'a str,
    ty: &'a TypeName,
    key: bool,
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::CreateStmt(c) => {
            let Some(rv) = c.relation.as_ref().filter(|rv| !ast::is_temp(rv)) else {
                return Vec::new();
            };
            let pk = table_pk_columns(&c.table_elts, &c.constraints);
            column_defs(&c.table_elts)
                .filter_map(|d| col(rv, d, &d.colname, pk.contains(&d.colname.as_str())))
                .flat_map(|c| column_hits(&c))
                .collect()
        }
        NodeEnum::AlterTableStmt(_) => alter_table(stmt.node, ctx),
        NodeEnum::IndexStmt(i) if !i.unique && i.index_params.len() > 3 => {
            let table = i.relation.as_ref().map(ast::rel_name).unwrap_or_default();
            let name = if i.idxname.is_empty() {
                format!("this index on {table}")
            } else {
                format!("index {}", i.idxname)
            };
            vec![
                Hit::new(format!(
                    "{name} is a non-unique index on {} columns: queries rarely use more than its \
                 first columns, and every write pays for all of them",
                    i.index_params.len()
                ))
                .help(
                    "index the two or three most selective columns (or move the rest to INCLUDE \
                 for an index-only scan)",
                ),
            ]
        }
        _ => Vec::new(),
    }
}

fn alter_table(node: &NodeEnum, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(node) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        match t {
            AlterTableType::AtAddColumn => {
                if let Some(d) = ast::column_def(cmd) {
                    hits.extend(
                        col(rv, d, &d.colname, is_pk(d))
                            .map(|c| column_hits(&c))
                            .unwrap_or_default(),
                    );
                }
            }
            AlterTableType::AtAlterColumnType => {
                if let Some(d) = ast::column_def(cmd) {
                    hits.extend(
                        col(rv, d, &cmd.name, false)
                            .map(|c| column_hits(&c))
                            .unwrap_or_default(),
                    );
                }
            }
            AlterTableType::AtAddConstraint => {
                hits.extend(existing_int_keys(ctx, rv, ast::constraint_def(cmd)));
            }
            _ => {}
        }
    }
    hits
}

/// `ADD PRIMARY KEY (cols)` over existing 32-bit columns, when the catalog knows their types.
fn existing_int_keys(
    ctx: &Context,
    rv: &RangeVar,
    c: Option<&pg_query::protobuf::Constraint>,
) -> Vec<Hit> {
    let Some(c) = c.filter(|c| ast::constr_type(c) == ConstrType::ConstrPrimary) else {
        return Vec::new();
    };
    let Some(t) = ctx
        .catalog
        .as_ref()
        .and_then(|cat| cat.table(&ast::rel_key(rv)))
    else {
        return Vec::new();
    };
    let table = ast::rel_name(rv);
    ast::strings(&c.keys)
        .into_iter()
        .filter_map(|k| {
            let ty = &t.columns.get(k)?.data_type;
            matches!(ty.as_str(), "integer" | "smallint").then(|| int_key_hit(&table, k, ty))
        })
        .collect()
}

fn column_defs(elts: &[Node]) -> impl Iterator<Item = &ColumnDef> {
    elts.iter().filter_map(|n| match n.node.as_ref()? {
        NodeEnum::ColumnDef(d) => Some(d.as_ref()),
        _ => None,
    })
}

/// Columns of a table-level `PRIMARY KEY (...)`.
fn table_pk_columns<'a>(elts: &'a [Node], constraints: &'a [Node]) -> Vec<&'a str> {
    elts.iter()
        .chain(constraints)
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::Constraint(c) if ast::constr_type(c) == ConstrType::ConstrPrimary => {
                Some(ast::strings(&c.keys))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

fn is_pk(d: &ColumnDef) -> bool {
    ast::column_constraints(d)
        .iter()
        .any(|c| ast::constr_type(c) == ConstrType::ConstrPrimary)
}

fn is_identity(d: &ColumnDef) -> bool {
    !d.identity.is_empty()
        || ast::column_constraints(d)
            .iter()
            .any(|c| ast::constr_type(c) == ConstrType::ConstrIdentity)
}

fn col<'a>(rv: &RangeVar, d: &'a ColumnDef, name: &'a str, pk: bool) -> Option<Col<'a>> {
    Some(Col {
        table: ast::rel_name(rv),
        name,
        ty: d.type_name.as_ref()?,
        key: pk || is_pk(d) || is_identity(d),
    })
}

fn column_hits(c: &Col) -> Vec<Hit> {
    let names = ast::strings(&c.ty.names);
    let raw = names.last().copied().unwrap_or_default();
    let base = ast::base_type(c.ty);
    let shown = ast::type_name(c.ty);
    let column = format!("{}.{}", c.table, c.name);
    let mut hits = Vec::new();
    match raw {
        "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2" => {
            let narrow = !matches!(raw, "bigserial" | "serial8");
            hits.push(
                Hit::new(format!(
                    "column {column} is {raw}: a sequence default that is not part of the column \
                     (permissions, copying the table and resetting it need extra steps){}",
                    if narrow {
                        ", and 32-bit or narrower"
                    } else {
                        ""
                    }
                ))
                .help(format!(
                    "{} bigint GENERATED ALWAYS AS IDENTITY (or BY DEFAULT)",
                    c.name
                )),
            );
            return hits;
        }
        _ => {}
    }
    if c.key && matches!(base.as_str(), "integer" | "smallint") && c.ty.array_bounds.is_empty() {
        hits.push(int_key_hit(&c.table, c.name, &base));
    }
    if base == "character varying" && !c.ty.typmods.is_empty() {
        hits.push(
            Hit::new(format!(
                "column {column} is {shown}: changing the limit later takes an ACCESS EXCLUSIVE \
                 lock, and lowering it scans or rewrites the table"
            ))
            .help(format!(
                "{} text with CHECK (char_length({}) <= n), which can be replaced NOT VALID and \
                 validated without blocking",
                c.name, c.name
            )),
        );
    }
    if base == "timestamp without time zone" {
        hits.push(
            Hit::new(format!(
                "column {column} is timestamp without time zone: its values mean nothing without \
                 knowing the writer's time zone, and converting it later rewrites the table"
            ))
            .help(format!("{} timestamptz (timestamp with time zone)", c.name)),
        );
    }
    if names.as_slice() == ["pg_catalog", "bpchar"] {
        hits.push(
            Hit::new(format!(
                "column {column} is {shown}: it pads values with spaces, compares ignoring them, \
                 and is no faster than text"
            ))
            .help(format!(
                "{} text (with a CHECK on char_length if the length matters)",
                c.name
            )),
        );
    }
    hits
}

fn int_key_hit(table: &str, column: &str, ty: &str) -> Hit {
    Hit::new(format!(
        "key column {table}.{column} is {ty}: 32-bit keys run out (at 2,147,483,647 for integer), \
         and widening them later rewrites the table and every table that references it"
    ))
    .help(format!("{column} bigint"))
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Column, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_serial_primary_key() {
        assert_eq!(
            render("RB09", "CREATE TABLE orders (id serial PRIMARY KEY);"),
            "m.sql:1:1: info RB09 type-and-naming-style: column orders.id is serial: a sequence \
             default that is not part of the column (permissions, copying the table and \
             resetting it need extra steps), and 32-bit or narrower\n  \
             1 | CREATE TABLE orders (id serial PRIMARY KEY)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: id bigint GENERATED ALWAYS AS IDENTITY (or BY DEFAULT)\n"
        );
    }

    #[test]
    fn flags_int_keys_but_not_other_int_columns() {
        for sql in [
            "CREATE TABLE t (id int PRIMARY KEY);",
            "CREATE TABLE t (id integer GENERATED ALWAYS AS IDENTITY);",
            "CREATE TABLE t (a smallint, b int, PRIMARY KEY (a, b));",
            "ALTER TABLE t ADD COLUMN id int4 PRIMARY KEY;",
        ] {
            let out = render("RB09", sql);
            assert!(out.contains("key column t."), "{sql}: {out}");
        }
        let two = render(
            "RB09",
            "CREATE TABLE t (a smallint, b int, PRIMARY KEY (a, b));",
        );
        assert_eq!(two.matches("info RB09").count(), 2, "{two}");
        for sql in [
            "CREATE TABLE t (id bigint PRIMARY KEY, qty int, n smallint);",
            "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY);",
            "CREATE TABLE t (ids int[] PRIMARY KEY);",
            "CREATE TABLE t (id uuid PRIMARY KEY, note text, at timestamptz);",
            "CREATE TEMP TABLE t (id serial, at timestamp);",
        ] {
            assert_eq!(render("RB09", sql), "", "{sql}");
        }
    }

    #[test]
    fn flags_serial_varchar_timestamp_and_char() {
        for (sql, what) in [
            ("ALTER TABLE t ADD COLUMN n bigserial;", "is bigserial"),
            ("CREATE TABLE t (n smallserial);", "32-bit or narrower"),
            (
                "CREATE TABLE t (email varchar(255));",
                "character varying(255)",
            ),
            (
                "ALTER TABLE t ALTER COLUMN email TYPE character varying(100);",
                "t.email",
            ),
            (
                "CREATE TABLE t (at timestamp);",
                "timestamp without time zone",
            ),
            (
                "CREATE TABLE t (at timestamp(3) without time zone);",
                "timestamptz",
            ),
            ("CREATE TABLE t (code char(3));", "character(3)"),
            ("CREATE TABLE t (flag character);", "pads values"),
        ] {
            let out = render("RB09", sql);
            assert!(out.contains("info RB09"), "{sql}: {out}");
            assert!(out.contains(what), "{sql}: {out}");
        }
        let serial = render("RB09", "CREATE TABLE t (n bigserial);");
        assert!(!serial.contains("32-bit"), "{serial}");
    }

    #[test]
    fn passes_text_timestamptz_plain_varchar_and_internal_char() {
        for sql in [
            "CREATE TABLE t (email text, at timestamptz, name varchar, c \"char\");",
            "ALTER TABLE t ADD COLUMN at timestamp with time zone;",
            "ALTER TABLE t ALTER COLUMN email TYPE text;",
        ] {
            assert_eq!(render("RB09", sql), "", "{sql}");
        }
    }

    #[test]
    fn flags_wide_non_unique_indexes() {
        let out = render("RB09", "CREATE INDEX i ON t (a, b, c, d);");
        assert!(
            out.contains("index i is a non-unique index on 4 columns"),
            "{out}"
        );
        for sql in [
            "CREATE INDEX i ON t (a, b, c);",
            "CREATE UNIQUE INDEX i ON t (a, b, c, d);",
            "CREATE INDEX i ON t (a, b) INCLUDE (c, d, e);",
        ] {
            assert_eq!(render("RB09", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_tells_the_type_of_existing_key_columns() {
        let mut cat = Catalog::default();
        let mut table = Table {
            kind: 'r',
            ..Default::default()
        };
        for (name, ty) in [("id", "integer"), ("uid", "bigint")] {
            table.columns.insert(
                name.into(),
                Column {
                    data_type: ty.into(),
                    ..Default::default()
                },
            );
        }
        cat.tables.insert("public.t".into(), table);
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let int = render_with("RB09", "ALTER TABLE t ADD PRIMARY KEY (id);", opts());
        assert!(int.contains("key column t.id is integer"), "{int}");
        assert_eq!(
            render_with("RB09", "ALTER TABLE t ADD PRIMARY KEY (uid);", opts()),
            ""
        );
        assert_eq!(render("RB09", "ALTER TABLE t ADD PRIMARY KEY (id);"), "");
    }
}
