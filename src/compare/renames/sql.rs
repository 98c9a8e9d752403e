//! Renames read from SQL: the statements are followed in order, keeping what each table and
//! column name holds (the target's object of some name, or something else), so a chain of
//! renames, a rename of a renamed table's column, and a name reused by a new table all come
//! out right. Only tables: views, indexes, sequences and constraints renamed are not followed.

use std::collections::BTreeMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableStmt, AlterTableType, DropStmt, ObjectType, RangeVar, RenameStmt,
};

use super::Renames;

/// The renames `statements` make, in order (see [`Renames::from_sql`]).
pub(super) fn renames<'a>(statements: impl IntoIterator<Item = &'a str>) -> Renames {
    let mut sim = Simulation::default();
    for sql in statements {
        let Ok(parsed) = pg_query::parse(sql, 0) else {
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                sim.statement(node);
            }
        }
    }
    sim.renames()
}

/// What a name holds at some point of the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The target's object of this name (before the SQL).
    Target(String),
    /// Something the SQL created, or nothing (renamed away, dropped).
    Other,
}

/// The names the SQL has touched so far; a name it has not touched is the target's own.
#[derive(Debug, Default)]
struct Simulation {
    /// Current `schema.table` -> what it is.
    tables: BTreeMap<String, Origin>,
    /// (target `schema.table`, current column) -> what it is.
    columns: BTreeMap<(String, String), Origin>,
}

/// `schema.table` of a name as written (unqualified names are taken to be in `public`).
fn rel_key(rv: &RangeVar) -> String {
    let schema = if rv.schemaname.is_empty() {
        "public"
    } else {
        &rv.schemaname
    };
    format!("{schema}.{}", rv.relname)
}

const TABLE: i32 = ObjectType::ObjectTable as i32;

