//! Catalog reads the rollback needs besides the schema model: an inventory of every object by
//! its catalog identity (so an object is recognised across renames and a dropped-and-recreated
//! one is not mistaken for the original), foreign keys and rules that spread writes to other
//! tables, sequence values, and row counts with content hashes.
//!
//! Object names are printed with `search_path = public`, exactly as the model prints them, so
//! inventory entries and model entries are looked up by the same keys.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::compare::data::{TEXT_SETTINGS, count_sql, hash_sql, relation};
use crate::db::{DbError, describe};

/// An object's catalog identity: the oid of its catalog and its own oid.
pub type ObjectId = (u32, u32);

/// A dependency: (dependent, referenced).
pub type Edge = (ObjectId, ObjectId);

/// What kind of object an inventory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Schema,
    Extension,
    Collation,
    Enum,
    Domain,
    CompositeType,
    RangeType,
    Table,
    ForeignTable,
    View,
    MaterializedView,
    Sequence,
    Index,
    /// The index behind a primary key, unique or exclusion constraint: it comes and goes with
    /// its constraint.
    ConstraintIndex,
    Constraint,
    DomainConstraint,
    Default,
    Trigger,
    Policy,
    Rule,
    Function,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// A word for messages: `table`, `materialized view`, ...
    pub fn word(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('-', " ")))
            .unwrap_or_default()
    }

    /// Objects that belong to a relation (or a domain) and go with it.
    pub fn is_sub_object(self) -> bool {
        matches!(
            self,
            Kind::ConstraintIndex
                | Kind::Constraint
                | Kind::DomainConstraint
                | Kind::Default
                | Kind::Trigger
                | Kind::Policy
                | Kind::Rule
        )
    }
}

/// One object of the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub kind: Kind,
    /// Oid of the catalog it lives in (`pg_class`, `pg_constraint`, ...).
    pub class: u32,
    pub oid: u32,
    pub schema: String,
    /// Its own name: `users`, `users_pkey`, `f(integer)`, the column of a default.
    pub name: String,
    /// The relation (or domain) a sub-object belongs to, or the table owning a sequence.
    pub parent: u32,
    /// Cloned onto a partition or inherited: it comes back with the object it derives from.
    pub derived: bool,
    /// A constraint's definition, a default's expression, whether a materialized view is
    /// populated, an identity sequence's marker.
    pub def: Option<String>,
    /// The statement that drops it (IF EXISTS, CASCADE where PostgreSQL accepts it).
    pub drop: String,
}

impl Object {
    pub fn id(&self) -> (u32, u32) {
        (self.class, self.oid)
    }

    /// The model's key for it: `schema.name` (its own name for schemas and extensions).
    pub fn key(&self) -> String {
        match self.kind {
            Kind::Schema | Kind::Extension => self.name.clone(),
            _ => format!("{}.{}", self.schema, self.name),
        }
    }
}

/// One query for the whole inventory. Names are quoted by the server (`format('%I')`) in the
/// drop statements; extension members, temporary objects and pgship's schema are left out.
const INVENTORY: &str = r#"
WITH ns AS (
  SELECT oid, nspname FROM pg_catalog.pg_namespace
  WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' AND nspname <> 'pgship'
), ext AS (
  SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'
), rel AS (
  SELECT c.oid, c.relname, c.relkind, c.relispartition, c.relispopulated, n.nspname
  FROM pg_catalog.pg_class c JOIN ns n ON n.oid = c.relnamespace
  WHERE c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM ext e WHERE e.classid = 'pg_catalog.pg_class'::regclass AND e.objid = c.oid)
)
SELECT 'schema', 'pg_catalog.pg_namespace'::regclass::oid, n.oid, n.nspname, n.nspname, 0::oid, false, NULL::text,
  format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname)
FROM ns n WHERE NOT EXISTS (SELECT 1 FROM ext e WHERE e.classid = 'pg_catalog.pg_namespace'::regclass AND e.objid = n.oid)
UNION ALL
SELECT 'extension', 'pg_catalog.pg_extension'::regclass::oid, x.oid, n.nspname, x.extname, 0::oid, false, x.extversion,
  format('DROP EXTENSION IF EXISTS %I CASCADE', x.extname)
FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
UNION ALL
SELECT 'collation', 'pg_catalog.pg_collation'::regclass::oid, c.oid, n.nspname, c.collname, 0::oid, false, NULL,
  format('DROP COLLATION IF EXISTS %I.%I CASCADE', n.nspname, c.collname)
FROM pg_catalog.pg_collation c JOIN ns n ON n.oid = c.collnamespace
WHERE NOT EXISTS (SELECT 1 FROM ext e WHERE e.classid = 'pg_catalog.pg_collation'::regclass AND e.objid = c.oid)
UNION ALL
SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range-type' ELSE 'composite-type' END,
  'pg_catalog.pg_type'::regclass::oid, t.oid, n.nspname, t.typname, 0::oid, false,
  CASE WHEN t.typtype = 'd' THEN coalesce(t.typdefault, '') || '|' || t.typnotnull::text END,
  format('DROP %s IF EXISTS %I.%I CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname)
FROM pg_catalog.pg_type t JOIN ns n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c'))
  AND NOT EXISTS (SELECT 1 FROM ext e WHERE e.classid = 'pg_catalog.pg_type'::regclass AND e.objid = t.oid)
UNION ALL
SELECT CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'f' THEN 'foreign-table' WHEN 'v' THEN 'view'
    WHEN 'm' THEN 'materialized-view' WHEN 'S' THEN 'sequence'
    ELSE CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = r.oid AND k.contype IN ('p', 'u', 'x'))
      THEN 'constraint-index' ELSE 'index' END END,
  'pg_catalog.pg_class'::regclass::oid, r.oid, r.nspname, r.relname,
  CASE WHEN r.relkind IN ('i', 'I') THEN (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = r.oid)
       WHEN r.relkind = 'S' THEN coalesce((SELECT d.refobjid FROM pg_catalog.pg_depend d
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = r.oid AND d.refobjsubid > 0
           AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), 0)
       ELSE 0 END,
  false,
  CASE WHEN r.relkind = 'm' THEN r.relispopulated::text
       WHEN r.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
         AND d.objid = r.oid AND d.deptype = 'i') THEN 'identity' END,
  format('DROP %s IF EXISTS %I.%I CASCADE', CASE r.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE'
    WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
    ELSE 'INDEX' END, r.nspname, r.relname)
FROM rel r WHERE r.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'i', 'I')
UNION ALL
SELECT CASE WHEN k.conrelid <> 0 THEN 'constraint' ELSE 'domain-constraint' END,
  'pg_catalog.pg_constraint'::regclass::oid, k.oid, n.nspname, k.conname,
  CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END,
  (k.conparentid <> 0 OR NOT k.conislocal), pg_catalog.pg_get_constraintdef(k.oid),
  CASE WHEN k.conrelid <> 0
    THEN format('ALTER TABLE IF EXISTS %I.%I DROP CONSTRAINT IF EXISTS %I CASCADE', n.nspname, c.relname, k.conname)
    ELSE format('ALTER DOMAIN %I.%I DROP CONSTRAINT IF EXISTS %I CASCADE', n.nspname, t.typname, k.conname) END
FROM pg_catalog.pg_constraint k JOIN ns n ON n.oid = k.connamespace
LEFT JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
LEFT JOIN pg_catalog.pg_type t ON t.oid = k.contypid
WHERE k.contype IN ('p', 'u', 'f', 'c', 'x', 't')
  AND NOT EXISTS (SELECT 1 FROM ext e WHERE e.objid IN (k.conrelid, k.contypid))
UNION ALL
SELECT 'default', 'pg_catalog.pg_attrdef'::regclass::oid, d.oid, r.nspname, a.attname, d.adrelid, false,
  pg_catalog.pg_get_expr(d.adbin, d.adrelid),
  format('ALTER TABLE IF EXISTS %I.%I ALTER COLUMN %I DROP DEFAULT', r.nspname, r.relname, a.attname)
