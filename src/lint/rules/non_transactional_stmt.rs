//! TX03 non-transactional-stmt: a statement PostgreSQL refuses inside a transaction block
//! (other than the `CONCURRENTLY` forms, which are TX01, and `ALTER TYPE ... ADD VALUE`, which
//! is TX02) that runs in one: `VACUUM` in any form, `CREATE/DROP DATABASE`,
//! `CREATE/DROP TABLESPACE`, `ALTER SYSTEM`, `ALTER DATABASE ... SET TABLESPACE`,
//! `REINDEX SCHEMA/DATABASE/SYSTEM`, `CLUSTER` without a table, `CREATE SUBSCRIPTION` that
//! creates its slot, `DROP SUBSCRIPTION`, `ALTER SUBSCRIPTION ... REFRESH PUBLICATION` (and the
//! publication changes that refresh) and `DISCARD ALL`. The list is the one pgship's engine
//! uses to run statements alone, so with the engine these are only reported inside a `BEGIN`
//! that follows a top-level `COMMIT` (the only `BEGIN` that opens a transaction there).
//!
//! Severity: error. The statement fails every time, and running it outside the transaction
//! always avoids that.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterSubscriptionType, DefElem, DiscardMode, Node, ReindexObjectType, VacuumStmt,
};

use super::concurrent_in_txn::{def_is_false, reindex_concurrently, reindex_target, txn_origin};
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "TX03",
    name: "non-transactional-stmt",
    severity: Severity::Error,
    default_on: true,
    summary: "a statement that cannot run inside a transaction block (VACUUM, CREATE DATABASE, \
              ALTER SYSTEM, ...) runs in one",
    help: "run it outside the transaction: COMMIT before it, or give it a migration of its own \
           that the runner does not wrap (pgship's engine runs it alone)",
    check,
};

/// What PostgreSQL calls the command in its error, and the object, for the message.
struct Refused {
    what: &'static str,
    object: String,
    /// Advice specific to the command, replacing the rule's help.
    help: Option<String>,
}

fn refused(node: &NodeEnum) -> Option<Refused> {
    let r = |what, object: String| Refused {
        what,
        object,
        help: None,
    };
    match node {
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => Some(vacuum(v)),
        NodeEnum::CreatedbStmt(d) => Some(r("CREATE DATABASE", format!("database {}", d.dbname))),
        NodeEnum::DropdbStmt(d) => Some(r("DROP DATABASE", format!("database {}", d.dbname))),
        NodeEnum::CreateTableSpaceStmt(t) => Some(r(
            "CREATE TABLESPACE",
            format!("tablespace {}", t.tablespacename),
        )),
        NodeEnum::DropTableSpaceStmt(t) => Some(r(
            "DROP TABLESPACE",
            format!("tablespace {}", t.tablespacename),
        )),
        NodeEnum::AlterSystemStmt(s) => Some(r(
            "ALTER SYSTEM",
            s.setstmt
                .as_ref()
                .map(|v| format!("setting {}", v.name))
                .unwrap_or_default(),
        )),
        NodeEnum::AlterDatabaseStmt(d) if option(&d.options, "tablespace").is_some() => Some(r(
            "ALTER DATABASE SET TABLESPACE",
            format!("database {}", d.dbname),
        )),
        NodeEnum::ReindexStmt(x) if !reindex_concurrently(x) => {
            let kind = ReindexObjectType::try_from(x.kind).ok()?;
            let what = match kind {
                ReindexObjectType::ReindexObjectSchema => "REINDEX SCHEMA",
                ReindexObjectType::ReindexObjectSystem => "REINDEX SYSTEM",
                ReindexObjectType::ReindexObjectDatabase => "REINDEX DATABASE",
                _ => return None,
            };
            Some(r(what, reindex_target(x)))
        }
        NodeEnum::ClusterStmt(c) if c.relation.is_none() => {
            Some(r("CLUSTER", "every previously clustered table".to_string()))
        }
        NodeEnum::CreateSubscriptionStmt(s) => {
            let no_slot =
                option_false(&s.options, "create_slot") || option_false(&s.options, "connect");
            (!no_slot).then(|| Refused {
                what: "CREATE SUBSCRIPTION ... WITH (create_slot = true)",
                object: format!("subscription {}", s.subname),
                help: Some(
                    "run it outside the transaction, or create the slot separately and use WITH \
                     (create_slot = false, slot_name = ...)"
                        .to_string(),
                ),
            })
        }
        NodeEnum::DropSubscriptionStmt(s) => Some(Refused {
            what: "DROP SUBSCRIPTION",
            object: format!(
                "subscription {} (refused when it has a replication slot, the default)",
                s.subname
            ),
            help: Some(format!(
                "run it outside the transaction, or first ALTER SUBSCRIPTION {} DISABLE and SET \
                 (slot_name = NONE) (then drop the slot on the publisher yourself)",
                s.subname
            )),
        }),
        NodeEnum::AlterSubscriptionStmt(s) => {
            use AlterSubscriptionType as T;
            let what = match T::try_from(s.kind).ok()? {
                T::AlterSubscriptionRefresh => "ALTER SUBSCRIPTION ... REFRESH PUBLICATION",
                T::AlterSubscriptionSetPublication
                | T::AlterSubscriptionAddPublication
                | T::AlterSubscriptionDropPublication
                    if !option_false(&s.options, "refresh") =>
                {
                    "ALTER SUBSCRIPTION ... PUBLICATION with refresh"
                }
                _ => return None,
            };
            Some(Refused {
                what,
                object: format!("subscription {}", s.subname),
                help: Some(
                    "run it outside the transaction, or pass WITH (refresh = false) and refresh \
                     later outside a transaction"
                        .to_string(),
                ),
            })
        }
        NodeEnum::DiscardStmt(d) if d.target == DiscardMode::DiscardAll as i32 => Some(Refused {
            what: "DISCARD ALL",
            object: "the session state".to_string(),
            help: Some(
                "remove it from the migration, or use the parts that run in a transaction \
                 (DISCARD PLANS, DISCARD SEQUENCES, DISCARD TEMP, RESET ALL)"
                    .to_string(),
            ),
        }),
        _ => None,
    }
}

