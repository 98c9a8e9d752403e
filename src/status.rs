//! The status of a project's migrations on a target: applied, pending, edited, missing,
//! skipped and partial migrations, the server version, the pg_dump later phases would use,
//! the lock holder and runs left `running`. Read-only: it creates nothing on the target, and
//! it never prints (`pgship status` and `pgship demo` print what it returns).

use serde_json::{Value, json};

use crate::db::plan::{self, Status};
use crate::db::{ConnectOptions, DbUrl, connect, lock, state, tools};
use crate::error::Result;
use crate::project::Project;
use crate::source::MigrationId;

/// What keeps a status document from being clean, as `<count> <section>`: edited (also a
/// partial migration whose committed part changed), skipped, missing and partial migrations,
/// interrupted runs and state problems. Pending migrations are the normal state before a
/// deploy.
pub fn unclean(report: &Value) -> Vec<String> {
    [
        "edited",
        "skipped",
        "missing",
        "partial",
        "interrupted_runs",
        "state_problems",
    ]
    .iter()
    .filter_map(|key| {
        let n = report[*key].as_array().map_or(0, Vec::len);
        (n > 0).then(|| format!("{n} {}", key.replace('_', " ")))
    })
    .collect()
}

/// The status document (the `--format json` output). `environment`: the named environment the
/// target is, for its app section (branch, last deployed commit, what serves it now).
pub async fn collect(project: &Project, url: &DbUrl, environment: Option<&str>) -> Result<Value> {
    let conn = connect(url, &ConnectOptions::default()).await?;
    let app = match environment {
        Some(env) => Some(app_section(project, env, &conn.client).await?),
        None => None,
    };
    let st = state::read(&conn.client, &project.state).await?;
    let holder = lock::holder(&conn.client, lock::MIGRATE_LOCK_KEY).await?;
    let ms = &project.source.migrations;
    let plan = plan::classify(ms, &st.records, &st.partials, project.state.matching());
    let pg_dump = tools::find_dump_tools(conn.version.major());
    let interrupted: Vec<String> = state::dead_runs(&conn.client, false)
        .await?
        .iter()
        .map(state::DeadRun::describe)
        .collect();
    let problems =
        crate::deploy::refusals::state_refusals(&conn.client, project, st.records.len(), &plan)
            .await?;
    let mut applied = Vec::new();
    let mut pending = Vec::new();
    let mut edited = Vec::new();
    let mut skipped = Vec::new();
    let mut partial = Vec::new();
    for (m, s) in ms.iter().zip(&plan.statuses) {
        let created_at = match m.id {
            MigrationId::Drizzle { when } => json!(when),
            MigrationId::Sql { .. } => Value::Null,
        };
        let version = plan::version_of(m);
        match s {
            Status::Applied => applied.push(json!({"name": m.name, "hash": m.checksum, "created_at": created_at, "version": version})),
            Status::Pending => pending.push(json!({"name": m.name, "version": version, "statements": m.statements.len()})),
            Status::Edited { recorded } => edited.push(json!({"name": m.name, "hash": m.checksum, "recorded_hash": recorded, "version": version})),
            Status::Skipped => skipped.push(json!({"name": m.name, "version": version})),
            Status::PartialChanged { statements_done, recorded } => edited.push(json!({"name": m.name, "hash": m.checksum, "recorded_hash": recorded, "version": version, "partial_statements_done": statements_done})),
            Status::Partial { statements_done, edited, running } => partial.push(json!({"name": m.name, "version": version, "statements_done": statements_done, "statements": m.statements.len(), "edited_after_committed_part": edited.is_some(), "interrupted_statement": running.then_some(statements_done + 1)})),
        }
    }
    let missing: Vec<Value> = plan
        .missing
        .iter()
        .map(|r| json!({"name": r.name, "hash": r.hash, "created_at": r.created_at, "version": r.version}))
        .collect();
    let (dump_path, dump_version, dump_problem) = match &pg_dump {
        Ok(b) => (
            json!(b.bin("pg_dump").display().to_string()),
            json!(b.version),
            Value::Null,
        ),
        Err(e) => (Value::Null, Value::Null, json!(e)),
    };
    let mut source = json!({"kind": project.source.kind.as_str(), "dir": project.source.dir.display().to_string()});
    if let Some(t) = project.drizzle_table() {
        source["state_table"] = json!(format!("{}.{}", t.schema, t.table));
    }
    let mut doc = json!({
        "target": url.redacted(),
        "server_version": conn.version.text,
        "pg_dump": dump_path,
        "pg_dump_version": dump_version,
        "pg_dump_problem": dump_problem,
        "source": source,
        "applied": applied,
        "pending": pending,
        "edited": edited,
        "missing": missing,
        "skipped": skipped,
        "partial": partial,
        "lock": holder,
        "state_problems": problems,
        "interrupted_runs": interrupted,
    });
    if let Some(app) = app {
        doc["app"] = app;
    }
    doc["clean"] = json!(unclean(&doc).is_empty());
    Ok(doc)
}

