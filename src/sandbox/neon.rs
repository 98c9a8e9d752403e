//! The `neon` sandbox strategy: a Neon branch of the target's branch, with its own read-write
//! compute, created for one rehearsal and deleted after it.
//!
//! This file is the Neon API client and the branch lifecycle (find the target's branch, create,
//! wait, delete, list for `sandbox gc`); `transport` does the HTTP, retries and scrubbing, and
//! `url` builds the sandbox's connection URL. It must never:
//! - show the API key: it lives in a [`Secret`], travels only in the `Authorization` header
//!   (never in a URL), and every message taken from a response is scrubbed of it, of
//!   `Bearer` tokens and of URL passwords, stripped of control characters and capped;
//! - blindly repeat a request Neon may already have carried out (see *Retries*);
//! - follow redirects (the key would go wherever the redirect points);
//! - lose track of a branch it created: once Neon has answered a create, every later failure
//!   is [`NeonError::CreatedButNotReady`], which carries the branch id for cleanup.
//!
//! # The Neon API as used here
//!
//! Checked against Neon's documentation:
//! - Base URL `https://console.neon.tech/api/v2`, header `Authorization: Bearer $NEON_API_KEY`:
//!   <https://neon.com/docs/reference/api/key-concepts>, <https://neon.com/docs/guides/branching-neon-api>.
//! - `POST /projects/{project_id}/branches` with
//!   `{"branch": {"parent_id", "name"}, "endpoints": [{"type": "read_write"}]}` answers
//!   `branch`, `endpoints` (with `id` and `host`), `operations` (`create_branch`,
//!   `start_compute`), `roles`, `databases` and, optionally, `connection_uris`
//!   (`[{connection_uri, connection_parameters}]`, used by [`branch_url`]); a branch name has 1
//!   to 256 characters: <https://neon.com/docs/reference/api/branches/create-project-branch>.
//! - `GET /projects/{project_id}/operations/{operation_id}` answers `{"operation": {id, action,
//!   status, failures_count, …}}`. Statuses are `scheduling`, `running`, `finished`, `failed`,
//!   `cancelling`, `cancelled`, `skipped`; the terminal ones are `finished`, `skipped` and
//!   `cancelled`, and "a `failed` operation is not terminal and may be retried":
//!   <https://neon.com/docs/reference/api/operations>,
//!   <https://neon.com/docs/manage/operations#poll-operation-status> (which also lists operations
//!   with `GET /projects/{project_id}/operations`).
//! - `GET /projects/{project_id}/endpoints` answers `{"endpoints": [{id, host,
//!   hosts.read_write_pooled_host, branch_id, type}]}`:
//!   <https://neon.com/docs/reference/api/endpoints/list-project-endpoints>; a branch's own
//!   endpoints: `GET /projects/{project_id}/branches/{branch_id}/endpoints`
//!   (<https://neon.com/docs/reference/api/branches/list-project-branch-endpoints>). Pooled and
//!   direct host names differ only by `-pooler`:
//!   <https://neon.com/faqs/find-connection-details-neon-console>.
//! - `DELETE /projects/{project_id}/branches/{branch_id}` answers `branch` and `operations`;
//!   "the deletion completes after all operations finish":
//!   <https://neon.com/docs/reference/api/branches/delete-project-branch>.
//! - `GET /projects/{project_id}/branches?search=…&cursor=…` answers `branches` and
//!   `pagination.next`; `search` matches partial names or ids, so the prefix is checked here:
//!   <https://neon.com/docs/reference/api/branches/list-project-branches>.
//! - Errors are `{"code", "message", "request_id"?}`; 429 above 700 requests a minute (40 a
//!   second per route), "use retry logic with exponential backoff"; `423 Locked` while a
//!   conflicting operation runs: <https://neon.com/docs/reference/api/key-concepts>.
//!
//! # Retries
//!
//! Neon's "General Error" guidance (e.g. <https://api-docs.neon.tech/reference/createprojectbranchrole>):
//! GET is safe to retry after a network error or timeout; POST, PATCH, PUT and DELETE "are
//! considered non-idempotent" and retrying them "is generally not safe"; any 503 and any 423 is
//! safe to retry. So every request is retried on 429 (honouring `Retry-After`, RFC 9110
//! §10.2.3, which Neon does not document but may send), 423 and 503, with exponential backoff,
//! jitter, a bounded number of attempts and a bounded total sleep. Other 5xx and transport
//! errors are retried for GET, and for DELETE because a repeated delete of a deleted branch is a
//! 404, which counts as done. A POST that failed that way may have created the branch, so
//! [`NeonClient::create_branch`] looks for a branch with its name before it posts again, and
//! adopts it if it is there.

