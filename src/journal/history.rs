//! `pgship history [env]`: past runs, newest first, from the targets' `pgship.deployments`
//! merged with the local `.deployments/<id>/` folders (a folder whose run never reached the
//! table is shown as local-only).
//!
//! Read-only: never creates the `pgship` schema (a target without it has no history, which
//! is said, not an error). An unreachable environment is skipped with a warning when all are
//! listed; an environment asked for by name must answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::artifacts::{self, LocalRun};
use crate::config::Settings;
use crate::db::history::{self, DeploymentRow};
use crate::db::{ConnectOptions, DbUrl, connect};
use crate::error::Result;

/// One run as `history` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub environment: String,
    pub kind: String,
    /// `succeeded`, `failed`, `running`, `interrupted`, ...; `unknown` for a local folder
    /// without a final line.
    pub status: String,
    pub started_at: Option<jiff::Timestamp>,
    pub duration_ms: Option<i64>,
    pub migrations: Vec<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    /// The phase the run was in last, when recorded.
    pub phase: Option<String>,
    pub error: Option<String>,
    /// Whether the target's table has the run.
    pub recorded: bool,
    /// Whether `.deployments/<id>/` is here.
    pub local: bool,
}

/// What `history` found, and what it could not read.
#[derive(Debug, Default)]
pub struct History {
    pub items: Vec<Item>,
    /// Environments skipped or without history, said on stderr.
    pub notes: Vec<String>,
}

/// The history of `env` (its target must answer), or of every environment whose URL is set
/// (unreachable ones skipped with a note), merged with local folders; newest first, at most
/// `limit`.
pub async fn collect(settings: &Settings, env: Option<&str>, limit: usize) -> Result<History> {
    let mut out = History::default();
    let mut rows: BTreeMap<String, DeploymentRow> = BTreeMap::new();
    match env {
        Some(name) => {
            let target = settings.target(name)?;
            let url = DbUrl::parse(&target.url).map_err(crate::db::DbError::from)?;
            match read_target(&url, limit, &ConnectOptions::default()).await? {
                Some(found) => rows.extend(found.into_iter().map(|r| (r.id.clone(), r))),
                None => out.notes.push(no_history(name, &url)),
            }
        }
        None => read_all(settings, limit, &mut rows, &mut out.notes).await,
    }
    let local = artifacts::local_runs(&settings.project_dir, env).map_err(|e| {
        crate::error::Error::usage(format!(
            "reading {}: {e}",
            settings.project_dir.join(".deployments").display()
        ))
    })?;
    out.items = merge(rows.into_values().collect(), local, limit);
    Ok(out)
}

fn no_history(env: &str, url: &DbUrl) -> String {
    format!(
        "{env} ({}): no history: pgship has not recorded a run there (no pgship schema)",
        url.redacted()
    )
}

