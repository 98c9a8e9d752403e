//! The demo's simulated Vercel: a loopback server speaking the shapes of Vercel's REST API and
//! deploy hooks, and hearing pushes to a bare repository the way Vercel's git integration does.
//! Only `pgship demo` and the tests start it; `deploy` never uses it (it talks to whatever
//! `VERCEL_API_URL` names, the real API by default). The knobs the tests need (faults, scripts,
//! a rejected token, a required team) are part of it; the demo uses the defaults.
//!
//! [`FakeVercel`] follows Vercel's REST API for the calls pgship makes (bearer auth, `teamId`,
//! `{"error": {"code", "message"}}` errors):
//! - `GET /v9/projects/{idOrName}`: `{id, name, accountId, targets: {production: <deployment>}}`;
//! - `GET /v6/deployments?projectId&limit&until&state&target&meta-<key>`: `{deployments: [{uid,
//!   name, url, created, createdAt, state, readyState, target, meta}], pagination: {count,
//!   next, prev}}`, newest first, `next` the `until` of the next page;
//! - `GET /v13/deployments/{id}`: `{id, url, readyState, target, createdAt, meta, …}`;
//! - `POST /v9/projects/{projectId}/rollback/{deploymentId}`: 201, production now serves it,
//!   pinned: new production deployments do not take the domains until a promotion;
//! - `POST /v10/projects/{projectId}/promote/{deploymentId}`: 201, production serves it again
//!   and new ones take it again;
//! - `POST /v1/integrations/deploy/{projectId}/{hookId}` (no auth: the URL is the secret):
//!   201 `{"job": {"id", "state": "PENDING", "createdAt"}}`, and a deployment of the hook
//!   branch's newest commit.
//!
//! A deployment comes from a git push ([`FakeVercel::on_git_push`], or [`FakeVercel::watch`]
//! which notices pushes to a bare repository the way Vercel's git integration hears them) or
//! from the deploy hook, and behaves as the [`Script`] in force when it was made: invisible to
//! the first N list calls, `QUEUED` then `BUILDING` for N polls, then READY (production ones
//! then serve the production domains), ERROR, CANCELED, or never ready.
//!
//! [`super::app_sim::FakeApp`] is the deployed app's `GET /api/health`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use super::loopback::{self, Reply, Request, Server};
use crate::config::Env;

/// The simulated project's token: not a real one, and (a canary for the tests) it must appear
/// nowhere but in the `Authorization` header.
pub const TOKEN: &str = "vcp_CANARYtoken_7Qm2xZ9";
pub const PROJECT_ID: &str = "prj_FakeProject01";
pub const PROJECT_NAME: &str = "pgship-demo";
pub const TEAM_ID: &str = "team_FakeTeam01";
/// A canary: the hook id is the hook URL's secret part.
pub const HOOK_ID: &str = "HOOKcanary93kd";

