//! LK09 validate-in-locking-txn: `ALTER TABLE ... VALIDATE CONSTRAINT` that runs while a strong
//! lock on the table is held, which defeats the point of `NOT VALID`:
//!
//! - in the same transaction as the constraint's `ADD ... NOT VALID` (which took ACCESS
//!   EXCLUSIVE, or SHARE ROW EXCLUSIVE for a foreign key, held until commit);
//! - after any other ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE lock on the table earlier in the
//!   same transaction (`Context::strongly_locked`, which also records the ADD NOT VALID
//!   itself, so an unnamed NOT VALID constraint is caught through it);
//! - in the same `ALTER TABLE` as a subcommand that takes such a lock (PostgreSQL takes the
//!   strongest lock any subcommand needs for the whole statement).
//!
//! Across migrations that run in different transactions it passes: that is the recipe.
//! Transactions come from an explicit BEGIN, `--assume-in-transaction`, or pgship's engine.
//!
//! Severity: error, a lock hazard with a safe alternative (commit first, then validate),
//! with `--database` a warning on a small table. Tables created earlier in the same file or
//! transaction are exempt.

use pg_query::protobuf::AlterTableType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "LK09",
    name: "validate-in-locking-txn",
    severity: Severity::Error,
    default_on: true,
    summary: "VALIDATE CONSTRAINT in a transaction that already holds a strong lock on the table \
              scans it with reads or writes blocked",
    help: "commit after ADD ... NOT VALID and run VALIDATE CONSTRAINT in a later transaction \
           (a separate migration)",
    check,
};

