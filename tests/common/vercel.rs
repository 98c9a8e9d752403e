//! Loopback fakes of Vercel and of a deployed app, speaking the real shapes.
//!
//! [`FakeVercel`] follows Vercel's REST API for the calls pgship makes (bearer auth, `teamId`,
//! `{"error": {"code", "message"}}` errors):
//! - `GET /v9/projects/{idOrName}`: `{id, name, accountId, targets: {production: <deployment>}}`;
//! - `GET /v6/deployments?projectId&limit&until&state&target&meta-<key>`: `{deployments: [{uid,
//!   name, url, created, createdAt, state, readyState, target, meta}], pagination: {count,
//!   next, prev}}`, newest first, `next` the `until` of the next page;
//! - `GET /v13/deployments/{id}`: `{id, url, readyState, target, createdAt, meta, …}`;
//! - `POST /v9/projects/{projectId}/rollback/{deploymentId}`: 201, production now serves it;
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
//! [`FakeApp`] is the deployed app's `GET /api/health`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pgship::config::Env;
use serde_json::{Value, json};

use super::loopback::{self, Reply, Request};

/// A canary: it must appear nowhere but in the `Authorization` header.
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
    /// Every instant rollback, the target deployment's id, oldest first.
    pub rollbacks: Vec<String>,
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
}

#[derive(Clone)]
pub struct FakeVercel {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl FakeVercel {
    /// A project whose production branch is `main`; the hook deploys `main` too.
    pub fn start() -> FakeVercel {
        let state = Arc::new(Mutex::new(State {
            production_branch: "main".into(),
            hook_branch: "main".into(),
            clock: 1_760_000_000_000,
            ..State::default()
        }));
        let weak = Arc::downgrade(&state);
        let port = loopback::serve(Arc::new(move |req| match weak.upgrade() {
            Some(state) => handle(&mut state.lock().unwrap(), req),
            None => Reply::json(503, &json!({})),
        }));
        FakeVercel { port, state }
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
        f(&mut self.state.lock().unwrap())
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
            let d = st.deployments.iter_mut().find(|d| d.id == id).unwrap();
            d.state = "READY".into();
            d.script.appear_after_lists = 0;
            d.target = production.then(|| "production".to_string());
            if production {
                st.production = Some(id.clone());
            }
            id
        })
    }

    /// Watch the bare repository `bare` as Vercel's git integration would: every change of a
    /// branch's head becomes [`FakeVercel::on_git_push`] (or, without `deploy_on_push`, only
    /// the new head the deploy hook builds). Stops when the fake is dropped.
    pub fn watch(&self, bare: &Path, deploy_on_push: bool) {
        let weak: Weak<Mutex<State>> = Arc::downgrade(&self.state);
        let port = self.port;
        let bare: PathBuf = bare.to_path_buf();
        let mut seen = branch_heads(&bare);
        for (branch, commit) in &seen {
            self.set_head(branch, commit);
        }
        std::thread::spawn(move || {
            while let Some(state) = weak.upgrade() {
                let now = branch_heads(&bare);
                for (branch, commit) in &now {
                    if seen.get(branch) != Some(commit) {
                        let fake = FakeVercel {
                            port,
                            state: state.clone(),
                        };
                        if deploy_on_push {
                            fake.on_git_push(commit, branch);
                        } else {
                            fake.set_head(branch, commit);
                        }
                    }
                }
                seen = now;
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

    /// The commit the production domains serve now.
    pub fn serving_commit(&self) -> Option<String> {
        self.with(|st| serving(st))
    }
}

fn serving(st: &State) -> Option<String> {
    let id = st.production.as_ref()?;
    st.deployments
        .iter()
        .find(|d| &d.id == id)
        .map(|d| d.commit.clone())
}

/// `refs/heads/*` of a repository: branch → commit.
fn branch_heads(repo: &Path) -> HashMap<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads",
        ])
        .output();
    let Ok(out) = out else {
        return HashMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect()
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
        st.deployments.last_mut().unwrap().state = "READY".into();
        if production {
            st.production = Some(id.clone());
        }
    }
    id
}

fn dep_json(d: &Dep, full: bool) -> Value {
    let url = format!("{PROJECT_NAME}-{}.vercel.app", &d.id[8..]);
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
        if d.state == "READY" && d.target.is_some() {
            st.production = Some(d.id.clone());
        }
    }
    let d = st.deployments.iter().find(|d| d.id == id).unwrap();
    Reply::json(200, &dep_json(d, true))
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

// ---- the app ----

/// What the app's health endpoint answers.
#[derive(Clone)]
pub enum Health {
    /// `{"status":"ok","commit":old}` for the first `after` requests, then `new`.
    Commits {
        old: String,
        new: String,
        after: u32,
    },
    /// This body, 200.
    Body(Value),
    /// This status, with `{"status":"error"}`.
    Status(u16),
    /// Accept the connection and never answer.
    Hang,
    /// The commit the fake Vercel's production domains serve now.
    Follow(FakeVercel),
}

pub struct AppState {
    pub requests: Vec<Request>,
    pub health: Health,
}

pub struct FakeApp {
    pub port: u16,
    pub state: Arc<Mutex<AppState>>,
}

impl FakeApp {
    pub fn start(health: Health) -> FakeApp {
        let state = Arc::new(Mutex::new(AppState {
            requests: Vec::new(),
            health,
        }));
        let shared = state.clone();
        let port = loopback::serve(Arc::new(move |req| {
            answer(&mut shared.lock().unwrap(), req)
        }));
        FakeApp { port, state }
    }

    /// The environment's URL (`<ENV>_URL`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn health_url(&self) -> String {
        format!("{}/api/health", self.url())
    }

    pub fn set(&self, health: Health) {
        self.state.lock().unwrap().health = health;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn answer(st: &mut AppState, req: Request) -> Reply {
    st.requests.push(req.clone());
    if req.method != "GET" || req.path != "/api/health" {
        return Reply::json(404, &json!({"error": "not found"}));
    }
    let n = st.requests.len() as u32;
    match &st.health {
        Health::Commits { old, new, after } => {
            let commit = if n <= *after { old } else { new };
            Reply::json(200, &json!({"status": "ok", "commit": commit}))
        }
        Health::Body(body) => Reply::json(200, body),
        Health::Status(status) => Reply::json(*status, &json!({"status": "error"})),
        Health::Hang => Reply::Hold,
        Health::Follow(vercel) => match vercel.serving_commit() {
            Some(commit) => Reply::json(200, &json!({"status": "ok", "commit": commit})),
            None => Reply::json(404, &json!({"error": "DEPLOYMENT_NOT_FOUND"})),
        },
    }
}
