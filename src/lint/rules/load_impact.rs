//! LK25 load-impact (opt-in): statements that take no blocking lock but load the server or
//! change query plans: concurrent index builds (`CREATE INDEX CONCURRENTLY`, `REINDEX ...
//! CONCURRENTLY`), index drops (`DROP INDEX`, and with `--database` dropping a primary key,
//! unique or exclusion constraint, or an indexed column), and column type changes, which
//! discard the column's planner statistics.
//!
//! Severity: info. Nothing here is wrong, and nothing waits on a lock for long; it is
//! advice for scheduling (off-peak, watch IO and replication lag) and for checking plans
//! (is the index used? run ANALYZE after a type change). Tables created earlier in the same
//! file or transaction are exempt, and so (with `--database`) are small tables and invalid
//! indexes.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, RangeVar};

use super::require_lock_timeout::option_true;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK25",
    name: "load-impact",
    severity: Severity::Info,
    default_on: false,
    summary: "concurrent index builds load the server, index drops and type changes can make \
              query plans regress",
    help: "schedule it off-peak, watch IO and replication lag, and check the plans of the queries \
           on the table afterwards",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::IndexStmt(i) if i.concurrent => {
            let Some(rv) = i.relation.as_ref() else {
                return Vec::new();
            };
            let name = if i.idxname.is_empty() {
                "an index".to_string()
            } else {
                format!("index {}", i.idxname)
            };
            build(ctx, rv, &format!("building {name} on"))
        }
        NodeEnum::ReindexStmt(r) if option_true(&r.params, "concurrently") => {
            match r.relation.as_ref() {
                Some(rv) => build(ctx, rv, "rebuilding"),
                None => vec![Hit::new(format!(
                    "rebuilding every index in {} concurrently reads every table and writes every \
                     index again: heavy IO, CPU and WAL (replicas replay it) for a long time",
                    r.name
                ))],
            }
        }
        NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectIndex as i32 => d
            .objects
            .iter()
            .filter_map(|o| match o.node.as_ref()? {
                NodeEnum::List(l) => {
                    let parts = ast::strings(&l.items);
                    let (schema, name) = match parts.as_slice() {
                        [n] => ("", *n),
                        [s, n] => (*s, *n),
                        _ => return None,
                    };
                    let invalid = ctx
                        .catalog
                        .as_ref()
                        .is_some_and(|c| c.invalid_indexes.contains(&ast::key(schema, name)));
                    (!invalid).then(|| {
                        index_drop(
                            &format!("dropping index {}", parts.join(".")),
                            &parts.join("."),
                        )
                    })
                }
                _ => None,
            })
            .collect(),
        NodeEnum::AlterTableStmt(_) => alter(stmt, ctx),
        _ => Vec::new(),
    }
}

/// Whether the table is new, temporary, or (per the catalog) small.
fn light(ctx: &Context, rv: &RangeVar) -> bool {
    let key = ast::rel_key(rv);
    ctx.is_new_table(&key)
        || ast::is_temp(rv)
        || ctx
            .catalog
            .as_ref()
            .and_then(|c| c.table(&key))
            .is_some_and(|t| t.is_small())
}

fn build(ctx: &Context, rv: &RangeVar, what: &str) -> Vec<Hit> {
    if light(ctx, rv) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let size = ctx
        .catalog
        .as_ref()
        .and_then(|c| c.table(&ast::rel_key(rv)))
        .map(|t| format!(" ({} MB)", t.bytes / (1024 * 1024)))
        .unwrap_or_default();
    vec![
        Hit::new(format!(
            "{what} {table}{size} concurrently scans the table twice and writes the whole index: \
             IO, CPU and WAL (replicas replay it) for as long as the build takes"
        ))
        .help(
            "run it off-peak and watch IO and replication lag; a larger maintenance_work_mem \
             speeds it up",
        ),
    ]
}

fn index_drop(what: &str, index: &str) -> Hit {
    Hit::new(format!(
        "{what}: queries that used the index switch to other plans, which may be much slower"
    ))
    .help(format!(
        "check that pg_stat_user_indexes.idx_scan for {index} stays at 0 on the primary and the \
         replicas, and keep the definition (pg_indexes.indexdef) to recreate it quickly"
    ))
}