FROM pg_catalog.pg_attrdef d JOIN rel r ON r.oid = d.adrelid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE a.attgenerated = ''
UNION ALL
SELECT 'trigger', 'pg_catalog.pg_trigger'::regclass::oid, g.oid, r.nspname, g.tgname, g.tgrelid, g.tgparentid <> 0, NULL,
  format('DROP TRIGGER IF EXISTS %I ON %I.%I CASCADE', g.tgname, r.nspname, r.relname)
FROM pg_catalog.pg_trigger g JOIN rel r ON r.oid = g.tgrelid WHERE NOT g.tgisinternal
UNION ALL
SELECT 'policy', 'pg_catalog.pg_policy'::regclass::oid, p.oid, r.nspname, p.polname, p.polrelid, false, NULL,
  format('DROP POLICY IF EXISTS %I ON %I.%I', p.polname, r.nspname, r.relname)
FROM pg_catalog.pg_policy p JOIN rel r ON r.oid = p.polrelid
UNION ALL
SELECT 'rule', 'pg_catalog.pg_rewrite'::regclass::oid, w.oid, r.nspname, w.rulename, w.ev_class, false, NULL,
  format('DROP RULE IF EXISTS %I ON %I.%I CASCADE', w.rulename, r.nspname, r.relname)
FROM pg_catalog.pg_rewrite w JOIN rel r ON r.oid = w.ev_class WHERE w.rulename <> '_RETURN'
UNION ALL
SELECT 'function', 'pg_catalog.pg_proc'::regclass::oid, p.oid, n.nspname,
  p.proname || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')', 0::oid, false, NULL,
  format('DROP %s IF EXISTS %I.%I(%s) CASCADE', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
    ELSE 'FUNCTION' END, n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid))
FROM pg_catalog.pg_proc p JOIN ns n ON n.oid = p.pronamespace
WHERE NOT EXISTS (SELECT 1 FROM ext e WHERE e.classid = 'pg_catalog.pg_proc'::regclass AND e.objid = p.oid)
"#;

/// Every object of the database outside system schemas and pgship's own, with no filter:
/// cascades reach across schemas.
pub async fn inventory(client: &Client) -> Result<Vec<Object>, DbError> {
    let ctx = "reading the catalog inventory";
    in_public_path(client, ctx, async { read_inventory(client).await }).await
}

/// The same inventory, read inside the caller's open transaction (the dry run).
pub async fn inventory_in_tx(client: &Client) -> Result<Vec<Object>, tokio_postgres::Error> {
    client
        .batch_execute("SET LOCAL search_path = public")
        .await?;
    read_inventory(client).await
}

async fn read_inventory(client: &Client) -> Result<Vec<Object>, tokio_postgres::Error> {
    let rows = client.query(INVENTORY, &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Object {
                kind: Kind::parse(r.get::<_, &str>(0))?,
                class: r.get(1),
                oid: r.get(2),
                schema: r.get(3),
                name: r.get(4),
                parent: r.get(5),
                derived: r.get(6),
                def: r.get(7),
                drop: r.get(8),
            })
        })
        .collect())
}

/// The columns of tables, as (table oid, column name), inside the caller's transaction.
pub async fn columns_in_tx(
    client: &Client,
) -> Result<BTreeSet<(u32, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname::text FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') \
               AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND n.nspname <> 'pgship'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Run `f` in a read-only transaction with `search_path = public`.
async fn in_public_path<T>(
    client: &Client,
    ctx: &str,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbError> {
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = public",
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    let r = f.await;
    let _ = client.batch_execute("ROLLBACK").await;
    r.map_err(|e| DbError::query(ctx, &e))
}

/// A foreign key, by the model's table keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub child: String,
    pub parent: String,
    /// ON DELETE or ON UPDATE is CASCADE, SET NULL or SET DEFAULT: writes to the parent
    /// change the child's rows.
    pub spreads: bool,
}

/// What spreads a write from one table to others: foreign keys, and tables with rules.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    pub foreign_keys: Vec<ForeignKey>,
    /// Tables with rewrite rules (other than views' own).
    pub rules: BTreeSet<String>,
}

