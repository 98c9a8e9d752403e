//! LK24 require-statement-timeout (opt-in): a statement whose run time grows with the size of
//! an existing table, with no `SET statement_timeout` earlier in the file: index builds
//! (`CREATE INDEX`, also `CONCURRENTLY`, `REINDEX`, `ADD PRIMARY KEY/UNIQUE/EXCLUDE`),
//! rewrites (`ALTER COLUMN TYPE`, a rewriting `ADD COLUMN`, `SET TABLESPACE/LOGGED/UNLOGGED/
//! ACCESS METHOD/EXPRESSION`, `VACUUM FULL`, `CLUSTER`, `REFRESH MATERIALIZED VIEW`),
//! validations (`SET NOT NULL`, `ADD CHECK/FOREIGN KEY` without `NOT VALID`, `VALIDATE
//! CONSTRAINT`, `ATTACH PARTITION`, domain constraints) and backfills (`UPDATE`, `DELETE`,
//! `INSERT ... SELECT`, `MERGE`, `CREATE TABLE ... AS`).
//!
//! Without a statement timeout nothing bounds how long such a statement holds its locks when
//! it runs far longer than it did in testing. pgship's own engine applies its configured
//! `statement_timeout`, so the rule is silent under it. Tables created earlier in the same
//! file or transaction are exempt (they are empty).
//!
//! Severity: warning. It is a missing safeguard, not a hazard of the statement itself, and
//! the timeout may be set by the runner, the role or the database, hence opt-in.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableStmt, AlterTableType, ConstrType, Node, ObjectType, RangeVar, SetOperation,
};

use super::require_lock_timeout::option_true;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "LK24",
    name: "require-statement-timeout",
    severity: Severity::Warning,
    default_on: false,
    summary: "a long-running statement (index build, rewrite, validation, backfill) runs with no \
              statement_timeout set earlier in the file",
    help: "SET statement_timeout before it, sized for the table (a cancelled statement rolls back \
           and releases its locks); pgship's engine applies its own",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    if matches!(ctx.wrap, Wrap::Engine { .. }) || ctx.statement_timeout_set {
        return Vec::new();
    }
    let Some((work, concurrent)) = long_running(stmt.node, ctx) else {
        return Vec::new();
    };
    let mut hit = Hit::new(format!(
        "{work} with no statement_timeout set earlier in this file: nothing stops it if it runs \
         far longer than expected"
    ));
    if concurrent {
        hit = hit.help(
            "SET statement_timeout generously before it (a concurrent build is slow but does not \
             block writes, and a cancelled one leaves an INVALID index to drop)",
        );
    }
    vec![hit]
}

