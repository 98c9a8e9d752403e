//! LK17 other-rewriting-alter: the `ALTER` forms that copy a whole relation under ACCESS
//! EXCLUSIVE and are not covered by LK04/LK05: `SET TABLESPACE` (tables, indexes,
//! materialized views), `SET LOGGED` / `SET UNLOGGED`, `SET ACCESS METHOD` (15+), `ALTER
//! COLUMN ... SET EXPRESSION` on a stored generated column (17+), and `ALTER TABLE/INDEX/
//! MATERIALIZED VIEW ALL IN TABLESPACE ... SET TABLESPACE`.
//!
//! Severity: warning. Reads and writes are blocked for the whole copy, but there is no
//! drop-in online form: the way around it is a new table, a backfill and a swap, or a
//! maintenance window. Relations created earlier in the same file or transaction are exempt
//! (empty). With `--database`, a small table is only info and a partitioned table, which has
//! no storage of its own, is exempt. On a version that lacks the form, the statement fails,
//! which is an error.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableStmt, AlterTableType, ObjectType};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK17",
    name: "other-rewriting-alter",
    severity: Severity::Warning,
    default_on: true,
    summary: "SET TABLESPACE, SET LOGGED/UNLOGGED, SET ACCESS METHOD and SET EXPRESSION copy the \
              whole relation under ACCESS EXCLUSIVE",
    help: "build a new table, backfill it in batches and swap it in, or run this in a \
           maintenance window",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::AlterTableStmt(a) => alter(a, ctx),
        NodeEnum::AlterTableMoveAllStmt(m) => {
            let what = match ObjectType::try_from(m.objtype) {
                Ok(ObjectType::ObjectIndex) => "index",
                Ok(ObjectType::ObjectMatview) => "materialized view",
                _ => "table",
            };
            let nowait = if m.nowait {
                " (NOWAIT only fails fast when a lock is not free)"
            } else {
                ""
            };
            vec![
                Hit::new(format!(
                    "moving every {what} in tablespace {} to {} copies each one under ACCESS \
                 EXCLUSIVE, blocking all reads and writes of each until its copy is done{nowait}",
                    m.orig_tablespacename, m.new_tablespacename
                ))
                .help(
                    "move the relations one at a time in maintenance windows, or create new tables \
                 in the target tablespace and backfill them",
                ),
            ]
        }
        _ => Vec::new(),
    }
}

