//! Vercel's REST API as the code half of a deployment uses it: the project, the deployment
//! built for a pushed commit, its readiness, the deployment serving an environment, instant
//! rollback; and deploy hooks ([`post_hook`]).
//!
//! It must never show the token: it lives in a [`Secret`], travels only in the `Authorization`
//! header (never in a URL or a body), and every message taken from an answer or a failure is
//! scrubbed of it ([`crate::http::sanitize`]). Redirects are never followed (see
//! [`crate::http`]). A deploy hook's URL is a secret too (see [`hook`]).
//!
//! # The API as used here
//!
//! Checked against Vercel's REST reference and the endpoints the Vercel CLI calls
//! (`packages/cli` of github.com/vercel/vercel):
//! - Base `https://api.vercel.com` (`VERCEL_API_URL` for tests), `Authorization: Bearer
//!   <token>`, `teamId=<id>` on every call of a team's project
//!   (<https://vercel.com/docs/rest-api>).
//! - `GET /v9/projects/{idOrName}` answers the project: `id`, `name`, and `targets.production`,
//!   the deployment its production domains point at now (after an instant rollback too).
//! - `GET /v6/deployments?projectId=&limit=&target=&state=&until=` answers `{deployments: [{uid,
//!   url, state|readyState, target, created|createdAt, meta: {githubCommitSha,
//!   githubCommitRef, …}}], pagination: {next}}`, newest first; `until=<next>` is the next
//!   page (<https://vercel.com/docs/rest-api/deployments/list-deployments>). Metadata is
//!   filtered with `meta-<key>=<value>` (the CLI's `vercel list --meta`: `vercel ls -m
//!   githubCommitSha=<sha>` is Vercel's documented way to find a commit's deployments). The
//!   commit and branch are read from GitHub's, GitLab's or Bitbucket's metadata keys; the
//!   server-side filter uses GitHub's, and the newest pages are read by hand when it finds
//!   nothing.
//! - `GET /v13/deployments/{id}` answers `{id, url, readyState, target, createdAt, meta}`;
//!   `readyState` is `QUEUED`, `INITIALIZING`, `BUILDING`, `READY`, `ERROR` or `CANCELED`.
//! - Instant rollback: `POST /v9/projects/{projectId}/rollback/{deploymentId}` with `{}`, as
//!   `vercel rollback` sends it (the reference also lists it as `/v1/…`); it points the
//!   production domains at that deployment, without a build.
//! - Errors are `{"error": {"code", "message"}}`; 429 carries `Retry-After`.
//!
//! Retries: see [`send`]. GETs are retried on 429, 5xx and broken connections; the rollback
//! POST only on 429 and 503.

mod hook;
mod send;
mod wire;

use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Env;
use crate::db::url::{Secret, percent_encode as enc};
pub use crate::http::RetryPolicy;
use crate::http::{Method, Raw, sanitize};
pub use hook::{check_hook_url, post_hook, post_hook_with};
use send::{Failure, send};
use wire::{DeploymentList, ErrorBody, Project, WireDeployment};

/// Vercel's API, unless `VERCEL_API_URL` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.vercel.com";

/// Deployments per list page when looking for a commit.
const PAGE: usize = 20;
/// Pages read when looking for a commit without the metadata filter.
const MAX_PAGES: usize = 3;
/// A progress line at least this often while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// Why a Vercel request failed. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum VercelError {
    #[error("{name} is not set: the vercel provider needs VERCEL_TOKEN and VERCEL_PROJECT_ID")]
    MissingEnv { name: &'static str },
    #[error("invalid Vercel configuration: {0}")]
    Config(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(
        "VERCEL_TOKEN cannot {access} project {project}: {request} answered HTTP {status}{detail}"
    )]
    Denied {
        access: &'static str,
        project: String,
        request: String,
        status: u16,
        detail: String,
    },
    #[error("Vercel project {project} not found ({request} answered HTTP 404{detail})")]
    ProjectNotFound {
        project: String,
        request: String,
        detail: String,
    },
    #[error("{action}: {request} answered HTTP {status}{detail}{}", attempts_suffix(*.attempts))]
    Api {
        action: String,
        request: String,
        status: u16,
        detail: String,
        attempts: u32,
    },
    #[error("{action}: {request} failed: {message}{}", attempts_suffix(*.attempts))]
    Transport {
        action: String,
        request: String,
        message: String,
        attempts: u32,
    },
    #[error("{action}: unexpected answer from {request}: {message}")]
    Decode {
        action: String,
        request: String,
        message: String,
    },
    #[error("Vercel deployment {id} of commit {} ended {state}", short(commit))]
    Failed {
        id: String,
        commit: String,
        state: ReadyState,
    },
    #[error("the Vercel deployment of commit {} is not ready after {}: {last}", short(commit), elapsed_label(*.waited))]
    Timeout {
        commit: String,
        /// The deployment, when it appeared.
        id: Option<String>,
        waited: Duration,
        /// Its last state, or "no deployment yet".
        last: String,
    },
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// A deployment's build state (`readyState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyState {
    Queued,
    Initializing,
    Building,
    Ready,
    Error,
    Canceled,
    Other(String),
}

