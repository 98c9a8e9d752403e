//! DL02 drop-column: `ALTER TABLE ... DROP COLUMN` on a table that was not created earlier in
//! the same file or transaction. One finding per dropped column.
//!
//! Severity: error. The column's data is gone (the drop itself is instant: the space is only
//! reclaimed by a later rewrite), the indexes and constraints that use it go with it, and
//! running code that still selects or inserts it fails, while the safe path (remove it from
//! the code and deploy, then drop) only costs one more deploy.
//! With `--database`: a column the catalog does not list on a table it knows is not this
//! rule's business (the statement fails, is a no-op with `IF EXISTS`, or drops a column added
//! earlier in the same run): no finding. A column of an empty table (0 rows and small) is only a
//! warning: no data is lost, but code that uses it still breaks. So is a column whose values
//! an earlier statement of the run copied in full (`INSERT ... SELECT`, `CREATE TABLE ... AS
//! SELECT`, `UPDATE ... SET b = a`; see [`crate::lint::copies`]).

use pg_query::protobuf::AlterTableType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL02",
    name: "drop-column",
    severity: Severity::Error,
    default_on: true,
    summary: "DROP COLUMN deletes the column's data and breaks code that still uses it",
    help: "remove the column from the code (and ORM models) and deploy that first, then drop it \
           in a later migration",
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
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(_, t)| *t == AlterTableType::AtDropColumn)
        .filter(|(cmd, _)| known.is_none_or(|t| t.columns.is_empty() || t.columns.contains_key(&cmd.name)))
        .map(|(cmd, _)| {
            let column = &cmd.name;
            if let Some(to) = ctx.copies.column(&key, column, ctx.file_no()) {
                return copied(&table, column, &to);
            }
            let hit = Hit::new(format!(
                "dropping column {table}.{column} deletes its data, with the indexes and \
                 constraints that use it; running code that still reads or writes {column} fails"
            ))
            .help(format!(
                "remove {column} from the code and ORM models (e.g. Rails ignored_columns, Drizzle \
                 schema) and deploy that first, then drop it in a later migration"
            ));
            match known {
                Some(t) if t.rows == 0.0 && t.is_small() => {
                    hit.severity(Severity::Warning).help(format!(
                        "{table} is empty according to the catalog, so no data is lost; make sure no \
                         deployed code still uses {column}"
                    ))
                }
                _ => hit,
            }
        })
        .collect()
}

