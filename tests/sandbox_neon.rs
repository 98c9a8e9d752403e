//! The Neon branch lifecycle against a loopback HTTP/1.1 server that follows Neon's documented
//! API (paths under `/api/v2`, bearer auth, `branch`/`endpoints`/`operations` bodies, operation
//! statuses, `{"code","message"}` errors), with faults injected per request (the server is in
//! `common/neon.rs`, shared with the CLI tests).

#[path = "common/neon.rs"]
mod fake;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use fake::{FakeNeon, KEY, MAIN_HOST, PROJECT, Request};
use pgship::config::Env;
use pgship::sandbox::neon::{NeonClient, NeonError, RetryPolicy};
use serde_json::json;

fn client(fake: &FakeNeon) -> NeonClient {
    NeonClient::from_env(&fake.env())
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
    let neon = client(&fake);

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
    let neon = client(&fake);
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
    let neon = client(&fake);
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
    let neon = client(&fake);
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
    let neon = client(&fake);
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
    let neon = client(&fake);
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
    let neon = client(&fake);
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
    let neon = client(&fake);
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
    let neon = client(&fake).with_failed_grace(Duration::from_secs(5));
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
    let neon = client(&fake).with_failed_grace(Duration::from_secs(5));
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
    let neon = client(&fake);
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
    let neon = client(&fake);

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
    let neon = client(&fake);
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

#[tokio::test]
async fn create_answer_connection_uris_are_kept_and_never_shown() {
    let fake = FakeNeon::start();
    fake.on_create(|_, _| {
        vec![
            json!({
                "connection_uri": "postgresql://neondb_owner:hunter2@ep-x.c-3.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
                "connection_parameters": {"database": "neondb", "role": "neondb_owner",
                    "password": "hunter2", "host": "ep-x.c-3.us-east-2.aws.neon.tech",
                    "pooler_host": "ep-x-pooler.c-3.us-east-2.aws.neon.tech"},
            }),
            // Entries of another shape are skipped, not fatal.
            json!({"connection_uri": 42}),
            json!({"connection_uri": "mysql://u:p@h/db"}),
        ]
    });
    let neon = client(&fake);
    let branch = neon
        .create_branch("br-main-a1", "pgship-sbx-uris")
        .await
        .unwrap();
    assert_eq!(branch.connection_uris.len(), 1, "{branch:?}");
    let uri = &branch.connection_uris[0];
    assert_eq!(uri.password.as_ref().unwrap().expose(), "hunter2");
    assert_eq!(uri.dbname.as_deref(), Some("neondb"));
    assert_eq!(
        branch.endpoint_id.as_deref(),
        Some(format!("ep-sandbox-{}", &branch.id["br-sandbox-".len()..]).as_str())
    );
    assert!(!format!("{branch:?}").contains("hunter2"));
    neon.delete_branch(&branch.id).await.unwrap();

    // A branch adopted after a lost answer has none: its URL comes from the endpoint host.
    fake.fault("POST", "/branches", 502, 1)
        .after_processing()
        .add();
    let adopted = neon
        .create_branch("br-main-a1", "pgship-sbx-lost-uris")
        .await
        .unwrap();
    assert!(adopted.connection_uris.is_empty());
    assert!(adopted.endpoint_id.is_some() && adopted.host.is_some());
    neon.delete_branch(&adopted.id).await.unwrap();
}
