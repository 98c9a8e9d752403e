//! Migration state: drizzle's own table, written exactly as drizzle-orm writes it, and
//! pgship's schema `pgship` (`applied_migrations`, `deployments`, `deployment_logs`).
//!
//! Creating the `pgship` schema is idempotent and race-free: it runs under a transaction-level
//! advisory lock, so two pgship processes bootstrapping one database at once both succeed.
//! Reading state never creates anything.

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::plan::{AppliedRecord, PartialRecord};
use super::{DbError, quote_ident};
use crate::source::{DrizzleTable, SourceKind};

const BOOTSTRAP_LOCK_KEY: i64 = 0x7067_7368_6970_6273; // "pgshipbs"

const PGSHIP_DDL: &str = r#"
CREATE SCHEMA IF NOT EXISTS pgship;
CREATE TABLE IF NOT EXISTS pgship.deployments (
    id text PRIMARY KEY,
    kind text NOT NULL,
    environment text NOT NULL,
    target text NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    applied_by text NOT NULL DEFAULT current_user,
    migrations_applied integer NOT NULL DEFAULT 0,
    error text
);
-- Who runs it: the process (pid, host) and its database session (backend pid and start), so
-- a run whose session is gone while its row still says `running` is found and reported.
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS pid integer;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS host text;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS backend_pid integer;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS backend_start timestamptz;
-- What `history` shows and what `rollback <id>` needs when the local artifacts are gone.
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS duration_ms bigint;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS migrations text[];
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS git_commit text;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS git_branch text;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS phase text;
ALTER TABLE pgship.deployments ADD COLUMN IF NOT EXISTS rollback_state jsonb;
CREATE TABLE IF NOT EXISTS pgship.applied_migrations (
    id bigserial PRIMARY KEY,
    source_kind text NOT NULL,
    version text NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    status text NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'partial')),
    statements_done integer NOT NULL,
    statement_count integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms bigint NOT NULL,
    deployment_id text,
    applied_by text NOT NULL DEFAULT current_user,
    UNIQUE (source_kind, version)
);
-- sha256 of the file through its last committed statement: a partial migration whose
-- committed part is unchanged may be continued after its remaining statements were fixed.
ALTER TABLE pgship.applied_migrations ADD COLUMN IF NOT EXISTS done_hash text;
-- The statement a run is executing outside a transaction (committed before it starts, cleared
-- with its result): after a crash the next run checks the catalog for what it did.
ALTER TABLE pgship.applied_migrations ADD COLUMN IF NOT EXISTS running_statement integer;
CREATE INDEX IF NOT EXISTS applied_migrations_deployment_id_idx
    ON pgship.applied_migrations (deployment_id);
