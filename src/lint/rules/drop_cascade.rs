//! DL08 drop-cascade: any `DROP ... CASCADE` (table, view, type, domain, schema, function,
//! sequence, extension, ...), `ALTER TABLE ... DROP COLUMN/CONSTRAINT ... CASCADE` and
//! `DROP OWNED ... CASCADE`: PostgreSQL silently drops every dependent object too (views,
//! foreign keys of other tables, column defaults, even whole columns for a type or an
//! extension).
//!
//! With the catalog (`--database`, and the rehearsal's lint) it is reported only when something
//! really depends on what is dropped: the catalog's dependencies (pg_depend) plus what earlier
//! statements of the run made depend on it, less what they dropped already; the finding names
//! the dependents. drizzle-kit writes `CASCADE` on every table drop: where nothing depends on
//! the table there is no finding. Without the catalog (or for an object the catalog does not
//! know), the dependents are unknown: a `DROP TABLE` or `DROP COLUMN` of an existing table, which
//! DL01 / DL02 already report, gets DL08 at info level only; other drops at error.
//!
//! Severity: error. What goes is not written in the migration, can include data (columns of a
//! dropped type), and the safe alternative is always there: drop the dependents explicitly,
//! then the object without CASCADE (which fails loudly if something was missed).
//! A `DROP TABLE` or `DROP COLUMN` of a table created earlier in the same file or transaction is
//! exempt (its dependents were created there too, in plain sight).
//!
//! Also home of [`referencing_fks`], which DL05 shares.

use std::collections::HashSet;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, DropBehavior, ObjectType};

use super::drop_table::{display, qualified};
use crate::lint::catalog::{Catalog, Dependent, Object, Part};
use crate::lint::objects::drop_object;
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

/// How many dependents a message names.
const SHOWN: usize = 8;

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
    let help = format!(
        "drop the dependents explicitly first (\\d+ or pg_depend shows them), then {what} \
         without CASCADE, which fails if one was missed"
    );
    let objects: Option<Vec<Object>> = d.objects.iter().map(|o| drop_object(kind, o)).collect();
    if let Some(objects) = objects
        && let Some(found) = known_dependents(ctx, &objects)
    {
        if found.is_empty() {
            return Vec::new();
        }
        return vec![
            Hit::new(format!(
                "{what} CASCADE also drops what depends on it: {}",
                list(&found, schema_size(ctx, &objects))
            ))
            .help(help),
        ];
    }
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
    let hit = Hit::new(message).help(help);
    vec![if is_table {
        unknown(hit, ctx, "DL01")
    } else {
        hit
    }]
}

/// Without the catalog's dependencies, a drop that DL01 or DL02 already reports is only
/// information: nothing says anything depends on it.
fn unknown(hit: Hit, ctx: &Context, base: &str) -> Hit {
    let how = if ctx.catalog.is_some() {
        "the catalog does not know it (created or renamed earlier in this run)"
    } else {
        "lint with --database (or rehearse with pgship plan) to learn whether anything does"
    };
    let message = format!("{} ({base} reports the drop itself; {how})", hit.message);
    Hit { message, ..hit }.severity(Severity::Info)
}

/// What depends on `objects` and is not dropped with them or before them: `None` when the
/// dependencies are unknown (no catalog, or an object that neither the catalog nor the run
/// knows).
fn known_dependents(ctx: &Context, objects: &[Object]) -> Option<Vec<String>> {
    let cat = ctx.catalog.as_ref().filter(|c| c.dependents.is_some())?;
    let going: HashSet<&str> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Relation(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for object in objects {
        let deps = dependents(cat, ctx, object)?;
        out.extend(
            deps.into_iter()
                .filter(|d| d.owner.as_deref().is_none_or(|o| !going.contains(o)))
                .map(|d| d.description.clone()),
        );
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// The catalog's dependents of `object` and those the run created, less those an earlier
/// statement dropped; `None` when neither knows the object.
fn dependents<'a>(
    cat: &'a Catalog,
    ctx: &'a Context,
    object: &Object,
) -> Option<Vec<&'a Dependent>> {
    let from_catalog = cat.dependents_of(&ctx.objects.original(object));
    if from_catalog.is_none() && !ctx.objects.created(object) {
        return None;
    }
    Some(
        from_catalog
            .unwrap_or(&[])
            .iter()
            .chain(ctx.objects.dependents(object))
            .filter(|d| !ctx.objects.is_gone(d))
            .collect(),
    )
}

/// The number of objects in the dropped schema, when one is dropped (the catalog lists only
/// the first few).
fn schema_size(ctx: &Context, objects: &[Object]) -> Option<i64> {
    let cat = ctx.catalog.as_ref()?;
    let sizes: Vec<i64> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Schema(s) => cat.schema_sizes.get(s).copied(),
            _ => None,
        })
        .collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum())
}

