//! `--data` with the fdw engine: the same report as [`crate::compare::data`], with each
//! remote side read through foreign tables, and both sides of a table (its counts, its hashes)
//! computed in the same query. It reuses that module's SQL builders and [`TEXT_SETTINGS`], and
//! follows its rules: which tables, which columns are hashed, the size limit, orphans of every
//! foreign key of each side.
//!
//! Differences from the catalog engine's data comparison, all from reading through
//! postgres_fdw:
//! - a remote table's size is estimated from `relpages` (table and TOAST, as of its last
//!   VACUUM or ANALYZE), as `pg_total_relation_size` cannot be called through a foreign table;
//! - postgres_fdw cannot read a table `ONLY`: a remote ordinary table with INHERITS children
//!   is not counted or hashed (noted), and orphans of a foreign key on one count the
//!   children's rows too;
//! - remote columns of built-in types are read as their type (so they render as the local
//!   side's do); columns of other types are read as their text, which renders alike unless
//!   the remote's `bytea_output` or `lc_monetary` differ from the local settings.
//!
//! Locks: the local side reads under `lock_timeout` = [`DataOptions::lock_wait`] (set after a
//! savepoint), each remote's postgres_fdw session gets the same `lock_timeout` as a server
//! option; a lock timeout on either rolls back to the savepoint and names the blocking
//! sessions, read on the local session or on a direct connection to the remote.

use std::collections::HashMap;

use serde::Deserialize;
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use super::sql::{self, Origin, SideSql};
use crate::compare::data::{
    Contents, DataOptions, DataReport, Orphans, Side, TEXT_SETTINGS, TableData, count_sql,
    hash_sql, locked_error, orphans_sql, read_blockers, relation,
};
use crate::db::{ConnectOptions, DbError, DbUrl, connect, quote_ident};

/// Why the data comparison stopped: a lock it gave up waiting for (named afterwards, when the
/// transaction is usable again), or any other error.
enum Failed {
    Locked(tokio_postgres::Error),
    Db(DbError),
}

impl From<DbError> for Failed {
    fn from(e: DbError) -> Self {
        Failed::Db(e)
    }
}

/// A failed query: a lock timeout is kept for [`locked`], anything else described with `what`.
fn fail(e: tokio_postgres::Error, what: String) -> Failed {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        Failed::Locked(e)
    } else {
        Failed::Db(DbError::query(what, &e))
    }
}

/// A table of one side: those compared, and those their foreign keys reference.
#[derive(Debug, Clone, Deserialize)]
struct Table {
    oid: i64,
    schema: String,
    name: String,
    kind: String,
    partition: bool,
    in_scope: bool,
    bytes: i64,
    reltuples: f64,
    /// Has INHERITS (not partition) children.
    inherited: bool,
    columns: Vec<String>,
    /// The type without its modifier, parallel to `columns`.
    types: Vec<String>,
    /// The type a foreign table reads the column as, parallel to `columns`.
    ft_types: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Fk {
    schema: String,
    table_name: String,
    oid: i64,
    name: String,
    not_valid: bool,
    parent_schema: String,
    parent_table: String,
    parent_oid: i64,
    columns: Vec<String>,
    parent_columns: Vec<String>,
}

/// One side: its tables by OID, its foreign keys, and how its relations are named.
struct Catalog<'a> {
    side: &'a SideSql,
    tables: HashMap<i64, Table>,
    fks: Vec<Fk>,
}

impl Catalog<'_> {
    fn remote(&self) -> bool {
        matches!(self.side.origin, Origin::Remote { .. })
    }

    /// The FROM item for table `oid`: the table itself locally, its foreign table remotely.
    fn rel(&self, ns: &str, oid: i64) -> String {
        let t = &self.tables[&oid];
        match self.side.origin {
            Origin::Local { .. } => relation(&t.schema, &t.name, t.kind == "p"),
            Origin::Remote { .. } => format!(
                "{}.{}",
                quote_ident(ns),
                quote_ident(&format!("{}d_{oid}", self.side.prefix))
            ),
        }
    }
}

