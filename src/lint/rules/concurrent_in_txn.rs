//! TX01 concurrent-in-txn: `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`,
//! `REINDEX ... CONCURRENTLY` and `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY` inside a
//! transaction block: after an explicit `BEGIN` in the file, or in a file the runner wraps in
//! one transaction (`--assume-in-transaction`) before a top-level `COMMIT` ends it. PostgreSQL
//! refuses all four there ("cannot run inside a transaction block"). pgship's own engine runs
//! them alone, between committed segments, so they are only reported there inside a `BEGIN`
//! that follows a top-level `COMMIT` (a `BEGIN` inside the engine's transaction does nothing).
//!
//! Severity: error. The statement fails every time, and the alternative (running it outside
//! the transaction) always exists.
//!
//! Also home of [`concurrent_op`], which RB02 and RB04 share.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, DropStmt, ReindexObjectType, ReindexStmt};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "TX01",
    name: "concurrent-in-txn",
    severity: Severity::Error,
    default_on: true,
    summary: "a CONCURRENTLY operation inside a transaction block fails: PostgreSQL refuses it there",
    help: "run it outside the transaction: COMMIT before it, or give it a migration of its own \
           that the runner does not wrap (pgship's engine runs it alone)",
    check,
};

/// Which concurrent operation a statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConcurrentKind {
    CreateIndex,
    DropIndex,
    Reindex,
    DetachPartition,
}

/// A statement PostgreSQL refuses inside a transaction block because it is `CONCURRENTLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Concurrent {
    pub kind: ConcurrentKind,
    /// `CREATE INDEX CONCURRENTLY`, ...
    pub what: &'static str,
    /// The index, table or partition concerned, as written (`an unnamed index on orders`).
    pub object: String,
    /// The first PostgreSQL major version that has it.
    pub since: u32,
}

/// The `CONCURRENTLY` operation `node` is, if any (`REINDEX (CONCURRENTLY false)` is not).
pub(super) fn concurrent_op(node: &NodeEnum) -> Option<Concurrent> {
    let op = |kind, what, object: String, since| Concurrent {
        kind,
        what,
        object,
        since,
    };
    match node {
        NodeEnum::IndexStmt(i) if i.concurrent => {
            let table = i.relation.as_ref().map(ast::rel_name).unwrap_or_default();
            let object = if i.idxname.is_empty() {
                format!("an unnamed index on {table}")
            } else {
                format!("index {} on {table}", i.idxname)
            };
            Some(op(
                ConcurrentKind::CreateIndex,
                "CREATE INDEX CONCURRENTLY",
                object,
                0,
            ))
        }
        NodeEnum::DropStmt(d) if d.concurrent => Some(op(
            ConcurrentKind::DropIndex,
            "DROP INDEX CONCURRENTLY",
            format!("index {}", dropped_names(d).join(", ")),
            0,
        )),
        NodeEnum::ReindexStmt(r) if reindex_concurrently(r) => Some(op(
            ConcurrentKind::Reindex,
            "REINDEX CONCURRENTLY",
            reindex_target(r),
            12,
        )),
        NodeEnum::AlterTableStmt(_) => {
            let (a, parent) = ast::alter_table(node)?;
            ast::alter_cmds(a).into_iter().find_map(|(cmd, t)| {
                if t != AlterTableType::AtDetachPartition {
                    return None;
                }
                match cmd.def.as_ref()?.node.as_ref()? {
                    NodeEnum::PartitionCmd(p) if p.concurrent => Some(op(
                        ConcurrentKind::DetachPartition,
                        "DETACH PARTITION ... CONCURRENTLY",
                        format!(
                            "partition {} of {}",
                            p.name.as_ref().map(ast::rel_name).unwrap_or_default(),
                            ast::rel_name(parent)
                        ),
                        14,
                    )),
                    _ => None,
                }
            })
        }
        _ => None,
    }
}

/// The qualified names a `DROP` lists (relations, schemas, types, functions).
pub(super) fn dropped_names(d: &DropStmt) -> Vec<String> {
    d.objects
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::List(l) => Some(ast::strings(&l.items).join(".")),
            NodeEnum::String(s) => Some(s.sval.clone()),
            NodeEnum::TypeName(t) => Some(ast::strings(&t.names).join(".")),
            NodeEnum::ObjectWithArgs(f) => Some(ast::strings(&f.objname).join(".")),
            _ => None,
        })
        .collect()
}

/// Whether a `REINDEX` has `CONCURRENTLY` (the keyword, or the option not set to false).
pub(super) fn reindex_concurrently(r: &ReindexStmt) -> bool {
    r.params.iter().any(|p| match p.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("concurrently") => {
            !def_is_false(d)
        }
        _ => false,
    })
}

