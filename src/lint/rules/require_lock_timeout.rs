//! LK23 require-lock-timeout (opt-in): a statement that takes ACCESS EXCLUSIVE, EXCLUSIVE,
//! SHARE ROW EXCLUSIVE or SHARE on an existing table with no `SET lock_timeout` earlier in
//! the file. Also `SET lock_timeout = 0` (which turns the timeout off, even pgship's own) and
//! `SET LOCAL lock_timeout` outside a transaction block (which does nothing).
//!
//! A waiting lock request queues every later conflicting query behind it, so a migration that
//! waits behind one long transaction can stall all traffic on the table; `lock_timeout` makes
//! it give up (and retry) instead. pgship's own engine sets `lock_timeout` and retries, so the
//! rule is silent under it (except for `SET lock_timeout = 0`). Tables created earlier in the
//! same file or transaction are exempt.
//!
//! Severity: warning. It is a missing safeguard rather than a hazard of the statement itself,
//! and the timeout may well be set outside the file (by the runner, the role or the
//! database), which is why the rule is opt-in.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableStmt, AlterTableType, ConstrType, Node, ObjectType, RangeVar, ReindexObjectType,
    VariableSetKind, a_const,
};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "LK23",
    name: "require-lock-timeout",
    severity: Severity::Warning,
    default_on: false,
    summary: "a statement that takes a strong lock runs with no lock_timeout set earlier in the \
              file",
    help: "SET lock_timeout = '2s' at the top of the file (SET LOCAL inside a transaction) and \
           retry when it times out; pgship's engine does both",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if let NodeEnum::VariableSetStmt(v) = stmt.node {
        return set_hits(v, stmt, ctx);
    }
    if matches!(ctx.wrap, Wrap::Engine { .. }) || ctx.lock_timeout_set {
        return Vec::new();
    }
    let Some(lock) = strong_lock(stmt.node, ctx) else {
        return Vec::new();
    };
    vec![Hit::new(format!(
        "{} takes {} with no lock_timeout set earlier in this file: while it waits behind a \
         long transaction, every conflicting query on {} queues behind it",
        lock.what,
        lock.describe(),
        if lock.targets.len() == 1 && !lock.targets[0].0.starts_with("every ") {
            "it"
        } else {
            "them"
        }
    ))]
}

/// `SET lock_timeout = 0` anywhere, `SET LOCAL lock_timeout` outside a transaction block.
fn set_hits(v: &pg_query::protobuf::VariableSetStmt, stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if v.name != "lock_timeout" || v.kind != VariableSetKind::VarSetValue as i32 {
        return Vec::new();
    }
    if v.args.first().and_then(setting_is_zero) == Some(true) {
        let whose = if matches!(ctx.wrap, Wrap::Engine { .. }) {
            " (including the one pgship's engine sets)"
        } else {
            ""
        };
        return vec![
            Hit::new(format!(
                "lock_timeout = 0 turns the lock timeout off{whose}: later statements can wait, \
                 and queue traffic behind them, without limit"
            ))
            .help("set a short timeout instead, e.g. SET lock_timeout = '2s', and retry"),
        ];
    }
    if v.is_local && !stmt.in_transaction {
        return vec![
            Hit::new(
                "SET LOCAL outside a transaction block has no effect: lock_timeout stays unset",
            )
            .help("use SET lock_timeout (without LOCAL), or put it inside BEGIN ... COMMIT"),
        ];
    }
    Vec::new()
}

/// Whether a timeout setting is zero: `0`, `'0'`, `'0s'`, `'0ms'`.
fn setting_is_zero(n: &Node) -> Option<bool> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(i.ival == 0),
            a_const::Val::Fval(f) => Some(f.fval.parse::<f64>().ok()? == 0.0),
            a_const::Val::Sval(s) => {
                let digits: String = s
                    .sval
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                Some(digits.parse::<f64>().ok()? == 0.0)
            }
            _ => None,
        },
        _ => None,
    }
}

