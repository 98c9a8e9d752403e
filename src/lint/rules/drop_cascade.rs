//! DL08 drop-cascade: any `DROP ... CASCADE` (table, view, type, domain, schema, function,
//! sequence, extension, ...), `ALTER TABLE ... DROP COLUMN/CONSTRAINT ... CASCADE` and
//! `DROP OWNED ... CASCADE`: PostgreSQL silently drops every dependent object too (views,
//! foreign keys of other tables, column defaults, even whole columns for a type or an
//! extension). Reported in addition to DL01–DL03 on the same statement.
//!
//! Severity: error. What goes is not written in the migration, can include data (columns of a
//! dropped type), and the safe alternative is always there: drop the dependents explicitly,
//! then the object without CASCADE (which fails loudly if something was missed).
//! A `DROP TABLE` or `DROP COLUMN` of a table created earlier in the same file or transaction is
//! exempt (its dependents were created there too, in plain sight). With `--database`, the
//! foreign keys of other tables that reference a dropped table are listed.
//!
//! Also home of [`referencing_fks`], which DL05 shares.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, DropBehavior, ObjectType};

use super::drop_table::{display, qualified};
use crate::lint::catalog::Catalog;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL08",
    name: "drop-cascade",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP ... CASCADE silently drops every object that depends on what is dropped",
    help: "drop the dependent objects explicitly first, then drop this one without CASCADE",
    check,
};

const CASCADE: i32 = DropBehavior::DropCascade as i32;

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::DropStmt(d) if d.behavior == CASCADE => drop_stmt(d, ctx),
        NodeEnum::AlterTableStmt(a) => alter(a, ctx),
        NodeEnum::DropOwnedStmt(d) if d.behavior == CASCADE => vec![Hit::new(
            "DROP OWNED ... CASCADE drops every object the roles own and everything that depends \
             on them, in every schema of the database",
        )
        .help(
            "drop the roles' objects explicitly (or REASSIGN OWNED first), then DROP OWNED \
             without CASCADE",
        )],
        _ => Vec::new(),
    }
}

fn drop_stmt(d: &pg_query::protobuf::DropStmt, ctx: &Context) -> Vec<Hit> {
    let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    let is_table = kind == ObjectType::ObjectTable;
    if is_table
        && d.objects
            .iter()
            .filter_map(qualified)
            .all(|(_, key)| ctx.is_new_table(&key))
    {
        return Vec::new();
    }
    let names: Vec<String> = d.objects.iter().map(display).collect();
    let (word, dependents) = describe(kind);
    let what = format!("DROP {word}{}", names.join(", "));
    let mut message = format!("{what} CASCADE also drops, without naming them, {dependents}");
    if is_table && let Some(cat) = &ctx.catalog {
        let fks: Vec<String> = d
            .objects
            .iter()
            .filter_map(qualified)
            .flat_map(|(_, key)| referencing_fks(cat, &key))
            .collect();
        if !fks.is_empty() {
            message.push_str(&format!(
                "; the catalog has these foreign keys on it: {}",
                fks.join(", ")
            ));
        }
    }
    vec![Hit::new(message).help(format!(
        "drop the dependents explicitly first (\\d+ or pg_depend shows them), then {what} \
         without CASCADE, which fails if one was missed"
    ))]
}

fn alter(a: &pg_query::protobuf::AlterTableStmt, ctx: &Context) -> Vec<Hit> {
    let Some(rv) = a.relation.as_ref() else {
        return Vec::new();
    };
    let is_type = a.objtype == ObjectType::ObjectType as i32;
    if a.objtype == ObjectType::ObjectTable as i32 && ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(cmd, _)| cmd.behavior == CASCADE)
        .filter_map(|(cmd, t)| {
            let name = &cmd.name;
            let (what, dependents) = match t {
                AlterTableType::AtDropColumn if !is_type => (
                    format!("DROP COLUMN {table}.{name} CASCADE"),
                    "the views that use the column and the foreign keys of other tables that \
                     reference it",
                ),
                AlterTableType::AtDropColumn => (
                    format!("DROP ATTRIBUTE {table}.{name} CASCADE"),
                    "the attribute in every typed table, with its data",
                ),
                AlterTableType::AtDropConstraint => (
                    format!("DROP CONSTRAINT {name} CASCADE on {table}"),
                    "the foreign keys of other tables that rely on it",
                ),
                _ => return None,
            };
            Some(
                Hit::new(format!(
                    "{what} also drops, without naming them, {dependents}"
                ))
                .help(
                    "drop the dependents explicitly first (\\d+ or pg_depend shows them), then run \
                     this without CASCADE, which fails if one was missed",
                ),
            )
        })
        .collect()
}

