//! What `pgship lint --database <target>` (and the rehearsal's lint) reads from a live database
//! to sharpen or drop findings (the catalogue's CAT column): which tables exist, their size and
//! row estimate, their columns' types and nullability, constraints and whether they are
//! validated foreign keys, partitions, unique indexes on materialized views, invalid indexes,
//! function volatility, and what depends on what (pg_depend, for DROP ... CASCADE). Six
//! queries, read-only; then the exact row count of small tables never analyzed, whose
//! estimate is unknown.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Client;

use crate::db::{DbError, quote_ident};

#[derive(Debug, Clone, Default)]
pub struct Column {
    /// `format_type` of the column.
    pub data_type: String,
    pub not_null: bool,
    /// Some index uses the column.
    pub indexed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    /// `r` table, `p` partitioned table, `m` materialized view, `v` view, `f` foreign table.
    pub kind: char,
    /// `pg_total_relation_size`.
    pub bytes: i64,
    /// `reltuples`, or the exact count of a small table never analyzed; -1 when unknown
    /// (never analyzed, PostgreSQL 14+, and too large to count).
    pub rows: f64,
    pub columns: HashMap<String, Column>,
    /// A partitioned table with a DEFAULT partition.
    pub has_default_partition: bool,
    /// A materialized view with a unique index (REFRESH ... CONCURRENTLY possible).
    pub has_unique_index: bool,
    /// A materialized view that holds data.
    pub populated: bool,
}

impl Table {
    /// Few enough rows and bytes that locking or rewriting it is over in milliseconds. The
    /// size decides when the row estimate is unknown (never analyzed: -1).
    pub fn is_small(&self) -> bool {
        self.rows < 10_000.0 && self.bytes < SMALL_BYTES
    }
}

#[derive(Debug, Clone)]
pub struct Constraint {
    /// `pg_constraint.contype`: `f` foreign key, `c` check, `p`, `u`, `x`, `n`.
    pub kind: char,
    pub validated: bool,
    /// The check expression for a CHECK, `pg_get_constraintdef`.
    pub definition: String,
}

/// An object a DROP names, keyed like the linter keys tables (`schema.name`; schemas and
/// extensions by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    /// A table, view, materialized view, sequence, index or foreign table.
    Relation(String),
    /// A type or domain (a relation's row type stands for the relation).
    Type(String),
    /// A function, procedure or aggregate: every overload of the name.
    Function(String),
    Schema(String),
    Extension(String),
}

/// A column or a constraint of a relation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    Column(String),
    Constraint(String),
}

/// An object that depends on another one (a normal dependency in pg_depend: the kind that
/// `DROP ... RESTRICT` refuses and `CASCADE` drops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// The part of the object it depends on, when it is a column or a constraint of a
    /// relation (a foreign key depends on the referenced columns and the key's index).
    pub on: Option<Part>,
    /// What it is, as PostgreSQL describes it: `view active_users`, `constraint
    /// orders_user_id_fkey on table orders`, `default value for column id of table t`.
    pub description: String,
    /// The relation it belongs to (`schema.name`): a view's, or the table of a constraint,
    /// default, trigger, policy or column.
    pub owner: Option<String>,
    /// The column or constraint of `owner` it is.
    pub owner_part: Option<Part>,
}

/// The live catalog, keyed like the linter keys tables: `schema.table`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tables: HashMap<String, Table>,
    /// (table key, constraint name).
    pub constraints: HashMap<(String, String), Constraint>,
    /// Function name (without schema) -> the most volatile of its overloads (`i`, `s`, `v`).
    pub functions: HashMap<String, char>,
    /// `schema.index` of indexes that are not valid (a failed CREATE INDEX CONCURRENTLY).
    pub invalid_indexes: HashSet<String>,
    /// Every object of the user schemas a DROP can name, with what depends on it; `None` when
    /// dependencies were not read (then nothing is known about them).
    pub dependents: Option<HashMap<Object, Vec<Dependent>>>,
    /// Schema -> how many objects it holds.
    pub schema_sizes: HashMap<String, i64>,
}

impl Catalog {
    pub fn table(&self, key: &str) -> Option<&Table> {
        self.tables.get(key)
    }

    pub fn constraint(&self, table: &str, name: &str) -> Option<&Constraint> {
        self.constraints.get(&(table.to_string(), name.to_string()))
    }

