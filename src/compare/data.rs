//! Data comparison (`compare --data`): for each table present on both sides, the row counts
//! (exact, or planner estimates with `--fast`), whether the contents are equal (an ordered hash
//! computed on each side independently, for tables under a size limit), and the orphaned rows
//! of every foreign key of each side, NOT VALID ones included.
//!
//! Which tables: ordinary tables that are not partitions, and partitioned roots. A partitioned
//! table is counted and hashed through its root, so every row is seen exactly once and a table
//! that is partitioned on one side and not on the other still compares; partitions are never
//! compared on their own. Ordinary tables are read with `ONLY`, so rows of legacy-inheritance
//! children are not counted twice. Extension member tables and system schemas are left out.
//!
//! This module must never write: each side runs in one `READ ONLY` `REPEATABLE READ`
//! transaction (one snapshot for all of its queries), ended with `ROLLBACK`. The clients passed
//! in must not be inside a transaction.
//!
//! Locks: before reading anything, each side takes `ACCESS SHARE` on every table it will read
//! (the compared tables, their partitions and the tables their foreign keys reference) in one
//! `LOCK TABLE`, under `lock_timeout` = [`DataOptions::lock_wait`] (5 s by default, as the
//! sandbox clone waits): a table locked by the application (a migration's `ACCESS EXCLUSIVE`)
//! makes the comparison give up after that long, naming the tables and the blocking sessions
//! ([`locked_error`]), instead of queueing silently behind it.
//!
//! The SQL builders ([`relation`], [`count_sql`], [`hash_sql`], [`orphans_sql`]) are pure and
//! shared with the fdw engine, which passes foreign-table names for the target's side; each
//! returns a whole `SELECT` yielding one row with one column, so it can be run alone or nested
//! as a scalar subquery `(...)`. Any session that runs [`hash_sql`] must first run
//! [`TEXT_SETTINGS`], or the two sides may render the same values differently.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use super::SchemaFilter;
use crate::db::blockers::Blocker;
use crate::db::{DbError, quote_ident};

/// Settings that fix how values are rendered as text, run (inside the transaction) on every
/// session that computes a [`hash_sql`]. They match what postgres_fdw sets on its remote
/// sessions (TimeZone, DateStyle, IntervalStyle, extra_float_digits), so a hash pushed down to
/// the remote agrees with one computed locally; `bytea_output` and `lc_monetary` are fixed too.
pub const TEXT_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; \
     SET LOCAL bytea_output = 'hex'; SET LOCAL lc_monetary = 'C'";

/// How to compare.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Row counts from `pg_class.reltuples` instead of `count(*)`.
    pub fast: bool,
    /// Tables larger than this (`pg_total_relation_size`, summed over the partitions of a
    /// partitioned table, the larger of both sides) get no content hash.
    pub max_bytes: u64,
    /// How long to wait for a lock on a table before giving up (`lock_timeout`; at least 1ms).
    pub lock_wait: Duration,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            fast: false,
            max_bytes: 256 * 1024 * 1024,
            lock_wait: Duration::from_secs(5),
        }
    }
}

/// Which database a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `compare --data` found: every table present on both sides, and every foreign key of
/// each side with its orphan count (zero included, so a reader knows what was checked).
#[derive(Debug, Clone, Serialize)]
pub struct DataReport {
    pub tables: Vec<TableData>,
    pub orphans: Vec<Orphans>,
}

impl DataReport {
    /// Whether anything differs: an exact row-count difference (estimates never count), a
    /// content difference, or any orphaned row.
    pub fn differs(&self) -> bool {
        self.tables.iter().any(TableData::differs) || self.orphans.iter().any(|o| o.rows > 0)
    }
}

/// One table present on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct TableData {
    /// `schema.table`, unquoted.
    pub table: String,
    /// Rows on each side; -1 when `--fast` and the table was never analyzed (PostgreSQL 14+).
    pub source_rows: i64,
    pub target_rows: i64,
    /// Whether the counts are exact (`count(*)`) rather than estimates.
    pub exact: bool,
    pub contents: Contents,
    /// Why contents were not compared, which columns were left out, unknown estimates.
    pub note: Option<String>,
}

impl TableData {
    pub fn differs(&self) -> bool {
        matches!(self.contents, Contents::Different)
            || (self.exact && self.source_rows != self.target_rows)
    }
}

