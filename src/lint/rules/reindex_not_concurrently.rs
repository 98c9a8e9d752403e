//! LK03 reindex-not-concurrently: `REINDEX {INDEX | TABLE | SCHEMA | DATABASE | SYSTEM}`
//! without `CONCURRENTLY`, including the option turned off (`REINDEX (CONCURRENTLY false)`,
//! `off`, `0`).
//!
//! A plain REINDEX holds ACCESS EXCLUSIVE on each index it rebuilds and SHARE on its table:
//! writes wait, and so does every query that has to be planned against the table, because the
//! planner locks all of a table's indexes (checked on PostgreSQL 15: a `SELECT` on a column
//! with no index waits behind `REINDEX INDEX`).
//!
//! Severity: error, a lock hazard with a safe alternative: `REINDEX ... CONCURRENTLY` (12+),
//! or on older versions a replacement index built with `CREATE INDEX CONCURRENTLY`.
//! `REINDEX SYSTEM` has no concurrent form, so it is a warning. A table created earlier in the
//! same file or transaction is exempt; with `--database`, a small table is a warning, and a
//! partitioned table before 14 (no REINDEX CONCURRENTLY on partitioned tables) gets the
//! per-partition advice.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, ReindexObjectType};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK03",
    name: "reindex-not-concurrently",
    severity: Severity::Error,
    default_on: true,
    summary: "REINDEX without CONCURRENTLY blocks writes and most reads of the table until the \
              rebuild finishes",
    help: "use REINDEX ... CONCURRENTLY (PostgreSQL 12+, outside a transaction; pgship's engine \
           runs it alone)",
    check,
};