fn alter(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) || ast::is_temp(rv) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let cat = ctx.catalog.as_ref();
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        let name = &cmd.name;
        match t {
            AlterTableType::AtAlterColumnType => hits.push(
                Hit::new(format!(
                    "changing the type of {table}.{name} discards its planner statistics: plans \
                     that filter, join or group on it may regress until {table} is analyzed"
                ))
                .help(format!(
                    "run ANALYZE {table} ({name}) right after the change"
                )),
            ),
            AlterTableType::AtDropConstraint
                if cat
                    .and_then(|c| c.constraint(&key, name))
                    .is_some_and(|c| matches!(c.kind, 'p' | 'u' | 'x')) =>
            {
                hits.push(index_drop(
                    &format!("dropping constraint {name} drops its index"),
                    name,
                ));
            }
            AlterTableType::AtDropColumn
                if cat
                    .and_then(|c| c.table(&key))
                    .and_then(|t| t.columns.get(name))
                    .is_some_and(|c| c.indexed) =>
            {
                hits.push(index_drop(
                    &format!("dropping {table}.{name} drops the indexes that use it"),
                    &format!("the indexes on {table}.{name}"),
                ));
            }
            _ => {}
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Column, Constraint, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn catalog() -> Opts {
        let mut cat = Catalog::default();
        let mut orders = Table {
            kind: 'r',
            bytes: 512 * 1024 * 1024,
            rows: 5e6,
            ..Default::default()
        };
        orders.columns.insert(
            "email".into(),
            Column {
                data_type: "text".into(),
                not_null: false,
                indexed: true,
            },
        );
        orders.columns.insert(
            "note".into(),
            Column {
                data_type: "text".into(),
                not_null: false,
                indexed: false,
            },
        );
        cat.tables.insert("public.orders".into(), orders);
        cat.tables.insert(
            "public.flags".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 3.0,
                ..Default::default()
            },
        );
        for (name, kind) in [("orders_email_key", 'u'), ("orders_qty_check", 'c')] {
            cat.constraints.insert(
                ("public.orders".into(), name.into()),
                Constraint {
                    kind,
                    validated: true,
                    definition: String::new(),
                },
            );
        }
        cat.invalid_indexes
            .insert("public.orders_broken_idx".into());
        Opts {
            catalog: Some(cat),
            ..Default::default()
        }
    }

    #[test]
    fn flags_a_concurrent_build() {
        assert_eq!(
            render(
                "LK25",
                "CREATE INDEX CONCURRENTLY orders_at_idx ON orders (at);"
            ),
            "m.sql:1:1: info LK25 load-impact: building index orders_at_idx on orders \
             concurrently scans the table twice and writes the whole index: IO, CPU and WAL \
             (replicas replay it) for as long as the build takes\n  \
             1 | CREATE INDEX CONCURRENTLY orders_at_idx ON orders (at)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: run it off-peak and watch IO and replication lag; a larger \
             maintenance_work_mem speeds it up\n"
        );
        let out = render("LK25", "REINDEX TABLE CONCURRENTLY app.orders;");
        assert!(out.contains("rebuilding app.orders concurrently"), "{out}");
        let out = render("LK25", "REINDEX SCHEMA CONCURRENTLY app;");
        assert!(out.contains("every index in app"), "{out}");
    }

    #[test]
    fn flags_index_drops_and_type_changes() {
        let out = render(
            "LK25",
            "DROP INDEX CONCURRENTLY IF EXISTS app.orders_at_idx;",
        );
        assert!(
            out.contains("dropping index app.orders_at_idx: queries that used the index")
                && out.contains("idx_scan for app.orders_at_idx"),
            "{out}"
        );
        let out = render("LK25", "ALTER TABLE orders ALTER COLUMN qty TYPE bigint;");
        assert!(
            out.contains("discards its planner statistics") && out.contains("ANALYZE orders (qty)"),
            "{out}"
        );
    }

    #[test]
    fn passes_plain_builds_new_tables_and_other_statements() {
        for sql in [
            // LK01's business.
            "CREATE INDEX i ON orders (at);",
            "REINDEX TABLE orders;",
            "CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY i ON t (id);\n\
             ALTER TABLE t ALTER COLUMN id TYPE bigint;",
            "ALTER TABLE orders ADD COLUMN note text;",
            "DROP TABLE orders;",
            // Without the catalog a dropped constraint or column is not known to be indexed.
            "ALTER TABLE orders DROP CONSTRAINT orders_email_key, DROP COLUMN email;",
        ] {
            assert_eq!(render("LK25", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_finds_dropped_indexes_and_skips_small_tables() {
        let out = render_with(
            "LK25",
            "ALTER TABLE orders DROP CONSTRAINT orders_email_key, DROP CONSTRAINT \
             orders_qty_check, DROP COLUMN email, DROP COLUMN note;",
            catalog(),
        );
        assert!(
            out.contains("dropping constraint orders_email_key drops its index")
                && out.contains("dropping orders.email drops the indexes that use it")
                && out.matches("info LK25").count() == 2,
            "{out}"
        );
        let out = render_with(
            "LK25",
            "CREATE INDEX CONCURRENTLY i ON orders (at);",
            catalog(),
        );
        assert!(out.contains("on orders (512 MB) concurrently"), "{out}");
        assert_eq!(
            render_with(
                "LK25",
                "CREATE INDEX CONCURRENTLY i ON flags (at);",
                catalog()
            ),
            ""
        );
        assert_eq!(
            render_with(
                "LK25",
                "DROP INDEX CONCURRENTLY orders_broken_idx;",
                catalog()
            ),
            ""
        );
    }
}