impl ReadyState {
    pub fn parse(s: &str) -> ReadyState {
        match s.to_ascii_uppercase().as_str() {
            "QUEUED" => ReadyState::Queued,
            "INITIALIZING" => ReadyState::Initializing,
            "BUILDING" => ReadyState::Building,
            "READY" => ReadyState::Ready,
            "ERROR" => ReadyState::Error,
            "CANCELED" | "CANCELLED" => ReadyState::Canceled,
            _ => ReadyState::Other(sanitize(s, "")),
        }
    }

    /// `ERROR` or `CANCELED`: it will never be ready.
    pub fn is_failed(&self) -> bool {
        matches!(self, ReadyState::Error | ReadyState::Canceled)
    }
}

impl fmt::Display for ReadyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadyState::Queued => "QUEUED",
            ReadyState::Initializing => "INITIALIZING",
            ReadyState::Building => "BUILDING",
            ReadyState::Ready => "READY",
            ReadyState::Error => "ERROR",
            ReadyState::Canceled => "CANCELED",
            ReadyState::Other(s) if s.is_empty() => "UNKNOWN",
            ReadyState::Other(s) => s,
        })
    }
}

/// One deployment of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// Its own host name (`<name>-<hash>.vercel.app`), without a scheme.
    pub url: Option<String>,
    pub state: ReadyState,
    /// `production`, or none for a preview.
    pub target: Option<String>,
    /// The commit it was built from (the git provider's metadata).
    pub commit: Option<String>,
    /// The branch it was built from.
    pub branch: Option<String>,
    pub created_ms: i64,
}

/// A client of one Vercel project.
#[derive(Clone)]
pub struct Vercel {
    base_url: String,
    project: String,
    team: Option<String>,
    token: Secret,
    agent: ureq::Agent,
    retry: RetryPolicy,
    /// First and longest pause between two polls of [`Vercel::wait_ready`].
    poll: (Duration, Duration),
}

