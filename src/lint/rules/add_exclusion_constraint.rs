//! LK12 add-exclusion-constraint: `ADD [CONSTRAINT c] EXCLUDE USING ...` on a table that was
//! not created earlier in the same file or transaction.
//!
//! The constraint's index is built and every row checked against the others while ALTER
//! TABLE holds ACCESS EXCLUSIVE: reads and writes of the table wait for the whole build.
//!
//! Severity: warning. The lock hazard is real, but PostgreSQL has no online path: exclusion
//! constraints have no `NOT VALID`, and `USING INDEX` does not accept them. The advice is to
//! keep the wait short and off-peak, or to build a new table and swap it in. With
//! `--database`, a small table is only info.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK12",
    name: "add-exclusion-constraint",
    severity: Severity::Warning,
    default_on: true,
    summary: "ADD EXCLUDE builds an index and checks every row while the table is locked against \
              reads and writes",
    help: "there is no online form: run it off-peak with a short lock_timeout, or build a new \
           table with the constraint, copy the rows in batches and swap it in",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        if t != AlterTableType::AtAddConstraint {
            continue;
        }
        let Some(c) = ast::constraint_def(cmd) else {
            continue;
        };
        if ast::constr_type(c) != ConstrType::ConstrExclusion {
            continue;
        }
        let cols = exclusion_columns(&c.exclusions);
        let name = if c.conname.is_empty() {
            // PostgreSQL's default: the element names joined, `<table>_<a>_<b>_excl`.
            format!("{}_{}_excl", rv.relname, cols.join("_"))
        } else {
            c.conname.clone()
        };
        let am = if c.access_method.is_empty() {
            "btree"
        } else {
            &c.access_method
        };
        hits.push(
            Hit::new(format!(
                "adding exclusion constraint {name} to {table} builds its {am} index and checks \
                 every row against the others under ACCESS EXCLUSIVE: every read and write of \
                 {table} waits for the whole build, and there is no NOT VALID or CONCURRENTLY \
                 form"
            ))
            .help(format!(
                "keep the wait short and visible: SET lock_timeout = '2s' (retry on timeout) and \
                 run it off-peak; for a large {table}, create a new table with the constraint, \
                 copy the rows in batches (keeping it in sync with a trigger) and swap the names"
            )),
        );
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.kind != 'p'
        && t.is_small()
    {
        for h in &mut hits {
            h.severity = Some(Severity::Info);
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

/// The names PostgreSQL derives for `EXCLUDE (elem WITH op, ...)` elements: the column, the
/// function of an expression that is a call, `expr` otherwise (as `FigureColname` does).
fn exclusion_columns(exclusions: &[pg_query::protobuf::Node]) -> Vec<String> {
    exclusions
        .iter()
        .filter_map(|e| match e.node.as_ref()? {
            NodeEnum::List(pair) => match pair.items.first()?.node.as_ref()? {
                NodeEnum::IndexElem(i) if !i.name.is_empty() => Some(i.name.clone()),
                NodeEnum::IndexElem(i) => {
                    Some(match i.expr.as_ref().and_then(|x| x.node.as_ref()) {
                        Some(NodeEnum::FuncCall(f)) => ast::strings(&f.funcname)
                            .last()
                            .map_or_else(|| "expr".to_string(), |n| n.to_string()),
                        Some(NodeEnum::ColumnRef(c)) => c
                            .fields
                            .last()
                            .and_then(ast::string)
                            .map_or_else(|| "expr".to_string(), str::to_string),
                        _ => "expr".to_string(),
                    })
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_an_exclusion_constraint() {
        assert_eq!(
            render(
                "LK12",
                "ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, \
                 during WITH &&);"
            ),
            "m.sql:1:1: warning LK12 add-exclusion-constraint: adding exclusion constraint \
             no_overlap to bookings builds its gist index and checks every row against the \
             others under ACCESS EXCLUSIVE: every read and write of bookings waits for the whole \
             build, and there is no NOT VALID or CONCURRENTLY form\n  \
             1 | ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, \
             during WITH &&)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: keep the wait short and visible: SET lock_timeout = '2s' (retry on timeout) \
             and run it off-peak; for a large bookings, create a new table with the constraint, \
             copy the rows in batches (keeping it in sync with a trigger) and swap the names\n"
        );
    }

    #[test]
    fn an_unnamed_constraint_gets_postgres_default_name() {
        let out = render(
            "LK12",
            "ALTER TABLE app.bookings ADD EXCLUDE USING gist (during WITH &&);",
        );
        assert!(
            out.contains("exclusion constraint bookings_during_excl to app.bookings"),
            "{out}"
        );
        let two = render(
            "LK12",
            "ALTER TABLE b ADD EXCLUDE USING gist (room WITH =, during WITH &&);",
        );
        assert!(two.contains("constraint b_room_during_excl to b"), "{two}");
        let call = render("LK12", "ALTER TABLE b ADD EXCLUDE ((lower(x)) WITH =);");
        assert!(
            call.contains("constraint b_lower_excl to b builds its btree index"),
            "{call}"
        );
        let expr = render("LK12", "ALTER TABLE b ADD EXCLUDE ((x || 'a') WITH =);");
        assert!(expr.contains("constraint b_expr_excl to b"), "{expr}");
    }

    #[test]
    fn passes_new_tables_and_other_constraints() {
        for sql in [
            "CREATE TABLE bookings (during tstzrange, EXCLUDE USING gist (during WITH &&));",
            "CREATE TABLE bookings (during tstzrange);\nALTER TABLE bookings ADD EXCLUDE USING \
             gist (during WITH &&);",
            "ALTER TABLE bookings ADD CONSTRAINT u UNIQUE (id);",
            "ALTER TABLE bookings DROP CONSTRAINT no_overlap;",
        ] {
            assert_eq!(render("LK12", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_lowers_small_tables_to_info() {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.bookings".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 12.0,
                ..Default::default()
            },
        );
        let out = render_with(
            "LK12",
            "ALTER TABLE bookings ADD EXCLUDE USING gist (during WITH &&);",
            Opts {
                catalog: Some(cat),
                ..Default::default()
            },
        );
        assert!(
            out.contains("info LK12") && out.contains("12 rows"),
            "{out}"
        );
    }
}
