//! The driver: runs each phase, hands what it reported to [`super::decide::next`], and does
//! what that decides. It holds no decision of its own.

use std::time::Instant;

use serde_json::json;

use super::app::PhaseEvents;
use super::apply::{self, Locked};
use super::backup::{self, BackedUp};
use super::decide::{self, Next, Outcome, Phase, Report};
use super::log::Log;
use super::report::{self, DeployReport};
use super::rollback::{self, Undone};
use super::sandbox_validation::{self, Validated};
use super::settings::Settings;
use super::{Ctx, Options, policy, post_deploy, preflight};
use crate::app::App;
use crate::db::state;
use crate::error::{ExitCode, Result};
use crate::journal::Level;
use crate::rehearse::report::PlanReport;
use crate::rehearse::{Policy, decide as verdicts};

/// What the run has gathered so far, for the report.
struct Run {
    started: Instant,
    reasons: Vec<String>,
    app: App,
    plan: Option<PlanReport>,
    backup: Option<BackedUp>,
    applied: Vec<String>,
    failure: Option<crate::db::apply::ApplyFailure>,
    rollback: Option<Undone>,
    /// The code half's record, when it ran.
    code: Option<crate::app::CodeState>,
    /// The run has a row in `pgship.deployments`.
    recorded: bool,
}

pub async fn run(log: &mut Log, t: &Ctx<'_>, opts: &Options) -> Result<ExitCode> {
    let policy = policy::policy(t.project)?;
    let app = super::app::resolve(t.project, t.target)?;
    let settings = Settings::resolve(t.project, &opts.engine, opts.lock_retries, opts.lock_wait)?;
    let mut run = Run {
        started: Instant::now(),
        reasons: Vec::new(),
        app,
        plan: None,
        backup: None,
        applied: Vec::new(),
        failure: None,
        rollback: None,
        code: None,
        recorded: false,
    };
    log.start(
        Phase::Preflight,
        format!(
            "{} {} ({})",
            if opts.dry_run {
                "plan for"
            } else {
                "deploying to"
            },
            t.target.name,
            t.url.redacted()
        ),
        json!({"target": t.url.redacted(), "environment": t.target.name, "app": run.app.as_str()}),
    );
    let pf = preflight::run(log, t.project, t.url, opts, settings, &run.app).await?;
    preflight::report(log, &pf, run.started.elapsed());
    let refused = !pf.refusals.is_empty();
    let next = decide::next(
        Report::Preflight {
            refused,
            pending: pf.pending.len(),
            code: pf.code.plan.as_ref().is_some_and(|c| !c.already_merged),
        },
        opts.dry_run,
    );
    end_preflight(log, &pf, next);
    run.plan = Some(plan_report(t, &pf, None, &policy, &run));
    run.reasons.clone_from(&pf.refusals);
    if next == Next::Stop(Outcome::UpToDate) && !opts.dry_run {
        apply::finish_interrupted(log, t, &pf).await?;
    }
    if let Next::Stop(outcome) = next {
        return finish(log, t, &mut run, outcome, opts).await;
    }
    if next == Next::Run(Phase::Deploy) {
        let code = pf.code.plan.clone().expect("code to deploy");
        let done = super::code_only::run(log, t, &pf, &run.app, code).await?;
        run.reasons.extend(done.reasons);
        run.code = Some(done.code);
        run.recorded = done.recorded;
        return finish(log, t, &mut run, done.outcome, opts).await;
    }
    let v = match sandbox_validation::run(log, t, opts, &pf, &policy).await {
        Ok(v) => v,
        Err(e) => {
            log.line(
                Outcome::Aborted.phase(),
                Level::Error,
                format!("deployment aborted: {}", e.message),
                json!({"status": Outcome::Aborted.status()}),
            );
            return Err(e);
        }
    };
    let abort = v.decision.verdict == crate::rehearse::Verdict::Abort;
    run.plan = Some(plan_report(t, &pf, Some(&v), &policy, &run));
    if abort {
        run.reasons = v
            .decision
            .reasons
            .iter()
            .map(|r| r.message.clone())
            .collect();
    }
    let next = decide::next(Report::SandboxValidation { abort }, opts.dry_run);
    if let Next::Stop(outcome) = next {
        return finish(log, t, &mut run, outcome, opts).await;
    }
    let outcome = on_target(log, t, opts, &pf, &v, &policy, &mut run).await?;
    finish(log, t, &mut run, outcome, opts).await
}

