//! A loopback HTTP/1.1 server that follows Neon's documented API (paths under `/api/v2`,
//! bearer auth, `branch`/`endpoints`/`operations`/`connection_uris` bodies, operation statuses,
//! `{"code","message"}` errors), with faults injected per request. Shared by the Neon client
//! tests (`sandbox_neon.rs`) and the CLI tests (`sandbox_cli.rs`), which include this file with
//! `#[path]`.
//!
//! Shapes, from Neon's API reference:
//! - `POST /projects/{id}/branches` answers 201 with `branch`, `endpoints`, `operations`,
//!   `roles`, `databases` and (optionally) `connection_uris`:
//!   `[{connection_uri, connection_parameters: {database, role, password, host, pooler_host}}]`;
//! - `GET /projects/{id}/operations/{op}` answers `{"operation": {...}}`;
//! - `DELETE /projects/{id}/branches/{branch}` answers `branch` and `operations`;
//! - `GET /projects/{id}/branches?search=&cursor=` answers `branches` and `pagination.next`;
//! - `GET /projects/{id}/endpoints` and `…/branches/{branch}/endpoints` answer `endpoints`.
//! - `POST /projects/{id}/branches/{branch}/restore` with `source_branch_id` (required) and
//!   `preserve_under_name` (required when the branch has children) answers `branch` and
//!   `operations`; the branch's previous state becomes a new branch of that name.
//!
//! What a branch holds is up to the test: [`FakeNeon::on_create`] runs when Neon would make the
//! branch's copy and may return the answer's `connection_uris`; [`FakeNeon::on_delete`] runs
//! when the branch is deleted.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use pgship::config::Env;
use serde_json::{Value, json};

pub const KEY: &str = "napi_TESTKEY_0123456789abcdef";
pub const PROJECT: &str = "aged-wildflower-123456";
pub const MAIN_HOST: &str = "ep-main-a1.c-3.us-east-2.aws.neon.tech";

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An injected answer for the next matching request.
pub struct Fault {
    pub method: &'static str,
    pub path_prefix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub remaining: usize,
    /// Carry the request out, then answer with the fault (a lost answer).
    pub process_first: bool,
}

pub struct Op {
    pub action: String,
    pub branch_id: String,
    pub endpoint_id: Option<String>,
    /// Statuses still to report; the last one stays.
    pub statuses: VecDeque<String>,
    pub failures: u32,
    pub error: Option<String>,
}

/// Runs when a branch is created (branch id, branch name); returns `connection_uris` entries.
pub type CreateHook = Arc<dyn Fn(&str, &str) -> Vec<Value> + Send + Sync>;
/// Runs when a branch is deleted (branch id).
pub type DeleteHook = Arc<dyn Fn(&str) + Send + Sync>;
/// Runs when Neon would restore a branch (`branch id`, `source branch id`).
pub type RestoreHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[derive(Default)]
pub struct State {
    pub requests: Vec<Request>,
    pub branches: Vec<Value>,
    pub endpoints: Vec<Value>,
    pub ops: Vec<(String, Op)>,
    pub faults: Vec<Fault>,
    /// Status sequences for operations created from now on, by action.
    pub scripts: HashMap<String, Vec<String>>,
    pub op_errors: HashMap<String, String>,
    /// `GET …/operations/{id}` of an operation with this action answers this HTTP status.
    pub poll_faults: HashMap<String, u16>,
    pub counter: u32,
    pub page_size: usize,
    pub on_create: Option<CreateHook>,
    pub on_delete: Option<DeleteHook>,
    pub on_restore: Option<RestoreHook>,
    /// Every branch created, `(id, name)`, oldest first (deleted ones included).
    pub made: Vec<(String, String)>,
    /// Every restore carried out, `(branch id, source branch id, preserved as)`, oldest first.
    pub restores: Vec<(String, String, String)>,
    /// What the last routed request created or deleted, for the hooks.
    created: Option<(String, String)>,
    deleted: Option<String>,
    restored: Option<(String, String)>,
}

pub struct FakeNeon {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl FakeNeon {
    /// A project whose default branch `main` (`br-main-a1`) is served by [`MAIN_HOST`].
    pub fn start() -> FakeNeon {
        FakeNeon::serving(MAIN_HOST)
    }

