//! LK01 create-index-not-concurrently: `CREATE [UNIQUE] INDEX` without `CONCURRENTLY` on a
//! table that was not created earlier in the same file or transaction.
//!
//! Severity: error. The build holds a SHARE lock on the table for its whole duration, which
//! blocks every INSERT, UPDATE and DELETE, and `CREATE INDEX CONCURRENTLY` avoids it.
//! With `--database`, an index on a small table (under 10,000 rows and 8 MB) is only a warning,
//! and on a partitioned table the advice changes (a partitioned parent cannot use
//! CONCURRENTLY).

use pg_query::NodeEnum;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK01",
    name: "create-index-not-concurrently",
    severity: Severity::Error,
    default_on: true,
    summary: "CREATE INDEX without CONCURRENTLY blocks writes to the table for the whole build",
    help: "use CREATE INDEX CONCURRENTLY (outside a transaction; pgship's engine runs it alone)",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::IndexStmt(i) = stmt.node else {
        return Vec::new();
    };
    let Some(rv) = &i.relation else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if i.concurrent || ctx.is_new_table(&key) || ast::is_temp(rv) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let mut hit = Hit::new(format!(
        "building this index locks {table} against writes (SHARE) until the build finishes"
    ));
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key)) {
        if t.kind == 'p' {
            hit = hit.help(format!(
                "{table} is partitioned and cannot be indexed CONCURRENTLY: create the index ON ONLY \
                 {table}, then CREATE INDEX CONCURRENTLY on each partition and ALTER INDEX ... ATTACH \
                 PARTITION each one"
            ));
        } else if t.is_small() {
            hit = hit.severity(Severity::Warning).help(format!(
                "{table} is small ({} rows, {} bytes): the lock is short, but CONCURRENTLY is still \
                 the safe habit",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    vec![hit]
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_plain_index_on_an_existing_table() {
        assert_eq!(
            render("LK01", "CREATE INDEX orders_user_idx ON orders (user_id);"),
            "m.sql:1:1: error LK01 create-index-not-concurrently: building this index locks orders \
             against writes (SHARE) until the build finishes\n  \
             1 | CREATE INDEX orders_user_idx ON orders (user_id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: use CREATE INDEX CONCURRENTLY (outside a transaction; pgship's engine runs it alone)\n"
        );
        assert!(
            render("LK01", "CREATE UNIQUE INDEX u ON app.users (lower(email));")
                .contains("app.users")
        );
    }

    #[test]
    fn passes_concurrent_new_and_temporary_tables() {
        assert_eq!(
            render("LK01", "CREATE INDEX CONCURRENTLY i ON orders (user_id);"),
            ""
        );
        assert_eq!(
            render(
                "LK01",
                "CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);"
            ),
            ""
        );
        assert_eq!(
            render(
                "LK01",
                "CREATE TEMP TABLE t (id int);\nCREATE INDEX i ON t (id);"
            ),
            ""
        );
    }

    #[test]
    fn a_table_created_in_another_schema_is_not_the_same_table() {
        let out = render(
            "LK01",
            "CREATE TABLE app.t (id int);\nCREATE INDEX i ON t (id);",
        );
        assert!(out.contains("m.sql:2:1"), "{out}");
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
                bytes: 0,
                rows: 0.0,
                ..Default::default()
            },
        );
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let small = render_with("LK01", "CREATE INDEX i ON small (id);", opts());
        assert!(
            small.contains("warning LK01") && small.contains("3 rows"),
            "{small}"
        );
        let part = render_with("LK01", "CREATE INDEX i ON events (at);", opts());
        assert!(
            part.contains("error LK01") && part.contains("ON ONLY events"),
            "{part}"
        );
    }
}