fn end_preflight(log: &mut Log, pf: &preflight::Preflight, next: Next) {
    let (level, decision, msg) = match next {
        Next::Stop(Outcome::Aborted) => (
            Level::Error,
            "abort",
            format!("PREFLIGHT refused:\n  {}", pf.refusals.join("\n  ")),
        ),
        Next::Stop(Outcome::UpToDate) => (
            Level::Info,
            "nothing-to-do",
            "nothing pending: the target is up to date".to_string(),
        ),
        _ => (Level::Info, "proceed", "preflight passed".to_string()),
    };
    log.end(
        Phase::Preflight,
        level,
        decision,
        msg,
        json!({"reasons": pf.refusals}),
    );
}

fn plan_report(
    t: &Ctx<'_>,
    pf: &preflight::Preflight,
    v: Option<&Validated>,
    policy: &Policy,
    run: &Run,
) -> PlanReport {
    PlanReport {
        deployment_id: t.id.clone(),
        environment: t.target.name.clone(),
        target: t.url.redacted(),
        server_version: pf.server_version.clone(),
        source: t.project.source.kind.as_str().to_string(),
        git: pf.git.clone(),
        pending: pf.pending.clone(),
        sandbox: v.map(|v| v.sandbox.clone()),
        rehearsal: v.map(|v| v.rehearsal.clone()),
        lint: v.map(|v| v.lint.clone()).unwrap_or_default(),
        decision: v.map_or_else(
            || verdicts::decide(&verdicts::Facts::default(), policy),
            |v| v.decision.clone(),
        ),
        seconds: run.started.elapsed().as_secs_f64(),
    }
}

/// BACKUP, DEPLOY, POST_DEPLOY_VALIDATION and, on failure, ROLLBACK.
#[allow(clippy::too_many_arguments)]
async fn on_target(
    log: &mut Log,
    t: &Ctx<'_>,
    opts: &Options,
    pf: &preflight::Preflight,
    v: &Validated,
    policy: &Policy,
    run: &mut Run,
) -> Result<Outcome> {
    let backed = backup::run(log, t, opts, pf, &v.rehearsal.fingerprint_before).await?;
    let backed = match (
        decide::next(Report::Backup { ok: backed.is_ok() }, false),
        backed,
    ) {
        (Next::Run(_), Ok(b)) => b,
        (_, Err(reason)) => return Ok(abort(log, Phase::Backup, run, reason)),
        (Next::Stop(o), Ok(_)) => return Ok(o),
    };
    log.start(
        Phase::Deploy,
        format!("applying to {}", t.url.redacted()),
        json!({}),
    );
    let locked = match apply::lock(log, t, pf).await? {
        Ok(l) => l,
        Err(reason) => return Ok(abort(log, Phase::Deploy, run, reason)),
    };
    let outcome = under_lock(log, t, pf, v, policy, run, backed, &locked).await;
    locked.release().await;
    outcome
}

/// A stop before the apply started (BACKUP, or DEPLOY's checks under the lock): the target is
/// untouched.
fn abort(log: &mut Log, phase: Phase, run: &mut Run, reason: String) -> Outcome {
    log.end(phase, Level::Error, "abort", reason.clone(), json!({}));
    run.reasons.push(reason);
    Outcome::Aborted
}

