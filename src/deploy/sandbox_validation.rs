//! SANDBOX_VALIDATION: make a sandbox of the target, apply the pending migrations there
//! exactly as the deploy will (same engine, mode and timeouts), measure, run the checks and
//! tests, compare the schema before and after, rehearse and prove the rollback, and let the
//! policy decide. The sandbox is always removed (kept only on request). What the rehearsal
//! proved (fingerprints before and after, measured locks, the rollback method) is what the
//! later phases hold the target to.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::decide::Phase;
use super::log::Log;
use super::policy::{display, filter};
use super::preflight::Preflight;
use super::{Ctx, Options};
use crate::db::DbUrl;
use crate::db::apply::{ApplyOptions, Work};
use crate::error::{Error, Result};
use crate::journal::Level;
use crate::journal::console::Format;
use crate::project::Project;
use crate::rehearse::Sharpened;
use crate::rehearse::report::SandboxInfo;
use crate::rehearse::{self, Decision, Policy, Rehearsal, Verdict, decide};
use crate::sandbox::{Request, Sandbox, clone};

/// What the rehearsal proved and decided.
pub struct Validated {
    pub sandbox: SandboxInfo,
    pub rehearsal: Rehearsal,
    pub lint: Vec<Sharpened>,
    pub decision: Decision,
}

/// The checks folder and its files, shown relative to the project.
fn checks(project: &Project, opts: &Options) -> Result<Vec<(PathBuf, String)>> {
    let rf = &project.settings.file.rehearsal;
    let dir = opts.checks.clone().unwrap_or_else(|| {
        project
            .settings
            .project_dir
            .join(rf.checks_dir.as_deref().unwrap_or("pgship/checks"))
    });
    Ok(rehearse::data::check_files(&dir)
        .map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?
        .into_iter()
        .map(|p| {
            let shown = display(&project.settings.project_dir, &p);
            (p, shown)
        })
        .collect())
}

fn rehearse_options<'a>(
    t: &Ctx<'a>,
    opts: &Options,
    pf: &Preflight,
    policy: &Policy,
    work: &'a [Work<'a>],
    work_dir: PathBuf,
) -> Result<rehearse::Options<'a>> {
    let (project, target, id) = (t.project, t.target, &t.id);
    let rf = &project.settings.file.rehearsal;
    let test_timeout = match &rf.test_timeout {
        Some(t) => Some(
            crate::util::parse_duration(t)
                .map_err(|e| Error::usage(format!("[rehearsal] test_timeout: {e}")))?,
        ),
        None => None,
    };
    let mut url_vars = vec!["DATABASE_URL".to_string()];
    url_vars.extend(target.var.clone());
    Ok(rehearse::Options {
        work,
        state: &project.state,
        apply: ApplyOptions {
            tx_mode: pf.settings.tx_mode,
            lock_retries: pf.settings.lock_retries,
            backoff: Duration::from_millis(500),
            deployment_id: id.to_string(),
            server_major: pf.major,
            resolve_running: opts.engine.resolve_running,
        },
        session: pf.settings.session(),
        connect_timeout: pf.settings.connect_timeout,
        filter: filter(project),
        checks: checks(project, opts)?,
        test_cmd: opts.test_cmd.clone().or_else(|| rf.test_cmd.clone()),
        test_timeout,
        project_dir: project.settings.project_dir.clone(),
        url_vars,
        tools: pf.tools.clone(),
        work_dir,
        breaking: policy.breaking.clone(),
    })
}

async fn make_sandbox(
    log: &mut Log,
    project: &Project,
    url: &DbUrl,
    opts: &Options,
) -> Result<Sandbox> {
    let req =
        Request::resolve(&project.settings, opts.sandbox, opts.data, None).map_err(Error::usage)?;
    log.start(
        Phase::SandboxValidation,
        format!("making a sandbox of {}", url.redacted()),
        json!({"strategy": req.strategy}),
    );
    let console = log.console;
    let terminal =
        console.format == Format::Text && crate::journal::Console::is_terminal() && !console.quiet;
    let progress = |p: clone::Progress| {
        if terminal {
            anstream::eprint!("\r\x1b[2K· {}", p.line());
        }
    };
    let sb = Sandbox::create(url, &req, &project.settings.env, &progress).await?;
    if terminal {
        anstream::eprintln!();
    }
    log.info(
        Phase::SandboxValidation,
        format!(
            "sandbox {} ({}) ready in {:.1}s{}",
            sb.id,
            sb.strategy.as_str(),
            sb.seconds,
            sb.clone_report
                .as_ref()
                .map(|r| format!(": {}", r.summary()))
                .unwrap_or_default()
        ),
        json!({"sandbox": sb.id, "strategy": sb.strategy, "duration_ms": (sb.seconds * 1000.0) as u64,
               "clone": sb.clone_report.as_ref().map(|r| json!({"tables": r.tables, "bytes": r.bytes}))}),
    );
    for w in sb.clone_report.iter().flat_map(|r| &r.warnings) {
        log.warn(Phase::SandboxValidation, w.clone(), json!({}));
    }
    Ok(sb)
}

