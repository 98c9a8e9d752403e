//! LK06 set-not-null-scan: `ALTER COLUMN ... SET NOT NULL` (and PostgreSQL 18's `ADD
//! CONSTRAINT n NOT NULL col` without `NOT VALID`) on a table that was not created earlier in
//! the same file or transaction. With `--database`, also `ADD PRIMARY KEY (...)` over columns
//! the catalog shows as nullable, and `ADD PRIMARY KEY USING INDEX` on a table with nullable
//! indexed columns (the catalog does not say which columns the index covers, so that one is
//! a warning about what may happen).
//!
//! Making a column NOT NULL scans the whole table under ACCESS EXCLUSIVE to look for NULLs.
//! Exempt: PostgreSQL 12+ when a validated `CHECK (col IS NOT NULL)` exists, added earlier in
//! the run (`Context::has_not_null_check`) or found in the catalog; and a column the catalog
//! shows as NOT NULL already.
//!
//! Severity: error, a lock hazard with a safe alternative: on 12+, the CHECK ... NOT VALID /
//! VALIDATE recipe makes SET NOT NULL instant; on 18+, `ADD CONSTRAINT ... NOT NULL col NOT
//! VALID` and a later `VALIDATE CONSTRAINT`. With `--database`, a small table is a warning.
//!
//! The recipe text is shared with LK04 and LK11 ([`not_null_recipe`]).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, BoolExprType, ConstrType, Constraint, RangeVar};