    /// Whether every overload of `name` is immutable or stable.
    pub fn function_is_stable(&self, name: &str) -> bool {
        matches!(self.functions.get(name), Some('i') | Some('s'))
    }

    /// What depends on `object`: `None` when the catalog does not know the object (it is
    /// created or renamed by an earlier migration, or dependencies were not read).
    pub fn dependents_of(&self, object: &Object) -> Option<&[Dependent]> {
        self.dependents.as_ref()?.get(object).map(Vec::as_slice)
    }
}

const USER_SCHEMAS: &str = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

/// Read the catalog of every user schema.
pub async fn load(client: &Client) -> Result<Catalog, DbError> {
    let ctx = "reading the catalog for lint";
    let q = |e: tokio_postgres::Error| DbError::query(ctx, &e);
    let tables = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, c.relkind::text, \
                   pg_catalog.pg_total_relation_size(c.oid), c.reltuples::float8, \
                   c.relkind = 'p' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i \
                     JOIN pg_catalog.pg_class p ON p.oid = i.inhrelid \
                     WHERE i.inhparent = c.oid AND pg_catalog.pg_get_expr(p.relpartbound, p.oid) = 'DEFAULT'), \
                   EXISTS (SELECT 1 FROM pg_catalog.pg_index x WHERE x.indrelid = c.oid AND x.indisunique \
                     AND x.indpred IS NULL AND x.indexprs IS NULL AND x.indimmediate AND x.indisvalid), \
                   c.relkind <> 'm' OR c.relispopulated \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'm', 'v', 'f') AND {USER_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(q)?;
    let columns = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                   a.attnotnull, EXISTS (SELECT 1 FROM pg_catalog.pg_index x \
                     WHERE x.indrelid = c.oid AND a.attnum = ANY(x.indkey::int2[])) \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(q)?;
    let constraints = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, co.conname, co.contype::text, co.convalidated, \
                   pg_catalog.pg_get_constraintdef(co.oid) \
                 FROM pg_catalog.pg_constraint co JOIN pg_catalog.pg_class c ON c.oid = co.conrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(q)?;
    let misc = client
        .query(
            &format!(
                "SELECT 'f', p.proname, max(p.provolatile::text) FROM pg_catalog.pg_proc p \
                   JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                   WHERE {USER_SCHEMAS} OR n.nspname = 'pg_catalog' GROUP BY p.proname \
                 UNION ALL \
                 SELECT 'i', n.nspname || '.' || c.relname, NULL FROM pg_catalog.pg_index x \
                   JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                   WHERE NOT x.indisvalid AND {USER_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(q)?;
    let mut cat = Catalog::default();
    load_dependents(client, &mut cat).await?;
    let key = |s: &str, t: &str| format!("{s}.{t}");
    for r in tables {
        let kind: String = r.get(2);
        cat.tables.insert(
            key(r.get(0), r.get(1)),
            Table {
                kind: kind.chars().next().unwrap_or('r'),
                bytes: r.get(3),
                rows: r.get(4),
                columns: HashMap::new(),
                has_default_partition: r.get(5),
                has_unique_index: r.get(6),
                populated: r.get(7),
            },
        );
    }
    for r in columns {
        if let Some(t) = cat.tables.get_mut(&key(r.get(0), r.get(1))) {
            t.columns.insert(
                r.get(2),
                Column {
                    data_type: r.get(3),
                    not_null: r.get(4),
                    indexed: r.get(5),
                },
            );
        }
    }
    for r in constraints {
        let kind: String = r.get(3);
        cat.constraints.insert(
            (key(r.get(0), r.get(1)), r.get(2)),
            Constraint {
                kind: kind.chars().next().unwrap_or('c'),
                validated: r.get(4),
                definition: r.get(5),
            },
        );
    }
    for r in misc {
        let what: &str = r.get(0);
        if what == "f" {
            // max() over 'i' < 's' < 'v': the most volatile overload.
            let v: String = r.get(2);
            cat.functions
                .insert(r.get(1), v.chars().next().unwrap_or('v'));
        } else {
            cat.invalid_indexes.insert(r.get(1));
        }
    }
    count_unanalyzed(client, &mut cat).await;
    Ok(cat)
}

/// Every droppable object of the user schemas (kind letter, key), and schemas with how many
/// objects they hold and the first few of them.
const OBJECTS: &str = "\
SELECT 'r', n.nspname || '.' || c.relname, NULL::int8, NULL::text[] \
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'i', 'I') AND {USER} \
UNION ALL SELECT 't', n.nspname || '.' || t.typname, NULL, NULL \
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE {USER} \
UNION ALL SELECT 'f', n.nspname || '.' || p.proname, NULL, NULL \
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE {USER} \
UNION ALL SELECT 'e', x.extname, NULL, NULL FROM pg_catalog.pg_extension x \
UNION ALL SELECT 's', n.nspname, \
    (SELECT count(*) FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass \
       AND d.refobjid = n.oid AND d.deptype = 'n' AND NOT {MEMBER}), \
    ARRAY(SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_catalog.pg_depend d \
       WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = n.oid AND d.deptype = 'n' \
       AND NOT {MEMBER} ORDER BY 1 LIMIT 5) \
  FROM pg_catalog.pg_namespace n WHERE {USER}";

/// The object `d` (a pg_depend row) stands for is a member of an extension: it goes with the
/// extension and is not a dependent of its own.
const MEMBER: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = d.classid \
  AND e.objid = d.objid AND e.deptype = 'e')";

/// Normal dependencies on the user schemas' relations (and their columns and key constraints,
/// through the key's index), types, functions and extensions (and their members), with the
/// relation and the part each dependent belongs to. Extension members and operator-family
/// entries, which go with what owns them, are left out.
const DEPENDENTS: &str = "\
WITH deps AS (SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid \
  FROM pg_catalog.pg_depend d WHERE d.deptype = 'n' AND NOT {MEMBER} \
  AND d.classid NOT IN ('pg_catalog.pg_amop'::regclass, 'pg_catalog.pg_amproc'::regclass) \
  AND d.refclassid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_type'::regclass, \
    'pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_extension'::regclass)), \
refs AS ( \
  SELECT deps.*, 'r' AS kind, n.nspname || '.' || c.relname AS key, \
      CASE WHEN deps.refobjsubid > 0 THEN 'c' || a.attname END AS part, n.nspname AS nsp \
    FROM deps JOIN pg_catalog.pg_class c ON c.oid = deps.refobjid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = deps.refobjsubid \
    WHERE deps.refclassid = 'pg_catalog.pg_class'::regclass \
  UNION ALL SELECT deps.*, 'r', n.nspname || '.' || t.relname, 'k' || co.conname, n.nspname \
    FROM deps JOIN pg_catalog.pg_constraint co ON co.conindid = deps.refobjid AND co.contype IN ('p', 'u', 'x') \
    JOIN pg_catalog.pg_class t ON t.oid = co.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
    WHERE deps.refclassid = 'pg_catalog.pg_class'::regclass AND deps.refobjsubid = 0 \
  UNION ALL SELECT deps.*, CASE WHEN rc.oid IS NULL THEN 't' ELSE 'r' END, \
      n.nspname || '.' || COALESCE(rc.relname, b.typname), NULL, n.nspname \
    FROM deps JOIN pg_catalog.pg_type ty ON ty.oid = deps.refobjid \
    LEFT JOIN pg_catalog.pg_type el ON el.oid = ty.typelem AND el.typarray = ty.oid \
    JOIN pg_catalog.pg_type b ON b.oid = COALESCE(el.oid, ty.oid) \
    LEFT JOIN pg_catalog.pg_class rc ON rc.oid = b.typrelid AND rc.relkind IN ('r', 'p', 'v', 'm', 'f') \
    JOIN pg_catalog.pg_namespace n ON n.oid = COALESCE(rc.relnamespace, b.typnamespace) \
    WHERE deps.refclassid = 'pg_catalog.pg_type'::regclass \
  UNION ALL SELECT deps.*, 'f', n.nspname || '.' || p.proname, NULL, n.nspname \
    FROM deps JOIN pg_catalog.pg_proc p ON p.oid = deps.refobjid \
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
    WHERE deps.refclassid = 'pg_catalog.pg_proc'::regclass \
  UNION ALL SELECT deps.*, 'e', x.extname, NULL, '' \
    FROM deps JOIN pg_catalog.pg_depend m ON m.classid = deps.refclassid AND m.objid = deps.refobjid \
      AND m.deptype = 'e' AND m.refclassid = 'pg_catalog.pg_extension'::regclass \
    JOIN pg_catalog.pg_extension x ON x.oid = m.refobjid \
  UNION ALL SELECT deps.*, 'e', x.extname, NULL, '' \
    FROM deps JOIN pg_catalog.pg_extension x ON x.oid = deps.refobjid \
    WHERE deps.refclassid = 'pg_catalog.pg_extension'::regclass), \