/// PostgreSQL's `defGetBoolean` on an option list: present and not false/off/0.
pub(super) fn option_true(options: &[Node], name: &str) -> bool {
    options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name) => {
            match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::String(s)) => !matches!(
                    s.sval.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0" | "f" | "n"
                ),
                Some(_) => true,
            }
        }
        _ => false,
    })
}

/// The strong lock a statement takes.
struct Lock {
    /// What the statement is: `ALTER TABLE`, `CREATE INDEX`, ...
    what: String,
    /// What is locked, as written, and in which mode (`ACCESS EXCLUSIVE`, ...).
    targets: Vec<(String, &'static str)>,
}

impl Lock {
    fn new(what: &str, mode: &'static str, targets: Vec<String>) -> Option<Lock> {
        (!targets.is_empty()).then(|| Lock {
            what: what.to_string(),
            targets: targets.into_iter().map(|t| (t, mode)).collect(),
        })
    }

    /// Lock `target` in `mode`, or keep the stronger mode it already has.
    fn raise(&mut self, target: String, mode: &'static str) {
        match self.targets.iter_mut().find(|(t, _)| *t == target) {
            Some((_, m)) if strength(mode) > strength(m) => *m = mode,
            Some(_) => {}
            None => self.targets.push((target, mode)),
        }
    }