CREATE TABLE IF NOT EXISTS pgship.deployment_logs (
    id bigserial PRIMARY KEY,
    deployment_id text NOT NULL,
    "timestamp" timestamptz NOT NULL,
    phase text NOT NULL,
    level text NOT NULL,
    message text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- The seed's log table: a phase's duration in milliseconds, an ERROR line's error chain.
ALTER TABLE pgship.deployment_logs ADD COLUMN IF NOT EXISTS duration integer;
ALTER TABLE pgship.deployment_logs ADD COLUMN IF NOT EXISTS stack_trace text;
CREATE INDEX IF NOT EXISTS deployment_logs_timestamp_idx ON pgship.deployment_logs ("timestamp");
CREATE INDEX IF NOT EXISTS deployment_logs_deployment_id_timestamp_idx
    ON pgship.deployment_logs (deployment_id, "timestamp");
"#;

/// Where a source's state lives.
#[derive(Debug, Clone)]
pub struct StateTable {
    pub kind: SourceKind,
    /// Drizzle's table, for Drizzle sources.
    pub drizzle: Option<DrizzleTable>,
}

impl StateTable {
    pub fn for_source(kind: SourceKind, drizzle: &DrizzleTable) -> StateTable {
        StateTable {
            kind,
            drizzle: kind.is_drizzle().then(|| drizzle.clone()),
        }
    }

    /// `"drizzle"."__drizzle_migrations"`.
    pub fn drizzle_qualified(&self) -> Option<String> {
        self.drizzle
            .as_ref()
            .map(|d| format!("{}.{}", quote_ident(&d.schema), quote_ident(&d.table)))
    }

    /// The DDL drizzle-orm runs before migrating, the same in effect: drizzle-kit 0.x's
    /// three columns, or v1's five (`name` keys the rows there).
    pub fn drizzle_ddl(&self) -> Option<String> {
        let d = self.drizzle.as_ref()?;
        let v1 = if self.kind == SourceKind::DrizzleV1 {
            ",\n\tname text,\n\tapplied_at timestamp with time zone DEFAULT now()"
        } else {
            ""
        };
        Some(format!(
            "CREATE SCHEMA IF NOT EXISTS {};\nCREATE TABLE IF NOT EXISTS {}.{} (\n\tid SERIAL PRIMARY KEY,\n\thash text NOT NULL,\n\tcreated_at bigint{v1}\n)",
            quote_ident(&d.schema),
            quote_ident(&d.schema),
            quote_ident(&d.table)
        ))
    }

    /// How state rows are matched to migrations.
    pub fn matching(&self) -> super::plan::Matching {
        if self.kind == SourceKind::DrizzleV1 {
            super::plan::Matching::Name
        } else {
            super::plan::Matching::Version
        }
    }
}

/// What the database says about a source.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub records: Vec<AppliedRecord>,
    pub partials: Vec<PartialRecord>,
    /// Whether pgship's schema exists.
    pub pgship_schema: bool,
}

/// Create pgship's schema if needed. Safe to run from many processes at once.
pub async fn bootstrap(client: &Client) -> Result<(), DbError> {
    // The newest columns stand for the whole DDL: a schema bootstrapped by an older pgship
    // lacks them and gets them (every statement is idempotent).
    let exists: bool = client
        .query_one(
            "SELECT count(*) = 2 FROM pg_attribute \
             WHERE (attrelid, attname) IN ((to_regclass('pgship.deployment_logs'), 'stack_trace'), \
                                           (to_regclass('pgship.deployments'), 'rollback_state')) \
               AND NOT attisdropped",
            &[],
        )
        .await
        .map_err(|e| DbError::query("checking pgship's schema", &e))?
        .get(0);
    if exists {
        return Ok(());
    }
    let sql = format!(
        "BEGIN;\nSELECT pg_advisory_xact_lock({BOOTSTRAP_LOCK_KEY});\n{PGSHIP_DDL}\nCOMMIT;"
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(DbError::query("creating pgship's schema", &e));
    }
    Ok(())
}

async fn relation_exists(client: &Client, qualified: &str) -> Result<bool, DbError> {
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
        .await
        .map_err(|e| DbError::query(format!("looking up {qualified}"), &e))?
        .get(0))
}