mod transport;
mod url;
mod wire;

use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Env;
use crate::db::url::{DbUrl, Secret};
pub use transport::RetryPolicy;
use transport::{Method, Raw, Transport, enc as seg, sanitize};
pub use url::{branch_url, sandbox_url};
use wire::{
    BranchInfo, BranchList, CreatedBranch, EndpointList, OpState, Operation, OperationEnvelope,
    OperationList,
};

/// Neon's API, unless `NEON_API_URL` says otherwise.
pub const DEFAULT_API_URL: &str = "https://console.neon.tech/api/v2";

/// The name of every branch pgship creates starts with this (`pgship-sandbox-<id>`), which is
/// how `sandbox gc` tells them from the project's other branches.
pub const BRANCH_PREFIX: &str = "pgship-sandbox-";

/// Most pages of branches read by [`NeonClient::list_branches`].
const MAX_PAGES: usize = 100;

/// Why a Neon request failed. Never contains the API key or a URL password.
#[derive(Debug, thiserror::Error)]
pub enum NeonError {
    #[error(
        "{name} is not set: the neon sandbox needs NEON_API_KEY and NEON_PROJECT_ID (NEON_API_URL is optional)"
    )]
    MissingEnv { name: &'static str },
    #[error("invalid Neon configuration: {0}")]
    Config(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// `detail` is Neon's `code`, `message` and `request_id`, sanitized.
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
    /// `detail` is the operation's `failures_count` and `error`, sanitized.
    #[error("{action}: Neon operation {operation_id} ({op_action}) ended `{status}`{detail}")]
    OperationFailed {
        action: String,
        operation_id: String,
        op_action: String,
        status: String,
        detail: String,
    },
    #[error("{action}: gave up after {:.1}s waiting for Neon operation {operation_id} ({op_action}), last status `{status}`",
        .waited.as_secs_f64())]
    Timeout {
        action: String,
        operation_id: String,
        op_action: String,
        status: String,
        waited: Duration,
    },
    #[error("no compute endpoint of Neon project {project_id} serves host {host}")]
    EndpointNotFound { host: String, project_id: String },
    #[error("Neon returned no read-write endpoint for branch {branch_id}")]
    NoEndpoint { branch_id: String },
    #[error("{action}: several Neon branches are named `{name}`")]
    Ambiguous { action: String, name: String },
    /// Neon created the branch, then something failed: the branch exists and must be deleted.
    #[error("Neon branch {branch_id} (`{name}`) was created but is not usable: {reason}")]
    CreatedButNotReady {
        branch_id: String,
        name: String,
        reason: Box<NeonError>,
    },
}

impl NeonError {
    /// The branch a failed [`NeonClient::create_branch`] left behind, to be deleted.
    pub fn created_branch(&self) -> Option<&str> {
        match self {
            NeonError::CreatedButNotReady { branch_id, .. } => Some(branch_id),
            _ => None,
        }
    }

    /// Neon may have carried out the request although it failed (a 5xx other than 503, or a
    /// broken connection).
    fn outcome_unknown(&self) -> bool {
        match self {
            NeonError::Api { status, .. } => *status >= 500 && *status != 503,
            NeonError::Transport { .. } => true,
            _ => false,
        }
    }
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// How operations are awaited.
#[derive(Debug, Clone)]
struct PollPolicy {
    initial: Duration,
    max: Duration,
    /// Total wait for the operations of one action.
    timeout: Duration,
    /// How long a `failed` operation may stay failed (Neon retries them) before pgship gives up.
    failed_grace: Duration,
}

/// A branch: the one created for a sandbox, or one found by [`NeonClient::list_branches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeonBranch {
    pub id: String,
    pub name: String,
    /// The direct (un-pooled) host of its read-write endpoint.
    pub host: Option<String>,
    /// The id of its read-write endpoint (`ep-…`), when known.
    pub endpoint_id: Option<String>,
    /// As Neon reports it (RFC 3339).
    pub created_at: Option<String>,
    /// The `connection_uris` of Neon's create answer (one per role and database, with the
    /// role's password), parsed; entries that are not PostgreSQL URLs are left out. Empty for a
    /// listed or adopted branch. See [`branch_url`].
    pub connection_uris: Vec<DbUrl>,
}

