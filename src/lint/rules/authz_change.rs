//! BI09 authz-change: changes to who may see or change what: `ENABLE/DISABLE/[NO] FORCE ROW
//! LEVEL SECURITY`, `CREATE/ALTER/DROP POLICY`, `GRANT/REVOKE` (privileges and role
//! memberships), `ALTER DEFAULT PRIVILEGES`. Queries may start failing (permission denied, or
//! silently fewer rows under a policy), or data may be exposed. Statements about tables created
//! earlier in the same file or transaction are exempt: nothing queries them yet.
//!
//! Severity: info. These are intended changes, usually correct, with no lock or data hazard to
//! avoid (enabling RLS or changing a policy takes ACCESS EXCLUSIVE, but only for an instant); the
//! finding is a reminder to test the affected roles' queries before deploying.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, GrantRoleStmt, GrantStmt, GrantTargetType, Node, ObjectType, RangeVar,
    RoleSpecType,
};

use super::drop_table::{display, qualified};
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI09",
    name: "authz-change",
    severity: Severity::Info,
    default_on: true,
    summary: "row level security, policy and privilege changes can make queries fail or expose \
              data",
    help: "run the queries of every affected role against the new rules (a rehearsal or a test) \
           before deploying",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    match stmt.node {
        NodeEnum::AlterTableStmt(_) => rls(stmt, ctx),
        NodeEnum::CreatePolicyStmt(_) | NodeEnum::AlterPolicyStmt(_) => {
            policy(stmt.node, ctx).into_iter().collect()
        }
        NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectPolicy as i32 => d
            .objects
            .iter()
            .filter_map(drop_policy)
            .filter(|(_, key, _)| !ctx.is_new_table(key))
            .map(|(table, _, policy)| {
                Hit::new(format!(
                    "dropping policy {policy} on {table}: rows it allowed become invisible to its \
                     roles unless another policy allows them"
                ))
            })
            .collect(),
        NodeEnum::GrantStmt(g) => grant(g, ctx).into_iter().collect(),
        NodeEnum::GrantRoleStmt(g) => vec![role_grant(g)],
        NodeEnum::AlterDefaultPrivilegesStmt(a) => a
            .action
            .as_ref()
            .map(|g| {
                Hit::new(format!(
                    "changing default privileges: objects created from now on {} {} to {}",
                    if g.is_grant {
                        "grant"
                    } else {
                        "no longer grant"
                    },
                    privileges(g),
                    roles(&g.grantees)
                ))
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// CREATE POLICY and ALTER POLICY on a table that is not new.
fn policy(node: &NodeEnum, ctx: &Context) -> Option<Hit> {
    let (rv, message) = match node {
        NodeEnum::CreatePolicyStmt(p) => {
            let rv = p.table.as_ref()?;
            let action = if p.cmd_name.is_empty() || p.cmd_name == "all" {
                "see and change".to_string()
            } else {
                p.cmd_name.to_uppercase()
            };
            let message = format!(
                "policy {} on {} changes which rows {} can {action} once row level security is on",
                p.policy_name,
                ast::rel_name(rv),
                roles(&p.roles)
            );
            (rv, message)
        }
        NodeEnum::AlterPolicyStmt(p) => {
            let rv = p.table.as_ref()?;
            let message = format!(
                "altering policy {} on {} changes which rows its roles see or change",
                p.policy_name,
                ast::rel_name(rv)
            );
            (rv, message)
        }
        _ => return None,
    };
    (!ctx.is_new_table(&ast::rel_key(rv))).then(|| Hit::new(message))
}

/// GRANT/REVOKE of role memberships.
fn role_grant(g: &GrantRoleStmt) -> Hit {
    let granted: Vec<String> = g
        .granted_roles
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::AccessPriv(p) => Some(p.priv_name.clone()),
            _ => None,
        })
        .collect();
    let (granted, to) = (granted.join(", "), roles(&g.grantee_roles));
    Hit::new(if g.is_grant {
        format!("granting role {granted} to {to}: they gain every privilege of {granted}")
    } else {
        format!(
            "revoking role {granted} from {to}: their queries that relied on it fail with \
             permission denied"
        )
    })
}

/// ENABLE/DISABLE/[NO] FORCE ROW LEVEL SECURITY.
fn rls(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let t = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter_map(|(_, kind)| match kind {
            AlterTableType::AtEnableRowSecurity => Some(
                Hit::new(format!(
                    "enabling row level security on {t}: roles other than its owner now see and \
                     change only the rows a policy allows (none, if {t} has no policy for them)"
                ))
                .help(format!(
                    "create the policies before (or in the same transaction as) enabling it, and \
                     run the application's queries on {t} as its role"
                )),
            ),
            AlterTableType::AtDisableRowSecurity => Some(
                Hit::new(format!(
                    "disabling row level security on {t}: its policies stop applying and every \
                     role with privileges on {t} sees all its rows"
                ))
                .help(format!(
                    "make sure no role with privileges on {t} must be kept from some rows, or keep \
                     row level security on and change the policies"
                )),
            ),
            AlterTableType::AtForceRowSecurity => Some(Hit::new(format!(
                "forcing row level security on {t}: its owner is subject to the policies too, so \
                 jobs and migrations running as the owner may see fewer rows"
            ))),
            AlterTableType::AtNoForceRowSecurity => Some(Hit::new(format!(
                "NO FORCE ROW LEVEL SECURITY on {t}: its owner bypasses the policies again"
            ))),
            _ => None,
        })
        .collect()
}

/// `DROP POLICY p ON [schema.]table`: (table, key, policy).
fn drop_policy(n: &Node) -> Option<(String, String, String)> {
    let NodeEnum::List(l) = n.node.as_ref()? else {
        return None;
    };
    let (policy, table) = l.items.split_last()?;
    let (name, key) = qualified(&Node {
        node: Some(NodeEnum::List(pg_query::protobuf::List {
            items: table.to_vec(),
        })),
    })?;
    Some((name, key, ast::string(policy)?.to_string()))
}

fn grant(g: &GrantStmt, ctx: &Context) -> Option<Hit> {
    let tables: Vec<&RangeVar> = g
        .objects
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::RangeVar(rv) => Some(rv),
            _ => None,
        })
        .collect();
    let on_tables = g.targtype == GrantTargetType::AclTargetObject as i32
        && g.objtype == ObjectType::ObjectTable as i32;
    if on_tables
        && !tables.is_empty()
        && tables.iter().all(|rv| ctx.is_new_table(&ast::rel_key(rv)))
    {
        return None;
    }
    let (privs, on, who) = (privileges(g), objects(g), roles(&g.grantees));
    let option = if g.grant_option {
        " WITH GRANT OPTION"
    } else {
        ""
    };
    Some(if g.is_grant {
        Hit::new(format!(
            "GRANT {privs} ON {on} TO {who}{option}: check that it exposes only what it should"
        ))
    } else {
        let what = if g.grant_option {
            format!("the grant option for {privs}")
        } else {
            privs
        };
        Hit::new(format!(
            "REVOKE {what} ON {on} FROM {who}: their queries that still need it fail with \
             permission denied"
        ))
        .help(format!(
            "make sure no deployed code running as {who} still needs it, and run its queries as \
             that role before deploying"
        ))
    })
}

