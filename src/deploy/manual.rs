//! `pgship rollback <deployment-id>`: the ROLLBACK phase for a deployment that finished, with
//! the same data-loss guard and proof. Its state comes from `.deployments/<id>/` or, when that
//! folder is gone (a CI runner), from `pgship.deployments` on the target; a local file that
//! differs from the target's copy, or a backup whose sha256 differs from the recorded one, is
//! refused. A deployment with later ones on top is refused, naming them. `--dry-run` says what
//! would be done; a protected environment needs `--yes` off a terminal.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::decide::{Outcome, Phase};
use super::log::Log;
use super::rollback::{self, Inputs};
use super::state_file::RollbackState;
use super::{Ui, new_id};
use crate::app::App;
use crate::db::{ConnectOptions, DbUrl, connect, lock, state, tools};
use crate::error::{Error, ExitCode, Result};
use crate::journal::{Journal, Level};
use crate::project::Project;

/// What `rollback` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub lock_wait: Option<std::time::Duration>,
}

/// The environment named by a deployment id (`deploy-<env>-<unix-millis>`, read by
/// `journal::artifacts::parse_run_id`); anything else is refused before a file is looked at
/// (no path can be smuggled in).
pub fn environment_of(id: &str) -> Result<String> {
    let run = crate::journal::artifacts::parse_run_id(id).map_err(Error::usage)?;
    if run.kind != "deploy" {
        return Err(Error::usage(format!(
            "`{id}` is a {} run: only a deployment (deploy-<env>-<unix-millis>) is rolled back",
            run.kind
        )));
    }
    Ok(run.environment)
}

/// The deployment's state: the local file, checked against the target's copy, or the copy.
async fn load(
    client: &tokio_postgres::Client,
    dir: &Path,
    id: &str,
    env: &str,
) -> Result<RollbackState> {
    let row = state::deployment_state(client, id).await?;
    let local = dir.join(super::state_file::FILE);
    let local = if local.exists() {
        Some(RollbackState::read(dir).map_err(|e| Error::refused(format!("cannot read {e}")))?)
    } else {
        None
    };
    match (local, row) {
        (Some(l), Some(Some(copy))) => {
            let copy: RollbackState = serde_json::from_value(copy).map_err(|e| {
                Error::refused(format!(
                    "the target's copy of {id}'s rollback state is unreadable: {e}"
                ))
            })?;
            if l != copy {
                return Err(Error::refused(format!(
                    "{}: differs from the copy recorded on the target when {id} ran: refusing a rollback from a tampered state file",
                    dir.join(super::state_file::FILE).display()
                )));
            }
            Ok(l)
        }
        (None, Some(Some(copy)))
            if copy.get("deploymentId").is_none() && copy.get("code").is_some() =>
        {
            let merge = copy["code"]["mergeCommit"]
                .as_str()
                .unwrap_or("<merge commit>");
            Err(Error::refused(format!(
                "{id} deployed code only (no migration was pending): there is no database to roll back; revert its merge {merge} on {} with `git revert -m 1 {merge}` and push",
                copy["code"]["branch"]
                    .as_str()
                    .unwrap_or("the environment's branch")
            )))
        }
        (None, Some(Some(copy))) => serde_json::from_value(copy).map_err(|e| {
            Error::refused(format!(
                "the target's copy of {id}'s rollback state is unreadable: {e}"
            ))
        }),
        (_, Some(None)) => Err(Error::refused(format!(
            "{id} recorded no rollback state on the target (it stopped before its backup)"
        ))),
        (_, None) => Err(Error::usage(format!(
            "unknown deployment {id}: no row in pgship.deployments of `{env}` (looked there and in {})",
            dir.display()
        ))),
    }
}

/// Every file the rollback restores from must be there and hash as recorded; a backup file
/// that is there must hash as recorded (one that is gone, with the folder, is said and skipped:
/// the down scripts do not need it).
fn verify_files(console: crate::journal::Console, s: &RollbackState) -> Result<()> {
    let check = |f: &crate::backup::BackupFile, needed: bool| -> Result<()> {
        let (_, sha256) = match crate::util::sha256_file(&f.path) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !needed => {
                console.warn(&format!(
                    "{}: the backup file is gone (the rollback does not need it)",
                    f.path.display()
                ));
                return Ok(());
            }
            Err(e) => {
                return Err(Error::refused(format!(
                    "{}: the rollback restores from this file, and it is missing or unreadable: {e}",
                    f.path.display()
                )));
            }
        };
        if sha256 != f.sha256 {
            return Err(Error::refused(format!(
                "{}: its sha256 differs from the one recorded at backup time: refusing to restore from a changed backup",
                f.path.display()
            )));
        }
        Ok(())
    };
    // A Neon backup restores the branch: the dumps are then only a person's fallback.
    let dumps_needed = s.backup.neon_branch.is_none();
    for f in &s.rollback_dumps {
        check(f, dumps_needed)?;
    }
    for f in &s.backup.files {
        check(f, false)?;
    }
    Ok(())
}