/// ALTER TABLE subcommands that take less than SHARE ROW EXCLUSIVE (the same list the
/// context uses to record strong locks).
fn weak(t: AlterTableType) -> bool {
    matches!(
        t,
        AlterTableType::AtValidateConstraint
            | AlterTableType::AtSetStatistics
            | AlterTableType::AtSetOptions
            | AlterTableType::AtResetOptions
            | AlterTableType::AtSetRelOptions
            | AlterTableType::AtResetRelOptions
            | AlterTableType::AtClusterOn
            | AlterTableType::AtDropCluster
            | AlterTableType::AtAttachPartition
            | AlterTableType::AtDetachPartitionFinalize
    )
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let cmds = ast::alter_cmds(a);
    let same_statement = cmds.iter().any(|(_, t)| !weak(*t));
    let mut hits = Vec::new();
    for (cmd, t) in &cmds {
        if *t != AlterTableType::AtValidateConstraint {
            continue;
        }
        let name = &cmd.name;
        let validate = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}");
        if same_statement {
            hits.push(
                Hit::new(format!(
                    "VALIDATE CONSTRAINT {name} is in the same ALTER TABLE as subcommands that \
                     lock {table} ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE: the validation scan \
                     runs under that lock"
                ))
                .help(format!(
                    "run {validate} as a statement of its own, in a later transaction than the \
                     other changes"
                )),
            );
            continue;
        }
        if !stmt.in_transaction {
            continue;
        }
        let txn = Some(ctx.txn());
        let message = if ctx.not_valid_txn(&key, name) == txn {
            format!(
                "VALIDATE CONSTRAINT {name} runs in the same transaction as the ADD ... NOT VALID \
                 of {name}, which holds its lock on {table} (ACCESS EXCLUSIVE, or SHARE ROW \
                 EXCLUSIVE for a foreign key) until commit: the validation scan runs with {table} \
                 blocked, as if NOT VALID had not been used"
            )
        } else if ctx.strongly_locked(&key) {
            format!(
                "VALIDATE CONSTRAINT {name} runs after a statement earlier in this transaction \
                 locked {table} ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE: that lock is held until \
                 commit, so the validation scan runs with {table} blocked"
            )
        } else {
            continue;
        };
        hits.push(Hit::new(message).help(help(ctx, &validate)));
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.is_small()
    {
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

/// Where the transaction comes from decides how to get out of it.
fn help(ctx: &Context, validate: &str) -> String {
    if ctx.in_explicit_transaction() {
        return format!("COMMIT after the ADD ... NOT VALID (and other DDL), then run {validate}");
    }
    match ctx.wrap {
        Wrap::Engine {
            per_migration: false,
        } => format!(
            "pgship applies the whole run in one transaction ([apply] tx_mode = \"all\"): move \
             {validate} to a migration deployed later, or set tx_mode = \"per-migration\" and \
             put it in a later migration"
        ),
        _ => format!(
            "the runner wraps each migration in one transaction: move {validate} to a later \
             migration"
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    const ADD_THEN_VALIDATE: &str = "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY \
                                     (user_id) REFERENCES users NOT VALID;\nALTER TABLE orders \
                                     VALIDATE CONSTRAINT orders_user_fk;";

    fn wrap(w: Wrap) -> Opts {
        Opts {
            wrap: w,
            ..Default::default()
        }
    }

    #[test]
    fn flags_validate_in_the_transaction_of_its_add() {
        let sql = format!("BEGIN;\n{ADD_THEN_VALIDATE}\nCOMMIT;");
        assert_eq!(
            render("LK09", &sql),
            "m.sql:3:1: error LK09 validate-in-locking-txn: VALIDATE CONSTRAINT orders_user_fk \
             runs in the same transaction as the ADD ... NOT VALID of orders_user_fk, which holds \
             its lock on orders (ACCESS EXCLUSIVE, or SHARE ROW EXCLUSIVE for a foreign key) \
             until commit: the validation scan runs with orders blocked, as if NOT VALID had not \
             been used\n  \
             3 | ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: COMMIT after the ADD ... NOT VALID (and other DDL), then run ALTER TABLE \
             orders VALIDATE CONSTRAINT orders_user_fk\n"
        );
    }

    #[test]
    fn the_runner_transaction_counts() {
        let file = render_with("LK09", ADD_THEN_VALIDATE, wrap(Wrap::File));
        assert!(file.contains("m.sql:2:1: error LK09"), "{file}");
        assert!(
            file.contains(
                "move ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk to a later migration"
            ),
            "{file}"
        );
        let engine = render_with(
            "LK09",
            ADD_THEN_VALIDATE,
            wrap(Wrap::Engine {
                per_migration: false,
            }),
        );
        assert!(engine.contains("tx_mode = \"all\""), "{engine}");
        let per = render_with(
            "LK09",
            ADD_THEN_VALIDATE,
            wrap(Wrap::Engine {
                per_migration: true,
            }),
        );
        assert!(per.contains("error LK09"), "{per}");
    }

    #[test]
    fn passes_without_a_transaction_or_after_commit() {
        assert_eq!(render("LK09", ADD_THEN_VALIDATE), "");
        let committed = "BEGIN;\nALTER TABLE orders ADD CONSTRAINT c CHECK (qty > 0) NOT VALID;\n\
                         COMMIT;\nBEGIN;\nALTER TABLE orders VALIDATE CONSTRAINT c;\nCOMMIT;";
        assert_eq!(render("LK09", committed), "");
        assert_eq!(
            render("LK09", "ALTER TABLE orders VALIDATE CONSTRAINT c;"),
            ""
        );
        assert_eq!(
            render_with(
                "LK09",
                "ALTER TABLE orders VALIDATE CONSTRAINT c;",
                wrap(Wrap::File)
            ),
            ""
        );
    }

    #[test]
    fn separate_migrations_in_separate_transactions_pass() {
        let mut ctx = crate::lint::Context::new(17, None);
        let mut out = crate::lint::Outcome::default();
        let sel = crate::lint::Selection {
            enable: ["LK09".to_string()].into(),
            disable: ["all".to_string()].into(),
        };
        let run = |ctx: &mut crate::lint::Context, out: &mut crate::lint::Outcome, w: Wrap| {
            for text in [
                "ALTER TABLE orders ADD CONSTRAINT c CHECK (qty > 0) NOT VALID;",
                "ALTER TABLE orders VALIDATE CONSTRAINT c;",
            ] {
                crate::lint::lint_source(
                    &crate::lint::Source {
                        name: "m.sql".into(),
                        text,
                        drizzle: false,
                        wrap: w,
                    },
                    ctx,
                    &sel,
                    out,
                );
            }
        };
        run(&mut ctx, &mut out, Wrap::File);
        run(
            &mut ctx,
            &mut out,
            Wrap::Engine {
                per_migration: true,
            },
        );
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        // With the engine in whole-run mode the two migrations share one transaction.
        run(
            &mut ctx,
            &mut out,
            Wrap::Engine {
                per_migration: false,
            },
        );
        assert_eq!(out.findings.len(), 1, "{:?}", out.findings);
    }

    #[test]
    fn flags_validate_after_another_strong_lock() {
        let sql = "BEGIN;\nALTER TABLE orders ADD COLUMN note text;\n\
                   ALTER TABLE orders VALIDATE CONSTRAINT c;\nCOMMIT;";
        let out = render("LK09", sql);
        assert!(
            out.contains("runs after a statement earlier in this transaction locked orders"),
            "{out}"
        );
        let locked =
            "BEGIN;\nLOCK TABLE orders;\nALTER TABLE orders VALIDATE CONSTRAINT c;\nCOMMIT;";
        assert!(render("LK09", locked).contains("error LK09"));
        // A lock on another table, or a weak one, does not count.
        let other = "BEGIN;\nALTER TABLE users ADD COLUMN note text;\n\
                     ALTER TABLE orders SET (fillfactor = 90);\n\
                     ALTER TABLE orders VALIDATE CONSTRAINT c;\nCOMMIT;";
        assert_eq!(render("LK09", other), "");
    }

    #[test]
    fn an_unnamed_not_valid_constraint_is_caught_through_its_lock() {
        let sql = "BEGIN;\nALTER TABLE orders ADD CHECK (qty > 0) NOT VALID;\n\
                   ALTER TABLE orders VALIDATE CONSTRAINT orders_qty_check;\nCOMMIT;";
        assert!(render("LK09", sql).contains("error LK09"));
    }

    #[test]
    fn flags_validate_in_the_same_statement_as_strong_subcommands() {
        let out = render(
            "LK09",
            "ALTER TABLE orders VALIDATE CONSTRAINT c, ALTER COLUMN qty SET DEFAULT 0;",
        );
        assert!(out.contains("same ALTER TABLE as subcommands"), "{out}");
        assert_eq!(
            render(
                "LK09",
                "ALTER TABLE orders VALIDATE CONSTRAINT c, VALIDATE CONSTRAINT d;"
            ),
            ""
        );
    }

    #[test]
    fn new_tables_and_small_tables() {
        let sql = "BEGIN;\nCREATE TABLE orders (qty int);\n\
                   ALTER TABLE orders ADD CONSTRAINT c CHECK (qty > 0) NOT VALID;\n\
                   ALTER TABLE orders VALIDATE CONSTRAINT c;\nCOMMIT;";
        assert_eq!(render("LK09", sql), "");
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.orders".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 1.0,
                ..Default::default()
            },
        );
        let out = render_with(
            "LK09",
            &format!("BEGIN;\n{ADD_THEN_VALIDATE}\nCOMMIT;"),
            Opts {
                catalog: Some(cat),
                ..Default::default()
            },
        );
        assert!(out.contains("warning LK09"), "{out}");
    }
}