/// `SELECT, UPDATE (a)`, or `ALL` when none is named.
fn privileges(g: &GrantStmt) -> String {
    let privs: Vec<String> = g
        .privileges
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::AccessPriv(p) => {
                let name = p.priv_name.to_uppercase();
                let cols = ast::strings(&p.cols);
                Some(if cols.is_empty() {
                    name
                } else {
                    format!("{name} ({})", cols.join(", "))
                })
            }
            _ => None,
        })
        .collect();
    if privs.is_empty() {
        "ALL".into()
    } else {
        privs.join(", ")
    }
}

/// What a GRANT is on, as written: `users, app.orders`, `SCHEMA app`, `ALL TABLES IN SCHEMA app`.
fn objects(g: &GrantStmt) -> String {
    let kind = ObjectType::try_from(g.objtype).unwrap_or(ObjectType::Undefined);
    let names: Vec<String> = g
        .objects
        .iter()
        .map(|n| match n.node.as_ref() {
            Some(NodeEnum::RangeVar(rv)) => ast::rel_name(rv),
            _ => display(n),
        })
        .collect();
    let names = names.join(", ");
    if g.targtype == GrantTargetType::AclTargetAllInSchema as i32 {
        let plural = match kind {
            ObjectType::ObjectSequence => "SEQUENCES",
            ObjectType::ObjectFunction => "FUNCTIONS",
            ObjectType::ObjectProcedure => "PROCEDURES",
            ObjectType::ObjectRoutine => "ROUTINES",
            _ => "TABLES",
        };
        return format!("ALL {plural} IN SCHEMA {names}");
    }
    let word = match kind {
        ObjectType::ObjectSequence => "SEQUENCE ",
        ObjectType::ObjectFunction => "FUNCTION ",
        ObjectType::ObjectProcedure => "PROCEDURE ",
        ObjectType::ObjectRoutine => "ROUTINE ",
        ObjectType::ObjectSchema => "SCHEMA ",
        ObjectType::ObjectDatabase => "DATABASE ",
        ObjectType::ObjectType | ObjectType::ObjectDomain => "TYPE ",
        ObjectType::ObjectForeignServer => "FOREIGN SERVER ",
        ObjectType::ObjectFdw => "FOREIGN DATA WRAPPER ",
        ObjectType::ObjectLanguage => "LANGUAGE ",
        ObjectType::ObjectTablespace => "TABLESPACE ",
        ObjectType::ObjectLargeobject => "LARGE OBJECT ",
        _ => "",
    };
    format!("{word}{names}")
}

