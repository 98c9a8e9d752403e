//! LK13 rewrite-maintenance: `VACUUM FULL` (also `VACUUM (FULL)`, `VACUUM (FULL true)`) and
//! `CLUSTER`, with or without a table. Both copy the table into new files under ACCESS
//! EXCLUSIVE: no read or write of it gets through until the copy and its index rebuilds are
//! done. Without a table they do that to every table of the database (`VACUUM FULL`) or every
//! table clustered before (`CLUSTER`), one after the other.
//!
//! Severity: error, on every version (squawk's `prefer-repack` stays silent before 19; the
//! lock is the same there). It is an outage for the table's users, and there is an online
//! alternative: the pg_repack extension, or `REPACK (CONCURRENTLY)` from PostgreSQL 19. Tables
//! created earlier in the same file or transaction are exempt; with `--database`, a statement
//! whose tables are all small is a warning.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, RangeVar};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK13",
    name: "rewrite-maintenance",
    severity: Severity::Error,
    default_on: true,
    summary: "VACUUM FULL and CLUSTER rewrite the table with reads and writes blocked",
    help: "use pg_repack (online) or a maintenance window; on PostgreSQL 19+, REPACK \
           (CONCURRENTLY)",
    check,
};

/// Whether the boolean option `name` is on, as PostgreSQL's `defGetBoolean` reads it.
fn option_on(options: &[Node], name: &str) -> bool {
    let mut on = false;
    for o in options {
        let Some(NodeEnum::DefElem(d)) = o.node.as_ref() else {
            continue;
        };
        if d.defname != name {
            continue;
        }
        on = match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
            None => true,
            Some(NodeEnum::Integer(i)) => i.ival != 0,
            Some(NodeEnum::Boolean(b)) => b.boolval,
            Some(NodeEnum::String(s)) => {
                matches!(s.sval.to_ascii_lowercase().as_str(), "true" | "on")
            }
            Some(_) => false,
        };
    }
    on
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let (what, rels): (&str, Vec<&RangeVar>) = match stmt.node {
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd && option_on(&v.options, "full") => (
            "VACUUM FULL",
            v.rels
                .iter()
                .filter_map(|r| match r.node.as_ref()? {
                    NodeEnum::VacuumRelation(vr) => vr.relation.as_ref(),
                    _ => None,
                })
                .collect(),
        ),
        NodeEnum::ClusterStmt(c) => ("CLUSTER", c.relation.iter().collect()),
        _ => return Vec::new(),
    };
    let v = ctx.pg_version;
    let help = if v >= 19 {
        let order = if what == "CLUSTER" {
            "; add USING INDEX to keep the index order"
        } else {
            ""
        };
        let target = match rels.as_slice() {
            [] => "REPACK (CONCURRENTLY) on each table that needs it".to_string(),
            [one] => format!("REPACK (CONCURRENTLY) {}", ast::rel_name(one)),
            many => format!(
                "REPACK (CONCURRENTLY) on each of {}",
                many.iter()
                    .map(|r| ast::rel_name(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!("use {target} (PostgreSQL 19+: reads and writes go on){order}, or pg_repack")
    } else {
        format!(
            "rewrite it online with the pg_repack extension (pg_repack --table ...), or run this \
             in a maintenance window; PostgreSQL {v} has no online form (REPACK (CONCURRENTLY) \
             arrives in 19)"
        )
    };
    if rels.is_empty() {
        let scope = if what == "CLUSTER" {
            "every table that was clustered before"
        } else {
            "every table in the database"
        };
        return vec![
            Hit::new(format!(
                "{what} without a table rewrites {scope}, one after the other, each under ACCESS \
                 EXCLUSIVE: reads and writes of each table are blocked while it is copied"
            ))
            .help(help),
        ];
    }
    let old: Vec<&&RangeVar> = rels
        .iter()
        .filter(|r| !ctx.is_new_table(&ast::rel_key(r)) && !ast::is_temp(r))
        .collect();
    if old.is_empty() {
        return Vec::new();
    }
    let names = old
        .iter()
        .map(|r| ast::rel_name(r))
        .collect::<Vec<_>>()
        .join(", ");
    let mut hit = Hit::new(format!(
        "{what} {names} rewrites {} and {} indexes under ACCESS EXCLUSIVE: every read and write \
         waits until the copy is done",
        if old.len() == 1 {
            "the table"
        } else {
            "each table"
        },
        if old.len() == 1 { "its" } else { "their" },
    ))
    .help(help);
    if let Some(cat) = ctx.catalog.as_ref() {
        let tables: Vec<_> = old.iter().map(|r| cat.table(&ast::rel_key(r))).collect();
        if tables.iter().all(|t| t.is_some_and(|t| t.is_small())) {
            let rows: f64 = tables.iter().flatten().map(|t| t.rows.max(0.0)).sum();
            hit = hit.severity(Severity::Warning);
            hit.message
                .push_str(&format!(" (small: {} rows in all)", rows as i64));
        }
    }
    vec![hit]
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_vacuum_full() {
        assert_eq!(
            render("LK13", "VACUUM FULL orders;"),
            "m.sql:1:1: error LK13 rewrite-maintenance: VACUUM FULL orders rewrites the table and \
             its indexes under ACCESS EXCLUSIVE: every read and write waits until the copy is \
             done\n  \
             1 | VACUUM FULL orders\n    \
             | ^^^^^^^^^^^^^^^^^^\n  \
             help: rewrite it online with the pg_repack extension (pg_repack --table ...), or run \
             this in a maintenance window; PostgreSQL 17 has no online form (REPACK \
             (CONCURRENTLY) arrives in 19)\n"
        );
    }

    #[test]
    fn flags_every_full_and_cluster_form() {
        for (sql, want) in [
            (
                "VACUUM (FULL, ANALYZE) a, b;",
                "VACUUM FULL a, b rewrites each table and their",
            ),
            ("VACUUM (FULL true) a;", "VACUUM FULL a rewrites"),
            ("VACUUM (FULL 1) a;", "VACUUM FULL a rewrites"),
            (
                "VACUUM FULL;",
                "VACUUM FULL without a table rewrites every table in the database",
            ),
            (
                "CLUSTER orders USING orders_pkey;",
                "CLUSTER orders rewrites the table",
            ),
            (
                "CLUSTER (VERBOSE) app.orders;",
                "CLUSTER app.orders rewrites",
            ),
            ("CLUSTER orders_pkey ON orders;", "CLUSTER orders rewrites"),
            (
                "CLUSTER;",
                "CLUSTER without a table rewrites every table that was clustered before",
            ),
        ] {
            let out = render("LK13", sql);
            assert!(
                out.contains("error LK13") && out.contains(want),
                "{sql}: {out}"
            );
        }
    }

    #[test]
    fn passes_plain_vacuum_analyze_and_new_tables() {
        for sql in [
            "VACUUM orders;",
            "VACUUM (ANALYZE) orders;",
            "VACUUM (FULL false) orders;",
            "VACUUM (FULL off, VERBOSE) orders;",
            "ANALYZE orders;",
            "ALTER TABLE orders CLUSTER ON orders_pkey;",
            "CREATE TABLE t (id int);\nVACUUM FULL t;",
            "CREATE TABLE t (id int);\nCLUSTER t USING t_pkey;",
        ] {
            assert_eq!(render("LK13", sql), "", "{sql}");
        }
        // Only the tables that are not new are named.
        let mixed = render("LK13", "CREATE TABLE t (id int);\nVACUUM FULL t, orders;");
        assert!(
            mixed.contains("VACUUM FULL orders rewrites the table"),
            "{mixed}"
        );
    }

    #[test]
    fn the_advice_changes_on_19() {
        let out = render_with(
            "LK13",
            "VACUUM FULL orders;",
            Opts {
                pg_version: 19,
                ..Default::default()
            },
        );
        assert!(out.contains("error LK13"), "{out}");
        assert!(
            out.contains("use REPACK (CONCURRENTLY) orders (PostgreSQL 19+"),
            "{out}"
        );
        let all = render_with(
            "LK13",
            "CLUSTER;",
            Opts {
                pg_version: 19,
                ..Default::default()
            },
        );
        assert!(
            all.contains("use REPACK (CONCURRENTLY) on each table that needs it"),
            "{all}"
        );
        assert!(
            all.contains("add USING INDEX to keep the index order"),
            "{all}"
        );
    }

    #[test]
    fn the_catalog_lowers_small_tables() {
        let mut cat = Catalog::default();
        for (name, rows) in [("small", 5.0), ("big", 1e8)] {
            cat.tables.insert(
                format!("public.{name}"),
                Table {
                    kind: 'r',
                    bytes: if rows < 10.0 { 8192 } else { 1 << 34 },
                    rows,
                    ..Default::default()
                },
            );
        }
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let small = render_with("LK13", "VACUUM FULL small;", opts());
        assert!(
            small.contains("warning LK13") && small.contains("5 rows"),
            "{small}"
        );
        let both = render_with("LK13", "VACUUM FULL small, big;", opts());
        assert!(both.contains("error LK13"), "{both}");
    }
}