/// Whether a table's contents are equal on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contents {
    Equal,
    Different,
    NotCompared,
}

/// One foreign key of one side and its orphaned rows: child rows whose key columns are all
/// non-null (MATCH SIMPLE) and match no row of the referenced table.
#[derive(Debug, Clone, Serialize)]
pub struct Orphans {
    pub side: Side,
    /// `schema.table.constraint`, unquoted.
    pub constraint: String,
    /// The referenced table, `schema.table`, unquoted.
    pub references: String,
    pub not_valid: bool,
    pub rows: i64,
}

/// The FROM item for a table: `ONLY "schema"."table"` for an ordinary table (legacy-inheritance
/// children hold their own rows and constraints), `"schema"."table"` for a partitioned one
/// (its rows live in its partitions). A foreign table may use either.
pub fn relation(schema: &str, table: &str, partitioned: bool) -> String {
    let only = if partitioned { "" } else { "ONLY " };
    format!("{only}{}.{}", quote_ident(schema), quote_ident(table))
}

/// `SELECT count(*) FROM <rel>`: one bigint. `rel` is an already-quoted FROM item such as
/// [`relation`] gives.
pub fn count_sql(rel: &str) -> String {
    format!("SELECT count(*) FROM {rel}")
}

/// A query giving one text column: an md5 hash of the contents of `rel` over `columns`, equal
/// on two databases exactly when they hold the same multiset of rows, whatever the physical
/// row order and column order. Never NULL (an empty table hashes to `md5('')`).
///
/// `rel` is an already-quoted FROM item; `columns` are unquoted column names, quoted and
/// sorted here, so the caller may pass them in any order. Pass the columns both sides share
/// with the same type. Each row is rendered as its row constructor's text
/// (`ROW(a, b)::text`, where NULL is empty and '' is `""`, so the two stay distinct), hashed,
/// and the row hashes are concatenated in byte order. To keep memory bounded on large tables
/// the row hashes are grouped into 4096 buckets by their first three hex digits, each bucket
/// hashed on its own, and the bucket hashes hashed in bucket order: still a deterministic
/// function of the multiset of rows. The text depends on session settings: run
/// [`TEXT_SETTINGS`] first.
pub fn hash_sql(rel: &str, columns: &[String]) -> String {
    let mut sorted: Vec<&String> = columns.iter().collect();
    sorted.sort();
    sorted.dedup();
    let row = sorted
        .iter()
        .map(|c| format!("_r.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT md5(coalesce(string_agg(_b.h, '' ORDER BY _b.k COLLATE \"C\"), '')) FROM (\
         SELECT left(_h.r, 3) AS k, md5(string_agg(_h.r, '' ORDER BY _h.r COLLATE \"C\")) AS h \
         FROM (SELECT md5(ROW({row})::text) AS r FROM {rel} AS _r) AS _h GROUP BY 1) AS _b"
    )
}

/// `SELECT count(*)` of the rows of `child` whose `child_cols` are all non-null and match no
/// row of `parent` on `parent_cols` (paired by position): the rows a foreign key with MATCH
/// SIMPLE would reject. `child` and `parent` are already-quoted FROM items (use [`relation`]:
/// the child with `ONLY` unless partitioned, as a foreign key covers exactly that); columns
/// are unquoted names. Self-references work (the two sides get their own aliases).
pub fn orphans_sql(
    child: &str,
    child_cols: &[String],
    parent: &str,
    parent_cols: &[String],
) -> String {
    let not_null = child_cols
        .iter()
        .map(|c| format!("_c.{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>();
    let matches = child_cols
        .iter()
        .zip(parent_cols)
        .map(|(c, p)| format!("_p.{} = _c.{}", quote_ident(p), quote_ident(c)))
        .collect::<Vec<_>>();
    let or_true = |v: Vec<String>| {
        if v.is_empty() {
            "true".to_string()
        } else {
            v.join(" AND ")
        }
    };
    format!(
        "SELECT count(*) FROM {child} AS _c WHERE {} AND NOT EXISTS (SELECT 1 FROM {parent} AS _p WHERE {})",
        or_true(not_null),
        or_true(matches)
    )
}

/// A table as one side's catalog lists it.
#[derive(Debug, Clone, Deserialize)]
struct CatalogTable {
    schema: String,
    name: String,
    kind: String,
    bytes: i64,
    /// Summed over the leaves for a partitioned table; -1 when unknown.
    reltuples: f64,
    columns: Vec<String>,
    /// `format_type` without the modifier, parallel to `columns`.
    types: Vec<String>,
}

/// A foreign key as one side's catalog lists it (not the clones on partitions).
#[derive(Debug, Clone, Deserialize)]
struct CatalogFk {
    schema: String,
    table_name: String,
    kind: String,
    name: String,
    not_valid: bool,
    parent_schema: String,
    parent_table: String,
    parent_kind: String,
    columns: Vec<String>,
    parent_columns: Vec<String>,
}

/// The `rels` CTE: the user tables (ordinary and partitioned, partitions included) the filter
/// keeps. `$1`/`$2`: the schema filter.
fn rels_cte() -> String {
    let filter = SchemaFilter::sql("n.nspname", 1, 2);
    format!(
        "rels AS (
           SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind, c.relispartition, c.reltuples
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND {filter}
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e'))"
    )
}

/// Every table the comparison reads, each once: `oid` and `ONLY "schema"."name"`. The kept
/// tables, the tables their foreign keys reference, and all their partitions. Reads only the
/// catalog (no lock on a user table). `$1`/`$2`: the schema filter.
fn to_lock_sql() -> String {
    format!(
        "WITH {} SELECT DISTINCT t.relid::oid, format('ONLY %I.%I', n.nspname, c.relname) \
         FROM (SELECT r.oid FROM rels r UNION \
               SELECT k.confrelid FROM pg_constraint k JOIN rels r ON r.oid = k.conrelid \
               WHERE k.contype = 'f') x \
         CROSS JOIN LATERAL (SELECT x.oid AS relid UNION \
                             SELECT p.relid FROM pg_partition_tree(x.oid) p) t \
         JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') ORDER BY 1",
        rels_cte()
    )
}

/// Tables, their columns and their foreign keys, in one query. `$1`/`$2`: the schema filter.
fn catalog_sql() -> String {
    let attrs = |what: &str| {
        format!(
            "ARRAY(SELECT {what} FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 \
             AND NOT a.attisdropped ORDER BY a.attnum)"
        )
    };
    let key = |keys: &str, rel: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest(k.{keys}) WITH ORDINALITY u(num, i) \
             JOIN pg_attribute a ON a.attrelid = k.{rel} AND a.attnum = u.num ORDER BY u.i)"
        )
    };
    format!(
        "WITH {}
         SELECT
           (SELECT coalesce(jsonb_agg(t ORDER BY t.schema, t.name), '[]') FROM (
              SELECT r.nspname::text AS schema, r.relname::text AS name, r.relkind AS kind,
                (CASE r.relkind WHEN 'p' THEN (SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)
                                               FROM pg_partition_tree(r.oid) p)
                 ELSE pg_total_relation_size(r.oid) END)::int8 AS bytes,
                (CASE r.relkind WHEN 'p' THEN (SELECT CASE WHEN bool_or(l.reltuples < 0) THEN -1
                                                      ELSE coalesce(sum(l.reltuples), 0) END
                                               FROM pg_partition_tree(r.oid) p JOIN pg_class l ON l.oid = p.relid
                                               WHERE p.isleaf)
                 ELSE r.reltuples END)::float8 AS reltuples,
                {} AS columns, {} AS types
              FROM rels r WHERE NOT r.relispartition) t),
           (SELECT coalesce(jsonb_agg(f ORDER BY f.schema, f.table_name, f.name), '[]') FROM (
              SELECT r.nspname::text AS schema, r.relname::text AS table_name, r.relkind AS kind,
                k.conname::text AS name, NOT k.convalidated AS not_valid,
                pn.nspname::text AS parent_schema, pc.relname::text AS parent_table,
                pc.relkind::text AS parent_kind, {} AS columns, {} AS parent_columns
              FROM rels r
              JOIN pg_constraint k ON k.conrelid = r.oid AND k.contype = 'f' AND k.conparentid = 0
              JOIN pg_class pc ON pc.oid = k.confrelid
              JOIN pg_namespace pn ON pn.oid = pc.relnamespace) f)",
        rels_cte(),
        attrs("a.attname::text"),
        attrs("format_type(a.atttypid, NULL)"),
        key("conkey", "conrelid"),
        key("confkey", "confrelid"),
    )
}

