//! The trial restore (`[backup] trial_restore = true`): a sealed backup restored into a
//! throwaway local cluster (`crate::cluster`, as the `postgres` user when pgship runs as
//! root), then every table the manifest lists counted there against the manifest.
//!
//! A full backup is restored as it is; a touched one as its schema, then its rows with
//! triggers disabled (the other tables' rows are not in it, so foreign keys are not checked).
//! Owners and grants are left out: the throwaway cluster has none of the target's roles. The
//! cluster is stopped and removed whatever happens. It never touches the target.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{BackupError, Strategy, dump, verify::Manifest};
use crate::cluster::{ClusterOptions, LocalCluster};
use crate::db::tools::BinDir;
use crate::db::{ConnectOptions, DbUrl, connect, describe, quote_ident};
use crate::rollback::tools::Tools;

/// What a trial restore found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialReport {
    pub seconds: f64,
    /// The throwaway cluster's server version.
    pub server_version: String,
    pub tables: Vec<TrialTable>,
}

/// One table: the rows the manifest records and the rows restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialTable {
    pub table: String,
    pub expected: i64,
    pub restored: i64,
}

/// Restore the backup sealed by `manifest` in `dir` into a throwaway cluster and count the
/// rows of its tables; a count that differs from the manifest is an error naming the table.
pub async fn trial_restore(
    manifest: &Manifest,
    dir: &Path,
    tools: &BinDir,
) -> Result<TrialReport, BackupError> {
    let started = Instant::now();
    let major = manifest
        .server_version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    let opts = ClusterOptions {
        min_major: major,
        ..ClusterOptions::default()
    };
    let cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&opts))
        .await
        .map_err(|e| BackupError::Trial(format!("starting a throwaway cluster: {e}")))?
        .map_err(|e| BackupError::Trial(e.to_string()))?;
    let result = restore_and_count(manifest, dir, tools, &cluster).await;
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    let (server_version, tables) = result?;
    let wrong: Vec<String> = tables
        .iter()
        .filter(|t| t.expected != t.restored)
        .map(|t| {
            format!(
                "table {}: {} rows restored, the manifest records {}",
                t.table, t.restored, t.expected
            )
        })
        .collect();
    if !wrong.is_empty() {
        return Err(BackupError::Trial(wrong.join("; ")));
    }
    Ok(TrialReport {
        seconds: started.elapsed().as_secs_f64(),
        server_version,
        tables,
    })
}

async fn restore_and_count(
    manifest: &Manifest,
    dir: &Path,
    tools: &BinDir,
    cluster: &LocalCluster,
) -> Result<(String, Vec<TrialTable>), BackupError> {
    let admin = connect(&cluster.url("postgres"), &ConnectOptions::default()).await?;
    admin
        .client
        .batch_execute("CREATE DATABASE trial")
        .await
        .map_err(|e| {
            BackupError::Trial(format!("creating the trial database: {}", describe(&e)))
        })?;
    let url = cluster.url("trial");
    let t = Tools {
        bin: tools,
        url: &url,
        work_dir: dir,
    };
    let base = ["--no-owner", "--no-privileges", "--exit-on-error"];
    let mut steps: Vec<(&str, Vec<&str>)> = Vec::new();
    match manifest.strategy {
        Strategy::Full => steps.push((dump::FULL, vec![])),
        _ => {
            steps.push((dump::SCHEMA, vec![]));
            if manifest.files.iter().any(|f| f.name == dump::DATA) {
                steps.push((dump::DATA, vec!["--data-only", "--disable-triggers"]));
            }
        }
    }
    for (name, extra) in steps {
        let mut args: Vec<String> = base
            .iter()
            .chain(&extra)
            .map(|s| (*s).to_string())
            .collect();
        args.push(dir.join(name).display().to_string());
        let ran = t.run("pg_restore", &args, true, None).await?;
        if !ran.ok {
            return Err(BackupError::Trial(format!(
                "pg_restore of {name} {}: {}",
                ran.status,
                ran.stderr.trim()
            )));
        }
    }
    count(&url, manifest).await
}

async fn count(url: &DbUrl, manifest: &Manifest) -> Result<(String, Vec<TrialTable>), BackupError> {
    let conn = connect(url, &ConnectOptions::default()).await?;
    let mut out = Vec::with_capacity(manifest.tables.len());
    for t in &manifest.tables {
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            quote_ident(&t.schema),
            quote_ident(&t.table)
        );
        let row =
            conn.client.query_one(&sql, &[]).await.map_err(|e| {
                BackupError::Trial(format!("counting {}: {}", t.name(), describe(&e)))
            })?;
        out.push(TrialTable {
            table: t.name(),
            expected: t.rows,
            restored: row.get(0),
        });
    }
    Ok((conn.version.text.clone(), out))
}