/// PostgreSQL's `defGetBoolean` false spellings (no argument means true).
pub(super) fn def_is_false(d: &pg_query::protobuf::DefElem) -> bool {
    use pg_query::protobuf::a_const::Val;
    match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::Integer(i)) => i.ival == 0,
        Some(NodeEnum::Boolean(b)) => !b.boolval,
        Some(NodeEnum::String(s)) => {
            matches!(
                s.sval.to_ascii_lowercase().as_str(),
                "false" | "off" | "no" | "0"
            )
        }
        Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
            Some(Val::Ival(i)) => i.ival == 0,
            Some(Val::Boolval(b)) => !b.boolval,
            Some(Val::Sval(s)) => {
                matches!(
                    s.sval.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0"
                )
            }
            _ => false,
        },
        _ => false,
    }
}

/// `index i`, `table t`, `schema s`, `database d`.
pub(super) fn reindex_target(r: &ReindexStmt) -> String {
    let kind = ReindexObjectType::try_from(r.kind).unwrap_or(ReindexObjectType::Undefined);
    let rel = r.relation.as_ref().map(ast::rel_name).unwrap_or_default();
    match kind {
        ReindexObjectType::ReindexObjectIndex => format!("index {rel}"),
        ReindexObjectType::ReindexObjectTable => format!("table {rel}"),
        ReindexObjectType::ReindexObjectSchema => format!("schema {}", r.name),
        ReindexObjectType::ReindexObjectSystem => "the system catalogs".to_string(),
        ReindexObjectType::ReindexObjectDatabase if r.name.is_empty() => {
            "the current database".to_string()
        }
        _ => format!("database {}", r.name),
    }
}

/// Where the transaction around a statement comes from, for messages (`None`: there is none).
pub(super) fn txn_origin(stmt: &Stmt, ctx: &Context) -> Option<&'static str> {
    if !stmt.in_transaction {
        return None;
    }
    Some(if ctx.in_explicit_transaction() {
        "inside the transaction opened by the BEGIN earlier in this file"
    } else if ctx.wrap == Wrap::File {
        "inside the transaction the runner wraps this file in (--assume-in-transaction)"
    } else if matches!(ctx.wrap, Wrap::Engine { .. }) {
        "inside the transaction pgship's engine applies this migration in"
    } else {
        "inside a transaction"
    })
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some(op) = concurrent_op(stmt.node) else {
        return Vec::new();
    };
    let Some(origin) = txn_origin(stmt, ctx) else {
        return Vec::new();
    };
    let mut message = format!(
        "{} ({}) runs {origin}: PostgreSQL refuses it there (\"{} cannot run inside a \
         transaction block\")",
        op.what,
        op.object,
        refused_as(op.kind)
    );
    if ctx.pg_version < op.since {
        message.push_str(&format!(
            "; besides, {} needs PostgreSQL {} (the target is {})",
            op.what, op.since, ctx.pg_version
        ));
    }
    let help = if ctx.in_explicit_transaction() {
        format!(
            "COMMIT before the {} (BEGIN again after it if the rest must be atomic), or move it \
             to a migration of its own without BEGIN/COMMIT",
            op.what
        )
    } else {
        format!(
            "move the {} to a migration of its own that the runner does not wrap (Atlas \
             `-- atlas:txmode none`, Rails `disable_ddl_transaction!`, Alembic \
             `autocommit_block()`), or let pgship's engine apply it: it runs such statements \
             outside the transaction",
            op.what
        )
    };
    vec![Hit::new(message).help(help)]
}

