//! Everything the engine does to leave nothing behind, beside what creates it: who owns a
//! run's objects, the sweep of objects whose owning session is gone, the scratch database's
//! creation and removal, Ctrl-C, and ending the host's transaction.

use std::time::Duration;

use super::sql;
use crate::db::{Conn, DbError, describe, quote_ident, quote_literal};

/// How long cleanup statements may take before the connection is simply dropped.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The session owning what a run creates, as recorded in comments (see [`sql::LEFTOVERS`]).
pub(super) async fn owner_note(conn: &Conn) -> Result<String, DbError> {
    let row = conn
        .client
        .query_one(&format!("SELECT {}", sql::OWNER_START), &[])
        .await
        .map_err(|e| DbError::query("fdw engine: reading the session's start", &e))?;
    let start: Option<i64> = row.get(0);
    Ok(format!(
        "pgship compare (fdw engine) working objects, owner pid={} start={}",
        conn.pid,
        start.unwrap_or(0)
    ))
}

/// Run `work` unless Ctrl-C comes first (then `true`, and `work` is dropped where it stood);
/// the caller cleans up either way.
pub(super) async fn interruptible<T>(
    work: impl std::future::Future<Output = Result<T, DbError>>,
) -> (Result<T, DbError>, bool) {
    tokio::select! {
        r = work => (r, false),
        _ = tokio::signal::ctrl_c() => (Err(DbError::Other(
            "interrupted (Ctrl-C): the fdw engine's transaction was rolled back and its objects removed"
                .into(),
        )), true),
    }
}

/// Remove the objects of earlier runs whose session is gone; report them.
pub(super) async fn sweep(owner: &Conn) -> Result<Vec<String>, DbError> {
    let rows = owner
        .client
        .query(sql::LEFTOVERS, &[])
        .await
        .map_err(|e| DbError::query("fdw engine: looking for leftovers of earlier runs", &e))?;
    let mut removed = Vec::new();
    for r in rows {
        let kind: String = r.get(0);
        let name: String = r.get(1);
        let stmt = match kind.as_str() {
            "server" => format!("DROP SERVER IF EXISTS {} CASCADE", quote_ident(&name)),
            "schema" => format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&name)),
            _ => format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&name)
            ),
        };
        owner.client.batch_execute(&stmt).await.map_err(|e| {
            DbError::query(format!("fdw engine: removing leftover {kind} {name}"), &e)
        })?;
        removed.push(format!("{kind} {name}"));
    }
    Ok(removed)
}

pub(super) async fn create_scratch(owner: &Conn, name: &str, note: &str) -> Result<(), DbError> {
    let db = quote_ident(name);
    owner
        .client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .map_err(|e| {
            let message = describe(&e);
            DbError::Other(if e.code().is_some_and(|c| c.code() == "42501") {
                format!(
                    "fdw engine: creating the scratch database: {message}\n  hint: --fdw-in \
                     scratch needs CREATEDB on the source's server; or use --fdw-in source"
                )
            } else {
                format!("fdw engine: creating the scratch database: {message}")
            })
        })?;
    owner
        .client
        .batch_execute(&format!(
            "COMMENT ON DATABASE {db} IS {}",
            quote_literal(note)
        ))
        .await
        .map_err(|e| DbError::query("fdw engine: recording the scratch database's owner", &e))
}

pub(super) async fn drop_scratch(owner: &Conn, name: &str) {
    let stmt = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    let _ = tokio::time::timeout(CLEANUP_TIMEOUT, owner.client.batch_execute(&stmt)).await;
}

/// End the host's transaction: cancel the statement an interruption left running, roll back,
/// close postgres_fdw's connections. Bounded: past [`CLEANUP_TIMEOUT`] the connection is left to
/// be dropped, which ends the session and its transaction.
pub(super) async fn finish_host(host: &Conn, interrupted: bool) {
    if interrupted {
        host.cancel_running().await;
    }
    let _ = tokio::time::timeout(CLEANUP_TIMEOUT, host.client.batch_execute("ROLLBACK")).await;
    // The extension (when it was installed before) survives the rollback: close its cached
    // connections now rather than when the session ends.
    let _ = tokio::time::timeout(
        CLEANUP_TIMEOUT,
        host.client.batch_execute(
            "DO $$ DECLARE f text; BEGIN \
               SELECT format('%I.%I', n.nspname, p.proname) INTO f FROM pg_catalog.pg_proc p \
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
               WHERE p.proname = 'postgres_fdw_disconnect_all' LIMIT 1; \
               IF f IS NOT NULL THEN EXECUTE 'SELECT ' || f || '()'; END IF; END $$",
        ),
    )
    .await;
}