/// The SQL word for a dropped object kind (with a trailing space, empty when unknown) and what
/// CASCADE takes with it.
fn describe(kind: ObjectType) -> (&'static str, &'static str) {
    use ObjectType as O;
    match kind {
        O::ObjectTable | O::ObjectForeignTable => (
            if kind == O::ObjectTable {
                "TABLE "
            } else {
                "FOREIGN TABLE "
            },
            "the views built on it and the foreign keys of other tables that reference it",
        ),
        O::ObjectView => ("VIEW ", "the views built on it"),
        O::ObjectMatview => ("MATERIALIZED VIEW ", "the views built on it"),
        O::ObjectType => (
            "TYPE ",
            "every table column of that type, with its data, and the functions that use it",
        ),
        O::ObjectDomain => (
            "DOMAIN ",
            "every table column of that domain, with its data, and the functions that use it",
        ),
        O::ObjectSchema => ("SCHEMA ", "everything in the schema"),
        O::ObjectFunction | O::ObjectProcedure | O::ObjectRoutine | O::ObjectAggregate => (
            match kind {
                O::ObjectProcedure => "PROCEDURE ",
                O::ObjectRoutine => "ROUTINE ",
                O::ObjectAggregate => "AGGREGATE ",
                _ => "FUNCTION ",
            },
            "the triggers, column defaults, constraints, indexes and generated columns that use it",
        ),
        O::ObjectSequence => ("SEQUENCE ", "the column defaults that call nextval on it"),
        O::ObjectExtension => (
            "EXTENSION ",
            "everything that uses its types and functions, including table columns of its types \
             with their data",
        ),
        O::ObjectForeignServer => ("SERVER ", "its foreign tables and user mappings"),
        O::ObjectFdw => (
            "FOREIGN DATA WRAPPER ",
            "its servers and their foreign tables",
        ),
        O::ObjectIndex => ("INDEX ", "the foreign keys that rely on it"),
        _ => ("", "every object that depends on it"),
    }
}

/// Foreign keys of other tables that reference `table` (a key), from the catalog: `table
/// (constraint)`, sorted. The catalog gives each constraint's definition as text
/// (`FOREIGN KEY (a) REFERENCES t(id)`); it is parsed with PostgreSQL's parser to read the
/// referenced table. An unqualified name there is one visible on the catalog session's
/// search_path, taken as `public`.
pub(super) fn referencing_fks(cat: &Catalog, table: &str) -> Vec<String> {
    let mut out: Vec<String> = cat
        .constraints
        .iter()
        .filter(|((on, _), c)| c.kind == 'f' && on != table)
        .filter(|(_, c)| referenced_table(&c.definition).as_deref() == Some(table))
        .map(|((on, name), _)| format!("{} ({name})", on.strip_prefix("public.").unwrap_or(on)))
        .collect();
    out.sort();
    out
}