/// `a, b, c and 4 more`.
fn list(found: &[String], total: Option<i64>) -> String {
    let total = total.map_or(found.len(), |t| (t as usize).max(found.len()));
    let shown: Vec<&str> = found.iter().take(SHOWN).map(String::as_str).collect();
    let rest = total - shown.len();
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{} and {rest} more", shown.join(", "))
    }
}

fn alter(a: &pg_query::protobuf::AlterTableStmt, ctx: &Context) -> Vec<Hit> {
    let Some(rv) = a.relation.as_ref() else {
        return Vec::new();
    };
    let is_type = a.objtype == ObjectType::ObjectType as i32;
    let is_table = a.objtype == ObjectType::ObjectTable as i32;
    let key = ast::rel_key(rv);
    if is_table && ctx.is_new_table(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(cmd, _)| cmd.behavior == CASCADE)
        .filter_map(|(cmd, t)| {
            let name = &cmd.name;
            let (what, dependents, part) = match t {
                AlterTableType::AtDropColumn if !is_type => (
                    format!("DROP COLUMN {table}.{name} CASCADE"),
                    "the views that use the column and the foreign keys of other tables that \
                     reference it",
                    Some(Part::Column(name.clone())),
                ),
                AlterTableType::AtDropColumn => (
                    format!("DROP ATTRIBUTE {table}.{name} CASCADE"),
                    "the attribute in every typed table, with its data",
                    None,
                ),
                AlterTableType::AtDropConstraint => (
                    format!("DROP CONSTRAINT {name} CASCADE on {table}"),
                    "the foreign keys of other tables that rely on it",
                    Some(Part::Constraint(name.clone())),
                ),
                _ => return None,
            };
            // DL02 reports the column drop of a table (not of a foreign table).
            let reported = is_table && matches!(part, Some(Part::Column(_)));
            part_hit(
                ctx,
                &key,
                part.filter(|_| !is_type),
                &what,
                dependents,
                reported,
            )
        })
        .collect()
}

/// The finding of a column or constraint dropped with CASCADE: the dependents when known
/// (none: no finding), else what CASCADE can take.
fn part_hit(
    ctx: &Context,
    key: &str,
    part: Option<Part>,
    what: &str,
    dependents: &str,
    reported: bool,
) -> Option<Hit> {
    let help = "drop the dependents explicitly first (\\d+ or pg_depend shows them), then run \
                this without CASCADE, which fails if one was missed";
    match part.and_then(|p| part_dependents(ctx, key, &p)) {
        Some(found) if found.is_empty() => None,
        Some(found) => Some(
            Hit::new(format!(
                "{what} also drops what depends on it: {}",
                list(&found, None)
            ))
            .help(help),
        ),
        None => {
            let hit = Hit::new(format!(
                "{what} also drops, without naming them, {dependents}"
            ))
            .help(help);
            Some(if reported {
                unknown(hit, ctx, "DL02")
            } else {
                hit
            })
        }
    }
}

