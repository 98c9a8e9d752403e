//! The deployment's report: `report.json`, `report.md` and `schema-comparison.json` in its
//! folder, and what the console shows at the end. A dry run (`plan`) reports the rehearsal; a
//! deploy adds what happened to the target.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::decide::Outcome;
use super::rollback::Undone;
use crate::backup::Backup;
use crate::db::apply::ApplyFailure;
use crate::error::{Error, Result};
use crate::journal::Console;
use crate::journal::console::Format;
use crate::rehearse::report::{self as plan_report, PlanReport};

/// Everything a deployment did.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    pub outcome: Outcome,
    pub status: &'static str,
    pub exit_code: i32,
    /// Why it stopped, when it did not succeed.
    pub reasons: Vec<String>,
    pub app: &'static str,
    /// The code half: branch, commits, the host's deployments, what its rollback did.
    pub code: Option<crate::app::CodeState>,
    pub plan: PlanReport,
    pub backup: Option<Backup>,
    pub rollback_method: Option<String>,
    pub applied: Vec<String>,
    pub failure: Option<ApplyFailure>,
    pub rollback: Option<Undone>,
    pub seconds: f64,
}

/// A new private file (0600, never through a symlink) in the deployment's folder.
fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    let err = |e: std::io::Error| Error::usage(format!("writing {}: {e}", path.display()));
    let mut f = crate::db::child::create_private(&path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// The dry run's artifacts and output (`plan`).
pub fn plan(console: Console, dir: &Path, report: &PlanReport) -> Result<()> {
    let doc = serde_json::to_value(report).unwrap_or_default();
    write(
        dir,
        "report.json",
        &serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )?;
    write(dir, "report.md", &plan_report::markdown(report))?;
    write(
        dir,
        "schema-comparison.json",
        &serde_json::to_string_pretty(&report.schema_comparison()).unwrap_or_default(),
    )?;
    match console.format {
        Format::Json => console.json(&doc),
        Format::Markdown => console.result(&plan_report::markdown(report)),
        _ => console.result(&plan_report::text(report)),
    }
    console.step(&format!("report and log in {}", dir.display()));
    Ok(())
}

/// The deployment's artifacts and output.
pub fn deploy(console: Console, dir: &Path, r: &DeployReport) -> Result<()> {
    let doc = serde_json::to_value(r).unwrap_or_default();
    write(
        dir,
        "report.json",
        &serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )?;
    write(dir, "report.md", &markdown(r))?;
    write(
        dir,
        "schema-comparison.json",
        &serde_json::to_string_pretty(&r.plan.schema_comparison()).unwrap_or_default(),
    )?;
    match console.format {
        Format::Json => console.json(&doc),
        Format::Markdown => console.result(&markdown(r)),
        _ => console.result(&text(r)),
    }
    Ok(())
}

fn headline(r: &DeployReport) -> String {
    let id = &r.plan.deployment_id;
    match r.outcome {
        Outcome::Succeeded if r.applied.is_empty() => format!(
            "deployed the code to {} ({id}) in {:.1}s; no migration was pending",
            r.plan.environment, r.seconds
        ),
        Outcome::Succeeded => format!(
            "deployed {} migration(s) to {} ({id}) in {:.1}s",
            r.applied.len(),
            r.plan.environment,
            r.seconds
        ),
        Outcome::UpToDate => format!("nothing to deploy: {} is up to date", r.plan.environment),
        Outcome::Aborted => format!("aborted before the target changed ({id})"),
        Outcome::RolledBack => format!(
            "the deployment failed and {} was rolled back to its state before ({id})",
            r.plan.environment
        ),
        Outcome::NeedsHuman => format!(
            "the deployment failed and {} is NOT back to its state before: a person must act ({id})",
            r.plan.environment
        ),
        Outcome::WouldProceed => format!("a deploy would proceed ({id})"),
    }
}

/// The console's summary.
pub fn text(r: &DeployReport) -> String {
    let mut o = String::new();
    if r.plan.rehearsal.is_some() {
        o.push_str(&plan_report::text(&r.plan));
        o.push('\n');
    }
    o.push_str(&headline(r));
    for reason in &r.reasons {
        o.push_str(&format!("\n  {reason}"));
    }
    if let Some(b) = &r.backup {
        o.push_str(&format!(
            "\n  backup: {} ({} file(s))",
            b.strategy,
            b.files.len()
        ));
    }
    if let Some(c) = &r.code {
        o.push_str(&format!("\n  code: {}", code_line(c)));
    }
    o
}

/// The code half in one line.
fn code_line(c: &crate::app::CodeState) -> String {
    let short = |s: &str| s[..s.len().min(12)].to_string();
    let mut parts = vec![format!("{} into {}/{}", c.feature, c.remote, c.branch)];
    match (&c.merge_commit, c.already_merged) {
        (_, true) => parts.push("already merged: no code step".into()),
        (Some(m), _) => parts.push(format!("merge {} pushed", short(m))),
        (None, _) => parts.push("nothing pushed".into()),
    }
    if let Some(d) = &c.new_deployment {
        parts.push(format!("deployment {d}"));
    }
    if c.instant_rollback {
        parts.push(format!(
            "instant rollback to {}",
            c.previous_deployment.as_deref().unwrap_or("?")
        ));
    }
    if let Some(r) = &c.revert_commit {
        parts.push(format!("reverted as {}", short(r)));
    }
    if c.reset {
        parts.push(format!("reset to {}", short(&c.before)));
    }
    parts.join(", ")
}

/// `report.md`.
pub fn markdown(r: &DeployReport) -> String {
    let mut o = format!("# {}\n\n", headline(r));
    o.push_str(&format!(
        "- status: `{}` (exit {})\n- environment: `{}`\n- target: `{}`\n- app: `{}`\n",
        r.status, r.exit_code, r.plan.environment, r.plan.target, r.app
    ));
    if let Some(b) = &r.backup {
        o.push_str(&format!(
            "- backup: `{}`, {} file(s)\n",
            b.strategy,
            b.files.len()
        ));
    }
    if let Some(m) = &r.rollback_method {
        o.push_str(&format!("- rollback method: `{m}`\n"));
    }
    if let Some(c) = &r.code {
        o.push_str(&format!("- code: {}\n", code_line(c)));
    }
    if !r.applied.is_empty() {
        o.push_str(&format!("- applied: {}\n", r.applied.join(", ")));
    }
    for reason in &r.reasons {
        o.push_str(&format!("- reason: {reason}\n"));
    }
    o.push('\n');
    o.push_str(&plan_report::markdown(&r.plan));
    o
}
