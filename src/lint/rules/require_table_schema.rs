//! RB07 require-table-schema: a table (or index, view, sequence) named without its schema in a
//! DDL statement: `CREATE TABLE`, `CREATE TABLE AS`, `CREATE [MATERIALIZED] VIEW`,
//! `CREATE SEQUENCE`, `CREATE INDEX ... ON`, `CREATE TRIGGER ... ON`, `CREATE POLICY ... ON`,
//! `ALTER TABLE/INDEX/VIEW/SEQUENCE` (with the partitions it attaches or detaches and the
//! tables its foreign keys reference), `DROP TABLE/INDEX/VIEW/SEQUENCE`, `RENAME`,
//! `TRUNCATE`, `REFRESH MATERIALIZED VIEW`, `CLUSTER`, `REINDEX`, `VACUUM`, `LOCK`. The
//! `search_path` at run time decides which schema such a name means, so the migration can
//! create or change a table in another schema than intended (a role with its own schema, a
//! tool that sets `search_path`). Temporary tables are exempt (they live in `pg_temp`), and so
//! is DML (`INSERT`/`UPDATE`/`DELETE` backfills, where qualifying every name is noise).
//!
//! Severity: warning (opt-in). Nothing breaks by itself; the risk is a `search_path` that
//! differs between environments.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, ObjectType, RangeVar};

use super::concurrent_in_txn::dropped_names;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "RB07",
    name: "require-table-schema",
    severity: Severity::Warning,
    default_on: false,
    summary: "a table named without its schema: the search_path at run time decides which table \
              it is",
    help: "qualify the name with its schema (public.orders)",
    check,
};

/// Relations named by `node`'s DDL, as written.
fn relations(node: &NodeEnum) -> Vec<&RangeVar> {
    let mut out: Vec<&RangeVar> = Vec::new();
    match node {
        NodeEnum::CreateStmt(c) => {
            out.extend(&c.relation);
            out.extend(range_vars(&c.inh_relations));
            for n in c.table_elts.iter().chain(&c.constraints) {
                match n.node.as_ref() {
                    Some(NodeEnum::Constraint(k)) => out.extend(&k.pktable),
                    Some(NodeEnum::ColumnDef(col)) => {
                        out.extend(
                            ast::column_constraints(col)
                                .into_iter()
                                .filter_map(|k| k.pktable.as_ref()),
                        );
                    }
                    _ => {}
                }
            }
        }
        NodeEnum::CreateTableAsStmt(c) => out.extend(c.into.as_ref().and_then(|i| i.rel.as_ref())),
        NodeEnum::ViewStmt(v) => out.extend(&v.view),
        NodeEnum::CreateSeqStmt(s) => out.extend(&s.sequence),
        NodeEnum::IndexStmt(i) => out.extend(&i.relation),
        NodeEnum::CreateTrigStmt(t) => out.extend(&t.relation),
        NodeEnum::CreatePolicyStmt(p) => out.extend(&p.table),
        NodeEnum::AlterTableStmt(a) => {
            out.extend(&a.relation);
            for (cmd, _) in ast::alter_cmds(a) {
                match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::PartitionCmd(p)) => out.extend(&p.name),
                    Some(NodeEnum::Constraint(k)) => out.extend(&k.pktable),
                    Some(NodeEnum::ColumnDef(col)) => {
                        out.extend(
                            ast::column_constraints(col)
                                .into_iter()
                                .filter_map(|k| k.pktable.as_ref()),
                        );
                    }
                    _ => {}
                }
            }
        }
        NodeEnum::RenameStmt(r) => out.extend(&r.relation),
        NodeEnum::TruncateStmt(t) => out.extend(range_vars(&t.relations)),
        NodeEnum::RefreshMatViewStmt(r) => out.extend(&r.relation),
        NodeEnum::ClusterStmt(c) => out.extend(&c.relation),
        NodeEnum::ReindexStmt(r) => out.extend(&r.relation),
        NodeEnum::LockStmt(l) => out.extend(range_vars(&l.relations)),
        NodeEnum::VacuumStmt(v) => {
            out.extend(v.rels.iter().filter_map(|n| match n.node.as_ref()? {
                NodeEnum::VacuumRelation(r) => r.relation.as_ref(),
                _ => None,
            }));
        }
        _ => {}
    }
    out
}

fn range_vars(list: &[Node]) -> impl Iterator<Item = &RangeVar> {
    list.iter().filter_map(|n| match n.node.as_ref()? {
        NodeEnum::RangeVar(r) => Some(r),
        _ => None,
    })
}

