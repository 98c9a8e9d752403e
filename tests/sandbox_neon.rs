//! The Neon branch lifecycle against a loopback HTTP/1.1 server that follows Neon's documented
//! API (paths under `/api/v2`, bearer auth, `branch`/`endpoints`/`operations` bodies, operation
//! statuses, `{"code","message"}` errors), with faults injected per request.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgship::config::Env;
use pgship::sandbox::neon::{NeonClient, NeonError, RetryPolicy};
use serde_json::{Value, json};

const KEY: &str = "napi_TESTKEY_0123456789abcdef";
const PROJECT: &str = "aged-wildflower-123456";
const MAIN_HOST: &str = "ep-main-a1.c-3.us-east-2.aws.neon.tech";

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An injected answer for the next matching request.
struct Fault {
    method: &'static str,
    path_prefix: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    remaining: usize,
    /// Carry the request out, then answer with the fault (a lost answer).
    process_first: bool,
}

struct Op {
    action: String,
    branch_id: String,
    endpoint_id: Option<String>,
    /// Statuses still to report; the last one stays.
    statuses: VecDeque<String>,
    failures: u32,
    error: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    branches: Vec<Value>,
    endpoints: Vec<Value>,
    ops: Vec<(String, Op)>,
    faults: Vec<Fault>,
    /// Status sequences for operations created from now on, by action.
    scripts: HashMap<String, Vec<String>>,
    op_errors: HashMap<String, String>,
    counter: u32,
    page_size: usize,
}

struct FakeNeon {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeNeon {
    fn start() -> FakeNeon {
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
        fake.add_endpoint("ep-main-a1", "br-main-a1", MAIN_HOST);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        fake
    }

    fn env(&self) -> Env {
        Env::from_pairs([
            ("NEON_API_KEY".to_string(), KEY.to_string()),
            ("NEON_PROJECT_ID".to_string(), PROJECT.to_string()),
            (
                "NEON_API_URL".to_string(),
                format!("http://127.0.0.1:{}/api/v2", self.port),
            ),
        ])
    }

    fn client(&self) -> NeonClient {
        NeonClient::from_env(&self.env())
            .unwrap()
            .with_poll(Duration::from_millis(5))
            .with_wait_timeout(Duration::from_secs(5))
            .with_failed_grace(Duration::ZERO)
            .with_request_timeout(Duration::from_secs(5))
            .with_retry(RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
                max_retry_after: Duration::from_secs(5),
                budget: Duration::from_secs(10),
            })
    }

    fn add_branch(&self, id: &str, name: &str, default: bool, protected: bool, created: &str) {
        self.state.lock().unwrap().branches.push(json!({
            "id": id, "project_id": PROJECT, "name": name, "current_state": "ready",
            "default": default, "protected": protected,
            "created_at": created, "updated_at": created,
        }));
    }

    fn add_endpoint(&self, id: &str, branch_id: &str, host: &str) {
        self.state
            .lock()
            .unwrap()
            .endpoints
            .push(endpoint_json(id, branch_id, host));
    }

    fn fault(
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

    fn script(&self, action: &str, statuses: &[&str]) {
        self.state.lock().unwrap().scripts.insert(
            action.to_string(),
            statuses.iter().map(|s| s.to_string()).collect(),
        );
    }

    fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    fn branch_names(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.branches
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    }
}

struct FaultBuilder<'a> {
    fake: &'a FakeNeon,
    fault: Fault,
}

impl FaultBuilder<'_> {
    fn header(mut self, k: &str, v: &str) -> Self {
        self.fault.headers.push((k.to_string(), v.to_string()));
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.fault.body = body.to_string();
        self
    }
    fn after_processing(mut self) -> Self {
        self.fault.process_first = true;
        self
    }
    fn add(self) {
        self.fake.state.lock().unwrap().faults.push(self.fault);
    }
}

fn endpoint_json(id: &str, branch_id: &str, host: &str) -> Value {
    let (label, rest) = host.split_once('.').unwrap();
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

type Answer = (u16, Vec<(String, String)>, String);

fn handle(state: &Mutex<State>, req: Request) -> Answer {
    let mut st = state.lock().unwrap();
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
            route(&mut st, &req);
        }
        return answer;
    }
    route(&mut st, &req)
}