/// A client of one Neon project.
#[derive(Clone)]
pub struct NeonClient {
    project_id: String,
    http: Transport,
    poll: PollPolicy,
}

impl fmt::Debug for NeonClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeonClient")
            .field("base_url", &self.http.base_url())
            .field("project_id", &self.project_id)
            .field("api_key", self.http.api_key())
            .finish_non_exhaustive()
    }
}

impl NeonClient {
    /// `NEON_API_KEY`, `NEON_PROJECT_ID` and `NEON_API_URL` (default [`DEFAULT_API_URL`]).
    pub fn from_env(env: &Env) -> Result<NeonClient, NeonError> {
        let project = env_value(env, "NEON_PROJECT_ID")?;
        NeonClient::for_project(env, project)
    }

    /// A client of `project` (e.g. the one a sandbox's record names) with `NEON_API_KEY` and
    /// `NEON_API_URL` from `env`.
    pub fn for_project(env: &Env, project: &str) -> Result<NeonClient, NeonError> {
        let key = env_value(env, "NEON_API_KEY")?;
        let url = env
            .get("NEON_API_URL")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_API_URL);
        NeonClient::new(url, project, Secret::new(key))
    }

    /// A client of `project_id` at `base_url`: https, or http to a loopback address (tests).
    pub fn new(base_url: &str, project_id: &str, api_key: Secret) -> Result<NeonClient, NeonError> {
        let http = Transport::new(base_url, api_key)?;
        if project_id.is_empty()
            || !project_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NeonError::Config(format!(
                "NEON_PROJECT_ID `{}` is not a Neon project id",
                sanitize(project_id, "")
            )));
        }
        Ok(NeonClient {
            project_id: project_id.to_string(),
            http,
            poll: PollPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(5),
                timeout: Duration::from_secs(300),
                failed_grace: Duration::from_secs(60),
            },
        })
    }

    /// Poll operations every `interval` (default: from 1 s, growing to 5 s).
    pub fn with_poll(mut self, interval: Duration) -> Self {
        self.poll.initial = interval;
        self.poll.max = interval;
        self
    }

    /// Give up waiting for the operations of one action after `timeout` (default 5 min).
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.poll.timeout = timeout;
        self
    }

    /// Accept an operation staying `failed` (Neon retries those) for `grace` (default 60 s).
    pub fn with_failed_grace(mut self, grace: Duration) -> Self {
        self.poll.failed_grace = grace;
        self
    }

    /// How requests are retried (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.http.retry = retry;
        self
    }

    /// Bound every HTTP exchange, connection included, by `timeout` (default 30 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.http.set_timeout(timeout);
        self
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The branch of the endpoint serving `host` (the target URL's host; a `-pooler` host maps
    /// to its direct endpoint).
    pub async fn branch_for_host(&self, host: &str) -> Result<String, NeonError> {
        let action = format!("find the Neon branch serving {host}");
        let path = format!("/projects/{}/endpoints", seg(&self.project_id));
        let list: EndpointList = self.get_json(&action, &path).await?;
        let direct = direct_host(host);
        list.endpoints
            .iter()
            .find(|e| {
                e.host.eq_ignore_ascii_case(&direct)
                    || e.pooled_host()
                        .is_some_and(|p| p.eq_ignore_ascii_case(host))
            })
            .map(|e| e.branch_id.clone())
            .ok_or_else(|| NeonError::EndpointNotFound {
                host: host.to_string(),
                project_id: self.project_id.clone(),
            })
    }

    /// Create branch `name` from branch `parent` with a read-write endpoint, wait for its
    /// operations, and return its id and endpoint host. Once Neon has created the branch, any
    /// failure is [`NeonError::CreatedButNotReady`] (see [`NeonError::created_branch`]).
    pub async fn create_branch(&self, parent: &str, name: &str) -> Result<NeonBranch, NeonError> {
        if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
            return Err(NeonError::InvalidArgument(format!(
                "`{}` is not a Neon branch name (1 to 256 characters)",
                sanitize(name, "")
            )));
        }
        if parent.is_empty() {
            return Err(NeonError::InvalidArgument(
                "the parent branch id is empty".into(),
            ));
        }
        let action = format!("create Neon branch `{name}` from {parent}");
        let path = format!("/projects/{}/branches", seg(&self.project_id));
        let body = json!({
            "branch": {"parent_id": parent, "name": name},
            "endpoints": [{"type": "read_write"}],
        });
        let mut attempt = 1;
        loop {
            match self
                .http
                .send(&action, Method::Post, &path, Some(&body), false)
                .await
            {
                Ok(raw) => return self.finish_created(&action, name, &path, &raw).await,
                Err(e) if e.outcome_unknown() => {
                    // Neon may have created it: look before posting again.
                    if let Some(found) = self.find_branch_named(&action, name).await? {
                        return self.adopt(&action, found).await;
                    }
                    if attempt >= self.http.retry.max_attempts {
                        return Err(with_attempts(e, attempt));
                    }
                    tokio::time::sleep(self.http.retry.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Delete the branch and wait for its operations. A branch that is already gone (404) is
    /// success.
    pub async fn delete_branch(&self, id: &str) -> Result<(), NeonError> {
        if !id.starts_with("br-") {
            return Err(NeonError::InvalidArgument(format!(
                "`{}` is not a Neon branch id (they start with `br-`)",
                sanitize(id, "")
            )));
        }
        let action = format!("delete Neon branch {id}");
        let path = format!("/projects/{}/branches/{}", seg(&self.project_id), seg(id));
        let raw = self
            .http
            .send(&action, Method::Delete, &path, None, true)
            .await?;
        if raw.status == 404 {
            return Ok(());
        }
        let deleted: OperationList = self.decode(&action, Method::Delete, &path, &raw)?;
        self.wait(&action, deleted.operations).await
    }

    /// Restore branch `target` to the head of branch `source` (`POST
    /// /projects/{p}/branches/{target}/restore` with `source_branch_id`), keeping the state it
    /// had under the name `preserve_as` (Neon requires that name when the branch has
    /// children), and wait for its operations. Not retried blindly: see *Retries*.
    pub async fn restore_branch(
        &self,
        target: &str,
        source: &str,
        preserve_as: &str,
    ) -> Result<(), NeonError> {
        for id in [target, source] {
            if !id.starts_with("br-") {
                return Err(NeonError::InvalidArgument(format!(
                    "`{}` is not a Neon branch id (they start with `br-`)",
                    sanitize(id, "")
                )));
            }
        }
        let action = format!("restore Neon branch {target} from {source}");
        let path = format!(
            "/projects/{}/branches/{}/restore",
            seg(&self.project_id),
            seg(target)
        );
        let body = json!({"source_branch_id": source, "preserve_under_name": preserve_as});
        let raw = self
            .http
            .send(&action, Method::Post, &path, Some(&body), false)
            .await?;
        let restored: OperationList = self.decode(&action, Method::Post, &path, &raw)?;
        self.wait(&action, restored.operations).await
    }

    /// Branches whose name starts with `prefix` (for `sandbox gc`), oldest first. The
    /// project's default branch and protected branches are never listed.
    pub async fn list_branches(&self, prefix: &str) -> Result<Vec<NeonBranch>, NeonError> {
        if prefix.trim().is_empty() {
            return Err(NeonError::InvalidArgument(
                "refusing to list Neon branches with an empty prefix: it would match every branch"
                    .into(),
            ));
        }
        let action = format!("list Neon branches named `{prefix}*`");
        let branches = self.search_branches(&action, prefix).await?;
        let path = format!("/projects/{}/endpoints", seg(&self.project_id));
        let endpoints: EndpointList = self.get_json(&action, &path).await?;
        let mut out: Vec<NeonBranch> = branches
            .into_iter()
            .filter(|b| b.name.starts_with(prefix) && !b.default && !b.protected)
            .map(|b| {
                let endpoint = endpoints.read_write(&b.id);
                NeonBranch {
                    host: endpoint.map(|e| e.host.clone()),
                    endpoint_id: endpoint.and_then(|e| e.id.clone()),
                    id: b.id,
                    name: b.name,
                    created_at: b.created_at,
                    connection_uris: Vec::new(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The branch and operations from a create answer; then wait.
    async fn finish_created(
        &self,
        action: &str,
        name: &str,
        path: &str,
        raw: &Raw,
    ) -> Result<NeonBranch, NeonError> {
        let value: Value = self.decode(action, Method::Post, path, raw)?;
        let Some(id) = value
            .pointer("/branch/id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(NeonError::Decode {
                action: action.to_string(),
                request: format!("POST {path}"),
                message: "the answer has no branch.id".into(),
            });
        };
        let result = async {
            let created: CreatedBranch =
                serde_json::from_value(value).map_err(|e| NeonError::Decode {
                    action: action.to_string(),
                    request: format!("POST {path}"),
                    message: self.http.scrub(&e.to_string()),
                })?;
            let connection_uris = created
                .connection_uris()
                .iter()
                .filter_map(|u| DbUrl::parse(u).ok())
                .collect();
            self.wait(action, created.operations).await?;
            let endpoint = created
                .endpoints
                .iter()
                .find(|e| e.kind == "read_write")
                .ok_or_else(|| NeonError::NoEndpoint {
                    branch_id: created.branch.id.clone(),
                })?;
            Ok(NeonBranch {
                host: Some(endpoint.host.clone()),
                endpoint_id: endpoint.id.clone(),
                id: created.branch.id,
                name: created.branch.name,
                created_at: created.branch.created_at,
                connection_uris,
            })
        }
        .await;
        result.map_err(|e| created_but_not_ready(id, name, e))
    }

    /// A branch created by a POST whose answer was lost: find its endpoint and operations.
    async fn adopt(&self, action: &str, branch: BranchInfo) -> Result<NeonBranch, NeonError> {
        let (id, name) = (branch.id.clone(), branch.name.clone());
        let result = async {
            let path = format!(
                "/projects/{}/branches/{}/endpoints",
                seg(&self.project_id),
                seg(&branch.id)
            );
            let endpoints: EndpointList = self.get_json(action, &path).await?;
            let path = format!("/projects/{}/operations", seg(&self.project_id));
            let ops: OperationList = self.get_json(action, &path).await?;
            let mine = ops
                .operations
                .into_iter()
                .filter(|o| o.branch_id.as_deref() == Some(branch.id.as_str()))
                .collect();
            self.wait(action, mine).await?;
            let endpoint =
                endpoints
                    .read_write(&branch.id)
                    .ok_or_else(|| NeonError::NoEndpoint {
                        branch_id: branch.id.clone(),
                    })?;
            Ok(NeonBranch {
                host: Some(endpoint.host.clone()),
                endpoint_id: endpoint.id.clone(),
                id: branch.id,
                name: branch.name,
                created_at: branch.created_at,
                connection_uris: Vec::new(),
            })
        }
        .await;
        result.map_err(|e| created_but_not_ready(id, &name, e))
    }

    /// The one branch named exactly `name`, if any.
    async fn find_branch_named(
        &self,
        action: &str,
        name: &str,
    ) -> Result<Option<BranchInfo>, NeonError> {
        let mut found: Vec<BranchInfo> = self
            .search_branches(action, name)
            .await?
            .into_iter()
            .filter(|b| b.name == name)
            .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(NeonError::Ambiguous {
                action: action.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// Every page of `GET …/branches?search=`.
    async fn search_branches(
        &self,
        action: &str,
        search: &str,
    ) -> Result<Vec<BranchInfo>, NeonError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!(
                "/projects/{}/branches?search={}",
                seg(&self.project_id),
                seg(search)
            );
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(&seg(c));
            }
            let page: BranchList = self.get_json(action, &path).await?;
            let empty = page.branches.is_empty();
            out.extend(page.branches);
            let next = page
                .pagination
                .and_then(|p| p.next)
                .filter(|n| !n.is_empty());
            if empty || next.is_none() || next == cursor {
                return Ok(out);
            }
            cursor = next;
        }
        Ok(out)
    }

    /// Wait until every operation is `finished` or `skipped`.
    async fn wait(&self, action: &str, operations: Vec<Operation>) -> Result<(), NeonError> {
        let started = Instant::now();
        let deadline = started + self.poll.timeout;
        let mut pending: Vec<(Operation, Option<Instant>)> =
            operations.into_iter().map(|o| (o, None)).collect();
        let mut interval = self.poll.initial;
        loop {
            let mut still = Vec::with_capacity(pending.len());
            for (op, failed_since) in pending {
                match op.state() {
                    OpState::Done => {}
                    OpState::Pending => still.push((op, None)),
                    OpState::Failed => {
                        let since = failed_since.unwrap_or_else(Instant::now);
                        if since.elapsed() >= self.poll.failed_grace {
                            return Err(self.op_failed(action, op));
                        }
                        still.push((op, Some(since)));
                    }
                    OpState::Ended => return Err(self.op_failed(action, op)),
                }
            }
            pending = still;
            let Some((first, _)) = pending.first() else {
                return Ok(());
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(NeonError::Timeout {
                    action: action.to_string(),
                    operation_id: first.id.clone(),
                    op_action: first.action.clone(),
                    status: first.status.clone(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = interval.mul_f64(1.5).min(self.poll.max);
            for (op, _) in &mut pending {
                *op = self.get_operation(action, &op.id).await?;
            }
        }
    }

    async fn get_operation(&self, action: &str, id: &str) -> Result<Operation, NeonError> {
        let path = format!("/projects/{}/operations/{}", seg(&self.project_id), seg(id));
        let env: OperationEnvelope = self.get_json(action, &path).await?;
        Ok(env.operation)
    }

    fn op_failed(&self, action: &str, op: Operation) -> NeonError {
        let mut detail = String::new();
        if let Some(n) = op.failures_count.filter(|n| *n > 0) {
            detail.push_str(&format!(" (failures: {n})"));
        }
        if let Some(e) = op.error.filter(|e| !e.trim().is_empty()) {
            detail.push_str(": ");
            detail.push_str(&self.http.scrub(&e));
        }
        NeonError::OperationFailed {
            action: action.to_string(),
            operation_id: op.id,
            op_action: op.action,
            status: op.status,
            detail,
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        action: &str,
        path: &str,
    ) -> Result<T, NeonError> {
        let raw = self
            .http
            .send(action, Method::Get, path, None, false)
            .await?;
        self.decode(action, Method::Get, path, &raw)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        action: &str,
        method: Method,
        path: &str,
        raw: &Raw,
    ) -> Result<T, NeonError> {
        serde_json::from_str(&raw.body).map_err(|e| NeonError::Decode {
            action: action.to_string(),
            request: format!("{} {path}", method.as_str()),
            message: self.http.scrub(&e.to_string()),
        })
    }
}

/// A variable that must be set and not blank.
fn env_value<'a>(env: &'a Env, name: &'static str) -> Result<&'a str, NeonError> {
    env.get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(NeonError::MissingEnv { name })
}

fn with_attempts(mut e: NeonError, n: u32) -> NeonError {
    if let NeonError::Api { attempts, .. } | NeonError::Transport { attempts, .. } = &mut e {
        *attempts = n;
    }
    e
}

fn created_but_not_ready(branch_id: String, name: &str, reason: NeonError) -> NeonError {
    NeonError::CreatedButNotReady {
        branch_id,
        name: name.to_string(),
        reason: Box::new(reason),
    }
}

/// The direct endpoint host of a possibly pooled one: `ep-x-pooler.region…` → `ep-x.region…`.
fn direct_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.split_once('.') {
        Some((label, rest)) => match label.strip_suffix("-pooler") {
            Some(direct) => format!("{direct}.{rest}"),
            None => host,
        },
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooler_hosts_map_to_direct() {
        assert_eq!(
            direct_host("ep-cool-darkness-a5b6c7d8-pooler.c-3.us-east-2.aws.neon.tech"),
            "ep-cool-darkness-a5b6c7d8.c-3.us-east-2.aws.neon.tech"
        );
        assert_eq!(
            direct_host("EP-X.Region.neon.tech"),
            "ep-x.region.neon.tech"
        );
        assert_eq!(direct_host("localhost"), "localhost");
    }

    #[test]
    fn unknown_outcome_only_for_ambiguous_failures() {
        let api = |status| NeonError::Api {
            action: "a".into(),
            request: "POST /x".into(),
            status,
            detail: ": m".into(),
            attempts: 1,
        };
        assert!(api(500).outcome_unknown());
        assert!(api(504).outcome_unknown());
        assert!(!api(503).outcome_unknown());
        assert!(!api(400).outcome_unknown());
        assert!(!api(429).outcome_unknown());
    }

    #[test]
    fn client_debug_hides_the_key() {
        let c = NeonClient::new(
            "https://console.neon.tech/api/v2",
            "proj-1",
            Secret::new("napi_s3cr3t"),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("napi_s3cr3t") && shown.contains("***"),
            "{shown}"
        );
        assert!(NeonClient::new("https://x.test", "bad/id", Secret::new("k")).is_err());
    }
}
