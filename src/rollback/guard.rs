//! The data-loss guard: before an automatic rollback drops or restores tables, find the writes
//! that sessions other than the deploy made to them since the backup, so that a restore never
//! silently throws away rows the application wrote.
//!
//! The deploy takes four [`read`]s of the same tables:
//!
//! ```text
//! S0  just before the backup's dumps start         (the existing tables the rollback replaces)
//! S1  right before the apply starts                 S1 - S0: others' writes, backup to apply
//! S2  right after the apply, after flush_own()      (the same tables plus those the deploy created)
//!     on the apply's own session                    S2 - S1: ours (see the window below)
//! S3  at rollback time, after settle()              S3 - S2: others' writes after the apply
//! ```
//!
//! [`others`] (pure) matches the snapshots by table oid, so a table the deploy renamed is still
//! the same table; a table created by the deploy (absent from S0/S1) counts only S3 - S2, and a
//! table absent from S3 contributes nothing after S2. A counter that goes down (statistics
//! reset) counts as a write. Where a table is at most `hash_max_bytes` big, each read also
//! records its row count and content hash ([`crate::compare::data::hash_sql`]): a changed hash
//! is a write even when the counters lag. Each read also records the table's file nodes: a
//! `TRUNCATE` (which the tuple counters do not count) or a rewrite changes them.
//!
//! How current the counters are (checked in PostgreSQL's `pgstat.c` and measured, see
//! `tests/guard.rs`):
//!
//! - PostgreSQL 15 and newer keep them in shared memory. A backend flushes its pending counts
//!   when it goes idle, at most once per `PGSTAT_MIN_INTERVAL` (1 s); when it goes idle sooner
//!   than that after its last flush, it keeps them and flushes on an idle timeout of
//!   `PGSTAT_IDLE_INTERVAL` (10 s). A backend that stays inside one long transaction flushes
//!   nothing until that transaction ends. [`settle`] waits at least 1.1 s, and up to 10.5 s while
//!   another session of the database went idle within the last 10.5 s. [`flush_own`] uses
//!   `pg_stat_force_next_flush()`: the flush happens before the server answers.
//! - PostgreSQL 13 and 14 send counts to the statistics collector over UDP, at most every
//!   `PGSTAT_STAT_INTERVAL` (500 ms), and only when a transaction ends: a backend that went idle
//!   within 500 ms of its last report keeps its counts until its next transaction ends. The
//!   counters there are a best effort (and UDP may drop them under load); only the content
//!   hash is sure, so give such servers a larger `hash_max_bytes`.
//!
//! The boundaries are only as sharp as the flush: a write committed shortly before S1 may
//! still be pending at S1 and then land in S2 - S1, counted as the deploy's own (measured:
//! a fresh session's first insert lagged, because connecting had flushed its catalog reads
//! less than a second before). Tables small enough to hash are exact at every boundary (the
//! hash is an MVCC snapshot); for larger ones call [`settle`] before S1 (strict, 1.1 to
//! 10.5 s). `settle` counts every other idle client session of the database, pgship's own
//! included: close the deploy's other connections to the target first.
//!
//! Known window: writes by others *during* the apply that reach the counters before S2 are
//! counted as the deploy's own (S2 - S1); on tables small enough to hash, the rollback's proof
//! still compares contents. Writes still uncommitted at S3 (a long transaction) are not seen.
//!
//! This module only reads: it never writes to the database, never prints, and never names a
//! password (errors carry the table and the server's message).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::compare::data::{TEXT_SETTINGS, count_sql, hash_sql, relation};
use crate::db::{DbError, describe as describe_error};

/// A table's write counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub oid: u32,
    /// `schema.table`, unquoted.
    pub table: String,
    /// `n_tup_ins`, `n_tup_upd` and `n_tup_del`, summed over the partitions of a partitioned
    /// table.
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    /// Row count and content hash, for a table no bigger than the read's limit.
    pub rows: Option<i64>,
    pub hash: Option<String>,
    /// The file node of the table (of each partition), which `TRUNCATE` and rewrites change.
    #[serde(default)]
    pub filenodes: Vec<u32>,
}

/// The counters of a set of tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub taken_at: jiff::Timestamp,
    pub tables: Vec<Counters>,
}

