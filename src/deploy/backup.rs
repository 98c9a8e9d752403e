//! BACKUP: record the target before it changes and make sure it can be put back.
//!
//! 1. The data-loss guard's first counters (before any dump starts).
//! 2. `rollback::prepare` on the target: its fingerprint (which must equal the one the
//!    sandbox was cloned with, else someone changed the target meanwhile and the deploy
//!    aborts, untouched), the touched tables' contents, the rollback method the rehearsal
//!    proved, and for the restore method the schema and touched rows it restores from.
//! 3. The backup of `[backup] strategy` (`crate::backup`): sealed with a manifest and
//!    verified (pg_restore --list, sha256), optionally trial-restored. A `touched` backup
//!    under the restore method is step 2's dumps (the same pg_dump runs), not a second copy.
//! 4. `rollback-state.json` and the deployment's row in `pgship.deployments`.
//!
//! Nothing here changes the target's schema or rows; a failure stops the deploy before DEPLOY.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::decide::Phase;
use super::log::Log;
use super::policy::filter;
use super::preflight::Preflight;
use super::state_file::RollbackState;
use super::{Ctx, Options};
use crate::backup::{self, Backup, BackupFile, Strategy};
use crate::db::{ConnectOptions, connect};
use crate::error::{Error, Result};
use crate::journal::Level;
use crate::project::Project;
use crate::rollback::guard::Snapshot;
use crate::rollback::{self, Prepared};
use crate::source::Migration;

/// What BACKUP made.
pub struct BackedUp {
    pub prepared: Prepared,
    pub backup: Backup,
    pub state: RollbackState,
    /// The guard's counters before the dumps.
    pub s0: Snapshot,
}

/// Where the backup goes: the deployment's own folder (private), so that the full dump is
/// `.deployments/<id>/backup.dump` as in the seed, beside its `manifest.json`.
pub fn backup_dir(log: &Log) -> PathBuf {
    log.journal.dir.clone()
}

fn strategy(project: &Project, opts: &Options) -> Result<Strategy> {
    let raw = opts
        .backup
        .clone()
        .or_else(|| project.settings.file.backup.strategy.clone());
    match raw {
        None => Ok(Strategy::Auto),
        Some(s) => s
            .parse()
            .map_err(|e: backup::BackupError| Error::usage(e.to_string())),
    }
}

fn lock_wait(project: &Project) -> Result<std::time::Duration> {
    match &project.settings.file.backup.lock_wait_timeout {
        None => Ok(std::time::Duration::from_secs(5)),
        Some(t) => crate::util::parse_duration(t)
            .map_err(|e| Error::usage(format!("[backup] lock_wait_timeout: {e}"))),
    }
}

/// The pending migrations, in order.
pub fn pending<'a>(project: &'a Project, pf: &Preflight) -> Vec<&'a Migration> {
    pf.plan
        .to_run()
        .iter()
        .map(|(i, _)| &project.source.migrations[*i])
        .collect()
}

pub async fn run(
    log: &mut Log,
    t: &Ctx<'_>,
    opts: &Options,
    pf: &Preflight,
    rehearsed_before: &str,
) -> Result<std::result::Result<BackedUp, String>> {
    let project = t.project;
    let requested = strategy(project, opts)?;
    let lock_wait = lock_wait(project)?;
    log.start(
        Phase::Backup,
        format!("backing up {}", t.url.redacted()),
        json!({"requested": requested}),
    );
    let dir = backup_dir(log);
    backup::dump::private_folder(&dir).map_err(|e| Error::usage(e.to_string()))?;
    let conn = connect(t.url, &ConnectOptions::default()).await?;
    let s0 = super::guard::before_backup(&conn.client).await?;
    drop(conn);
    let prepared = match prepare_on_target(t, pf, &dir, rehearsed_before).await {
        Ok(p) => p,
        Err(reason) => return Ok(Err(reason)),
    };
    let (chosen, why) = backup::choose(
        requested,
        t.url.host().ends_with(".neon.tech"),
        project.settings.env.get("NEON_API_KEY").is_some(),
        !prepared.scope.everything.is_empty(),
    );
    log.info(
        Phase::Backup,
        format!("backup strategy {chosen}: {why}"),
        json!({"strategy": chosen, "why": why}),
    );
    let started = Instant::now();
    let made = take(t, &pf.tools, &dir, chosen, &prepared, lock_wait).await;
    let backup = match made {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("the backup failed: {e}"))),
    };
    let mut backup = backup;
    backup.seconds = started.elapsed().as_secs_f64();
    if project.settings.file.backup.trial_restore == Some(true) {
        if let Err(e) = trial(log, &backup, &dir, &pf.tools).await {
            return Ok(Err(format!("the backup's trial restore failed: {e}")));
        }
    }
    let state = RollbackState::new(log.id(), t, pf, &prepared, &backup, s0.clone());
    if let Err(e) = state.write_new(&log.journal.dir) {
        return Ok(Err(format!("writing rollback-state.json: {e}")));
    }
    let total: u64 = backup.files.iter().map(|f| f.bytes).sum();
    log.end(
        Phase::Backup,
        Level::Info,
        "proceed",
        format!(
            "backup {} verified: {} file(s), {} in {:.1}s; rollback method {} ({})",
            chosen,
            backup.files.len(),
            crate::sandbox::clone::human_bytes(total),
            backup.seconds,
            prepared.method.as_str(),
            prepared.why
        ),
        json!({"strategy": chosen, "files": backup.files, "manifest": backup.manifest,
               "rollback_method": prepared.method, "fingerprint": prepared.fingerprint}),
    );
    Ok(Ok(BackedUp {
        prepared,
        backup,
        state,
        s0,
    }))
}