pub async fn spread(client: &Client) -> Result<Spread, DbError> {
    let ctx = "reading foreign keys and rules";
    in_public_path(client, ctx, async {
        let fks = client
            .query(
                "SELECT cn.nspname || '.' || c.relname, pn.nspname || '.' || p.relname, \
                   k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd') \
                 FROM pg_catalog.pg_constraint k \
                 JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
                 JOIN pg_catalog.pg_class p ON p.oid = k.confrelid JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace \
                 WHERE k.contype = 'f'",
                &[],
            )
            .await?;
        let rules = client
            .query(
                "SELECT DISTINCT n.nspname || '.' || c.relname FROM pg_catalog.pg_rewrite w \
                 JOIN pg_catalog.pg_class c ON c.oid = w.ev_class JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE w.rulename <> '_RETURN' AND c.relkind IN ('r', 'p')",
                &[],
            )
            .await?;
        Ok(Spread {
            foreign_keys: fks
                .iter()
                .map(|r| ForeignKey {
                    child: r.get(0),
                    parent: r.get(1),
                    spreads: r.get(2),
                })
                .collect(),
            rules: rules.iter().map(|r| r.get(0)).collect(),
        })
    })
    .await
}

/// A sequence's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceValue {
    /// `schema.sequence`.
    pub sequence: String,
    /// `last_value`, or `None` when `nextval` was never called.
    pub last_value: Option<i64>,
    pub start: i64,
}

pub async fn sequence_values(client: &Client) -> Result<Vec<SequenceValue>, DbError> {
    let rows = client
        .query(
            "SELECT schemaname || '.' || sequencename, last_value, start_value FROM pg_catalog.pg_sequences \
             WHERE schemaname !~ '^pg_' AND schemaname <> 'information_schema' AND schemaname <> 'pgship'",
            &[],
        )
        .await
        .map_err(|e| DbError::query("reading sequence values", &e))?;
    Ok(rows
        .iter()
        .map(|r| SequenceValue {
            sequence: r.get(0),
            last_value: r.get(1),
            start: r.get(2),
        })
        .collect())
}

/// A table to count and hash: its key and the columns to hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    pub schema: String,
    pub table: String,
    pub partitioned: bool,
    pub columns: Vec<String>,
}

impl TableSpec {
    pub fn key(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Row count and content hash of each table, from one snapshot; a table that cannot be read
/// gets the error's text.
pub async fn contents(
    client: &Client,
    tables: &[TableSpec],
) -> Result<BTreeMap<String, Result<(i64, String), String>>, DbError> {
    let ctx = "counting and hashing rows";
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {TEXT_SETTINGS}"
        ))
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    let mut out = BTreeMap::new();
    for t in tables {
        let rel = relation(&t.schema, &t.table, t.partitioned);
        let sql = format!(
            "SELECT ({}), ({})",
            count_sql(&rel),
            hash_sql(&rel, &t.columns)
        );
        // A savepoint per table, so one unreadable table does not end the snapshot.
        let _ = client.batch_execute("SAVEPOINT pgship_t").await;
        let r = client.query_one(&sql, &[]).await;
        let v = match r {
            Ok(row) => Ok((row.get(0), row.get(1))),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK TO SAVEPOINT pgship_t").await;
                Err(describe(&e))
            }
        };
        out.insert(t.key(), v);
    }
    let _ = client.batch_execute("ROLLBACK").await;
    Ok(out)
}

/// Whether the connected role is a superuser, and its name.
pub async fn role(client: &Client) -> Result<(String, bool), DbError> {
    let r = client
        .query_one(
            "SELECT current_user::text, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| DbError::query("reading the current role", &e))?;
    Ok((r.get(0), r.get(1)))
}

/// What depends on enum types about to be recreated: the table columns holding them (to be
/// converted) and every other dependent (to be dropped and restored), of the types, of their
/// array types and of those columns. A view's rule stands for the view; defaults are left
/// out (they are dropped and set again around the conversion).
#[derive(Debug, Clone, Default)]
pub struct EnumDependents {
    pub columns: Vec<EnumColumn>,
    pub objects: BTreeSet<(u32, u32)>,
}

/// A table column holding an enum (or an array of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumColumn {
    pub table: u32,
    pub schema: String,
    pub table_name: String,
    pub column: String,
    /// The enum type's oid (also for an array column).
    pub enum_oid: u32,
    pub array: bool,
}

