//! RB04 cic-corruption-pg14: `CREATE INDEX CONCURRENTLY` or `REINDEX ... CONCURRENTLY` when
//! the target is PostgreSQL 14. On 14.0 to 14.3 those builds can silently miss index entries
//! for rows changed while they run (an optimization of 14.0, fixed in 14.4): queries through
//! the index then return wrong results, and unique indexes can let duplicates in.
//!
//! Rules only know the major version (`--pg-version`, or the server's when linting against a
//! database), not the minor, so this fires on every 14 target and asks for the minor to be
//! checked.
//!
//! Severity: error (opt-in). Silent index corruption is a data-integrity hazard, and the safe
//! alternative (14.4 or later) exists.

use super::concurrent_in_txn::{ConcurrentKind, concurrent_op};
use crate::lint::{Context, Hit, Rule, Severity, Stmt};

pub static RULE: Rule = Rule {
    id: "RB04",
    name: "cic-corruption-pg14",
    severity: Severity::Error,
    default_on: false,
    summary: "CREATE INDEX / REINDEX CONCURRENTLY on PostgreSQL 14.0-14.3 can build a corrupt \
              index (fixed in 14.4)",
    help: "check the server with SELECT version(): on 14.0-14.3, upgrade to 14.4 or later before \
           building indexes concurrently",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if ctx.pg_version != 14 {
        return Vec::new();
    }
    let Some(op) = concurrent_op(stmt.node) else {
        return Vec::new();
    };
    if !matches!(
        op.kind,
        ConcurrentKind::CreateIndex | ConcurrentKind::Reindex
    ) {
        return Vec::new();
    }
    vec![
        Hit::new(format!(
            "{} ({}) on PostgreSQL 14.0 to 14.3 can build an index that silently misses rows \
             changed during the build (fixed in 14.4); pgship knows the target is 14 but not its \
             minor version",
            op.what, op.object
        ))
        .help(
            "check the server with SELECT version(): on 14.0-14.3, upgrade to 14.4 or later \
             first; indexes already built or rebuilt concurrently there should be checked with \
             amcheck (bt_index_check(index, heapallindexed => true)) and rebuilt with REINDEX",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::{Opts, render, render_with};

    fn on(sql: &str, pg_version: u32) -> String {
        render_with(
            "RB04",
            sql,
            Opts {
                pg_version,
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_create_index_concurrently_on_14() {
        assert_eq!(
            on(
                "CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);",
                14
            ),
            "m.sql:1:1: error RB04 cic-corruption-pg14: CREATE INDEX CONCURRENTLY (index \
             orders_user_idx on orders) on PostgreSQL 14.0 to 14.3 can build an index that \
             silently misses rows changed during the build (fixed in 14.4); pgship knows the \
             target is 14 but not its minor version\n  \
             1 | CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: check the server with SELECT version(): on 14.0-14.3, upgrade to 14.4 or later \
             first; indexes already built or rebuilt concurrently there should be checked with \
             amcheck (bt_index_check(index, heapallindexed => true)) and rebuilt with REINDEX\n"
        );
    }

    #[test]
    fn flags_reindex_concurrently_on_14() {
        for sql in [
            "REINDEX INDEX CONCURRENTLY orders_user_idx;",
            "REINDEX (CONCURRENTLY) TABLE orders;",
            "CREATE UNIQUE INDEX CONCURRENTLY ON orders (code);",
        ] {
            assert!(on(sql, 14).contains("error RB04"), "{sql}");
        }
    }

    #[test]
    fn passes_other_versions_and_other_statements() {
        for v in [12, 13, 15, 17] {
            assert_eq!(on("CREATE INDEX CONCURRENTLY i ON t (a);", v), "", "{v}");
        }
        for sql in [
            "CREATE INDEX i ON t (a);",
            "REINDEX TABLE t;",
            "REINDEX (CONCURRENTLY false) TABLE t;",
            "DROP INDEX CONCURRENTLY i;",
            "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;",
        ] {
            assert_eq!(on(sql, 14), "", "{sql}");
        }
        // The default target (17) is not affected.
        assert_eq!(render("RB04", "CREATE INDEX CONCURRENTLY i ON t (a);"), "");
    }
}