/// Read the state of `table` (never creates anything).
pub async fn read(client: &Client, table: &StateTable) -> Result<State, DbError> {
    let pgship_schema = relation_exists(client, "pgship.applied_migrations").await?;
    let mut state = State {
        pgship_schema,
        ..State::default()
    };
    if let Some(q) = table.drizzle_qualified() {
        if relation_exists(client, &q).await? {
            let has_name: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
                     AND attname = 'name' AND NOT attisdropped)",
                    &[&q],
                )
                .await
                .map_err(|e| DbError::query(format!("reading {q}"), &e))?
                .get(0);
            let name_col = if has_name { "name" } else { "NULL::text" };
            let rows = client
                .query(
                    &format!("SELECT hash, created_at, {name_col} FROM {q} ORDER BY id"),
                    &[],
                )
                .await
                .map_err(|e| DbError::Query {
                    context: format!("reading drizzle's state table {q}"),
                    message: format!(
                        "{} (pgship expects drizzle's columns id, hash, created_at)",
                        super::describe(&e)
                    ),
                })?;
            for r in rows {
                let created_at: Option<i64> = r.get(1);
                state.records.push(AppliedRecord {
                    version: created_at.map_or_else(String::new, |c| c.to_string()),
                    hash: r.get(0),
                    created_at,
                    name: r.get(2),
                });
            }
        }
    }
    if pgship_schema {
        let rows = client
            .query(
                // `done_hash` through to_jsonb: a schema bootstrapped by an older pgship lacks
                // the column, and reading never changes the schema.
                "SELECT version, name, checksum, status, statements_done, to_jsonb(a) ->> 'done_hash', \
                 (to_jsonb(a) ->> 'running_statement')::int \
                 FROM pgship.applied_migrations a WHERE source_kind = $1 ORDER BY id",
                &[&table.kind.as_str()],
            )
            .await
            .map_err(|e| DbError::query("reading pgship.applied_migrations", &e))?;
        for r in rows {
            let status: String = r.get(3);
            let version: String = r.get(0);
            if status == "partial" {
                let done: i32 = r.get(4);
                state.partials.push(PartialRecord {
                    version,
                    checksum: r.get(2),
                    statements_done: usize::try_from(done).unwrap_or(0),
                    done_hash: r.get(5),
                    running: r
                        .get::<_, Option<i32>>(6)
                        .and_then(|n| usize::try_from(n).ok()),
                });
            } else if !table.kind.is_drizzle() {
                state.records.push(AppliedRecord {
                    version,
                    hash: r.get(2),
                    created_at: None,
                    name: r.get(1),
                });
            } else if let Some(rec) = state
                .records
                .iter_mut()
                .find(|x| x.version == version && x.name.is_none())
            {
                rec.name = r.get(1);
            }
        }
    }
    Ok(state)
}

/// One migration's record, as the engine writes it.
#[derive(Debug, Clone)]
pub struct RecordRow<'a> {
    pub version: &'a str,
    pub name: &'a str,
    pub checksum: &'a str,
    /// Drizzle's `created_at` (the journal's `when`).
    pub created_at: Option<i64>,
    pub complete: bool,
    pub statements_done: usize,
    pub statement_count: usize,
    pub duration_ms: i64,
    pub deployment_id: &'a str,
    /// sha256 of the file through statement `statements_done` (see the `done_hash` column).
    pub done_hash: &'a str,
    /// The statement (0-based) about to run outside a transaction, for an intent record.
    pub running: Option<usize>,
}

/// Write a migration's state inside the caller's transaction: drizzle's row (when complete)
/// and pgship's row (upserted from `partial` to `applied`).
pub async fn write_record(
    client: &Client,
    table: &StateTable,
    row: &RecordRow<'_>,
) -> Result<(), tokio_postgres::Error> {
    // Both rows in one pipeline: drizzle's insert first, so its error is the one reported.
    let drizzle = async {
        if row.complete {
            write_drizzle_row(client, table, row).await?;
        }
        Ok(())
    };
    futures_util::future::try_join(drizzle, write_pgship_row(client, table, row)).await?;
    Ok(())
}

