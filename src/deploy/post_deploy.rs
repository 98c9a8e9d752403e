//! POST_DEPLOY_VALIDATION (database): the target's schema fingerprint must equal the sandbox's
//! after the migrations (proof that the target got exactly what was rehearsed), and every smoke
//! query (`pgship/smoke/*.sql`, or `[deploy] smoke_dir`) must return no rows. Each query runs in
//! a read-only transaction that is rolled back. Then the app's health check (`<ENV>_URL` + the
//! health path answers 2xx, from the pushed commit when it names one).

use serde_json::json;

use super::Ctx;
use super::app::PhaseEvents;
use super::decide::Phase;
use super::log::Log;
use super::policy::{display, filter};
use crate::app::{App, CodeState};
use crate::compare::introspect::introspect;
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::journal::Level;
use crate::rehearse::data;

/// The smoke queries' folder and files.
fn smoke_files(t: &Ctx<'_>) -> Result<Vec<std::path::PathBuf>> {
    let p = &t.project.settings;
    let dir = p
        .project_dir
        .join(p.file.deploy.smoke_dir.as_deref().unwrap_or("pgship/smoke"));
    data::check_files(&dir).map_err(|e| Error::usage(format!("{}: {e}", dir.display())))
}

/// Validate; the failures found (empty: passed).
pub async fn run(
    log: &mut Log,
    t: &Ctx<'_>,
    conn: &Conn,
    rehearsed_after: Option<&str>,
    (app, code): (&App, Option<&CodeState>),
) -> Result<Vec<String>> {
    log.start(
        Phase::PostDeployValidation,
        "validating the target",
        json!({}),
    );
    let mut failures = Vec::new();
    // The target has changed by now: a failure to validate is a failed validation (the
    // caller rolls back), never an error that would leave the target as it is.
    let fp = match introspect(&conn.client, &filter(t.project)).await {
        Ok(model) => model.fingerprint(),
        Err(e) => {
            failures.push(format!("cannot read the target's schema: {e}"));
            String::new()
        }
    };
    match rehearsed_after {
        _ if fp.is_empty() => {}
        Some(want) if want == fp => log.info(
            Phase::PostDeployValidation,
            format!("the target's schema is the rehearsed one (fingerprint {})", &fp[..12.min(fp.len())]),
            json!({"fingerprint": fp}),
        ),
        Some(want) => failures.push(format!(
            "the target's schema is not the rehearsed one (fingerprint {} on the target, {} in the sandbox)",
            &fp[..12.min(fp.len())],
            &want[..12.min(want.len())]
        )),
        None => failures.push("the rehearsal recorded no schema after the migrations".into()),
    }
    let files = smoke_files(t).unwrap_or_else(|e| {
        failures.push(format!("cannot read the smoke checks: {e}"));
        Vec::new()
    });
    for file in files {
        let shown = display(&t.project.settings.project_dir, &file);
        let r = data::run_check(&conn.client, &file, &shown).await;
        if r.passed {
            log.info(
                Phase::PostDeployValidation,
                format!("smoke check {shown}: passed"),
                json!({"smoke": r}),
            );
        } else {
            let why = match &r.error {
                Some(e) => format!("failed: {e}"),
                None => format!("returned {} row(s)", r.row_count),
            };
            failures.push(format!("smoke check {shown} {why}"));
            log.line(
                Phase::PostDeployValidation.as_str(),
                Level::Error,
                format!("smoke check {shown} {why}"),
                json!({"smoke": r}),
            );
        }
    }
    // The app after the database: the health check answering from the pushed commit.
    let checked = app
        .check(
            code,
            &mut PhaseEvents::new(log, Phase::PostDeployValidation),
        )
        .await;
    if let Err(e) = checked {
        failures.push(e);
    }
    let ok = failures.is_empty();
    log.end(
        Phase::PostDeployValidation,
        if ok { Level::Info } else { Level::Error },
        if ok { "proceed" } else { "roll-back" },
        if ok {
            "post-deploy validation passed".to_string()
        } else {
            format!("post-deploy validation failed: {}", failures.join("; "))
        },
        json!({"failures": failures}),
    );
    Ok(failures)
}