    /// A project whose default branch `main` (`br-main-a1`) is served by `host`.
    pub fn serving(host: &str) -> FakeNeon {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            page_size: 100,
            ..State::default()
        }));
        let fake = FakeNeon {
            port,
            state: state.clone(),
        };
        fake.add_branch("br-main-a1", "main", true, false, "2024-01-01T00:00:00Z");
        fake.add_endpoint("ep-main-a1", "br-main-a1", host);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        fake
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v2", self.port)
    }

    /// NEON_API_KEY, NEON_PROJECT_ID and NEON_API_URL pointing here.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("NEON_API_KEY".to_string(), KEY.to_string()),
            ("NEON_PROJECT_ID".to_string(), PROJECT.to_string()),
            ("NEON_API_URL".to_string(), self.api_url()),
        ]
    }

    pub fn env(&self) -> Env {
        Env::from_pairs(self.vars())
    }

    pub fn on_create(&self, hook: impl Fn(&str, &str) -> Vec<Value> + Send + Sync + 'static) {
        self.state.lock().unwrap().on_create = Some(Arc::new(hook));
    }

    pub fn on_delete(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        self.state.lock().unwrap().on_delete = Some(Arc::new(hook));
    }

    /// Do what Neon's restore of a branch from another does to the data (before answering).
    pub fn on_restore(&self, hook: impl Fn(&str, &str) + Send + Sync + 'static) {
        self.state.lock().unwrap().on_restore = Some(Arc::new(hook));
    }

    pub fn add_branch(&self, id: &str, name: &str, default: bool, protected: bool, created: &str) {
        self.state.lock().unwrap().branches.push(json!({
            "id": id, "project_id": PROJECT, "name": name, "current_state": "ready",
            "default": default, "protected": protected,
            "created_at": created, "updated_at": created,
        }));
    }

    pub fn add_endpoint(&self, id: &str, branch_id: &str, host: &str) {
        self.state
            .lock()
            .unwrap()
            .endpoints
            .push(endpoint_json(id, branch_id, host));
    }

    pub fn fault(
        &self,
        method: &'static str,
        path: &str,
        status: u16,
        times: usize,
    ) -> FaultBuilder<'_> {
        FaultBuilder {
            fake: self,
            fault: Fault {
                method,
                path_prefix: format!("/api/v2/projects/{PROJECT}{path}"),
                status,
                headers: Vec::new(),
                body: json!({"code": "", "message": format!("injected {status}")}).to_string(),
                remaining: times,
                process_first: false,
            },
        }
    }

    pub fn script(&self, action: &str, statuses: &[&str]) {
        self.state.lock().unwrap().scripts.insert(
            action.to_string(),
            statuses.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Every poll of an operation with `action` answers `status`, forever.
    pub fn fail_polls(&self, action: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .poll_faults
            .insert(action.to_string(), status);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn branch_names(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.branches
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The id of the branch created with `name` (deleted or not).
    pub fn made_branch(&self, name: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.made
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| id.clone())
    }

    /// `(id, branch id, action, status now)` of every operation, oldest first.
    pub fn operations(&self) -> Vec<(String, String, String, String)> {
        let st = self.state.lock().unwrap();
        st.ops
            .iter()
            .map(|(id, op)| {
                (
                    id.clone(),
                    op.branch_id.clone(),
                    op.action.clone(),
                    op.statuses.front().unwrap().clone(),
                )
            })
            .collect()
    }
}

pub struct FaultBuilder<'a> {
    fake: &'a FakeNeon,
    fault: Fault,
}

impl FaultBuilder<'_> {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.fault.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn body(mut self, body: Value) -> Self {
        self.fault.body = body.to_string();
        self
    }
    pub fn after_processing(mut self) -> Self {
        self.fault.process_first = true;
        self
    }
    pub fn add(self) {
        self.fake.state.lock().unwrap().faults.push(self.fault);
    }
}

pub fn endpoint_json(id: &str, branch_id: &str, host: &str) -> Value {
    let (label, rest) = host.split_once('.').unwrap_or((host, ""));
    json!({
        "host": host,
        "hosts": {
            "read_write_host": host,
            "read_write_pooled_host": format!("{label}-pooler.{rest}"),
        },
        "id": id, "project_id": PROJECT, "branch_id": branch_id,
        "region_id": "aws-us-east-2", "type": "read_write", "current_state": "init",
        "pooler_enabled": false, "pooler_mode": "transaction",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
    })
}

/// One `connection_uris` entry, in Neon's shape.
pub fn connection_details(uri: &pgship::db::DbUrl) -> Value {
    json!({
        "connection_uri": uri.expose(),
        "connection_parameters": {
            "database": uri.dbname, "role": uri.user,
            "password": uri.password.as_ref().map(|p| p.expose().to_string()),
            "host": uri.host(), "pooler_host": uri.host(),
        },
    })
}

// ---- the server ----

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let req = Request {
        method,
        path,
        headers,
        body: String::from_utf8(body).unwrap(),
    };
    let (status, extra, body) = handle(state, req);
    let reason = match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        423 => "Locked",
        429 => "Too Many Requests",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
}

