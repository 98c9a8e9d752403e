//! The table locks a statement asks for, read from its SQL. `pg_locks` lists each mode a
//! backend holds once, so a statement that asks again for a mode its transaction already
//! holds (`ALTER TABLE t ADD COLUMN ...` then `ALTER TABLE t ALTER COLUMN ... SET NOT NULL`)
//! leaves no trace there; knowing what it asked for lets the measurement still give it the
//! lock it held while it ran.
//!
//! Levels follow PostgreSQL's `AlterTableGetLockLevel` and the docs' "Table-Level Locks".
//! Only the relations a statement names and locks for its own work are listed (the table a
//! DML statement writes, not the ones it reads); an index stands for its table where
//! PostgreSQL locks the table (DROP INDEX, REINDEX INDEX).

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableType, ConstrType, Node, ObjectType, RangeVar, ReindexObjectType,
};

const ACCESS_EXCLUSIVE: &str = "AccessExclusiveLock";
const EXCLUSIVE: &str = "ExclusiveLock";
const SHARE_ROW_EXCLUSIVE: &str = "ShareRowExclusiveLock";
const SHARE: &str = "ShareLock";
const SHARE_UPDATE_EXCLUSIVE: &str = "ShareUpdateExclusiveLock";
const ROW_EXCLUSIVE: &str = "RowExclusiveLock";

/// A lock a statement asks for on a relation it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Empty when the statement does not qualify the name (the search path decides).
    pub schema: String,
    pub name: String,
    /// As `pg_locks.mode` spells it.
    pub mode: &'static str,
    /// The name is an index's; the lock is on its table.
    pub on_index_table: bool,
}

/// The locks the statements of `sql` ask for. SQL the parser does not read asks for nothing
/// (the measurement then has only what `pg_locks` shows).
pub fn needs(sql: &str) -> Vec<Need> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            statement(node, &mut out);
        }
    }
    out
}

fn statement(node: &NodeEnum, out: &mut Vec<Need>) {
    let mut on = |rv: Option<&RangeVar>, mode: &'static str| {
        if let Some(rv) = rv {
            out.push(need(&rv.schemaname, &rv.relname, mode, false));
        }
    };
    match node {
        NodeEnum::AlterTableStmt(a) if is_table_like(a.objtype) => {
            let Some(rv) = a.relation.as_ref() else {
                return;
            };
            alter_table(rv, &a.cmds, out);
        }
        NodeEnum::RenameStmt(r) if renames_in_table(r.rename_type) => {
            on(r.relation.as_ref(), ACCESS_EXCLUSIVE)
        }
        NodeEnum::IndexStmt(i) if !i.concurrent => on(i.relation.as_ref(), SHARE),
        NodeEnum::CreateTrigStmt(t) => on(t.relation.as_ref(), SHARE_ROW_EXCLUSIVE),
        NodeEnum::RefreshMatViewStmt(r) => on(
            r.relation.as_ref(),
            if r.concurrent {
                EXCLUSIVE
            } else {
                ACCESS_EXCLUSIVE
            },
        ),
        NodeEnum::ClusterStmt(c) => on(c.relation.as_ref(), ACCESS_EXCLUSIVE),
        NodeEnum::ReindexStmt(r) if !concurrently(&r.params) => reindex(r, out),
        NodeEnum::UpdateStmt(u) => on(u.relation.as_ref(), ROW_EXCLUSIVE),
        NodeEnum::DeleteStmt(d) => on(d.relation.as_ref(), ROW_EXCLUSIVE),
        NodeEnum::InsertStmt(i) => on(i.relation.as_ref(), ROW_EXCLUSIVE),
        NodeEnum::MergeStmt(m) => on(m.relation.as_ref(), ROW_EXCLUSIVE),
        NodeEnum::TruncateStmt(t) => {
            for rv in range_vars(&t.relations) {
                on(Some(rv), ACCESS_EXCLUSIVE);
            }
        }
        NodeEnum::LockStmt(l) => {
            if let Some(mode) = lock_mode(l.mode) {
                for rv in range_vars(&l.relations) {
                    on(Some(rv), mode);
                }
            }
        }
        NodeEnum::DropStmt(d) if !d.concurrent => drop(d.remove_type, &d.objects, out),
        _ => {}
    }
}