/// Rehearse on a sandbox and decide.
pub async fn run(
    log: &mut Log,
    t: &Ctx<'_>,
    opts: &Options,
    pf: &Preflight,
    policy: &Policy,
) -> Result<Validated> {
    let sb = make_sandbox(log, t.project, t.url, opts).await?;
    let mut info = SandboxInfo {
        id: sb.id.clone(),
        strategy: sb.strategy.as_str().to_string(),
        data: match opts.data {
            clone::DataMode::Full => "full".into(),
            clone::DataMode::Schema => "schema".into(),
        },
        seconds: sb.seconds,
        kept: false,
        url: None,
    };
    let work: Vec<Work<'_>> = pf.plan.work(&t.project.source.migrations);
    let rehearsal = match rehearse_on(log, t, opts, pf, policy, &work, &sb.url).await {
        Ok(r) => r,
        Err(e) => {
            let _ = sb.destroy().await;
            return Err(e);
        }
    };
    if opts.keep_sandbox {
        info.url = Some(sb.url.redacted());
        sb.keep().await?;
        info.kept = true;
    } else if let Err(e) = sb.destroy().await {
        log.console.warn(&format!(
            "could not remove the sandbox: {e} (`pgship sandbox gc` will)"
        ));
    }
    let (lint, decision) = decide_by_policy(log, t, pf, policy, &work, &rehearsal);
    Ok(Validated {
        sandbox: info,
        rehearsal,
        lint,
        decision,
    })
}

/// The rehearsal itself, interrupted by SIGINT/SIGTERM (the caller removes the sandbox).
#[allow(clippy::too_many_arguments)]
async fn rehearse_on(
    log: &mut Log,
    t: &Ctx<'_>,
    opts: &Options,
    pf: &Preflight,
    policy: &Policy,
    work: &[Work<'_>],
    sandbox: &DbUrl,
) -> Result<Rehearsal> {
    let work_dir = crate::sandbox::clone::private::PrivateDir::create()
        .map_err(|e| Error::usage(format!("cannot make a private folder: {e}")))?;
    let ro = rehearse_options(t, opts, pf, policy, work, work_dir.path().to_path_buf())?;
    let outcome = {
        let mut sv_log = |level: Level, msg: String, meta: serde_json::Value| {
            log.line(Phase::SandboxValidation.as_str(), level, msg, meta)
        };
        tokio::select! {
            r = rehearse::rehearse(sandbox, &ro, &mut sv_log) => Some(r),
            _ = crate::sandbox::interrupted() => None,
        }
    };
    match outcome {
        None => {
            log.error(
                Phase::SandboxValidation,
                "interrupted; the sandbox was removed",
                json!({}),
            );
            Err(Error {
                code: crate::error::ExitCode::Interrupted,
                message: "interrupted: the sandbox was removed and the target was not changed"
                    .into(),
                hint: None,
            })
        }
        Some(Err(e)) => Err(Error::usage(format!(
            "the rehearsal failed on the sandbox: {e}"
        ))),
        Some(Ok(r)) => Ok(r),
    }
}

/// Sharpen the lint with what the rehearsal measured, decide by `[policy]`, and end the phase.
fn decide_by_policy(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &Preflight,
    policy: &Policy,
    work: &[Work<'_>],
    rehearsal: &Rehearsal,
) -> (Vec<Sharpened>, Decision) {
    let files: BTreeMap<String, String> = work
        .iter()
        .map(|w| {
            (
                w.migration.name.clone(),
                display(&t.project.settings.project_dir, &w.migration.path),
            )
        })
        .collect();
    let lint = rehearse::sharpen(&pf.lint.findings, Some(rehearsal), &files, policy);
    let facts = rehearse::facts(Some(rehearsal), &lint, None);
    let decision = decide::decide(&facts, policy);
    let abort = decision.verdict == Verdict::Abort;
    let codes: Vec<&str> = decision.reasons.iter().map(|r| r.code.as_str()).collect();
    let why = if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", codes.join(", "))
    };
    log.end(
        Phase::SandboxValidation,
        if abort { Level::Error } else { Level::Info },
        decision.verdict.as_str(),
        format!("decision: {}{why}", decision.verdict.as_str()),
        json!({"reasons": decision.reasons, "fingerprint_before": rehearsal.fingerprint_before,
               "fingerprint_after": rehearsal.fingerprint_after,
               "rollback": rehearsal.rollback.as_ref().map(|r| &r.method)}),
    );
    (lint, decision)
}
