//! The deployment's use of the data-loss guard (`rollback::guard`): which tables it watches
//! and when it reads them.
//!
//! ```text
//! S0 before the backup's dumps      every user table, counters only (cheap at any size)
//! S1 right before the apply         the tables the rollback would replace (prepare's scope),
//!                                   counters, row count and content hash where small
//! S2 right after the apply          those tables (by oid: a rename keeps them) and the tables
//!                                   the deploy created, after flushing our own counters
//! S3 at rollback time               the S2 tables, after waiting out other sessions' flush
//! ```
//! Others' writes are (S1 - S0) + (S3 - S2), restricted to the watched tables (by oid).
//! Known windows (see `rollback::guard`): writes by others during the apply count as ours, and
//! on a table too big to hash a write that reached the counters only after S1 counts as ours.

use std::time::Duration;

use tokio_postgres::Client;

use super::GUARD_HASH_MAX_BYTES;
use super::state_file::Guard;
use crate::db::DbError;
use crate::db::tables::user_tables;
use crate::rollback::guard::{self, Snapshot, Written};

/// S0: the write counters of every user table.
pub async fn before_backup(client: &Client) -> Result<Snapshot, DbError> {
    let names: Vec<String> = user_tables(client)
        .await?
        .into_iter()
        .map(|t| t.1)
        .collect();
    guard::read(client, &names, 0).await
}

/// The oids of the tables the rollback would replace (`scope`, by their names before the
/// migrations), as S0 found them.
pub fn watched(s0: &Snapshot, scope: &[String]) -> Vec<u32> {
    s0.tables
        .iter()
        .filter(|c| scope.contains(&c.table))
        .map(|c| c.oid)
        .collect()
}

/// S1: the watched tables, with content hashes where small.
pub async fn before_apply(
    client: &Client,
    s0: &Snapshot,
    watched: &[u32],
) -> Result<Snapshot, DbError> {
    let names: Vec<String> = s0
        .tables
        .iter()
        .filter(|c| watched.contains(&c.oid))
        .map(|c| c.table.clone())
        .collect();
    guard::read(client, &names, GUARD_HASH_MAX_BYTES).await
}

/// S2: after our own counters are flushed, the watched tables under their names now, and the
/// tables the deployment created (absent from S0).
pub async fn after_apply(
    client: &Client,
    s0: &Snapshot,
    watched: &[u32],
) -> Result<Snapshot, DbError> {
    guard::flush_own(client).await;
    let names: Vec<String> = user_tables(client)
        .await?
        .into_iter()
        .filter(|(oid, _)| watched.contains(oid) || !s0.tables.iter().any(|c| c.oid == *oid))
        .map(|t| t.1)
        .collect();
    guard::read(client, &names, GUARD_HASH_MAX_BYTES).await
}

/// S3 and the verdict: other sessions' writes since the backup to the watched and created
/// tables, and how long the statistics took to settle.
pub async fn at_rollback(client: &Client, g: &Guard) -> Result<(Vec<Written>, Duration), DbError> {
    let Some(s0) = &g.before_backup else {
        return Ok((Vec::new(), Duration::ZERO));
    };
    // A run killed during its apply recorded no S1: every write to the watched tables since
    // S0 counts (the deploy's own included), so the guard errs towards a person, never
    // towards a silent restore.
    let s1 = g.before_apply.clone().unwrap_or_else(|| Snapshot {
        taken_at: s0.taken_at,
        tables: s0
            .tables
            .iter()
            .filter(|c| g.watched.contains(&c.oid))
            .cloned()
            .collect(),
    });
    let s1 = &s1;
    let s2 = g.after_apply.clone().unwrap_or_else(|| s1.clone());
    let waited = guard::settle(client).await;
    let names: Vec<String> = s2.tables.iter().map(|c| c.table.clone()).collect();
    let s3 = guard::read(client, &names, GUARD_HASH_MAX_BYTES).await?;
    // Watched tables the migrations dropped are not in S2: their writes before the apply count.
    let keep: Vec<u32> = s2
        .tables
        .iter()
        .map(|c| c.oid)
        .chain(g.watched.iter().copied())
        .collect();
    let only = |s: &Snapshot| Snapshot {
        taken_at: s.taken_at,
        tables: s
            .tables
            .iter()
            .filter(|c| keep.contains(&c.oid))
            .cloned()
            .collect(),
    };
    let found = guard::others(&only(s0), &only(s1), &s2, &s3);
    Ok((found, waited))
}