impl fmt::Debug for Vercel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vercel")
            .field("base_url", &self.base_url)
            .field("project", &self.project)
            .field("team", &self.team)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Vercel {
    /// From `VERCEL_TOKEN`, `VERCEL_PROJECT_ID`, `VERCEL_TEAM_ID` and `VERCEL_API_URL` (default
    /// [`DEFAULT_API_URL`]). `Ok(None)` without `VERCEL_TOKEN`; an error naming the variable
    /// when the token is set but `VERCEL_PROJECT_ID` is not, or a value is unusable.
    pub fn from_env(env: &Env) -> Result<Option<Vercel>, VercelError> {
        let value = |name: &str| env.get(name).map(str::trim).filter(|v| !v.is_empty());
        let Some(token) = value("VERCEL_TOKEN") else {
            return Ok(None);
        };
        let project = value("VERCEL_PROJECT_ID").ok_or(VercelError::MissingEnv {
            name: "VERCEL_PROJECT_ID",
        })?;
        let base = value("VERCEL_API_URL").unwrap_or(DEFAULT_API_URL);
        let mut vercel = Vercel::new(base, project, Secret::new(token))?;
        if let Some(team) = value("VERCEL_TEAM_ID") {
            check_id(team, "VERCEL_TEAM_ID").map_err(VercelError::Config)?;
            vercel.team = Some(team.to_string());
        }
        Ok(Some(vercel))
    }

    /// A client of `project` (id or name) at `base_url`: https, or http to a loopback address.
    pub fn new(base_url: &str, project: &str, token: Secret) -> Result<Vercel, VercelError> {
        let base_url =
            crate::http::check_base_url(base_url, "VERCEL_API_URL").map_err(VercelError::Config)?;
        let t = token.expose();
        if t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(VercelError::Config(
                "VERCEL_TOKEN is not a valid token".into(),
            ));
        }
        check_id(project, "VERCEL_PROJECT_ID").map_err(VercelError::Config)?;
        Ok(Vercel {
            agent: crate::http::agent(&base_url, Duration::from_secs(30)),
            base_url,
            project: project.to_string(),
            team: None,
            token,
            retry: RetryPolicy::default(),
            poll: (Duration::from_secs(1), Duration::from_secs(10)),
        })
    }

    /// How requests are retried (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// Pauses between polls of [`Vercel::wait_ready`]: `initial`, doubling up to `max`
    /// (default 1 s to 10 s).
    pub fn with_poll(mut self, initial: Duration, max: Duration) -> Self {
        self.poll = (initial, max.max(initial));
        self
    }

    /// The project as configured (`VERCEL_PROJECT_ID`: an id or a name).
    pub fn project_ref(&self) -> &str {
        &self.project
    }

    /// The project's name: proves the token can read it.
    pub async fn project(&self) -> Result<String, VercelError> {
        Ok(self.project_info().await?.name)
    }

    /// The newest READY deployment built from `branch` (production target when `production`):
    /// what serves the environment now. For production, the deployment the project's
    /// production domains point at (`targets.production`, right after an instant rollback
    /// too) when it was built from `branch`.
    pub async fn current(
        &self,
        branch: &str,
        production: bool,
    ) -> Result<Option<Deployment>, VercelError> {
        if production
            && let Some(id) = self
                .project_info()
                .await?
                .targets
                .and_then(|t| t.production?.id)
        {
            let d = self.deployment(&id).await?;
            if d.branch.as_deref().is_none_or(|b| b == branch) && d.state == ReadyState::Ready {
                return Ok(Some(d));
            }
        }
        let mut query = vec![("state", "READY".to_string())];
        if production {
            query.push(("target", "production".to_string()));
        }
        let action = format!("find the Vercel deployment serving branch {branch}");
        let filter = ("meta-githubCommitRef", branch.to_string());
        self.find_by_meta(&action, query, filter, |d| {
            d.branch.as_deref() == Some(branch) && d.state == ReadyState::Ready
        })
        .await
    }

    /// The newest deployment built for `commit` (a full sha, or a prefix of 7 or more).
    pub async fn for_commit(&self, commit: &str) -> Result<Option<Deployment>, VercelError> {
        let commit = commit.trim();
        if commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(VercelError::InvalidArgument(format!(
                "`{}` is not a git commit sha (7 to 40 hex digits)",
                sanitize(commit, "")
            )));
        }
        let action = format!("find the Vercel deployment of commit {}", short(commit));
        let matches = |d: &Deployment| d.commit.as_deref().is_some_and(|c| same_commit(c, commit));
        if commit.len() < 40 {
            // The metadata filter wants the full sha: the newest pages, by hand.
            return self.find(&action, Vec::new(), MAX_PAGES, matches).await;
        }
        let filter = ("meta-githubCommitSha", commit.to_ascii_lowercase());
        self.find_by_meta(&action, Vec::new(), filter, matches)
            .await
    }

    /// One deployment by id (`GET /v13/deployments/{id}`).
    pub async fn deployment(&self, id: &str) -> Result<Deployment, VercelError> {
        check_id(id, "the deployment id").map_err(VercelError::InvalidArgument)?;
        let action = format!("read Vercel deployment {id}");
        let path = format!("/v13/deployments/{}", enc(id));
        let wire: WireDeployment = self.get_json(&action, &path, &[]).await?;
        wire.into_deployment().ok_or_else(|| VercelError::Decode {
            action,
            request: format!("GET {path}"),
            message: "the deployment has no id".into(),
        })
    }

    /// Point the project's production domains back at `deployment_id` (no build).
    pub async fn instant_rollback(&self, deployment_id: &str) -> Result<(), VercelError> {
        check_id(deployment_id, "the deployment id").map_err(VercelError::InvalidArgument)?;
        let project = self.project_info().await?;
        let action = format!(
            "roll Vercel project {} back to {deployment_id}",
            project.name
        );
        let path = format!(
            "/v9/projects/{}/rollback/{}",
            enc(&project.id),
            enc(deployment_id)
        );
        self.call(&action, Method::Post, &path, &[], Some(&json!({})))
            .await
            .map(drop)
    }

    /// Point the production domains at `deployment_id` (`POST /v10/projects/{id}/promote/
    /// {deploymentId}`, no rebuild). After an instant rollback Vercel keeps production on the
    /// rolled-back deployment until one is promoted.
    pub async fn promote(&self, deployment_id: &str) -> Result<(), VercelError> {
        check_id(deployment_id, "the deployment id").map_err(VercelError::InvalidArgument)?;
        let project = self.project_info().await?;
        let action = format!("promote {deployment_id} in Vercel project {}", project.name);
        let path = format!(
            "/v10/projects/{}/promote/{}",
            enc(&project.id),
            enc(deployment_id)
        );
        self.call(&action, Method::Post, &path, &[], Some(&json!({})))
            .await
            .map(drop)
    }

    /// Find the deployment built for `commit` (it may take a while to appear) and poll it
    /// with backoff until READY. ERROR or CANCELED fail naming the id and the state; `timeout`
    /// ends the wait. `progress` hears each change of state, and every 15 s.
    pub async fn wait_ready(
        &self,
        commit: &str,
        timeout: Duration,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Deployment, VercelError> {
        let start = Instant::now();
        let mut reporter = Reporter::new(start);
        let mut delay = self.poll.0;
        let mut found: Option<Deployment> = None;
        loop {
            found = match &found {
                None => self.for_commit(commit).await?,
                Some(d) => Some(self.deployment(&d.id).await?),
            };
            match &found {
                Some(d) if d.state == ReadyState::Ready => return Ok(d.clone()),
                Some(d) if d.state.is_failed() => {
                    return Err(VercelError::Failed {
                        id: d.id.clone(),
                        commit: commit.to_string(),
                        state: d.state.clone(),
                    });
                }
                Some(d) => reporter.say(progress, &d.state.to_string(), |s, t| {
                    format!("building {} ({s}, {t}): {}", short(commit), d.id)
                }),
                None => reporter.say(progress, "", |_, t| {
                    format!(
                        "waiting for Vercel to start the deployment of {} ({t})",
                        short(commit)
                    )
                }),
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(VercelError::Timeout {
                    commit: commit.to_string(),
                    id: found.as_ref().map(|d| d.id.clone()),
                    waited: start.elapsed(),
                    last: found.map_or("no deployment yet".into(), |d| d.state.to_string()),
                });
            }
            tokio::time::sleep(delay.min(left)).await;
            delay = (delay * 2).min(self.poll.1);
        }
    }

    async fn project_info(&self) -> Result<Project, VercelError> {
        let action = format!("read Vercel project {}", self.project);
        let path = format!("/v9/projects/{}", enc(&self.project));
        match self.get_json(&action, &path, &[]).await {
            Err(VercelError::Api {
                status: 404,
                request,
                detail,
                ..
            }) => Err(VercelError::ProjectNotFound {
                project: self.project.clone(),
                request,
                detail,
            }),
            other => other,
        }
    }

    /// The newest deployment that `keep` accepts: first from a list filtered by `query` and
    /// the GitHub metadata `filter`, then (another git provider's metadata keys are named
    /// otherwise) from the newest [`MAX_PAGES`] pages filtered by `query` alone.
    async fn find_by_meta(
        &self,
        action: &str,
        query: Vec<(&str, String)>,
        filter: (&str, String),
        keep: impl Fn(&Deployment) -> bool,
    ) -> Result<Option<Deployment>, VercelError> {
        let mut filtered = query.clone();
        filtered.push(filter);
        if let Some(d) = self.find(action, filtered, 1, &keep).await? {
            return Ok(Some(d));
        }
        self.find(action, query, MAX_PAGES, keep).await
    }

    /// The newest deployment of the project that `keep` accepts, from at most `pages` list
    /// pages filtered by `query`.
    async fn find(
        &self,
        action: &str,
        mut query: Vec<(&str, String)>,
        pages: usize,
        keep: impl Fn(&Deployment) -> bool,
    ) -> Result<Option<Deployment>, VercelError> {
        query.push(("projectId", self.project.clone()));
        query.push(("limit", PAGE.to_string()));
        for _ in 0..pages {
            let list: DeploymentList = self.get_json(action, "/v6/deployments", &query).await?;
            let mut found: Vec<Deployment> = list
                .deployments
                .into_iter()
                .filter_map(WireDeployment::into_deployment)
                .filter(&keep)
                .collect();
            found.sort_by_key(|d| std::cmp::Reverse(d.created_ms));
            if let Some(d) = found.into_iter().next() {
                return Ok(Some(d));
            }
            let Some(next) = list.pagination.and_then(|p| p.next) else {
                break;
            };
            query.retain(|(k, _)| *k != "until");
            query.push(("until", next.to_string()));
        }
        Ok(None)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        action: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, VercelError> {
        let raw = self.call(action, Method::Get, path, query, None).await?;
        serde_json::from_str(&raw.body).map_err(|e| VercelError::Decode {
            action: action.to_string(),
            request: format!("GET {path}"),
            message: self.scrub(&e.to_string()),
        })
    }

    /// One request with retries; a 2xx answer, or the failure as a scrubbed error.
    async fn call(
        &self,
        action: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Raw, VercelError> {
        let mut url = format!("{}{path}", self.base_url);
        let team = self.team.iter().map(|t| ("teamId", t.clone()));
        for (i, (k, v)) in query.iter().cloned().chain(team).enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{}={}", enc(k), enc(&v)));
        }
        let token = self.token.expose();
        let request = format!("{} {path}", method.as_str());
        match send(&self.agent, method, &url, Some(token), body, &self.retry).await {
            Ok(raw) => Ok(raw),
            Err(Failure::Transport { message, attempts }) => Err(VercelError::Transport {
                action: action.to_string(),
                request,
                message: self.scrub(&message),
                attempts,
            }),
            Err(Failure::Status {
                raw,
                attempts,
                retry_after,
            }) => Err(self.api_error(action, method, request, &raw, attempts, retry_after)),
        }
    }

    fn api_error(
        &self,
        action: &str,
        method: Method,
        request: String,
        raw: &Raw,
        attempts: u32,
        retry_after: Option<Duration>,
    ) -> VercelError {
        let mut detail = self.detail(raw);
        if let Some(d) = retry_after {
            detail.push_str(&format!(" (Retry-After {}s)", d.as_secs()));
        }
        match raw.status {
            401 | 403 => VercelError::Denied {
                access: if method == Method::Get {
                    "read"
                } else {
                    "roll back"
                },
                project: self.project.clone(),
                request,
                status: raw.status,
                detail,
            },
            status => VercelError::Api {
                action: action.to_string(),
                request,
                status,
                detail,
                attempts,
            },
        }
    }

    /// Vercel's `error.code` and `error.message`, or the raw body, scrubbed: `" (code): msg"`.
    fn detail(&self, raw: &Raw) -> String {
        let parsed = serde_json::from_str::<ErrorBody>(&raw.body)
            .ok()
            .and_then(|b| b.error);
        let (code, message) = match parsed {
            Some(e) => (e.code, e.message.unwrap_or_default()),
            None => (None, raw.body.clone()),
        };
        let mut detail = String::new();
        if let Some(c) = code.filter(|c| !c.is_empty()) {
            detail.push_str(&format!(" ({})", self.scrub(&c)));
        }
        let message = self.scrub(&message);
        if !message.is_empty() {
            detail.push_str(&format!(": {message}"));
        }
        detail
    }

    fn scrub(&self, message: &str) -> String {
        sanitize(message, self.token.expose())
    }
}

/// Progress lines: on each change of state, and every [`PROGRESS_EVERY`] otherwise.
struct Reporter {
    start: Instant,
    last_state: Option<String>,
    last_line: Instant,
}

impl Reporter {
    fn new(start: Instant) -> Reporter {
        Reporter {
            start,
            last_state: None,
            last_line: start,
        }
    }

    fn say(
        &mut self,
        progress: &mut (dyn FnMut(&str) + Send),
        state: &str,
        line: impl Fn(&str, &str) -> String,
    ) {
        let changed = self.last_state.as_deref() != Some(state);
        if changed || self.last_line.elapsed() >= PROGRESS_EVERY {
            progress(&line(state, &elapsed_label(self.start.elapsed())));
            self.last_state = Some(state.to_string());
            self.last_line = Instant::now();
        }
    }
}

/// `40s`, `10m`, `1m30s`, `1h2m`.
pub(crate) fn elapsed_label(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// The first 7 characters of a commit sha.
pub(crate) fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// Two shas name the same commit: equal, or one a prefix (of 7 or more) of the other.
pub(crate) fn same_commit(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase());
    let n = a.len().min(b.len());
    n >= 7 && a[..n] == b[..n]
}

/// An id or name that can go into a URL path and be shown: printable, no spaces or slashes.
fn check_id(id: &str, what: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{}` is not a Vercel id or name",
            sanitize(id, "")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_commits() {
        assert_eq!(elapsed_label(Duration::from_secs(40)), "40s");
        assert_eq!(elapsed_label(Duration::from_secs(600)), "10m");
        assert_eq!(elapsed_label(Duration::from_secs(90)), "1m30s");
        assert!(same_commit("ABCDEF1", "abcdef1234567890"));
        assert!(!same_commit("abcdef", "abcdef1234567890"));
        assert!(!same_commit("abcdef2", "abcdef1234567890"));
        assert_eq!(ReadyState::parse("building"), ReadyState::Building);
        assert_eq!(ReadyState::parse("weird").to_string(), "weird");
    }

    #[test]
    fn debug_hides_the_token() {
        let v = Vercel::new("http://127.0.0.1:9", "prj_1", Secret::new("tok_SECRET")).unwrap();
        assert!(!format!("{v:?}").contains("tok_SECRET"));
    }
}