/// A table present on both sides.
struct Planned {
    table: String,
    source: i64,
    target: i64,
    columns: Vec<String>,
    left_out: Vec<String>,
    skip: Option<String>,
    /// Neither counted nor hashed (INHERITS children on a remote side).
    uncountable: Option<String>,
    source_estimate: i64,
    target_estimate: i64,
}

/// The catalog query of one side: tables and foreign keys as JSON.
fn catalog_sql(side: &SideSql) -> String {
    let p = side.prefix;
    let bytes = match &side.origin {
        Origin::Local { .. } => "(CASE c.relkind WHEN 'p' THEN (SELECT coalesce(sum(\
              pg_catalog.pg_total_relation_size(pt.relid)), 0) FROM pg_catalog.pg_partition_tree(c.oid) pt) \
            ELSE pg_catalog.pg_total_relation_size(c.oid) END)::int8"
            .to_string(),
        Origin::Remote { block_size, .. } => format!(
            "(WITH RECURSIVE tree(oid) AS (SELECT c.oid UNION ALL SELECT i.inhrelid FROM {p}inherits i \
               JOIN tree ON i.inhparent = tree.oid JOIN {p}class k ON k.oid = i.inhrelid AND k.relispartition) \
             SELECT coalesce(sum(k.relpages::int8 + coalesce(tk.relpages, 0)), 0) * {block_size} \
             FROM tree JOIN {p}class k ON k.oid = tree.oid LEFT JOIN {p}class tk ON tk.oid = k.reltoastrelid)"
        ),
    };
    let keys = |rel: &str, keys: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY u(num, i) \
             JOIN {p}attribute a ON a.attrelid = {rel} AND a.attnum = u.num ORDER BY u.i)"
        )
    };
    let cols = |what: &str| {
        format!(
            "ARRAY(SELECT t.{what} FROM {p}atypes t WHERE t.attrelid = c.oid ORDER BY t.attnum)"
        )
    };
    format!(
        "(SELECT coalesce(jsonb_agg(x), '[]') FROM (\
           SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name, \
             c.relkind::text AS kind, c.relispartition AS partition, r.oid IS NOT NULL AS in_scope, \
             {bytes} AS bytes, \
             (CASE WHEN c.relkind = 'p' THEN (WITH RECURSIVE tree(oid) AS (SELECT c.oid UNION ALL \
                SELECT i.inhrelid FROM {p}inherits i JOIN tree ON i.inhparent = tree.oid) \
                SELECT CASE WHEN bool_or(k.reltuples < 0) THEN -1 ELSE coalesce(sum(k.reltuples), 0) END \
                FROM tree JOIN {p}class k ON k.oid = tree.oid WHERE k.relkind <> 'p') \
              ELSE c.reltuples END)::float8 AS reltuples, \
             EXISTS (SELECT 1 FROM {p}inherits i JOIN {p}class ch ON ch.oid = i.inhrelid \
                     WHERE i.inhparent = c.oid AND NOT ch.relispartition) AS inherited, \
             {} AS columns, {} AS types, {} AS ft_types \
           FROM {p}class c JOIN {p}namespace n ON n.oid = c.relnamespace \
           LEFT JOIN {p}rels r ON r.oid = c.oid AND r.rk = 'table' \
           WHERE c.oid IN (SELECT attrelid FROM {p}atypes)) x), \
         (SELECT coalesce(jsonb_agg(f), '[]') FROM (\
           SELECT r.nsp AS schema, r.rel AS table_name, r.oid::int8 AS oid, k.conname::text AS name, \
             NOT k.convalidated AS not_valid, pn.nspname::text AS parent_schema, \
             pc.relname::text AS parent_table, pc.oid::int8 AS parent_oid, \
             {} AS columns, {} AS parent_columns \
           FROM {p}rels r JOIN {p}constraint k ON k.conrelid = r.oid AND k.contype = 'f' \
             AND k.conparentid = 0 \
           JOIN {p}class pc ON pc.oid = k.confrelid JOIN {p}namespace pn ON pn.oid = pc.relnamespace \
           WHERE r.rk = 'table') f)",
        cols("col"),
        cols("typ_nomod"),
        cols("ft_type"),
        keys("k.conrelid", "k.conkey"),
        keys("k.confrelid", "k.confkey"),
    )
}