fn err(status: u16, message: &str) -> Answer {
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
        ("GET", [.., "operations", id]) => match st.ops.iter_mut().find(|(i, _)| i == id) {
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
        },
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
    let created = format!("2024-02-01T00:00:{n:02}Z");
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
    ok(
        201,
        json!({"branch": branch, "endpoints": [endpoint], "operations": ops}),
    )
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

// ---- helpers ----

fn assert_no_secret(e: &NeonError) {
    eprintln!("error shown: {e}");
    let shown = format!("{e} | {e:?}");
    assert!(!shown.contains(KEY), "API key leaked: {shown}");
    assert!(!shown.contains("TESTKEY"), "API key leaked: {shown}");
    assert!(!shown.contains("hunter2"), "URL password leaked: {shown}");
}

fn assert_all_authenticated(reqs: &[Request]) {
    for r in reqs {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {KEY}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
        assert!(!r.path.contains(KEY), "key in URL: {}", r.path);
    }
}

fn count(reqs: &[Request], method: &str, path_prefix: &str) -> usize {
    reqs.iter()
        .filter(|r| r.method == method && r.path.starts_with(path_prefix))
        .count()
}

fn branches_path() -> String {
    format!("/api/v2/projects/{PROJECT}/branches")
}

// ---- tests ----

#[tokio::test]
async fn create_wait_delete_happy_path() {
    let fake = FakeNeon::start();
    let neon = fake.client();

    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-1")
        .await
        .unwrap();
    assert_eq!(branch.name, "pgship-sbx-1");
    assert!(branch.id.starts_with("br-sandbox-"), "{branch:?}");
    let host = branch.host.clone().unwrap();
    assert!(
        host.starts_with("ep-sandbox-") && !host.contains("-pooler"),
        "{host}"
    );
    assert!(branch.created_at.is_some());

    let reqs = fake.requests();
    let post = &reqs[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, branches_path());
    assert_eq!(
        post.headers.get("content-type").map(String::as_str),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        post.json(),
        json!({"branch": {"parent_id": "br-main-a1", "name": "pgship-sbx-1"},
               "endpoints": [{"type": "read_write"}]})
    );
    // Both operations (create_branch, start_compute) were polled until `finished`.
    let ops = format!("/api/v2/projects/{PROJECT}/operations/");
    assert!(count(&reqs, "GET", &ops) >= 4, "{reqs:#?}");
    assert!(
        reqs[1..]
            .iter()
            .all(|r| r.method == "GET" && r.path.starts_with(&ops))
    );

    neon.delete_branch(&branch.id).await.unwrap();
    let reqs = fake.requests();
    let delete = reqs.iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(delete.path, format!("{}/{}", branches_path(), branch.id));
    assert!(delete.body.is_empty());
    let last = reqs.last().unwrap();
    assert!(
        last.method == "GET" && last.path.starts_with(&ops),
        "waited for the delete"
    );
    assert_eq!(fake.branch_names(), vec!["main"]);
    assert_all_authenticated(&reqs);
}

#[tokio::test]
async fn branch_found_from_direct_and_pooler_hosts() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    assert_eq!(neon.branch_for_host(MAIN_HOST).await.unwrap(), "br-main-a1");
    assert_eq!(
        neon.branch_for_host("ep-main-a1-pooler.c-3.us-east-2.aws.neon.tech")
            .await
            .unwrap(),
        "br-main-a1"
    );
    let reqs = fake.requests();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(
        reqs[0].path,
        format!("/api/v2/projects/{PROJECT}/endpoints")
    );

    let e = neon.branch_for_host("db.example.com").await.unwrap_err();
    assert!(matches!(e, NeonError::EndpointNotFound { .. }), "{e}");
    assert!(e.to_string().contains("db.example.com"), "{e}");
    assert_no_secret(&e);
    assert_all_authenticated(&fake.requests());
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    fake.fault("POST", "/branches", 429, 1)
        .header("Retry-After", "1")
        .body(json!({"code": "", "message": "rate limit exceeded"}))
        .add();
    let started = Instant::now();
    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-429")
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After ignored"
    );
    assert_eq!(count(&fake.requests(), "POST", &branches_path()), 2);
    assert_eq!(fake.branch_names(), vec!["main", "pgship-sbx-429"]);
    neon.delete_branch(&branch.id).await.unwrap();

    // A Retry-After beyond the policy's limit ends the retries at once.
    fake.fault("GET", "/endpoints", 429, 1)
        .header("Retry-After", "3600")
        .add();
    let e = neon.branch_for_host(MAIN_HOST).await.unwrap_err();
    assert!(matches!(e, NeonError::Api { status: 429, .. }), "{e}");
    assert!(e.to_string().contains("HTTP 429"), "{e}");
    assert_no_secret(&e);
    assert_eq!(
        count(
            &fake.requests(),
            "GET",
            &format!("/api/v2/projects/{PROJECT}/endpoints")
        ),
        1
    );
}