/// Unqualified names a `DROP TABLE/INDEX/VIEW/SEQUENCE/...` lists.
fn dropped(node: &NodeEnum) -> Vec<String> {
    let NodeEnum::DropStmt(d) = node else {
        return Vec::new();
    };
    let relation_kinds = [
        ObjectType::ObjectTable,
        ObjectType::ObjectIndex,
        ObjectType::ObjectView,
        ObjectType::ObjectMatview,
        ObjectType::ObjectSequence,
        ObjectType::ObjectForeignTable,
    ];
    if !relation_kinds.iter().any(|k| *k as i32 == d.remove_type) {
        return Vec::new();
    }
    dropped_names(d)
        .into_iter()
        .filter(|n| !n.contains('.'))
        .collect()
}

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let mut names: Vec<String> = Vec::new();
    let unqualified = relations(stmt.node)
        .into_iter()
        .filter(|rv| rv.schemaname.is_empty() && !ast::is_temp(rv))
        .map(|rv| rv.relname.clone())
        .chain(dropped(stmt.node));
    for n in unqualified {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    if names.is_empty() {
        return Vec::new();
    }
    let list = names.join(", ");
    let qualified: Vec<String> = names.iter().map(|n| format!("public.{n}")).collect();
    vec![
        Hit::new(format!(
            "{} {list} {} not schema-qualified: the search_path when the migration runs decides \
             which schema {}",
            if names.len() == 1 { "name" } else { "names" },
            if names.len() == 1 { "is" } else { "are" },
            if names.len() == 1 {
                "it means"
            } else {
                "they mean"
            },
        ))
        .help(format!(
            "qualify {} with {} schema, e.g. {}",
            if names.len() == 1 { "it" } else { "them" },
            if names.len() == 1 { "its" } else { "their" },
            qualified.join(", ")
        )),
    ]
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_an_unqualified_create_table() {
        assert_eq!(
            render("RB07", "CREATE TABLE orders (id bigint PRIMARY KEY);"),
            "m.sql:1:1: warning RB07 require-table-schema: name orders is not schema-qualified: \
             the search_path when the migration runs decides which schema it means\n  \
             1 | CREATE TABLE orders (id bigint PRIMARY KEY)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: qualify it with its schema, e.g. public.orders\n"
        );
    }

    #[test]
    fn flags_unqualified_names_in_ddl() {
        for (sql, names) in [
            ("ALTER TABLE orders ADD COLUMN note text;", "name orders is"),
            (
                "ALTER TABLE app.orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);",
                "name users is",
            ),
            (
                "CREATE TABLE app.items (order_id bigint REFERENCES orders);",
                "name orders is",
            ),
            (
                "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);",
                "names p1, p are",
            ),
            ("CREATE INDEX i ON orders (user_id);", "name orders is"),
            ("DROP TABLE app.a, b;", "name b is"),
            ("DROP INDEX CONCURRENTLY orders_idx;", "name orders_idx is"),
            ("DROP VIEW v;", "name v is"),
            ("CREATE VIEW v AS SELECT 1;", "name v is"),
            ("CREATE MATERIALIZED VIEW m AS SELECT 1;", "name m is"),
            ("CREATE TABLE c AS SELECT 1;", "name c is"),
            ("CREATE SEQUENCE s;", "name s is"),
            ("ALTER TABLE orders RENAME TO purchases;", "name orders is"),
            ("TRUNCATE a, app.b;", "name a is"),
            ("REFRESH MATERIALIZED VIEW m;", "name m is"),
            ("LOCK TABLE orders;", "name orders is"),
            (
                "ALTER TABLE app.p ATTACH PARTITION p1 FOR VALUES IN (1);",
                "name p1 is",
            ),
            (
                "CREATE TRIGGER t BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f();",
                "orders",
            ),
        ] {
            let out = render("RB07", sql);
            assert!(out.contains(names), "{sql}: {out}");
        }
    }

    #[test]
    fn passes_qualified_temporary_and_dml() {
        for sql in [
            "CREATE TABLE public.orders (id bigint);",
            "CREATE TABLE app.items (order_id bigint REFERENCES app.orders);",
            "CREATE TEMP TABLE scratch (id int);",
            "CREATE TEMPORARY TABLE scratch AS SELECT 1;",
            "ALTER TABLE public.orders ADD COLUMN note text;",
            "DROP TABLE IF EXISTS public.orders;",
            "CREATE INDEX i ON app.orders (user_id);",
            "UPDATE orders SET note = '' WHERE note IS NULL;",
            "INSERT INTO orders (id) VALUES (1);",
            "DROP TYPE mood;",
            "DROP FUNCTION f();",
        ] {
            assert_eq!(render("RB07", sql), "", "{sql}");
        }
    }

    #[test]
    fn names_each_table_once() {
        let out = render(
            "RB07",
            "CREATE TABLE orders (id bigint, parent bigint REFERENCES orders);",
        );
        assert!(out.contains("name orders is not"), "{out}");
        assert!(out.contains("e.g. public.orders\n"), "{out}");
    }
}
