//! pgship's history across a restore of the whole database (a Neon branch restore): the
//! `pgship` schema is never rolled back, so its rows in `pgship.deployments` and
//! `pgship.deployment_logs` are read before the restore and written back after it. The
//! migration state (`pgship.applied_migrations`, drizzle's table) is not kept: it must go back
//! with the schema it describes.

use tokio_postgres::Client;

use super::DbError;

/// The history rows, as JSON arrays of whole rows.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    deployments: serde_json::Value,
    logs: serde_json::Value,
}

/// Read every run and the log lines written since `since` (older lines are in the restored
/// copy already).
pub async fn keep(client: &Client, since: jiff::Timestamp) -> Result<Kept, DbError> {
    let ctx = "reading pgship's history before the restore";
    if !super::history::has_history(client).await? {
        return Ok(Kept::default());
    }
    let row = client
        .query_one(
            "SELECT (SELECT coalesce(jsonb_agg(to_jsonb(d)), '[]') FROM pgship.deployments d), \
                    (SELECT coalesce(jsonb_agg(to_jsonb(l)), '[]') FROM pgship.deployment_logs l \
                     WHERE l.\"timestamp\" >= $1)",
            &[&since],
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    Ok(Kept {
        deployments: row.get(0),
        logs: row.get(1),
    })
}

/// Write the kept rows back after the restore: runs as they were before it (the restore's
/// older copies replaced), log lines the restore removed, and the log id sequence past them.
pub async fn put_back(client: &Client, kept: &Kept) -> Result<(), DbError> {
    let ctx = "writing pgship's history back after the restore";
    if kept.deployments.as_array().is_none_or(Vec::is_empty) {
        return Ok(());
    }
    super::state::bootstrap(client).await?;
    client
        .execute(
            "INSERT INTO pgship.deployments \
             SELECT * FROM jsonb_populate_recordset(NULL::pgship.deployments, $1) \
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at, \
               migrations_applied = EXCLUDED.migrations_applied, error = EXCLUDED.error, \
               duration_ms = EXCLUDED.duration_ms, rollback_state = EXCLUDED.rollback_state",
            &[&kept.deployments],
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    client
        .execute(
            "INSERT INTO pgship.deployment_logs \
             SELECT * FROM jsonb_populate_recordset(NULL::pgship.deployment_logs, $1) \
             ON CONFLICT (id) DO NOTHING",
            &[&kept.logs],
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    client
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('pgship.deployment_logs', 'id'), \
                    greatest((SELECT max(id) FROM pgship.deployment_logs), 1))",
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    Ok(())
}