#[tokio::test]
async fn server_error_on_get_is_retried() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    fake.fault("GET", "/endpoints", 500, 2).add();
    assert_eq!(neon.branch_for_host(MAIN_HOST).await.unwrap(), "br-main-a1");
    assert_eq!(
        count(
            &fake.requests(),
            "GET",
            &format!("/api/v2/projects/{PROJECT}/endpoints")
        ),
        3
    );

    // Past the attempt limit the error names the request, status and attempts.
    fake.fault("GET", "/endpoints", 502, 10).add();
    let e = neon.branch_for_host(MAIN_HOST).await.unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("HTTP 502") && shown.contains("after 4 attempts"),
        "{shown}"
    );
    assert!(shown.contains("GET /projects/"), "{shown}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn server_error_on_create_looks_before_posting_again() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    // The POST fails before Neon acts: pgship finds no branch of that name and posts again.
    fake.fault("POST", "/branches", 500, 1).add();
    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-500")
        .await
        .unwrap();
    let reqs = fake.requests();
    let seq: Vec<String> = reqs
        .iter()
        .take(3)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        seq,
        vec![
            format!("POST {}", branches_path()),
            format!("GET {}?search=pgship-sbx-500", branches_path()),
            format!("POST {}", branches_path()),
        ]
    );
    assert_eq!(fake.branch_names(), vec!["main", "pgship-sbx-500"]);
    neon.delete_branch(&branch.id).await.unwrap();
}

#[tokio::test]
async fn lost_create_answer_adopts_the_branch_instead_of_duplicating_it() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    // Neon creates the branch, but the answer is a 502: posting again would make a second one.
    fake.fault("POST", "/branches", 502, 1)
        .after_processing()
        .add();
    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-lost")
        .await
        .unwrap();
    assert_eq!(fake.branch_names(), vec!["main", "pgship-sbx-lost"]);
    assert_eq!(count(&fake.requests(), "POST", &branches_path()), 1);
    assert_eq!(
        branch.host.as_deref(),
        Some(
            format!(
                "ep-sandbox-{}.c-3.us-east-2.aws.neon.tech",
                &branch.id["br-sandbox-".len()..]
            )
            .as_str()
        )
    );
    let reqs = fake.requests();
    assert_eq!(
        count(
            &reqs,
            "GET",
            &format!("{}/{}/endpoints", branches_path(), branch.id)
        ),
        1
    );
    // Its operations were found in the project's operation list, then awaited.
    let list = format!("/api/v2/projects/{PROJECT}/operations");
    assert_eq!(
        reqs.iter()
            .filter(|r| r.method == "GET" && r.path == list)
            .count(),
        1
    );
    assert!(count(&reqs, "GET", &format!("{list}/")) >= 2, "{reqs:#?}");
    neon.delete_branch(&branch.id).await.unwrap();
    assert_eq!(fake.branch_names(), vec!["main"]);
}

#[tokio::test]
async fn locked_project_is_retried() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    fake.fault("POST", "/branches", 423, 2)
        .body(json!({"code": "", "message": "project already has running conflicting operations, scheduling of new ones is prohibited"}))
        .add();
    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-423")
        .await
        .unwrap();
    let reqs = fake.requests();
    assert_eq!(count(&reqs, "POST", &branches_path()), 3);
    // 423 is safe to retry: no look-up by name was needed.
    assert_eq!(count(&reqs, "GET", &format!("{}?", branches_path())), 0);

    fake.fault("DELETE", "/branches/", 423, 1).add();
    neon.delete_branch(&branch.id).await.unwrap();
    assert_eq!(count(&fake.requests(), "DELETE", &branches_path()), 2);
    assert_eq!(fake.branch_names(), vec!["main"]);
}

