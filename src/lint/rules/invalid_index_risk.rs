//! RB02 invalid-index-risk: what an INVALID index (left by a failed `CREATE INDEX
//! CONCURRENTLY` or `REINDEX ... CONCURRENTLY`) does to a migration and its retry:
//! - a failed `CREATE INDEX CONCURRENTLY` leaves the index INVALID: never used by queries,
//!   still maintained by every write, and in the way of the retry ("already exists");
//! - an unnamed one gets a new generated name on each retry (`t_a_idx1`, `t_a_idx2`, ...), so
//!   invalid copies pile up;
//! - with `IF NOT EXISTS` the retry "succeeds" over the INVALID index without building it;
//! - a failed `REINDEX CONCURRENTLY` leaves INVALID `*_ccnew` / `*_ccold` indexes;
//! - `ADD CONSTRAINT ... UNIQUE/PRIMARY KEY USING INDEX` fails on an INVALID index.
//!
//! With `--database`, an index the catalog knows to be INVALID turns the advice into a certain
//! failure (or a silent no-op for `IF NOT EXISTS`). pgship's engine drops the invalid index a
//! failed concurrent build leaves, and a leftover of the same name before it builds, so the
//! build cases are not reported for migrations it applies; `USING INDEX` on an index the
//! catalog knows to be INVALID still is. A concurrent build inside a transaction block is
//! refused before it starts (TX01) and leaves nothing, so it is not reported either.
//!
//! Severity: warning (opt-in): a risk that depends on the build failing. Error when the catalog
//! shows the named index is already INVALID (the statement fails, or succeeds without building
//! the index), since dropping it first is the safe alternative.

use pg_query::NodeEnum;
use pg_query::protobuf::{ConstrType, IndexStmt, RangeVar};

use super::concurrent_in_txn::{reindex_concurrently, reindex_target};
use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "RB02",
    name: "invalid-index-risk",
    severity: Severity::Warning,
    default_on: false,
    summary: "a failed concurrent index build leaves an INVALID index that breaks or fools the \
              retry",
    help: "name concurrently built indexes, check pg_index.indisvalid after the build, and drop \
           an INVALID leftover (DROP INDEX CONCURRENTLY) before retrying",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let engine = matches!(ctx.wrap, Wrap::Engine { .. });
    // In a transaction block a concurrent build is refused before it starts (TX01): it leaves
    // nothing behind.
    let refused = stmt.in_transaction;
    match stmt.node {
        NodeEnum::IndexStmt(i) if i.concurrent && !refused => match i.relation.as_ref() {
            Some(rv) => create_index(i, rv, ctx, engine),
            None => Vec::new(),
        },
        NodeEnum::ReindexStmt(r) if reindex_concurrently(r) && !engine && !refused => {
            vec![Hit::new(format!(
            "if REINDEX CONCURRENTLY ({}) fails, it leaves INVALID copies named <index>_ccnew \
             (or _ccold) that every write keeps maintaining",
            reindex_target(r)
        ))
        .help(
            "after a failure, drop the INVALID *_ccnew / *_ccold indexes with DROP INDEX \
             CONCURRENTLY before retrying (find them with SELECT indexrelid::regclass FROM \
             pg_index WHERE NOT indisvalid)",
        )]
        }
        NodeEnum::AlterTableStmt(_) => using_index(stmt.node, ctx, engine),
        _ => Vec::new(),
    }
}

/// `schema.index` of an index in the table's schema, as the catalog keys invalid indexes.
fn index_key(rv: &RangeVar, index: &str) -> String {
    ast::key(&rv.schemaname, index)
}

fn known_invalid(ctx: &Context, key: &str) -> bool {
    ctx.catalog
        .as_ref()
        .is_some_and(|c| c.invalid_indexes.contains(key))
}

fn check_query(key: &str) -> String {
    format!("SELECT indisvalid FROM pg_index WHERE indexrelid = '{key}'::regclass")
}