pub type Answer = (u16, Vec<(String, String)>, String);

/// Route under the lock; run the hooks without it (making a copy takes a while).
fn handle(state: &Mutex<State>, req: Request) -> Answer {
    let (mut answer, created, deleted, on_create, on_delete) = {
        let mut st = state.lock().unwrap();
        let answer = handle_locked(&mut st, req);
        (
            answer,
            st.created.take(),
            st.deleted.take(),
            st.on_create.clone(),
            st.on_delete.clone(),
        )
    };
    let (restored, on_restore) = {
        let mut st = state.lock().unwrap();
        (st.restored.take(), st.on_restore.clone())
    };
    if let (Some((id, source)), Some(hook)) = (restored, on_restore) {
        hook(&id, &source);
    }
    if let (Some((id, name)), Some(hook)) = (created, on_create) {
        let uris = hook(&id, &name);
        // Only the create answer itself carries them (not a fault answered instead).
        if answer.0 == 201
            && let Ok(mut body) = serde_json::from_str::<Value>(&answer.2)
            && body.pointer("/branch/id") == Some(&json!(id))
        {
            body["connection_uris"] = json!(uris);
            answer.2 = body.to_string();
        }
    }
    if let (Some(id), Some(hook)) = (deleted, on_delete) {
        hook(&id);
    }
    answer
}

fn handle_locked(st: &mut State, req: Request) -> Answer {
    st.requests.push(req.clone());
    if req.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {KEY}")) {
        return err(401, "authentication required");
    }
    let fault = st.faults.iter_mut().find(|f| {
        f.remaining > 0 && f.method == req.method && req.path.starts_with(&f.path_prefix)
    });
    if let Some(f) = fault {
        f.remaining -= 1;
        let answer = (f.status, f.headers.clone(), f.body.clone());
        if f.process_first {
            route(st, &req);
        }
        return answer;
    }
    route(st, &req)
}

pub fn err(status: u16, message: &str) -> Answer {
    (
        status,
        Vec::new(),
        json!({"code": "", "message": message, "request_id": "req-1"}).to_string(),
    )
}

fn ok(status: u16, body: Value) -> Answer {
    (status, Vec::new(), body.to_string())
}

fn route(st: &mut State, req: &Request) -> Answer {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let query: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        (_, ["api", "v2", "projects", p, ..]) if *p != PROJECT => err(404, "project not found"),
        ("POST", [.., "branches"]) => create_branch(st, &req.json()),
        ("POST", [.., "branches", id, "restore"]) => restore_branch(st, id, &req.json()),
        ("GET", [.., "branches"]) => list_branches(st, &query),
        ("DELETE", [.., "branches", id]) => delete_branch(st, id),
        ("GET", [.., "branches", id, "endpoints"]) => {
            let eps: Vec<Value> = st
                .endpoints
                .iter()
                .filter(|e| e["branch_id"] == *id)
                .cloned()
                .collect();
            ok(200, json!({"endpoints": eps}))
        }
        ("GET", [.., "endpoints"]) => ok(200, json!({"endpoints": st.endpoints})),
        ("GET", [.., "operations"]) => {
            let ops: Vec<Value> = st
                .ops
                .iter()
                .rev()
                .map(|(id, op)| op_json(id, op))
                .collect();
            ok(
                200,
                json!({"operations": ops, "pagination": {"cursor": "2024-01-01T00:00:00Z"}}),
            )
        }
        ("GET", [.., "operations", id]) => {
            let poll_faults = st.poll_faults.clone();
            match st.ops.iter_mut().find(|(i, _)| i == id) {
                Some((_, op)) if poll_faults.contains_key(&op.action) => {
                    err(poll_faults[&op.action], "injected poll failure")
                }
                Some((id, op)) => {
                    if op.statuses.len() > 1 {
                        let was = op.statuses.pop_front().unwrap();
                        if was == "failed" {
                            op.failures += 1;
                        }
                    }
                    ok(200, json!({"operation": op_json(id, op)}))
                }
                None => err(404, "operation not found"),
            }
        }
        _ => err(404, "not found"),
    }
}

fn new_op(st: &mut State, action: &str, branch_id: &str, endpoint_id: Option<&str>) -> Value {
    st.counter += 1;
    let id = format!("0b5e{:04}-ffe3-47ab-b545-cfd7db6fd8b8", st.counter);
    let statuses = st
        .scripts
        .get(action)
        .cloned()
        .unwrap_or_else(|| vec!["running".into(), "running".into(), "finished".into()]);
    let op = Op {
        action: action.to_string(),
        branch_id: branch_id.to_string(),
        endpoint_id: endpoint_id.map(str::to_string),
        statuses: statuses.into(),
        failures: 0,
        error: st.op_errors.get(action).cloned(),
    };
    let v = op_json(&id, &op);
    st.ops.push((id, op));
    v
}

