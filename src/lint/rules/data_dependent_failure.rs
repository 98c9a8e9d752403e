//! RB03 data-dependent-failure: statements that succeed or fail depending on the rows already
//! in the table, so they pass on an empty development database and fail in production:
//! - a unique index, `UNIQUE` or `PRIMARY KEY` constraint on existing columns (duplicates; and
//!   NULLs for a primary key), an exclusion constraint (conflicting rows);
//! - `SET NOT NULL` (NULLs), `ADD COLUMN ... NOT NULL` without a default (any row at all),
//!   `ADD COLUMN ... UNIQUE DEFAULT <constant>` (two rows get the same value);
//! - `CHECK` and `FOREIGN KEY` constraints added without `NOT VALID`, and `VALIDATE
//!   CONSTRAINT` (violating rows);
//! - `ALTER COLUMN ... TYPE ... USING` (the expression may fail on some values).
//!
//! Tables created earlier in the same file or transaction are exempt. With `--database`,
//! `SET NOT NULL` on a column that is already NOT NULL and `VALIDATE` of a constraint that is
//! already validated are not reported, a primary key over NOT NULL columns is only reported
//! for duplicates, and `ADD COLUMN ... NOT NULL` without a default on a table the catalog
//! estimates non-empty becomes a warning.
//!
//! Severity: info (opt-in, advisory, as Atlas reports these without failing the lint). The
//! statements are correct; whether they fail depends on data the linter does not see.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, ColumnDef, ConstrType, Constraint, IndexStmt, Node, RangeVar,
};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "RB03",
    name: "data-dependent-failure",
    severity: Severity::Info,
    default_on: false,
    summary: "a statement that fails or not depending on the rows already in the table \
              (duplicates, NULLs, violations)",
    help: "query the production data for the rows that would make it fail (duplicates, NULLs, \
           violators) and fix them before the migration",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::IndexStmt(i) if i.unique => match i.relation.as_ref() {
            Some(rv) if existing(ctx, rv) => unique_index(i, rv),
            _ => Vec::new(),
        },
        NodeEnum::AlterTableStmt(_) => {
            let Some((a, rv)) = ast::alter_table(stmt.node) else {
                return Vec::new();
            };
            if !existing(ctx, rv) {
                return Vec::new();
            }
            ast::alter_cmds(a)
                .into_iter()
                .filter_map(|(cmd, t)| match t {
                    AlterTableType::AtAddConstraint => {
                        ast::constraint_def(cmd).and_then(|c| add_constraint(ctx, rv, c))
                    }
                    AlterTableType::AtAddColumn => {
                        ast::column_def(cmd).and_then(|d| add_column(ctx, rv, d))
                    }
                    AlterTableType::AtSetNotNull => set_not_null(ctx, rv, &cmd.name),
                    AlterTableType::AtValidateConstraint => validate(ctx, rv, &cmd.name),
                    AlterTableType::AtAlterColumnType => ast::column_def(cmd)
                        .filter(|d| d.raw_default.is_some())
                        .map(|_| using(rv, &cmd.name)),
                    _ => None,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A table that existed before this file or transaction (and is not temporary).
fn existing(ctx: &Context, rv: &RangeVar) -> bool {
    !ctx.is_new_table(&ast::rel_key(rv)) && !ast::is_temp(rv)
}

fn catalog_column<'a>(
    ctx: &'a Context,
    rv: &RangeVar,
    col: &str,
) -> Option<&'a crate::lint::catalog::Column> {
    ctx.catalog
        .as_ref()?
        .table(&ast::rel_key(rv))?
        .columns
        .get(col)
}

fn duplicates_query(table: &str, cols: &[&str]) -> String {
    let list = cols.join(", ");
    format!("SELECT {list}, count(*) FROM {table} GROUP BY {list} HAVING count(*) > 1")
}

fn nulls_query(table: &str, cols: &[&str]) -> String {
    let cond: Vec<String> = cols.iter().map(|c| format!("{c} IS NULL")).collect();
    format!("SELECT count(*) FROM {table} WHERE {}", cond.join(" OR "))
}

fn unique_index(i: &IndexStmt, rv: &RangeVar) -> Vec<Hit> {
    let table = ast::rel_name(rv);
    let cols: Vec<&str> = i
        .index_params
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::IndexElem(e) if !e.name.is_empty() => Some(e.name.as_str()),
            _ => None,
        })
        .collect();
    let name = if i.idxname.is_empty() {
        "this unique index".to_string()
    } else {
        format!("unique index {}", i.idxname)
    };
    let partial = if i.where_clause.is_some() {
        " (among the rows its WHERE clause covers)"
    } else {
        ""
    };
    let mut hit = Hit::new(format!(
        "{name} on {table} fails to build if {table} already holds duplicate values{partial}"
    ));
    if cols.len() == i.index_params.len() && i.where_clause.is_none() {
        hit = hit.help(format!(
            "look for duplicates first: {}",
            duplicates_query(&table, &cols)
        ));
    }
    vec![hit]
}

