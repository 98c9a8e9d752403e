//! BI10 replica-identity: `ALTER TABLE ... REPLICA IDENTITY` on a table not created earlier in
//! the same file or transaction. It changes what logical replication and change-data-capture
//! consumers receive for UPDATE and DELETE, and with `NOTHING` (or `DEFAULT` on a table without
//! a primary key) UPDATE and DELETE on a published table start failing.
//!
//! Severity: info. Instant (ACCESS EXCLUSIVE, briefly), no data is lost, and it is always
//! deliberate; the risk is in consumers outside the database, so the finding is a reminder to
//! coordinate with them.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI10",
    name: "replica-identity",
    severity: Severity::Info,
    default_on: true,
    summary: "REPLICA IDENTITY changes what logical replication consumers receive for UPDATE and \
              DELETE",
    help: "coordinate with the table's logical replication and CDC consumers before deploying",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let t = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter(|(_, kind)| *kind == AlterTableType::AtReplicaIdentity)
        .filter_map(|(cmd, _)| match cmd.def.as_ref()?.node.as_ref()? {
            NodeEnum::ReplicaIdentityStmt(r) => Some(r),
            _ => None,
        })
        .map(|r| {
            let effect = match r.identity_type.as_str() {
                "f" => format!(
                    "FULL: consumers receive whole old rows for UPDATE and DELETE on {t} (more WAL)"
                ),
                "n" => format!(
                    "NOTHING: UPDATE and DELETE on {t} fail while it is in a publication that \
                     publishes them"
                ),
                "i" => format!(
                    "USING INDEX {}: consumers identify old rows of {t} by that index's columns",
                    r.name
                ),
                _ => format!(
                    "DEFAULT: consumers identify old rows of {t} by its primary key (UPDATE and \
                     DELETE fail on a published table without one)"
                ),
            };
            Hit::new(format!("replica identity of {t} set to {effect}")).help(format!(
                "coordinate with the logical replication and CDC consumers of {t} before deploying"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_replica_identity_changes() {
        assert_eq!(
            render("BI10", "ALTER TABLE orders REPLICA IDENTITY FULL;"),
            "m.sql:1:1: info BI10 replica-identity: replica identity of orders set to FULL: \
             consumers receive whole old rows for UPDATE and DELETE on orders (more WAL)\n  \
             1 | ALTER TABLE orders REPLICA IDENTITY FULL\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: coordinate with the logical replication and CDC consumers of orders before \
             deploying\n"
        );
        let out = render("BI10", "ALTER TABLE app.orders REPLICA IDENTITY NOTHING;");
        assert!(
            out.contains("UPDATE and DELETE on app.orders fail"),
            "{out}"
        );
        let out = render(
            "BI10",
            "ALTER TABLE orders REPLICA IDENTITY USING INDEX orders_code_key;",
        );
        assert!(out.contains("USING INDEX orders_code_key"), "{out}");
        let out = render("BI10", "ALTER TABLE orders REPLICA IDENTITY DEFAULT;");
        assert!(out.contains("by its primary key"), "{out}");
    }

    #[test]
    fn passes_new_tables_and_other_changes() {
        assert_eq!(
            render(
                "BI10",
                "CREATE TABLE t (id int);\nALTER TABLE t REPLICA IDENTITY FULL;"
            ),
            ""
        );
        assert_eq!(
            render("BI10", "ALTER TABLE orders ENABLE ROW LEVEL SECURITY;"),
            ""
        );
        assert_eq!(render("BI10", "ALTER PUBLICATION p ADD TABLE orders;"), "");
    }
}