use super::add_check_validating::check_definition_expr;
use crate::lint::context::is_not_null_test;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK06",
    name: "set-not-null-scan",
    severity: Severity::Error,
    default_on: true,
    summary: "SET NOT NULL (or a primary key over nullable columns) scans the whole table under \
              ACCESS EXCLUSIVE",
    help: "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later transaction, \
           then SET NOT NULL skips the scan (PostgreSQL 12+); on 18+, ADD CONSTRAINT ... NOT NULL \
           col NOT VALID and VALIDATE it",
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
    let v = ctx.pg_version;
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        match t {
            AlterTableType::AtSetNotNull if !exempt(ctx, &key, &cmd.name) => {
                hits.push(
                    Hit::new(format!(
                        "SET NOT NULL on {table}.{} scans every row of {table} under ACCESS \
                         EXCLUSIVE to look for NULLs: reads and writes wait until the scan \
                         finishes{}",
                        cmd.name,
                        before_12(v)
                    ))
                    .help(format!("instead: {}", not_null_recipe(rv, &cmd.name, v))),
                );
            }
            AlterTableType::AtAddConstraint => {
                let Some(c) = ast::constraint_def(cmd) else {
                    continue;
                };
                match ast::constr_type(c) {
                    ConstrType::ConstrNotnull if !c.skip_validation => {
                        let Some(col) = ast::strings(&c.keys).first().map(|s| s.to_string()) else {
                            continue;
                        };
                        if !exempt(ctx, &key, &col) {
                            hits.push(
                                Hit::new(format!(
                                    "adding NOT NULL constraint{} on {table}.{col} scans every \
                                     row of {table} under ACCESS EXCLUSIVE to look for NULLs",
                                    if c.conname.is_empty() {
                                        String::new()
                                    } else {
                                        format!(" {}", c.conname)
                                    }
                                ))
                                .help(format!(
                                    "add it NOT VALID and validate it in a later transaction: {}",
                                    not_null_recipe(rv, &col, v.max(18))
                                )),
                            );
                        }
                    }
                    ConstrType::ConstrPrimary => hits.extend(primary_key(ctx, rv, c)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.is_small()
    {
        for h in &mut hits {
            h.severity = Some(h.severity.map_or(Severity::Warning, |_| Severity::Info));
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

fn before_12(v: u32) -> String {
    if v < 12 {
        format!(" (PostgreSQL {v} scans even when a validated CHECK proves it; 12+ does not)")
    } else {
        String::new()
    }
}

/// The NOT NULL that `ADD PRIMARY KEY` implies, on the columns the catalog shows nullable.
fn primary_key(ctx: &Context, rv: &RangeVar, c: &Constraint) -> Option<Hit> {
    let cat = ctx.catalog.as_ref()?;
    let key = ast::rel_key(rv);
    let t = cat.table(&key)?;
    let table = ast::rel_name(rv);
    let v = ctx.pg_version;
    if !c.indexname.is_empty() {
        // USING INDEX: the catalog does not say which columns the index covers.
        let mut maybe: Vec<&str> = t
            .columns
            .iter()
            .filter(|(name, col)| col.indexed && !exempt(ctx, &key, name))
            .map(|(name, _)| name.as_str())
            .collect();
        if maybe.is_empty() {
            return None;
        }
        maybe.sort_unstable();
        return Some(
            Hit::new(format!(
                "PRIMARY KEY USING INDEX {} makes the index's columns NOT NULL, and {table} has \
                 nullable indexed columns ({}): if the index covers any of them, {table} is \
                 scanned under ACCESS EXCLUSIVE to look for NULLs",
                c.indexname,
                maybe.join(", ")
            ))
            .severity(Severity::Warning)
            .help(format!(
                "make the index's columns NOT NULL first, one at a time: {}",
                not_null_recipe(rv, maybe[0], v)
            )),
        );
    }
    let cols: Vec<&str> = ast::strings(&c.keys)
        .into_iter()
        .filter(|col| t.columns.get(*col).is_some_and(|k| !k.not_null) && !exempt(ctx, &key, col))
        .collect();
    let first = *cols.first()?;
    let list = cols
        .iter()
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(
        Hit::new(format!(
            "the primary key makes {list} NOT NULL, which scans every row of {table} under ACCESS \
             EXCLUSIVE to look for NULLs (on top of the index build LK11 reports)"
        ))
        .help(format!(
            "make {} NOT NULL first, then add the primary key: {}",
            if cols.len() == 1 {
                "the column"
            } else {
                "each column"
            },
            not_null_recipe(rv, first, v)
        )),
    )
}

/// Whether making `col` NOT NULL needs no scan: the catalog says it already is, or (12+) a
/// validated `CHECK (col IS NOT NULL)` exists, from earlier in the run or in the catalog.
fn exempt(ctx: &Context, key: &str, col: &str) -> bool {
    let v12 = ctx.pg_version >= 12;
    if v12 && ctx.has_not_null_check(key, col) {
        return true;
    }
    let Some(cat) = ctx.catalog.as_ref() else {
        return false;
    };
    if cat
        .table(key)
        .and_then(|t| t.columns.get(col))
        .is_some_and(|c| c.not_null)
    {
        return true;
    }
    v12 && cat.constraints.iter().any(|((t, _), con)| {
        t == key
            && con.kind == 'c'
            && con.validated
            && check_definition_expr(&con.definition)
                .is_some_and(|e| not_null_columns(&e).iter().any(|c| c == col))
    })
}

/// Columns a CHECK expression proves NOT NULL: `col IS NOT NULL`, alone or in an AND.
pub(super) fn not_null_columns(e: &NodeEnum) -> Vec<String> {
    match e {
        NodeEnum::BoolExpr(b) if b.boolop == BoolExprType::AndExpr as i32 => b
            .args
            .iter()
            .filter_map(|a| a.node.as_ref())
            .flat_map(not_null_columns)
            .collect(),
        _ => is_not_null_test(&pg_query::protobuf::Node {
            node: Some(e.clone()),
        })
        .into_iter()
        .collect(),
    }
}

/// The safe way to make `col` of `rv` NOT NULL on `pg_version`, as statements.
pub(super) fn not_null_recipe(rv: &RangeVar, col: &str, pg_version: u32) -> String {
    let table = ast::rel_name(rv);
    let rel = &rv.relname;
    if pg_version >= 18 {
        let name = format!("{rel}_{col}_not_null");
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} NOT NULL {col} NOT VALID; then, in a later \
             transaction, ALTER TABLE {table} VALIDATE CONSTRAINT {name} (SHARE UPDATE EXCLUSIVE: \
             reads and writes go on; PostgreSQL 18+)"
        )
    } else if pg_version >= 12 {
        let name = format!("{rel}_{col}_check");
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({col} IS NOT NULL) NOT VALID; then, \
             in a later transaction, ALTER TABLE {table} VALIDATE CONSTRAINT {name} (SHARE UPDATE \
             EXCLUSIVE); then ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL, which skips \
             the scan, and ALTER TABLE {table} DROP CONSTRAINT {name}"
        )
    } else {
        format!(
            "PostgreSQL {pg_version} cannot skip the scan: keep a CHECK ({col} IS NOT NULL) added \
             NOT VALID and validated in a later transaction instead of NOT NULL, or run SET NOT \
             NULL in a maintenance window (PostgreSQL 12+ skips the scan when that CHECK exists)"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::lint::Wrap;
    use crate::lint::catalog::{Catalog, Column, Constraint, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn cat() -> Catalog {
        let col = |not_null, indexed| Column {
            data_type: "text".into(),
            not_null,
            indexed,
        };
        let mut c = Catalog::default();
        c.tables.insert(
            "public.users".into(),
            Table {
                kind: 'r',
                bytes: 1 << 30,
                rows: 5e6,
                columns: HashMap::from([
                    ("id".to_string(), col(false, true)),
                    ("email".to_string(), col(false, true)),
                    ("name".to_string(), col(true, false)),
                    ("nick".to_string(), col(false, false)),
                    ("phone".to_string(), col(false, false)),
                ]),
                ..Default::default()
            },
        );
        c.constraints.insert(
            ("public.users".into(), "users_phone_check".into()),
            Constraint {
                kind: 'c',
                validated: true,
                definition: "CHECK (((phone IS NOT NULL) AND (length(phone) > 3)))".into(),
            },
        );
        c.constraints.insert(
            ("public.users".into(), "users_nick_check".into()),
            Constraint {
                kind: 'c',
                validated: false,
                definition: "CHECK ((nick IS NOT NULL)) NOT VALID".into(),
            },
        );
        c
    }

    fn with(v: u32, catalog: Option<Catalog>) -> Opts {
        Opts {
            pg_version: v,
            catalog,
            ..Default::default()
        }
    }

    #[test]
    fn flags_set_not_null() {
        assert_eq!(
            render("LK06", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
            "m.sql:1:1: error LK06 set-not-null-scan: SET NOT NULL on users.email scans every row \
             of users under ACCESS EXCLUSIVE to look for NULLs: reads and writes wait until the \
             scan finishes\n  \
             1 | ALTER TABLE users ALTER COLUMN email SET NOT NULL\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: instead: ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email IS \
             NOT NULL) NOT VALID; then, in a later transaction, ALTER TABLE users VALIDATE \
             CONSTRAINT users_email_check (SHARE UPDATE EXCLUSIVE); then ALTER TABLE users ALTER \
             COLUMN email SET NOT NULL, which skips the scan, and ALTER TABLE users DROP \
             CONSTRAINT users_email_check\n"
        );
    }

    #[test]
    fn the_advice_follows_the_version() {
        let v18 = render_with(
            "LK06",
            "ALTER TABLE users ALTER email SET NOT NULL;",
            with(18, None),
        );
        assert!(
            v18.contains("ADD CONSTRAINT users_email_not_null NOT NULL email NOT VALID"),
            "{v18}"
        );
        let v11 = render_with(
            "LK06",
            "ALTER TABLE users ALTER email SET NOT NULL;",
            with(11, None),
        );
        assert!(
            v11.contains("PostgreSQL 11 scans even when a validated CHECK"),
            "{v11}"
        );
        assert!(v11.contains("PostgreSQL 11 cannot skip the scan"), "{v11}");
    }

    #[test]
    fn the_check_recipe_exempts_set_not_null_from_12_on() {
        let recipe = "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email IS NOT NULL) \
                      NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_email_check;\n\
                      ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        assert_eq!(render("LK06", recipe), "");
        assert_eq!(render_with("LK06", recipe, with(12, None)), "");
        // PostgreSQL 11 scans anyway.
        assert!(render_with("LK06", recipe, with(11, None)).contains("m.sql:3:1"));
        // A CHECK that was added valid at once counts too.
        let valid = "ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL);\n\
                     ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        assert_eq!(render("LK06", valid), "");
        // A NOT VALID check that was never validated does not.
        let unvalidated = "ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID;\n\
                           ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        assert!(render("LK06", unvalidated).contains("m.sql:2:1"));
        // A check on another column does not either.
        let other = "ALTER TABLE users ADD CONSTRAINT c CHECK (name IS NOT NULL);\n\
                     ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        assert!(render("LK06", other).contains("m.sql:2:1"));
    }

    #[test]
    fn the_recipe_across_migrations_in_separate_files() {
        let mut ctx = crate::lint::Context::new(17, None);
        let mut out = crate::lint::Outcome::default();
        let sel = crate::lint::Selection {
            enable: ["LK06".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for text in [
            "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email IS NOT NULL) NOT VALID;",
            "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        ] {
            crate::lint::lint_source(
                &crate::lint::Source {
                    name: "m.sql".into(),
                    text,
                    drizzle: false,
                    wrap: Wrap::File,
                },
                &mut ctx,
                &sel,
                &mut out,
            );
        }
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn passes_new_tables_and_other_alters() {
        for sql in [
            "CREATE TABLE users (email text);\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
            "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';",
            "ALTER TABLE users ADD CONSTRAINT n NOT NULL email NOT VALID;",
            "ALTER TABLE users ADD PRIMARY KEY (id);",
        ] {
            assert_eq!(render("LK06", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_pg18_not_null_constraint_without_not_valid_scans() {
        let out = render_with(
            "LK06",
            "ALTER TABLE users ADD CONSTRAINT users_email_nn NOT NULL email;",
            with(18, None),
        );
        assert!(
            out.contains("adding NOT NULL constraint users_email_nn on users.email"),
            "{out}"
        );
        assert!(out.contains("NOT NULL email NOT VALID"), "{out}");
    }

    #[test]
    fn the_catalog_knows_not_null_columns_and_checks() {
        let sql = |c: &str| format!("ALTER TABLE users ALTER COLUMN {c} SET NOT NULL;");
        // Already NOT NULL.
        assert_eq!(render_with("LK06", &sql("name"), with(17, Some(cat()))), "");
        // A validated CHECK (phone IS NOT NULL AND ...) in the catalog.
        assert_eq!(
            render_with("LK06", &sql("phone"), with(17, Some(cat()))),
            ""
        );
        assert!(render_with("LK06", &sql("phone"), with(11, Some(cat()))).contains("error LK06"));
        // A NOT VALID one does not count.
        assert!(render_with("LK06", &sql("nick"), with(17, Some(cat()))).contains("error LK06"));
        assert!(render_with("LK06", &sql("email"), with(17, Some(cat()))).contains("error LK06"));
    }

    #[test]
    fn a_primary_key_over_nullable_columns_scans() {
        let out = render_with(
            "LK06",
            "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id, name);",
            with(17, Some(cat())),
        );
        assert!(
            out.contains(
                "the primary key makes users.id NOT NULL, which scans every row of users under \
                 ACCESS EXCLUSIVE"
            ),
            "{out}"
        );
        assert!(
            out.contains("users_id_check CHECK (id IS NOT NULL) NOT VALID"),
            "{out}"
        );
        assert_eq!(
            render_with(
                "LK06",
                "ALTER TABLE users ADD PRIMARY KEY (name, phone);",
                with(17, Some(cat()))
            ),
            ""
        );
    }

    #[test]
    fn primary_key_using_index_may_scan() {
        let out = render_with(
            "LK06",
            "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;",
            with(17, Some(cat())),
        );
        assert!(out.contains("warning LK06"), "{out}");
        assert!(
            out.contains("nullable indexed columns (email, id)"),
            "{out}"
        );
        let mut all_not_null = cat();
        for c in all_not_null
            .tables
            .get_mut("public.users")
            .unwrap()
            .columns
            .values_mut()
        {
            c.not_null = true;
        }
        assert_eq!(
            render_with(
                "LK06",
                "ALTER TABLE users ADD PRIMARY KEY USING INDEX users_id_idx;",
                with(17, Some(all_not_null))
            ),
            ""
        );
        // Without the catalog nothing is known.
        assert_eq!(
            render(
                "LK06",
                "ALTER TABLE users ADD PRIMARY KEY USING INDEX users_id_idx;"
            ),
            ""
        );
    }

    #[test]
    fn small_tables_are_a_warning() {
        let mut c = cat();
        let t = c.tables.get_mut("public.users").unwrap();
        t.rows = 10.0;
        t.bytes = 16384;
        let out = render_with(
            "LK06",
            "ALTER TABLE users ALTER email SET NOT NULL;",
            with(17, Some(c)),
        );
        assert!(
            out.contains("warning LK06") && out.contains("users is small: 10 rows"),
            "{out}"
        );
    }
}
