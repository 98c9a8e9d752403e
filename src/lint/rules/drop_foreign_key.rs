//! DL09 drop-foreign-key: `ALTER TABLE ... DROP CONSTRAINT` that removes a foreign key: from then
//! on PostgreSQL no longer stops rows that point nowhere.
//!
//! A constraint's name does not say what kind it is, so this rule needs `--database`: it
//! reports a dropped constraint the catalog knows as a foreign key (`contype = 'f'`) and stays
//! silent without the catalog. (A foreign key created earlier in the same run could be
//! recognised too, but the lint context does not record constraint kinds.)
//!
//! Severity: warning. Dropping a foreign key is often intended (replacing it, or moving the check
//! to the application), so it asks for a check rather than blocking; it still takes ACCESS
//! EXCLUSIVE on both tables, briefly.

use pg_query::protobuf::AlterTableType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "DL09",
    name: "drop-foreign-key",
    severity: Severity::Warning,
    default_on: true,
    summary: "dropping a foreign key stops PostgreSQL from enforcing that relationship",
    help: "make sure this is intended; to replace the key, add the new one NOT VALID and VALIDATE \
           it before dropping the old one",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some(cat) = &ctx.catalog else {
        return Vec::new();
    };
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    let table = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(_, t)| *t == AlterTableType::AtDropConstraint)
        .filter_map(|(cmd, _)| {
            let c = cat.constraint(&key, &cmd.name).filter(|c| c.kind == 'f')?;
            let name = &cmd.name;
            Some(
                Hit::new(format!(
                    "{name} on {table} is a foreign key ({}): once it is dropped, rows that break \
                     that relationship can be written; both tables are locked ACCESS EXCLUSIVE \
                     briefly",
                    c.definition
                ))
                .help(format!(
                    "make sure this is intended; to replace {name}, add the new key NOT VALID and \
                     VALIDATE it in a later transaction before dropping {name}"
                )),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Constraint};
    use crate::lint::testing::{Opts, render, render_with};

    fn opts() -> Opts {
        let mut cat = Catalog::default();
        cat.constraints.insert(
            ("public.orders".into(), "orders_user_id_fkey".into()),
            Constraint {
                kind: 'f',
                validated: true,
                definition: "FOREIGN KEY (user_id) REFERENCES users(id)".into(),
            },
        );
        cat.constraints.insert(
            ("public.orders".into(), "orders_total_check".into()),
            Constraint {
                kind: 'c',
                validated: true,
                definition: "CHECK ((total >= 0))".into(),
            },
        );
        Opts {
            catalog: Some(cat),
            ..Default::default()
        }
    }

    #[test]
    fn flags_a_foreign_key_the_catalog_knows() {
        assert_eq!(
            render_with(
                "DL09",
                "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;",
                opts()
            ),
            "m.sql:1:1: warning DL09 drop-foreign-key: orders_user_id_fkey on orders is a foreign key \
             (FOREIGN KEY (user_id) REFERENCES users(id)): once it is dropped, rows that break that \
             relationship can be written; both tables are locked ACCESS EXCLUSIVE briefly\n  \
             1 | ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: make sure this is intended; to replace orders_user_id_fkey, add the new key NOT \
             VALID and VALIDATE it in a later transaction before dropping orders_user_id_fkey\n"
        );
        let out = render_with(
            "DL09",
            "ALTER TABLE public.orders DROP CONSTRAINT IF EXISTS orders_user_id_fkey, \
             DROP CONSTRAINT orders_total_check;",
            opts(),
        );
        assert_eq!(out.matches("warning DL09").count(), 1, "{out}");
    }

    #[test]
    fn passes_other_constraints_and_unknown_ones() {
        let sql = "ALTER TABLE orders DROP CONSTRAINT orders_total_check;";
        assert_eq!(render_with("DL09", sql, opts()), "");
        let sql = "ALTER TABLE orders DROP CONSTRAINT orders_other_fkey;";
        assert_eq!(render_with("DL09", sql, opts()), "");
        // Same name on a table in another schema.
        let sql = "ALTER TABLE app.orders DROP CONSTRAINT orders_user_id_fkey;";
        assert_eq!(render_with("DL09", sql, opts()), "");
    }

    #[test]
    fn is_silent_without_the_catalog() {
        // Even a name that looks like a foreign key: the name proves nothing.
        assert_eq!(
            render(
                "DL09",
                "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;"
            ),
            ""
        );
    }
}