/// What depends on a column or constraint of `table`; `None` when unknown.
fn part_dependents(ctx: &Context, table: &str, part: &Part) -> Option<Vec<String>> {
    let cat = ctx.catalog.as_ref().filter(|c| c.dependents.is_some())?;
    let deps = dependents(cat, ctx, &Object::Relation(table.to_string()))?;
    let mut out: Vec<String> = deps
        .into_iter()
        .filter(|d| d.on.as_ref() == Some(part))
        .map(|d| d.description.clone())
        .collect();
    out.sort();
    out.dedup();
    Some(out)
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
    use std::collections::HashMap;

    use crate::lint::catalog::{Catalog, Constraint, Dependent, Object, Part, Table};
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn without_the_catalog_a_table_drop_is_information_next_to_dl01() {
        assert_eq!(
            render("DL08", "DROP TABLE users CASCADE;"),
            "m.sql:1:1: info DL08 drop-cascade: DROP TABLE users CASCADE also drops, without naming \
             them, the views built on it and the foreign keys of other tables that reference it \
             (DL01 reports the drop itself; lint with --database (or rehearse with pgship plan) to \
             learn whether anything does)\n  \
             1 | DROP TABLE users CASCADE\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: drop the dependents explicitly first (\\d+ or pg_depend shows them), then DROP \
             TABLE users without CASCADE, which fails if one was missed\n"
        );
    }

    #[test]
    fn flags_every_kind_of_cascading_drop() {
        let cases = [
            ("DROP TYPE mood CASCADE;", "with its data", "error"),
            (
                "DROP DOMAIN email CASCADE;",
                "column of that domain",
                "error",
            ),
            (
                "DROP SCHEMA legacy CASCADE;",
                "everything in the schema",
                "error",
            ),
            (
                "DROP FUNCTION f(int, text) CASCADE;",
                "FUNCTION f(integer, text)",
                "error",
            ),
            ("DROP PROCEDURE app.p CASCADE;", "PROCEDURE app.p", "error"),
            ("DROP SEQUENCE s CASCADE;", "nextval", "error"),
            (
                "DROP EXTENSION postgis CASCADE;",
                "columns of its types",
                "error",
            ),
            ("DROP VIEW v1, v2 CASCADE;", "VIEW v1, v2", "error"),
            (
                "DROP MATERIALIZED VIEW mv CASCADE;",
                "MATERIALIZED VIEW mv",
                "error",
            ),
            (
                "DROP INDEX users_email_key CASCADE;",
                "foreign keys",
                "error",
            ),
            (
                "ALTER TABLE users DROP COLUMN email CASCADE;",
                "DROP COLUMN users.email",
                "info",
            ),
            (
                "ALTER TABLE users DROP CONSTRAINT users_pkey CASCADE;",
                "CONSTRAINT users_pkey",
                "error",
            ),
            (
                "ALTER TYPE pair DROP ATTRIBUTE b CASCADE;",
                "typed table",
                "error",
            ),
            (
                "ALTER FOREIGN TABLE ft DROP COLUMN c CASCADE;",
                "DROP COLUMN ft.c",
                "error",
            ),
            (
                "DROP OWNED BY old_role CASCADE;",
                "every object the roles own",
                "error",
            ),
        ];
        for (sql, expected, severity) in cases {
            let out = render("DL08", sql);
            assert!(
                out.contains(&format!("{severity} DL08")) && out.contains(expected),
                "{sql}: {out}"
            );
        }
        // The column drop DL02 reports is information, with where to learn more.
        let out = render("DL08", "ALTER TABLE users DROP COLUMN email CASCADE;");
        assert!(out.contains("(DL02 reports the drop itself;"), "{out}");
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
    fn a_catalog_without_dependencies_names_the_foreign_keys_that_go() {
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
                 (orders_user_id_fkey)"
            ),
            "{out}"
        );
    }

    fn dep(
        on: Option<Part>,
        description: &str,
        owner: &str,
        owner_part: Option<Part>,
    ) -> Dependent {
        Dependent {
            on,
            description: description.into(),
            owner: (!owner.is_empty()).then(|| owner.to_string()),
            owner_part,
        }
    }

    /// A catalog as `catalog::load` reads it from a database with users (referenced by orders
    /// and by itself, read by a view), lonely (nothing depends on it), the types mood (a column
    /// of users) and unused, and the schema legacy (12 objects).
    fn catalog() -> Catalog {
        let col = |c: &str| Some(Part::Column(c.into()));
        let con = |c: &str| Some(Part::Constraint(c.into()));
        let fk_orders = "constraint orders_user_id_fkey on table orders";
        let fk_self = "constraint users_parent_fkey on table users";
        let mut deps: HashMap<Object, Vec<Dependent>> = HashMap::new();
        deps.insert(
            Object::Relation("public.users".into()),
            vec![
                dep(
                    col("id"),
                    fk_orders,
                    "public.orders",
                    con("orders_user_id_fkey"),
                ),
                dep(
                    con("users_pkey"),
                    fk_orders,
                    "public.orders",
                    con("orders_user_id_fkey"),
                ),
                dep(col("id"), fk_self, "public.users", con("users_parent_fkey")),
                dep(
                    con("users_pkey"),
                    fk_self,
                    "public.users",
                    con("users_parent_fkey"),
                ),
                dep(col("id"), "view active_users", "public.active_users", None),
                dep(
                    col("mail"),
                    "view active_users",
                    "public.active_users",
                    None,
                ),
            ],
        );
        for (kind, key) in [
            ("r", "public.lonely"),
            ("r", "public.orders"),
            ("r", "public.active_users"),
            ("t", "public.unused"),
        ] {
            let o = if kind == "r" {
                Object::Relation(key.into())
            } else {
                Object::Type(key.into())
            };
            deps.insert(o, Vec::new());
        }
        deps.insert(
            Object::Type("public.mood".into()),
            vec![dep(
                None,
                "column m of table users",
                "public.users",
                col("m"),
            )],
        );
        deps.insert(
            Object::Schema("legacy".into()),
            vec![
                dep(None, "table legacy.a", "", None),
                dep(None, "table legacy.b", "", None),
            ],
        );
        let mut cat = Catalog {
            dependents: Some(deps),
            ..Default::default()
        };
        cat.schema_sizes.insert("legacy".into(), 12);
        cat.tables.insert(
            "public.users".into(),
            Table {
                kind: 'r',
                ..Default::default()
            },
        );
        cat
    }

    fn with_catalog(sql: &str) -> String {
        render_with(
            "DL08",
            sql,
            Opts {
                catalog: Some(catalog()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn with_the_catalog_a_drop_nothing_depends_on_is_not_reported() {
        // drizzle-kit's table drop.
        assert_eq!(with_catalog(r#"DROP TABLE "lonely" CASCADE;"#), "");
        assert_eq!(with_catalog("DROP TYPE unused CASCADE;"), "");
        assert_eq!(with_catalog("DROP VIEW active_users CASCADE;"), "");
        assert_eq!(
            with_catalog("ALTER TABLE users DROP COLUMN note CASCADE;"),
            ""
        );
        // Gone already: nothing exists under that name.
        assert_eq!(
            with_catalog("DROP TABLE lonely;\nDROP TABLE IF EXISTS lonely CASCADE;"),
            ""
        );
    }

    #[test]
    fn with_the_catalog_the_dependents_are_named() {
        assert_eq!(
            with_catalog("DROP TABLE users CASCADE;"),
            "m.sql:1:1: error DL08 drop-cascade: DROP TABLE users CASCADE also drops what depends \
             on it: constraint orders_user_id_fkey on table orders, view active_users\n  \
             1 | DROP TABLE users CASCADE\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: drop the dependents explicitly first (\\d+ or pg_depend shows them), then DROP \
             TABLE users without CASCADE, which fails if one was missed\n"
        );
        let out = with_catalog("DROP TYPE mood CASCADE;");
        assert!(
            out.contains("error DL08") && out.contains("column m of table users"),
            "{out}"
        );
        let out = with_catalog("DROP SCHEMA legacy CASCADE;");
        assert!(
            out.contains(
                "also drops what depends on it: table legacy.a, table legacy.b and 10 more"
            ),
            "{out}"
        );
        let out = with_catalog("ALTER TABLE users DROP COLUMN id CASCADE;");
        assert!(
            out.contains(
                "DROP COLUMN users.id CASCADE also drops what depends on it: constraint \
                 orders_user_id_fkey on table orders, constraint users_parent_fkey on table users, \
                 view active_users"
            ),
            "{out}"
        );
        let out = with_catalog("ALTER TABLE users DROP CONSTRAINT users_pkey CASCADE;");
        assert!(out.contains("error DL08") && !out.contains("view"), "{out}");
    }

    #[test]
    fn with_the_catalog_the_run_adds_and_removes_dependents() {
        // Dropped together, or before: not a dependent any more.
        assert_eq!(
            with_catalog("DROP VIEW active_users;\nDROP TABLE users, orders CASCADE;"),
            ""
        );
        let out = with_catalog(
            "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;\nDROP TABLE users CASCADE;",
        );
        assert!(
            out.contains("depends on it: view active_users\n") && !out.contains("orders"),
            "{out}"
        );
        // A foreign key and a view created earlier in the run, which the catalog cannot know.
        let out = with_catalog(
            "CREATE TABLE notes (id int, lonely_id int REFERENCES lonely (id));\n\
             CREATE VIEW lonely_v AS SELECT * FROM lonely;\nDROP TABLE lonely CASCADE;",
        );
        assert!(
            out.contains(
                "m.sql:3:1: error DL08 drop-cascade: DROP TABLE lonely CASCADE also drops what \
                 depends on it: constraint notes_lonely_id_fkey on table notes (created earlier in \
                 this run), view lonely_v (created earlier in this run)"
            ),
            "{out}"
        );
        // A renamed table keeps its dependents.
        let out = with_catalog("ALTER TABLE users RENAME TO members;\nDROP TABLE members CASCADE;");
        assert!(out.contains("view active_users"), "{out}");
        // A column of a type created in the run.
        let out = with_catalog(
            "CREATE TYPE level AS ENUM ('a');\nALTER TABLE lonely ADD COLUMN lvl level;\n\
             DROP TYPE level CASCADE;",
        );
        assert!(
            out.contains("column lvl of table lonely (created earlier in this run)"),
            "{out}"
        );
    }

    #[test]
    fn with_the_catalog_an_unknown_object_is_information_for_a_table() {
        let out = with_catalog("DROP TABLE ghost CASCADE;");
        assert!(
            out.contains("info DL08") && out.contains("the catalog does not know it"),
            "{out}"
        );
        let out = with_catalog("DROP FUNCTION ghost() CASCADE;");
        assert!(out.contains("error DL08"), "{out}");
    }
}