/// What makes the statement long-running, and whether it is a concurrent build.
fn long_running(node: &NodeEnum, ctx: &Context) -> Option<(String, bool)> {
    let old = |rv: &RangeVar| !ctx.is_new_table(&ast::rel_key(rv)) && !ast::is_temp(rv);
    let on = |rv: Option<&RangeVar>| rv.filter(|rv| old(rv)).map(ast::rel_name);
    match node {
        NodeEnum::IndexStmt(i) => {
            let table = on(i.relation.as_ref())?;
            let how = if i.concurrent { " concurrently" } else { "" };
            Some((format!("building an index on {table}{how}"), i.concurrent))
        }
        NodeEnum::ReindexStmt(r) => {
            let what = match r.relation.as_ref() {
                Some(rv) => on(Some(rv))?,
                None => r.name.clone(),
            };
            let conc = option_true(&r.params, "concurrently");
            Some((format!("rebuilding the indexes of {what}"), conc))
        }
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd && option_true(&v.options, "full") => {
            Some(("VACUUM FULL rewriting its tables".into(), false))
        }
        NodeEnum::ClusterStmt(c) => {
            let what = match c.relation.as_ref() {
                Some(rv) => on(Some(rv))?,
                None => "every clustered table".into(),
            };
            Some((format!("CLUSTER rewriting {what}"), false))
        }
        NodeEnum::RefreshMatViewStmt(r) if !r.skip_data => {
            let view = on(r.relation.as_ref())?;
            Some((format!("refreshing {view} (its whole query reruns)"), false))
        }
        NodeEnum::AlterTableStmt(a) => alter_table(a, ctx, &old),
        NodeEnum::AlterTableMoveAllStmt(m) => Some((
            format!(
                "moving every relation out of tablespace {}",
                m.orig_tablespacename
            ),
            false,
        )),
        NodeEnum::AlterDomainStmt(d) => {
            let scans = match d.subtype.as_str() {
                "C" => matches!(d.def.as_ref().and_then(|n| n.node.as_ref()),
                    Some(NodeEnum::Constraint(c)) if !c.skip_validation),
                "O" | "V" => true,
                _ => false,
            };
            let domain = ast::strings(&d.type_name).join(".");
            scans.then(|| {
                (
                    format!("checking every column that uses domain {domain}"),
                    false,
                )
            })
        }
        NodeEnum::UpdateStmt(u) => backfill("UPDATE", on(u.relation.as_ref())?),
        NodeEnum::DeleteStmt(d) => backfill("DELETE", on(d.relation.as_ref())?),
        NodeEnum::MergeStmt(m) => backfill("MERGE", on(m.relation.as_ref())?),
        NodeEnum::InsertStmt(i) if i.select_stmt.as_deref().is_some_and(is_query) => {
            backfill("INSERT ... SELECT", on(i.relation.as_ref())?)
        }
        NodeEnum::CreateTableAsStmt(c) => {
            let into = c.into.as_ref()?;
            if into.skip_data || !c.query.as_deref().is_some_and(is_query) {
                return None;
            }
            let rel = into.rel.as_ref().map(ast::rel_name).unwrap_or_default();
            Some((format!("filling {rel} from a query"), false))
        }
        _ => None,
    }
}

fn backfill(verb: &str, table: String) -> Option<(String, bool)> {
    Some((format!("{verb} of {table} (a backfill)"), false))
}

/// A query that reads rows, not a `VALUES` list or a `SELECT` of constants.
fn is_query(n: &Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::SelectStmt(s)) => {
            s.values_lists.is_empty()
                && (!s.from_clause.is_empty()
                    || s.op != SetOperation::SetopNone as i32
                    || s.with_clause.is_some())
        }
        _ => false,
    }
}

fn alter_table(
    a: &AlterTableStmt,
    ctx: &Context,
    old: &dyn Fn(&RangeVar) -> bool,
) -> Option<(String, bool)> {
    if !matches!(
        ObjectType::try_from(a.objtype),
        Ok(ObjectType::ObjectTable | ObjectType::ObjectMatview | ObjectType::ObjectIndex)
    ) {
        return None;
    }
    let rv = a.relation.as_ref()?;
    let table = ast::rel_name(rv);
    let mut work: Vec<String> = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        let col = &cmd.name;
        let w = match t {
            AlterTableType::AtAttachPartition => {
                match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::PartitionCmd(p)) => {
                        p.name.as_ref().filter(|p| old(p)).map(|p| {
                            format!("scanning {} to check its partition bound", ast::rel_name(p))
                        })
                    }
                    _ => None,
                }
            }
            _ if !old(rv) => None,
            AlterTableType::AtAlterColumnType => Some(format!("changing the type of {col}")),
            AlterTableType::AtSetNotNull => Some(format!("checking {col} for NULLs")),
            AlterTableType::AtValidateConstraint => Some(format!("validating {col}")),
            AlterTableType::AtSetTableSpace
            | AlterTableType::AtSetLogged
            | AlterTableType::AtSetUnLogged
            | AlterTableType::AtSetAccessMethod
            | AlterTableType::AtSetExpression => Some("copying it".to_string()),
            AlterTableType::AtAddConstraint => ast::constraint_def(cmd).and_then(constraint_work),
            AlterTableType::AtAddColumn => {
                ast::column_def(cmd).and_then(|c| add_column_work(c, ctx))
            }
            _ => None,
        };
        if let Some(w) = w
            && !work.contains(&w)
        {
            work.push(w);
        }
    }
    (!work.is_empty()).then(|| (format!("ALTER of {table} ({})", work.join(", ")), false))
}