/// Compare the data of the two sides, in the engine's transaction (see the module docs).
/// `servers` are the remote sides' URLs by prefix, to name who blocks a lock there.
pub(super) async fn compare(
    client: &Client,
    ns: &str,
    sides: &[SideSql],
    servers: &[(&'static str, &DbUrl)],
    opts: &DataOptions,
) -> Result<DataReport, DbError> {
    client
        .batch_execute(&format!(
            "SAVEPOINT pgship_data; SET LOCAL lock_timeout = '{}ms'",
            opts.lock_wait.as_millis().max(1)
        ))
        .await
        .map_err(|e| DbError::query("fdw engine: bounding the lock wait", &e))?;
    let mut oids: Vec<Vec<u32>> = vec![Vec::new(); sides.len()];
    match compare_locked(client, ns, sides, opts, &mut oids).await {
        Ok(report) => Ok(report),
        Err(Failed::Db(e)) => Err(e),
        Err(Failed::Locked(e)) => Err(locked(client, sides, servers, &oids, opts, &e).await),
    }
}

/// The error for a lock timeout `e`: on the local side, or (the error came through
/// postgres_fdw) on a remote, whose blockers are read on a direct connection to it.
async fn locked(
    client: &Client,
    sides: &[SideSql],
    servers: &[(&'static str, &DbUrl)],
    oids: &[Vec<u32>],
    opts: &DataOptions,
    e: &tokio_postgres::Error,
) -> DbError {
    let _ = client
        .batch_execute("ROLLBACK TO SAVEPOINT pgship_data")
        .await;
    let remote = e
        .as_db_error()
        .and_then(|d| d.where_())
        .is_some_and(|w| w.contains("remote SQL command"));
    let mut first = None;
    for (i, side) in sides.iter().enumerate() {
        let label = if side.prefix == "s_" {
            "source"
        } else {
            "target"
        };
        let blockers = match (&side.origin, remote) {
            (Origin::Local { .. }, false) => read_blockers(client, &oids[i]).await,
            (Origin::Remote { .. }, true) => {
                let Some((_, url)) = servers.iter().find(|(p, _)| *p == side.prefix) else {
                    continue;
                };
                match connect(url, &ConnectOptions::default()).await {
                    Ok(conn) => read_blockers(&conn.client, &oids[i]).await,
                    Err(_) => Vec::new(),
                }
            }
            _ => continue,
        };
        // With two remotes the error does not say which one: the one with blockers.
        if !blockers.is_empty() {
            return locked_error(label, opts.lock_wait, &blockers);
        }
        first.get_or_insert(label);
    }
    locked_error(first.unwrap_or("source or target"), opts.lock_wait, &[])
}

/// [`compare`] under the bounded lock wait; `oids` gets each side's table OIDs once known.
async fn compare_locked(
    client: &Client,
    ns: &str,
    sides: &[SideSql],
    opts: &DataOptions,
    oids: &mut [Vec<u32>],
) -> Result<DataReport, Failed> {
    let selects: Vec<String> = sides.iter().map(catalog_sql).collect();
    let row = client
        .query_one(&format!("SELECT {}", selects.join(", ")), &[])
        .await
        .map_err(|e| fail(e, "fdw engine: listing tables and foreign keys".into()))?;
    let mut catalogs = Vec::new();
    for (i, side) in sides.iter().enumerate() {
        let Json(tables): Json<Vec<Table>> = row.get(2 * i);
        let Json(fks): Json<Vec<Fk>> = row.get(2 * i + 1);
        oids[i] = tables
            .iter()
            .filter_map(|t| u32::try_from(t.oid).ok())
            .collect();
        catalogs.push(Catalog {
            side,
            tables: tables.into_iter().map(|t| (t.oid, t)).collect(),
            fks,
        });
    }
    let (s, t) = (&catalogs[0], &catalogs[1]);
    let planned = plan(s, t, opts.max_bytes);
    foreign_tables(client, ns, &catalogs).await?;
    client
        .batch_execute(TEXT_SETTINGS)
        .await
        .map_err(|e| DbError::query("fdw engine: fixing how values render", &e))?;
    let mut tables = Vec::with_capacity(planned.len());
    for p in &planned {
        tables.push(measure(client, ns, s, t, p, opts).await?);
    }
    let mut orphans = Vec::new();
    for (cat, side) in [(s, Side::Source), (t, Side::Target)] {
        for fk in &cat.fks {
            orphans.push(orphan_count(client, ns, cat, side, fk).await?);
        }
    }
    orphans.sort_by(|a, b| (a.side.as_str(), &a.constraint).cmp(&(b.side.as_str(), &b.constraint)));
    Ok(DataReport { tables, orphans })
}

/// Foreign tables for every table of a remote side, all columns read as `ft_types`.
async fn foreign_tables(
    client: &Client,
    ns: &str,
    catalogs: &[Catalog<'_>],
) -> Result<(), DbError> {
    let mut ddl = String::new();
    for cat in catalogs {
        let Origin::Remote { server, .. } = &cat.side.origin else {
            continue;
        };
        for t in cat.tables.values() {
            let cols: Vec<(&str, &str)> = t
                .columns
                .iter()
                .zip(&t.ft_types)
                .map(|(c, ty)| (c.as_str(), ty.as_str()))
                .collect();
            ddl.push_str(&sql::foreign_table(
                ns,
                &format!("{}d_{}", cat.side.prefix, t.oid),
                server,
                (&t.schema, &t.name),
                &cols,
            ));
            ddl.push_str(";\n");
        }
    }
    client
        .batch_execute(&ddl)
        .await
        .map_err(|e| DbError::query("fdw engine: creating foreign tables for the data", &e))
}

/// Pair the compared tables of both sides (ordinary tables and partitioned roots).
fn plan(s: &Catalog, t: &Catalog, max_bytes: u64) -> Vec<Planned> {
    let roots = |c: &Catalog| -> HashMap<(String, String), i64> {
        c.tables
            .values()
            .filter(|x| x.in_scope && !x.partition)
            .map(|x| ((x.schema.clone(), x.name.clone()), x.oid))
            .collect()
    };
    let target = roots(t);
    let mut planned: Vec<Planned> = roots(s)
        .into_iter()
        .filter_map(|(key, so)| {
            let to = *target.get(&key)?;
            Some(plan_table(s, so, t, to, max_bytes))
        })
        .collect();
    planned.sort_by(|a, b| a.table.cmp(&b.table));
    planned
}

fn plan_table(s: &Catalog, so: i64, t: &Catalog, to: i64, max_bytes: u64) -> Planned {
    let (st, tt) = (&s.tables[&so], &t.tables[&to]);
    let type_of = |x: &Table, col: &str| {
        let i = x.columns.iter().position(|c| c == col)?;
        x.types.get(i).cloned()
    };
    let mut columns = Vec::new();
    let mut left_out = Vec::new();
    for c in &st.columns {
        match type_of(tt, c) {
            None => left_out.push(format!("{c} (source only)")),
            Some(ty) if Some(&ty) != type_of(st, c).as_ref() => {
                left_out.push(format!("{c} (type differs)"));
            }
            Some(_) => columns.push(c.clone()),
        }
    }
    for c in tt.columns.iter().filter(|c| !st.columns.contains(c)) {
        left_out.push(format!("{c} (target only)"));
    }
    columns.sort();
    let bytes = u64::try_from(st.bytes.max(tt.bytes)).unwrap_or(0);
    let skip = if bytes > max_bytes {
        Some(format!(
            "contents not compared: {bytes} bytes, over the {max_bytes}-byte limit"
        ))
    } else if columns.is_empty() {
        Some("contents not compared: no column has the same type on both sides".into())
    } else {
        None
    };
    let uncountable = [(s, st, "source"), (t, tt, "target")]
        .into_iter()
        .find(|(c, x, _)| c.remote() && x.inherited)
        .map(|(_, _, side)| {
            format!(
                "not compared: the table has INHERITS children on {side}, whose rows postgres_fdw \
                 cannot tell apart (use --engine catalog)"
            )
        });
    let estimate = |r: f64| if r < 0.0 { -1 } else { r.round() as i64 };
    Planned {
        table: format!("{}.{}", st.schema, st.name),
        source: so,
        target: to,
        columns,
        left_out,
        skip,
        uncountable,
        source_estimate: estimate(st.reltuples),
        target_estimate: estimate(tt.reltuples),
    }
}

/// Count and hash one table on both sides, each in one query computing both sides.
async fn measure(
    client: &Client,
    ns: &str,
    s: &Catalog<'_>,
    t: &Catalog<'_>,
    p: &Planned,
    opts: &DataOptions,
) -> Result<TableData, Failed> {
    if let Some(why) = &p.uncountable {
        return Ok(TableData {
            table: p.table.clone(),
            source_rows: -1,
            target_rows: -1,
            exact: false,
            contents: Contents::NotCompared,
            note: Some(why.clone()),
        });
    }
    let (sr, tr) = (s.rel(ns, p.source), t.rel(ns, p.target));
    let both = |a: String, b: String| format!("SELECT ({a}), ({b})");
    let (source_rows, target_rows) = if opts.fast {
        (p.source_estimate, p.target_estimate)
    } else {
        let row = client
            .query_one(&both(count_sql(&sr), count_sql(&tr)), &[])
            .await
            .map_err(|e| fail(e, format!("fdw engine: counting the rows of {}", p.table)))?;
        (row.get(0), row.get(1))
    };
    let mut notes = Vec::new();
    let hash = p.skip.is_none() && (opts.fast || source_rows == target_rows);
    let contents = if hash {
        let row = client
            .query_one(
                &both(hash_sql(&sr, &p.columns), hash_sql(&tr, &p.columns)),
                &[],
            )
            .await
            .map_err(|e| {
                fail(
                    e,
                    format!("fdw engine: hashing the contents of {}", p.table),
                )
            })?;
        if !p.left_out.is_empty() {
            notes.push(format!(
                "hashed on the common columns only, without {}",
                p.left_out.join(", ")
            ));
        }
        if row.get::<_, String>(0) == row.get::<_, String>(1) {
            Contents::Equal
        } else {
            Contents::Different
        }
    } else if !opts.fast && source_rows != target_rows {
        Contents::Different
    } else {
        notes.extend(p.skip.clone());
        Contents::NotCompared
    };
    for (side, rows) in [(Side::Source, source_rows), (Side::Target, target_rows)] {
        if rows < 0 {
            notes.push(format!("row count unknown on {side}: never analyzed"));
        }
    }
    Ok(TableData {
        table: p.table.clone(),
        source_rows,
        target_rows,
        exact: !opts.fast,
        contents,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

async fn orphan_count(
    client: &Client,
    ns: &str,
    cat: &Catalog<'_>,
    side: Side,
    fk: &Fk,
) -> Result<Orphans, Failed> {
    let constraint = format!("{}.{}.{}", fk.schema, fk.table_name, fk.name);
    let query = orphans_sql(
        &cat.rel(ns, fk.oid),
        &fk.columns,
        &cat.rel(ns, fk.parent_oid),
        &fk.parent_columns,
    );
    let row = client.query_one(&query, &[]).await.map_err(|e| {
        fail(
            e,
            format!("fdw engine: counting orphans of {constraint} on {side}"),
        )
    })?;
    Ok(Orphans {
        side,
        constraint,
        references: format!("{}.{}", fk.parent_schema, fk.parent_table),
        not_valid: fk.not_valid,
        rows: row.get(0),
    })
}