/// Drizzle's own row for a completed migration, as drizzle-orm writes it.
async fn write_drizzle_row(
    client: &Client,
    table: &StateTable,
    row: &RecordRow<'_>,
) -> Result<(), tokio_postgres::Error> {
    let Some(q) = table.drizzle_qualified() else {
        return Ok(());
    };
    if table.kind == SourceKind::DrizzleV1 {
        let sql = format!(r#"INSERT INTO {q} ("hash", "created_at", "name") VALUES ($1, $2, $3)"#);
        client
            .execute(&sql, &[&row.checksum, &row.created_at, &row.name])
            .await?;
    } else {
        let sql = format!(r#"INSERT INTO {q} ("hash", "created_at") VALUES ($1, $2)"#);
        client
            .execute(&sql, &[&row.checksum, &row.created_at])
            .await?;
    }
    Ok(())
}

/// pgship's row, upserted from `partial` to `applied`.
async fn write_pgship_row(
    client: &Client,
    table: &StateTable,
    row: &RecordRow<'_>,
) -> Result<(), tokio_postgres::Error> {
    let status = if row.complete { "applied" } else { "partial" };
    let done = i32::try_from(row.statements_done).unwrap_or(i32::MAX);
    let count = i32::try_from(row.statement_count).unwrap_or(i32::MAX);
    let running = row.running.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let params: [&(dyn ToSql + Sync); 11] = [
        &table.kind.as_str(),
        &row.version,
        &row.name,
        &row.checksum,
        &status,
        &done,
        &count,
        &row.duration_ms,
        &row.deployment_id,
        &row.done_hash,
        &running,
    ];
    client
        .execute(
            "INSERT INTO pgship.applied_migrations \
               (source_kind, version, name, checksum, status, statements_done, statement_count, duration_ms, deployment_id, done_hash, running_statement) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (source_kind, version) DO UPDATE SET \
               name = EXCLUDED.name, checksum = EXCLUDED.checksum, status = EXCLUDED.status, \
               statements_done = EXCLUDED.statements_done, statement_count = EXCLUDED.statement_count, \
               done_hash = EXCLUDED.done_hash, running_statement = EXCLUDED.running_statement, \
               duration_ms = pgship.applied_migrations.duration_ms + EXCLUDED.duration_ms, \
               applied_at = now(), deployment_id = EXCLUDED.deployment_id, applied_by = current_user",
            &params,
        )
        .await?;
    Ok(())
}

/// Record the start of a run in `pgship.deployments`.
pub async fn start_deployment(
    client: &Client,
    id: &str,
    kind: &str,
    environment: &str,
    target: &str,
) -> Result<(), DbError> {
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let host = crate::util::hostname();
    client
        .execute(
            "INSERT INTO pgship.deployments (id, kind, environment, target, status, pid, host, backend_pid, backend_start) \
             SELECT $1, $2, $3, $4, 'running', $5, $6, pg_backend_pid(), \
                    (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())",
            &[&id, &kind, &environment, &target, &pid, &host],
        )
        .await
        .map_err(|e| DbError::query("recording the run in pgship.deployments", &e))?;
    Ok(())
}

/// Record the end of a run; its duration is `duration_ms` or, without it, the time since the
/// row was written.
pub async fn finish_deployment(
    client: &Client,
    id: &str,
    status: &str,
    applied: i32,
    error: Option<&str>,
    duration_ms: Option<i64>,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE pgship.deployments SET status = $2, finished_at = now(), migrations_applied = $3, error = $4, \
               duration_ms = coalesce($5, (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint) WHERE id = $1",
            &[&id, &status, &applied, &error, &duration_ms],
        )
        .await
        .map_err(|e| DbError::query("recording the run's result in pgship.deployments", &e))?;
    Ok(())
}

/// Record what a run deploys and from where: its pending migrations, and the git commit and
/// branch (null outside a git repository). `history` shows them; `rollback <id>` reads them
/// when the local artifacts are gone.
pub async fn record_deployment_details(
    client: &Client,
    id: &str,
    migrations: &[String],
    git_commit: Option<&str>,
    git_branch: Option<&str>,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE pgship.deployments SET migrations = $2, git_commit = $3, git_branch = $4 WHERE id = $1",
            &[&id, &migrations, &git_commit, &git_branch],
        )
        .await
        .map_err(|e| DbError::query(format!("recording run {id}'s migrations and git state in pgship.deployments"), &e))?;
    Ok(())
}

/// Record the phase a run has entered (`PREFLIGHT`, `BACKUP`, ...), so a run killed half-way
/// says where it stopped.
pub async fn set_phase(client: &Client, id: &str, phase: &str) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE pgship.deployments SET phase = $2 WHERE id = $1",
            &[&id, &phase],
        )
        .await
        .map_err(|e| {
            DbError::query(
                format!("recording run {id}'s phase {phase} in pgship.deployments"),
                &e,
            )
        })?;
    Ok(())
}

/// Keep a run's `rollback-state.json` document on the target, for `rollback <id>` from a
/// machine without the local artifacts. The document must hold no secret.
pub async fn set_rollback_state(
    client: &Client,
    id: &str,
    state: &serde_json::Value,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE pgship.deployments SET rollback_state = $2 WHERE id = $1",
            &[&id, &state],
        )
        .await
        .map_err(|e| {
            DbError::query(
                format!("recording run {id}'s rollback state in pgship.deployments"),
                &e,
            )
        })?;
    Ok(())
}

