//! The data-loss guard against real PostgreSQL: the deploy's own writes are told apart from
//! other sessions' writes, through the statistics counters' flush delays, on the shared
//! PostgreSQL 15 server and on a throwaway PostgreSQL 18 cluster.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pgship::db::{Conn, ConnectOptions, DbUrl, connect};
use pgship::rollback::guard::{self, Snapshot, Written};

const LIMIT: i64 = 64 << 20;

async fn open(url: &str) -> Conn {
    connect(&DbUrl::parse(url).unwrap(), &ConnectOptions::default())
        .await
        .expect("connect")
}

async fn exec(c: &Conn, sql: &str) {
    c.client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", pgship::db::describe(&e)));
}

async fn read(c: &Conn, tables: &[&str], limit: i64) -> Snapshot {
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    guard::read(&c.client, &tables, limit).await.expect("read")
}

fn find<'a>(w: &'a [Written], table: &str) -> &'a Written {
    w.iter()
        .find(|w| w.table == table)
        .unwrap_or_else(|| panic!("{table} not in {w:?}"))
}

/// The deploy's sequence of reads with another session writing once before the apply and
/// twice after it (one row into the touched table, one into the table the deploy created).
/// Returns how long `settle` waited.
async fn others_are_told_from_ours(url: &str) -> Duration {
    let ours = open(url).await;
    exec(
        &ours,
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 3) g",
    )
    .await;
    guard::flush_own(&ours.client).await;
    let s0 = read(&ours, &["public.t"], LIMIT).await;
    let other = open(url).await;
    exec(&other, "INSERT INTO t VALUES (10, 10)").await;
    // Read at once, the insert may still sit in the other session's pending counts (it
    // flushed its catalog reads at connect less than a second ago): the hash sees it anyway.
    let quick = read(&ours, &["public.t"], LIMIT).await;
    let seen = guard::others(&s0, &quick, &quick, &quick);
    assert!(find(&seen, "public.t").content_changed, "{seen:?}");
    let lagged = quick.tables[0].inserted == s0.tables[0].inserted;
    // The strict sequence settles before S1, so that the counters hold every earlier write.
    let before_s1 = guard::settle(&ours.client).await;
    let s1 = read(&ours, &["public.t"], LIMIT).await;
    assert_eq!(s1.tables[0].inserted, s0.tables[0].inserted + 1);
    eprintln!("S1: counters lagged without settle: {lagged}; settle waited {before_s1:?}");
    // "The apply": a backfill of every row and a new table with rows of its own.
    exec(
        &ours,
        "UPDATE t SET v = v + 1; CREATE TABLE n (id int); INSERT INTO n SELECT generate_series(1, 40)",
    )
    .await;
    guard::flush_own(&ours.client).await;
    let s2 = read(&ours, &["public.t", "public.n"], LIMIT).await;
    // Ours (3 updated, 40 inserted into n) is not counted: only the insert before the apply.
    let so_far = guard::others(&s0, &s1, &s2, &s2);
    assert_eq!(so_far.len(), 1, "{so_far:?}");
    let t = find(&so_far, "public.t");
    assert_eq!((t.inserted, t.updated, t.content_changed), (1, 0, true));
    let first = Instant::now();
    exec(&other, "INSERT INTO n VALUES (99)").await;
    let apart = first.elapsed();
    exec(&other, "INSERT INTO t VALUES (11, 11)").await;
    // Right away the counters lag: the other session flushed less than a second ago, so it
    // keeps its counts until its idle timeout.
    let early = read(&ours, &["public.t", "public.n"], 0).await;
    if apart < Duration::from_millis(800) {
        assert_eq!(early.tables[0].inserted, s2.tables[0].inserted, "{early:?}");
    }
    let waited = guard::settle(&ours.client).await;
    let s3 = read(&ours, &["public.t", "public.n"], LIMIT).await;
    let found = guard::others(&s0, &s1, &s2, &s3);
    let t = find(&found, "public.t");
    assert_eq!((t.inserted, t.updated, t.deleted), (2, 0, 0), "{found:?}");
    assert!(t.content_changed && !t.rewritten && !t.counters_reset);
    let n = find(&found, "public.n");
    assert_eq!((n.inserted, n.updated, n.deleted), (1, 0, 0), "{found:?}");
    assert_eq!(found.len(), 2);
    assert_eq!(
        guard::describe(&found),
        "public.t: 2 inserted, its contents changed since the backup\n\
         public.n: 1 inserted, its contents changed since the backup"
    );
    waited
}

