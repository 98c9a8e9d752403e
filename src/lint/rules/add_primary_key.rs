//! LK11 add-primary-key: `ADD [CONSTRAINT c] PRIMARY KEY (...)` and `ADD COLUMN ... PRIMARY
//! KEY` (typically `serial PRIMARY KEY`) on a table that was not created earlier in the same
//! file or transaction. `ADD CONSTRAINT c PRIMARY KEY USING INDEX i` passes here (the NOT NULL
//! it may imply is LK06's).
//!
//! The primary key's unique index is built while ALTER TABLE holds ACCESS EXCLUSIVE; nullable
//! key columns are also scanned for NULLs (LK06 reports that with `--database`), and a new
//! serial or identity column rewrites the table first (LK04 reports that).
//!
//! Severity: error, a lock hazard with a safe alternative: `CREATE UNIQUE INDEX CONCURRENTLY`,
//! NOT NULL through LK06's recipe, then `ADD CONSTRAINT ... PRIMARY KEY USING INDEX`. With
//! `--database`, a small table is a warning, the NOT NULL step is left out when the catalog
//! shows the key columns NOT NULL already, and a partitioned table gets per-partition advice.

use pg_query::protobuf::{AlterTableType, ConstrType, RangeVar};

use super::set_not_null_scan::not_null_recipe;
use crate::lint::catalog::Table;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK11",
    name: "add-primary-key",
    severity: Severity::Error,
    default_on: true,
    summary: "ADD PRIMARY KEY builds a unique index while the table is locked against reads and \
              writes",
    help: "CREATE UNIQUE INDEX CONCURRENTLY, make the columns NOT NULL (LK06's recipe), then ADD \
           CONSTRAINT ... PRIMARY KEY USING INDEX (instant)",
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
    let known = ctx.catalog.as_ref().and_then(|c| c.table(&key));
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        match t {
            AlterTableType::AtAddConstraint => {
                let Some(c) = ast::constraint_def(cmd) else {
                    continue;
                };
                if ast::constr_type(c) != ConstrType::ConstrPrimary || !c.indexname.is_empty() {
                    continue;
                }
                let cols: Vec<&str> = ast::strings(&c.keys);
                let name = pk_name(&c.conname, &rv.relname);
                hits.push(
                    Hit::new(format!(
                        "adding primary key {name} to {table} builds its unique index on ({}) \
                         under ACCESS EXCLUSIVE: every read and write of {table} waits for the \
                         whole build (and for the NOT NULL scan of any nullable key column)",
                        cols.join(", ")
                    ))
                    .help(help(ctx, rv, known, &name, &cols, "")),
                );
            }
            AlterTableType::AtAddColumn => {
                let Some(col) = ast::column_def(cmd) else {
                    continue;
                };
                let Some(c) = ast::column_constraints(col)
                    .into_iter()
                    .find(|c| ast::constr_type(c) == ConstrType::ConstrPrimary)
                else {
                    continue;
                };
                let name = pk_name(&c.conname, &rv.relname);
                let filled = col
                    .type_name
                    .as_ref()
                    .is_some_and(|t| ast::base_type(t).contains("serial"))
                    || ast::column_constraints(col).iter().any(|c| {
                        matches!(
                            ast::constr_type(c),
                            ConstrType::ConstrIdentity
                                | ConstrType::ConstrDefault
                                | ConstrType::ConstrGenerated
                        )
                    });
                let extra = if filled {
                    ", after filling it in every row (LK04 reports the rewrite)"
                } else {
                    "; with no value for existing rows it fails as soon as the table has one"
                };
                let c = col.colname.as_str();
                hits.push(
                    Hit::new(format!(
                        "adding column {c} to {table} as its primary key builds unique index \
                         {name} under ACCESS EXCLUSIVE: every read and write of {table} waits \
                         for the whole build{extra}"
                    ))
                    .help(help(
                        ctx,
                        rv,
                        None,
                        &name,
                        &[c],
                        "add the column without PRIMARY KEY (for serial or identity, as LK04 \
                         describes) and backfill it; then ",
                    )),
                );
            }
            _ => {}
        }
    }
    if let Some(t) = known.filter(|t| t.kind != 'p' && t.is_small()) {
        for h in &mut hits {
            h.severity = Some(Severity::Warning);
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

fn pk_name(conname: &str, relname: &str) -> String {
    if conname.is_empty() {
        format!("{relname}_pkey")
    } else {
        conname.to_string()
    }
}

/// CIC, NOT NULL unless the catalog shows it, then USING INDEX; per partition when partitioned.
fn help(
    ctx: &Context,
    rv: &RangeVar,
    known: Option<&Table>,
    name: &str,
    cols: &[&str],
    first: &str,
) -> String {
    let table = ast::rel_name(rv);
    if known.is_some_and(|t| t.kind == 'p') {
        return format!(
            "{first}{table} is partitioned, and neither CONCURRENTLY nor USING INDEX works on the \
             parent: on each partition, CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... \
             PRIMARY KEY USING INDEX (its columns NOT NULL first); then this ALTER TABLE adopts \
             the partitions' keys instead of building"
        );
    }
    let nullable: Vec<&str> = cols
        .iter()
        .copied()
        .filter(|c| {
            !known
                .and_then(|t| t.columns.get(*c))
                .is_some_and(|col| col.not_null)
        })
        .collect();
    let not_null = match nullable.first() {
        None => String::new(),
        Some(c) => format!(
            "make {} NOT NULL without a long lock ({}{}); ",
            nullable.join(", "),
            not_null_recipe(rv, c, ctx.pg_version),
            if nullable.len() > 1 {
                ", and the same for each column"
            } else {
                ""
            }
        ),
    };
    format!(
        "{first}CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({}); {not_null}then ALTER \
         TABLE {table} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name} (instant)",
        cols.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::lint::catalog::{Catalog, Column, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_add_primary_key() {
        assert_eq!(
            render("LK11", "ALTER TABLE items ADD PRIMARY KEY (id);"),
            "m.sql:1:1: error LK11 add-primary-key: adding primary key items_pkey to items builds \
             its unique index on (id) under ACCESS EXCLUSIVE: every read and write of items \
             waits for the whole build (and for the NOT NULL scan of any nullable key column)\n  \
             1 | ALTER TABLE items ADD PRIMARY KEY (id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: CREATE UNIQUE INDEX CONCURRENTLY items_pkey ON items (id); make id NOT NULL \
             without a long lock (ALTER TABLE items ADD CONSTRAINT items_id_check CHECK (id IS \
             NOT NULL) NOT VALID; then, in a later transaction, ALTER TABLE items VALIDATE \
             CONSTRAINT items_id_check (SHARE UPDATE EXCLUSIVE); then ALTER TABLE items ALTER \
             COLUMN id SET NOT NULL, which skips the scan, and ALTER TABLE items DROP CONSTRAINT \
             items_id_check); then ALTER TABLE items ADD CONSTRAINT items_pkey PRIMARY KEY USING \
             INDEX items_pkey (instant)\n"
        );
    }

    #[test]
    fn flags_a_serial_primary_key_column() {
        let out = render(
            "LK11",
            "ALTER TABLE items ADD COLUMN id bigserial PRIMARY KEY;",
        );
        assert!(
            out.contains(
                "adding column id to items as its primary key builds unique index items_pkey \
                 under ACCESS EXCLUSIVE"
            ),
            "{out}"
        );
        assert!(out.contains("LK04 reports the rewrite"), "{out}");
        assert!(
            out.contains("help: add the column without PRIMARY KEY"),
            "{out}"
        );
        let identity = render(
            "LK11",
            "ALTER TABLE items ADD COLUMN id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY;",
        );
        assert!(identity.contains("LK04 reports the rewrite"), "{identity}");
        let bare = render("LK11", "ALTER TABLE items ADD COLUMN id int PRIMARY KEY;");
        assert!(
            bare.contains("it fails as soon as the table has one"),
            "{bare}"
        );
    }

    #[test]
    fn passes_using_index_and_new_tables() {
        for sql in [
            "ALTER TABLE items ADD CONSTRAINT items_pkey PRIMARY KEY USING INDEX items_id_idx;",
            "CREATE TABLE items (id bigserial PRIMARY KEY);",
            "CREATE TABLE items (id int);\nALTER TABLE items ADD PRIMARY KEY (id);",
            "ALTER TABLE items ADD UNIQUE (id);",
            "ALTER TABLE items ADD COLUMN id bigint;",
        ] {
            assert_eq!(render("LK11", sql), "", "{sql}");
        }
    }

    fn cat() -> Catalog {
        let col = |not_null| Column {
            data_type: "bigint".into(),
            not_null,
            indexed: true,
        };
        let mut c = Catalog::default();
        c.tables.insert(
            "public.items".into(),
            Table {
                kind: 'r',
                bytes: 1 << 30,
                rows: 1e7,
                columns: HashMap::from([
                    ("id".to_string(), col(true)),
                    ("org".to_string(), col(false)),
                ]),
                ..Default::default()
            },
        );
        c.tables.insert(
            "public.tiny".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 4.0,
                ..Default::default()
            },
        );
        c.tables.insert(
            "public.events".into(),
            Table {
                kind: 'p',
                ..Default::default()
            },
        );
        c
    }

    #[test]
    fn the_catalog_drops_the_not_null_step_when_columns_are_not_null() {
        let opts = || Opts {
            catalog: Some(cat()),
            ..Default::default()
        };
        let out = render_with("LK11", "ALTER TABLE items ADD PRIMARY KEY (id);", opts());
        assert!(
            out.contains(
                "help: CREATE UNIQUE INDEX CONCURRENTLY items_pkey ON items (id); then ALTER TABLE"
            ),
            "{out}"
        );
        let two = render_with(
            "LK11",
            "ALTER TABLE items ADD PRIMARY KEY (id, org);",
            opts(),
        );
        assert!(
            two.contains("make org NOT NULL without a long lock"),
            "{two}"
        );
        let tiny = render_with("LK11", "ALTER TABLE tiny ADD PRIMARY KEY (id);", opts());
        assert!(
            tiny.contains("warning LK11") && tiny.contains("4 rows"),
            "{tiny}"
        );
        let part = render_with(
            "LK11",
            "ALTER TABLE events ADD PRIMARY KEY (id, at);",
            opts(),
        );
        assert!(
            part.contains("error LK11") && part.contains("on each partition"),
            "{part}"
        );
    }

    #[test]
    fn the_not_null_step_follows_the_version() {
        let out = render_with(
            "LK11",
            "ALTER TABLE items ADD CONSTRAINT items_pk PRIMARY KEY (id);",
            Opts {
                pg_version: 18,
                ..Default::default()
            },
        );
        assert!(
            out.contains("ADD CONSTRAINT items_id_not_null NOT NULL id NOT VALID"),
            "{out}"
        );
        assert!(out.contains("PRIMARY KEY USING INDEX items_pk"), "{out}");
    }

    #[test]
    fn a_serial_primary_key_column_raises_lk11_and_lk04() {
        let found = crate::lint::lint_text(
            "ALTER TABLE items ADD COLUMN id serial PRIMARY KEY;",
            17,
            crate::lint::Wrap::None,
        );
        let ids: Vec<&str> = found.iter().map(|f| f.rule).collect();
        assert!(ids.contains(&"LK11") && ids.contains(&"LK04"), "{ids:?}");
    }
}
