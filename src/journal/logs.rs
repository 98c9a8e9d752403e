//! `pgship logs <deployment-id>`: a run's log lines, from `.deployments/<id>/deployment.log`
//! when the folder is here, else from the target's `pgship.deployment_logs` (the target is the
//! environment named in the id). Filters by phase and minimum level; `--follow` polls the file
//! or the table every 500 ms until the run's row is no longer `running` or a final line
//! appears.
//!
//! Read-only: never writes the log, the table or the target. The id is validated before it
//! becomes a path (see [`super::artifacts::parse_run_id`]).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::artifacts::{self, RunId};
use super::{Console, Entry, Level};
use crate::config::Settings;
use crate::db::history::{self, LogQuery, StoredLog};
use crate::db::{ConnectOptions, DbUrl, connect};
use crate::error::{Error, ExitCode, Result};

const POLL: Duration = Duration::from_millis(500);

/// What to show.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    /// Only this phase (any case).
    pub phase: Option<String>,
    /// Only lines at or above this level (SUCCESS counts as INFO).
    pub min_level: Option<Level>,
    pub follow: bool,
    /// One JSON object per line (the log line itself) instead of text.
    pub json: bool,
}

/// Where the lines come from.
enum Source {
    File {
        path: PathBuf,
        offset: u64,
        rest: String,
    },
    Table {
        after_id: i64,
    },
}

/// Print the lines of `req.id` to stdout; with `follow`, until the run ends (0) or a signal
/// (130/143). Exit 2 for a malformed or unknown id.
pub async fn run(settings: &Settings, req: &Request) -> Result<ExitCode> {
    let id = artifacts::parse_run_id(&req.id)
        .map_err(|e| Error::usage(e).with_hint("`pgship history` lists the ids of past runs"))?;
    let path = artifacts::log_path(&settings.project_dir, &id);
    let target = target_url(settings, &id);
    let mut source = if path.is_file() {
        Source::File {
            path: path.clone(),
            offset: 0,
            rest: String::new(),
        }
    } else {
        Source::Table { after_id: 0 }
    };
    // The file needs the target only to learn when a followed run ends.
    let client = match (&source, &target) {
        (Source::Table { .. }, Ok(url)) => Some(connect(url, &ConnectOptions::default()).await?),
        (Source::Table { .. }, Err(why)) => return Err(unknown(&id, &path, why)),
        (Source::File { .. }, Ok(url)) if req.follow => connect(url, &quick()).await.ok(),
        _ => None,
    };
    let client = client.as_ref().map(|c| &c.client);
    if let (Source::Table { .. }, Some(c)) = (&source, client) {
        if !recorded(c, &id.id).await? {
            let url = target.as_ref().map(DbUrl::redacted).unwrap_or_default();
            let why =
                format!("pgship.deployment_logs and pgship.deployments on {url} have no such run");
            return Err(unknown(&id, &path, &why));
        }
    }
    let mut out = Printer { req, ended: false };
    read_new(&mut source, client, &id, &mut out).await?;
    if !req.follow || out.ended {
        return Ok(ExitCode::Ok);
    }
    follow(&mut source, client, &id, &mut out).await
}

/// Poll until the run ends or a signal arrives.
async fn follow(
    source: &mut Source,
    client: Option<&tokio_postgres::Client>,
    id: &RunId,
    out: &mut Printer<'_>,
) -> Result<ExitCode> {
    let mut signals = crate::signals::Signals::install()
        .map_err(|e| Error::usage(format!("cannot install signal handlers: {e}")))?;
    loop {
        let still_running = match client {
            Some(c) => running(c, &id.id).await?,
            None => true,
        };
        read_new(source, client, id, out).await?;
        if out.ended || !still_running {
            return Ok(ExitCode::Ok);
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            s = signals.recv() => return Ok(s.exit_code()),
        }
    }
}

/// The URL of the environment an id names, or why there is none.
fn target_url(settings: &Settings, id: &RunId) -> std::result::Result<DbUrl, String> {
    if id.environment == "url" {
        return Err(
            "the run was against a URL given on the command line, which pgship does not keep"
                .into(),
        );
    }
    let target = settings
        .target(&id.environment)
        .map_err(|e| e.to_string())?;
    DbUrl::parse(&target.url).map_err(|e| e.to_string())
}

fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

/// Whether the target knows the run: its row, or any line of it.
async fn recorded(client: &tokio_postgres::Client, id: &str) -> Result<bool> {
    if history::deployment(client, id).await?.is_some() {
        return Ok(true);
    }
    let q = LogQuery {
        deployment_id: id,
        ..LogQuery::default()
    };
    Ok(!history::logs(client, &q).await?.is_empty())
}

/// Whether the run's row still says `running` (a run without a row is not known to end).
async fn running(client: &tokio_postgres::Client, id: &str) -> Result<bool> {
    Ok(history::deployment(client, id)
        .await?
        .is_none_or(|d| d.status == "running"))
}

fn unknown(id: &RunId, path: &Path, why: &str) -> Error {
    Error::usage(format!(
        "unknown deployment {}: no {} here, and {why}",
        id.id,
        path.display()
    ))
    .with_hint("`pgship history` lists past runs; run `logs` from the project folder that ran it, or set the environment's URL")
}

/// Print what is new since the last call.
async fn read_new(
    source: &mut Source,
    client: Option<&tokio_postgres::Client>,
    id: &RunId,
    out: &mut Printer<'_>,
) -> Result<()> {
    match source {
        Source::File { path, offset, rest } => {
            for line in read_appended(path, offset, rest)? {
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    out.show(&e, Some(&line));
                }
            }
        }
        Source::Table { after_id } => {
            let Some(c) = client else { return Ok(()) };
            let q = LogQuery {
                deployment_id: &id.id,
                after_id: *after_id,
                ..LogQuery::default()
            };
            for row in history::logs(c, &q).await? {
                *after_id = row.id;
                out.show(&entry_of(row), None);
            }
        }
    }
    Ok(())
}

