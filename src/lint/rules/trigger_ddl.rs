//! LK20 trigger-ddl (opt-in): trigger changes on a table that was not created earlier in the
//! same file or transaction: `CREATE [OR REPLACE] [CONSTRAINT] TRIGGER` and `ALTER TABLE ...
//! ENABLE/DISABLE TRIGGER` (SHARE ROW EXCLUSIVE), `DROP TRIGGER` and `ALTER TRIGGER ...
//! RENAME` (ACCESS EXCLUSIVE).
//!
//! Severity: info. The lock is brief once granted, but while it waits for running
//! transactions every later write (and, for ACCESS EXCLUSIVE, every read) of the table queues
//! behind it. There is no lighter form; a short `lock_timeout` with retries keeps the queue
//! short, which is advice rather than a defect. `DISABLE TRIGGER ALL` also switches off the
//! internal foreign-key triggers, which the message says.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, RangeVar};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK20",
    name: "trigger-ddl",
    severity: Severity::Info,
    default_on: false,
    summary: "CREATE/DROP TRIGGER and ENABLE/DISABLE TRIGGER lock the table against writes (or \
              everything) while they wait and run",
    help: "keep the lock wait short: SET lock_timeout (pgship's engine does) and retry, at a quiet \
           time",
    check,
};

const SRE: &str = "SHARE ROW EXCLUSIVE (writes wait)";
const AE: &str = "ACCESS EXCLUSIVE (reads and writes wait)";

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let exempt = |rv: &RangeVar| ctx.is_new_table(&ast::rel_key(rv)) || ast::is_temp(rv);
    match stmt.node {
        NodeEnum::CreateTrigStmt(t) => {
            let Some(rv) = t.relation.as_ref().filter(|rv| !exempt(rv)) else {
                return Vec::new();
            };
            let verb = if t.replace { "replacing" } else { "creating" };
            vec![hit(format!("{verb} trigger {}", t.trigname), rv, SRE)]
        }
        NodeEnum::AlterTableStmt(_) => {
            let Some((a, rv)) = ast::alter_table(stmt.node).filter(|(_, rv)| !exempt(rv)) else {
                return Vec::new();
            };
            ast::alter_cmds(a)
                .into_iter()
                .filter_map(|(cmd, t)| {
                    let which = if cmd.name.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", cmd.name)
                    };
                    let what = match t {
                        AlterTableType::AtEnableTrig
                        | AlterTableType::AtEnableAlwaysTrig
                        | AlterTableType::AtEnableReplicaTrig => format!("enabling trigger{which}"),
                        AlterTableType::AtDisableTrig => format!("disabling trigger{which}"),
                        AlterTableType::AtEnableTrigAll => "enabling all triggers".into(),
                        AlterTableType::AtEnableTrigUser => "enabling the user triggers".into(),
                        AlterTableType::AtDisableTrigUser => "disabling the user triggers".into(),
                        AlterTableType::AtDisableTrigAll => {
                            return Some(hit("disabling all triggers".into(), rv, SRE).help(
                                "DISABLE TRIGGER ALL also disables the internal foreign-key \
                                 triggers: rows written meanwhile are not checked; disable only \
                                 the triggers meant (DISABLE TRIGGER name or USER)",
                            ));
                        }
                        _ => return None,
                    };
                    Some(hit(what, rv, SRE))
                })
                .collect()
        }
        NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectTrigger as i32 => d
            .objects
            .iter()
            .filter_map(|o| match o.node.as_ref()? {
                NodeEnum::List(l) => {
                    let parts = ast::strings(&l.items);
                    let (trigger, table) = parts.split_last()?;
                    let rv = range_var(table)?;
                    (!exempt(&rv)).then(|| hit(format!("dropping trigger {trigger}"), &rv, AE))
                }
                _ => None,
            })
            .collect(),
        NodeEnum::RenameStmt(r) if r.rename_type == ObjectType::ObjectTrigger as i32 => {
            let Some(rv) = r.relation.as_ref().filter(|rv| !exempt(rv)) else {
                return Vec::new();
            };
            vec![hit(format!("renaming trigger {}", r.subname), rv, AE)]
        }
        _ => Vec::new(),
    }
}