/// The command name PostgreSQL's error message uses.
fn refused_as(kind: ConcurrentKind) -> &'static str {
    match kind {
        ConcurrentKind::CreateIndex => "CREATE INDEX CONCURRENTLY",
        ConcurrentKind::DropIndex => "DROP INDEX CONCURRENTLY",
        ConcurrentKind::Reindex => "REINDEX CONCURRENTLY",
        ConcurrentKind::DetachPartition => "ALTER TABLE ... DETACH CONCURRENTLY",
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    fn wrapped(sql: &str, wrap: Wrap) -> String {
        render_with(
            "TX01",
            sql,
            Opts {
                wrap,
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_create_index_concurrently_after_begin() {
        assert_eq!(
            render(
                "TX01",
                "BEGIN;\nCREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);\nCOMMIT;"
            ),
            "m.sql:2:1: error TX01 concurrent-in-txn: CREATE INDEX CONCURRENTLY (index \
             orders_user_idx on orders) runs inside the transaction opened by the BEGIN earlier \
             in this file: PostgreSQL refuses it there (\"CREATE INDEX CONCURRENTLY cannot run \
             inside a transaction block\")\n  \
             2 | CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: COMMIT before the CREATE INDEX CONCURRENTLY (BEGIN again after it if the rest \
             must be atomic), or move it to a migration of its own without BEGIN/COMMIT\n"
        );
    }

    #[test]
    fn flags_every_concurrent_form_in_a_wrapped_file() {
        for (sql, what) in [
            (
                "CREATE INDEX CONCURRENTLY ON orders (user_id);",
                "an unnamed index on orders",
            ),
            (
                "DROP INDEX CONCURRENTLY app.orders_user_idx;",
                "index app.orders_user_idx",
            ),
            (
                "REINDEX INDEX CONCURRENTLY orders_user_idx;",
                "REINDEX CONCURRENTLY",
            ),
            ("REINDEX (CONCURRENTLY) TABLE orders;", "table orders"),
            ("REINDEX (CONCURRENTLY true) SCHEMA app;", "schema app"),
            (
                "ALTER TABLE events DETACH PARTITION events_2023 CONCURRENTLY;",
                "partition events_2023 of events",
            ),
        ] {
            let out = wrapped(sql, Wrap::File);
            assert!(out.contains("error TX01"), "{sql}: {out}");
            assert!(out.contains(what), "{sql}: {out}");
            assert!(out.contains("--assume-in-transaction"), "{sql}: {out}");
            assert!(out.contains("atlas:txmode none"), "{sql}: {out}");
        }
    }

    #[test]
    fn passes_outside_a_transaction_and_non_concurrent_forms() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON orders (user_id);",
            "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);",
            "DROP INDEX CONCURRENTLY i;",
            "REINDEX INDEX CONCURRENTLY i;",
        ] {
            assert_eq!(render("TX01", sql), "", "{sql}");
        }
        // Not concurrent at all: LK01/LK02/LK03's business, not this rule's.
        for sql in [
            "CREATE INDEX i ON orders (user_id);",
            "DROP INDEX i;",
            "REINDEX (CONCURRENTLY false) INDEX i;",
            "REINDEX (CONCURRENTLY off) TABLE t;",
            "ALTER TABLE events DETACH PARTITION events_2023;",
            "ALTER TABLE events DETACH PARTITION events_2023 FINALIZE;",
        ] {
            assert_eq!(wrapped(sql, Wrap::File), "", "{sql}");
        }
    }

    #[test]
    fn pgships_engine_runs_them_alone_unless_the_file_opens_a_transaction_after_a_commit() {
        for per_migration in [false, true] {
            let engine = Wrap::Engine { per_migration };
            assert_eq!(
                wrapped(
                    "CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY i ON orders (id);\n\
                     REINDEX TABLE CONCURRENTLY orders;",
                    engine
                ),
                ""
            );
            // A BEGIN inside the engine's transaction does nothing: the engine still runs the
            // drop alone.
            assert_eq!(
                wrapped("BEGIN;\nDROP INDEX CONCURRENTLY i;\nCOMMIT;", engine),
                ""
            );
            // After a top-level COMMIT, a BEGIN opens a transaction of the file's own.
            let out = wrapped(
                "COMMIT;\nBEGIN;\nDROP INDEX CONCURRENTLY i;\nCOMMIT;",
                engine,
            );
            assert!(out.contains("m.sql:3:1: error TX01"), "{out}");
        }
    }

    #[test]
    fn after_commit_the_file_is_outside_the_transaction_again() {
        let sql = "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\n\
                   START TRANSACTION;\nDROP INDEX CONCURRENTLY j;\nROLLBACK;";
        let out = render("TX01", sql);
        assert!(!out.contains("m.sql:4:"), "{out}");
        assert!(out.contains("m.sql:6:1: error TX01"), "{out}");
    }

    #[test]
    fn mentions_the_version_that_introduced_the_form() {
        let opts = |v| Opts {
            pg_version: v,
            wrap: Wrap::File,
            ..Default::default()
        };
        let old = render_with("TX01", "REINDEX TABLE CONCURRENTLY t;", opts(11));
        assert!(
            old.contains("needs PostgreSQL 12 (the target is 11)"),
            "{old}"
        );
        let detach = render_with(
            "TX01",
            "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;",
            opts(13),
        );
        assert!(
            detach.contains("needs PostgreSQL 14 (the target is 13)"),
            "{detach}"
        );
        let new = render_with("TX01", "REINDEX TABLE CONCURRENTLY t;", opts(17));
        assert!(!new.contains("needs PostgreSQL"), "{new}");
    }

    #[test]
    fn after_a_top_level_commit_the_build_runs_in_autocommit() {
        let cic = "CREATE INDEX CONCURRENTLY orders_region_idx ON orders (region);";
        // The runner's COMMIT ends its transaction: what follows is in autocommit.
        let sql = format!("ALTER TABLE orders ADD COLUMN region text;\nCOMMIT;\n{cic}");
        assert_eq!(wrapped(&sql, Wrap::File), "");
        assert!(wrapped(cic, Wrap::File).contains("error TX01"));
        for per_migration in [false, true] {
            let engine = Wrap::Engine { per_migration };
            assert_eq!(wrapped(&sql, engine), "");
            // A BEGIN after the COMMIT opens a transaction again.
            let out = wrapped(&format!("COMMIT;\nBEGIN;\n{cic}\nCOMMIT;"), engine);
            assert!(
                out.contains("m.sql:3:1: error TX01")
                    && out.contains("inside the transaction opened by the BEGIN"),
                "{out}"
            );
        }
    }
}