/// Complete lines appended to `path` since `offset`; a line still being written waits in
/// `rest` for its newline.
fn read_appended(path: &Path, offset: &mut u64, rest: &mut String) -> Result<Vec<String>> {
    let fail = |e: std::io::Error| Error::usage(format!("reading {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(fail)?;
    f.seek(SeekFrom::Start(*offset)).map_err(fail)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(fail)?;
    *offset += bytes.len() as u64;
    rest.push_str(&String::from_utf8_lossy(&bytes));
    let Some(end) = rest.rfind('\n') else {
        return Ok(Vec::new());
    };
    let complete: Vec<String> = rest[..end].lines().map(str::to_string).collect();
    *rest = rest[end + 1..].to_string();
    Ok(complete)
}

/// A stored row as the log line it was written from.
pub fn entry_of(row: StoredLog) -> Entry {
    Entry {
        timestamp: row.timestamp,
        deployment_id: row.deployment_id,
        phase: row.phase,
        level: Level::parse(&row.level).unwrap_or(Level::Info),
        message: row.message,
        metadata: row.metadata,
        stack_trace: row.stack_trace,
    }
}

/// Filters and prints lines; notes a final line.
struct Printer<'a> {
    req: &'a Request,
    ended: bool,
}

impl Printer<'_> {
    fn show(&mut self, e: &Entry, raw: Option<&str>) {
        self.ended |= artifacts::is_terminal(e);
        if !wanted(self.req, e) {
            return;
        }
        let text = if self.req.json {
            raw.map(str::to_string)
                .unwrap_or_else(|| serde_json::to_string(e).unwrap_or_default())
        } else {
            render(e)
        };
        let mut stdout = anstream::stdout();
        // A closed pipe (`| head`) ends the output, not the command.
        let _ = writeln!(stdout, "{text}");
    }
}

/// Whether a line passes `--phase` and `--level`.
pub fn wanted(req: &Request, e: &Entry) -> bool {
    req.phase
        .as_deref()
        .is_none_or(|p| p.eq_ignore_ascii_case(&e.phase))
        && req.min_level.is_none_or(|l| e.level.rank() >= l.rank())
}

/// `16:30:45.123 DEPLOY INFO message` (local time), the level coloured, an error chain
/// indented below.
pub fn render(e: &Entry) -> String {
    let time = e
        .timestamp
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%H:%M:%S%.3f")
        .to_string();
    let style = Console::level_style(e.level);
    let mut text = format!(
        "{time} {} {style}{}{style:#} {}",
        e.phase, e.level, e.message
    );
    if let Some(trace) = &e.stack_trace {
        for line in trace.lines() {
            text.push_str("\n    ");
            text.push_str(line);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(phase: &str, level: Level) -> Entry {
        Entry {
            timestamp: "2025-10-05T16:30:45.123Z".parse().unwrap(),
            deployment_id: "deploy-dev-1728149445123".into(),
            phase: phase.into(),
            level,
            message: "m".into(),
            metadata: serde_json::json!({}),
            stack_trace: None,
        }
    }

    fn req(phase: Option<&str>, level: Option<Level>) -> Request {
        Request {
            id: String::new(),
            phase: phase.map(str::to_string),
            min_level: level,
            follow: false,
            json: false,
        }
    }

    #[test]
    fn filters_by_phase_and_minimum_level() {
        let r = req(Some("deploy"), Some(Level::Info));
        assert!(wanted(&r, &entry("DEPLOY", Level::Info)));
        assert!(wanted(&r, &entry("DEPLOY", Level::Success)));
        assert!(wanted(&r, &entry("DEPLOY", Level::Error)));
        assert!(!wanted(&r, &entry("DEPLOY", Level::Debug)));
        assert!(!wanted(&r, &entry("BACKUP", Level::Error)));
        let warn = req(None, Some(Level::Warn));
        assert!(!wanted(&warn, &entry("SUCCESS", Level::Success)));
        assert!(wanted(&warn, &entry("ROLLBACK", Level::Warn)));
    }

    #[test]
    fn text_lines_have_time_phase_level_and_the_chain() {
        let mut e = entry("DEPLOY", Level::Error);
        e.stack_trace = Some("a\ncaused by: b".into());
        let text = render(&e);
        let first = text.lines().next().unwrap();
        let (time, rest) = first.split_once(' ').unwrap();
        assert_eq!(time.len(), 12, "{time}");
        assert!(time.ends_with(":45.123"), "{time}");
        assert!(rest.starts_with("DEPLOY "), "{rest}");
        assert!(rest.contains("ERROR"), "{rest}");
        assert!(rest.ends_with(" m"), "{rest}");
        assert!(text.ends_with("\n    a\n    caused by: b"), "{text}");
    }

    #[test]
    fn appended_lines_are_read_once_and_a_torn_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deployment.log");
        std::fs::write(&p, "one\ntw").unwrap();
        let (mut offset, mut rest) = (0, String::new());
        assert_eq!(
            read_appended(&p, &mut offset, &mut rest).unwrap(),
            vec!["one"]
        );
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        write!(f, "o\nthree\n").unwrap();
        assert_eq!(
            read_appended(&p, &mut offset, &mut rest).unwrap(),
            vec!["two", "three"]
        );
        assert!(
            read_appended(&p, &mut offset, &mut rest)
                .unwrap()
                .is_empty()
        );
    }
}
