//! ROLLBACK: put the target back as it was before the deployment, and prove it.
//!
//! Code first (instant rollback on the host, then the merge reverted and pushed), then the
//! database with the method the rehearsal proved (down
//! scripts, or dropping what was created and restoring what changed from the backup's dumps).
//! Before anything that would replace or drop rows, the data-loss guard looks for writes other
//! sessions made since the backup to those tables; one found means no automatic restore
//! (NEEDS_HUMAN, exit 4) unless `[policy] rows_lost = "allow"`. After the rollback the schema
//! fingerprint must equal the pre-deploy one and the touched tables' contents the recorded ones
//! (exit 3), else a person must act (exit 4). `pgship`'s own schema is never rolled back.

use serde::Serialize;
use serde_json::json;

use super::app::PhaseEvents;
use super::decide::{Phase, Report};
use super::log::Log;
use super::policy::filter;
use super::state_file::RollbackState;
use crate::app::{App, CodeState};
use crate::compare::Action;
use crate::db::tools::BinDir;
use crate::db::{Conn, DbUrl};
use crate::error::Result;
use crate::journal::Level;
use crate::project::Project;
use crate::rollback::{self, Proof, RolledBack, guard};
use crate::source::Migration;

/// What ROLLBACK did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Undone {
    /// Writes by other sessions since the backup, per table.
    pub writes: Vec<guard::Written>,
    pub rolled_back: Option<RolledBack>,
    /// The Neon backup branch the target's branch was restored from.
    pub neon_restored: Option<String>,
    pub proof: Option<Proof>,
    pub error: Option<String>,
    /// The code half's failures (its rollback, or the health check after it).
    pub code_error: Option<String>,
    /// What a person must still run when a code step failed.
    pub commands_left: Vec<String>,
}

/// What the rollback works on.
pub struct Inputs<'a> {
    pub project: &'a Project,
    pub url: &'a DbUrl,
    pub tools: &'a BinDir,
    pub state: &'a RollbackState,
    /// Whether anything committed on the target (nothing to restore when not).
    pub changed: bool,
    pub allow_loss: bool,
    /// A private folder for the rollback's scripts.
    pub work_dir: &'a std::path::Path,
    /// The project folder, absolute (the code half's git repository).
    pub project_dir: std::path::PathBuf,
}

/// The migrations the state recorded as pending, from the project's source.
fn pending<'a>(project: &'a Project, names: &[String]) -> Vec<&'a Migration> {
    names
        .iter()
        .filter_map(|n| project.source.migrations.iter().find(|m| &m.name == n))
        .collect()
}

/// Roll back and prove. Logs under ROLLBACK; returns the report for the decision.
///
/// The data-loss guard reads first: when it refuses, nothing is undone, code included (the new
/// code still matches the schema it stays on). Otherwise the code goes back first, then the
/// database, then the app's health is checked again. When the code cannot be rolled back and
/// the app still answers from it, the database stays too (the new code needs its schema).
pub async fn run(
    log: &mut Log,
    i: &Inputs<'_>,
    conn: &Conn,
    (app, mut code): (&App, Option<&mut CodeState>),
) -> Result<(Report, Undone)> {
    log.start(
        Phase::Rollback,
        format!(
            "rolling back {} ({})",
            i.url.redacted(),
            i.state.rollback_method
        ),
        json!({"method": i.state.rollback_method}),
    );
    let mut undone = Undone::default();
    if i.changed {
        undone.writes = writes(log, i, conn).await?;
    }
    let writes_found = !undone.writes.is_empty();
    if writes_found && !i.allow_loss {
        return Ok(refused(log, undone, app, code.as_deref()));
    }
    let mut checked = false;
    if let Some(c) = code.as_deref_mut() {
        let mut ev = PhaseEvents::new(log, Phase::Rollback);
        let r = app
            .roll_back(&i.project_dir, c, &i.state.deployment_id, &mut ev)
            .await;
        if let Err(e) = r {
            code_failed(
                log,
                &mut undone,
                app,
                c,
                format!("the app's rollback failed: {e}"),
            );
            // Is the new code still what answers? Then its schema stays under it.
            let mut ev = PhaseEvents::new(log, Phase::Rollback);
            if let Err(e) = app.check_after_rollback(Some(c), &mut ev).await {
                return Ok(kept_for_new_code(log, i, undone, e));
            }
            checked = true;
        }
    }
    restore_database(log, i, conn, &mut undone).await;
    if let Some(c) = code.filter(|_| !checked) {
        let mut ev = PhaseEvents::new(log, Phase::Rollback);
        if let Err(e) = app.check_after_rollback(Some(c), &mut ev).await {
            code_failed(log, &mut undone, app, c, e);
        }
    }
    let proven = undone.error.is_none() && undone.proof.as_ref().is_some_and(|p| p.proven);
    let code_ok = undone.code_error.is_none();
    end(log, i, &undone, proven && code_ok, writes_found);
    let report = Report::Rollback {
        writes_found,
        allow_loss: i.allow_loss,
        proven,
        code_ok,
    };
    Ok((report, undone))
}

