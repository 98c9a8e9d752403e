//! The deploy side of alerts: the one [`Alert`] built from a finished run (a deployment, a run
//! that ended in an error, a `rollback <id>`), sent through [`crate::alert::send`], its
//! deliveries logged and kept in `alerts.json`. Nothing here can change a run's outcome: every
//! failure is a log line.
//!
//! Which runs alert: a deployment that reached a decision (succeeded, aborted, rolled back,
//! needs a human) or ended in an error, and every manual rollback. Not `plan`/`--dry-run`,
//! and not a deployment that found nothing pending (no change, no news).

use serde_json::json;

use super::decide::Outcome;
use super::log::Log;
use super::report::DeployReport;
use super::rollback::Undone;
use super::{Ctx, Options};
use crate::alert::{self, Alert, Delivery, Event, State, Status};
use crate::error::{Error, ExitCode};
use crate::journal::Level;
use crate::project::Project;

/// The alert's status of an outcome; `None` for runs that send none.
fn status(outcome: Outcome) -> Option<Status> {
    match outcome {
        Outcome::Succeeded => Some(Status::Succeeded),
        Outcome::Aborted => Some(Status::Aborted),
        Outcome::RolledBack => Some(Status::RolledBack),
        Outcome::NeedsHuman => Some(Status::NeedsHuman),
        Outcome::UpToDate | Outcome::WouldProceed => None,
    }
}

/// A skeleton alert of run `id` on `env`; the callers fill in what they know.
fn base(event: Event, project: &Project, env: &str, id: &str, status: Status, ms: u64) -> Alert {
    Alert {
        event,
        environment: env.to_string(),
        deployment_id: id.to_string(),
        rolled_back: None,
        status,
        timestamp: crate::journal::format_timestamp(jiff::Timestamp::now()),
        duration_ms: ms,
        migrations: Vec::new(),
        reasons: Vec::new(),
        failure: None,
        rollback: None,
        commit: None,
        app_url: app_url(project, env),
        logs_command: format!("pgship logs {id}"),
        report: None,
    }
}

/// `<ENV>_URL` when set, without credentials, query or fragment.
fn app_url(project: &Project, env: &str) -> Option<String> {
    let settings = &project.settings;
    let var = &settings.environments.get(env)?.app_url_var;
    let url = settings.env.get(var)?.trim();
    let url = url.split(['?', '#']).next()?;
    let url = match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => return None,
    };
    Some(url)
}

/// What a rollback did, in a line.
fn rollback_text(u: &Undone) -> String {
    let proof = u.proof.as_ref().map(|p| p.summary());
    if let Some(e) = &u.error {
        return format!("failed: {e}");
    }
    if !u.writes.is_empty() {
        return format!(
            "refused by the data-loss guard: {}",
            crate::rollback::guard::describe(&u.writes)
        );
    }
    let done = match &u.rolled_back {
        Some(rb) => format!(
            "{} method, undid {}",
            rb.method.as_str(),
            crate::util::fold_list(&rb.migrations, 5, 3)
        ),
        None => "nothing to undo (the apply's transaction rolled back)".to_string(),
    };
    match proof {
        Some(p) => format!("{done}; {p}"),
        None => done,
    }
}

/// At the end of `deploy` (after its report): the alert of the run, then the log lines it
/// added, to the target's `pgship.deployment_logs` when the run was recorded there.
pub async fn deployment(log: &mut Log, t: &Ctx<'_>, r: &DeployReport) {
    let Some(status) = status(r.outcome) else {
        return;
    };
    let id = &r.plan.deployment_id;
    let ms = (r.seconds * 1000.0) as u64;
    let mut a = base(
        Event::Deployment,
        t.project,
        &r.plan.environment,
        id,
        status,
        ms,
    );
    a.migrations = r.plan.pending.iter().map(|p| p.name.clone()).collect();
    a.reasons.clone_from(&r.reasons);
    a.failure = r.failure.as_ref().map(|f| alert::Failure {
        migration: f.migration.clone(),
        file: f.file.clone(),
        line: f.line,
        statement: f.statement,
        error: f.error.clone(),
        sql: crate::http::sanitize(&f.sql, ""),
    });
    a.rollback = r.rollback.as_ref().map(rollback_text);
    // The code deployed: the merge pushed by the code half, else the project's checkout.
    a.commit = r
        .code
        .as_ref()
        .and_then(|c| c.merge_commit.clone())
        .or_else(|| r.plan.git.as_ref().map(|g| g.commit.clone()));
    a.report = Some(format!(".deployments/{id}/report.md"));
    deliver(log, t.project, &a, r.outcome.phase()).await;
    if (r.backup.is_some() || r.code.is_some())
        && let Ok(conn) = crate::db::connect(t.url, &crate::db::ConnectOptions::default()).await
        && let Err(e) = log.journal.flush_db(&conn.client).await
    {
        log.console
            .warn(&format!("could not write pgship.deployment_logs: {e}"));
    }
}