/// How a new deployment behaves.
#[derive(Debug, Clone)]
pub struct Script {
    /// List calls that do not show it yet.
    pub appear_after_lists: u32,
    /// Polls (`GET /v13/deployments/{id}`) before it reaches `end` (0 with `READY`: ready at
    /// once).
    pub polls: u32,
    /// `READY`, `ERROR`, `CANCELED`, or `NEVER` (building forever).
    pub end: &'static str,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            appear_after_lists: 0,
            polls: 2,
            end: "READY",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dep {
    pub id: String,
    pub commit: String,
    pub branch: String,
    pub target: Option<String>,
    pub created: i64,
    pub state: String,
    pub script: Script,
    pub lists_seen: u32,
    pub polls: u32,
}

/// An injected answer for the next `remaining` requests matching `method` and `path_prefix`.
pub struct Fault {
    pub method: &'static str,
    pub path_prefix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub remaining: usize,
}

#[derive(Default)]
pub struct State {
    pub requests: Vec<Request>,
    pub deployments: Vec<Dep>,
    /// The deployment the production domains point at.
    pub production: Option<String>,
    /// An instant rollback pinned the production domains: new production deployments do not
    /// take them until one is promoted (Vercel's "auto-assignment" is off after a rollback).
    pub pinned: bool,
    /// Every instant rollback, the target deployment's id, oldest first.
    pub rollbacks: Vec<String>,
    /// Every promotion, the deployment's id, oldest first.
    pub promotions: Vec<String>,
    pub script: Script,
    pub faults: Vec<Fault>,
    /// The newest commit of each branch, as the git provider knows it.
    pub heads: HashMap<String, String>,
    pub production_branch: String,
    /// The branch the deploy hook deploys.
    pub hook_branch: String,
    /// Required `teamId`, when the project belongs to a team.
    pub team: Option<String>,
    /// Every authenticated call answers this (401/403) when set.
    pub reject: Option<u16>,
    pub counter: u32,
    clock: i64,
    /// The bare repository whose pushes Vercel hears ([`FakeVercel::watch`]).
    watched: Option<Watched>,
}

struct Watched {
    repo: PathBuf,
    deploy_on_push: bool,
    seen: HashMap<String, String>,
}

#[derive(Clone)]
pub struct FakeVercel {
    pub port: u16,
    state: Arc<Mutex<State>>,
    _server: Arc<Server>,
}

/// The state, also after a panic elsewhere poisoned the lock (a fake must keep answering).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeVercel {
    /// A project whose production branch is `main`; the hook deploys `main` too. Listens on a
    /// loopback port until the last clone is dropped.
    pub fn start() -> std::io::Result<FakeVercel> {
        let state = Arc::new(Mutex::new(State {
            production_branch: "main".into(),
            hook_branch: "main".into(),
            clock: 1_760_000_000_000,
            ..State::default()
        }));
        let weak = Arc::downgrade(&state);
        let server = loopback::serve(Arc::new(move |req| match weak.upgrade() {
            Some(state) => handle(&mut lock(&state), req),
            None => Reply::json(503, &json!({})),
        }))?;
        Ok(FakeVercel {
            port: server.port(),
            state,
            _server: Arc::new(server),
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The deploy hook's URL (a secret).
    pub fn hook_url(&self) -> String {
        format!(
            "{}/v1/integrations/deploy/{PROJECT_ID}/{HOOK_ID}",
            self.api_url()
        )
    }

    /// VERCEL_TOKEN, VERCEL_PROJECT_ID and VERCEL_API_URL pointing here.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("VERCEL_TOKEN".into(), TOKEN.into()),
            ("VERCEL_PROJECT_ID".into(), PROJECT_ID.into()),
            ("VERCEL_API_URL".into(), self.api_url()),
        ]
    }

    pub fn env(&self) -> Env {
        Env::from_pairs(self.vars())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut lock(&self.state))
    }

    /// Pushes to `branch` make production deployments (an environment served as production).
    pub fn with_production_branch(&self, branch: &str) {
        self.with(|st| st.production_branch = branch.to_string());
    }

    /// The deploy hook builds `branch`.
    pub fn with_hook_branch(&self, branch: &str) {
        self.with(|st| st.hook_branch = branch.to_string());
    }

    /// Deployments made from now on follow `script`.
    pub fn script(&self, script: Script) {
        self.with(|st| st.script = script);
    }

    /// The project belongs to team `team`: every call must carry `teamId=<team>`.
    pub fn require_team(&self, team: &str) {
        self.with(|st| st.team = Some(team.to_string()));
    }

    /// Every authenticated call answers `status` (401 or 403): the token was revoked.
    pub fn reject_token(&self, status: u16) {
        self.with(|st| st.reject = Some(status));
    }

    /// The next `times` requests `method path_prefix…` answer `status` with Vercel's error
    /// body (which quotes the request's Authorization header, as a careless proxy might).
    pub fn fault(&self, method: &'static str, path_prefix: &str, status: u16, times: usize) {
        self.fault_with(method, path_prefix, status, times, &[]);
    }