/// The guard found writes and the policy does not allow losing them: nothing is undone.
fn refused(
    log: &mut Log,
    mut undone: Undone,
    app: &App,
    code: Option<&CodeState>,
) -> (Report, Undone) {
    let msg = format!(
        "not restoring: rows were written since the backup to tables the rollback would replace or drop ({}); nothing was restored{}",
        guard::describe(&undone.writes),
        if code.is_some_and(CodeState::pushed) {
            ", and the app keeps the new code (it matches the schema that stays)"
        } else {
            ""
        }
    );
    if let Some(c) = code {
        undone.commands_left = app.commands_left(c);
    }
    log.end(
        Phase::Rollback,
        Level::Error,
        "needs-human",
        msg,
        json!({"writes": undone.writes, "commands_left": undone.commands_left}),
    );
    let report = Report::Rollback {
        writes_found: true,
        allow_loss: false,
        proven: false,
        code_ok: true,
    };
    (report, undone)
}

/// The code could not be rolled back and the app still answers from the new code (or not at
/// all): the database is not restored under it, since the new code needs the new schema.
/// NEEDS_HUMAN, with the code's commands and then `pgship rollback <id>` left.
fn kept_for_new_code(
    log: &mut Log,
    i: &Inputs<'_>,
    mut undone: Undone,
    e: String,
) -> (Report, Undone) {
    let msg = format!(
        "not restoring the database: the app's code was not rolled back and it is not shown to run the old code ({e}); the new code needs the new schema"
    );
    undone
        .commands_left
        .push(format!("pgship rollback {}", i.state.deployment_id));
    undone.error = Some(msg.clone());
    log.end(
        Phase::Rollback,
        Level::Error,
        "needs-human",
        msg,
        json!({"commands_left": undone.commands_left}),
    );
    let report = Report::Rollback {
        writes_found: !undone.writes.is_empty(),
        allow_loss: i.allow_loss,
        proven: false,
        code_ok: false,
    };
    (report, undone)
}

/// A code step failed: said at ERROR, with what a person must still run.
fn code_failed(log: &mut Log, undone: &mut Undone, app: &App, c: &CodeState, e: String) {
    undone.commands_left = app.commands_left(c);
    log.error(
        Phase::Rollback,
        e.clone(),
        json!({"commands_left": undone.commands_left}),
    );
    undone.code_error = Some(match undone.code_error.take() {
        Some(first) => format!("{first}; {e}"),
        None => e,
    });
}

/// The database: the Neon branch restored, or the proven method; then the proof.
async fn restore_database(log: &mut Log, i: &Inputs<'_>, conn: &Conn, undone: &mut Undone) {
    let migrations = pending(i.project, &i.state.migrations);
    let filter = filter(i.project);
    let inputs = rollback::Inputs {
        url: i.url,
        tools: i.tools,
        pending: &migrations,
        state: &i.project.state,
        filter: &filter,
        work_dir: i.work_dir,
    };
    if i.changed {
        match &i.state.backup.neon_branch {
            Some(b) => match neon_restore(log, i, conn, b).await {
                Ok(()) => undone.neon_restored = Some(b.name.clone()),
                Err(e) => undone.error = Some(e),
            },
            None => match rollback::roll_back(&inputs, &i.state.prepared).await {
                Ok(done) => undone.rolled_back = Some(done),
                Err(e) => undone.error = Some(e.to_string()),
            },
        }
    }
    match rollback::prove(&inputs, &i.state.prepared).await {
        Ok(p) => undone.proof = Some(p),
        Err(e) => undone.error = Some(e.to_string()),
    }
}

