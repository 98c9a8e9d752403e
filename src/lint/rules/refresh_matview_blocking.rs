//! LK14 refresh-matview-blocking: `REFRESH MATERIALIZED VIEW` without `CONCURRENTLY` on a
//! materialized view that was not created earlier in the same file or transaction. With
//! `--database` it also catches the `CONCURRENTLY` forms that PostgreSQL refuses (no usable
//! unique index, an unpopulated view), and `WITH NO DATA`, which empties the view.
//!
//! Severity: error. A plain refresh holds ACCESS EXCLUSIVE on the view while it reruns the
//! whole query, so every read of the view waits for minutes on a big one, and `REFRESH ...
//! CONCURRENTLY` (EXCLUSIVE: reads go on) avoids it. With the catalog: an unpopulated view
//! (nobody can read it anyway, and CONCURRENTLY is refused) is only info; a view without a
//! unique index stays an error, but the help says to create the index first.

use pg_query::NodeEnum;

use crate::lint::catalog::Table;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK14",
    name: "refresh-matview-blocking",
    severity: Severity::Error,
    default_on: true,
    summary: "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of the view until \
              the refresh finishes",
    help: "use REFRESH MATERIALIZED VIEW CONCURRENTLY (reads go on; needs a unique index on plain \
           columns of the view, with no WHERE clause)",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let NodeEnum::RefreshMatViewStmt(r) = stmt.node else {
        return Vec::new();
    };
    let Some(rv) = &r.relation else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    let view = ast::rel_name(rv);
    let known = ctx
        .catalog
        .as_ref()
        .and_then(|c| c.table(&key))
        .filter(|t| t.kind == 'm');
    if r.concurrent {
        return concurrent_failures(r.skip_data, &view, known);
    }
    if ctx.is_new_table(&key) {
        return Vec::new();
    }
    if r.skip_data {
        return vec![
            Hit::new(format!(
                "WITH NO DATA empties {view}: every query on it fails (\"has not been populated\") \
                 until the next REFRESH"
            ))
            .severity(Severity::Warning)
            .help(format!(
                "drop {view} if nothing reads it any more; otherwise refresh it instead of \
                 emptying it"
            )),
        ];
    }
    let mut hit = Hit::new(format!(
        "refreshing {view} locks it ACCESS EXCLUSIVE while its query reruns: every read of \
         {view} waits until the refresh finishes"
    ))
    .help(format!(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY {view} (reads go on)"
    ));
    if let Some(t) = known {
        if !t.populated {
            hit = Hit::new(format!(
                "{view} is not populated: queries on it fail anyway, so the ACCESS EXCLUSIVE lock \
                 of this refresh blocks nothing that works today"
            ))
            .severity(Severity::Info)
            .help(
                "a plain REFRESH is the only way to populate a view (CONCURRENTLY is refused on an \
                 unpopulated one); use CONCURRENTLY for later refreshes",
            );
        } else if !t.has_unique_index {
            hit = hit.help(format!(
                "{view} has no unique index, so CONCURRENTLY is refused: first CREATE UNIQUE INDEX \
                 CONCURRENTLY ON {view} (<key columns>) (plain columns, no WHERE clause), then \
                 REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"
            ));
        }
    }
    vec![hit]
}