/// A deployment already undone, or with later ones on top, is not rolled back.
async fn refuse_undone_or_covered(client: &tokio_postgres::Client, id: &str) -> Result<()> {
    if let Some(row) = crate::db::history::deployment(client, id).await?
        && matches!(row.status.as_str(), "rolled-back" | "aborted")
    {
        return Err(Error::refused(format!(
            "{id} is {}: there is nothing of it to roll back",
            row.status
        )));
    }
    let later = state::later_deployments(client, id).await?;
    if !later.is_empty() {
        return Err(Error::refused(format!(
            "{id} has later deployments on top of it: {}; roll those back first, newest first",
            later.join(", ")
        )));
    }
    Ok(())
}

pub async fn run(ui: &Ui, project: &Project, id: &str, opts: &Options) -> Result<ExitCode> {
    let env = &environment_of(id)?;
    let target = project.settings.target(env)?;
    let url = DbUrl::parse(&target.url).map_err(crate::db::DbError::from)?;
    let root = std::path::absolute(&project.settings.project_dir)
        .map_err(|e| Error::usage(format!("{}: {e}", project.settings.project_dir.display())))?;
    let dir: PathBuf = root.join(".deployments").join(id);
    let conn = connect(&url, &ConnectOptions::default()).await?;
    let st = load(&conn.client, &dir, id, env).await?;
    verify_files(ui.console, &st)?;
    refuse_undone_or_covered(&conn.client, id).await?;
    let app = super::app::resolve(project, &target)?;
    let console = ui.console;
    let what = format!(
        "roll back {id} on `{env}` ({}): undo {} with the {} method{}",
        url.redacted(),
        crate::util::fold_list(&st.migrations, 5, 3),
        st.rollback_method,
        match &st.database_backup {
            Some(b) => format!(", backup {b}"),
            None => String::new(),
        }
    );
    if opts.dry_run {
        console.result(&format!("would {what}"));
        return Ok(ExitCode::Ok);
    }
    if target.protected {
        console.confirm(ui.yes, &format!("{what}?"))?;
    }
    execute(ui, project, &root, (&url, conn), id, &st, &app, opts).await
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    ui: &Ui,
    project: &Project,
    root: &Path,
    (url, conn): (&DbUrl, crate::db::Conn),
    id: &str,
    st: &RollbackState,
    app: &App,
    opts: &Options,
) -> Result<ExitCode> {
    let env = &st.environment;
    let rid = new_id(root, "rollback", env)?;
    let journal = Journal::create(root, &rid)
        .map_err(|e| Error::usage(format!("cannot write the log under .deployments/: {e}")))?;
    let mut log = Log::new(journal, ui.console);
    let wait = opts.lock_wait.unwrap_or(std::time::Duration::from_secs(60));
    lock::acquire(&conn.client, lock::MIGRATE_LOCK_KEY, wait, |_| {})
        .await
        .map_err(|e| Error::refused(e.to_string()))?;
    // Again under the lock: a deployment that started meanwhile is on top now.
    if let Err(e) = refuse_undone_or_covered(&conn.client, id).await {
        let _ = lock::release(&conn.client, lock::MIGRATE_LOCK_KEY).await;
        return Err(e);
    }
    state::start_deployment(&conn.client, &rid, "rollback", env, &url.redacted()).await?;
    let major = conn.version.major();
    let bin = tools::find_dump_tools(major).map_err(Error::usage)?;
    let work_dir = log.journal.dir.join("rollback");
    crate::backup::dump::private_folder(&work_dir).map_err(|e| Error::usage(e.to_string()))?;
    let inputs = Inputs {
        project,
        url,
        tools: &bin,
        state: st,
        changed: true,
        allow_loss: rollback::allow_loss(&super::policy::policy(project)?),
        work_dir: &work_dir,
        project_dir: root.to_path_buf(),
    };
    log.info(
        Phase::Rollback,
        format!("rolling back {id}"),
        json!({"deployment": id}),
    );
    let mut code = st.code.clone();
    let (report, undone) = rollback::run(&mut log, &inputs, &conn, (app, code.as_mut())).await?;
    // A Neon restore ended every session on the branch (the lock went with it).
    let conn = if undone.neon_restored.is_some() {
        connect(url, &ConnectOptions::default()).await?
    } else {
        conn
    };
    if code != st.code {
        keep_code_state(&mut log, &conn.client, root, st, code).await;
    }
    let outcome = match super::decide::next(report, false) {
        super::decide::Next::Stop(o) => o,
        super::decide::Next::Run(_) => Outcome::NeedsHuman,
    };
    let status = outcome.status();
    let reasons: Vec<String> = undone
        .error
        .iter()
        .cloned()
        .chain(undone.code_error.iter().cloned())
        .chain(
            (!undone.commands_left.is_empty())
                .then(|| format!("left for a person: {}", undone.commands_left.join("; "))),
        )
        .chain(
            (!undone.writes.is_empty()).then(|| crate::rollback::guard::describe(&undone.writes)),
        )
        .collect();
    log.line(
        outcome.phase(),
        if outcome == Outcome::RolledBack {
            Level::Info
        } else {
            Level::Error
        },
        format!("rollback of {id}: {status}"),
        json!({"deployment": id, "status": status, "reasons": reasons}),
    );
    let err = (!reasons.is_empty()).then(|| reasons.join("; "));
    let _ = state::finish_deployment(&conn.client, &rid, status, 0, err.as_deref(), None).await;
    if outcome == Outcome::RolledBack {
        let _ = state::set_status(&conn.client, id, "rolled-back").await;
    }
    let _ = log.journal.flush_db(&conn.client).await;
    let _ = lock::release(&conn.client, lock::MIGRATE_LOCK_KEY).await;
    super::alerts::rollback(
        &mut log,
        project,
        &conn.client,
        id,
        env,
        outcome,
        &reasons,
        &undone,
    )
    .await;
    if outcome == Outcome::RolledBack {
        ui.console.ok(&format!("rolled back {id} ({rid})"));
        Ok(ExitCode::Ok)
    } else {
        Err(Error {
            code: ExitCode::NeedsHuman,
            message: format!(
                "the rollback of {id} did not complete: {}",
                reasons.join("; ")
            ),
            hint: Some(format!(
                "the log is in {}",
                log.journal.dir.join("deployment.log").display()
            )),
        })
    }
}

