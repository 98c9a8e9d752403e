//! What `pgship lint --database <target>` reads from a live database to sharpen or drop
//! findings (the catalogue's CAT column): which tables exist, their size and row estimate,
//! their columns' types and nullability, constraints and whether they are validated foreign
//! keys, partitions, unique indexes on materialized views, invalid indexes, and function
//! volatility. Four queries, read-only; then the exact row count of small tables never
//! analyzed, whose estimate is unknown.

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