    /// `ACCESS EXCLUSIVE on a, b and SHARE ROW EXCLUSIVE on c`, strongest first.
    fn describe(&self) -> String {
        let mut modes: Vec<&str> = self.targets.iter().map(|(_, m)| *m).collect();
        modes.sort_by_key(|m| std::cmp::Reverse(strength(m)));
        modes.dedup();
        modes
            .iter()
            .map(|m| {
                let on: Vec<&str> = self
                    .targets
                    .iter()
                    .filter(|(_, tm)| tm == m)
                    .map(|(t, _)| t.as_str())
                    .collect();
                format!("{m} on {}", on.join(", "))
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

const AE: &str = "ACCESS EXCLUSIVE";
const SRE: &str = "SHARE ROW EXCLUSIVE";
const SHARE: &str = "SHARE";

fn strength(mode: &str) -> u8 {
    match mode {
        AE => 8,
        "EXCLUSIVE" => 7,
        SRE => 6,
        SHARE => 5,
        _ => 0,
    }
}

/// The statement's strongest lock of SHARE or more on a relation that is not new, if any.
fn strong_lock(node: &NodeEnum, ctx: &Context) -> Option<Lock> {
    let old = |rv: &RangeVar| !ctx.is_new_table(&ast::rel_key(rv)) && !ast::is_temp(rv);
    let on = |what: &str, mode: &'static str, rvs: Vec<&RangeVar>| {
        let targets: Vec<String> = rvs
            .into_iter()
            .filter(|rv| old(rv))
            .map(ast::rel_name)
            .collect();
        Lock::new(what, mode, targets)
    };
    let named =
        |what: &str, mode: &'static str, target: String| Lock::new(what, mode, vec![target]);
    match node {
        NodeEnum::AlterTableStmt(a) => alter_table(a, ctx, &old),
        NodeEnum::IndexStmt(i) if !i.concurrent => {
            on("CREATE INDEX", SHARE, i.relation.iter().collect())
        }
        NodeEnum::DropStmt(d) => drop(d, ctx),
        NodeEnum::TruncateStmt(t) => on("TRUNCATE", AE, range_vars(&t.relations)),
        NodeEnum::ReindexStmt(r) if !option_true(&r.params, "concurrently") => {
            let Some(rv) = r.relation.as_ref() else {
                return named("REINDEX", AE, format!("every index in {}", r.name));
            };
            let key = ast::rel_key(rv);
            let name = ast::rel_name(rv);
            if r.kind == ReindexObjectType::ReindexObjectIndex as i32 {
                named("REINDEX", AE, name)
            } else if ctx.is_new_table(&key) || ast::is_temp(rv) {
                None
            } else {
                let mut lock = Lock::new("REINDEX", AE, vec![format!("the indexes of {name}")])?;
                lock.raise(name, SHARE);
                Some(lock)
            }
        }
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd && option_true(&v.options, "full") => {
            let rels: Vec<&RangeVar> = v
                .rels
                .iter()
                .filter_map(|n| match n.node.as_ref()? {
                    NodeEnum::VacuumRelation(r) => r.relation.as_ref(),
                    _ => None,
                })
                .collect();
            if rels.is_empty() {
                named("VACUUM FULL", AE, "every table of the database".into())
            } else {
                on("VACUUM FULL", AE, rels)
            }
        }
        NodeEnum::ClusterStmt(c) => match c.relation.as_ref() {
            Some(rv) => on("CLUSTER", AE, vec![rv]),
            None => named("CLUSTER", AE, "every clustered table".into()),
        },
        NodeEnum::RefreshMatViewStmt(r) if !r.concurrent => {
            on("REFRESH MATERIALIZED VIEW", AE, r.relation.iter().collect())
        }
        NodeEnum::LockStmt(l) => {
            let mode = match l.mode {
                5 => SHARE,
                6 => SRE,
                7 => "EXCLUSIVE",
                8 => AE,
                _ => return None,
            };
            on("LOCK TABLE", mode, range_vars(&l.relations))
        }
        NodeEnum::CreateTrigStmt(t) => on("CREATE TRIGGER", SRE, t.relation.iter().collect()),
        NodeEnum::CreatePolicyStmt(p) => on("CREATE POLICY", AE, p.table.iter().collect()),
        NodeEnum::AlterPolicyStmt(p) => on("ALTER POLICY", AE, p.table.iter().collect()),
        NodeEnum::RuleStmt(r) => on("CREATE RULE", AE, r.relation.iter().collect()),
        NodeEnum::CreateStmt(c) => {
            if c.partbound.is_some() {
                return on(
                    "CREATE TABLE ... PARTITION OF",
                    AE,
                    range_vars(&c.inh_relations),
                );
            }
            on("CREATE TABLE ... REFERENCES", SRE, referenced(c))
        }
        NodeEnum::AlterDomainStmt(d) => {
            let scans = match d.subtype.as_str() {
                "C" => matches!(d.def.as_ref().and_then(|n| n.node.as_ref()),
                    Some(NodeEnum::Constraint(c)) if !c.skip_validation),
                "O" => true,
                "V" => ctx.pg_version < 19,
                _ => false,
            };
            let users = format!(
                "every table that uses domain {}",
                ast::strings(&d.type_name).join(".")
            );
            if scans {
                named("ALTER DOMAIN", SHARE, users)
            } else {
                None
            }
        }
        NodeEnum::RenameStmt(r) => {
            let t = ObjectType::try_from(r.rename_type).ok()?;
            let mode = match t {
                ObjectType::ObjectIndex if ctx.pg_version >= 12 => return None,
                ObjectType::ObjectTable
                | ObjectType::ObjectColumn
                | ObjectType::ObjectTabconstraint
                | ObjectType::ObjectView
                | ObjectType::ObjectMatview
                | ObjectType::ObjectForeignTable
                | ObjectType::ObjectIndex
                | ObjectType::ObjectTrigger
                | ObjectType::ObjectPolicy
                | ObjectType::ObjectRule => AE,
                _ => return None,
            };
            on("RENAME", mode, r.relation.iter().collect())
        }
        NodeEnum::AlterObjectSchemaStmt(s) => match ObjectType::try_from(s.object_type).ok()? {
            ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable => on("SET SCHEMA", AE, s.relation.iter().collect()),
            _ => None,
        },
        NodeEnum::ViewStmt(v) if v.replace => {
            let rv = v.view.as_ref()?;
            let exists = ctx
                .catalog
                .as_ref()
                .map(|c| c.table(&ast::rel_key(rv)).is_some());
            if exists == Some(false) {
                return None;
            }
            on("CREATE OR REPLACE VIEW", AE, vec![rv])
        }
        _ => None,
    }
}

fn range_vars(nodes: &[Node]) -> Vec<&RangeVar> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::RangeVar(rv) => Some(rv),
            _ => None,
        })
        .collect()
}

/// The tables a `CREATE TABLE` references with foreign keys.
fn referenced(c: &pg_query::protobuf::CreateStmt) -> Vec<&RangeVar> {
    let mut constraints = Vec::new();
    for n in c.table_elts.iter().chain(&c.constraints) {
        match n.node.as_ref() {
            Some(NodeEnum::ColumnDef(col)) => constraints.extend(ast::column_constraints(col)),
            Some(NodeEnum::Constraint(con)) => constraints.push(con.as_ref()),
            _ => {}
        }
    }
    constraints
        .into_iter()
        .filter(|con| ast::constr_type(con) == ConstrType::ConstrForeign)
        .filter_map(|con| con.pktable.as_ref())
        .collect()
}

fn alter_table(a: &AlterTableStmt, ctx: &Context, old: &dyn Fn(&RangeVar) -> bool) -> Option<Lock> {
    let kind = match ObjectType::try_from(a.objtype).ok()? {
        ObjectType::ObjectTable => "ALTER TABLE",
        ObjectType::ObjectIndex => "ALTER INDEX",
        ObjectType::ObjectMatview => "ALTER MATERIALIZED VIEW",
        ObjectType::ObjectView => "ALTER VIEW",
        ObjectType::ObjectForeignTable => "ALTER FOREIGN TABLE",
        _ => return None,
    };
    let rv = a.relation.as_ref()?;
    let mut lock = Lock {
        what: kind.to_string(),
        targets: Vec::new(),
    };
    let raise = |m: &'static str, rv: &RangeVar, lock: &mut Lock| {
        if old(rv) {
            lock.raise(ast::rel_name(rv), m);
        }
    };
    for (cmd, t) in ast::alter_cmds(a) {
        let partition = || match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::PartitionCmd(p)) => p.name.as_ref().map(|n| (p, n)),
            _ => None,
        };
        match t {
            AlterTableType::AtSetStatistics
            | AlterTableType::AtSetOptions
            | AlterTableType::AtResetOptions
            | AlterTableType::AtSetRelOptions
            | AlterTableType::AtResetRelOptions
            | AlterTableType::AtClusterOn
            | AlterTableType::AtDropCluster
            | AlterTableType::AtValidateConstraint => {}
            AlterTableType::AtAttachPartition if kind == "ALTER TABLE" => {
                if ctx.pg_version < 12 {
                    raise(AE, rv, &mut lock);
                }
                if let Some((_, part)) = partition() {
                    raise(AE, part, &mut lock);
                }
            }
            AlterTableType::AtAttachPartition => {}
            AlterTableType::AtDetachPartitionFinalize => {
                if let Some((_, part)) = partition() {
                    raise(AE, part, &mut lock);
                }
            }
            AlterTableType::AtDetachPartition if partition().is_some_and(|(p, _)| p.concurrent) => {
            }
            AlterTableType::AtDetachPartition => {
                raise(AE, rv, &mut lock);
                if let Some((_, part)) = partition() {
                    raise(AE, part, &mut lock);
                }
            }
            AlterTableType::AtEnableTrig
            | AlterTableType::AtEnableAlwaysTrig
            | AlterTableType::AtEnableReplicaTrig
            | AlterTableType::AtDisableTrig
            | AlterTableType::AtEnableTrigAll
            | AlterTableType::AtDisableTrigAll
            | AlterTableType::AtEnableTrigUser
            | AlterTableType::AtDisableTrigUser => raise(SRE, rv, &mut lock),
            AlterTableType::AtAddConstraint => match ast::constraint_def(cmd) {
                Some(c) if ast::constr_type(c) == ConstrType::ConstrForeign => {
                    raise(SRE, rv, &mut lock);
                    if let Some(pk) = c.pktable.as_ref() {
                        raise(SRE, pk, &mut lock);
                    }
                }
                _ => raise(AE, rv, &mut lock),
            },
            AlterTableType::AtAddColumn => {
                raise(AE, rv, &mut lock);
                for c in ast::column_def(cmd)
                    .map(ast::column_constraints)
                    .unwrap_or_default()
                {
                    if ast::constr_type(c) == ConstrType::ConstrForeign
                        && let Some(pk) = c.pktable.as_ref()
                    {
                        raise(SRE, pk, &mut lock);
                    }
                }
            }
            _ => raise(AE, rv, &mut lock),
        }
    }
    (!lock.targets.is_empty()).then_some(lock)
}