/// A table present on both sides, and what to do with it.
#[derive(Debug, Clone)]
struct Planned {
    table: String,
    source_rel: String,
    target_rel: String,
    /// The columns both sides have with the same type, sorted.
    columns: Vec<String>,
    /// The other columns, each with why, for the note.
    left_out: Vec<String>,
    /// Why the contents are not hashed (too large, no common column); `None` to hash.
    skip: Option<String>,
    /// Estimates from the catalog: -1 when unknown.
    source_estimate: i64,
    target_estimate: i64,
}

impl Planned {
    fn hashable(&self) -> bool {
        self.skip.is_none()
    }
}

/// Pair the tables present on both sides and decide which columns to hash and whether to hash
/// at all. Pure.
fn plan(source: &[CatalogTable], target: &[CatalogTable], max_bytes: u64) -> Vec<Planned> {
    let by_name: std::collections::HashMap<(&str, &str), &CatalogTable> = target
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t))
        .collect();
    let mut planned: Vec<Planned> = source
        .iter()
        .filter_map(|s| {
            let t = by_name.get(&(s.schema.as_str(), s.name.as_str()))?;
            Some(plan_table(s, t, max_bytes))
        })
        .collect();
    planned.sort_by(|a, b| a.table.cmp(&b.table));
    planned
}