fn vacuum(v: &VacuumStmt) -> Refused {
    let tables: Vec<String> = v
        .rels
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::VacuumRelation(r) => r.relation.as_ref().map(ast::rel_name),
            _ => None,
        })
        .collect();
    let object = if tables.is_empty() {
        "every table of the database".to_string()
    } else {
        tables.join(", ")
    };
    let full = option(&v.options, "full").is_some_and(|d| !def_is_false(d));
    let analyze = option(&v.options, "analyze").is_some_and(|d| !def_is_false(d));
    let help = if analyze && !full {
        Some(format!(
            "a plain ANALYZE{} runs inside a transaction and refreshes the statistics; VACUUM itself \
             has to run outside the transaction (COMMIT before it, or a migration of its own)",
            if tables.is_empty() {
                String::new()
            } else {
                format!(" {}", tables.join(", "))
            }
        ))
    } else {
        None
    };
    Refused {
        what: "VACUUM",
        object,
        help,
    }
}

fn option<'a>(options: &'a [Node], name: &str) -> Option<&'a DefElem> {
    options.iter().find_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) if d.defname.eq_ignore_ascii_case(name) => Some(d.as_ref()),
        _ => None,
    })
}

/// An option explicitly set to false (`create_slot = false`, `refresh = off`).
fn option_false(options: &[Node], name: &str) -> bool {
    option(options, name).is_some_and(def_is_false)
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some(r) = refused(stmt.node) else {
        return Vec::new();
    };
    let Some(origin) = txn_origin(stmt, ctx) else {
        return Vec::new();
    };
    let object = if r.object.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.object)
    };
    let mut hit = Hit::new(format!(
        "{}{object} runs {origin}: PostgreSQL refuses it there (\"cannot run inside a \
         transaction block\")",
        r.what
    ));
    if let Some(help) = r.help {
        hit = hit.help(help);
    }
    vec![hit]
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    fn wrapped(sql: &str, wrap: Wrap) -> String {
        render_with(
            "TX03",
            sql,
            Opts {
                wrap,
                ..Default::default()
            },
        )
    }

    #[test]
    fn flags_vacuum_after_begin() {
        assert_eq!(
            render("TX03", "BEGIN;\nVACUUM orders;\nCOMMIT;"),
            "m.sql:2:1: error TX03 non-transactional-stmt: VACUUM (orders) runs inside the \
             transaction opened by the BEGIN earlier in this file: PostgreSQL refuses it there \
             (\"cannot run inside a transaction block\")\n  \
             2 | VACUUM orders\n    \
             | ^^^^^^^^^^^^^\n  \
             help: run it outside the transaction: COMMIT before it, or give it a migration of its \
             own that the runner does not wrap (pgship's engine runs it alone)\n"
        );
    }

    #[test]
    fn flags_every_refused_command_in_a_wrapped_file() {
        for (sql, what) in [
            ("VACUUM;", "every table of the database"),
            ("VACUUM FULL app.orders;", "VACUUM (app.orders)"),
            ("CREATE DATABASE shop;", "CREATE DATABASE (database shop)"),
            ("DROP DATABASE IF EXISTS shop;", "DROP DATABASE"),
            (
                "CREATE TABLESPACE fast LOCATION '/ssd';",
                "CREATE TABLESPACE",
            ),
            ("DROP TABLESPACE fast;", "DROP TABLESPACE"),
            (
                "ALTER SYSTEM SET work_mem = '64MB';",
                "ALTER SYSTEM (setting work_mem)",
            ),
            (
                "ALTER DATABASE shop SET TABLESPACE fast;",
                "ALTER DATABASE SET TABLESPACE",
            ),
            ("REINDEX SCHEMA app;", "REINDEX SCHEMA (schema app)"),
            ("REINDEX DATABASE shop;", "REINDEX DATABASE"),
            ("REINDEX SYSTEM;", "REINDEX SYSTEM"),
            ("CLUSTER;", "CLUSTER"),
            (
                "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p;",
                "CREATE SUBSCRIPTION",
            ),
            ("DROP SUBSCRIPTION s;", "slot_name = NONE"),
            (
                "ALTER SUBSCRIPTION s REFRESH PUBLICATION;",
                "REFRESH PUBLICATION",
            ),
            ("ALTER SUBSCRIPTION s ADD PUBLICATION p2;", "with refresh"),
            ("DISCARD ALL;", "DISCARD PLANS"),
        ] {
            let out = wrapped(sql, Wrap::File);
            assert!(out.contains("error TX03"), "{sql}: {out}");
            assert!(out.contains(what), "{sql}: {out}");
            assert!(out.contains("--assume-in-transaction"), "{sql}: {out}");
        }
    }

    #[test]
    fn suggests_analyze_for_vacuum_analyze() {
        let out = wrapped("VACUUM (ANALYZE) orders;", Wrap::File);
        assert!(
            out.contains("help: a plain ANALYZE orders runs inside a transaction"),
            "{out}"
        );
        let full = wrapped("VACUUM (FULL, ANALYZE) orders;", Wrap::File);
        assert!(!full.contains("plain ANALYZE"), "{full}");
    }

    #[test]
    fn passes_what_runs_in_a_transaction() {
        for sql in [
            "ANALYZE orders;",
            "CLUSTER orders USING orders_pkey;",
            "REINDEX TABLE orders;",
            "REINDEX INDEX orders_pkey;",
            "ALTER DATABASE shop SET work_mem = '64MB';",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = false);",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = false);",
            "ALTER SUBSCRIPTION s ADD PUBLICATION p2 WITH (refresh = false);",
            "ALTER SUBSCRIPTION s DISABLE;",
            "DISCARD PLANS;",
            // TX01 and TX02 report these.
            "REINDEX SCHEMA CONCURRENTLY app;",
            "CREATE INDEX CONCURRENTLY i ON t (a);",
            "ALTER TYPE mood ADD VALUE 'x';",
        ] {
            assert_eq!(wrapped(sql, Wrap::File), "", "{sql}");
        }
    }

    #[test]
    fn passes_outside_a_transaction_and_with_pgships_engine() {
        assert_eq!(render("TX03", "VACUUM orders;\nCREATE DATABASE shop;"), "");
        assert_eq!(
            render(
                "TX03",
                "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nVACUUM t;"
            ),
            ""
        );
        let engine = Wrap::Engine {
            per_migration: false,
        };
        assert_eq!(
            wrapped(
                "CREATE TABLE t (id int);\nVACUUM t;\nALTER SYSTEM RESET ALL;",
                engine
            ),
            ""
        );
        // The engine's BEGIN does nothing inside its transaction; after a top-level COMMIT it
        // opens one of the file's own.
        assert_eq!(wrapped("BEGIN;\nVACUUM t;\nCOMMIT;", engine), "");
        let out = wrapped("COMMIT;\nBEGIN;\nVACUUM t;\nCOMMIT;", engine);
        assert!(out.contains("m.sql:3:1: error TX03"), "{out}");
    }
}