owned AS (SELECT refs.*, CASE refs.classid \
    WHEN 'pg_catalog.pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = refs.objid) \
    WHEN 'pg_catalog.pg_constraint'::regclass THEN (SELECT NULLIF(conrelid, 0) FROM pg_catalog.pg_constraint WHERE oid = refs.objid) \
    WHEN 'pg_catalog.pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid = refs.objid) \
    WHEN 'pg_catalog.pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid = refs.objid) \
    WHEN 'pg_catalog.pg_policy'::regclass THEN (SELECT polrelid FROM pg_catalog.pg_policy WHERE oid = refs.objid) \
    WHEN 'pg_catalog.pg_class'::regclass THEN COALESCE((SELECT indrelid FROM pg_catalog.pg_index \
      WHERE indexrelid = refs.objid), refs.objid) END AS owner_oid, \
  CASE refs.classid \
    WHEN 'pg_catalog.pg_constraint'::regclass THEN (SELECT 'k' || conname FROM pg_catalog.pg_constraint WHERE oid = refs.objid) \
    WHEN 'pg_catalog.pg_attrdef'::regclass THEN (SELECT 'c' || a.attname FROM pg_catalog.pg_attrdef ad \
      JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.oid = refs.objid) \
    WHEN 'pg_catalog.pg_class'::regclass THEN (SELECT 'c' || attname FROM pg_catalog.pg_attribute \
      WHERE attrelid = refs.objid AND attnum = refs.objsubid AND refs.objsubid > 0) END AS owner_part \
  FROM refs WHERE refs.nsp !~ '^pg_' AND refs.nsp <> 'information_schema') \
SELECT DISTINCT o.kind, o.key, o.part, \
  CASE WHEN o.classid = 'pg_catalog.pg_rewrite'::regclass AND o.owner_oid IS NOT NULL \
    THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, o.owner_oid, 0) \
    ELSE pg_catalog.pg_describe_object(o.classid, o.objid, o.objsubid) END, \
  n.nspname || '.' || c.relname, o.owner_part \
FROM owned o LEFT JOIN pg_catalog.pg_class c ON c.oid = o.owner_oid \
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2, 4";