fn hit(what: String, rv: &RangeVar, lock: &str) -> Hit {
    let table = ast::rel_name(rv);
    Hit::new(format!(
        "{what} locks {table} {lock} until the transaction ends, and queues every later query \
         that conflicts while it waits for running ones"
    ))
}

/// `[schema, table]` -> a RangeVar.
fn range_var(parts: &[&str]) -> Option<RangeVar> {
    let (schema, table) = match parts {
        [t] => ("", *t),
        [s, t] => (*s, *t),
        _ => return None,
    };
    Some(RangeVar {
        schemaname: schema.to_string(),
        relname: table.to_string(),
        relpersistence: "p".into(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_create_trigger() {
        assert_eq!(
            render(
                "LK20",
                "CREATE TRIGGER audit AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION log();"
            ),
            "m.sql:1:1: info LK20 trigger-ddl: creating trigger audit locks orders SHARE ROW \
             EXCLUSIVE (writes wait) until the transaction ends, and queues every later query \
             that conflicts while it waits for running ones\n  \
             1 | CREATE TRIGGER audit AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION log()\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: keep the lock wait short: SET lock_timeout (pgship's engine does) and retry, \
             at a quiet time\n"
        );
        let out = render(
            "LK20",
            "CREATE OR REPLACE TRIGGER audit AFTER UPDATE ON app.orders FOR EACH ROW EXECUTE \
             FUNCTION log();",
        );
        assert!(
            out.contains("replacing trigger audit locks app.orders SHARE ROW"),
            "{out}"
        );
        let out = render(
            "LK20",
            "CREATE CONSTRAINT TRIGGER c AFTER INSERT ON orders DEFERRABLE FOR EACH ROW EXECUTE \
             FUNCTION f();",
        );
        assert!(out.contains("creating trigger c"), "{out}");
    }

    #[test]
    fn flags_enable_and_disable() {
        let out = render(
            "LK20",
            "ALTER TABLE orders DISABLE TRIGGER audit, ENABLE ALWAYS TRIGGER sync;",
        );
        assert!(
            out.contains("disabling trigger audit locks orders SHARE ROW EXCLUSIVE")
                && out.contains("enabling trigger sync locks orders"),
            "{out}"
        );
        let out = render("LK20", "ALTER TABLE orders DISABLE TRIGGER ALL;");
        assert!(
            out.contains("disabling all triggers") && out.contains("foreign-key triggers"),
            "{out}"
        );
        let out = render("LK20", "ALTER TABLE orders ENABLE TRIGGER USER;");
        assert!(out.contains("enabling the user triggers"), "{out}");
    }

    #[test]
    fn flags_drop_and_rename_with_access_exclusive() {
        let out = render("LK20", "DROP TRIGGER IF EXISTS audit ON app.orders;");
        assert!(
            out.contains("dropping trigger audit locks app.orders ACCESS EXCLUSIVE"),
            "{out}"
        );
        let out = render("LK20", "ALTER TRIGGER audit ON orders RENAME TO audit_v2;");
        assert!(
            out.contains("renaming trigger audit locks orders ACCESS EXCLUSIVE"),
            "{out}"
        );
    }

    #[test]
    fn passes_new_tables_and_other_statements() {
        for sql in [
            "CREATE TABLE t (id int);\n\
             CREATE TRIGGER a BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();\n\
             ALTER TABLE t DISABLE TRIGGER a;\nDROP TRIGGER a ON t;",
            "CREATE TEMP TABLE t (id int);\nDROP TRIGGER a ON t;",
            "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f();",
            "ALTER TABLE orders DISABLE RULE r;",
            "DROP FUNCTION log();",
        ] {
            assert_eq!(render("LK20", sql), "", "{sql}");
        }
        // Another schema's table of the same name is not new.
        let out = render("LK20", "CREATE TABLE app.t (id int);\nDROP TRIGGER a ON t;");
        assert!(out.contains("m.sql:2:1"), "{out}");
    }
}