/// `app, PUBLIC`, or `every role` when the list is empty (a policy without TO).
fn roles(nodes: &[Node]) -> String {
    let names: Vec<String> = nodes
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::RoleSpec(r) => Some(
                match RoleSpecType::try_from(r.roletype).unwrap_or(RoleSpecType::Undefined) {
                    RoleSpecType::RolespecPublic => "PUBLIC".to_string(),
                    RoleSpecType::RolespecCurrentUser => "CURRENT_USER".into(),
                    RoleSpecType::RolespecSessionUser => "SESSION_USER".into(),
                    RoleSpecType::RolespecCurrentRole => "CURRENT_ROLE".into(),
                    _ => r.rolename.clone(),
                },
            ),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        "every role".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_enabling_row_level_security() {
        assert_eq!(
            render("BI09", "ALTER TABLE documents ENABLE ROW LEVEL SECURITY;"),
            "m.sql:1:1: info BI09 authz-change: enabling row level security on documents: roles \
             other than its owner now see and change only the rows a policy allows (none, if \
             documents has no policy for them)\n  \
             1 | ALTER TABLE documents ENABLE ROW LEVEL SECURITY\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: create the policies before (or in the same transaction as) enabling it, and run \
             the application's queries on documents as its role\n"
        );
    }

    #[test]
    fn flags_every_rls_and_policy_change() {
        let cases = [
            (
                "ALTER TABLE d DISABLE ROW LEVEL SECURITY;",
                "sees all its rows",
            ),
            (
                "ALTER TABLE d FORCE ROW LEVEL SECURITY;",
                "its owner is subject",
            ),
            (
                "ALTER TABLE d NO FORCE ROW LEVEL SECURITY;",
                "bypasses the policies again",
            ),
            (
                "CREATE POLICY own ON app.d FOR SELECT TO authenticated USING (owner = current_user);",
                "policy own on app.d changes which rows authenticated can SELECT",
            ),
            (
                "CREATE POLICY p ON d USING (true);",
                "rows PUBLIC can see and change",
            ),
            (
                "ALTER POLICY p ON d USING (false);",
                "altering policy p on d",
            ),
            (
                "DROP POLICY IF EXISTS p ON app.d;",
                "dropping policy p on app.d",
            ),
        ];
        for (sql, expected) in cases {
            let out = render("BI09", sql);
            assert!(
                out.contains("info BI09") && out.contains(expected),
                "{sql}: {out}"
            );
        }
    }

    #[test]
    fn flags_grants_and_revokes() {
        let cases = [
            (
                "GRANT SELECT, UPDATE (name) ON users, app.orders TO reporting, PUBLIC;",
                "GRANT SELECT, UPDATE (name) ON users, app.orders TO reporting, PUBLIC: check",
            ),
            (
                "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM anon;",
                "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM anon: their queries",
            ),
            (
                "GRANT USAGE ON SCHEMA app TO web;",
                "GRANT USAGE ON SCHEMA app TO web",
            ),
            (
                "GRANT EXECUTE ON FUNCTION f(int) TO web WITH GRANT OPTION;",
                "ON FUNCTION f(integer) TO web WITH GRANT OPTION",
            ),
            (
                "REVOKE GRANT OPTION FOR SELECT ON users FROM web CASCADE;",
                "REVOKE the grant option for SELECT ON users",
            ),
            ("GRANT admin TO bob;", "granting role admin to bob"),
            ("REVOKE admin FROM bob;", "revoking role admin from bob"),
            (
                "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO reporting;",
                "objects created from now on grant SELECT to reporting",
            ),
        ];
        for (sql, expected) in cases {
            let out = render("BI09", sql);
            assert!(
                out.contains("info BI09") && out.contains(expected),
                "{sql}: {out}"
            );
        }
    }

    #[test]
    fn passes_new_tables_and_other_statements() {
        let new = "CREATE TABLE d (id int, owner text);\n";
        for stmt in [
            "ALTER TABLE d ENABLE ROW LEVEL SECURITY;",
            "CREATE POLICY p ON d USING (owner = current_user);",
            "ALTER POLICY p ON d USING (true);",
            "DROP POLICY p ON d;",
            "GRANT SELECT ON d TO web;",
            "REVOKE ALL ON TABLE d FROM PUBLIC;",
        ] {
            assert_eq!(render("BI09", &format!("{new}{stmt}")), "", "{stmt}");
        }
        // One old table among the granted ones is enough.
        assert!(render("BI09", &format!("{new}GRANT SELECT ON d, users TO web;")).contains("BI09"));
        assert_eq!(render("BI09", "ALTER POLICY p ON d RENAME TO q;"), "");
        assert_eq!(render("BI09", "ALTER TABLE d OWNER TO app;"), "");
        assert_eq!(render("BI09", "DROP TABLE d;"), "");
    }
}