#[test]
fn other_sessions_writes_are_found_and_ours_are_not() {
    let Some(db) = TestDb::new() else { return };
    let waited = rt().block_on(others_are_told_from_ours(&db.url));
    eprintln!("settle waited {waited:?} (PostgreSQL 15)");
    // The other session went idle right before: settle waits out its 10 s idle timeout.
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    assert!(waited < Duration::from_secs(12), "{waited:?}");
}

#[test]
fn other_sessions_writes_are_found_on_postgresql_18() {
    let Some(bin) = pg18_bin() else { return };
    let b = pgship::db::tools::at(&bin, "postgres").expect("PostgreSQL 18 binaries run");
    let cluster = pgship::cluster::LocalCluster::start(&pgship::cluster::ClusterOptions {
        bin: Some(b),
        ..Default::default()
    })
    .unwrap();
    let Some(db) = TestDb::on(&cluster.url("postgres").expose()) else {
        return;
    };
    let version = db.scalar("SHOW server_version_num").unwrap();
    assert!(version.starts_with("18"), "{version}");
    let waited = rt().block_on(others_are_told_from_ours(&db.url));
    eprintln!("settle waited {waited:?} (PostgreSQL 18)");
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
}

#[test]
fn nothing_is_reported_when_only_the_deploy_wrote() {
    let Some(db) = TestDb::new() else { return };
    rt().block_on(async {
        let ours = open(&db.url).await;
        exec(&ours, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g").await;
        guard::flush_own(&ours.client).await;
        // Another session reads, and writes elsewhere: neither is a write to the tables.
        let other = open(&db.url).await;
        exec(&other, "CREATE TABLE elsewhere (a int); INSERT INTO elsewhere VALUES (1); SELECT count(*) FROM t").await;
        let s0 = read(&ours, &["public.t"], LIMIT).await;
        let s1 = read(&ours, &["public.t"], LIMIT).await;
        exec(&ours, "UPDATE t SET v = 'y' WHERE id <= 50; DELETE FROM t WHERE id > 90; ALTER TABLE t ADD COLUMN w int DEFAULT 0; CREATE TABLE n AS SELECT 1 AS a").await;
        guard::flush_own(&ours.client).await;
        let s2 = read(&ours, &["public.t", "public.n"], LIMIT).await;
        let waited = guard::settle(&ours.client).await;
        let s3 = read(&ours, &["public.t", "public.n"], LIMIT).await;
        assert_eq!(guard::others(&s0, &s1, &s2, &s3), vec![], "{s2:?} {s3:?}");
        assert!(waited >= Duration::from_millis(1100), "{waited:?}");
    });
}

#[test]
fn a_no_op_update_is_caught_by_the_counters_and_a_truncate_by_the_file_node() {
    let Some(db) = TestDb::new() else { return };
    rt().block_on(async {
        let ours = open(&db.url).await;
        exec(&ours, "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1), (2, 2); CREATE TABLE big (a int); INSERT INTO big VALUES (1)").await;
        guard::flush_own(&ours.client).await;
        // hash_max_bytes = 0: no table is hashed, as for a large table.
        let s = read(&ours, &["public.t", "public.big"], 0).await;
        assert!(s.tables.iter().all(|c| c.hash.is_none() && c.rows.is_none()));
        let with_hash = read(&ours, &["public.t"], LIMIT).await;
        let other = open(&db.url).await;
        exec(&other, "UPDATE t SET v = v WHERE id = 1; TRUNCATE big").await;
        drop(other);
        guard::settle(&ours.client).await;
        let s3 = read(&ours, &["public.t", "public.big"], 0).await;
        let t3 = read(&ours, &["public.t"], LIMIT).await;
        let found = guard::others(&s, &s, &s, &s3);
        let t = find(&found, "public.t");
        assert_eq!((t.updated, t.content_changed), (1, false), "{found:?}");
        let big = find(&found, "public.big");
        assert_eq!((big.inserted, big.deleted), (0, 0), "TRUNCATE moves no counter");
        assert!(big.rewritten, "{found:?}");
        // The same contents hash the same: the update is found by its counter alone.
        assert_eq!(with_hash.tables[0].hash, t3.tables[0].hash);
        // Missing tables are skipped; a table stays matched by oid across a rename.
        exec(&ours, "ALTER TABLE t RENAME TO t2").await;
        let renamed = read(&ours, &["public.t", "public.t2", "public.nope", "nodot"], 0).await;
        assert_eq!(renamed.tables.len(), 1);
        assert_eq!(renamed.tables[0].oid, s.tables[0].oid);
        assert_eq!(renamed.tables[0].table, "public.t2");
    });
}

#[test]
fn a_partitioned_table_counts_its_partitions() {
    let Some(db) = TestDb::new() else { return };
    rt().block_on(async {
        let ours = open(&db.url).await;
        exec(
            &ours,
            "CREATE TABLE p (id int, k int) PARTITION BY RANGE (k); \
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10); \
             CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20)",
        )
        .await;
        let s0 = read(&ours, &["public.p"], LIMIT).await;
        let other = open(&db.url).await;
        exec(&other, "INSERT INTO p VALUES (1, 1), (2, 15), (3, 16)").await;
        drop(other);
        guard::settle(&ours.client).await;
        let s1 = read(&ours, &["public.p"], LIMIT).await;
        assert_eq!(s1.tables[0].rows, Some(3));
        assert_eq!(s1.tables[0].filenodes.len(), 2);
        let found = guard::others(&s0, &s1, &s1, &s1);
        assert_eq!(found[0].inserted, 3, "{found:?}");
        assert!(found[0].content_changed);
    });
}

#[test]
fn reading_fifty_tables_is_fast() {
    let Some(db) = TestDb::new() else { return };
    let ddl: String = (0..50)
        .map(|i| format!("CREATE TABLE t{i} (id int PRIMARY KEY, v text); INSERT INTO t{i} SELECT g, md5(g::text) FROM generate_series(1, 1000) g;"))
        .collect();
    db.query(&ddl);
    let names: Vec<String> = (0..50).map(|i| format!("public.t{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    rt().block_on(async {
        let ours = open(&db.url).await;
        read(&ours, &names, 0).await;
        let start = Instant::now();
        let counters = read(&ours, &names, 0).await;
        let bare = start.elapsed();
        let start = Instant::now();
        let hashed = read(&ours, &names, LIMIT).await;
        let with_hash = start.elapsed();
        eprintln!(
            "read of 50 tables: {bare:?} counters only, {with_hash:?} with row count and hash (1,000 rows each)"
        );
        assert_eq!(counters.tables.len(), 50);
        assert!(hashed.tables.iter().all(|c| c.rows == Some(1000)));
        assert!(bare < Duration::from_millis(500), "{bare:?}");
        assert!(with_hash < Duration::from_secs(5), "{with_hash:?}");
    });
}

#[test]
fn settle_waits_only_the_minimum_when_no_other_session_is_idle() {
    let Some(db) = TestDb::new() else { return };
    rt().block_on(async {
        let ours = open(&db.url).await;
        let waited = guard::settle(&ours.client).await;
        eprintln!("settle waited {waited:?} with no other session");
        assert!(waited >= Duration::from_millis(1100), "{waited:?}");
        assert!(waited < Duration::from_millis(2500), "{waited:?}");
        // Our own writes are counted once flush_own has run: no wait needed.
        exec(&ours, "CREATE TABLE t (a int); INSERT INTO t VALUES (1)").await;
        exec(&ours, "INSERT INTO t VALUES (2)").await;
        guard::flush_own(&ours.client).await;
        let s = read(&ours, &["public.t"], 0).await;
        assert_eq!(s.tables[0].inserted, 2, "{s:?}");
    });
}