fn alter(a: &AlterTableStmt, ctx: &Context) -> Vec<Hit> {
    let Some(rv) = a.relation.as_ref() else {
        return Vec::new();
    };
    let kind = match ObjectType::try_from(a.objtype) {
        Ok(ObjectType::ObjectTable) => "table",
        Ok(ObjectType::ObjectIndex) => "index",
        Ok(ObjectType::ObjectMatview) => "materialized view",
        _ => return Vec::new(),
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) || ast::is_temp(rv) {
        return Vec::new();
    }
    let name = ast::rel_name(rv);
    let known = ctx.catalog.as_ref().and_then(|c| c.table(&key));
    if known.is_some_and(|t| t.kind == 'p') {
        // A partitioned table has no storage: only the default for new partitions changes.
        return Vec::new();
    }
    let v = ctx.pg_version;
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        let (what, since) = match t {
            AlterTableType::AtSetTableSpace => (format!("SET TABLESPACE {}", cmd.name), 0),
            AlterTableType::AtSetLogged => ("SET LOGGED".to_string(), 0),
            AlterTableType::AtSetUnLogged => ("SET UNLOGGED".to_string(), 0),
            AlterTableType::AtSetAccessMethod => {
                let am = if cmd.name.is_empty() {
                    "DEFAULT"
                } else {
                    &cmd.name
                };
                (format!("SET ACCESS METHOD {am}"), 15)
            }
            AlterTableType::AtSetExpression => {
                (format!("SET EXPRESSION of column {}", cmd.name), 17)
            }
            _ => continue,
        };
        if v < since {
            hits.push(
                Hit::new(format!(
                    "{} needs PostgreSQL {since} (the target is {v}): this statement fails",
                    first_words(t)
                ))
                .severity(Severity::Error)
                .help("remove it, or raise the target version if the server is newer"),
            );
            continue;
        }
        let stored = if t == AlterTableType::AtSetExpression && v >= 18 {
            format!(
                " (only if {} is STORED: a VIRTUAL column, the default on 18, is not rewritten)",
                cmd.name
            )
        } else {
            String::new()
        };
        let mut hit = Hit::new(format!(
            "{what} rewrites {kind} {name} under ACCESS EXCLUSIVE: every read and write of \
             {name} waits until the copy is done{stored}"
        ));
        if t == AlterTableType::AtSetTableSpace {
            hit = hit.help(if kind == "index" {
                format!(
                    "CREATE INDEX CONCURRENTLY a copy of {name} ... TABLESPACE {}, then DROP INDEX \
                     CONCURRENTLY {name} (a constraint's index: swap it in with ADD CONSTRAINT \
                     ... USING INDEX)",
                    cmd.name
                )
            } else {
                format!(
                    "pg_repack (--tablespace {}) moves it without the long lock; otherwise run \
                     it in a maintenance window",
                    cmd.name
                )
            });
        }
        if t == AlterTableType::AtSetExpression {
            hit = hit.help(
                "add a new column, fill it in batches (a trigger keeps it current), then swap; \
                 or run it in a maintenance window",
            );
        }
        if let Some(t) = known.filter(|t| t.is_small()) {
            hit = hit.severity(Severity::Info).help(format!(
                "{name} is small ({} rows, {} bytes): the copy is short",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
        hits.push(hit);
    }
    hits
}

fn first_words(t: AlterTableType) -> &'static str {
    match t {
        AlterTableType::AtSetAccessMethod => "SET ACCESS METHOD",
        _ => "ALTER COLUMN ... SET EXPRESSION",
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn version(pg_version: u32) -> Opts {
        Opts {
            pg_version,
            ..Default::default()
        }
    }

    #[test]
    fn flags_set_tablespace() {
        assert_eq!(
            render("LK17", "ALTER TABLE orders SET TABLESPACE fast_ssd;"),
            "m.sql:1:1: warning LK17 other-rewriting-alter: SET TABLESPACE fast_ssd rewrites \
             table orders under ACCESS EXCLUSIVE: every read and write of orders waits \
             until the copy is done\n  \
             1 | ALTER TABLE orders SET TABLESPACE fast_ssd\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: pg_repack (--tablespace fast_ssd) moves it without the long lock; otherwise \
             run it in a maintenance window\n"
        );
        let out = render("LK17", "ALTER INDEX orders_pkey SET TABLESPACE fast_ssd;");
        assert!(
            out.contains("rewrites index orders_pkey")
                && out.contains("CREATE INDEX CONCURRENTLY a copy of orders_pkey"),
            "{out}"
        );
        let out = render(
            "LK17",
            "ALTER MATERIALIZED VIEW app.mv SET TABLESPACE fast_ssd;",
        );
        assert!(out.contains("rewrites materialized view app.mv"), "{out}");
    }

    #[test]
    fn flags_logged_unlogged_and_access_method() {
        let out = render("LK17", "ALTER TABLE t SET UNLOGGED, SET LOGGED;");
        assert!(
            out.contains("SET UNLOGGED rewrites table t") && out.contains("SET LOGGED rewrites"),
            "{out}"
        );
        let out = render("LK17", "ALTER TABLE t SET ACCESS METHOD columnar;");
        assert!(out.contains("SET ACCESS METHOD columnar rewrites"), "{out}");
    }

    #[test]
    fn set_access_method_needs_15() {
        let sql = "ALTER TABLE t SET ACCESS METHOD heap;";
        let out = render_with("LK17", sql, version(14));
        assert!(
            out.contains("error LK17") && out.contains("needs PostgreSQL 15 (the target is 14)"),
            "{out}"
        );
        assert!(render_with("LK17", sql, version(15)).contains("warning LK17"));
    }

    #[test]
    fn set_expression_needs_17_and_depends_on_the_kind_on_18() {
        let sql = "ALTER TABLE t ALTER COLUMN total SET EXPRESSION AS (price * qty);";
        let out = render_with("LK17", sql, version(16));
        assert!(
            out.contains("error LK17") && out.contains("needs PostgreSQL 17"),
            "{out}"
        );
        let out = render_with("LK17", sql, version(17));
        assert!(
            out.contains("warning LK17")
                && out.contains("SET EXPRESSION of column total rewrites table t")
                && out.contains("help: add a new column"),
            "{out}"
        );
        let out = render_with("LK17", sql, version(18));
        assert!(out.contains("only if total is STORED"), "{out}");
    }

    #[test]
    fn flags_all_in_tablespace() {
        let out = render(
            "LK17",
            "ALTER TABLE ALL IN TABLESPACE old SET TABLESPACE new NOWAIT;",
        );
        assert!(
            out.contains("moving every table in tablespace old to new") && out.contains("NOWAIT"),
            "{out}"
        );
        let out = render(
            "LK17",
            "ALTER INDEX ALL IN TABLESPACE old SET TABLESPACE new;",
        );
        assert!(out.contains("moving every index"), "{out}");
    }

    #[test]
    fn passes_new_tables_other_alters_and_partitioned_tables() {
        for sql in [
            "CREATE TABLE t (id int);\nALTER TABLE t SET TABLESPACE fast_ssd;",
            "CREATE UNLOGGED TABLE t (id int);\nALTER TABLE t SET LOGGED;",
            "CREATE TEMP TABLE t (id int);\nALTER TABLE t SET TABLESPACE x;",
            "ALTER TABLE t SET (fillfactor = 70);",
            "ALTER TABLE t ALTER COLUMN c DROP EXPRESSION;",
            "ALTER SEQUENCE s SET LOGGED;",
        ] {
            assert_eq!(render("LK17", sql), "", "{sql}");
        }
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.events".into(),
            Table {
                kind: 'p',
                ..Default::default()
            },
        );
        let opts = Opts {
            catalog: Some(cat),
            ..Default::default()
        };
        assert_eq!(
            render_with("LK17", "ALTER TABLE events SET TABLESPACE fast_ssd;", opts),
            ""
        );
    }

    #[test]
    fn the_catalog_lowers_small_tables() {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.flags".into(),
            Table {
                kind: 'r',
                bytes: 16384,
                rows: 12.0,
                ..Default::default()
            },
        );
        let opts = Opts {
            catalog: Some(cat),
            ..Default::default()
        };
        let out = render_with("LK17", "ALTER TABLE flags SET UNLOGGED;", opts);
        assert!(
            out.contains("info LK17") && out.contains("12 rows"),
            "{out}"
        );
    }
}