/// `rollback::prepare` on the target, which must still be what the sandbox was cloned from.
/// `Err(reason)` stops the deploy with the target untouched.
async fn prepare_on_target(
    t: &Ctx<'_>,
    pf: &Preflight,
    dir: &Path,
    rehearsed_before: &str,
) -> std::result::Result<Prepared, String> {
    let pending = pending(t.project, pf);
    let filter = filter(t.project);
    let inputs = rollback::Inputs {
        url: t.url,
        tools: &pf.tools,
        pending: &pending,
        state: &t.project.state,
        filter: &filter,
        work_dir: dir,
    };
    let prepared = rollback::prepare(&inputs).await.map_err(|e| {
        let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
        format!("preparing the rollback on the target failed: {e}{hint}")
    })?;
    if prepared.fingerprint != rehearsed_before {
        return Err(format!(
            "the target's schema changed since the sandbox was cloned (fingerprint {} now, {} rehearsed): someone changed it meanwhile; run the deploy again to rehearse what is there now",
            short(&prepared.fingerprint),
            short(rehearsed_before)
        ));
    }
    Ok(prepared)
}

/// Take and seal the backup.
async fn take(
    t: &Ctx<'_>,
    tools: &crate::db::tools::BinDir,
    dir: &Path,
    chosen: Strategy,
    prepared: &Prepared,
    lock_wait: std::time::Duration,
) -> std::result::Result<Backup, backup::BackupError> {
    let files: Vec<BackupFile> = match chosen {
        Strategy::Full | Strategy::Auto => {
            vec![backup::dump::full(t.url, tools, dir, lock_wait).await?]
        }
        Strategy::Touched => match adopt(dir, prepared) {
            Some(files) => files,
            None => {
                let tables: Vec<(String, String)> = prepared
                    .tables
                    .iter()
                    .map(|s| (s.spec.schema.clone(), s.spec.table.clone()))
                    .collect();
                backup::dump::touched(t.url, tools, dir, &tables, lock_wait).await?
            }
        },
        Strategy::Neon => {
            let branch = backup::neon::branch(&t.project.settings.env, t.url, &t.id).await?;
            return Ok(Backup {
                strategy: chosen,
                files: Vec::new(),
                manifest: None,
                seconds: 0.0,
                neon_branch: Some(branch),
            });
        }
    };
    let manifest = backup::seal(t.url, tools, files, dir, chosen).await?;
    Ok(Backup {
        strategy: chosen,
        files: manifest.backup_files(dir),
        manifest: Some(dir.join("manifest.json")),
        seconds: 0.0,
        neon_branch: None,
    })
}

/// The restore method's `prepare` has just dumped the target's schema and the touched
/// tables' rows into `dir` with the same `pg_dump` runs a `touched` backup makes
/// (`rollback::restore::dump_parts`): those files become the backup under its names, as hard
/// links, instead of dumping the target twice. `None` (dump as usual) when there are no such
/// dumps (the down method), they are elsewhere, or a name cannot be linked; a name already
/// taken (a symlink planted there) is then refused by the dump itself.
fn adopt(dir: &Path, prepared: &Prepared) -> Option<Vec<BackupFile>> {
    let dumps = prepared.dumps.as_ref()?;
    let rows_wanted = !prepared.tables.is_empty();
    if dumps.schema.parent() != Some(dir) || dumps.data.is_some() != rows_wanted {
        return None;
    }
    let mut pairs = vec![(dumps.schema.clone(), dir.join(backup::dump::SCHEMA))];
    pairs.extend(
        dumps
            .data
            .iter()
            .map(|d| (d.clone(), dir.join(backup::dump::DATA))),
    );
    let mut files: Vec<BackupFile> = Vec::new();
    for (from, to) in pairs {
        let linked = std::fs::symlink_metadata(&from)
            .ok()
            .filter(|m| m.is_file() && m.len() > 0)
            .and_then(|m| std::fs::hard_link(&from, &to).ok().map(|()| m.len()));
        let Some(bytes) = linked else {
            for f in &files {
                let _ = std::fs::remove_file(&f.path);
            }
            return None;
        };
        files.push(BackupFile {
            path: to,
            bytes,
            sha256: String::new(),
        });
    }
    Some(files)
}

async fn trial(
    log: &mut Log,
    b: &Backup,
    dir: &Path,
    tools: &crate::db::tools::BinDir,
) -> std::result::Result<(), backup::BackupError> {
    let manifest = backup::check(dir)?;
    let r = backup::trial::trial_restore(&manifest, dir, tools).await?;
    log.info(
        Phase::Backup,
        format!(
            "trial restore of the {} backup: {} table(s) with their rows in {:.1}s (PostgreSQL {})",
            b.strategy,
            r.tables.len(),
            r.seconds,
            r.server_version
        ),
        json!({"trial_restore": r}),
    );
    Ok(())
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}