fn create_index(i: &IndexStmt, rv: &RangeVar, ctx: &Context, engine: bool) -> Vec<Hit> {
    if engine {
        // The engine drops an INVALID leftover of the same name before building, and the
        // index a failed build leaves.
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    if i.idxname.is_empty() {
        return vec![Hit::new(format!(
            "this concurrent index on {table} has no name: if the build fails it leaves an \
             INVALID index with a generated name, and each retry builds another one (…_idx1, \
             …_idx2) while the invalid ones stay and slow every write"
        ))
        .help(format!(
            "name it (CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON {table} ...), and drop an \
             INVALID leftover before retrying"
        ))];
    }
    let name = &i.idxname;
    let key = index_key(rv, name);
    let drop_first = format!(
        "drop it first (DROP INDEX CONCURRENTLY {name}), then build it again; check the result \
         with {}",
        check_query(&key)
    );
    if known_invalid(ctx, &key) {
        let message = if i.if_not_exists {
            format!(
                "index {name} already exists and is INVALID (a failed concurrent build): IF NOT \
                 EXISTS skips the build, so the migration succeeds and {name} stays unusable"
            )
        } else {
            format!(
                "index {name} already exists and is INVALID (a failed concurrent build): this \
                 build fails with \"relation already exists\""
            )
        };
        return vec![Hit::new(message).severity(Severity::Error).help(drop_first)];
    }
    let message = if i.if_not_exists {
        format!(
            "if an earlier attempt of this build failed, {name} exists but is INVALID, and IF NOT \
             EXISTS skips the build: the migration succeeds with an index queries never use{}",
            if i.unique {
                " and that enforces no uniqueness"
            } else {
                ""
            }
        )
    } else {
        format!(
            "if this build fails it leaves {name} INVALID: never used by queries, still maintained \
             by every write, and a retry fails with \"relation already exists\" until it is dropped"
        )
    };
    vec![Hit::new(message).help(format!(
        "after the build, check {}; if it is false (or the build failed), DROP INDEX CONCURRENTLY \
         IF EXISTS {name} and build it again",
        check_query(&key)
    ))]
}

/// `ADD CONSTRAINT ... UNIQUE/PRIMARY KEY USING INDEX i`.
fn using_index(node: &NodeEnum, ctx: &Context, engine: bool) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(node) else {
        return Vec::new();
    };
    let table = ast::rel_name(rv);
    let mut hits = Vec::new();
    for (cmd, _) in ast::alter_cmds(a) {
        let Some(c) = ast::constraint_def(cmd) else {
            continue;
        };
        let kind = match ast::constr_type(c) {
            ConstrType::ConstrPrimary => "PRIMARY KEY",
            ConstrType::ConstrUnique => "UNIQUE",
            _ => continue,
        };
        if c.indexname.is_empty() {
            continue;
        }
        let index = &c.indexname;
        let key = index_key(rv, index);
        if known_invalid(ctx, &key) {
            hits.push(
                Hit::new(format!(
                    "index {index} is INVALID (a failed concurrent build): ADD {kind} USING INDEX \
                     {index} on {table} fails (\"index \\\"{index}\\\" is not valid\")"
                ))
                .severity(Severity::Error)
                .help(format!(
                    "rebuild it first: DROP INDEX CONCURRENTLY {index}, then CREATE UNIQUE INDEX \
                     CONCURRENTLY {index} ON {table} (...) and check {}",
                    check_query(&key)
                )),
            );
        } else if ctx.catalog.is_none() && !engine {
            hits.push(
                Hit::new(format!(
                    "ADD {kind} USING INDEX {index} fails if {index} is INVALID (left by a failed \
                     CREATE INDEX CONCURRENTLY)"
                ))
                .help(format!(
                    "check it before this statement: {} must return true",
                    check_query(&key)
                )),
            );
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::catalog::Catalog;
    use crate::lint::testing::{Opts, render, render_with};

    fn with_invalid(sql: &str, invalid: &[&str], wrap: Wrap) -> String {
        let cat = Catalog {
            invalid_indexes: invalid.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        render_with(
            "RB02",
            sql,
            Opts {
                catalog: Some(cat),
                wrap,
                ..Default::default()
            },
        )
    }

    #[test]
    fn warns_that_a_failed_build_leaves_an_invalid_index() {
        assert_eq!(
            render(
                "RB02",
                "CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);"
            ),
            "m.sql:1:1: warning RB02 invalid-index-risk: if this build fails it leaves \
             orders_user_idx INVALID: never used by queries, still maintained by every write, and \
             a retry fails with \"relation already exists\" until it is dropped\n  \
             1 | CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: after the build, check SELECT indisvalid FROM pg_index WHERE indexrelid = \
             'public.orders_user_idx'::regclass; if it is false (or the build failed), DROP INDEX \
             CONCURRENTLY IF EXISTS orders_user_idx and build it again\n"
        );
    }

    #[test]
    fn unnamed_and_if_not_exists_builds_get_their_own_warning() {
        let unnamed = render("RB02", "CREATE UNIQUE INDEX CONCURRENTLY ON orders (code);");
        assert!(unnamed.contains("has no name"), "{unnamed}");
        assert!(unnamed.contains("…_idx1"), "{unnamed}");
        let ine = render(
            "RB02",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS orders_code ON app.orders (code);",
        );
        assert!(ine.contains("IF NOT EXISTS skips the build"), "{ine}");
        assert!(ine.contains("enforces no uniqueness"), "{ine}");
        assert!(ine.contains("'app.orders_code'::regclass"), "{ine}");
    }

    #[test]
    fn the_catalog_turns_a_known_invalid_index_into_an_error() {
        let ine = with_invalid(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
            &["public.i"],
            Wrap::None,
        );
        assert!(ine.contains("error RB02"), "{ine}");
        assert!(
            ine.contains("the migration succeeds and i stays unusable"),
            "{ine}"
        );
        let plain = with_invalid(
            "CREATE INDEX CONCURRENTLY i ON t (a);",
            &["public.i"],
            Wrap::None,
        );
        assert!(plain.contains("already exists and is INVALID"), "{plain}");
        // Another schema's index of the same name is not this one.
        let other = with_invalid(
            "CREATE INDEX CONCURRENTLY i ON app.t (a);",
            &["public.i"],
            Wrap::None,
        );
        assert!(other.contains("warning RB02"), "{other}");
    }

    #[test]
    fn using_index_on_an_invalid_index_fails() {
        let sql =
            "ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code;";
        let known = with_invalid(sql, &["public.orders_code"], Wrap::None);
        assert!(known.contains("error RB02"), "{known}");
        assert!(known.contains("is not valid"), "{known}");
        // Known valid: nothing. Unknown (no catalog): a warning.
        assert_eq!(with_invalid(sql, &[], Wrap::None), "");
        let unknown = render("RB02", sql);
        assert!(unknown.contains("warning RB02"), "{unknown}");
        let pk = render(
            "RB02",
            "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_id;",
        );
        assert!(pk.contains("ADD PRIMARY KEY USING INDEX orders_id"), "{pk}");
    }

    #[test]
    fn reindex_concurrently_leaves_ccnew_indexes() {
        let out = render("RB02", "REINDEX TABLE CONCURRENTLY orders;");
        assert!(out.contains("_ccnew"), "{out}");
        assert_eq!(render("RB02", "REINDEX TABLE orders;"), "");
    }

    #[test]
    fn pgships_engine_cleans_up_failed_builds() {
        let engine = Wrap::Engine {
            per_migration: false,
        };
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON t (a);",
            "CREATE INDEX CONCURRENTLY ON t (a);",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
            "REINDEX INDEX CONCURRENTLY i;",
            "ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX i;",
        ] {
            let out = render_with(
                "RB02",
                sql,
                Opts {
                    wrap: engine,
                    ..Default::default()
                },
            );
            assert_eq!(out, "", "{sql}");
        }
        // It also drops a known-invalid leftover before building one of the same name...
        assert_eq!(
            with_invalid(
                "CREATE INDEX CONCURRENTLY i ON t (a);",
                &["public.i"],
                engine
            ),
            ""
        );
        // ...but it cannot make an index the catalog knows to be invalid valid.
        let out = with_invalid(
            "ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX i;",
            &["public.i"],
            engine,
        );
        assert!(out.contains("error RB02"), "{out}");
    }

    #[test]
    fn a_build_refused_in_a_transaction_leaves_nothing() {
        assert_eq!(
            render(
                "RB02",
                "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;"
            ),
            ""
        );
        let wrapped = render_with(
            "RB02",
            "REINDEX TABLE CONCURRENTLY t;",
            Opts {
                wrap: Wrap::File,
                ..Default::default()
            },
        );
        assert_eq!(wrapped, "");
    }

    #[test]
    fn plain_builds_and_other_constraints_pass() {
        for sql in [
            "CREATE INDEX i ON t (a);",
            "ALTER TABLE t ADD CONSTRAINT k UNIQUE (a);",
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);",
        ] {
            assert_eq!(render("RB02", sql), "", "{sql}");
        }
    }
}
