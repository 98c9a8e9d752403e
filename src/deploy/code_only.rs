//! A deployment with no migration pending but code to deploy (the feature branch is not in the
//! environment's branch yet): DEPLOY, POST_DEPLOY_VALIDATION and, on failure, ROLLBACK of the
//! code half alone. The database is not changed, so there is nothing to rehearse or back up;
//! the run holds the migration lock (no other deployment of the environment runs meanwhile) and
//! is recorded in `pgship.deployments` with its commits. Each step's outcome goes through
//! [`super::decide::next`] like a full deployment's.

use serde_json::json;

use super::Ctx;
use super::app::PhaseEvents;
use super::apply;
use super::decide::{self, Next, Outcome, Phase, Report};
use super::log::Log;
use super::preflight::Preflight;
use crate::app::{App, CodeState};
use crate::db::state;
use crate::error::Result;
use crate::journal::Level;

/// What the run did: its outcome, the code state, why it did not succeed.
pub struct Done {
    pub outcome: Outcome,
    pub code: CodeState,
    pub reasons: Vec<String>,
    /// The run has a row in `pgship.deployments` (its end is to be recorded).
    pub recorded: bool,
}

pub async fn run(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &Preflight,
    app: &App,
    code: CodeState,
) -> Result<Done> {
    log.start(
        Phase::Deploy,
        format!(
            "no migration pending: deploying the code of {} to {}",
            code.feature, code.branch
        ),
        json!({"code_only": true}),
    );
    let mut done = Done {
        outcome: Outcome::Aborted,
        code,
        reasons: Vec::new(),
        recorded: false,
    };
    let locked = match apply::lock(log, t, pf).await? {
        Ok(l) => l,
        Err(reason) => {
            log.end(
                Phase::Deploy,
                Level::Error,
                "abort",
                reason.clone(),
                json!({}),
            );
            done.reasons.push(reason);
            return Ok(done);
        }
    };
    let r = under_lock(log, t, app, &locked.conn.client, &mut done).await;
    locked.release().await;
    r.map(|()| done)
}

async fn under_lock(
    log: &mut Log,
    t: &Ctx<'_>,
    app: &App,
    client: &tokio_postgres::Client,
    done: &mut Done,
) -> Result<()> {
    state::bootstrap(client).await?;
    state::start_deployment(client, &t.id, "deploy", &t.target.name, &t.url.redacted()).await?;
    done.recorded = true;
    let c = &mut done.code;
    record(client, t, c, &c.before.clone()).await?;
    let mut deployed = app
        .push(
            &t.project_dir,
            c,
            &t.id,
            &mut PhaseEvents::new(log, Phase::Deploy),
        )
        .await;
    // Recorded before the host's build is awaited: a run killed meanwhile must know what to undo.
    if let Some(merge) = c.merge_commit.clone() {
        record(client, t, c, &merge).await?;
    }
    if deployed.is_ok() {
        deployed = app
            .await_live(c, &mut PhaseEvents::new(log, Phase::Deploy))
            .await;
        if let (Some(merge), Some(_)) = (c.merge_commit.clone(), &c.new_deployment) {
            record(client, t, c, &merge).await?;
        }
    }
    let mut report = Report::Deploy {
        ok: deployed.is_ok(),
        changed: c.pushed(),
    };
    if let Err(e) = deployed {
        done.reasons.push(format!("the app's deploy failed: {e}"));
    }
    if decide::next(report, false) == Next::Run(Phase::PostDeployValidation) {
        log.start(Phase::PostDeployValidation, "validating the app", json!({}));
        let checked = app
            .check(
                Some(c),
                &mut PhaseEvents::new(log, Phase::PostDeployValidation),
            )
            .await;
        end(
            log,
            Phase::PostDeployValidation,
            &checked,
            "proceed",
            "roll-back",
        );
        if let Err(e) = checked {
            done.reasons.push(e);
        }
        report = Report::PostDeployValidation {
            ok: done.reasons.is_empty(),
        };
    }
    done.outcome = match decide::next(report, false) {
        Next::Stop(o) => o,
        Next::Run(_) => roll_back(log, t, app, c, &mut done.reasons).await,
    };
    Ok(())
}

/// ROLLBACK of the code alone: the database did not change.
async fn roll_back(
    log: &mut Log,
    t: &Ctx<'_>,
    app: &App,
    c: &mut CodeState,
    reasons: &mut Vec<String>,
) -> Outcome {
    log.start(Phase::Rollback, "rolling back the code", json!({}));
    let mut ev = PhaseEvents::new(log, Phase::Rollback);
    let mut undone = app.roll_back(&t.project_dir, c, &t.id, &mut ev).await;
    if undone.is_ok() {
        undone = app.check_after_rollback(Some(c), &mut ev).await;
    }
    end(log, Phase::Rollback, &undone, "rolled-back", "needs-human");
    if let Err(e) = &undone {
        reasons.push(e.clone());
        let left = app.commands_left(c);
        if !left.is_empty() {
            reasons.push(format!("left for a person: {}", left.join("; ")));
        }
    }
    let report = Report::Rollback {
        writes_found: false,
        allow_loss: false,
        proven: true,
        code_ok: undone.is_ok(),
    };
    match decide::next(report, false) {
        Next::Stop(o) => o,
        Next::Run(_) => Outcome::NeedsHuman,
    }
}

fn end(log: &mut Log, phase: Phase, r: &std::result::Result<(), String>, ok: &str, failed: &str) {
    match r {
        Ok(()) => log.end(
            phase,
            Level::Info,
            ok,
            format!("{}: {ok}", phase.as_str()),
            json!({}),
        ),
        Err(e) => log.end(phase, Level::Error, failed, e.clone(), json!({})),
    };
}

/// The deployment's row: no migration, the environment branch's commit (before, then the merge).
async fn record(
    client: &tokio_postgres::Client,
    t: &Ctx<'_>,
    c: &CodeState,
    commit: &str,
) -> Result<()> {
    state::record_deployment_details(client, &t.id, &[], Some(commit), Some(&c.branch)).await?;
    let doc = json!({"code": c});
    state::set_rollback_state(client, &t.id, &doc).await?;
    Ok(())
}