fn plan_table(s: &CatalogTable, t: &CatalogTable, max_bytes: u64) -> Planned {
    let (columns, left_out) = common_columns(s, t);
    let bytes = u64::try_from(s.bytes.max(t.bytes)).unwrap_or(0);
    let skip = if bytes > max_bytes {
        Some(format!(
            "contents not compared: {bytes} bytes, over the {max_bytes}-byte limit"
        ))
    } else if columns.is_empty() {
        Some("contents not compared: no column has the same type on both sides".into())
    } else {
        None
    };
    Planned {
        table: format!("{}.{}", s.schema, s.name),
        source_rel: relation(&s.schema, &s.name, s.kind == "p"),
        target_rel: relation(&t.schema, &t.name, t.kind == "p"),
        columns,
        left_out,
        skip,
        source_estimate: estimate(s.reltuples),
        target_estimate: estimate(t.reltuples),
    }
}

fn estimate(reltuples: f64) -> i64 {
    if reltuples < 0.0 {
        -1
    } else {
        reltuples.round() as i64
    }
}

/// The columns present on both sides with the same type (by name, sorted; the type without
/// its modifier, as `varchar(10)` and `varchar(20)` render a value alike), and the others,
/// each with why it was left out.
fn common_columns(s: &CatalogTable, t: &CatalogTable) -> (Vec<String>, Vec<String>) {
    let type_of = |tab: &CatalogTable, col: &str| {
        let i = tab.columns.iter().position(|c| c == col)?;
        tab.types.get(i).cloned()
    };
    let mut common = Vec::new();
    let mut left_out = Vec::new();
    for c in &s.columns {
        match type_of(t, c) {
            None => left_out.push(format!("{c} (source only)")),
            Some(tt) if Some(&tt) != type_of(s, c).as_ref() => {
                left_out.push(format!("{c} (type differs)"));
            }
            Some(_) => common.push(c.clone()),
        }
    }
    for c in t.columns.iter().filter(|c| !s.columns.contains(c)) {
        left_out.push(format!("{c} (target only)"));
    }
    common.sort();
    (common, left_out)
}

/// What one side measured for the planned tables.
#[derive(Debug, Default)]
struct Measured {
    /// Exact counts, parallel to the plan; empty with `--fast`.
    counts: Vec<i64>,
    hashes: Vec<Option<String>>,
}