fn add_constraint(ctx: &Context, rv: &RangeVar, c: &Constraint) -> Option<Hit> {
    let table = ast::rel_name(rv);
    let name = if c.conname.is_empty() {
        String::new()
    } else {
        format!(" {}", c.conname)
    };
    let keys = ast::strings(&c.keys);
    match ast::constr_type(c) {
        ConstrType::ConstrUnique if c.indexname.is_empty() => Some(
            Hit::new(format!(
                "the UNIQUE constraint{name} on {table} fails if {table} already holds duplicate \
                 values in ({})",
                keys.join(", ")
            ))
            .help(format!(
                "look for duplicates first: {}",
                duplicates_query(&table, &keys)
            )),
        ),
        ConstrType::ConstrPrimary => primary_key(ctx, rv, c, &name),
        ConstrType::ConstrExclusion => Some(Hit::new(format!(
            "the exclusion constraint{name} on {table} fails if existing rows of {table} \
             conflict with each other"
        ))),
        ConstrType::ConstrCheck if !c.skip_validation => Some(
            Hit::new(format!(
                "the CHECK constraint{name} on {table} fails if an existing row violates it"
            ))
            .help(
                "find the violating rows first (SELECT ... WHERE NOT (<the check>)), or add it \
                 NOT VALID and VALIDATE it once they are fixed",
            ),
        ),
        ConstrType::ConstrForeign if !c.skip_validation => Some(foreign_key(rv, c, &name)),
        _ => None,
    }
}

fn primary_key(ctx: &Context, rv: &RangeVar, c: &Constraint, name: &str) -> Option<Hit> {
    let table = ast::rel_name(rv);
    let keys = ast::strings(&c.keys);
    if !c.indexname.is_empty() {
        // USING INDEX: the index is already unique; only NULLs can make it fail (the catalog
        // does not say which columns the index covers).
        return Some(Hit::new(format!(
            "the PRIMARY KEY{name} USING INDEX {} on {table} fails if a key column holds NULLs",
            c.indexname
        )));
    }
    let nullable: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !catalog_column(ctx, rv, k).is_some_and(|col| col.not_null))
        .collect();
    let mut help = format!(
        "look for duplicates first: {}",
        duplicates_query(&table, &keys)
    );
    if !nullable.is_empty() {
        help.push_str(&format!(
            ", and for NULLs: {}",
            nulls_query(&table, &nullable)
        ));
    }
    Some(
        Hit::new(format!(
            "the PRIMARY KEY{name} on {table} fails if {table} already holds duplicate values{} \
             in ({})",
            if nullable.is_empty() { "" } else { " or NULLs" },
            keys.join(", ")
        ))
        .help(help),
    )
}

fn foreign_key(rv: &RangeVar, c: &Constraint, name: &str) -> Hit {
    let table = ast::rel_name(rv);
    let target = c.pktable.as_ref().map(ast::rel_name).unwrap_or_default();
    let fk = ast::strings(&c.fk_attrs);
    let pk = ast::strings(&c.pk_attrs);
    let hit = Hit::new(format!(
        "the FOREIGN KEY{name} from {table} to {target} fails if a row of {table} references a \
         row {target} does not have"
    ));
    if fk.len() == pk.len() && !fk.is_empty() {
        let on: Vec<String> = fk
            .iter()
            .zip(&pk)
            .map(|(f, p)| format!("r.{p} = t.{f}"))
            .collect();
        let present: Vec<String> = fk.iter().map(|f| format!("t.{f} IS NOT NULL")).collect();
        hit.help(format!(
            "look for orphans first: SELECT count(*) FROM {table} t WHERE {} AND NOT EXISTS \
             (SELECT 1 FROM {target} r WHERE {})",
            present.join(" AND "),
            on.join(" AND ")
        ))
    } else {
        hit.help(
            "look for rows without a referenced row first, or add it NOT VALID and VALIDATE it \
             once they are fixed",
        )
    }
}

fn has_constraint(d: &ColumnDef, t: ConstrType) -> bool {
    ast::column_constraints(d)
        .iter()
        .any(|c| ast::constr_type(c) == t)
}