    pub fn fault_with(
        &self,
        method: &'static str,
        path_prefix: &str,
        status: u16,
        times: usize,
        headers: &[(&str, &str)],
    ) {
        let fault = Fault {
            method,
            path_prefix: path_prefix.to_string(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remaining: times,
        };
        self.with(|st| st.faults.push(fault));
    }

    /// Vercel's git integration hears that `commit` was pushed to `branch`: a deployment
    /// starts (production for the production branch). Its id.
    pub fn on_git_push(&self, commit: &str, branch: &str) -> String {
        self.with(|st| {
            st.heads.insert(branch.to_string(), commit.to_string());
            new_deployment(st, commit, branch)
        })
    }

    /// The git provider knows `commit` as `branch`'s newest (without a deployment).
    pub fn set_head(&self, branch: &str, commit: &str) {
        self.with(|st| st.heads.insert(branch.to_string(), commit.to_string()));
    }

    /// A deployment that finished long ago: READY, and serving production when `production`.
    pub fn add_ready(&self, commit: &str, branch: &str, production: bool) -> String {
        self.with(|st| {
            let id = new_deployment(st, commit, branch);
            if let Some(d) = st.deployments.iter_mut().find(|d| d.id == id) {
                d.state = "READY".into();
                d.script.appear_after_lists = 0;
                d.target = production.then(|| "production".to_string());
            }
            if production {
                st.production = Some(id.clone());
            }
            id
        })
    }

    /// Watch the bare repository `bare` as Vercel's git integration would: every change of a
    /// branch's head becomes [`FakeVercel::on_git_push`] (or, without `deploy_on_push`, only
    /// the new head the deploy hook builds). A push is heard within 50 ms, and always before
    /// the next API request is answered. Stops when the fake is dropped.
    pub fn watch(&self, bare: &Path, deploy_on_push: bool) {
        let seen = branch_heads(bare).unwrap_or_default();
        self.with(|st| {
            for (branch, commit) in &seen {
                st.heads.insert(branch.clone(), commit.clone());
            }
            st.watched = Some(Watched {
                repo: bare.to_path_buf(),
                deploy_on_push,
                seen,
            });
        });
        let weak: Weak<Mutex<State>> = Arc::downgrade(&self.state);
        std::thread::spawn(move || {
            while let Some(state) = weak.upgrade() {
                sync(&mut lock(&state));
                drop(state);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }

    pub fn requests(&self) -> Vec<Request> {
        self.with(|st| st.requests.clone())
    }

    pub fn deployments(&self) -> Vec<Dep> {
        self.with(|st| st.deployments.clone())
    }

    pub fn deployment_of(&self, commit: &str) -> Option<Dep> {
        self.with(|st| {
            st.deployments
                .iter()
                .rev()
                .find(|d| d.commit == commit)
                .cloned()
        })
    }

    pub fn rollbacks(&self) -> Vec<String> {
        self.with(|st| st.rollbacks.clone())
    }

    pub fn promotions(&self) -> Vec<String> {
        self.with(|st| st.promotions.clone())
    }

    /// The commit the production domains serve now.
    pub fn serving_commit(&self) -> Option<String> {
        self.with(|st| {
            sync(st);
            serving(st)
        })
    }

    /// The bare repository it watches, if any.
    pub fn watched_repo(&self) -> Option<PathBuf> {
        self.with(|st| st.watched.as_ref().map(|w| w.repo.clone()))
    }
}

fn serving(st: &State) -> Option<String> {
    let id = st.production.as_ref()?;
    st.deployments
        .iter()
        .find(|d| &d.id == id)
        .map(|d| d.commit.clone())
}

/// What the git integration has not heard yet: each branch head that changed since.
fn sync(st: &mut State) {
    let Some(w) = st.watched.as_mut() else {
        return;
    };
    let Some(now) = branch_heads(&w.repo) else {
        return;
    };
    let changed: Vec<(String, String)> = now
        .iter()
        .filter(|(b, c)| w.seen.get(*b) != Some(*c))
        .map(|(b, c)| (b.clone(), c.clone()))
        .collect();
    let deploy = w.deploy_on_push;
    w.seen = now;
    for (branch, commit) in changed {
        st.heads.insert(branch.clone(), commit.clone());
        if deploy {
            new_deployment(st, &commit, &branch);
        }
    }
}

/// `refs/heads/*` of a repository: branch → commit (None when git cannot read it now).
fn branch_heads(repo: &Path) -> Option<HashMap<String, String>> {
    let out = super::git::read(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads",
        ],
    )?;
    let heads = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect();
    Some(heads)
}

fn new_deployment(st: &mut State, commit: &str, branch: &str) -> String {
    st.counter += 1;
    st.clock += 60_000;
    let id = format!("dpl_fake{:04}", st.counter);
    let production = branch == st.production_branch;
    st.deployments.push(Dep {
        id: id.clone(),
        commit: commit.to_string(),
        branch: branch.to_string(),
        target: production.then(|| "production".to_string()),
        created: st.clock,
        state: "QUEUED".into(),
        script: st.script.clone(),
        lists_seen: 0,
        polls: 0,
    });
    // A script of no polls builds at once (as a deployment nobody polls still does).
    if st.script.polls == 0 && st.script.end == "READY" {
        if let Some(d) = st.deployments.last_mut() {
            d.state = "READY".into();
        }
        if production && !st.pinned {
            st.production = Some(id.clone());
        }
    }
    id
}

fn dep_json(d: &Dep, full: bool) -> Value {
    let url = format!(
        "{PROJECT_NAME}-{}.vercel.app",
        d.id.trim_start_matches("dpl_fake")
    );
    let meta = json!({
        "githubCommitSha": d.commit, "githubCommitRef": d.branch,
        "githubCommitMessage": "Merge", "githubOrg": "acme", "githubRepo": "app",
    });
    if full {
        json!({
            "id": d.id, "name": PROJECT_NAME, "url": url, "readyState": d.state,
            "status": d.state, "target": d.target, "createdAt": d.created, "meta": meta,
            "projectId": PROJECT_ID, "type": "LAMBDAS",
        })
    } else {
        json!({
            "uid": d.id, "name": PROJECT_NAME, "url": url, "state": d.state,
            "readyState": d.state, "target": d.target, "created": d.created,
            "createdAt": d.created, "meta": meta, "type": "LAMBDAS",
        })
    }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn handle(st: &mut State, req: Request) -> Reply {
    sync(st);
    st.requests.push(req.clone());
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let ["v1", "integrations", "deploy", prj, hook] = segs.as_slice() {
        return deploy_hook(st, &req, prj, hook);
    }
    if let Some(denied) = check_auth(st, &req) {
        return denied;
    }
    if let Some(i) = st.faults.iter().position(|f| {
        f.remaining > 0 && f.method == req.method && req.path.starts_with(&f.path_prefix)
    }) {
        let f = &mut st.faults[i];
        f.remaining -= 1;
        let echo = req
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        let body = json!({"error": {"code": "injected", "message": format!("injected {} for {echo}", f.status)}});
        return Reply::Answer {
            status: f.status,
            headers: f.headers.clone(),
            body: body.to_string(),
        };
    }
    route(st, &req, &segs)
}

fn check_auth(st: &State, req: &Request) -> Option<Reply> {
    let auth = req.headers.get("authorization").map(String::as_str);
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Some(error(403, "forbidden", "Not authorized"));
    }
    if let Some(status) = st.reject {
        return Some(error(
            status,
            "forbidden",
            "You don't have permission to access this resource",
        ));
    }
    if st
        .team
        .as_deref()
        .is_some_and(|t| req.param("teamId") != Some(t))
    {
        return Some(error(
            403,
            "forbidden",
            "Not authorized: wrong or missing teamId",
        ));
    }
    None
}

fn route(st: &mut State, req: &Request, segs: &[&str]) -> Reply {
    let is_project = |p: &str| p == PROJECT_ID || p == PROJECT_NAME;
    match (req.method.as_str(), segs) {
        ("GET", ["v9", "projects", p]) if is_project(p) => {
            let production = st
                .production
                .as_ref()
                .and_then(|id| st.deployments.iter().find(|d| &d.id == id))
                .map(|d| dep_json(d, true));
            Reply::json(
                200,
                &json!({"id": PROJECT_ID, "name": PROJECT_NAME, "accountId": "team_x",
                        "framework": "nextjs", "targets": {"production": production}}),
            )
        }
        ("GET", ["v9", "projects", _]) => error(404, "not_found", "Project not found"),
        ("GET", ["v6", "deployments"]) => list(st, req),
        ("GET", ["v13", "deployments", id]) => poll(st, id),
        ("POST", ["v9", "projects", p, "rollback", id]) if *p == PROJECT_ID => rollback(st, id),
        ("POST", ["v10", "projects", p, "promote", id]) if *p == PROJECT_ID => promote(st, id),
        ("POST", ["v9", "projects", _, "rollback", _]) => {
            error(404, "not_found", "Project not found")
        }
        _ => error(404, "not_found", "The requested path was not found"),
    }
}

fn list(st: &mut State, req: &Request) -> Reply {
    let project = req.param("projectId");
    if project.is_some_and(|p| p != PROJECT_ID && p != PROJECT_NAME) {
        return error(404, "not_found", "Project not found");
    }
    for d in st.deployments.iter_mut() {
        d.lists_seen += 1;
    }
    let limit: usize = req
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(20)
        .min(100);
    let until: i64 = req
        .param("until")
        .and_then(|u| u.parse().ok())
        .unwrap_or(i64::MAX);
    let mut found: Vec<&Dep> = st
        .deployments
        .iter()
        .filter(|d| d.lists_seen > d.script.appear_after_lists)
        .filter(|d| d.created < until)
        .filter(|d| matches_filters(d, req))
        .collect();
    found.sort_by_key(|d| std::cmp::Reverse(d.created));
    let more = found.len() > limit;
    found.truncate(limit);
    let next = if more {
        found.last().map(|d| json!(d.created))
    } else {
        None
    };
    let page: Vec<Value> = found.iter().map(|d| dep_json(d, false)).collect();
    Reply::json(
        200,
        &json!({"deployments": page,
                "pagination": {"count": page.len(), "next": next, "prev": null}}),
    )
}

fn matches_filters(d: &Dep, req: &Request) -> bool {
    let dj = dep_json(d, false);
    req.query.iter().all(|(k, v)| match k.as_str() {
        "state" => v.split(',').any(|s| s == d.state),
        "target" => d.target.as_deref() == Some(v.as_str()),
        k if k.starts_with("meta-") => dj["meta"][&k[5..]] == json!(v),
        _ => true,
    })
}

fn poll(st: &mut State, id: &str) -> Reply {
    let Some(d) = st.deployments.iter_mut().find(|d| d.id == id) else {
        return error(404, "not_found", "Deployment not found");
    };
    if d.state == "QUEUED" || d.state == "BUILDING" {
        d.polls += 1;
        d.state = if d.polls > d.script.polls && d.script.end != "NEVER" {
            d.script.end.to_string()
        } else if d.polls > 1 {
            "BUILDING".to_string()
        } else {
            "QUEUED".to_string()
        };
        if d.state == "READY" && d.target.is_some() && !st.pinned {
            st.production = Some(d.id.clone());
        }
    }
    match st.deployments.iter().find(|d| d.id == id) {
        Some(d) => Reply::json(200, &dep_json(d, true)),
        None => error(404, "not_found", "Deployment not found"),
    }
}

fn rollback(st: &mut State, id: &str) -> Reply {
    let Some(d) = st.deployments.iter().find(|d| d.id == id) else {
        return error(404, "not_found", "Deployment not found");
    };
    if d.state != "READY" || d.target.as_deref() != Some("production") {
        return error(
            400,
            "invalid_deployment",
            "Only READY production deployments can be rolled back to",
        );
    }
    st.rollbacks.push(id.to_string());
    st.production = Some(id.to_string());
    st.pinned = true;
    Reply::json(201, &json!({}))
}

/// `POST /v10/projects/{id}/promote/{deploymentId}`: the production domains point at a READY
/// deployment again, and new production deployments take them again.
fn promote(st: &mut State, id: &str) -> Reply {
    let Some(d) = st.deployments.iter().find(|d| d.id == id) else {
        return error(404, "not_found", "Deployment not found");
    };
    if d.state != "READY" {
        return error(
            400,
            "invalid_deployment",
            "Only READY deployments can be promoted",
        );
    }
    st.promotions.push(id.to_string());
    st.production = Some(id.to_string());
    st.pinned = false;
    Reply::json(201, &json!({}))
}

fn deploy_hook(st: &mut State, req: &Request, prj: &str, hook: &str) -> Reply {
    if req.method != "POST" || prj != PROJECT_ID || hook != HOOK_ID {
        return error(404, "not_found", "Deploy hook not found");
    }
    if let Some(i) = st
        .faults
        .iter()
        .position(|f| f.remaining > 0 && f.method == "POST" && req.path.starts_with(&f.path_prefix))
    {
        let f = &mut st.faults[i];
        f.remaining -= 1;
        return Reply::Answer {
            status: f.status,
            headers: f.headers.clone(),
            body: json!({"error": {"code": "injected", "message": format!("injected for {}", req.path)}}).to_string(),
        };
    }
    st.counter += 1;
    let job = format!("job_fake{:04}", st.counter);
    let branch = st.hook_branch.clone();
    if let Some(commit) = st.heads.get(&branch).cloned() {
        new_deployment(st, &commit, &branch);
    }
    Reply::json(
        201,
        &json!({"job": {"id": job, "state": "PENDING", "createdAt": st.clock}}),
    )
}