/// The report from the plan and both sides' measurements. Pure.
fn finish(planned: Vec<Planned>, fast: bool, s: &Measured, t: &Measured) -> Vec<TableData> {
    planned
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (source_rows, target_rows) = if fast {
                (p.source_estimate, p.target_estimate)
            } else {
                (count_at(s, i), count_at(t, i))
            };
            let mut notes = Vec::new();
            let contents = match (hash_at(s, i), hash_at(t, i)) {
                (Some(a), Some(b)) => {
                    if !p.left_out.is_empty() {
                        notes.push(format!(
                            "hashed on the common columns only, without {}",
                            p.left_out.join(", ")
                        ));
                    }
                    if a == b {
                        Contents::Equal
                    } else {
                        Contents::Different
                    }
                }
                _ if !fast && source_rows != target_rows => Contents::Different,
                _ => {
                    notes.extend(p.skip);
                    Contents::NotCompared
                }
            };
            for (side, rows) in [(Side::Source, source_rows), (Side::Target, target_rows)] {
                if rows < 0 {
                    notes.push(format!("row count unknown on {side}: never analyzed"));
                }
            }
            TableData {
                table: p.table,
                source_rows,
                target_rows,
                exact: !fast,
                contents,
                note: (!notes.is_empty()).then(|| notes.join("; ")),
            }
        })
        .collect()
}

fn count_at(m: &Measured, i: usize) -> i64 {
    m.counts.get(i).copied().unwrap_or(-1)
}

fn hash_at(m: &Measured, i: usize) -> Option<&str> {
    m.hashes.get(i).and_then(|h| h.as_deref())
}

/// Compare the data of `source` and `target`: see the module docs. Both clients must be idle
/// (not in a transaction); each is left idle, also on error.
pub async fn compare(
    source: &Client,
    target: &Client,
    filter: &SchemaFilter,
    opts: &DataOptions,
) -> Result<DataReport, DbError> {
    let result = run(source, target, filter, opts).await;
    // Read only: ROLLBACK loses nothing, and ends a transaction an error left open.
    let _ = tokio::join!(
        source.batch_execute("ROLLBACK"),
        target.batch_execute("ROLLBACK")
    );
    result
}

async fn run(
    source: &Client,
    target: &Client,
    filter: &SchemaFilter,
    opts: &DataOptions,
) -> Result<DataReport, DbError> {
    let (s_cat, t_cat) = tokio::try_join!(
        catalog(source, Side::Source, filter, opts.lock_wait),
        catalog(target, Side::Target, filter, opts.lock_wait)
    )?;
    let planned = plan(&s_cat.0, &t_cat.0, opts.max_bytes);
    let ((s_counts, s_orphans), (t_counts, t_orphans)) = tokio::try_join!(
        counts_and_orphans(source, Side::Source, &planned, &s_cat.1, !opts.fast),
        counts_and_orphans(target, Side::Target, &planned, &t_cat.1, !opts.fast)
    )?;
    // Exact counts that differ already say the contents differ: skip the hash.
    let to_hash: Vec<bool> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| p.hashable() && (opts.fast || s_counts.get(i) == t_counts.get(i)))
        .collect();
    let (s_hashes, t_hashes) = tokio::try_join!(
        hashes(source, Side::Source, &planned, &to_hash),
        hashes(target, Side::Target, &planned, &to_hash)
    )?;
    let s = Measured {
        counts: s_counts,
        hashes: s_hashes,
    };
    let t = Measured {
        counts: t_counts,
        hashes: t_hashes,
    };
    let mut orphans = [s_orphans, t_orphans].concat();
    orphans.sort_by(|a, b| (a.side.as_str(), &a.constraint).cmp(&(b.side.as_str(), &b.constraint)));
    Ok(DataReport {
        tables: finish(planned, opts.fast, &s, &t),
        orphans,
    })
}

/// Open the side's read-only snapshot, lock the tables it will read, and list its tables and
/// foreign keys.
async fn catalog(
    client: &Client,
    side: Side,
    filter: &SchemaFilter,
    lock_wait: Duration,
) -> Result<(Vec<CatalogTable>, Vec<CatalogFk>), DbError> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL lock_timeout = '{}ms'; {TEXT_SETTINGS}",
            lock_wait.as_millis().max(1)
        ))
        .await
        .map_err(|e| DbError::query(format!("starting a read-only transaction on {side}"), &e))?;
    lock_tables(client, side, filter, lock_wait).await?;
    let row = client
        .query_one(&catalog_sql(), &[&filter.include, &filter.exclude])
        .await
        .map_err(|e| DbError::query(format!("listing tables and foreign keys on {side}"), &e))?;
    let Json(tables): Json<Vec<CatalogTable>> = row.get(0);
    let Json(fks): Json<Vec<CatalogFk>> = row.get(1);
    Ok((tables, fks))
}