#[tokio::test]
async fn failed_operation_names_it_and_leaves_the_branch_for_cleanup() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    fake.script("create_branch", &["running", "failed"]);
    fake.state.lock().unwrap().op_errors.insert(
        "create_branch".into(),
        format!("timeline creation failed (auth Bearer {KEY}, url postgres://neondb_owner:hunter2@ep-x.neon.tech/db)"),
    );
    let e = neon
        .create_branch("br-main-a1", "pgship-sbx-fail")
        .await
        .unwrap_err();
    let shown = e.to_string();
    let op_id = fake.state.lock().unwrap().ops[0].0.clone();
    assert!(shown.contains(&op_id), "{shown}");
    assert!(
        shown.contains("create_branch") && shown.contains("`failed`"),
        "{shown}"
    );
    assert!(shown.contains("timeline creation failed"), "{shown}");
    assert_no_secret(&e);

    let leftover = e
        .created_branch()
        .expect("the created branch id")
        .to_string();
    assert!(leftover.starts_with("br-sandbox-"));
    assert!(fake.branch_names().contains(&"pgship-sbx-fail".to_string()));
    neon.delete_branch(&leftover).await.unwrap();
    assert_eq!(fake.branch_names(), vec!["main"]);
}

#[tokio::test]
async fn failed_operation_that_neon_retries_is_awaited() {
    let fake = FakeNeon::start();
    // Neon's docs: "A failed operation is not terminal and may be retried."
    let neon = fake.client().with_failed_grace(Duration::from_secs(5));
    fake.script(
        "create_branch",
        &["running", "failed", "running", "finished"],
    );
    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-retried")
        .await
        .unwrap();
    neon.delete_branch(&branch.id).await.unwrap();
}

#[tokio::test]
async fn cancelled_operation_and_timeout_carry_the_branch() {
    let fake = FakeNeon::start();
    let neon = fake.client().with_failed_grace(Duration::from_secs(5));
    fake.script("start_compute", &["scheduling", "cancelling", "cancelled"]);
    let e = neon
        .create_branch("br-main-a1", "pgship-sbx-cancel")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("start_compute") && e.to_string().contains("`cancelled`"),
        "{e}"
    );
    let id = e.created_branch().unwrap().to_string();
    assert_no_secret(&e);
    fake.script("start_compute", &["running", "finished"]);
    neon.delete_branch(&id).await.unwrap();

    fake.script("create_branch", &["running"]);
    let neon = neon.with_wait_timeout(Duration::from_millis(100));
    let e = neon
        .create_branch("br-main-a1", "pgship-sbx-slow")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NeonError::CreatedButNotReady { reason, .. } if matches!(**reason, NeonError::Timeout { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("last status `running`"), "{e}");
    assert!(e.created_branch().is_some());
    assert_no_secret(&e);
}

#[tokio::test]
async fn deleting_a_missing_branch_is_ok() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    neon.delete_branch("br-gone-123").await.unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "DELETE");
    assert_eq!(reqs[0].path, format!("{}/br-gone-123", branches_path()));

    let e = neon.delete_branch("pgship-sbx-1").await.unwrap_err();
    assert!(e.to_string().contains("br-"), "{e}");
}

#[tokio::test]
async fn list_branches_by_prefix_across_pages() {
    let fake = FakeNeon::start();
    fake.state.lock().unwrap().page_size = 2;
    fake.add_branch(
        "br-a-1",
        "pgship-sbx-b",
        false,
        false,
        "2024-03-02T00:00:00Z",
    );
    fake.add_endpoint("ep-a-1", "br-a-1", "ep-a-1.c-3.us-east-2.aws.neon.tech");
    fake.add_branch(
        "br-a-2",
        "pgship-sbx-a",
        false,
        false,
        "2024-03-01T00:00:00Z",
    );
    fake.add_branch(
        "br-a-3",
        "old-pgship-sbx-x",
        false,
        false,
        "2024-03-01T00:00:00Z",
    );
    fake.add_branch(
        "br-a-4",
        "pgship-sbx-kept",
        false,
        true,
        "2024-03-01T00:00:00Z",
    );
    fake.add_branch(
        "br-a-5",
        "pgship-sbx-c",
        false,
        false,
        "2024-03-03T00:00:00Z",
    );
    let neon = fake.client();

    let found = neon.list_branches("pgship-sbx-").await.unwrap();
    let names: Vec<&str> = found.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, vec!["pgship-sbx-a", "pgship-sbx-b", "pgship-sbx-c"]);
    assert_eq!(found[0].created_at.as_deref(), Some("2024-03-01T00:00:00Z"));
    assert_eq!(
        found[1].host.as_deref(),
        Some("ep-a-1.c-3.us-east-2.aws.neon.tech")
    );
    assert_eq!(found[0].host, None);

    let reqs = fake.requests();
    let pages: Vec<&str> = reqs
        .iter()
        .filter(|r| r.path.starts_with(&format!("{}?", branches_path())))
        .map(|r| r.path.split_once('?').unwrap().1)
        .collect();
    assert_eq!(
        pages,
        vec![
            "search=pgship-sbx-",
            "search=pgship-sbx-&cursor=2",
            "search=pgship-sbx-&cursor=4",
            "search=pgship-sbx-&cursor=5",
        ]
    );
    assert_all_authenticated(&reqs);

    let e = neon.list_branches(" ").await.unwrap_err();
    assert!(e.to_string().contains("empty prefix"), "{e}");
}

