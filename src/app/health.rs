//! The app's health endpoint (`<ENV>_URL` + the health path), and which commit it says it
//! runs.
//!
//! A deployment is live when the endpoint answers 2xx and, if its JSON body names a commit
//! (`commit`, `sha`, `gitCommit` or a configured field, at the top level or one object down,
//! e.g. `{"git": {"commit": …}}`), that commit is the expected one. An answer from the old
//! deployment is therefore never taken for success: the check keeps waiting, and its error
//! says what it saw last ("still serving <old>", "answered 500", "no answer").
//!
//! It must never show a secret the URL may carry: the URL is shown without its password and
//! its query (a protection-bypass token lives there), and so are failure messages.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::vercel_api::{elapsed_label, same_commit, short};
use crate::http::{Method, sanitize};

/// The commit fields read when none is configured, in this order.
pub const COMMIT_FIELDS: [&str; 3] = ["commit", "sha", "gitCommit"];

/// First pause between two attempts; it doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Longest single request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A progress line at least this often while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// Which commit the app must be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Any 2xx answer.
    Any,
    /// The commit just deployed (an answer naming another one is the old deployment).
    Commit(String),
    /// The commit just deployed, and the answer must name it: nothing else proves the new code
    /// is live (a deploy hook without an API to ask).
    NamedCommit(String),
    /// Anything but this commit (after a rollback: the new code must be gone).
    NotCommit(String),
}

/// A passed health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy {
    pub status: u16,
    /// The commit the body named, if any.
    pub commit: Option<String>,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// What one attempt saw.
enum Seen {
    Answer { status: u16, body: String },
    NoAnswer(String),
}

/// GET `url` until it answers 2xx with a commit that `expect` accepts, retrying with backoff
/// (0.5 s doubling to 5 s) within `timeout`. `field` names the body's commit field (default
/// [`COMMIT_FIELDS`]). `progress` hears each change of what the endpoint answers, and every
/// 15 s.
pub async fn wait_healthy(
    url: &str,
    expect: &Expect,
    field: Option<&str>,
    timeout: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Healthy, String> {
    let url = url.trim();
    let shown = redact(url);
    check_url(url, &shown)?;
    let start = Instant::now();
    let mut delay = FIRST_DELAY;
    let mut attempts = 0;
    let mut last: Option<String> = None;
    let mut last_line = start;
    loop {
        attempts += 1;
        let left = timeout.saturating_sub(start.elapsed());
        let seen = get(url, left.clamp(Duration::from_millis(200), REQUEST_TIMEOUT)).await;
        let why = match judge(seen, expect, field) {
            Ok((status, commit)) => {
                return Ok(Healthy {
                    status,
                    commit,
                    attempts,
                    elapsed: start.elapsed(),
                });
            }
            Err(why) => why,
        };
        if last.as_deref() != Some(&why) || last_line.elapsed() >= PROGRESS_EVERY {
            let t = elapsed_label(start.elapsed());
            progress(&format!("health check {shown}: {why} ({t}), retrying"));
            last_line = Instant::now();
        }
        last = Some(why);
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(timed_out(
                &shown,
                expect,
                timeout,
                attempts,
                last.as_deref(),
            ));
        }
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

fn timed_out(
    shown: &str,
    expect: &Expect,
    timeout: Duration,
    attempts: u32,
    last: Option<&str>,
) -> String {
    let wanted = match expect {
        Expect::Any => String::new(),
        Expect::Commit(c) | Expect::NamedCommit(c) => {
            format!(", waiting for commit {}", short(c))
        }
        Expect::NotCommit(c) => format!(", waiting for a commit other than {}", short(c)),
    };
    format!(
        "the health check of {shown} did not pass within {}: {} ({attempts} attempts{wanted})",
        elapsed_label(timeout),
        last.unwrap_or("no answer"),
    )
}

/// `Ok((status, commit))` when the answer passes, else what is wrong with it.
fn judge(
    seen: Seen,
    expect: &Expect,
    field: Option<&str>,
) -> Result<(u16, Option<String>), String> {
    let (status, body) = match seen {
        Seen::NoAnswer(why) => return Err(format!("no answer ({why})")),
        Seen::Answer { status, body } => (status, body),
    };
    if !(200..300).contains(&status) {
        return Err(format!("answered {status}"));
    }
    let commit = body_commit(&body, field);
    if let (Expect::NamedCommit(_), None) = (expect, &commit) {
        return Err(format!(
            "answered {status} naming no commit (a JSON field {}), so nothing proves the new code is live",
            field.map_or(COMMIT_FIELDS.join(", "), str::to_string)
        ));
    }
    let stale = match (expect, &commit) {
        (Expect::Commit(want) | Expect::NamedCommit(want), Some(got)) => !same_commit(want, got),
        (Expect::NotCommit(old), Some(got)) => same_commit(old, got),
        _ => false,
    };
    match commit {
        Some(got) if stale => Err(format!("still serving {}", short(&got))),
        commit => Ok((status, commit)),
    }
}

/// One GET, bounded by `timeout`.
async fn get(url: &str, timeout: Duration) -> Seen {
    let owned = url.to_string();
    let result = tokio::task::spawn_blocking(move || {
        let agent = crate::http::agent(&owned, timeout);
        crate::http::exchange(&agent, Method::Get, &owned, &[], None)
    })
    .await
    .unwrap_or_else(|_| Err("the HTTP worker thread panicked".into()));
    match result {
        Ok(raw) => Seen::Answer {
            status: raw.status,
            body: raw.body,
        },
        Err(e) => Seen::NoAnswer(scrub(&e, url)),
    }
}

/// The commit a JSON body names in `field` (default [`COMMIT_FIELDS`]), at the top level or
/// one object down.
pub fn body_commit(body: &str, field: Option<&str>) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let object = value.as_object()?;
    let fields: Vec<&str> = field.map_or(COMMIT_FIELDS.to_vec(), |f| vec![f]);
    let pick = |o: &serde_json::Map<String, Value>| {
        fields.iter().find_map(|f| {
            o.get(*f)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| sanitize(s, ""))
        })
    };
    pick(object).or_else(|| object.values().filter_map(Value::as_object).find_map(pick))
}