fn op_json(id: &str, op: &Op) -> Value {
    let mut v = json!({
        "id": id, "project_id": PROJECT, "branch_id": op.branch_id,
        "action": op.action, "status": op.statuses.front().unwrap(),
        "failures_count": op.failures,
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:01Z",
    });
    if let Some(ep) = &op.endpoint_id {
        v["endpoint_id"] = json!(ep);
    }
    if let Some(e) = &op.error {
        v["error"] = json!(e);
    }
    v
}

fn create_branch(st: &mut State, body: &Value) -> Answer {
    st.counter += 1;
    let n = st.counter;
    let id = format!("br-sandbox-{n}");
    let ep = format!("ep-sandbox-{n}");
    let host = format!("{ep}.c-3.us-east-2.aws.neon.tech");
    let created = jiff::Timestamp::now().to_string();
    let branch = json!({
        "id": id, "project_id": PROJECT, "parent_id": body["branch"]["parent_id"],
        "parent_lsn": "0/1AA6408", "name": body["branch"]["name"],
        "current_state": "init", "pending_state": "ready", "default": false, "protected": false,
        "created_at": created, "updated_at": created,
    });
    st.branches.push(branch.clone());
    let endpoint = endpoint_json(&ep, &id, &host);
    st.endpoints.push(endpoint.clone());
    let ops = vec![
        new_op(st, "create_branch", &id, None),
        new_op(st, "start_compute", &id, Some(&ep)),
    ];
    let name = body["branch"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    st.made.push((id.clone(), name.clone()));
    st.created = Some((id.clone(), name));
    ok(
        201,
        json!({"branch": branch, "endpoints": [endpoint], "operations": ops,
               "roles": [], "databases": []}),
    )
}

fn restore_branch(st: &mut State, id: &str, body: &Value) -> Answer {
    let Some(target) = st.branches.iter().find(|b| b["id"] == id).cloned() else {
        return err(404, &format!("branch {id} not found"));
    };
    let Some(source) = body["source_branch_id"].as_str().map(str::to_string) else {
        return err(400, "source_branch_id is required");
    };
    if !st.branches.iter().any(|b| b["id"] == source.as_str()) {
        return err(404, &format!("branch {source} not found"));
    }
    let preserve = body["preserve_under_name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let has_children = st.branches.iter().any(|b| b["parent_id"] == id);
    if has_children && preserve.is_empty() {
        return err(
            400,
            "preserve_under_name is required when the branch has children",
        );
    }
    if !preserve.is_empty() {
        st.counter += 1;
        let kept = format!("br-preserved-{}", st.counter);
        let now = jiff::Timestamp::now().to_string();
        st.branches.push(json!({
            "id": kept, "project_id": PROJECT, "parent_id": id, "name": preserve,
            "current_state": "ready", "default": false, "protected": false,
            "created_at": now, "updated_at": now,
        }));
        st.made.push((kept, preserve.clone()));
    }
    st.restored = Some((id.to_string(), source.clone()));
    st.restores.push((id.to_string(), source, preserve));
    let ops = vec![new_op(st, "restore_branch", id, None)];
    ok(200, json!({"branch": target, "operations": ops}))
}

fn delete_branch(st: &mut State, id: &str) -> Answer {
    let Some(i) = st.branches.iter().position(|b| b["id"] == id) else {
        return err(404, &format!("branch {id} not found"));
    };
    let branch = st.branches.remove(i);
    st.endpoints.retain(|e| e["branch_id"] != id);
    let ops = vec![
        new_op(st, "suspend_compute", id, None),
        new_op(st, "delete_timeline", id, None),
    ];
    st.deleted = Some(id.to_string());
    ok(200, json!({"branch": branch, "operations": ops}))
}

fn list_branches(st: &State, query: &HashMap<&str, &str>) -> Answer {
    let search = query.get("search").copied().unwrap_or("");
    let matching: Vec<&Value> = st
        .branches
        .iter()
        .filter(|b| {
            b["name"].as_str().unwrap().contains(search)
                || b["id"].as_str().unwrap().contains(search)
        })
        .collect();
    let start: usize = query
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + st.page_size).min(matching.len());
    let page: Vec<&Value> = matching[start.min(end)..end].to_vec();
    // Like Neon, always hand out a cursor; the page after the last one is empty.
    ok(
        200,
        json!({
            "branches": page,
            "annotations": {},
            "pagination": {"next": end.to_string(), "sort_by": "updated_at", "sort_order": "desc"},
        }),
    )
}