impl Simulation {
    fn statement(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::RenameStmt(r) => self.rename(r),
            NodeEnum::AlterObjectSchemaStmt(a) if a.object_type == TABLE => {
                if let Some(rv) = &a.relation {
                    self.move_table(rel_key(rv), format!("{}.{}", a.newschema, rv.relname));
                }
            }
            NodeEnum::CreateStmt(c) => self.created(c.relation.as_ref()),
            NodeEnum::CreateTableAsStmt(c) => {
                self.created(c.into.as_ref().and_then(|i| i.rel.as_ref()))
            }
            NodeEnum::DropStmt(d) if d.remove_type == TABLE => self.drop(d),
            NodeEnum::AlterTableStmt(a) => self.alter_table(a),
            _ => {}
        }
    }

    fn table_origin(&self, name: &str) -> Origin {
        self.tables
            .get(name)
            .cloned()
            .unwrap_or_else(|| Origin::Target(name.to_string()))
    }

    fn created(&mut self, rv: Option<&RangeVar>) {
        if let Some(rv) = rv {
            self.tables.insert(rel_key(rv), Origin::Other);
        }
    }

    fn move_table(&mut self, old: String, new: String) {
        let origin = self.table_origin(&old);
        self.tables.insert(old, Origin::Other);
        self.tables.insert(new, origin);
    }

    /// `ALTER TABLE t RENAME TO u` and `ALTER TABLE t RENAME [COLUMN] a TO b`.
    fn rename(&mut self, r: &RenameStmt) {
        let Some(rv) = &r.relation else { return };
        let key = rel_key(rv);
        if r.rename_type == TABLE {
            let schema = key.split_once('.').map_or("public", |(s, _)| s);
            let new = format!("{schema}.{}", r.newname);
            self.move_table(key, new);
        } else if r.rename_type == ObjectType::ObjectColumn as i32 && r.relation_type == TABLE {
            self.rename_column(&key, &r.subname, &r.newname);
        }
    }

    fn rename_column(&mut self, table: &str, old: &str, new: &str) {
        let Origin::Target(t) = self.table_origin(table) else {
            return;
        };
        let old_key = (t.clone(), old.to_string());
        let origin = self
            .columns
            .get(&old_key)
            .cloned()
            .unwrap_or_else(|| Origin::Target(old.to_string()));
        self.columns.insert(old_key, Origin::Other);
        self.columns.insert((t, new.to_string()), origin);
    }

    fn drop(&mut self, d: &DropStmt) {
        for obj in &d.objects {
            let Some(NodeEnum::List(l)) = obj.node.as_ref() else {
                continue;
            };
            let parts: Vec<&str> = l
                .items
                .iter()
                .filter_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                    _ => None,
                })
                .collect();
            let key = match parts.as_slice() {
                [t] => format!("public.{t}"),
                [.., s, t] => format!("{s}.{t}"),
                [] => continue,
            };
            self.tables.insert(key, Origin::Other);
        }
    }

    /// Columns added or dropped: their names no longer hold the target's columns.
    fn alter_table(&mut self, a: &AlterTableStmt) {
        let Some(rv) = &a.relation else { return };
        let Origin::Target(table) = self.table_origin(&rel_key(rv)) else {
            return;
        };
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(c)) = cmd.node.as_ref() else {
                continue;
            };
            let column = if c.subtype == AlterTableType::AtDropColumn as i32 {
                Some(c.name.clone())
            } else if c.subtype == AlterTableType::AtAddColumn as i32 {
                match c.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(d)) => Some(d.colname.clone()),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(column) = column {
                self.columns.insert((table.clone(), column), Origin::Other);
            }
        }
    }

    /// Every name that ends up holding a target object under another name.
    fn renames(self) -> Renames {
        let moved = |name: &String, origin: &Origin| match origin {
            Origin::Target(old) if old != name => Some(old.clone()),
            _ => None,
        };
        Renames {
            tables: self
                .tables
                .iter()
                .filter_map(|(name, o)| moved(name, o).map(|old| (old, name.clone())))
                .collect(),
            columns: self
                .columns
                .iter()
                .filter_map(|((t, name), o)| {
                    moved(name, o).map(|old| ((t.clone(), old), name.clone()))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames_of(tables: &[(&str, &str)], columns: &[(&str, &str, &str)]) -> Renames {
        Renames {
            tables: tables
                .iter()
                .map(|(o, n)| (o.to_string(), n.to_string()))
                .collect(),
            columns: columns
                .iter()
                .map(|(t, o, n)| ((t.to_string(), o.to_string()), n.to_string()))
                .collect(),
        }
    }

    #[test]
    fn sql_renames_are_followed_in_order() {
        let r = renames([
            r#"ALTER TABLE "customer" RENAME TO "client";"#,
            r#"ALTER TABLE "client" RENAME COLUMN "full_name" TO "display_name";"#,
            // Chained: the column's second rename, the table's second.
            "ALTER TABLE client RENAME COLUMN display_name TO name",
            "ALTER TABLE client RENAME TO clients",
            // The old name taken by a new table: not the target's customer any more.
            "CREATE TABLE customer (id int)",
            "ALTER TABLE customer RENAME COLUMN id TO cid",
            "ALTER TABLE customer RENAME TO customer_new",
            // Case kept, schemas followed.
            r#"ALTER TABLE app."Orders" RENAME TO "Purchases""#,
            "ALTER TABLE public.audit SET SCHEMA archive",
            // A column dropped and another renamed onto its name; a column added, then
            // renamed: not the target's.
            "ALTER TABLE invoice DROP COLUMN amount",
            "ALTER TABLE invoice RENAME COLUMN amount_cents TO amount",
            "ALTER TABLE invoice ADD COLUMN note text",
            "ALTER TABLE invoice RENAME COLUMN note TO memo",
            // A dropped table's name reused and renamed: not the target's.
            "DROP TABLE legacy",
            "CREATE TABLE legacy (id int)",
            "ALTER TABLE legacy RENAME TO legacy2",
            // Views, indexes and constraints are not tables or columns.
            "ALTER VIEW v RENAME TO w",
            "ALTER INDEX i RENAME TO j",
            "ALTER TABLE invoice RENAME CONSTRAINT c1 TO c2",
            "this is not SQL",
        ]);
        assert_eq!(
            r,
            renames_of(
                &[
                    ("app.Orders", "app.Purchases"),
                    ("public.audit", "archive.audit"),
                    ("public.customer", "public.clients"),
                ],
                &[
                    ("public.customer", "full_name", "name"),
                    ("public.invoice", "amount_cents", "amount"),
                ]
            )
        );
        // Renamed there and back: nothing.
        assert!(renames(["ALTER TABLE a RENAME TO b", "ALTER TABLE b RENAME TO a"]).is_empty());
    }
}