/// Take `ACCESS SHARE` on every table the comparison reads, in one statement, waiting at most
/// `lock_wait` (the transaction's `lock_timeout`).
async fn lock_tables(
    client: &Client,
    side: Side,
    filter: &SchemaFilter,
    lock_wait: Duration,
) -> Result<(), DbError> {
    let rows = client
        .query(&to_lock_sql(), &[&filter.include, &filter.exclude])
        .await
        .map_err(|e| DbError::query(format!("listing the tables to read on {side}"), &e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let items: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    let sql = format!("LOCK TABLE {} IN ACCESS SHARE MODE", items.join(", "));
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            // The transaction is aborted: end it, so the lookup can run on this session.
            let _ = client.batch_execute("ROLLBACK").await;
            let oids: Vec<u32> = rows.iter().map(|r| r.get(0)).collect();
            let blockers = read_blockers(client, &oids).await;
            Err(locked_error(side.as_str(), lock_wait, &blockers))
        }
        Err(e) => Err(DbError::query(
            format!("locking the tables to read on {side}"),
            &e,
        )),
    }
}

/// The sessions blocking `ACCESS SHARE` on the tables `oids` (empty: on any table), on a
/// session of that side outside a failed transaction.
pub(crate) async fn read_blockers(client: &Client, oids: &[u32]) -> Vec<Blocker> {
    let requests: Vec<(u32, &str)> = if oids.is_empty() {
        vec![(0, "AccessShareLock")]
    } else {
        oids.iter().map(|o| (*o, "AccessShareLock")).collect()
    };
    crate::db::blockers::for_requests(client, &requests).await
}

/// The error for a side (`source`, `target`) that gave up waiting `wait` for a lock on a table
/// it reads, naming the tables and the sessions blocking them.
pub(crate) fn locked_error(side: &str, wait: Duration, blockers: &[Blocker]) -> DbError {
    let mut tables: Vec<&str> = blockers.iter().map(|b| b.relation.as_str()).collect();
    tables.sort_unstable();
    tables.dedup();
    let what = if tables.is_empty() {
        "a table".to_string()
    } else {
        format!(
            "table{} {}",
            if tables.len() == 1 { "" } else { "s" },
            crate::util::fold_list(&tables, 5, 2)
        )
    };
    let mut msg = format!(
        "compare --data on the {side}: gave up after {} waiting for a lock on {what} (the \
         comparison reads under ACCESS SHARE locks and does not queue behind the application's)",
        crate::util::format_duration(wait)
    );
    for line in crate::db::blockers::describe(blockers, 5) {
        msg.push_str(&format!("\n  {line}"));
    }
    msg.push_str(
        "\n  hint: retry when the application's migration or maintenance is done, or raise \
         --lock-wait-timeout",
    );
    DbError::Other(msg)
}

/// Exact row counts of the planned tables (none unless `exact`), and every foreign key's orphans.
async fn counts_and_orphans(
    client: &Client,
    side: Side,
    planned: &[Planned],
    fks: &[CatalogFk],
    exact: bool,
) -> Result<(Vec<i64>, Vec<Orphans>), DbError> {
    let mut counts = Vec::with_capacity(planned.len());
    for p in planned.iter().filter(|_| exact) {
        let rel = rel_of(p, side);
        let row = client.query_one(&count_sql(rel), &[]).await.map_err(|e| {
            DbError::query(format!("counting the rows of {} on {side}", p.table), &e)
        })?;
        counts.push(row.get(0));
    }
    Ok((counts, orphans(client, side, fks).await?))
}

async fn hashes(
    client: &Client,
    side: Side,
    planned: &[Planned],
    to_hash: &[bool],
) -> Result<Vec<Option<String>>, DbError> {
    let mut hashes = Vec::with_capacity(planned.len());
    for (p, wanted) in planned.iter().zip(to_hash) {
        if !wanted {
            hashes.push(None);
            continue;
        }
        let row = client
            .query_one(&hash_sql(rel_of(p, side), &p.columns), &[])
            .await
            .map_err(|e| {
                DbError::query(format!("hashing the contents of {} on {side}", p.table), &e)
            })?;
        hashes.push(Some(row.get(0)));
    }
    Ok(hashes)
}