fn object(kind: &str, key: String) -> Option<Object> {
    Some(match kind {
        "r" => Object::Relation(key),
        "t" => Object::Type(key),
        "f" => Object::Function(key),
        "s" => Object::Schema(key),
        "e" => Object::Extension(key),
        _ => return None,
    })
}

/// `c<column>` / `k<constraint>`, as the queries write a part.
fn part(text: Option<String>) -> Option<Part> {
    let t = text?;
    let (kind, name) = t.split_at_checked(1)?;
    match kind {
        "c" => Some(Part::Column(name.to_string())),
        "k" => Some(Part::Constraint(name.to_string())),
        _ => None,
    }
}

/// Read the objects a DROP can name and what depends on each (see [`Catalog::dependents`]).
async fn load_dependents(client: &Client, cat: &mut Catalog) -> Result<(), DbError> {
    let ctx = "reading dependencies for lint";
    let q = |e: tokio_postgres::Error| DbError::query(ctx, &e);
    let fill = |sql: &str| {
        sql.replace("{USER}", USER_SCHEMAS)
            .replace("{MEMBER}", MEMBER)
    };
    let objects = client.query(&fill(OBJECTS), &[]).await.map_err(q)?;
    let deps = client.query(&fill(DEPENDENTS), &[]).await.map_err(q)?;
    let mut map: HashMap<Object, Vec<Dependent>> = HashMap::new();
    for r in objects {
        let Some(obj) = object(r.get(0), r.get(1)) else {
            continue;
        };
        if let Object::Schema(name) = &obj {
            cat.schema_sizes
                .insert(name.clone(), r.get::<_, Option<i64>>(2).unwrap_or(0));
            let examples: Vec<String> = r.get::<_, Option<Vec<String>>>(3).unwrap_or_default();
            let list = map.entry(obj.clone()).or_default();
            list.extend(examples.into_iter().map(|description| Dependent {
                on: None,
                description,
                owner: None,
                owner_part: None,
            }));
            continue;
        }
        map.entry(obj).or_default();
    }
    for r in deps {
        let Some(obj) = object(r.get(0), r.get(1)) else {
            continue;
        };
        map.entry(obj).or_default().push(Dependent {
            on: part(r.get(2)),
            description: r.get(3),
            owner: r.get(4),
            owner_part: part(r.get(5)),
        });
    }
    cat.dependents = Some(map);
    Ok(())
}