fn default_expr(d: &ColumnDef) -> Option<&Node> {
    d.raw_default.as_deref().or_else(|| {
        ast::column_constraints(d)
            .into_iter()
            .find(|c| ast::constr_type(c) == ConstrType::ConstrDefault)
            .and_then(|c| c.raw_expr.as_deref())
    })
}

/// A column whose new values are generated per row (serial, identity, generated).
fn generated_per_row(d: &ColumnDef) -> bool {
    let serial = d.type_name.as_ref().is_some_and(|t| {
        matches!(
            ast::strings(&t.names).last().copied(),
            Some("serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial")
        )
    });
    serial
        || !d.identity.is_empty()
        || has_constraint(d, ConstrType::ConstrIdentity)
        || has_constraint(d, ConstrType::ConstrGenerated)
}

fn add_column(ctx: &Context, rv: &RangeVar, d: &ColumnDef) -> Option<Hit> {
    let table = ast::rel_name(rv);
    let col = &d.colname;
    if generated_per_row(d) {
        return None;
    }
    let default = default_expr(d);
    let pk = has_constraint(d, ConstrType::ConstrPrimary);
    let not_null = d.is_not_null || pk || has_constraint(d, ConstrType::ConstrNotnull);
    if not_null && default.is_none() {
        let rows = ctx
            .catalog
            .as_ref()
            .and_then(|c| c.table(&ast::rel_key(rv)))
            .map(|t| t.rows)
            .filter(|r| *r > 0.0);
        let mut hit = Hit::new(format!(
            "adding {col} NOT NULL without a default to {table} fails if {table} has any row (the \
             new column is NULL in each of them){}",
            rows.map(|r| format!("; the catalog estimates {} rows", r as i64))
                .unwrap_or_default()
        ))
        .help(format!(
            "add {col} with a DEFAULT, or add it nullable, backfill it, then SET NOT NULL"
        ));
        if rows.is_some() {
            hit = hit.severity(Severity::Warning);
        }
        return Some(hit);
    }
    let unique = pk || has_constraint(d, ConstrType::ConstrUnique);
    let same_for_all = default.is_some_and(|e| {
        e.node
            .as_ref()
            .is_some_and(|n| ast::volatile_call(n, &|_| false).is_none())
    });
    (unique && same_for_all).then(|| {
        Hit::new(format!(
            "adding {col} UNIQUE with a constant DEFAULT to {table} fails if {table} has two rows \
             or more: they all get the same value"
        ))
        .help(format!(
            "add {col} without the constraint, give each row its own value, then add the unique \
             index (CREATE UNIQUE INDEX CONCURRENTLY) and constraint"
        ))
    })
}

fn set_not_null(ctx: &Context, rv: &RangeVar, col: &str) -> Option<Hit> {
    if catalog_column(ctx, rv, col).is_some_and(|c| c.not_null) {
        return None;
    }
    let table = ast::rel_name(rv);
    Some(
        Hit::new(format!(
            "SET NOT NULL on {table}.{col} fails if a row of {table} has {col} NULL"
        ))
        .help(format!(
            "backfill first (UPDATE {table} SET {col} = ... WHERE {col} IS NULL, in batches) and \
             check {}",
            nulls_query(&table, &[col])
        )),
    )
}

fn validate(ctx: &Context, rv: &RangeVar, constraint: &str) -> Option<Hit> {
    let known_valid = ctx
        .catalog
        .as_ref()
        .and_then(|c| c.constraint(&ast::rel_key(rv), constraint))
        .is_some_and(|c| c.validated);
    if known_valid {
        return None;
    }
    let table = ast::rel_name(rv);
    Some(
        Hit::new(format!(
            "VALIDATE CONSTRAINT {constraint} fails if a row of {table} violates it"
        ))
        .help(format!(
            "find and fix the rows that violate {constraint} before validating it"
        )),
    )
}

