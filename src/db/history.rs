//! Reading pgship's own history on a target: the runs in `pgship.deployments` and their lines
//! in `pgship.deployment_logs`, for `history`, `logs` and `rollback <id>`.
//!
//! Read-only, and it never creates anything: a target without the `pgship` schema has no
//! history (`None`), and columns added by a newer pgship are read through `to_jsonb` so a
//! schema bootstrapped by an older one reads too (missing columns read as absent).

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::DbError;

/// One run, as recorded in `pgship.deployments`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentRow {
    pub id: String,
    pub kind: String,
    pub environment: String,
    /// The target's redacted URL.
    pub target: String,
    pub status: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: Option<jiff::Timestamp>,
    /// Recorded duration; else finished minus started (none for a run still running or
    /// interrupted: its end is unknown).
    pub duration_ms: Option<i64>,
    pub migrations_applied: i32,
    /// The run's migrations as recorded (`record_deployment_details`), else those it
    /// applied according to `pgship.applied_migrations`.
    pub migrations: Vec<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    /// The phase the run was in last (`set_phase`).
    pub phase: Option<String>,
    pub error: Option<String>,
    pub rollback_state: Option<serde_json::Value>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    /// The row's id: `logs --follow` asks for lines after the last one it printed.
    pub id: i64,
    pub deployment_id: String,
    pub timestamp: jiff::Timestamp,
    pub phase: String,
    pub level: String,
    pub message: String,
    pub metadata: serde_json::Value,
    pub duration: Option<i32>,
    pub stack_trace: Option<String>,
}

/// Which lines of a run to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery<'a> {
    pub deployment_id: &'a str,
    /// Only this phase (compared case-insensitively).
    pub phase: Option<&'a str>,
    /// Only these levels (as stored, e.g. `["WARN", "ERROR"]`); `None` for all.
    pub levels: Option<Vec<&'a str>>,
    /// Only lines with an id above this one (0 for all).
    pub after_id: i64,
}

/// Whether the target has pgship's history tables.
pub async fn has_history(client: &Client) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT to_regclass('pgship.deployments') IS NOT NULL \
               AND to_regclass('pgship.deployment_logs') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| DbError::query("looking for pgship's history tables", &e))?
        .get(0))
}

const DEPLOYMENT_COLUMNS: &str = "d.id, d.kind, d.environment, d.target, d.status, d.started_at, \
     d.finished_at, d.migrations_applied, d.error, \
     COALESCE((to_jsonb(d) ->> 'duration_ms')::bigint, \
              CASE WHEN d.status NOT IN ('running', 'interrupted') \
                   THEN (extract(epoch FROM d.finished_at - d.started_at) * 1000)::bigint END), \
     CASE WHEN jsonb_typeof(to_jsonb(d) -> 'migrations') = 'array' \
          THEN ARRAY(SELECT jsonb_array_elements_text(to_jsonb(d) -> 'migrations')) \
          ELSE ARRAY(SELECT a.name FROM pgship.applied_migrations a \
                     WHERE a.deployment_id = d.id ORDER BY a.id) END, \
     to_jsonb(d) ->> 'git_commit', to_jsonb(d) ->> 'git_branch', to_jsonb(d) ->> 'phase', \
     to_jsonb(d) -> 'rollback_state'";

fn deployment_row(r: &tokio_postgres::Row) -> DeploymentRow {
    let rollback_state: Option<serde_json::Value> = r.get(14);
    DeploymentRow {
        id: r.get(0),
        kind: r.get(1),
        environment: r.get(2),
        target: r.get(3),
        status: r.get(4),
        started_at: r.get(5),
        finished_at: r.get(6),
        migrations_applied: r.get(7),
        error: r.get(8),
        duration_ms: r.get(9),
        migrations: r.get(10),
        git_commit: r.get(11),
        git_branch: r.get(12),
        phase: r.get(13),
        rollback_state: rollback_state.filter(|v| !v.is_null()),
    }
}

/// The target's runs, newest first, at most `limit`. `None` when the target has no pgship
/// schema (nothing was ever deployed there by pgship).
pub async fn deployments(
    client: &Client,
    limit: i64,
) -> Result<Option<Vec<DeploymentRow>>, DbError> {
    if !has_history(client).await? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM pgship.deployments d \
         ORDER BY d.started_at DESC, d.id DESC LIMIT $1"
    );
    let rows = client
        .query(&sql, &[&limit.max(0)])
        .await
        .map_err(|e| DbError::query("reading pgship.deployments", &e))?;
    Ok(Some(rows.iter().map(deployment_row).collect()))
}

/// The environment's newest deployment that succeeded; `None` when there is none (or no pgship
/// schema).
pub async fn last_succeeded(
    client: &Client,
    environment: &str,
) -> Result<Option<DeploymentRow>, DbError> {
    if !has_history(client).await? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM pgship.deployments d \
         WHERE d.environment = $1 AND d.kind = 'deploy' AND d.status = 'succeeded' \
         ORDER BY d.started_at DESC, d.id DESC LIMIT 1"
    );
    let row = client
        .query_opt(&sql, &[&environment])
        .await
        .map_err(|e| DbError::query("reading pgship.deployments", &e))?;
    Ok(row.as_ref().map(deployment_row))
}

/// One run by id; `None` when it is not recorded (or there is no pgship schema).
pub async fn deployment(client: &Client, id: &str) -> Result<Option<DeploymentRow>, DbError> {
    if !has_history(client).await? {
        return Ok(None);
    }
    let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM pgship.deployments d WHERE d.id = $1");
    let row = client
        .query_opt(&sql, &[&id])
        .await
        .map_err(|e| DbError::query(format!("reading run {id} in pgship.deployments"), &e))?;
    Ok(row.as_ref().map(deployment_row))
}

/// A run's log lines in the order they were written, filtered by `q`. Empty when the target
/// has no pgship schema.
pub async fn logs(client: &Client, q: &LogQuery<'_>) -> Result<Vec<StoredLog>, DbError> {
    if !has_history(client).await? {
        return Ok(Vec::new());
    }
    let phase = q.phase.map(str::to_ascii_uppercase);
    let rows = client
        .query(
            "SELECT l.id, l.deployment_id, l.\"timestamp\", l.phase, l.level, l.message, \
                    COALESCE(l.metadata, '{}'::jsonb), (to_jsonb(l) ->> 'duration')::int, \
                    to_jsonb(l) ->> 'stack_trace' \
             FROM pgship.deployment_logs l \
             WHERE l.deployment_id = $1 AND l.id > $2 \
               AND ($3::text IS NULL OR upper(l.phase) = $3) \
               AND ($4::text[] IS NULL OR upper(l.level) = ANY($4)) \
             ORDER BY l.id",
            &[&q.deployment_id, &q.after_id, &phase, &q.levels],
        )
        .await
        .map_err(|e| {
            DbError::query(
                format!(
                    "reading the log of {} in pgship.deployment_logs",
                    q.deployment_id
                ),
                &e,
            )
        })?;
    Ok(rows
        .iter()
        .map(|r| StoredLog {
            id: r.get(0),
            deployment_id: r.get(1),
            timestamp: r.get(2),
            phase: r.get(3),
            level: r.get(4),
            message: r.get(5),
            metadata: r.get(6),
            duration: r.get(7),
            stack_trace: r.get(8),
        })
        .collect())
}