/// Every configured environment whose URL is set, read concurrently; one that does not
/// answer is a note.
async fn read_all(
    settings: &Settings,
    limit: usize,
    rows: &mut BTreeMap<String, DeploymentRow>,
    notes: &mut Vec<String>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for name in settings.environments.keys() {
        let Ok(target) = settings.target(name) else {
            continue; // its URL is not set: not deployed from here
        };
        let name = name.clone();
        tasks.spawn(async move {
            let url = DbUrl::parse(&target.url).map_err(|e| format!("{name}: {e}"))?;
            let opts = ConnectOptions {
                connect_timeout: Duration::from_secs(5),
                ..ConnectOptions::default()
            };
            match read_target(&url, limit, &opts).await {
                Ok(Some(found)) => Ok((name, found)),
                Ok(None) => Err(no_history(&name, &url)),
                Err(e) => Err(format!("{name} skipped: {e}")),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((_, found))) => rows.extend(found.into_iter().map(|r| (r.id.clone(), r))),
            Ok(Err(note)) => notes.push(note),
            Err(e) => notes.push(format!("reading an environment failed: {e}")),
        }
    }
    notes.sort();
}

/// A target's runs, `None` without a pgship schema.
async fn read_target(
    url: &DbUrl,
    limit: usize,
    opts: &ConnectOptions,
) -> std::result::Result<Option<Vec<DeploymentRow>>, crate::db::DbError> {
    let conn = connect(url, opts).await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    history::deployments(&conn.client, limit).await
}

/// Table rows and local folders as one list, newest first, at most `limit`.
pub fn merge(rows: Vec<DeploymentRow>, local: Vec<LocalRun>, limit: usize) -> Vec<Item> {
    let mut items: BTreeMap<String, Item> = rows
        .into_iter()
        .map(|r| (r.id.clone(), from_row(r)))
        .collect();
    for l in local {
        match items.get_mut(&l.id.id) {
            Some(item) => {
                item.local = true;
                item.git_commit = item.git_commit.take().or(l.git_commit);
                item.git_branch = item.git_branch.take().or(l.git_branch);
                if item.migrations.is_empty() {
                    item.migrations = l.migrations;
                }
            }
            None => {
                items.insert(l.id.id.clone(), from_local(l));
            }
        }
    }
    let mut list: Vec<Item> = items.into_values().collect();
    list.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    list.truncate(limit);
    list
}

fn from_row(r: DeploymentRow) -> Item {
    Item {
        id: r.id,
        environment: r.environment,
        kind: r.kind,
        status: r.status,
        started_at: Some(r.started_at),
        duration_ms: r.duration_ms,
        migrations: r.migrations,
        git_commit: r.git_commit,
        git_branch: r.git_branch,
        phase: r.phase,
        error: r.error,
        recorded: true,
        local: false,
    }
}

fn from_local(l: LocalRun) -> Item {
    Item {
        environment: l.id.environment.clone(),
        kind: l.id.kind.clone(),
        id: l.id.id,
        status: l.status.unwrap_or_else(|| "unknown".into()),
        started_at: l.started_at,
        duration_ms: l.duration_ms,
        migrations: l.migrations,
        git_commit: l.git_commit,
        git_branch: l.git_branch,
        phase: None,
        error: None,
        recorded: false,
        local: true,
    }
}

/// The list as text: a header and one row per run.
pub fn render(items: &[Item]) -> String {
    let mut rows = vec![
        [
            "ID",
            "ENV",
            "STATUS",
            "STARTED",
            "DURATION",
            "MIGRATIONS",
            "COMMIT",
        ]
        .map(str::to_string),
    ];
    rows.extend(items.iter().map(cells));
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            line.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cells(i: &Item) -> [String; 7] {
    let status = if i.recorded {
        i.status.clone()
    } else {
        format!("{} (local only)", i.status)
    };
    let started = i.started_at.map_or_else(String::new, |t| {
        t.to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    });
    let duration = i.duration_ms.map_or_else(String::new, human_duration);
    let migrations = if i.migrations.is_empty() {
        "-".to_string()
    } else {
        crate::util::fold_list(&i.migrations, 2, 1)
    };
    let commit = i
        .git_commit
        .as_deref()
        .map_or_else(|| "-".to_string(), |c| c.chars().take(7).collect());
    [
        i.id.clone(),
        i.environment.clone(),
        status,
        started,
        duration,
        migrations,
        commit,
    ]
}

/// `850ms`, `12.3s`, `2m05s`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, at_ms: i64, status: &str) -> DeploymentRow {
        DeploymentRow {
            id: id.into(),
            kind: "deploy".into(),
            environment: "dev".into(),
            target: "postgres://app:***@h/db".into(),
            status: status.into(),
            started_at: jiff::Timestamp::from_millisecond(at_ms).unwrap(),
            finished_at: None,
            duration_ms: Some(1500),
            migrations_applied: 1,
            migrations: vec![],
            git_commit: Some("daa88785c6bb43f9f6b86e3dafb49ecb6cf65918".into()),
            git_branch: Some("develop".into()),
            phase: None,
            error: None,
            rollback_state: None,
        }
    }

    fn local(id: &str, status: Option<&str>) -> LocalRun {
        let id = artifacts::parse_run_id(id).unwrap();
        LocalRun {
            started_at: jiff::Timestamp::from_millisecond(id.millis).ok(),
            id,
            duration_ms: None,
            status: status.map(str::to_string),
            migrations: vec!["0001_a".into(), "0002_b".into()],
            git_commit: None,
            git_branch: None,
        }
    }

    #[test]
    fn local_folders_merge_with_rows_and_the_rest_are_local_only() {
        let rows = vec![
            row("deploy-dev-1728149445123", 1_728_149_445_123, "succeeded"),
            row("deploy-dev-1728149446000", 1_728_149_446_000, "failed"),
        ];
        let locals = vec![
            local("deploy-dev-1728149445123", Some("succeeded")),
            local("deploy-dev-1728149447000", None),
        ];
        let items = merge(rows, locals, 20);
        let ids: Vec<(&str, bool, bool)> = items
            .iter()
            .map(|i| (i.id.as_str(), i.recorded, i.local))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("deploy-dev-1728149447000", false, true),
                ("deploy-dev-1728149446000", true, false),
                ("deploy-dev-1728149445123", true, true),
            ]
        );
        assert_eq!(
            items[2].migrations,
            vec!["0001_a", "0002_b"],
            "filled from the folder"
        );
        assert_eq!(items[0].status, "unknown");
        assert_eq!(
            merge(vec![], vec![local("deploy-dev-1728149447000", None)], 0),
            vec![]
        );
        let text = render(&items);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID "), "{text}");
        assert!(lines[1].contains("unknown (local only)"), "{text}");
        assert!(
            lines[3].contains("1.5s") && lines[3].ends_with("daa8878"),
            "{text}"
        );
        assert!(lines[3].contains("0001_a, 0002_b"), "{text}");
        assert_eq!(human_duration(999), "999ms");
        assert_eq!(human_duration(125_000), "2m05s");
    }
}