fn using(rv: &RangeVar, col: &str) -> Hit {
    let table = ast::rel_name(rv);
    Hit::new(format!(
        "the USING expression that converts {table}.{col} fails the whole statement if it fails \
         for a single row (a bad value in a cast, a division by zero)"
    ))
    .help(format!(
        "run the expression over {table} first (SELECT ... FROM {table}) to find the values it \
         rejects"
    ))
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Column, Constraint, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_unique_index_on_an_existing_table() {
        assert_eq!(
            render(
                "RB03",
                "CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email);"
            ),
            "m.sql:1:1: info RB03 data-dependent-failure: unique index users_email on users fails \
             to build if users already holds duplicate values\n  \
             1 | CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: look for duplicates first: SELECT email, count(*) FROM users GROUP BY email \
             HAVING count(*) > 1\n"
        );
        let partial = render("RB03", "CREATE UNIQUE INDEX u ON t (lower(a)) WHERE b;");
        assert!(
            partial.contains("among the rows its WHERE clause covers"),
            "{partial}"
        );
        assert!(
            partial.contains("help: query the production data"),
            "{partial}"
        );
    }

    #[test]
    fn flags_constraints_that_check_existing_rows() {
        for (sql, what) in [
            (
                "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a, b);",
                "GROUP BY a, b",
            ),
            (
                "ALTER TABLE t ADD PRIMARY KEY (id);",
                "duplicate values or NULLs in (id)",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX i;",
                "NULLs",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);",
                "violates it",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id);",
                "WHERE t.u IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users r WHERE r.id = t.u)",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (p WITH &&);",
                "conflict",
            ),
            (
                "ALTER TABLE t VALIDATE CONSTRAINT c;",
                "VALIDATE CONSTRAINT c",
            ),
            (
                "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
                "WHERE a IS NULL",
            ),
            (
                "ALTER TABLE t ALTER COLUMN a TYPE int USING a::int;",
                "USING expression",
            ),
        ] {
            let out = render("RB03", sql);
            assert!(out.contains("info RB03"), "{sql}: {out}");
            assert!(out.contains(what), "{sql}: {out}");
        }
    }

    #[test]
    fn flags_new_columns_that_existing_rows_cannot_satisfy() {
        let nn = render("RB03", "ALTER TABLE t ADD COLUMN a int NOT NULL;");
        assert!(nn.contains("fails if t has any row"), "{nn}");
        let unique = render(
            "RB03",
            "ALTER TABLE t ADD COLUMN code text UNIQUE DEFAULT 'x';",
        );
        assert!(unique.contains("they all get the same value"), "{unique}");
        for sql in [
            "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0;",
            "ALTER TABLE t ADD COLUMN a int;",
            "ALTER TABLE t ADD COLUMN id bigserial PRIMARY KEY;",
            "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;",
            "ALTER TABLE t ADD COLUMN u uuid UNIQUE DEFAULT gen_random_uuid();",
            "ALTER TABLE t ADD COLUMN code text UNIQUE;",
            "ALTER TABLE t ADD COLUMN s int GENERATED ALWAYS AS (a + 1) STORED NOT NULL;",
        ] {
            assert_eq!(render("RB03", sql), "", "{sql}");
        }
    }

    #[test]
    fn passes_not_valid_constraints_and_new_tables() {
        for sql in [
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id) NOT VALID;",
            "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i;",
            "ALTER TABLE t ALTER COLUMN a TYPE bigint;",
            "CREATE INDEX i ON t (a);",
            "CREATE TABLE t (id int);\nALTER TABLE t ADD PRIMARY KEY (id);\nCREATE UNIQUE INDEX u ON t (id);",
            "CREATE TEMP TABLE s (a int);\nALTER TABLE s ALTER COLUMN a SET NOT NULL;",
        ] {
            assert_eq!(render("RB03", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_drops_what_cannot_fail_and_raises_what_will() {
        let mut cat = Catalog::default();
        let mut t = Table {
            kind: 'r',
            rows: 1200.0,
            ..Default::default()
        };
        for (name, not_null) in [("id", true), ("a", false)] {
            t.columns.insert(
                name.into(),
                Column {
                    data_type: "integer".into(),
                    not_null,
                    indexed: false,
                },
            );
        }
        cat.tables.insert("public.t".into(), t);
        cat.constraints.insert(
            ("public.t".into(), "c".into()),
            Constraint {
                kind: 'c',
                validated: true,
                definition: "CHECK (a > 0)".into(),
            },
        );
        let with = |sql: &str| {
            render_with(
                "RB03",
                sql,
                Opts {
                    catalog: Some(cat.clone()),
                    ..Default::default()
                },
            )
        };
        assert_eq!(with("ALTER TABLE t ALTER COLUMN id SET NOT NULL;"), "");
        assert_eq!(with("ALTER TABLE t VALIDATE CONSTRAINT c;"), "");
        assert!(with("ALTER TABLE t ALTER COLUMN a SET NOT NULL;").contains("info RB03"));
        let pk = with("ALTER TABLE t ADD PRIMARY KEY (id);");
        assert!(
            pk.contains("duplicate values in (id)") && !pk.contains("NULLs"),
            "{pk}"
        );
        let nn = with("ALTER TABLE t ADD COLUMN b int NOT NULL;");
        assert!(nn.contains("warning RB03"), "{nn}");
        assert!(nn.contains("the catalog estimates 1200 rows"), "{nn}");
    }
}