fn referenced_table(definition: &str) -> Option<String> {
    let parsed = pg_query::parse(&format!("ALTER TABLE x ADD {definition}"), 0).ok()?;
    let node = parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?;
    let (a, _) = ast::alter_table(node)?;
    let (cmd, _) = ast::alter_cmds(a).into_iter().next()?;
    ast::constraint_def(cmd)?.pktable.as_ref().map(ast::rel_key)
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Constraint};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_drop_table_cascade() {
        assert_eq!(
            render("DL08", "DROP TABLE users CASCADE;"),
            "m.sql:1:1: error DL08 drop-cascade: DROP TABLE users CASCADE also drops, without naming \
             them, the views built on it and the foreign keys of other tables that reference it\n  \
             1 | DROP TABLE users CASCADE\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: drop the dependents explicitly first (\\d+ or pg_depend shows them), then DROP \
             TABLE users without CASCADE, which fails if one was missed\n"
        );
    }

    #[test]
    fn flags_every_kind_of_cascading_drop() {
        let cases = [
            ("DROP TYPE mood CASCADE;", "with its data"),
            ("DROP DOMAIN email CASCADE;", "column of that domain"),
            ("DROP SCHEMA legacy CASCADE;", "everything in the schema"),
            (
                "DROP FUNCTION f(int, text) CASCADE;",
                "FUNCTION f(integer, text)",
            ),
            ("DROP PROCEDURE app.p CASCADE;", "PROCEDURE app.p"),
            ("DROP SEQUENCE s CASCADE;", "nextval"),
            ("DROP EXTENSION postgis CASCADE;", "columns of its types"),
            ("DROP VIEW v1, v2 CASCADE;", "VIEW v1, v2"),
            ("DROP MATERIALIZED VIEW mv CASCADE;", "MATERIALIZED VIEW mv"),
            ("DROP INDEX users_email_key CASCADE;", "foreign keys"),
            (
                "ALTER TABLE users DROP COLUMN email CASCADE;",
                "DROP COLUMN users.email",
            ),
            (
                "ALTER TABLE users DROP CONSTRAINT users_pkey CASCADE;",
                "CONSTRAINT users_pkey",
            ),
            ("ALTER TYPE pair DROP ATTRIBUTE b CASCADE;", "typed table"),
            (
                "ALTER FOREIGN TABLE ft DROP COLUMN c CASCADE;",
                "DROP COLUMN ft.c",
            ),
            (
                "DROP OWNED BY old_role CASCADE;",
                "every object the roles own",
            ),
        ];
        for (sql, expected) in cases {
            let out = render("DL08", sql);
            assert!(
                out.contains("error DL08") && out.contains(expected),
                "{sql}: {out}"
            );
        }
    }

    #[test]
    fn passes_restrict_and_new_tables() {
        assert_eq!(render("DL08", "DROP TABLE users;"), "");
        assert_eq!(render("DL08", "DROP TYPE mood RESTRICT;"), "");
        assert_eq!(render("DL08", "ALTER TABLE users DROP COLUMN email;"), "");
        assert_eq!(render("DL08", "DROP OWNED BY old_role;"), "");
        assert_eq!(render("DL08", "TRUNCATE users CASCADE;"), "");
        assert_eq!(
            render("DL08", "CREATE TABLE t (id int);\nDROP TABLE t CASCADE;"),
            ""
        );
        assert_eq!(
            render(
                "DL08",
                "CREATE TABLE t (id int, x int);\nALTER TABLE t DROP COLUMN x CASCADE;"
            ),
            ""
        );
        // One old table among the dropped ones is enough.
        let out = render(
            "DL08",
            "CREATE TABLE t (id int);\nDROP TABLE t, users CASCADE;",
        );
        assert!(out.contains("m.sql:2:1"), "{out}");
    }

    #[test]
    fn the_catalog_names_the_foreign_keys_that_go() {
        let mut cat = Catalog::default();
        let fk = |def: &str| Constraint {
            kind: 'f',
            validated: true,
            definition: def.into(),
        };
        cat.constraints.insert(
            ("public.orders".into(), "orders_user_id_fkey".into()),
            fk("FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"),
        );
        cat.constraints.insert(
            ("app.logins".into(), "logins_user_fkey".into()),
            fk("FOREIGN KEY (uid) REFERENCES public.users(id) NOT VALID"),
        );
        // Self-reference: goes with the table.
        cat.constraints.insert(
            ("public.users".into(), "users_parent_fkey".into()),
            fk("FOREIGN KEY (parent) REFERENCES users(id)"),
        );
        // Another table with the same name in another schema.
        cat.constraints.insert(
            ("public.x".into(), "x_fkey".into()),
            fk("FOREIGN KEY (a) REFERENCES app.users(id)"),
        );
        let out = render_with(
            "DL08",
            "DROP TABLE users CASCADE;",
            Opts {
                catalog: Some(cat),
                ..Default::default()
            },
        );
        assert!(
            out.contains(
                "the catalog has these foreign keys on it: app.logins (logins_user_fkey), orders \
                 (orders_user_id_fkey)\n"
            ),
            "{out}"
        );
    }
}