/// A deployment's recorded rollback state: `None` when there is no such deployment (or no
/// `pgship` schema), `Some(None)` when it recorded none.
pub async fn deployment_state(
    client: &Client,
    id: &str,
) -> Result<Option<Option<serde_json::Value>>, DbError> {
    let ctx = "reading the deployment from pgship.deployments";
    let exists: bool = client
        .query_one("SELECT to_regclass('pgship.deployments') IS NOT NULL", &[])
        .await
        .map_err(|e| DbError::query(ctx, &e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT rollback_state FROM pgship.deployments WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Deployments of the same environment that started after `id` and changed the target (they
/// were not aborted, rolled back or already undone), oldest first.
pub async fn later_deployments(client: &Client, id: &str) -> Result<Vec<String>, DbError> {
    let rows = client
        .query(
            "SELECT l.id FROM pgship.deployments d JOIN pgship.deployments l \
               ON l.environment = d.environment AND l.kind = 'deploy' AND l.started_at > d.started_at \
             WHERE d.id = $1 AND l.status NOT IN ('aborted', 'rolled-back', 'up-to-date') \
             ORDER BY l.started_at",
            &[&id],
        )
        .await
        .map_err(|e| DbError::query("looking for later deployments", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Set a deployment's status (a manual rollback marks the deployment it undid).
pub async fn set_status(client: &Client, id: &str, status: &str) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE pgship.deployments SET status = $2 WHERE id = $1",
            &[&id, &status],
        )
        .await
        .map_err(|e| DbError::query("recording the deployment's status", &e))?;
    Ok(())
}

/// One line of the deployment log, as stored in `pgship.deployment_logs`.
pub struct LogRow<'a> {
    pub deployment_id: &'a str,
    pub timestamp: jiff::Timestamp,
    pub phase: &'a str,
    pub level: &'a str,
    pub message: &'a str,
    pub metadata: &'a serde_json::Value,
    /// The seed's `duration` column: a phase's (or step's) duration in milliseconds.
    pub duration: Option<i32>,
    /// The seed's `stack_trace` column: an ERROR line's error chain, without secrets.
    pub stack_trace: Option<&'a str>,
}

/// Append log lines (outside any migration transaction, so failures are logged too), in one
/// round trip whatever their number: a run logs every statement.
pub async fn write_logs(client: &Client, rows: &[LogRow<'_>]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.deployment_id).collect();
    let times: Vec<jiff::Timestamp> = rows.iter().map(|r| r.timestamp).collect();
    let phases: Vec<&str> = rows.iter().map(|r| r.phase).collect();
    let levels: Vec<&str> = rows.iter().map(|r| r.level).collect();
    let messages: Vec<&str> = rows.iter().map(|r| r.message).collect();
    let metadata: Vec<&serde_json::Value> = rows.iter().map(|r| r.metadata).collect();
    let durations: Vec<Option<i32>> = rows.iter().map(|r| r.duration).collect();
    let traces: Vec<Option<&str>> = rows.iter().map(|r| r.stack_trace).collect();
    client
        .execute(
            "INSERT INTO pgship.deployment_logs (deployment_id, \"timestamp\", phase, level, message, metadata, duration, stack_trace) \
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::int[], $8::text[])",
            &[&ids, &times, &phases, &levels, &messages, &metadata, &durations, &traces],
        )
        .await
        .map_err(|e| DbError::query("writing pgship.deployment_logs", &e))?;
    Ok(())
}

/// A run whose row says `running` but whose database session is gone: killed, or cut off.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadRun {
    pub id: String,
    pub kind: String,
    pub environment: String,
    pub started_at: jiff::Timestamp,
    pub pid: Option<i32>,
    pub host: Option<String>,
    /// Migrations it committed (complete), and the one it left partial with its count.
    pub committed: Vec<String>,
    pub partial: Option<(String, i32)>,
}

/// Runs recorded `running` whose session has ended. A row written before pgship recorded
/// sessions counts as dead when nobody else holds the migration lock (`holding_lock`: the
/// caller does, so no other run is live). Read-only.
pub async fn dead_runs(client: &Client, holding_lock: bool) -> Result<Vec<DeadRun>, DbError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('pgship.deployments') IS NOT NULL", &[])
        .await
        .map_err(|e| DbError::query("looking for pgship.deployments", &e))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let lock_free = holding_lock
        || super::lock::holder(client, super::lock::MIGRATE_LOCK_KEY)
            .await?
            .is_none();
    let rows = client
        .query(
            "SELECT d.id, d.kind, d.environment, d.started_at, (to_jsonb(d) ->> 'pid')::int, to_jsonb(d) ->> 'host' \
             FROM pgship.deployments d \
             WHERE d.status = 'running' AND CASE \
               WHEN (to_jsonb(d) ->> 'backend_pid') IS NULL THEN $1 \
               ELSE NOT EXISTS ( \
                 SELECT 1 FROM pg_stat_activity a WHERE a.pid = (to_jsonb(d) ->> 'backend_pid')::int \
                   AND a.backend_start = (to_jsonb(d) ->> 'backend_start')::timestamptz) \
             END ORDER BY d.started_at",
            &[&lock_free],
        )
        .await
        .map_err(|e| DbError::query("looking for interrupted runs in pgship.deployments", &e))?;
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.get(0);
        let (committed, partial) = run_progress(client, &id).await?;
        out.push(DeadRun {
            id,
            kind: r.get(1),
            environment: r.get(2),
            started_at: r.get(3),
            pid: r.get(4),
            host: r.get(5),
            committed,
            partial,
        });
    }
    Ok(out)
}

/// What run `id` committed, from `pgship.applied_migrations`: complete migrations, and the
/// one it left partial with its committed statement count.
pub async fn run_progress(
    client: &Client,
    id: &str,
) -> Result<(Vec<String>, Option<(String, i32)>), DbError> {
    let rows = client
        .query(
            "SELECT name, status, statements_done FROM pgship.applied_migrations \
             WHERE deployment_id = $1 ORDER BY applied_at, id",
            &[&id],
        )
        .await
        .map_err(|e| DbError::query("reading what an interrupted run committed", &e))?;
    let mut committed = Vec::new();
    let mut partial = None;
    for r in rows {
        let (name, status, done): (String, String, i32) = (r.get(0), r.get(1), r.get(2));
        if status == "partial" {
            partial = Some((name, done));
        } else {
            committed.push(name);
        }
    }
    Ok((committed, partial))
}

impl DeadRun {
    /// One line: what happened and what it committed.
    pub fn describe(&self) -> String {
        let who = match (&self.host, self.pid) {
            (Some(h), Some(p)) => format!(" (pid {p} on {h})"),
            _ => String::new(),
        };
        let mut text = format!(
            "run {}{who}, started {}, ended without recording its result (killed, or its session was cut)",
            self.id, self.started_at
        );
        text.push_str(&match (self.committed.is_empty(), &self.partial) {
            (true, None) => "; it committed nothing".to_string(),
            (false, _) => format!(
                "; committed: {}",
                crate::util::fold_list(&self.committed, 5, 3)
            ),
            (true, Some(_)) => String::new(),
        });
        if let Some((name, done)) = &self.partial {
            text.push_str(&format!(
                "; partially committed: {name} (statements 1-{done})"
            ));
        }
        text
    }
}

/// Mark `run` interrupted, with what it committed. Returns whether this call marked it (two
/// runs may find the same dead one).
pub async fn mark_interrupted(client: &Client, run: &DeadRun) -> Result<bool, DbError> {
    let n = client
        .execute(
            "UPDATE pgship.deployments SET status = 'interrupted', finished_at = now(), error = $2 \
             WHERE id = $1 AND status = 'running'",
            &[&run.id, &run.describe()],
        )
        .await
        .map_err(|e| DbError::query("marking an interrupted run in pgship.deployments", &e))?;
    Ok(n > 0)
}