/// What the code rollback did (the revert pushed, the instant rollback), written back into the
/// deployment's state file and the target's copy, kept equal: a rollback retried after a
/// failure must not revert the merge a second time.
async fn keep_code_state(
    log: &mut Log,
    client: &tokio_postgres::Client,
    root: &Path,
    st: &RollbackState,
    code: Option<crate::app::CodeState>,
) {
    let mut updated = st.clone();
    updated.code = code;
    let dir = root.join(".deployments").join(&st.deployment_id);
    let file = dir.join(super::state_file::FILE);
    let written = if file.exists() {
        updated
            .rewrite(&dir)
            .map_err(|e| format!("{}: {e}", file.display()))
    } else {
        Ok(())
    };
    let doc = serde_json::to_value(&updated).unwrap_or_default();
    let copied = state::set_rollback_state(client, &st.deployment_id, &doc)
        .await
        .map_err(|e| e.to_string());
    if let Err(e) = written.and(copied) {
        log.warn(
            Phase::Rollback,
            format!("could not record what the code rollback did: {e}"),
            json!({}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_name_their_environment_and_nothing_else() {
        assert_eq!(environment_of("deploy-dev-1728149445123").unwrap(), "dev");
        assert_eq!(
            environment_of("deploy-eu-prod-1728149445123").unwrap(),
            "eu-prod"
        );
        for bad in [
            "deploy-dev-",
            "deploy--1728149445123",
            "plan-dev-1728149445123",
            "deploy-../x-1728149445123",
            "deploy-dev-1728149445123a",
            "../deploy-dev-1728149445123",
            "deploy-dev/x-1728149445123",
        ] {
            assert!(environment_of(bad).is_err(), "{bad}");
        }
    }
}