fn need(schema: &str, name: &str, mode: &'static str, on_index_table: bool) -> Need {
    Need {
        schema: schema.to_string(),
        name: name.to_string(),
        mode,
        on_index_table,
    }
}

fn is_table_like(objtype: i32) -> bool {
    [
        ObjectType::ObjectTable,
        ObjectType::ObjectMatview,
        ObjectType::ObjectForeignTable,
        ObjectType::ObjectView,
    ]
    .iter()
    .any(|t| *t as i32 == objtype)
}

/// Renaming a relation, a column, a constraint or a trigger takes ACCESS EXCLUSIVE on the
/// relation (an index's rename locks only the index).
fn renames_in_table(rename_type: i32) -> bool {
    is_table_like(rename_type)
        || [
            ObjectType::ObjectColumn,
            ObjectType::ObjectTabconstraint,
            ObjectType::ObjectTrigger,
            ObjectType::ObjectPolicy,
            ObjectType::ObjectRule,
        ]
        .iter()
        .any(|t| *t as i32 == rename_type)
}

/// ALTER TABLE takes the strongest level of its subcommands on the table, plus what some
/// subcommands take on another table (the referenced table of a foreign key, a partition).
fn alter_table(rv: &RangeVar, cmds: &[Node], out: &mut Vec<Need>) {
    let mut strongest: Option<&'static str> = None;
    for cmd in cmds.iter().filter_map(|n| match n.node.as_ref()? {
        NodeEnum::AlterTableCmd(c) => Some(c.as_ref()),
        _ => None,
    }) {
        let mode = subcommand_level(cmd);
        if strongest.is_none_or(|s| super::mode_rank(mode) > super::mode_rank(s)) {
            strongest = Some(mode);
        }
        for (other, mode) in other_tables(cmd) {
            out.push(need(&other.schemaname, &other.relname, mode, false));
        }
    }
    if let Some(mode) = strongest {
        out.push(need(&rv.schemaname, &rv.relname, mode, false));
    }
}

/// `AlterTableGetLockLevel`: ACCESS EXCLUSIVE unless PostgreSQL documents less.
fn subcommand_level(cmd: &AlterTableCmd) -> &'static str {
    use AlterTableType as T;
    match AlterTableType::try_from(cmd.subtype).unwrap_or(T::Undefined) {
        T::AtSetStatistics
        | T::AtClusterOn
        | T::AtDropCluster
        | T::AtSetOptions
        | T::AtResetOptions
        | T::AtValidateConstraint
        | T::AtAttachPartition
        | T::AtDetachPartitionFinalize
        // Most storage parameters (fillfactor, autovacuum_*) need no more; the others take
        // ACCESS EXCLUSIVE, which pg_locks then shows unless already held.
        | T::AtSetRelOptions
        | T::AtResetRelOptions => SHARE_UPDATE_EXCLUSIVE,
        T::AtDetachPartition if partition_cmd(cmd).is_some_and(|(_, c)| c) => {
            SHARE_UPDATE_EXCLUSIVE
        }
        T::AtEnableTrig
        | T::AtEnableAlwaysTrig
        | T::AtEnableReplicaTrig
        | T::AtEnableTrigAll
        | T::AtEnableTrigUser
        | T::AtDisableTrig
        | T::AtDisableTrigAll
        | T::AtDisableTrigUser => SHARE_ROW_EXCLUSIVE,
        T::AtAddConstraint if foreign_key(cmd).is_some() => SHARE_ROW_EXCLUSIVE,
        _ => ACCESS_EXCLUSIVE,
    }
}

