//! The migration lock: a session advisory lock on the connection that applies, taken before
//! state is read, waited for a bounded time, and reported by holder when it cannot be had.
//!
//! Session locks survive transaction rollbacks and die with the session; with
//! `client_connection_check_interval` set on pgship's sessions, the server ends a dead
//! pgship's session (and frees the lock) within about a second.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::DbError;

/// The key of the lock that serialises pgship runs on one database.
pub const MIGRATE_LOCK_KEY: i64 = 0x7067_7368_6970_6d31; // "pgshipm1"

/// Who holds the lock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockHolder {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: Option<String>,
    /// When the holder's session started (RFC 3339).
    pub since: Option<String>,
    pub state: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.application_name.is_empty() {
            write!(f, " ({})", self.application_name)?;
        }
        write!(
            f,
            " from {}",
            self.client_addr.as_deref().unwrap_or("a local socket")
        )?;
        if let Some(since) = &self.since {
            write!(f, ", connected since {since}")?;
        }
        if let Some(state) = &self.state {
            write!(f, ", {state}")?;
        }
        Ok(())
    }
}

/// Try to take the lock, polling until `wait` has passed. `on_wait` is told about the holder
/// once, when pgship first has to wait.
pub async fn acquire(
    client: &Client,
    key: i64,
    wait: Duration,
    mut on_wait: impl FnMut(Option<&LockHolder>),
) -> Result<(), DbError> {
    let started = Instant::now();
    let mut told = false;
    loop {
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| DbError::query("taking the migration lock", &e))?;
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        if !told {
            let h = holder(client, key).await?;
            on_wait(h.as_ref());
            told = true;
        }
        if started.elapsed() >= wait {
            let h = holder(client, key).await?;
            let who = h.map_or_else(|| "another session".to_string(), |h| h.to_string());
            return Err(DbError::Other(format!(
                "the migration lock is held by {who}; gave up after {}",
                crate::util::format_duration(wait)
            )));
        }
        let left = wait.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(200))).await;
    }
}

/// Release the lock. Returns whether it was held.
pub async fn release(client: &Client, key: i64) -> Result<bool, DbError> {
    let row = client
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .map_err(|e| DbError::query("releasing the migration lock", &e))?;
    Ok(row.get(0))
}

/// The session holding the lock in this database, if any.
pub async fn holder(client: &Client, key: i64) -> Result<Option<LockHolder>, DbError> {
    let (classid, objid) = split_key(key);
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr), \
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), a.state \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 \
               AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             LIMIT 1",
            &[&classid, &objid],
        )
        .await
        .map_err(|e| DbError::query("looking up the migration lock holder", &e))?;
    Ok(row.map(|r| LockHolder {
        pid: r.get(0),
        application_name: r.get(1),
        client_addr: r.get(2),
        since: r.get(3),
        state: r.get(4),
    }))
}

/// How PostgreSQL stores a bigint advisory key in `pg_locks`: high half in `classid`, low half
/// in `objid`.
fn split_key(key: i64) -> (u32, u32) {
    let k = key as u64;
    ((k >> 32) as u32, (k & 0xffff_ffff) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_halves() {
        assert_eq!(split_key(0x0000_0001_0000_0002), (1, 2));
        assert_eq!(split_key(-1), (u32::MAX, u32::MAX));
    }
}
