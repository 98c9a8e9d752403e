//! The local artifacts of past runs: `.deployments/<id>/` folders, their ids, and what their
//! `deployment.log` says about the run (for `history` and `logs`).
//!
//! An id comes from the command line: it is validated before it becomes a path, so `../x`
//! or `a/b` can never name a file outside `.deployments/`. Reading only; never writes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{Entry, phase};

/// The kinds of run that write a journal.
pub const KINDS: [&str; 4] = ["deploy", "migrate", "plan", "rollback"];

/// A run id, `<kind>-<env>-<unix-millis>` (a short `-<suffix>` after the millis is allowed,
/// for runs started in the same millisecond).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunId {
    pub id: String,
    pub kind: String,
    pub environment: String,
    pub millis: i64,
}

/// Check an id's shape and split it. The error says what was expected.
pub fn parse_run_id(id: &str) -> Result<RunId, String> {
    let expected = "expected <kind>-<environment>-<unix-millis> such as deploy-dev-1728149445123 \
                    (kind: deploy, migrate, plan or rollback)";
    let bad = |why: &str| format!("`{}` is not a deployment id: {why}; {expected}", shown(id));
    if id.is_empty() || id.len() > 200 {
        return Err(bad("wrong length"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad("only letters, digits, `-` and `_` may appear"));
    }
    let Some((kind, rest)) = id.split_once('-') else {
        return Err(bad("no kind"));
    };
    if !KINDS.contains(&kind) {
        return Err(bad(&format!("unknown kind `{kind}`")));
    }
    let parts: Vec<&str> = rest.split('-').collect();
    let millis_at = parts
        .iter()
        .rposition(|p| p.len() >= 10 && p.len() <= 16 && p.chars().all(|c| c.is_ascii_digit()))
        .filter(|&i| i >= 1 && parts.len() - i <= 2)
        .ok_or_else(|| bad("no environment and unix-millis"))?;
    let environment = parts[..millis_at].join("-");
    if environment.is_empty() || parts[..millis_at].iter().any(|p| p.is_empty()) {
        return Err(bad("empty environment"));
    }
    Ok(RunId {
        id: id.to_string(),
        kind: kind.to_string(),
        environment,
        millis: parts[millis_at].parse().map_err(|_| bad("millis"))?,
    })
}

/// An id as shown in a message: control characters escaped, long ids cut.
fn shown(id: &str) -> String {
    let cut: String = id.chars().take(80).collect();
    cut.escape_debug().to_string()
}

/// `.deployments/<id>` under the project folder.
pub fn run_dir(project_dir: &Path, id: &RunId) -> PathBuf {
    project_dir.join(".deployments").join(&id.id)
}

/// `.deployments/<id>/deployment.log`.
pub fn log_path(project_dir: &Path, id: &RunId) -> PathBuf {
    run_dir(project_dir, id).join("deployment.log")
}

/// Whether a line ends a run: its phase is a final one (SUCCESS, FAILED, ABORTED,
/// ROLLED_BACK, NEEDS_HUMAN), or it is a plan's decision (a plan changes nothing and has no row).
pub fn is_terminal(e: &Entry) -> bool {
    matches!(
        e.phase.as_str(),
        phase::SUCCESS | phase::FAILED | phase::ABORTED | phase::ROLLED_BACK | phase::NEEDS_HUMAN
    ) || (e.deployment_id.starts_with("plan-")
        && e.metadata.get("phase_event").and_then(|v| v.as_str()) == Some("end")
        && e.metadata.get("decision").is_some()
        && (e.phase == phase::SANDBOX_VALIDATION
            || e.metadata["decision"].as_str() == Some("nothing-to-do")))
}

/// The status a run's last line implies (`None` while it has no final line).
pub fn status_of(last: &Entry) -> Option<String> {
    if !is_terminal(last) {
        return None;
    }
    Some(match last.phase.as_str() {
        phase::SUCCESS => "succeeded".to_string(),
        phase::FAILED => "failed".to_string(),
        phase::ABORTED => "aborted".to_string(),
        phase::ROLLED_BACK => "rolled_back".to_string(),
        phase::NEEDS_HUMAN => "needs_human".to_string(),
        _ => match last.metadata["decision"].as_str() {
            Some(d) => format!("planned: {d}"),
            None => "planned".to_string(),
        },
    })
}

/// Parse log lines; a line that is not one of ours (cut short by a crash, edited) is skipped
/// and counted.
pub fn parse_lines(text: &str) -> (Vec<Entry>, usize) {
    let mut skipped = 0;
    let entries = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            serde_json::from_str::<Entry>(l)
                .inspect_err(|_| skipped += 1)
                .ok()
        })
        .collect();
    (entries, skipped)
}

/// What a local folder says about its run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalRun {
    pub id: RunId,
    pub started_at: Option<jiff::Timestamp>,
    pub duration_ms: Option<i64>,
    /// From the final line; `None` when the log has none (running, or killed).
    pub status: Option<String>,
    pub migrations: Vec<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
}