impl EnumColumn {
    /// `schema.table`.
    pub fn table_key(&self) -> String {
        format!("{}.{}", self.schema, self.table_name)
    }
}

pub async fn enum_dependents(client: &Client, types: &[u32]) -> Result<EnumDependents, DbError> {
    let ctx = "reading what depends on enum types";
    let mut out = EnumDependents::default();
    if types.is_empty() {
        return Ok(out);
    }
    let cols = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, a.attname::text, \
               CASE WHEN t.oid = ANY($1) THEN t.oid ELSE t.typelem END, NOT (t.oid = ANY($1)) \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') \
               AND (t.oid = ANY($1) OR (t.typelem = ANY($1) AND t.typcategory = 'A'))",
            &[&types],
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    out.columns = cols
        .iter()
        .map(|r| EnumColumn {
            table: r.get(0),
            schema: r.get(1),
            table_name: r.get(2),
            column: r.get(3),
            enum_oid: r.get(4),
            array: r.get(5),
        })
        .collect();
    let deps = client
        .query(
            "WITH t AS (SELECT unnest($1::oid[]) AS oid \
                        UNION SELECT typarray FROM pg_catalog.pg_type WHERE oid = ANY($1) AND typarray <> 0), \
             cols AS (SELECT a.attrelid, a.attnum FROM pg_catalog.pg_attribute a \
                      WHERE a.atttypid IN (SELECT oid FROM t) AND a.attnum > 0 AND NOT a.attisdropped), \
             d AS ( \
               SELECT classid, objid, objsubid FROM pg_catalog.pg_depend \
               WHERE refclassid = 'pg_catalog.pg_type'::regclass AND refobjid IN (SELECT oid FROM t) \
                 AND deptype IN ('n', 'a') \
               UNION \
               SELECT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d \
               JOIN cols c ON d.refobjid = c.attrelid AND d.refobjsubid = c.attnum \
               WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('n', 'a') \
             ) \
             SELECT DISTINCT \
               CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass THEN 'pg_catalog.pg_class'::regclass::oid ELSE d.classid END, \
               CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass \
                 THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = d.objid) ELSE d.objid END \
             FROM d WHERE d.classid <> 'pg_catalog.pg_attrdef'::regclass \
               AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid > 0)",
            &[&types],
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    out.objects = deps.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(out)
}

/// The owner of a type.
pub async fn type_owner(client: &Client, oid: u32) -> Result<String, DbError> {
    client
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(typowner)::text FROM pg_catalog.pg_type WHERE oid = $1",
            &[&oid],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| DbError::query("reading a type's owner", &e))
}

/// Dependencies among the objects `ids`: (dependent, referenced) pairs, rules standing for
/// their views and defaults for their tables.
pub async fn edges(client: &Client, ids: &[(u32, u32)]) -> Result<Vec<Edge>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let classes: Vec<u32> = ids.iter().map(|i| i.0).collect();
    let oids: Vec<u32> = ids.iter().map(|i| i.1).collect();
    let rows = client
        .query(
            "WITH d AS ( \
               SELECT CASE WHEN classid = 'pg_catalog.pg_rewrite'::regclass THEN 'pg_catalog.pg_class'::regclass::oid ELSE classid END AS c, \
                      CASE WHEN classid = 'pg_catalog.pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = objid) ELSE objid END AS o, \
                      refclassid AS rc, refobjid AS ro \
               FROM pg_catalog.pg_depend WHERE deptype IN ('n', 'a', 'i') \
             ), ids AS (SELECT * FROM unnest($1::oid[], $2::oid[]) AS i(c, o)) \
             SELECT DISTINCT d.c, d.o, d.rc, d.ro FROM d \
             JOIN ids a ON a.c = d.c AND a.o = d.o JOIN ids b ON b.c = d.rc AND b.o = d.ro \
             WHERE (d.c, d.o) <> (d.rc, d.ro)",
            &[&classes, &oids],
        )
        .await
        .map_err(|e| DbError::query("reading dependencies", &e))?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect())
}
