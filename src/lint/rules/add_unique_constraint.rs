//! LK10 add-unique-constraint: `ADD [CONSTRAINT c] UNIQUE (...)` and `ADD COLUMN ... UNIQUE`
//! on a table that was not created earlier in the same file or transaction. `ADD CONSTRAINT c
//! UNIQUE USING INDEX i` passes: that is the safe path (RB02 covers an invalid index).
//!
//! The unique index is built while ALTER TABLE holds ACCESS EXCLUSIVE, so every read and write
//! of the table waits for the whole build.
//!
//! Severity: error, a lock hazard with a safe alternative: `CREATE UNIQUE INDEX CONCURRENTLY`,
//! then `ADD CONSTRAINT ... UNIQUE USING INDEX` (instant). With `--database`, a small table is
//! a warning, and for a partitioned table (where neither CONCURRENTLY nor USING INDEX works on
//! the parent) the advice is per partition.

use pg_query::protobuf::{AlterTableType, ConstrType, Constraint};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK10",
    name: "add-unique-constraint",
    severity: Severity::Error,
    default_on: true,
    summary: "ADD UNIQUE builds a unique index while the table is locked against reads and writes",
    help: "CREATE UNIQUE INDEX CONCURRENTLY, check that it is valid, then ADD CONSTRAINT ... \
           UNIQUE USING INDEX (instant)",
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
    let partitioned = known.is_some_and(|t| t.kind == 'p');
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        let (c, cols, column) = match t {
            AlterTableType::AtAddConstraint => {
                let Some(c) = ast::constraint_def(cmd) else {
                    continue;
                };
                let cols: Vec<String> = ast::strings(&c.keys)
                    .into_iter()
                    .map(String::from)
                    .collect();
                (c, cols, None)
            }
            AlterTableType::AtAddColumn => {
                let Some(col) = ast::column_def(cmd) else {
                    continue;
                };
                let Some(c) = ast::column_constraints(col)
                    .into_iter()
                    .find(|c| ast::constr_type(c) == ConstrType::ConstrUnique)
                else {
                    continue;
                };
                (c, vec![col.colname.clone()], Some(col.colname.as_str()))
            }
            _ => continue,
        };
        if ast::constr_type(c) != ConstrType::ConstrUnique || !c.indexname.is_empty() {
            continue;
        }
        let name = if c.conname.is_empty() {
            format!("{}_{}_key", rv.relname, cols.join("_"))
        } else {
            c.conname.clone()
        };
        let message = match column {
            Some(col) => format!(
                "adding column {col} to {table} with UNIQUE builds unique index {name} under \
                 ACCESS EXCLUSIVE: every read and write of {table} waits for the whole build"
            ),
            None => format!(
                "adding unique constraint {name} on {table} ({}) builds its unique index under \
                 ACCESS EXCLUSIVE: every read and write of {table} waits for the whole build",
                cols.join(", ")
            ),
        };
        let first = if column.is_some() {
            "add the column without UNIQUE, then "
        } else {
            ""
        };
        let help = if partitioned {
            format!(
                "{first}{table} is partitioned, and neither CONCURRENTLY nor USING INDEX works on \
                 the parent: on each partition, CREATE UNIQUE INDEX CONCURRENTLY and ALTER TABLE \
                 <partition> ADD CONSTRAINT ... UNIQUE USING INDEX; then this ALTER TABLE adopts \
                 the partitions' constraints instead of building"
            )
        } else {
            format!("{first}{}", recipe(&table, &name, &cols, c))
        };
        hits.push(Hit::new(message).help(help));
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

/// CIC, then USING INDEX, keeping NULLS NOT DISTINCT, INCLUDE and DEFERRABLE.
fn recipe(table: &str, name: &str, cols: &[String], c: &Constraint) -> String {
    let nulls = if c.nulls_not_distinct {
        " NULLS NOT DISTINCT"
    } else {
        ""
    };
    let include = ast::strings(&c.including);
    let include = if include.is_empty() {
        String::new()
    } else {
        format!(" INCLUDE ({})", include.join(", "))
    };
    let deferrable = match (c.deferrable, c.initdeferred) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    };
    format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({}){include}{nulls}; check that it \
         is valid (a failed build leaves an INVALID index); then ALTER TABLE {table} ADD \
         CONSTRAINT {name} UNIQUE USING INDEX {name}{deferrable} (instant)",
        cols.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_a_unique_constraint() {
        assert_eq!(
            render(
                "LK10",
                "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);"
            ),
            "m.sql:1:1: error LK10 add-unique-constraint: adding unique constraint \
             users_email_key on users (email) builds its unique index under ACCESS EXCLUSIVE: \
             every read and write of users waits for the whole build\n  \
             1 | ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email); check that \
             it is valid (a failed build leaves an INVALID index); then ALTER TABLE users ADD \
             CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key (instant)\n"
        );
    }

    #[test]
    fn unnamed_multi_column_and_options_are_kept() {
        let out = render(
            "LK10",
            "ALTER TABLE app.members ADD UNIQUE NULLS NOT DISTINCT (org_id, user_id) INCLUDE (role) \
             DEFERRABLE;",
        );
        assert!(
            out.contains(
                "CREATE UNIQUE INDEX CONCURRENTLY members_org_id_user_id_key ON app.members \
                 (org_id, user_id) INCLUDE (role) NULLS NOT DISTINCT;"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "ADD CONSTRAINT members_org_id_user_id_key UNIQUE USING INDEX \
                 members_org_id_user_id_key DEFERRABLE (instant)"
            ),
            "{out}"
        );
    }

    #[test]
    fn flags_a_unique_new_column() {
        let out = render("LK10", "ALTER TABLE users ADD COLUMN handle text UNIQUE;");
        assert!(
            out.contains(
                "adding column handle to users with UNIQUE builds unique index users_handle_key"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "help: add the column without UNIQUE, then CREATE UNIQUE INDEX CONCURRENTLY"
            ),
            "{out}"
        );
    }

    #[test]
    fn passes_using_index_new_tables_and_other_constraints() {
        for sql in [
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;",
            "CREATE TABLE users (email text UNIQUE);",
            "CREATE TABLE users (email text);\nALTER TABLE users ADD UNIQUE (email);",
            "ALTER TABLE users ADD PRIMARY KEY (id);",
            "ALTER TABLE users ADD COLUMN handle text;",
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);",
        ] {
            assert_eq!(render("LK10", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_lowers_small_tables_and_explains_partitioned_ones() {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.small".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 2.0,
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
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        let small = render_with("LK10", "ALTER TABLE small ADD UNIQUE (a);", opts());
        assert!(
            small.contains("warning LK10") && small.contains("2 rows"),
            "{small}"
        );
        let part = render_with("LK10", "ALTER TABLE events ADD UNIQUE (id, at);", opts());
        assert!(
            part.contains("error LK10") && part.contains("on each partition"),
            "{part}"
        );
    }
}