/// The column's values were copied earlier in the run: no data is lost, but running code that
/// still uses the column breaks.
fn copied(table: &str, column: &str, to: &str) -> Hit {
    Hit::new(format!(
        "dropping column {table}.{column} loses no data (its values were copied to {to}), but \
         running code that still reads or writes {column} fails"
    ))
    .severity(Severity::Warning)
    .help(format!(
        "deploy code that uses the copy and no longer {column} before the drop: copy in one \
         migration, and drop {column} in a later one"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::lint::catalog::{Catalog, Column, Table};
    use crate::lint::testing::{Opts, render, render_with};

    /// The exact statement of the Drizzle fixture `0003_drop_order_total.sql`.
    const DRIZZLE_0003: &str = r#"ALTER TABLE "orders" DROP COLUMN "total_cents";"#;

    #[test]
    fn flags_the_drizzle_fixture() {
        assert_eq!(
            render("DL02", DRIZZLE_0003),
            "m.sql:1:1: error DL02 drop-column: dropping column orders.total_cents deletes its data, \
             with the indexes and constraints that use it; running code that still reads or writes \
             total_cents fails\n  \
             1 | ALTER TABLE \"orders\" DROP COLUMN \"total_cents\"\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: remove total_cents from the code and ORM models (e.g. Rails ignored_columns, \
             Drizzle schema) and deploy that first, then drop it in a later migration\n"
        );
        // The file itself still says that.
        let file =
            include_str!("../../../tests/fixtures/drizzle-app/drizzle/0003_drop_order_total.sql");
        assert!(render("DL02", file).contains("orders.total_cents"));
    }

    #[test]
    fn flags_every_dropped_column_and_every_form() {
        let out = render(
            "DL02",
            "ALTER TABLE app.users DROP COLUMN a, DROP b CASCADE, ADD COLUMN c int, DROP COLUMN IF EXISTS d;",
        );
        assert_eq!(out.matches("error DL02").count(), 3, "{out}");
        for c in ["app.users.a", "app.users.b", "app.users.d"] {
            assert!(out.contains(c), "{c}: {out}");
        }
    }

    #[test]
    fn passes_new_tables_and_other_drops() {
        assert_eq!(
            render(
                "DL02",
                "CREATE TABLE t (a int, b int);\nALTER TABLE t DROP COLUMN b;"
            ),
            ""
        );
        assert_eq!(
            render("DL02", "ALTER TABLE t DROP CONSTRAINT t_a_check;"),
            ""
        );
        assert_eq!(
            render("DL02", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
            ""
        );
        // Not a table: the attribute of a composite type.
        assert_eq!(render("DL02", "ALTER TYPE pair DROP ATTRIBUTE b;"), "");
    }

    #[test]
    fn the_catalog_leaves_unknown_columns_and_lowers_empty_tables() {
        let mut cat = Catalog::default();
        let table = |rows: f64| Table {
            kind: 'r',
            rows,
            bytes: 16384,
            columns: HashMap::from([("total_cents".to_string(), Column::default())]),
            ..Default::default()
        };
        cat.tables.insert("public.orders".into(), table(5e5));
        cat.tables.insert("public.drafts".into(), table(0.0));
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        assert!(render_with("DL02", DRIZZLE_0003, opts()).contains("error DL02"));
        assert_eq!(
            render_with(
                "DL02",
                "ALTER TABLE orders DROP COLUMN IF EXISTS gone;",
                opts()
            ),
            ""
        );
        let out = render_with(
            "DL02",
            "ALTER TABLE drafts DROP COLUMN total_cents;",
            opts(),
        );
        assert!(
            out.contains("warning DL02") && out.contains("is empty"),
            "{out}"
        );
        // A table the catalog does not know: reported as usual.
        assert!(
            render_with("DL02", "ALTER TABLE other DROP COLUMN x;", opts()).contains("error DL02")
        );
    }

    /// A drizzle-kit custom migration that moves two columns of users into a new table.
    const MOVE_TO_PROFILES: &str = r#"CREATE TABLE "user_profiles" (
	"user_id" integer PRIMARY KEY NOT NULL,
	"bio" text,
	"avatar_url" text
);
--> statement-breakpoint
ALTER TABLE "user_profiles" ADD CONSTRAINT "user_profiles_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
INSERT INTO "user_profiles" ("user_id", "bio", "avatar_url") SELECT "id", "bio", "avatar_url" FROM "users";--> statement-breakpoint
ALTER TABLE "users" DROP COLUMN "bio";--> statement-breakpoint
ALTER TABLE "users" DROP COLUMN "avatar_url";"#;

    #[test]
    fn a_column_copied_before_the_drop_loses_no_data_but_still_breaks_code() {
        assert_eq!(
            render("DL02", MOVE_TO_PROFILES),
            "m.sql:9:1: warning DL02 drop-column: dropping column users.bio loses no data (its \
             values were copied to user_profiles.bio (line 8)), but running code that still reads \
             or writes bio fails\n  \
             9 | ALTER TABLE \"users\" DROP COLUMN \"bio\"\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: deploy code that uses the copy and no longer bio before the drop: copy in one \
             migration, and drop bio in a later one\n\n\
             m.sql:10:1: warning DL02 drop-column: dropping column users.avatar_url loses no data \
             (its values were copied to user_profiles.avatar_url (line 8)), but running code that \
             still reads or writes avatar_url fails\n  \
             10 | ALTER TABLE \"users\" DROP COLUMN \"avatar_url\"\n     \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: deploy code that uses the copy and no longer avatar_url before the drop: copy \
             in one migration, and drop avatar_url in a later one\n"
        );
        // BI rules are not DL02's business, and other drops of the file stay errors.
        let out = render(
            "DL02",
            &format!(
                "{MOVE_TO_PROFILES}--> statement-breakpoint\nALTER TABLE \"users\" DROP COLUMN \"email\";"
            ),
        );
        assert!(out.contains("m.sql:11:1: error DL02"), "{out}");
    }

    #[test]
    fn copies_within_the_table_and_into_new_tables_count() {
        // drizzle: a type change done by hand (new column, copy, drop, rename).
        let sql = r#"ALTER TABLE "orders" ADD COLUMN "total_new" bigint;--> statement-breakpoint
UPDATE "orders" SET "total_new" = "total_cents"::bigint;--> statement-breakpoint
ALTER TABLE "orders" DROP COLUMN "total_cents";--> statement-breakpoint
ALTER TABLE "orders" RENAME COLUMN "total_new" TO "total_cents";"#;
        let out = render("DL02", sql);
        assert!(
            out.contains("m.sql:3:1: warning DL02")
                && out.contains("copied to orders.total_new (line 2)"),
            "{out}"
        );
        for sql in [
            "CREATE TABLE bios AS SELECT id, bio FROM users;\nALTER TABLE users DROP COLUMN bio;",
            "CREATE TABLE bios (user_id, text) AS SELECT u.id, u.bio FROM users u;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO bios SELECT * FROM users;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO bios (bio) SELECT bio FROM users WHERE bio IS NOT NULL;\nALTER TABLE users DROP COLUMN bio;",
            "UPDATE users SET about = bio WHERE bio IS NOT NULL;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO bios (id, bio, org) SELECT u.id, u.bio, o.name FROM users u LEFT JOIN orgs o ON o.id = u.org_id;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO app.bios (bio) SELECT public.users.bio FROM public.users;\nALTER TABLE users DROP COLUMN bio;",
        ] {
            assert!(render("DL02", sql).contains("warning DL02"), "{sql}");
        }
    }

    #[test]
    fn partial_or_transformed_copies_are_still_data_loss() {
        for sql in [
            // Only some rows.
            "INSERT INTO archive (bio) SELECT bio FROM users WHERE created_at < now();\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO archive (bio) SELECT bio FROM users LIMIT 10;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO archive (bio) SELECT bio FROM users u JOIN orgs o ON o.id = u.org_id;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO archive (bio) SELECT bio FROM users ON CONFLICT DO NOTHING;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO tags (name) SELECT DISTINCT bio FROM users;\nALTER TABLE users DROP COLUMN bio;",
            "UPDATE users SET about = bio WHERE id < 100;\nALTER TABLE users DROP COLUMN bio;",
            // Rows filtered on another column lose this one's values there.
            "INSERT INTO archive (id, bio) SELECT id, bio FROM users WHERE id IS NOT NULL AND bio IS NOT NULL;\nALTER TABLE users DROP COLUMN id;",
            // A transformed value, another table's column, another column.
            "UPDATE users SET about = lower(bio);\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO archive (bio) SELECT o.bio FROM users u LEFT JOIN orgs o ON o.id = u.org_id;\nALTER TABLE users DROP COLUMN bio;",
            "INSERT INTO archive (bio) SELECT about FROM users;\nALTER TABLE users DROP COLUMN bio;",
            // Copied after the drop: too late.
            "ALTER TABLE users DROP COLUMN bio;\nINSERT INTO archive (bio) SELECT bio FROM users;",
        ] {
            assert!(render("DL02", sql).contains("error DL02"), "{sql}");
        }
    }

    #[test]
    fn a_copy_in_an_earlier_migration_of_the_run_counts() {
        use crate::lint::{Context, Outcome, Selection, Source, Wrap, lint_source};
        let mut ctx = Context::new(17, None);
        let mut out = Outcome::default();
        let sel = Selection {
            enable: ["DL02".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        for (i, text) in [
            "UPDATE users SET about = bio;",
            "ALTER TABLE users DROP COLUMN bio;",
        ]
        .iter()
        .enumerate()
        {
            let src = Source {
                name: format!("{i}.sql"),
                text,
                drizzle: true,
                wrap: Wrap::Engine {
                    per_migration: true,
                },
            };
            lint_source(&src, &mut ctx, &sel, &mut out);
        }
        let f = &out.findings[0];
        assert_eq!(f.severity, crate::lint::Severity::Warning);
        assert!(
            f.message
                .contains("copied to users.about (in an earlier migration of this run)"),
            "{}",
            f.message
        );
    }
}