/// The environment's code: provider, branch and remote, the commit its last successful
/// deployment left (the merge commit when pgship deployed the code), and the host's current
/// deployment (a host that cannot be asked says why, without failing the status).
async fn app_section(
    project: &Project,
    env: &str,
    client: &tokio_postgres::Client,
) -> Result<Value> {
    let settings = crate::app::AppSettings::resolve(&project.settings, env)
        .map_err(crate::error::Error::usage)?;
    let last = crate::db::history::last_succeeded(client, env).await?;
    let current = match crate::app::App::resolve(&project.settings, env) {
        Ok(app) => match app.current().await {
            Ok(c) => json!(c),
            Err(e) => json!(format!("unknown: {e}")),
        },
        Err(e) => json!(format!("unknown: {e}")),
    };
    Ok(json!({
        "provider": settings.provider.as_str(),
        "branch": settings.branch,
        "remote": settings.remote,
        "last_deployment": last.as_ref().map(|d| &d.id),
        "last_deployed_commit": last.as_ref().and_then(|d| d.git_commit.clone()),
        "current_deployment": current,
    }))
}

/// The status as text; long lists are folded (their first and last few and a count) unless
/// `all`.
pub fn render(r: &Value, all: bool) -> String {
    let mut out = String::new();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    out.push_str(&format!("target:   {}\n", s(&r["target"])));
    out.push_str(&format!(
        "server:   PostgreSQL {}\n",
        s(&r["server_version"])
    ));
    match r["pg_dump"].as_str() {
        Some(p) => out.push_str(&format!("pg_dump:  {p} ({})\n", s(&r["pg_dump_version"]))),
        None => out.push_str(&format!(
            "pg_dump:  not found: {}\n",
            s(&r["pg_dump_problem"])
        )),
    }
    out.push_str(&format!(
        "source:   {} ({})\n",
        s(&r["source"]["dir"]),
        s(&r["source"]["kind"])
    ));
    if let Some(a) = r["app"].as_object() {
        let commit = match (
            a["last_deployed_commit"].as_str(),
            a["last_deployment"].as_str(),
        ) {
            (Some(c), Some(d)) => format!("{} ({d})", &c[..c.len().min(12)]),
            (None, Some(d)) => format!("none recorded ({d})"),
            _ => "none (no successful deployment stands)".into(),
        };
        out.push_str(&format!(
            "app:      {} · branch {} on {} · last deployed {commit}{}\n",
            a["provider"].as_str().unwrap_or("none"),
            a["branch"].as_str().unwrap_or(""),
            a["remote"].as_str().unwrap_or(""),
            a["current_deployment"]
                .as_str()
                .map(|c| format!(" · serving {c}"))
                .unwrap_or_default()
        ));
    }
    match r["lock"].as_object() {
        Some(h) => out.push_str(&format!(
            "lock:     held by pid {} ({}) since {}\n",
            h["pid"],
            h["application_name"].as_str().unwrap_or(""),
            h["since"].as_str().unwrap_or("?")
        )),
        None => out.push_str("lock:     free\n"),
    }
    for (key, label) in [
        ("applied", "applied"),
        ("pending", "pending"),
        ("partial", "partially applied (a rerun resumes them)"),
        ("edited", "EDITED after being applied"),
        ("missing", "MISSING (applied, file gone)"),
        ("skipped", "SKIPPED (ordered before the newest applied one)"),
    ] {
        let items = r[key].as_array().cloned().unwrap_or_default();
        if items.is_empty() && key != "applied" && key != "pending" {
            continue;
        }
        out.push_str(&format!("\n{label}: {}\n", items.len()));
        let shown = if all {
            items.iter().map(Ok).collect()
        } else {
            crate::util::fold_items(&items, 5, 3)
        };
        for it in shown {
            match it {
                Ok(it) => {
                    let name = it["name"]
                        .as_str()
                        .map_or_else(|| format!("version {}", s(&it["version"])), str::to_string);
                    out.push_str(&format!("  {name}{}\n", partial_note(it)));
                }
                Err(n) => out.push_str(&format!("  ... {n} more (-v lists them all) ...\n")),
            }
        }
    }
    for p in r["interrupted_runs"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nINTERRUPTED: {}\n", s(p)));
    }
    for p in r["state_problems"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nWARNING: {}\n", s(p)));
    }
    out.trim_end().to_string()
}

/// For a partially applied migration: where a rerun resumes, and what stands in its way.
fn partial_note(item: &Value) -> String {
    let Some(done) = item["statements_done"].as_u64() else {
        return String::new();
    };
    let mut note = format!(" (statements 1-{done} committed; resumes at {})", done + 1);
    if let Some(n) = item["interrupted_statement"].as_u64() {
        note.push_str(&format!(
            "; statement {n} was running when a run ended: the next run checks what it did"
        ));
    }
    if item["edited_after_committed_part"] == true {
        note.push_str("; edited after its committed statements: --allow-edited continues it");
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_folded_unless_all_are_asked_for() {
        let pending: Vec<Value> = (1..=2000)
            .map(|i| json!({"name": format!("{i:05}_m"), "version": i.to_string()}))
            .collect();
        let r = json!({"target": "t", "server_version": "15", "pg_dump": "pg_dump",
                       "pg_dump_version": "15", "source": {"dir": "m", "kind": "sql"},
                       "applied": [], "pending": pending});
        let text = render(&r, false);
        assert!(text.contains("pending: 2000\n  00001_m\n"), "{text}");
        assert!(
            text.contains("  00005_m\n  ... 1992 more (-v lists them all) ...\n  01998_m\n"),
            "{text}"
        );
        assert!(text.ends_with("  02000_m"), "{text}");
        assert!(text.lines().count() < 25, "{text}");
        assert_eq!(
            render(&r, true)
                .lines()
                .filter(|l| l.ends_with("_m"))
                .count(),
            2000
        );
    }
}