/// Every run folder under `.deployments/` whose name is a run id (of `environment` when
/// given), newest first. A missing folder is no runs.
pub fn local_runs(project_dir: &Path, environment: Option<&str>) -> std::io::Result<Vec<LocalRun>> {
    let root = project_dir.join(".deployments");
    let dir = match std::fs::read_dir(&root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry?;
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_run_id(n).ok())
        else {
            continue;
        };
        if environment.is_some_and(|e| e != id.environment) || !entry.file_type()?.is_dir() {
            continue;
        }
        out.push(read_local(project_dir, id));
    }
    out.sort_by(|a, b| b.id.millis.cmp(&a.id.millis).then(b.id.id.cmp(&a.id.id)));
    Ok(out)
}

/// Summarize one folder from its log and its `rollback-state.json` (either may be missing).
pub fn read_local(project_dir: &Path, id: RunId) -> LocalRun {
    let dir = run_dir(project_dir, &id);
    let entries = read_log(&dir.join("deployment.log"));
    let first = entries.first();
    let last = entries.last();
    let state: serde_json::Value = std::fs::read_to_string(dir.join("rollback-state.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let status = last.and_then(status_of);
    let duration_ms = match (first, last, &status) {
        (Some(f), Some(l), Some(_)) => {
            Some(l.timestamp.as_millisecond() - f.timestamp.as_millisecond())
        }
        _ => None,
    };
    LocalRun {
        started_at: first
            .map(|e| e.timestamp)
            .or_else(|| jiff::Timestamp::from_millisecond(id.millis).ok()),
        duration_ms,
        status,
        migrations: migrations_of(&entries),
        git_commit: state["gitCommit"].as_str().map(str::to_string),
        git_branch: state["gitBranch"].as_str().map(str::to_string),
        id,
    }
}

/// The log's lines, bounded: a run's summary needs its first and last lines and the lists of
/// migrations, so lines past the first 100,000 are skipped (but the last one is kept).
fn read_log(path: &Path) -> Vec<Entry> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut last = None;
    for (n, line) in BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .enumerate()
    {
        let Ok(e) = serde_json::from_str::<Entry>(&line) else {
            continue;
        };
        if n < 100_000 {
            out.push(e);
        } else {
            last = Some(e);
        }
    }
    out.extend(last);
    out
}

/// The migrations a run applied (its final line's `applied`), else the ones it had pending.
fn migrations_of(entries: &[Entry]) -> Vec<String> {
    let list = |key: &str| {
        entries.iter().rev().find_map(|e| {
            e.metadata.get(key)?.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
        })
    };
    list("applied")
        .filter(|a| !a.is_empty())
        .or_else(|| list("pending"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_split_and_traversal_is_refused() {
        let id = parse_run_id("deploy-dev-1728149445123").unwrap();
        assert_eq!(
            (id.kind.as_str(), id.environment.as_str()),
            ("deploy", "dev")
        );
        assert_eq!(id.millis, 1_728_149_445_123);
        let id = parse_run_id("migrate-pre-prod-1728149445123-2").unwrap();
        assert_eq!(id.environment, "pre-prod");
        assert_eq!(
            parse_run_id("rollback-url-1728149445123").unwrap().kind,
            "rollback"
        );
        for bad in [
            "../x",
            "deploy-dev-1728149445123/../../etc",
            "deploy/../../x",
            "deploy-dev",
            "deploy--1728149445123",
            "deploy-1728149445123",
            "sneaky-dev-1728149445123",
            "deploy-dev-12",
            "",
            "deploy-dev-1728149445123-a-b-c",
            "deploy-dev-1728149445123\n",
        ] {
            let e = parse_run_id(bad).unwrap_err();
            assert!(e.contains("is not a deployment id"), "{bad}: {e}");
        }
    }

    fn entry(phase: &str, id: &str, meta: serde_json::Value) -> Entry {
        Entry {
            timestamp: jiff::Timestamp::UNIX_EPOCH,
            deployment_id: id.into(),
            phase: phase.into(),
            level: super::super::Level::Info,
            message: String::new(),
            metadata: meta,
            stack_trace: None,
        }
    }

    #[test]
    fn final_lines_give_the_status() {
        let j = serde_json::json!({});
        assert_eq!(
            status_of(&entry("SUCCESS", "deploy-dev-1", j.clone())).as_deref(),
            Some("succeeded")
        );
        assert_eq!(
            status_of(&entry("NEEDS_HUMAN", "deploy-dev-1", j.clone())).as_deref(),
            Some("needs_human")
        );
        assert_eq!(
            status_of(&entry("ABORTED", "deploy-dev-1", j.clone())).as_deref(),
            Some("aborted")
        );
        assert_eq!(status_of(&entry("DEPLOY", "deploy-dev-1", j.clone())), None);
        let decided = serde_json::json!({"phase_event": "end", "decision": "proceed"});
        assert_eq!(
            status_of(&entry("SANDBOX_VALIDATION", "plan-dev-1", decided.clone())).as_deref(),
            Some("planned: proceed")
        );
        assert_eq!(
            status_of(&entry("SANDBOX_VALIDATION", "deploy-dev-1", decided)),
            None
        );
    }

    #[test]
    fn a_torn_line_is_skipped_and_counted() {
        let good = r#"{"timestamp":"2025-10-05T16:30:45.123Z","deploymentId":"deploy-dev-1","phase":"DEPLOY","level":"INFO","message":"m","metadata":{}}"#;
        let (e, skipped) = parse_lines(&format!("{good}\n{{\"timest\n"));
        assert_eq!((e.len(), skipped), (1, 1));
        assert_eq!(e[0].timestamp.as_millisecond(), 1_759_681_845_123);
    }
}
