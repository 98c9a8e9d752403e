//! What stops a run before it changes anything: the target's migration state (edited, skipped,
//! missing, partial and changed), transaction control the engine refuses, state kept in another
//! table than the configured one, and a batch that would not fit in the server's lock table.
//! Read-only.

use crate::db::plan::{Plan, Status};
use crate::db::slots;
use crate::error::Result;
use crate::project::Project;

use super::settings::Settings;

/// Why the pending batch cannot run on this server as configured: a transaction that would not
/// fit in the server's lock table (see `db::slots`), as a refusal and its hint.
pub async fn lock_table_refusal(
    conn: &crate::db::Conn,
    plan: &Plan,
    source: &crate::source::Source,
    settings: &Settings,
) -> Result<Option<(String, String)>> {
    let work = plan.work(&source.migrations);
    if work.is_empty() {
        return Ok(None);
    }
    let demands = slots::demands(&work);
    let dependents = slots::dependents(&conn.client, &slots::named(&demands)).await?;
    let capacity = slots::capacity(&conn.client).await?;
    Ok(slots::refusal(
        &work,
        &demands,
        settings.tx_mode,
        conn.version.major(),
        &dependents,
        &capacity,
    ))
}

/// Why the target's state stops a run: edited (unless `allow_edited` is `Some(true)`; `None`
/// for a command without `--allow-edited`), skipped and missing migrations.
pub fn refusals(project: &Project, plan: &Plan, allow_edited: Option<bool>) -> Vec<String> {
    let ms = &project.source.migrations;
    let mut out = Vec::new();
    for (i, s) in plan.statuses.iter().enumerate() {
        match s {
            Status::Edited { recorded } if allow_edited != Some(true) => out.push(format!(
                "edited: {} was applied with hash {} but {} now hashes to {}{}",
                ms[i].name,
                short(recorded),
                ms[i].path.display(),
                short(&ms[i].checksum),
                if allow_edited.is_some() {
                    " (use --allow-edited to proceed anyway)"
                } else {
                    ""
                }
            )),
            Status::Partial {
                statements_done,
                edited: Some(recorded),
                ..
            } if allow_edited != Some(true) => out.push(format!(
                "edited: {} is partially applied (statements 1-{statements_done} committed, hash {}) and {} changed since, after its committed statements{}",
                ms[i].name,
                short(recorded),
                ms[i].path.display(),
                if allow_edited.is_some() {
                    format!(" (use --allow-edited to continue at statement {} with the file as it is now)", statements_done + 1)
                } else {
                    String::new()
                }
            )),
            Status::PartialChanged {
                statements_done,
                recorded,
            } => out.push(format!(
                "edited: {} is partially applied (statements 1-{statements_done} committed, hash {}) and {} changed in those committed statements; pgship cannot continue it: restore the file as it was applied",
                ms[i].name,
                short(recorded),
                ms[i].path.display(),
            )),
            Status::Skipped => out.push(format!(
                "skipped: {} is not applied but is ordered before the newest applied migration (drizzle would skip it forever); give it a later position or apply it by hand",
                ms[i].name
            )),
            _ => {}
        }
    }
    for (i, start) in plan.to_run() {
        let m = &ms[i];
        if let Some((stmt, _)) = m.refused_control()
            && m.statements[start..].contains(stmt)
        {
            out.push(format!(
                "transaction control: {}:{}: {}",
                m.path.display(),
                stmt.line,
                m.control_refusal().unwrap_or_default()
            ));
        }
    }
    for r in &plan.missing {
        let what = r
            .name
            .clone()
            .unwrap_or_else(|| format!("version {}", r.version));
        out.push(format!(
            "missing: {what} (hash {}) is applied but its file is not in the source",
            short(&r.hash)
        ));
    }
    out
}

/// What the target says against applying the first pending migration: state kept in another
/// table than the configured one, or its objects already there (see `db::preflight`).
pub async fn state_refusals(
    client: &tokio_postgres::Client,
    project: &Project,
    records: usize,
    plan: &Plan,
) -> Result<Vec<String>> {
    let work = plan.work(&project.source.migrations);
    let Some(w) = work.first() else {
        return Ok(Vec::new());
    };
    // An interrupted statement's objects may exist: the engine judges it from the catalog.
    let first = (w.migration, w.start_at + usize::from(w.uncertain));
    Ok(crate::db::preflight::state_mismatch(client, &project.state, records, Some(first)).await?)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