fn drop(d: &pg_query::protobuf::DropStmt, ctx: &Context) -> Option<Lock> {
    let t = ObjectType::try_from(d.remove_type).ok()?;
    let names: Vec<Vec<&str>> = d
        .objects
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::List(l) => Some(ast::strings(&l.items)),
            _ => None,
        })
        .collect();
    let is_new = |parts: &[&str]| match parts {
        [t] => ctx.is_new_table(&ast::key("", t)),
        [s, t] => ctx.is_new_table(&ast::key(s, t)),
        _ => false,
    };
    let (what, targets): (&str, Vec<String>) = match t {
        ObjectType::ObjectTable
        | ObjectType::ObjectView
        | ObjectType::ObjectMatview
        | ObjectType::ObjectForeignTable => (
            "DROP",
            names
                .iter()
                .filter(|p| !is_new(p))
                .map(|p| p.join("."))
                .collect(),
        ),
        ObjectType::ObjectIndex if !d.concurrent => (
            "DROP INDEX",
            names
                .iter()
                .map(|p| format!("the table of index {}", p.join(".")))
                .collect(),
        ),
        ObjectType::ObjectTrigger | ObjectType::ObjectPolicy | ObjectType::ObjectRule => (
            match t {
                ObjectType::ObjectTrigger => "DROP TRIGGER",
                ObjectType::ObjectPolicy => "DROP POLICY",
                _ => "DROP RULE",
            },
            names
                .iter()
                .filter_map(|p| p.split_last().map(|(_, table)| table.to_vec()))
                .filter(|table| !is_new(table))
                .map(|table| table.join("."))
                .collect(),
        ),
        _ => return None,
    };
    Lock::new(what, AE, targets)
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn opts(wrap: Wrap, pg_version: u32) -> Opts {
        Opts {
            wrap,
            pg_version,
            catalog: None,
        }
    }

    #[test]
    fn flags_a_strong_lock_without_a_timeout() {
        assert_eq!(
            render("LK23", "ALTER TABLE orders ADD COLUMN note text;"),
            "m.sql:1:1: warning LK23 require-lock-timeout: ALTER TABLE takes ACCESS EXCLUSIVE on \
             orders with no lock_timeout set earlier in this file: while it waits behind a long \
             transaction, every conflicting query on it queues behind it\n  \
             1 | ALTER TABLE orders ADD COLUMN note text\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: SET lock_timeout = '2s' at the top of the file (SET LOCAL inside a \
             transaction) and retry when it times out; pgship's engine does both\n"
        );
    }

    #[test]
    fn names_the_lock_and_every_table() {
        for (sql, expect) in [
            (
                "CREATE INDEX i ON orders (a);",
                "CREATE INDEX takes SHARE on orders",
            ),
            (
                "ALTER TABLE lines ADD CONSTRAINT fk FOREIGN KEY (o) REFERENCES orders NOT VALID;",
                "ALTER TABLE takes SHARE ROW EXCLUSIVE on lines, orders with",
            ),
            (
                "ALTER TABLE lines ADD COLUMN o int REFERENCES app.orders;",
                "ACCESS EXCLUSIVE on lines and SHARE ROW EXCLUSIVE on app.orders with",
            ),
            (
                "CREATE TABLE lines (o int REFERENCES orders);",
                "SHARE ROW EXCLUSIVE on orders",
            ),
            (
                "CREATE TABLE e_2 PARTITION OF events FOR VALUES IN (2);",
                "PARTITION OF takes ACCESS EXCLUSIVE on events",
            ),
            (
                "ALTER TABLE events ATTACH PARTITION e_2 FOR VALUES IN (2);",
                "ACCESS EXCLUSIVE on e_2 ",
            ),
            (
                "CREATE TRIGGER t AFTER INSERT ON orders EXECUTE FUNCTION f();",
                "SHARE ROW EXCLUSIVE on orders",
            ),
            (
                "DROP TABLE a, s.b;",
                "DROP takes ACCESS EXCLUSIVE on a, s.b",
            ),
            (
                "DROP INDEX orders_a_idx;",
                "on the table of index orders_a_idx",
            ),
            (
                "DROP POLICY p ON orders;",
                "DROP POLICY takes ACCESS EXCLUSIVE on orders",
            ),
            ("TRUNCATE orders;", "TRUNCATE takes ACCESS EXCLUSIVE"),
            (
                "ALTER TABLE events DETACH PARTITION e_1;",
                "ACCESS EXCLUSIVE on events, e_1 with",
            ),
            (
                "REINDEX TABLE orders;",
                "REINDEX takes ACCESS EXCLUSIVE on the indexes of orders and SHARE on orders",
            ),
            (
                "REINDEX INDEX orders_pkey;",
                "REINDEX takes ACCESS EXCLUSIVE on orders_pkey",
            ),
            ("REINDEX SCHEMA app;", "on every index in app"),
            (
                "VACUUM (FULL) orders;",
                "VACUUM FULL takes ACCESS EXCLUSIVE on orders",
            ),
            ("CLUSTER orders USING orders_pkey;", "CLUSTER takes"),
            (
                "REFRESH MATERIALIZED VIEW mv;",
                "REFRESH MATERIALIZED VIEW takes ACCESS EXCLUSIVE on mv",
            ),
            (
                "BEGIN;\nLOCK orders IN EXCLUSIVE MODE;\nCOMMIT;",
                "LOCK TABLE takes EXCLUSIVE on orders",
            ),
            (
                "CREATE POLICY p ON orders USING (true);",
                "CREATE POLICY takes ACCESS EXCLUSIVE",
            ),
            (
                "ALTER TABLE orders RENAME COLUMN a TO b;",
                "RENAME takes ACCESS EXCLUSIVE on orders",
            ),
            (
                "ALTER TABLE orders SET SCHEMA archive;",
                "SET SCHEMA takes ACCESS EXCLUSIVE on orders",
            ),
            (
                "CREATE OR REPLACE VIEW v AS SELECT 1;",
                "CREATE OR REPLACE VIEW takes ACCESS EXCLUSIVE on v",
            ),
            (
                "ALTER DOMAIN d ADD CHECK (VALUE > 0);",
                "ALTER DOMAIN takes SHARE on every table that uses domain d",
            ),
            (
                "ALTER INDEX i SET TABLESPACE t;",
                "ALTER INDEX takes ACCESS EXCLUSIVE on i",
            ),
        ] {
            let out = render("LK23", sql);
            assert!(out.contains(expect), "{sql}: {out}");
        }
    }

    #[test]
    fn passes_weak_locks() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON orders (a);",
            "DROP INDEX CONCURRENTLY i;",
            "REINDEX TABLE CONCURRENTLY orders;",
            "ALTER TABLE orders VALIDATE CONSTRAINT c;",
            "ALTER TABLE orders SET (fillfactor = 70), ALTER a SET STATISTICS 500;",
            "ALTER TABLE events DETACH PARTITION p CONCURRENTLY;",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;",
            "VACUUM orders;",
            "ANALYZE orders;",
            "COMMENT ON TABLE orders IS 'x';",
            "CREATE TABLE t (id int);",
            "UPDATE orders SET a = 1;",
            "ALTER DOMAIN d ADD CHECK (VALUE > 0) NOT VALID;",
            "BEGIN;\nLOCK orders IN ROW EXCLUSIVE MODE;\nCOMMIT;",
            "ALTER INDEX i RENAME TO j;",
        ] {
            assert_eq!(render("LK23", sql), "", "{sql}");
        }
    }

    #[test]
    fn before_12_renaming_an_index_and_attaching_lock_more() {
        let out = render_with("LK23", "ALTER INDEX i RENAME TO j;", opts(Wrap::None, 11));
        assert!(out.contains("RENAME takes ACCESS EXCLUSIVE"), "{out}");
        let out = render_with(
            "LK23",
            "ALTER TABLE events ATTACH PARTITION e_2 FOR VALUES IN (2);",
            opts(Wrap::None, 11),
        );
        assert!(
            out.contains("ACCESS EXCLUSIVE on events, e_2 with"),
            "{out}"
        );
    }

    #[test]
    fn passes_after_a_set_and_on_new_tables() {
        for sql in [
            "SET lock_timeout = '2s';\nALTER TABLE orders ADD COLUMN note text;",
            "BEGIN;\nSET LOCAL lock_timeout = '2s';\nALTER TABLE orders ADD COLUMN note text;\nCOMMIT;",
            "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN note text;\nCREATE INDEX i ON t (id);",
            "CREATE TABLE p (id int) PARTITION BY LIST (id);\nCREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);",
            "CREATE TABLE a (id int primary key);\nCREATE TABLE b (a int REFERENCES a);",
        ] {
            assert_eq!(render("LK23", sql), "", "{sql}");
        }
        // Only the new table is left out.
        let out = render("LK23", "CREATE TABLE t (id int);\nDROP TABLE t, orders;");
        assert!(
            out.contains("DROP takes ACCESS EXCLUSIVE on orders with"),
            "{out}"
        );
    }

    #[test]
    fn silent_under_pgships_engine() {
        let engine = Wrap::Engine {
            per_migration: false,
        };
        assert_eq!(
            render_with(
                "LK23",
                "ALTER TABLE orders ADD COLUMN note text;",
                opts(engine, 17)
            ),
            ""
        );
        // Turning the engine's timeout off is still reported.
        let out = render_with("LK23", "SET lock_timeout = 0;", opts(engine, 17));
        assert!(
            out.contains("turns the lock timeout off (including the one pgship's engine sets)"),
            "{out}"
        );
        // A file wrapped by another runner is not exempt.
        let out = render_with(
            "LK23",
            "ALTER TABLE orders ADD COLUMN note text;",
            opts(Wrap::File, 17),
        );
        assert!(out.contains("warning LK23"), "{out}");
    }

    #[test]
    fn flags_settings_that_do_not_protect() {
        for sql in [
            "SET lock_timeout = 0;",
            "SET lock_timeout TO '0';",
            "SET SESSION lock_timeout = '0ms';",
        ] {
            let out = render("LK23", sql);
            assert!(out.contains("turns the lock timeout off"), "{sql}: {out}");
        }
        let out = render("LK23", "SET LOCAL lock_timeout = '2s';");
        assert!(
            out.contains("SET LOCAL outside a transaction block has no effect"),
            "{out}"
        );
        for sql in [
            "SET lock_timeout = '2s';",
            "SET lock_timeout = '0.5s';",
            "RESET lock_timeout;",
            "BEGIN;\nSET LOCAL lock_timeout = '2s';\nCOMMIT;",
            "SET statement_timeout = 0;",
        ] {
            assert_eq!(render("LK23", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_tells_a_new_view_from_a_replaced_one() {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.v_old".into(),
            Table {
                kind: 'v',
                ..Default::default()
            },
        );
        let o = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        assert_eq!(
            render_with("LK23", "CREATE OR REPLACE VIEW v_new AS SELECT 1;", o()),
            ""
        );
        assert!(
            render_with("LK23", "CREATE OR REPLACE VIEW v_old AS SELECT 1;", o())
                .contains("warning LK23")
        );
    }
}