/// Writes other sessions made to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub table: String,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    /// The row count or content hash changed.
    pub content_changed: bool,
    /// The table's storage was replaced (`TRUNCATE`, `VACUUM FULL`, `CLUSTER`), or the table
    /// was dropped or renamed by another session before the apply.
    #[serde(default)]
    pub rewritten: bool,
    /// A counter went down (statistics reset): the counts are a lower bound.
    #[serde(default)]
    pub counters_reset: bool,
}

/// The counters, sizes and file nodes of the named tables (ordinary and partitioned; the
/// counters of a partitioned table are its partitions' sums). `tables` are `schema.table`;
/// names that match no table are skipped.
const COUNTERS: &str = "\
WITH t AS (SELECT s, r, i FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(s, r, i))
SELECT c.oid, t.s, t.r, c.relkind = 'p',
  coalesce(sum(pg_catalog.pg_stat_get_tuples_inserted(l.r)), 0)::int8,
  coalesce(sum(pg_catalog.pg_stat_get_tuples_updated(l.r)), 0)::int8,
  coalesce(sum(pg_catalog.pg_stat_get_tuples_deleted(l.r)), 0)::int8,
  coalesce(sum(pg_catalog.pg_relation_size(l.r)), 0)::int8,
  array_agg(coalesce(pg_catalog.pg_relation_filenode(l.r), 0) ORDER BY l.r),
  (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM t
JOIN pg_catalog.pg_namespace n ON n.nspname = t.s
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.r AND c.relkind IN ('r', 'p')
CROSS JOIN LATERAL (
  SELECT coalesce(p.relid, c.oid) AS r
  FROM (SELECT 1) AS one
  LEFT JOIN pg_catalog.pg_partition_tree(c.oid) AS p ON p.isleaf
) AS l
GROUP BY c.oid, t.s, t.r, c.relkind, t.i
ORDER BY t.i";

/// How long a read waits for a lock before it gives up naming the table.
const LOCK_TIMEOUT: &str = "5s";

/// Read the counters of `tables` (`schema.table`; missing tables skipped), with row count and
/// content hash for each table whose size is at most `hash_max_bytes` (0: none). One
/// read-only snapshot; waits at most 5 s for a lock.
pub async fn read(
    client: &Client,
    tables: &[String],
    hash_max_bytes: i64,
) -> Result<Snapshot, DbError> {
    let ctx = "reading the write counters of the tables the rollback would replace";
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; {TEXT_SETTINGS}"
        ))
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    let r = read_in_tx(client, tables, hash_max_bytes).await;
    let _ = client.batch_execute("ROLLBACK").await;
    r
}

