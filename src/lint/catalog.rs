//! What `pgship lint --database <target>` reads from a live database to sharpen or drop
//! findings (the catalogue's CAT column): which tables exist, their size and row estimate,
//! their columns' types and nullability, constraints and whether they are validated foreign
//! keys, partitions, unique indexes on materialized views, invalid indexes, and function
//! volatility. Four queries, read-only.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Client;

use crate::db::DbError;

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
    /// `reltuples` (-1 when never analyzed, PostgreSQL 14+).
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
        self.rows < 10_000.0 && self.bytes < 8 * 1024 * 1024
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
    Ok(cat)
}