fn constraint_work(c: &pg_query::protobuf::Constraint) -> Option<String> {
    let name = if c.conname.is_empty() {
        String::new()
    } else {
        format!(" {}", c.conname)
    };
    match ast::constr_type(c) {
        ConstrType::ConstrCheck | ConstrType::ConstrForeign if !c.skip_validation => {
            Some(format!("validating constraint{name}"))
        }
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique if c.indexname.is_empty() => {
            Some(format!("building the index of constraint{name}"))
        }
        ConstrType::ConstrExclusion => Some(format!("building the index of constraint{name}")),
        _ => None,
    }
}

/// Why an `ADD COLUMN` takes time: a rewrite, an index build, or a scan.
fn add_column_work(c: &pg_query::protobuf::ColumnDef, ctx: &Context) -> Option<String> {
    let name = &c.colname;
    let serial = c.type_name.as_ref().is_some_and(|t| {
        matches!(
            ast::base_type(t).as_str(),
            "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
        )
    });
    let known_stable = |f: &str| {
        ctx.catalog
            .as_ref()
            .is_some_and(|cat| cat.function_is_stable(f))
    };
    let mut rewrite = serial;
    let mut other = None;
    for con in ast::column_constraints(c) {
        match ast::constr_type(con) {
            ConstrType::ConstrIdentity => rewrite = true,
            ConstrType::ConstrGenerated if con.generated_kind == "s" => rewrite = true,
            ConstrType::ConstrDefault => {
                let volatile = con
                    .raw_expr
                    .as_ref()
                    .and_then(|e| e.node.as_ref())
                    .and_then(|e| ast::volatile_call(e, &known_stable))
                    .is_some();
                if volatile || ctx.pg_version < 11 {
                    rewrite = true;
                }
            }
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrExclusion => {
                other = Some(format!("building an index on {name}"));
            }
            ConstrType::ConstrCheck | ConstrType::ConstrForeign => {
                other.get_or_insert_with(|| format!("checking {name}"));
            }
            _ => {}
        }
    }
    if rewrite {
        Some(format!("adding {name} rewrites it"))
    } else {
        other
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::testing::{Opts, render, render_with};

    #[test]
    fn flags_an_index_build() {
        assert_eq!(
            render("LK24", "CREATE INDEX i ON orders (user_id);"),
            "m.sql:1:1: warning LK24 require-statement-timeout: building an index on orders with \
             no statement_timeout set earlier in this file: nothing stops it if it runs far \
             longer than expected\n  \
             1 | CREATE INDEX i ON orders (user_id)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: SET statement_timeout before it, sized for the table (a cancelled statement \
             rolls back and releases its locks); pgship's engine applies its own\n"
        );
        let out = render("LK24", "CREATE INDEX CONCURRENTLY i ON orders (user_id);");
        assert!(
            out.contains("building an index on orders concurrently")
                && out.contains("leaves an INVALID index"),
            "{out}"
        );
    }

    #[test]
    fn flags_rewrites_validations_and_backfills() {
        for (sql, expect) in [
            (
                "ALTER TABLE t ALTER COLUMN a TYPE bigint;",
                "ALTER of t (changing the type of a)",
            ),
            (
                "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
                "checking a for NULLs",
            ),
            (
                "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);",
                "validating constraint c",
            ),
            (
                "ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u;",
                "validating constraint",
            ),
            ("ALTER TABLE t VALIDATE CONSTRAINT c;", "validating c"),
            (
                "ALTER TABLE t ADD PRIMARY KEY (id);",
                "building the index of constraint",
            ),
            (
                "ALTER TABLE t ADD COLUMN id bigserial;",
                "adding id rewrites it",
            ),
            (
                "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();",
                "adding u rewrites it",
            ),
            (
                "ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS (a * 2) STORED;",
                "adding n rewrites",
            ),
            (
                "ALTER TABLE t ADD COLUMN e text UNIQUE;",
                "building an index on e",
            ),
            ("ALTER TABLE t SET TABLESPACE x;", "ALTER of t (copying it)"),
            (
                "ALTER TABLE p ATTACH PARTITION p1 FOR VALUES IN (1);",
                "scanning p1 to check",
            ),
            ("VACUUM FULL t;", "VACUUM FULL"),
            ("CLUSTER t USING t_pkey;", "CLUSTER rewriting t"),
            (
                "REINDEX INDEX CONCURRENTLY t_pkey;",
                "rebuilding the indexes of t_pkey",
            ),
            ("REFRESH MATERIALIZED VIEW mv;", "refreshing mv"),
            (
                "ALTER DOMAIN d ADD CHECK (VALUE > 0);",
                "checking every column that uses domain d",
            ),
            (
                "UPDATE t SET a = 0 WHERE a IS NULL;",
                "UPDATE of t (a backfill)",
            ),
            ("DELETE FROM t;", "DELETE of t"),
            ("INSERT INTO t SELECT * FROM u;", "INSERT ... SELECT of t"),
            (
                "CREATE TABLE c AS SELECT * FROM t;",
                "filling c from a query",
            ),
            (
                "ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b;",
                "out of tablespace a",
            ),
        ] {
            let out = render("LK24", sql);
            assert!(out.contains(expect), "{sql}: {out}");
        }
    }

    #[test]
    fn version_changes_what_rewrites() {
        let sql = "ALTER TABLE t ADD COLUMN flag boolean DEFAULT false;";
        assert_eq!(render("LK24", sql), "");
        let v10 = Opts {
            pg_version: 10,
            ..Default::default()
        };
        assert!(render_with("LK24", sql, v10).contains("adding flag rewrites it"));
    }

    #[test]
    fn passes_quick_statements_new_tables_and_after_a_set() {
        for sql in [
            "ALTER TABLE t ADD COLUMN note text;",
            "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT now();",
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
            "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX t_id_idx;",
            "ALTER TABLE t DROP COLUMN a;",
            "ALTER TABLE t RENAME TO u;",
            "INSERT INTO t (a) VALUES (1), (2);",
            "REFRESH MATERIALIZED VIEW mv WITH NO DATA;",
            "CREATE MATERIALIZED VIEW mv AS SELECT * FROM t WITH NO DATA;",
            "CREATE TABLE c AS SELECT 1 AS x;",
            "ALTER DOMAIN d ADD CHECK (VALUE > 0) NOT VALID;",
            "VACUUM t;",
            "CREATE TABLE t2 (id int);\nCREATE INDEX i ON t2 (id);\nUPDATE t2 SET id = 1;\n\
             ALTER TABLE t2 ALTER COLUMN id TYPE bigint;",
            "CREATE TABLE p1 (id int);\nALTER TABLE p ATTACH PARTITION p1 FOR VALUES IN (1);",
            "SET statement_timeout = '15min';\nCREATE INDEX i ON t (a);",
            "SET statement_timeout = 0;\nCREATE INDEX CONCURRENTLY i ON t (a);",
        ] {
            assert_eq!(render("LK24", sql), "", "{sql}");
        }
    }

    #[test]
    fn silent_under_pgships_engine_only() {
        let sql = "CREATE INDEX i ON t (a);";
        let engine = Opts {
            wrap: Wrap::Engine {
                per_migration: true,
            },
            ..Default::default()
        };
        assert_eq!(render_with("LK24", sql, engine), "");
        let file = Opts {
            wrap: Wrap::File,
            ..Default::default()
        };
        assert!(render_with("LK24", sql, file).contains("warning LK24"));
    }
}