async fn orphans(client: &Client, side: Side, fks: &[CatalogFk]) -> Result<Vec<Orphans>, DbError> {
    let mut out = Vec::with_capacity(fks.len());
    for fk in fks {
        let constraint = format!("{}.{}.{}", fk.schema, fk.table_name, fk.name);
        let sql = orphans_sql(
            &relation(&fk.schema, &fk.table_name, fk.kind == "p"),
            &fk.columns,
            &relation(&fk.parent_schema, &fk.parent_table, fk.parent_kind == "p"),
            &fk.parent_columns,
        );
        let row = client.query_one(&sql, &[]).await.map_err(|e| {
            DbError::query(format!("counting orphans of {constraint} on {side}"), &e)
        })?;
        out.push(Orphans {
            side,
            constraint,
            references: format!("{}.{}", fk.parent_schema, fk.parent_table),
            not_valid: fk.not_valid,
            rows: row.get(0),
        });
    }
    Ok(out)
}

fn rel_of(p: &Planned, side: Side) -> &str {
    match side {
        Side::Source => &p.source_rel,
        Side::Target => &p.target_rel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn table(name: &str, columns: &[(&str, &str)], bytes: i64) -> CatalogTable {
        CatalogTable {
            schema: "public".into(),
            name: name.into(),
            kind: "r".into(),
            bytes,
            reltuples: -1.0,
            columns: columns.iter().map(|c| c.0.to_string()).collect(),
            types: columns.iter().map(|c| c.1.to_string()).collect(),
        }
    }

    #[test]
    fn relation_uses_only_for_ordinary_tables() {
        assert_eq!(relation("public", "t", false), "ONLY \"public\".\"t\"");
        assert_eq!(relation("we\"ird", "T t", true), "\"we\"\"ird\".\"T t\"");
    }

    #[test]
    fn count_is_a_plain_count() {
        assert_eq!(
            count_sql("ONLY \"s\".\"t\""),
            "SELECT count(*) FROM ONLY \"s\".\"t\""
        );
    }

    #[test]
    fn hash_sorts_and_quotes_columns_whatever_order_they_come_in() {
        let a = hash_sql("\"s\".\"t\"", &cols(&["b", "A\"x", "a"]));
        let b = hash_sql("\"s\".\"t\"", &cols(&["a", "b", "A\"x"]));
        assert_eq!(a, b);
        assert!(
            a.contains("ROW(_r.\"A\"\"x\", _r.\"a\", _r.\"b\")::text"),
            "{a}"
        );
        assert!(a.contains("FROM \"s\".\"t\" AS _r"), "{a}");
        assert!(a.contains("ORDER BY _h.r COLLATE \"C\""), "{a}");
        assert!(a.starts_with("SELECT md5(coalesce("), "{a}");
    }

    #[test]
    fn orphans_require_every_key_column_and_pair_them_by_position() {
        let sql = orphans_sql(
            "ONLY \"public\".\"child\"",
            &cols(&["a_id", "b_id"]),
            "\"public\".\"parent\"",
            &cols(&["id_a", "id_b"]),
        );
        assert_eq!(
            sql,
            "SELECT count(*) FROM ONLY \"public\".\"child\" AS _c WHERE _c.\"a_id\" IS NOT NULL \
             AND _c.\"b_id\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM \"public\".\"parent\" AS _p \
             WHERE _p.\"id_a\" = _c.\"a_id\" AND _p.\"id_b\" = _c.\"b_id\")"
        );
    }

    #[test]
    fn catalog_query_binds_the_filter() {
        let sql = catalog_sql();
        assert!(sql.contains("$1::text[]") && sql.contains("$2::text[]"));
        assert!(sql.contains("conparentid = 0"));
    }

    #[test]
    fn common_columns_match_by_name_and_type_and_the_rest_are_noted_when_hashed() {
        let s = table(
            "t",
            &[
                ("id", "integer"),
                ("name", "text"),
                ("old", "text"),
                ("n", "integer"),
            ],
            0,
        );
        let t = table(
            "t",
            &[
                ("n", "bigint"),
                ("name", "text"),
                ("id", "integer"),
                ("new", "date"),
            ],
            0,
        );
        let p = plan(&[s], &[t], 1000);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].columns, cols(&["id", "name"]));
        assert!(p[0].hashable());
        let r = finish(
            p,
            false,
            &measured(&[1], &[Some("x")]),
            &measured(&[1], &[Some("x")]),
        );
        assert_eq!(r[0].contents, Contents::Equal);
        assert_eq!(
            r[0].note.as_deref(),
            Some(
                "hashed on the common columns only, without old (source only), n (type differs), new (target only)"
            )
        );
    }

    #[test]
    fn only_tables_on_both_sides_are_planned_and_size_limits_hashing() {
        let s = vec![
            table("a", &[("id", "int")], 10),
            table("big", &[("id", "int")], 10),
        ];
        let t = vec![
            table("big", &[("id", "int")], 5000),
            table("c", &[("id", "int")], 1),
        ];
        let p = plan(&s, &t, 1000);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].table, "public.big");
        assert!(!p[0].hashable());
        let same = finish(
            p.clone(),
            false,
            &measured(&[4], &[None]),
            &measured(&[4], &[None]),
        );
        assert_eq!(same[0].contents, Contents::NotCompared);
        let note = same[0].note.as_deref().unwrap();
        assert!(
            note.contains("5000 bytes, over the 1000-byte limit"),
            "{note}"
        );
        let fewer = finish(p, false, &measured(&[4], &[None]), &measured(&[5], &[None]));
        assert_eq!(
            fewer[0].contents,
            Contents::Different,
            "counts already tell"
        );
        assert_eq!(fewer[0].note, None);
    }

    #[test]
    fn no_common_column_means_not_compared() {
        let p = plan(
            &[table("t", &[("a", "int")], 1)],
            &[table("t", &[("b", "int")], 1)],
            1000,
        );
        assert!(!p[0].hashable());
        let r = finish(p, false, &measured(&[3], &[None]), &measured(&[3], &[None]));
        assert_eq!(r[0].contents, Contents::NotCompared);
        assert_eq!(
            r[0].note.as_deref(),
            Some("contents not compared: no column has the same type on both sides")
        );
        assert!(!r[0].differs());
    }

    fn measured(counts: &[i64], hashes: &[Option<&str>]) -> Measured {
        Measured {
            counts: counts.to_vec(),
            hashes: hashes.iter().map(|h| h.map(str::to_string)).collect(),
        }
    }

    #[test]
    fn finish_decides_contents_from_hashes_and_exact_counts() {
        let t = || {
            plan(
                &[table("t", &[("a", "int")], 1)],
                &[table("t", &[("a", "int")], 1)],
                10,
            )
        };
        let eq = finish(
            t(),
            false,
            &measured(&[2], &[Some("x")]),
            &measured(&[2], &[Some("x")]),
        );
        assert_eq!(eq[0].contents, Contents::Equal);
        assert!(eq[0].exact && !eq[0].differs() && eq[0].note.is_none());
        let ne = finish(
            t(),
            false,
            &measured(&[2], &[Some("x")]),
            &measured(&[2], &[Some("y")]),
        );
        assert_eq!(ne[0].contents, Contents::Different);
        let counts = finish(
            t(),
            false,
            &measured(&[2], &[None]),
            &measured(&[3], &[None]),
        );
        assert_eq!(counts[0].contents, Contents::Different);
        assert!(counts[0].differs());
    }

    #[test]
    fn fast_counts_are_estimates_and_unknown_ones_are_noted() {
        let mut s = table("t", &[("a", "int")], 1);
        s.reltuples = 41.6;
        let p = plan(&[s], &[table("t", &[("a", "int")], 1)], 0);
        let r = finish(p, true, &Measured::default(), &Measured::default());
        assert_eq!(
            (r[0].source_rows, r[0].target_rows, r[0].exact),
            (42, -1, false)
        );
        assert_eq!(r[0].contents, Contents::NotCompared);
        assert!(!r[0].differs(), "estimates never count as a difference");
        let note = r[0].note.as_deref().unwrap();
        assert!(
            note.contains("row count unknown on target: never analyzed"),
            "{note}"
        );
    }

    #[test]
    fn report_differs_on_orphans() {
        let mut r = DataReport {
            tables: Vec::new(),
            orphans: vec![Orphans {
                side: Side::Target,
                constraint: "public.c.c_fk".into(),
                references: "public.p".into(),
                not_valid: true,
                rows: 0,
            }],
        };
        assert!(!r.differs());
        r.orphans[0].rows = 2;
        assert!(r.differs());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["orphans"][0]["side"], "target");
    }

    #[test]
    fn contents_serialize_in_kebab_case() {
        assert_eq!(
            serde_json::to_value(Contents::NotCompared).unwrap(),
            "not-compared"
        );
    }
}