/// The phase's last line.
fn end(log: &mut Log, i: &Inputs<'_>, undone: &Undone, ok: bool, writes_found: bool) {
    let summary = match (&undone.error, &undone.proof) {
        (Some(e), _) => format!("the rollback failed: {e}"),
        (None, Some(p)) => p.summary(),
        (None, None) => "the rollback could not be proven".into(),
    };
    let code = match &undone.code_error {
        Some(e) => format!("; the app's rollback needs a person: {e}"),
        None => String::new(),
    };
    log.end(
        Phase::Rollback,
        if ok { Level::Info } else { Level::Error },
        if ok { "rolled-back" } else { "needs-human" },
        if i.changed {
            format!("rolled back: {summary}{code}")
        } else {
            format!("nothing had committed on the target; {summary}{code}")
        },
        json!({"rolled_back": undone.rolled_back, "proof": undone.proof, "writes": undone.writes,
               "loss_allowed": writes_found, "commands_left": undone.commands_left}),
    );
}

/// With a Neon backup: restore the target's branch from the backup branch (seconds, whatever
/// the size), keeping pgship's history across it (the `pgship` schema is never rolled back;
/// the migration state goes back with the schema). The restore ends every session on the
/// branch, so the history is written back over a new one.
async fn neon_restore(
    log: &mut Log,
    i: &Inputs<'_>,
    conn: &Conn,
    b: &crate::backup::neon::NeonBackup,
) -> std::result::Result<(), String> {
    let since: jiff::Timestamp = i
        .state
        .timestamp
        .parse()
        .map_err(|e| format!("the state's timestamp {}: {e}", i.state.timestamp))?;
    let kept = crate::db::kept::keep(&conn.client, since)
        .await
        .map_err(|e| e.to_string())?;
    crate::backup::neon::restore(&i.project.settings.env, b)
        .await
        .map_err(|e| format!("restoring the Neon branch from {}: {e}", b.name))?;
    let fresh = reconnect(i.url).await?;
    crate::db::kept::put_back(&fresh.client, &kept)
        .await
        .map_err(|e| e.to_string())?;
    log.info(
        Phase::Rollback,
        format!(
            "restored the target's Neon branch from {} (the state before it is kept as pgship-rolled-back-*); pgship's history written back",
            b.name
        ),
        json!({"neon_branch": b.branch_id}),
    );
    Ok(())
}

/// A new session once the restored branch takes connections again (up to 60 s).
async fn reconnect(url: &DbUrl) -> std::result::Result<Conn, String> {
    let started = std::time::Instant::now();
    loop {
        match crate::db::connect(url, &crate::db::ConnectOptions::default()).await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() > std::time::Duration::from_secs(60) => {
                return Err(format!(
                    "the target did not come back after the restore: {e}"
                ));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
}

/// Writes by other sessions since the backup to the tables the rollback would replace or drop.
async fn writes(log: &mut Log, i: &Inputs<'_>, conn: &Conn) -> Result<Vec<guard::Written>> {
    let (found, waited) = super::guard::at_rollback(&conn.client, &i.state.guard).await?;
    log.info(
        Phase::Rollback,
        format!(
            "data-loss guard: {} (statistics settled for {} ms)",
            if found.is_empty() {
                "no writes by others since the backup".to_string()
            } else {
                guard::describe(&found)
            },
            waited.as_millis()
        ),
        json!({"writes": found, "watched": i.state.guard.watched}),
    );
    Ok(found)
}

/// `[policy] rows_lost` allows the loss.
pub fn allow_loss(p: &crate::rehearse::Policy) -> bool {
    p.rows_lost == Action::Allow
}