/// Tables a subcommand locks besides the altered one: the referenced table of a new foreign
/// key (SHARE ROW EXCLUSIVE, for its triggers), the partition attached or detached (ACCESS
/// EXCLUSIVE; SHARE UPDATE EXCLUSIVE for a concurrent detach).
fn other_tables(cmd: &AlterTableCmd) -> Vec<(&RangeVar, &'static str)> {
    let mut out = Vec::new();
    if let Some(pk) = foreign_key(cmd) {
        out.push((pk, SHARE_ROW_EXCLUSIVE));
    }
    if let Some(NodeEnum::ColumnDef(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
        for con in c.constraints.iter().filter_map(|n| match n.node.as_ref()? {
            NodeEnum::Constraint(con) => Some(con.as_ref()),
            _ => None,
        }) {
            if con.contype == ConstrType::ConstrForeign as i32 {
                if let Some(pk) = con.pktable.as_ref() {
                    out.push((pk, SHARE_ROW_EXCLUSIVE));
                }
            }
        }
    }
    if let Some((part, concurrent)) = partition_cmd(cmd) {
        let detaching = cmd.subtype == AlterTableType::AtDetachPartition as i32;
        let mode = if detaching && concurrent {
            SHARE_UPDATE_EXCLUSIVE
        } else {
            ACCESS_EXCLUSIVE
        };
        out.push((part, mode));
    }
    out
}

/// The referenced table of `ADD CONSTRAINT ... FOREIGN KEY`.
fn foreign_key(cmd: &AlterTableCmd) -> Option<&RangeVar> {
    match cmd.def.as_ref()?.node.as_ref()? {
        NodeEnum::Constraint(c) if c.contype == ConstrType::ConstrForeign as i32 => {
            c.pktable.as_ref()
        }
        _ => None,
    }
}

/// The partition of `ATTACH PARTITION` / `DETACH PARTITION`, and whether it is CONCURRENTLY.
fn partition_cmd(cmd: &AlterTableCmd) -> Option<(&RangeVar, bool)> {
    match cmd.def.as_ref()?.node.as_ref()? {
        NodeEnum::PartitionCmd(p) => Some((p.name.as_ref()?, p.concurrent)),
        _ => None,
    }
}

/// `REINDEX TABLE t` and `REINDEX INDEX i` hold SHARE on the table (ACCESS EXCLUSIVE on the
/// index itself, which is not a table).
fn reindex(r: &pg_query::protobuf::ReindexStmt, out: &mut Vec<Need>) {
    let Some(rv) = r.relation.as_ref() else {
        return;
    };
    if r.kind == ReindexObjectType::ReindexObjectTable as i32 {
        out.push(need(&rv.schemaname, &rv.relname, SHARE, false));
    } else if r.kind == ReindexObjectType::ReindexObjectIndex as i32 {
        out.push(need(&rv.schemaname, &rv.relname, SHARE, true));
    }
}

/// `REINDEX (CONCURRENTLY) ...` / `REINDEX ... CONCURRENTLY` runs alone: no transaction to
/// hold anything from earlier.
fn concurrently(params: &[Node]) -> bool {
    params.iter().any(
        |p| matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"),
    )
}

/// DROP TABLE / VIEW / MATERIALIZED VIEW / FOREIGN TABLE take ACCESS EXCLUSIVE on each; DROP
/// INDEX on the index's table; DROP TRIGGER / POLICY / RULE ... ON t on t.
fn drop(remove_type: i32, objects: &[Node], out: &mut Vec<Need>) {
    let on_table_member = [
        ObjectType::ObjectTrigger,
        ObjectType::ObjectPolicy,
        ObjectType::ObjectRule,
    ]
    .iter()
    .any(|t| *t as i32 == remove_type);
    let index = remove_type == ObjectType::ObjectIndex as i32;
    if !is_table_like(remove_type) && !on_table_member && !index {
        return;
    }
    for obj in objects {
        let Some(NodeEnum::List(l)) = obj.node.as_ref() else {
            continue;
        };
        let mut names: Vec<&str> = l
            .items
            .iter()
            .filter_map(|n| match n.node.as_ref()? {
                NodeEnum::String(s) => Some(s.sval.as_str()),
                _ => None,
            })
            .collect();
        if on_table_member {
            // [schema.]table.member: the member's name is last.
            names.pop();
        }
        let (schema, name) = match names.as_slice() {
            [name] => ("", *name),
            [.., schema, name] => (*schema, *name),
            [] => continue,
        };
        out.push(need(schema, name, ACCESS_EXCLUSIVE, index));
    }
}

fn range_vars(nodes: &[Node]) -> impl Iterator<Item = &RangeVar> {
    nodes.iter().filter_map(|n| match n.node.as_ref()? {
        NodeEnum::RangeVar(rv) => Some(rv),
        _ => None,
    })
}

/// `LOCK TABLE`'s mode number (PostgreSQL's lockdefs.h) as `pg_locks` spells it.
fn lock_mode(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "AccessShareLock",
        2 => "RowShareLock",
        3 => ROW_EXCLUSIVE,
        4 => SHARE_UPDATE_EXCLUSIVE,
        5 => SHARE,
        6 => SHARE_ROW_EXCLUSIVE,
        7 => EXCLUSIVE,
        8 => ACCESS_EXCLUSIVE,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(sql: &str) -> Vec<String> {
        needs(sql)
            .into_iter()
            .map(|n| {
                format!(
                    "{}{}{} {}",
                    if n.on_index_table { "index " } else { "" },
                    if n.schema.is_empty() {
                        String::new()
                    } else {
                        format!("{}.", n.schema)
                    },
                    n.name,
                    n.mode
                )
            })
            .collect()
    }

    #[test]
    fn alter_table_takes_its_strongest_subcommand_level() {
        assert_eq!(
            short("ALTER TABLE t ALTER COLUMN c SET NOT NULL"),
            ["t AccessExclusiveLock"]
        );
        assert_eq!(
            short("ALTER TABLE app.t VALIDATE CONSTRAINT c"),
            ["app.t ShareUpdateExclusiveLock"]
        );
        assert_eq!(
            short("ALTER TABLE t ALTER COLUMN c SET STATISTICS 100, ADD COLUMN d int"),
            ["t AccessExclusiveLock"]
        );
        assert_eq!(
            short("ALTER TABLE t DISABLE TRIGGER ALL"),
            ["t ShareRowExclusiveLock"]
        );
    }

    #[test]
    fn a_foreign_key_locks_both_tables() {
        assert_eq!(
            short(
                "ALTER TABLE \"Orders\" ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES app.users (id)"
            ),
            [
                "app.users ShareRowExclusiveLock",
                "Orders ShareRowExclusiveLock"
            ]
        );
        assert_eq!(
            short("ALTER TABLE o ADD COLUMN u int REFERENCES users (id)"),
            ["users ShareRowExclusiveLock", "o AccessExclusiveLock"]
        );
    }

    #[test]
    fn partitions_renames_drops_and_dml() {
        assert_eq!(
            short("ALTER TABLE p ATTACH PARTITION p1 FOR VALUES IN (1)"),
            ["p1 AccessExclusiveLock", "p ShareUpdateExclusiveLock"]
        );
        assert_eq!(
            short("ALTER TABLE t RENAME TO u; ALTER TABLE u RENAME COLUMN a TO b"),
            ["t AccessExclusiveLock", "u AccessExclusiveLock"]
        );
        assert_eq!(
            short("DROP TABLE a, s.b CASCADE; DROP INDEX i; DROP TRIGGER tr ON s.t"),
            [
                "a AccessExclusiveLock",
                "s.b AccessExclusiveLock",
                "index i AccessExclusiveLock",
                "s.t AccessExclusiveLock"
            ]
        );
        assert_eq!(
            short("UPDATE t SET a = 1 FROM other o WHERE o.id = t.id; LOCK TABLE x IN SHARE MODE"),
            ["t RowExclusiveLock", "x ShareLock"]
        );
        assert_eq!(
            short("CREATE INDEX i ON t (a); CREATE INDEX CONCURRENTLY j ON t (b)"),
            ["t ShareLock"]
        );
        assert_eq!(
            short("REINDEX INDEX i; REINDEX TABLE CONCURRENTLY t"),
            ["index i ShareLock"]
        );
    }

    #[test]
    fn what_does_not_parse_or_lock_a_table_needs_nothing() {
        assert!(needs("ALTER TABLE t ADD COLUMN").is_empty());
        assert!(needs("CREATE TABLE t (id int); SELECT 1; ALTER INDEX i RENAME TO j").is_empty());
    }
}