/// Whether the boolean option `name` is on in a `(name [value], ...)` list, as PostgreSQL's
/// `defGetBoolean` reads it: no value, `true`, `on` or `1` is on.
fn option_on(params: &[Node], name: &str) -> bool {
    let mut on = false;
    for p in params {
        let Some(NodeEnum::DefElem(d)) = p.node.as_ref() else {
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
    let NodeEnum::ReindexStmt(r) = stmt.node else {
        return Vec::new();
    };
    if option_on(&r.params, "concurrently") {
        return Vec::new();
    }
    let kind = ReindexObjectType::try_from(r.kind).unwrap_or(ReindexObjectType::Undefined);
    let rel = r.relation.as_ref();
    let v = ctx.pg_version;
    let off = if r.params.iter().any(
        |p| matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"),
    ) {
        " (CONCURRENTLY is turned off)"
    } else {
        ""
    };
    let locks = "writes wait, and so does every query that has to be planned against the table \
                 (the planner locks all of a table's indexes), until the rebuild finishes";
    let (message, keyword, target) = match kind {
        ReindexObjectType::ReindexObjectIndex => {
            let Some(rv) = rel else {
                return Vec::new();
            };
            let name = ast::rel_name(rv);
            (
                format!(
                    "REINDEX INDEX {name}{off} holds ACCESS EXCLUSIVE on the index and SHARE on \
                     its table: {locks}"
                ),
                "INDEX",
                name,
            )
        }
        ReindexObjectType::ReindexObjectTable => {
            let Some(rv) = rel else {
                return Vec::new();
            };
            if ctx.is_new_table(&ast::rel_key(rv)) || ast::is_temp(rv) {
                return Vec::new();
            }
            let name = ast::rel_name(rv);
            (
                format!(
                    "REINDEX TABLE {name}{off} rebuilds every index of {name}, each under ACCESS \
                     EXCLUSIVE, with SHARE on {name}: {locks}"
                ),
                "TABLE",
                name,
            )
        }
        ReindexObjectType::ReindexObjectSchema => (
            format!(
                "REINDEX SCHEMA {}{off} rebuilds every index in the schema, locking each table \
                 in turn as REINDEX TABLE does: {locks}",
                r.name
            ),
            "SCHEMA",
            r.name.clone(),
        ),
        ReindexObjectType::ReindexObjectDatabase => (
            format!(
                "REINDEX DATABASE{off} rebuilds every index in the database, locking each table \
                 in turn as REINDEX TABLE does: {locks}"
            ),
            "DATABASE",
            r.name.clone(),
        ),
        ReindexObjectType::ReindexObjectSystem => {
            return vec![
                Hit::new(
                    "REINDEX SYSTEM rebuilds the system catalogs' indexes under ACCESS \
                     EXCLUSIVE, which every session needs: the whole database stalls until it \
                     finishes",
                )
                .severity(Severity::Warning)
                .help(
                    "REINDEX SYSTEM has no CONCURRENTLY form: run it in a maintenance window, \
                     not in a migration",
                ),
            ];
        }
        ReindexObjectType::Undefined => return Vec::new(),
    };
    let mut hit = Hit::new(message);
    let target = if target.is_empty() {
        String::new()
    } else {
        format!(" {target}")
    };
    if v < 12 {
        let per_index = if keyword == "INDEX" {
            ""
        } else {
            " for each index,"
        };
        hit = hit.help(format!(
            "PostgreSQL {v} has no REINDEX CONCURRENTLY (12+): instead,{per_index} build a \
             replacement with CREATE INDEX CONCURRENTLY, then DROP INDEX CONCURRENTLY the old one \
             and rename the new one"
        ));
    } else {
        hit = hit.help(format!(
            "use REINDEX {keyword} CONCURRENTLY{target} (SHARE UPDATE EXCLUSIVE: reads and writes \
             go on; outside a transaction, pgship's engine runs it alone)"
        ));
    }
    if let Some(rv) = rel.filter(|_| keyword == "TABLE")
        && let Some(t) = ctx
            .catalog
            .as_ref()
            .and_then(|c| c.table(&ast::rel_key(rv)))
    {
        let name = ast::rel_name(rv);
        if t.kind == 'p' && (12..14).contains(&v) {
            hit = hit.help(format!(
                "{name} is partitioned, and REINDEX CONCURRENTLY handles partitioned tables only \
                 from PostgreSQL 14: run REINDEX TABLE CONCURRENTLY on each partition instead"
            ));
        } else if t.kind != 'p' && t.is_small() {
            hit = hit.severity(Severity::Warning);
        }
    }
    vec![hit]
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_plain_reindex_index() {
        assert_eq!(
            render("LK03", "REINDEX INDEX orders_user_idx;"),
            "m.sql:1:1: error LK03 reindex-not-concurrently: REINDEX INDEX orders_user_idx holds \
             ACCESS EXCLUSIVE on the index and SHARE on its table: writes wait, and so does every \
             query that has to be planned against the table (the planner locks all of a table's \
             indexes), until the rebuild finishes\n  \
             1 | REINDEX INDEX orders_user_idx\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: use REINDEX INDEX CONCURRENTLY orders_user_idx (SHARE UPDATE EXCLUSIVE: reads \
             and writes go on; outside a transaction, pgship's engine runs it alone)\n"
        );
    }

    #[test]
    fn flags_tables_schemas_and_databases() {
        let t = render("LK03", "REINDEX TABLE app.orders;");
        assert!(t.contains("rebuilds every index of app.orders"), "{t}");
        assert!(t.contains("REINDEX TABLE CONCURRENTLY app.orders"), "{t}");
        let s = render("LK03", "REINDEX SCHEMA app;");
        assert!(s.contains("REINDEX SCHEMA CONCURRENTLY app"), "{s}");
        let d = render("LK03", "REINDEX DATABASE;");
        assert!(
            d.contains("error LK03") && d.contains("REINDEX DATABASE CONCURRENTLY ("),
            "{d}"
        );
    }

    #[test]
    fn concurrently_turned_off_is_flagged() {
        for sql in [
            "REINDEX (CONCURRENTLY false) TABLE orders;",
            "REINDEX (CONCURRENTLY off, VERBOSE) TABLE orders;",
            "REINDEX (CONCURRENTLY 0) TABLE orders;",
        ] {
            let out = render("LK03", sql);
            assert!(out.contains("(CONCURRENTLY is turned off)"), "{sql}: {out}");
        }
    }

    #[test]
    fn passes_concurrent_forms_and_new_tables() {
        for sql in [
            "REINDEX INDEX CONCURRENTLY i;",
            "REINDEX TABLE CONCURRENTLY orders;",
            "REINDEX (CONCURRENTLY) SCHEMA app;",
            "REINDEX (CONCURRENTLY true, VERBOSE) DATABASE;",
            "REINDEX (CONCURRENTLY 1) INDEX i;",
            "REINDEX (VERBOSE, CONCURRENTLY on) TABLE orders;",
            "CREATE TABLE t (id int);\nREINDEX TABLE t;",
        ] {
            assert_eq!(render("LK03", sql), "", "{sql}");
        }
    }

    #[test]
    fn reindex_system_has_no_concurrent_form() {
        let out = render("LK03", "REINDEX SYSTEM;");
        assert!(out.contains("warning LK03"), "{out}");
        assert!(out.contains("no CONCURRENTLY form"), "{out}");
    }

    #[test]
    fn before_12_the_advice_is_a_replacement_index() {
        let out = render_with(
            "LK03",
            "REINDEX INDEX i;",
            Opts {
                pg_version: 11,
                ..Default::default()
            },
        );
        assert!(
            out.contains("PostgreSQL 11 has no REINDEX CONCURRENTLY"),
            "{out}"
        );
        assert!(out.contains("instead, build a replacement"), "{out}");
        let table = render_with(
            "LK03",
            "REINDEX TABLE t;",
            Opts {
                pg_version: 11,
                ..Default::default()
            },
        );
        assert!(table.contains("instead, for each index, build"), "{table}");
    }

    #[test]
    fn the_catalog_lowers_small_tables_and_explains_partitioned_ones() {
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
        cat.tables.insert(
            "public.events".into(),
            Table {
                kind: 'p',
                ..Default::default()
            },
        );
        let opts = |v| Opts {
            pg_version: v,
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let small = render_with("LK03", "REINDEX TABLE small;", opts(17));
        assert!(small.contains("warning LK03"), "{small}");
        let part13 = render_with("LK03", "REINDEX TABLE events;", opts(13));
        assert!(
            part13.contains("error LK03") && part13.contains("on each partition"),
            "{part13}"
        );
        let part14 = render_with("LK03", "REINDEX TABLE events;", opts(14));
        assert!(
            part14.contains("REINDEX TABLE CONCURRENTLY events"),
            "{part14}"
        );
    }
}