/// Below this size (`pg_total_relation_size`) a table can be [`Table::is_small`]; one never
/// analyzed whose data is below it (for a partitioned table, its partitions' data) is
/// counted exactly, so no table described as small has an unknown row count.
const SMALL_BYTES: i64 = 8 * 1024 * 1024;

/// Counts per query.
const COUNT_CHUNK: usize = 200;

/// Replace the unknown row estimate (-1) of small tables, partitioned tables and populated
/// materialized views never analyzed by their exact count, so that a finding never describes
/// a table that has rows as having none. Read-only, with short lock and statement timeouts; a
/// table that cannot be counted (no privilege, locked) keeps its unknown estimate, and so
/// does a larger one.
async fn count_unanalyzed(client: &Client, cat: &mut Catalog) {
    let size = "pg_catalog.pg_relation_size";
    let listed = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, c.relkind::text \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.reltuples < 0 AND {USER_SCHEMAS} \
                   AND (CASE c.relkind \
                     WHEN 'p' THEN (SELECT coalesce(sum({size}(t.relid)), 0)::int8 \
                                    FROM pg_catalog.pg_partition_tree(c.oid) t) \
                     WHEN 'm' THEN CASE WHEN c.relispopulated THEN {size}(c.oid) END \
                     WHEN 'r' THEN {size}(c.oid) END) < $1::int8"
            ),
            &[&SMALL_BYTES],
        )
        .await;
    let Ok(listed) = listed else {
        return;
    };
    let tables: Vec<(String, String)> = listed
        .iter()
        .map(|r| {
            let (schema, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            // ONLY: reltuples is the relation's own, without INHERITS children.
            let only = if kind == "p" { "" } else { "ONLY " };
            let from = format!("{only}{}.{}", quote_ident(&schema), quote_ident(&name));
            (format!("{schema}.{name}"), from)
        })
        .collect();
    for chunk in tables.chunks(COUNT_CHUNK) {
        match counts(client, chunk).await {
            Ok(n) => set_rows(cat, chunk, &n),
            // One table could not be counted: count the others one by one.
            Err(_) => {
                for one in chunk.chunks(1) {
                    if let Ok(n) = counts(client, one).await {
                        set_rows(cat, one, &n);
                    }
                }
            }
        }
    }
}

/// `count(*)` of each `(key, FROM item)`, in one read-only transaction rolled back.
async fn counts(client: &Client, tables: &[(String, String)]) -> Result<Vec<i64>, DbError> {
    let ctx = "counting the rows of small tables never analyzed";
    let sql = tables
        .iter()
        .enumerate()
        .map(|(i, (_, from))| format!("SELECT {i}, count(*) FROM {from}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    client
        .batch_execute(
            "BEGIN READ ONLY; SET LOCAL lock_timeout = '1s'; SET LOCAL statement_timeout = '10s'",
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    let rows = client.query(&sql, &[]).await;
    let _ = client.batch_execute("ROLLBACK").await;
    let mut out = vec![0; tables.len()];
    for r in rows.map_err(|e| DbError::query(ctx, &e))? {
        let i: i32 = r.get(0);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *slot = r.get(1);
        }
    }
    Ok(out)
}

fn set_rows(cat: &mut Catalog, tables: &[(String, String)], counts: &[i64]) {
    for ((key, _), n) in tables.iter().zip(counts) {
        if let Some(t) = cat.tables.get_mut(key) {
            t.rows = *n as f64;
        }
    }
}