async fn read_in_tx(
    client: &Client,
    tables: &[String],
    hash_max_bytes: i64,
) -> Result<Snapshot, DbError> {
    let (schemas, names): (Vec<&str>, Vec<&str>) =
        tables.iter().filter_map(|t| t.split_once('.')).unzip();
    let _ = client
        .batch_execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
        .await;
    let taken_at = jiff::Timestamp::now();
    let rows = client
        .query(COUNTERS, &[&schemas, &names])
        .await
        .map_err(|e| DbError::query("reading table statistics", &e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let table = format!("{}.{}", r.get::<_, String>(1), r.get::<_, String>(2));
        let size: i64 = r.get(7);
        let (rows, hash) = if size <= hash_max_bytes {
            let columns: Vec<String> = r.get::<_, Option<Vec<String>>>(9).unwrap_or_default();
            let rel = relation(r.get(1), r.get(2), r.get(3));
            let (n, h) = contents(client, &table, &rel, &columns).await?;
            (Some(n), Some(h))
        } else {
            (None, None)
        };
        out.push(Counters {
            oid: r.get(0),
            table,
            inserted: r.get(4),
            updated: r.get(5),
            deleted: r.get(6),
            rows,
            hash,
            filenodes: r.get(8),
        });
    }
    Ok(Snapshot {
        taken_at,
        tables: out,
    })
}

async fn contents(
    client: &Client,
    table: &str,
    rel: &str,
    columns: &[String],
) -> Result<(i64, String), DbError> {
    let sql = format!("SELECT ({}), ({})", count_sql(rel), hash_sql(rel, columns));
    let row = client.query_one(&sql, &[]).await.map_err(|e| {
        DbError::Other(format!(
            "cannot count and hash the rows of table {table} for the data-loss guard: {}; \
             if another session holds a lock on it, retry when it is released",
            describe_error(&e)
        ))
    })?;
    Ok((row.get(0), row.get(1)))
}

async fn server_major(client: &Client) -> u32 {
    client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .ok()
        .and_then(|r| u32::try_from(r.get::<_, i32>(0)).ok())
        .map_or(0, |n| n / 10000)
}

/// Push this session's pending statistics out, so the next [`read`] counts its writes. Call
/// it on the session that applied the migrations, before closing it. Best effort: on
/// PostgreSQL 15+ `pg_stat_force_next_flush()` makes the server flush before it answers; on
/// older servers it waits out the 500 ms report interval and ends a transaction.
pub async fn flush_own(client: &Client) {
    if server_major(client).await >= 15 {
        let _ = client
            .batch_execute("SELECT pg_catalog.pg_stat_force_next_flush()")
            .await;
    } else {
        tokio::time::sleep(Duration::from_millis(510)).await;
        let _ = client.batch_execute("SELECT 1").await;
    }
}

/// `PGSTAT_MIN_INTERVAL` plus a margin.
const MIN_WAIT: Duration = Duration::from_millis(1100);
/// `PGSTAT_IDLE_INTERVAL` plus a margin: the longest an idle backend keeps pending counts.
const IDLE_WAIT: Duration = Duration::from_millis(10_500);
/// The collector's report interval (PostgreSQL 13 and 14) plus a margin.
const COLLECTOR_WAIT: Duration = Duration::from_millis(700);
const POLL: Duration = Duration::from_millis(100);

/// Other client sessions of this database that went idle within the last 10.5 s and may
/// still hold unflushed counts.
const RECENTLY_IDLE: &str = "\
SELECT count(*) FROM pg_catalog.pg_stat_activity
WHERE datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND pid <> pg_catalog.pg_backend_pid() AND backend_type = 'client backend'
  AND state = 'idle' AND state_change > now() - make_interval(secs => $1)";

/// Wait until writes other sessions committed before the call have reached the statistics
/// counters, as far as the server lets us know; returns how long it waited. On PostgreSQL
/// 15+: at least 1.1 s, then until no other session of the database went idle in the last
/// 10.5 s, 10.5 s at most. On older servers 0.7 s (see the module docs for what that misses).
pub async fn settle(client: &Client) -> Duration {
    let start = Instant::now();
    if server_major(client).await < 15 {
        tokio::time::sleep(COLLECTOR_WAIT).await;
        return start.elapsed();
    }
    tokio::time::sleep(MIN_WAIT).await;
    while start.elapsed() < IDLE_WAIT {
        let window = IDLE_WAIT.as_secs_f64();
        let pending = client
            .query_one(RECENTLY_IDLE, &[&window])
            .await
            .map_or(1, |r| r.get::<_, i64>(0));
        if pending == 0 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    start.elapsed()
}

/// What happened to one table between two snapshots.
#[derive(Default)]
struct Delta {
    inserted: i64,
    updated: i64,
    deleted: i64,
    content: bool,
    rewritten: bool,
    reset: bool,
}

/// `after - before` of one counter; a counter that went down was reset, and what it holds
/// now is all that is known (at least one write).
fn step(before: i64, after: i64, reset: &mut bool) -> i64 {
    if after < before {
        *reset = true;
        after.max(1)
    } else {
        after - before
    }
}

fn delta(a: &Counters, b: &Counters) -> Delta {
    let mut d = Delta::default();
    d.inserted = step(a.inserted, b.inserted, &mut d.reset);
    d.updated = step(a.updated, b.updated, &mut d.reset);
    d.deleted = step(a.deleted, b.deleted, &mut d.reset);
    d.content =
        differ(a.rows.as_ref(), b.rows.as_ref()) || differ(a.hash.as_ref(), b.hash.as_ref());
    d.rewritten = !a.filenodes.is_empty() && !b.filenodes.is_empty() && a.filenodes != b.filenodes;
    d
}

/// Both known and different.
fn differ<T: PartialEq>(x: Option<&T>, y: Option<&T>) -> bool {
    matches!((x, y), (Some(x), Some(y)) if x != y)
}

fn by_oid(s: &Snapshot) -> BTreeMap<u32, &Counters> {
    s.tables.iter().map(|c| (c.oid, c)).collect()
}

fn add(w: &mut Written, d: &Delta) {
    w.inserted += d.inserted;
    w.updated += d.updated;
    w.deleted += d.deleted;
    w.content_changed |= d.content;
    w.rewritten |= d.rewritten;
    w.counters_reset |= d.reset;
}

fn wrote(w: &Written) -> bool {
    w.inserted > 0
        || w.updated > 0
        || w.deleted > 0
        || w.content_changed
        || w.rewritten
        || w.counters_reset
}

/// The writes of other sessions: (S1 - S0) + (S3 - S2), by table oid; only tables written
/// to, named as in the latest snapshot that holds them. A table present at S0 but gone at S1
/// (dropped or renamed by someone else before the apply) is reported as rewritten.
pub fn others(s0: &Snapshot, s1: &Snapshot, s2: &Snapshot, s3: &Snapshot) -> Vec<Written> {
    let (m0, m1, m2, m3) = (by_oid(s0), by_oid(s1), by_oid(s2), by_oid(s3));
    let mut order: Vec<u32> = Vec::new();
    for s in [s0, s2] {
        for c in &s.tables {
            if !order.contains(&c.oid) {
                order.push(c.oid);
            }
        }
    }
    let mut out = Vec::new();
    for oid in order {
        let name = [&m3, &m2, &m1, &m0]
            .iter()
            .find_map(|m| m.get(&oid))
            .map(|c| c.table.clone())
            .unwrap_or_default();
        let mut w = Written {
            table: name,
            inserted: 0,
            updated: 0,
            deleted: 0,
            content_changed: false,
            rewritten: false,
            counters_reset: false,
        };
        match (m0.get(&oid), m1.get(&oid)) {
            (Some(a), Some(b)) => add(&mut w, &delta(a, b)),
            (Some(_), None) => w.rewritten = true,
            _ => {}
        }
        if let (Some(a), Some(b)) = (m2.get(&oid), m3.get(&oid)) {
            add(&mut w, &delta(a, b));
        }
        if wrote(&w) {
            out.push(w);
        }
    }
    out
}

/// One line per written table: `public.orders: 1 inserted, 2 updated since the backup`.
pub fn describe(w: &[Written]) -> String {
    if w.is_empty() {
        return "no writes by other sessions since the backup".into();
    }
    w.iter().map(line).collect::<Vec<_>>().join("\n")
}

fn line(w: &Written) -> String {
    let mut parts: Vec<String> = [
        (w.inserted, "inserted"),
        (w.updated, "updated"),
        (w.deleted, "deleted"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if w.content_changed {
        parts.push("its contents changed".into());
    }
    if w.rewritten {
        parts.push("truncated, rewritten, dropped or renamed".into());
    }
    if w.counters_reset {
        parts.push("statistics reset, so the counts are a lower bound".into());
    }
    format!("{}: {} since the backup", w.table, parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(oid: u32, table: &str, ins: i64, upd: i64, del: i64) -> Counters {
        Counters {
            oid,
            table: table.into(),
            inserted: ins,
            updated: upd,
            deleted: del,
            rows: None,
            hash: None,
            filenodes: vec![oid + 1000],
        }
    }

    fn snap(tables: Vec<Counters>) -> Snapshot {
        Snapshot {
            taken_at: jiff::Timestamp::UNIX_EPOCH,
            tables,
        }
    }

    fn written(table: &str, ins: i64, upd: i64, del: i64) -> Written {
        Written {
            table: table.into(),
            inserted: ins,
            updated: upd,
            deleted: del,
            content_changed: false,
            rewritten: false,
            counters_reset: false,
        }
    }

    /// What it shows, S0 to S3, and what `others` must report.
    type Case = (&'static str, [Vec<Counters>; 4], Vec<Written>);

    #[test]
    fn only_the_writes_outside_the_apply_count() {
        let cases: Vec<Case> = vec![
            (
                "nobody else wrote; ours is S2 - S1",
                [
                    vec![c(1, "public.t", 5, 0, 0)],
                    vec![c(1, "public.t", 5, 0, 0)],
                    vec![c(1, "public.t", 5, 9, 0)],
                    vec![c(1, "public.t", 5, 9, 0)],
                ],
                vec![],
            ),
            (
                "one insert before the apply, one after",
                [
                    vec![c(1, "public.t", 5, 0, 0)],
                    vec![c(1, "public.t", 6, 0, 0)],
                    vec![c(1, "public.t", 6, 3, 0)],
                    vec![c(1, "public.t", 7, 3, 0)],
                ],
                vec![written("public.t", 2, 0, 0)],
            ),
            (
                "a table the deploy renamed is matched by oid and named as now",
                [
                    vec![c(1, "public.t", 0, 0, 0)],
                    vec![c(1, "public.t", 0, 0, 0)],
                    vec![c(1, "public.t2", 0, 0, 0)],
                    vec![c(1, "public.t2", 0, 0, 2)],
                ],
                vec![written("public.t2", 0, 0, 2)],
            ),
            (
                "a table the deploy created counts only S3 - S2",
                [
                    vec![],
                    vec![],
                    vec![c(2, "public.new", 40, 0, 0)],
                    vec![c(2, "public.new", 41, 1, 0)],
                ],
                vec![written("public.new", 1, 1, 0)],
            ),
            (
                "a table gone at S3 contributes nothing after S2",
                [
                    vec![c(1, "public.t", 0, 0, 0)],
                    vec![c(1, "public.t", 0, 0, 0)],
                    vec![c(1, "public.t", 0, 0, 0)],
                    vec![],
                ],
                vec![],
            ),
            (
                "a stats reset counts as a write",
                [
                    vec![c(1, "public.t", 10, 4, 0)],
                    vec![c(1, "public.t", 10, 4, 0)],
                    vec![c(1, "public.t", 10, 4, 0)],
                    vec![c(1, "public.t", 0, 0, 0)],
                ],
                vec![Written {
                    counters_reset: true,
                    ..written("public.t", 1, 1, 0)
                }],
            ),
        ];
        for (what, [a, b, x, y], want) in cases {
            let got = others(&snap(a), &snap(b), &snap(x), &snap(y));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn a_changed_hash_or_file_node_is_a_write_even_with_still_counters() {
        let mut s2 = c(1, "public.t", 3, 0, 0);
        s2.rows = Some(3);
        s2.hash = Some("aa".into());
        let mut s3 = s2.clone();
        s3.hash = Some("bb".into());
        let base = snap(vec![c(1, "public.t", 3, 0, 0)]);
        let got = others(&base, &base, &snap(vec![s2.clone()]), &snap(vec![s3]));
        assert!(got[0].content_changed && !got[0].rewritten, "{got:?}");
        // TRUNCATE moves no tuple counter but gives the table a new file node.
        let mut truncated = s2.clone();
        truncated.filenodes = vec![77];
        truncated.hash = None;
        let got = others(
            &base,
            &base,
            &snap(vec![s2.clone()]),
            &snap(vec![truncated]),
        );
        assert!(got[0].rewritten && !got[0].content_changed, "{got:?}");
        // No hash on one side (table grew past the limit): nothing to compare, no write.
        let mut big = s2.clone();
        big.hash = None;
        big.rows = None;
        assert!(others(&base, &base, &snap(vec![s2]), &snap(vec![big])).is_empty());
        // Dropped or renamed by someone else between the backup and the apply.
        let got = others(&base, &snap(vec![]), &snap(vec![]), &snap(vec![]));
        assert!(got[0].rewritten && got[0].table == "public.t", "{got:?}");
    }

    #[test]
    fn description() {
        assert_eq!(
            describe(&[written("public.orders", 1, 2, 0)]),
            "public.orders: 1 inserted, 2 updated since the backup"
        );
        let w = Written {
            content_changed: true,
            counters_reset: true,
            ..written("s.t", 0, 0, 3)
        };
        let other = Written {
            rewritten: true,
            ..written("public.u", 0, 0, 0)
        };
        assert_eq!(
            describe(&[w, other]),
            "s.t: 3 deleted, its contents changed, statistics reset, so the counts are a lower bound since the backup\n\
             public.u: truncated, rewritten, dropped or renamed since the backup"
        );
        assert_eq!(
            describe(&[]),
            "no writes by other sessions since the backup"
        );
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let s = snap(vec![c(1, "public.t", 1, 2, 3)]);
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