/// `REFRESH ... CONCURRENTLY` that PostgreSQL will refuse.
fn concurrent_failures(skip_data: bool, view: &str, known: Option<&Table>) -> Vec<Hit> {
    if skip_data {
        return vec![
            Hit::new("CONCURRENTLY and WITH NO DATA cannot be used together: this statement fails")
                .help(format!(
                    "REFRESH MATERIALIZED VIEW CONCURRENTLY {view} (without WITH NO DATA)"
                )),
        ];
    }
    let Some(t) = known else {
        return Vec::new();
    };
    if !t.populated {
        vec![Hit::new(format!(
            "{view} is not populated, and CONCURRENTLY is refused on an unpopulated view: this \
             statement fails"
        ))
        .help(format!(
            "populate it once with REFRESH MATERIALIZED VIEW {view} (nobody can read it yet, so \
             the lock blocks nothing), then use CONCURRENTLY"
        ))]
    } else if !t.has_unique_index {
        vec![Hit::new(format!(
            "{view} has no unique index, and CONCURRENTLY needs one: this statement fails"
        ))
        .help(format!(
            "first CREATE UNIQUE INDEX CONCURRENTLY ON {view} (<key columns>) (plain columns, no \
             WHERE clause)"
        ))]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn catalog(populated: bool, has_unique_index: bool) -> Opts {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.sales_daily".into(),
            Table {
                kind: 'm',
                bytes: 1 << 30,
                rows: 1e7,
                populated,
                has_unique_index,
                ..Default::default()
            },
        );
        Opts {
            catalog: Some(cat),
            ..Default::default()
        }
    }

    #[test]
    fn flags_a_plain_refresh() {
        assert_eq!(
            render("LK14", "REFRESH MATERIALIZED VIEW sales_daily;"),
            "m.sql:1:1: error LK14 refresh-matview-blocking: refreshing sales_daily locks it \
             ACCESS EXCLUSIVE while its query reruns: every read of sales_daily waits until the \
             refresh finishes\n  \
             1 | REFRESH MATERIALIZED VIEW sales_daily\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: REFRESH MATERIALIZED VIEW CONCURRENTLY sales_daily (reads go on)\n"
        );
        let out = render(
            "LK14",
            "BEGIN;\nREFRESH MATERIALIZED VIEW reports.sales_daily WITH DATA;\nCOMMIT;",
        );
        assert!(out.contains("m.sql:2:1: error LK14") && out.contains("reports.sales_daily"));
    }

    #[test]
    fn passes_concurrent_and_views_created_in_the_file() {
        assert_eq!(
            render(
                "LK14",
                "REFRESH MATERIALIZED VIEW CONCURRENTLY sales_daily;"
            ),
            ""
        );
        assert_eq!(
            render(
                "LK14",
                "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x WITH NO DATA;\n\
                 REFRESH MATERIALIZED VIEW mv;"
            ),
            ""
        );
        // The same in a file the runner wraps in one transaction.
        assert_eq!(
            render_with(
                "LK14",
                "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;\nREFRESH MATERIALIZED VIEW mv;",
                Opts {
                    wrap: Wrap::File,
                    ..Default::default()
                }
            ),
            ""
        );
        // A view of the same name in another schema is another view.
        let out = render(
            "LK14",
            "CREATE MATERIALIZED VIEW app.mv AS SELECT 1 AS x;\nREFRESH MATERIALIZED VIEW mv;",
        );
        assert!(out.contains("m.sql:2:1: error LK14"), "{out}");
    }

    #[test]
    fn with_no_data_is_a_warning() {
        let out = render(
            "LK14",
            "REFRESH MATERIALIZED VIEW sales_daily WITH NO DATA;",
        );
        assert!(
            out.contains("warning LK14") && out.contains("has not been populated"),
            "{out}"
        );
    }

    #[test]
    fn concurrently_with_no_data_fails() {
        let out = render(
            "LK14",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY sales_daily WITH NO DATA;",
        );
        assert!(
            out.contains("error LK14") && out.contains("cannot be used together"),
            "{out}"
        );
    }

    #[test]
    fn the_catalog_says_when_concurrently_is_impossible() {
        let plain = "REFRESH MATERIALIZED VIEW sales_daily;";
        let conc = "REFRESH MATERIALIZED VIEW CONCURRENTLY sales_daily;";
        // No unique index: still an error, and the help says to create one first.
        let out = render_with("LK14", plain, catalog(true, false));
        assert!(
            out.contains("error LK14")
                && out.contains("has no unique index, so CONCURRENTLY is refused"),
            "{out}"
        );
        let out = render_with("LK14", conc, catalog(true, false));
        assert!(
            out.contains("error LK14") && out.contains("this statement fails"),
            "{out}"
        );
        // Unpopulated: a plain refresh is the only way, and CONCURRENTLY fails.
        let out = render_with("LK14", plain, catalog(false, true));
        assert!(
            out.contains("info LK14") && out.contains("not populated"),
            "{out}"
        );
        let out = render_with("LK14", conc, catalog(false, true));
        assert!(
            out.contains("error LK14") && out.contains("refused on an unpopulated view"),
            "{out}"
        );
        // Populated with a unique index: the usual advice, and CONCURRENTLY passes.
        let out = render_with("LK14", plain, catalog(true, true));
        assert!(
            out.contains("help: REFRESH MATERIALIZED VIEW CONCURRENTLY sales_daily"),
            "{out}"
        );
        assert_eq!(render_with("LK14", conc, catalog(true, true)), "");
    }

    #[test]
    fn a_table_of_the_same_name_in_the_catalog_is_ignored() {
        let mut opts = catalog(false, false);
        if let Some(cat) = opts.catalog.as_mut() {
            cat.tables.get_mut("public.sales_daily").unwrap().kind = 'r';
        }
        let out = render_with("LK14", "REFRESH MATERIALIZED VIEW sales_daily;", opts);
        assert!(
            out.contains("error LK14")
                && out.contains("help: REFRESH MATERIALIZED VIEW CONCURRENTLY"),
            "{out}"
        );
    }
}