#[allow(clippy::too_many_arguments)]
async fn under_lock(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &preflight::Preflight,
    v: &Validated,
    policy: &Policy,
    run: &mut Run,
    mut backed: BackedUp,
    locked: &Locked,
) -> Result<Outcome> {
    if let Err(reason) = apply::prove_unchanged(log, t, pf, &backed, locked).await? {
        run.backup = Some(backed);
        return Ok(abort(log, Phase::Deploy, run, reason));
    }
    backed
        .state
        .fingerprint_after
        .clone_from(&v.rehearsal.fingerprint_after);
    record_start(log, t, &backed, locked).await?;
    let deployed = apply::run(log, t, pf, &backed, locked).await?;
    backed.state.guard.before_apply = Some(deployed.before_apply.clone());
    backed
        .state
        .guard
        .after_apply
        .clone_from(&deployed.after_apply);
    record_state(log, t, &backed, locked).await;
    let changed = deployed.changed;
    let mut report = match &deployed.applied {
        Ok(r) => {
            run.applied.clone_from(&r.applied);
            Report::Deploy { ok: true, changed }
        }
        Err(f) => {
            run.failure = Some(f.as_ref().clone());
            run.applied.clone_from(&f.committed);
            run.reasons
                .push(super::engine::failure_text(f, &pf.settings));
            Report::Deploy { ok: false, changed }
        }
    };
    if matches!(report, Report::Deploy { ok: true, .. })
        && let Err(e) = deploy_code(log, t, run, &mut backed, locked).await
    {
        run.reasons.push(format!("the app's deploy failed: {e}"));
        report = Report::Deploy { ok: false, changed };
    }
    if decide::next(report, false) == Next::Run(Phase::PostDeployValidation) {
        let failures = post_deploy::run(
            log,
            t,
            &locked.conn,
            v.rehearsal.fingerprint_after.as_deref(),
            (&run.app, backed.state.code.as_ref()),
        )
        .await?;
        run.reasons.extend(failures.iter().cloned());
        report = Report::PostDeployValidation {
            ok: failures.is_empty(),
        };
    }
    let outcome = match decide::next(report, false) {
        Next::Stop(o) => o,
        _ => roll_back(log, t, pf, policy, run, &mut backed, changed, locked).await?,
    };
    run.backup = Some(backed);
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
async fn roll_back(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &preflight::Preflight,
    policy: &Policy,
    run: &mut Run,
    backed: &mut BackedUp,
    changed: bool,
    locked: &Locked,
) -> Result<Outcome> {
    let mut code = backed.state.code.take();
    let work_dir = log.journal.dir.join("rollback");
    crate::backup::dump::private_folder(&work_dir)
        .map_err(|e| crate::error::Error::usage(e.to_string()))?;
    let inputs = rollback::Inputs {
        project: t.project,
        url: t.url,
        tools: &pf.tools,
        state: &backed.state,
        changed,
        allow_loss: rollback::allow_loss(policy),
        work_dir: &work_dir,
        project_dir: t.project_dir.clone(),
    };
    let (report, undone) =
        rollback::run(log, &inputs, &locked.conn, (&run.app, code.as_mut())).await?;
    backed.state.code = code;
    record_state(log, t, backed, locked).await;
    if !undone.writes.is_empty() {
        run.reasons.push(format!(
            "data-loss guard: {}",
            crate::rollback::guard::describe(&undone.writes)
        ));
    }
    run.reasons.extend(undone.error.iter().cloned());
    run.reasons.extend(undone.code_error.iter().cloned());
    if !undone.commands_left.is_empty() {
        run.reasons.push(format!(
            "left for a person: {}",
            undone.commands_left.join("; ")
        ));
    }
    if let Some(p) = undone.proof.as_ref().filter(|p| !p.proven) {
        run.reasons.push(p.summary());
    }
    run.rollback = Some(undone);
    Ok(match decide::next(report, false) {
        Next::Stop(o) => o,
        Next::Run(_) => Outcome::NeedsHuman,
    })
}

/// DEPLOY (code), after the database: merge, push, the host's build. The merge commit goes into
/// the state (file and target copy) and the deployment's row as soon as it is pushed.
async fn deploy_code(
    log: &mut Log,
    t: &Ctx<'_>,
    run: &Run,
    backed: &mut BackedUp,
    locked: &Locked,
) -> std::result::Result<(), String> {
    let Some(code) = backed.state.code.as_mut() else {
        return Ok(());
    };
    let pushed = run
        .app
        .push(
            &t.project_dir,
            code,
            &t.id,
            &mut PhaseEvents::new(log, Phase::Deploy),
        )
        .await;
    // Recorded before the host's build is awaited: a run killed meanwhile must know what to undo.
    if let Some(merge) = code.merge_commit.clone() {
        let branch = code.branch.clone();
        record_state(log, t, backed, locked).await;
        let recorded = state::record_deployment_details(
            &locked.conn.client,
            &t.id,
            &backed.state.migrations,
            Some(&merge),
            Some(&branch),
        )
        .await;
        if let Err(e) = recorded {
            log.warn(
                Phase::Deploy,
                format!("could not record the merge commit on the target: {e}"),
                json!({}),
            );
        }
    }
    pushed?;
    let Some(code) = backed.state.code.as_mut() else {
        return Ok(());
    };
    let waited = run
        .app
        .await_live(code, &mut PhaseEvents::new(log, Phase::Deploy))
        .await;
    if code.new_deployment.is_some() {
        record_state(log, t, backed, locked).await;
    }
    waited
}

/// The deployment's row: started, with what a later `rollback <id>` needs.
async fn record_start(log: &mut Log, t: &Ctx<'_>, b: &BackedUp, locked: &Locked) -> Result<()> {
    let client = &locked.conn.client;
    // The file first, then its copy on the target: the two must stay equal even when the run
    // is killed during the apply (`rollback <id>` refuses a file that differs from the copy).
    b.state.rewrite(&log.journal.dir).map_err(|e| {
        crate::error::Error::usage(format!(
            "rewriting {}: {e}",
            log.journal.dir.join(super::state_file::FILE).display()
        ))
    })?;
    state::start_deployment(client, &t.id, "deploy", &t.target.name, &t.url.redacted()).await?;
    let doc = serde_json::to_value(&b.state).unwrap_or_default();
    state::record_deployment_details(
        client,
        &t.id,
        &b.state.migrations,
        b.state.git_commit.as_deref(),
        b.state.git_branch.as_deref(),
    )
    .await?;
    state::set_rollback_state(client, &t.id, &doc).await?;
    log.line(
        Phase::Deploy.as_str(),
        Level::Debug,
        "deployment recorded in pgship.deployments",
        json!({}),
    );
    Ok(())
}

/// The state with the guard's counters from around the apply, in the file and on the target
/// (the two must stay equal: `rollback <id>` refuses a file that differs from the copy).
async fn record_state(log: &mut Log, t: &Ctx<'_>, b: &BackedUp, locked: &Locked) {
    if let Err(e) = b.state.rewrite(&log.journal.dir) {
        log.warn(
            Phase::Deploy,
            format!("could not rewrite rollback-state.json: {e}"),
            json!({}),
        );
    }
    let doc = serde_json::to_value(&b.state).unwrap_or_default();
    let recorded = state::set_rollback_state(&locked.conn.client, &t.id, &doc).await;
    if let Err(e) = recorded {
        log.warn(
            Phase::Deploy,
            format!("could not record the rollback state on the target: {e}"),
            json!({}),
        );
    }
}

/// The last line, the deployment's row, the report; the exit code.
async fn finish(
    log: &mut Log,
    t: &Ctx<'_>,
    run: &mut Run,
    outcome: Outcome,
    opts: &Options,
) -> Result<ExitCode> {
    let seconds = run.started.elapsed().as_secs_f64();
    let level = match outcome {
        Outcome::Succeeded | Outcome::UpToDate | Outcome::WouldProceed => Level::Success,
        _ => Level::Error,
    };
    log.line(
        outcome.phase(),
        level,
        format!("deployment {}: {}", outcome.status(), run.reasons.join("; ")).trim_end_matches(": ").to_string(),
        json!({"status": outcome.status(), "duration_ms": (seconds * 1000.0) as u64, "reasons": run.reasons}),
    );
    if run.backup.is_some() || run.recorded {
        record_end(log, t, run, outcome, seconds).await;
    }
    let dir = log.journal.dir.clone();
    let mut plan = run.plan.take().expect("PREFLIGHT reported");
    plan.seconds = seconds;
    if opts.dry_run {
        report::plan(log.console, &dir, &plan)?;
        return Ok(outcome.exit_code());
    }
    let r = DeployReport {
        outcome,
        status: outcome.status(),
        exit_code: outcome.exit_code() as i32,
        reasons: run.reasons.clone(),
        app: run.app.as_str(),
        code: run
            .code
            .clone()
            .or_else(|| run.backup.as_ref().and_then(|b| b.state.code.clone())),
        plan,
        backup: run.backup.as_ref().map(|b| b.backup.clone()),
        rollback_method: run.backup.as_ref().map(|b| b.state.rollback_method.clone()),
        applied: run.applied.clone(),
        failure: run.failure.clone(),
        rollback: run.rollback.clone(),
        seconds,
    };
    report::deploy(log.console, &dir, &r)?;
    super::alerts::deployment(log, t, &r).await;
    Ok(outcome.exit_code())
}

/// Best effort: the row and the log lines reach the target (a lost session is reported, the
/// local artifacts hold everything).
async fn record_end(log: &mut Log, t: &Ctx<'_>, run: &Run, outcome: Outcome, seconds: f64) {
    let conn = crate::db::connect(t.url, &crate::db::ConnectOptions::default()).await;
    let Ok(conn) = conn else {
        log.console
            .warn("could not reach the target to record the deployment's result");
        return;
    };
    let applied = i32::try_from(run.applied.len()).unwrap_or(i32::MAX);
    let err = (!run.reasons.is_empty()).then(|| run.reasons.join("; "));
    let ms = Some((seconds * 1000.0) as i64);
    if let Err(e) = state::finish_deployment(
        &conn.client,
        &t.id,
        outcome.status(),
        applied,
        err.as_deref(),
        ms,
    )
    .await
    {
        log.console
            .warn(&format!("could not record the deployment's result: {e}"));
    }
    if let Err(e) = log.journal.flush_db(&conn.client).await {
        log.console
            .warn(&format!("could not write pgship.deployment_logs: {e}"));
    }
}