/// http or https with a host; errors quote only the redacted URL.
fn check_url(url: &str, shown: &str) -> Result<(), String> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || crate::http::url_host(url).is_none() {
        return Err(format!(
            "the health check URL {shown} is not an http(s) URL with a host"
        ));
    }
    Ok(())
}

/// `url` without its password and without its query.
pub fn redact(url: &str) -> String {
    let shown = match url.split_once('?') {
        Some((head, _)) => format!("{head}?…"),
        None => url.to_string(),
    };
    sanitize(&shown, "")
}

/// A failure message with the URL's query (which may carry a token) removed.
fn scrub(message: &str, url: &str) -> String {
    let mut s = sanitize(message, url);
    if let Some((_, query)) = url.split_once('?') {
        s = sanitize(&s, query);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_read_from_known_fields() {
        assert_eq!(
            body_commit(r#"{"commit":"abc1234"}"#, None).as_deref(),
            Some("abc1234")
        );
        assert_eq!(
            body_commit(r#"{"gitCommit":"abc1234"}"#, None).as_deref(),
            Some("abc1234")
        );
        assert_eq!(
            body_commit(r#"{"git":{"sha":"abc1234"}}"#, None).as_deref(),
            Some("abc1234")
        );
        assert_eq!(
            body_commit(r#"{"rev":"abc1234"}"#, Some("rev")).as_deref(),
            Some("abc1234")
        );
        assert_eq!(body_commit(r#"{"rev":"abc1234"}"#, None), None);
        assert_eq!(body_commit("ok", None), None);
    }

    #[test]
    fn old_commits_never_pass() {
        let new = Expect::Commit("def5678aaaa".into());
        let old = |c: &str| Seen::Answer {
            status: 200,
            body: format!(r#"{{"status":"ok","commit":"{c}"}}"#),
        };
        assert_eq!(
            judge(old("abc1234"), &new, None).unwrap_err(),
            "still serving abc1234"
        );
        assert!(judge(old("def5678"), &new, None).is_ok());
        let named = Expect::NamedCommit("def5678aaaa".into());
        let bare = |body: &str| Seen::Answer {
            status: 200,
            body: body.into(),
        };
        assert!(judge(bare(r#"{"status":"ok"}"#), &new, None).is_ok());
        let e = judge(bare(r#"{"status":"ok"}"#), &named, None).unwrap_err();
        assert!(e.contains("naming no commit"), "{e}");
        assert!(judge(old("abc1234"), &named, None).is_err());
        assert!(judge(old("def5678"), &named, None).is_ok());
        let gone = Expect::NotCommit("def5678".into());
        assert!(judge(old("def5678aaaa"), &gone, None).is_err());
        assert!(judge(old("abc1234"), &gone, None).is_ok());
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        let shown =
            redact("https://u:pw@app.example.com/api/health?x-vercel-protection-bypass=SEKRET");
        assert!(
            !shown.contains("SEKRET") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