#[test]
fn missing_variables_are_named() {
    let e = NeonClient::from_env(&Env::from_pairs([(
        "NEON_PROJECT_ID".to_string(),
        PROJECT.to_string(),
    )]))
    .unwrap_err();
    assert!(e.to_string().starts_with("NEON_API_KEY is not set"), "{e}");

    let e = NeonClient::from_env(&Env::from_pairs([
        ("NEON_API_KEY".to_string(), KEY.to_string()),
        ("NEON_PROJECT_ID".to_string(), "  ".to_string()),
    ]))
    .unwrap_err();
    assert!(
        e.to_string().starts_with("NEON_PROJECT_ID is not set"),
        "{e}"
    );
    assert_no_secret(&e);

    let e = NeonClient::from_env(&Env::from_pairs([
        ("NEON_API_KEY".to_string(), KEY.to_string()),
        ("NEON_PROJECT_ID".to_string(), PROJECT.to_string()),
        (
            "NEON_API_URL".to_string(),
            "http://neon.example.com/api/v2".to_string(),
        ),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("https"), "{e}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn api_key_never_shown() {
    let fake = FakeNeon::start();
    let neon = fake.client();
    assert!(!format!("{neon:?}").contains(KEY));

    // An error body echoing the key, a bearer token and a URL password.
    fake.fault("POST", "/branches", 400, 1)
        .body(json!({
            "code": "bad_request",
            "message": format!("invalid request with key {KEY}: Authorization: Bearer {KEY}; see postgres://owner:hunter2@ep-x.neon.tech/db\n{}", "x".repeat(2000)),
            "request_id": "req-42",
        }))
        .add();
    let e = neon
        .create_branch("br-main-a1", "pgship-sbx-400")
        .await
        .unwrap_err();
    assert!(matches!(e, NeonError::Api { status: 400, .. }), "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains("HTTP 400 (bad_request)") && shown.contains("req-42"),
        "{shown}"
    );
    assert!(
        shown.len() < 700,
        "message not capped: {} bytes",
        shown.len()
    );
    assert!(!shown.contains('\n'));
    assert_no_secret(&e);
    assert_eq!(
        count(&fake.requests(), "POST", &branches_path()),
        1,
        "a 400 is not retried"
    );

    // A wrong key: the 401 names the problem, not the key.
    let wrong = NeonClient::from_env(&Env::from_pairs([
        ("NEON_API_KEY".to_string(), "napi_TESTKEY_wrong".to_string()),
        ("NEON_PROJECT_ID".to_string(), PROJECT.to_string()),
        (
            "NEON_API_URL".to_string(),
            format!("http://127.0.0.1:{}/api/v2", fake.port),
        ),
    ]))
    .unwrap();
    let e = wrong.branch_for_host(MAIN_HOST).await.unwrap_err();
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    assert_no_secret(&e);

    // A transport failure (nothing listens there).
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = NeonClient::from_env(&Env::from_pairs([
        ("NEON_API_KEY".to_string(), KEY.to_string()),
        ("NEON_PROJECT_ID".to_string(), PROJECT.to_string()),
        (
            "NEON_API_URL".to_string(),
            format!("http://127.0.0.1:{port}/api/v2"),
        ),
    ]))
    .unwrap()
    .with_retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        ..RetryPolicy::default()
    });
    let e = dead.branch_for_host(MAIN_HOST).await.unwrap_err();
    assert!(matches!(e, NeonError::Transport { attempts: 2, .. }), "{e}");
    assert_no_secret(&e);
}