/// A deployment that ended in an error (exit 2, an interruption, or a failure reported as an
/// error): aborted when the target cannot have changed, else whatever the exit code says, and
/// "needs a human" when that is unknown once DEPLOY started.
pub async fn failed_run(log: &mut Log, t: &Ctx<'_>, opts: &Options, e: &Error) {
    if opts.dry_run {
        return;
    }
    let deploy_started = log
        .journal
        .entries()
        .iter()
        .any(|l| l.phase == super::decide::Phase::Deploy.as_str());
    let status = match e.code {
        ExitCode::Ok => return,
        ExitCode::Refused => Status::Aborted,
        ExitCode::RolledBack => Status::RolledBack,
        _ if deploy_started => Status::NeedsHuman,
        _ => Status::Aborted,
    };
    let ms = elapsed_ms(log);
    let mut a = base(
        Event::Deployment,
        t.project,
        &t.target.name,
        &t.id,
        status,
        ms,
    );
    a.reasons = vec![e.message.clone()];
    deliver(log, t.project, &a, "FAILED").await;
}

/// At the end of `rollback <id>`: the rollback's alert, and the lines it added to the log
/// table through `client`.
#[allow(clippy::too_many_arguments)]
pub async fn rollback(
    log: &mut Log,
    project: &Project,
    client: &tokio_postgres::Client,
    of: &str,
    env: &str,
    outcome: Outcome,
    reasons: &[String],
    undone: &Undone,
) {
    let Some(status) = status(outcome) else {
        return;
    };
    let rid = log.id().to_string();
    let ms = elapsed_ms(log);
    let mut a = base(Event::Rollback, project, env, &rid, status, ms);
    a.rolled_back = Some(of.to_string());
    a.migrations = undone
        .rolled_back
        .as_ref()
        .map(|rb| rb.migrations.clone())
        .unwrap_or_default();
    a.reasons = reasons.to_vec();
    a.rollback = Some(rollback_text(undone));
    deliver(log, project, &a, outcome.phase()).await;
    if let Err(e) = log.journal.flush_db(client).await {
        log.console
            .warn(&format!("could not write pgship.deployment_logs: {e}"));
    }
}

/// Since the run's first log line.
fn elapsed_ms(log: &Log) -> u64 {
    let first = log.journal.entries().first().map(|l| l.timestamp);
    first.map_or(0, |t| {
        let d = jiff::Timestamp::now().duration_since(t);
        u64::try_from(d.as_millis()).unwrap_or(0)
    })
}

/// Send, log each channel (the channels that are off once, in one line), keep `alerts.json`.
async fn deliver(log: &mut Log, project: &Project, a: &Alert, phase: &str) {
    let deliveries = alert::send(a, &project.settings).await;
    let off: Vec<String> = deliveries
        .iter()
        .filter(|d| d.state == State::NotConfigured)
        .map(|d| format!("{} ({})", d.channel.as_str(), d.detail))
        .collect();
    if !off.is_empty() {
        log.line(
            phase,
            Level::Info,
            format!("alert channels off: {}", off.join(", ")),
            json!({}),
        );
    }
    for d in deliveries
        .iter()
        .filter(|d| d.state != State::NotConfigured)
    {
        line(log, phase, d);
    }
    if let Err(e) = alert::write_artifact(&log.journal.dir, a, &deliveries) {
        log.line(
            phase,
            Level::Warn,
            format!("could not write alerts.json: {e}"),
            json!({}),
        );
    }
}

fn line(log: &mut Log, phase: &str, d: &Delivery) {
    let meta = json!({
        "channel": d.channel, "state": d.state, "attempts": d.attempts, "duration_ms": d.elapsed_ms,
    });
    let (level, msg) = match d.state {
        State::Delivered => (Level::Info, format!("alert: {}", d.describe())),
        State::Failed => (
            Level::Warn,
            format!("alert: {} (the outcome is unchanged)", d.describe()),
        ),
        _ => (Level::Debug, format!("alert: {}", d.describe())),
    };
    log.line(phase, level, msg, meta);
}
