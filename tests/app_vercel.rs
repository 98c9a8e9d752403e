//! The Vercel client, deploy hooks and the health check against loopback servers that speak
//! Vercel's REST API and an app's health endpoint (tests/common/vercel.rs).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::vercel::{
    FakeApp, FakeVercel, HOOK_ID, Health, PROJECT_ID, PROJECT_NAME, Script, TEAM_ID, TOKEN,
};
use pgship::app::health::{Expect, Healthy, wait_healthy};
use pgship::app::vercel_api::{
    ReadyState, RetryPolicy, Vercel, VercelError, post_hook, post_hook_with,
};
use pgship::config::Env;
use pgship::db::url::Secret;
use serde_json::json;

const OLD: &str = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NEW: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const OTHER: &str = "3333333ccccccccccccccccccccccccccccccccc";

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(2),
        budget: Duration::from_secs(5),
    }
}

fn client(fake: &FakeVercel) -> Vercel {
    Vercel::from_env(&fake.env())
        .unwrap()
        .expect("VERCEL_TOKEN is set")
        .with_retry(fast())
        .with_poll(Duration::from_millis(10), Duration::from_millis(40))
}

/// The health check with the default commit fields and no progress lines.
async fn healthy(url: &str, expect: Expect, timeout: Duration) -> Result<Healthy, String> {
    wait_healthy(url, &expect, None, timeout, &mut quiet()).await
}

fn quiet() -> impl FnMut(&str) + Send {
    |_: &str| {}
}

#[test]
fn from_env_needs_a_token_and_names_what_is_missing() {
    let none = Env::from_pairs(Vec::new());
    assert!(Vercel::from_env(&none).unwrap().is_none());
    let no_project = Env::from_pairs(vec![("VERCEL_TOKEN".into(), TOKEN.into())]);
    let e = Vercel::from_env(&no_project).unwrap_err().to_string();
    assert!(e.contains("VERCEL_PROJECT_ID"), "{e}");
    let bad_url = Env::from_pairs(vec![
        ("VERCEL_TOKEN".into(), TOKEN.into()),
        ("VERCEL_PROJECT_ID".into(), PROJECT_ID.into()),
        ("VERCEL_API_URL".into(), "http://api.example.com".into()),
    ]);
    let e = Vercel::from_env(&bad_url).unwrap_err().to_string();
    assert!(e.contains("VERCEL_API_URL") && !e.contains(TOKEN), "{e}");
    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    assert!(!format!("{v:?}").contains(TOKEN), "{v:?}");
}

#[tokio::test]
async fn project_proves_the_token_can_read_it() {
    let fake = FakeVercel::start().unwrap();
    assert_eq!(client(&fake).project().await.unwrap(), PROJECT_NAME);

    fake.reject_token(403);
    let e = client(&fake).project().await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, VercelError::Denied { status: 403, .. }),
        "{e:?}"
    );
    assert!(
        text.contains(&format!("VERCEL_TOKEN cannot read project {PROJECT_ID}")),
        "{text}"
    );
    fake.reject_token(401);
    let text = client(&fake).project().await.unwrap_err().to_string();
    assert!(text.contains("HTTP 401") && !text.contains(TOKEN), "{text}");

    let other = FakeVercel::start().unwrap();
    let mut vars = other.vars();
    vars[1].1 = "prj_Missing".into();
    let v = Vercel::from_env(&Env::from_pairs(vars)).unwrap().unwrap();
    let text = v.project().await.unwrap_err().to_string();
    assert!(text.contains("project prj_Missing not found"), "{text}");
}

#[tokio::test]
async fn current_is_what_serves_the_environment() {
    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    assert_eq!(v.current("main", true).await.unwrap(), None);
    let before = fake.add_ready(OLD, "main", true);
    let preview = fake.add_ready(OTHER, "develop", false);
    fake.add_ready(NEW, "develop", false);
    let prod = v.current("main", true).await.unwrap().unwrap();
    assert_eq!(
        (prod.id.as_str(), prod.commit.as_deref()),
        (before.as_str(), Some(OLD))
    );
    assert_eq!(prod.state, ReadyState::Ready);
    assert_eq!(prod.target.as_deref(), Some("production"));
    assert_eq!(prod.branch.as_deref(), Some("main"));
    let dev = v.current("develop", false).await.unwrap().unwrap();
    assert_eq!(
        dev.commit.as_deref(),
        Some(NEW),
        "the newest READY of the branch"
    );
    assert_ne!(dev.id, preview);

    // A new production deployment serves once READY; a rollback points production back.
    let newer = fake.on_git_push(NEW, "main");
    let ready = v
        .wait_ready(NEW, Duration::from_secs(5), &mut quiet())
        .await
        .unwrap();
    assert_eq!(ready.id, newer);
    assert_eq!(v.current("main", true).await.unwrap().unwrap().id, newer);
    v.instant_rollback(&before).await.unwrap();
    assert_eq!(fake.rollbacks(), vec![before.clone()]);
    assert_eq!(v.current("main", true).await.unwrap().unwrap().id, before);
    assert_eq!(fake.serving_commit().as_deref(), Some(OLD));
}

#[tokio::test]
async fn for_commit_finds_the_newest_deployment_of_a_commit() {
    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    fake.add_ready(OLD, "main", true);
    assert_eq!(v.for_commit(NEW).await.unwrap(), None);
    fake.add_ready(NEW, "main", true);
    let second = fake.on_git_push(NEW, "main");
    let found = v.for_commit(NEW).await.unwrap().unwrap();
    assert_eq!(found.id, second);
    assert_eq!(found.state, ReadyState::Queued);
    let by_prefix = v.for_commit(&NEW[..7]).await.unwrap().unwrap();
    assert_eq!(by_prefix.id, second);
    let commit_filter = fake
        .requests()
        .iter()
        .any(|r| r.param("meta-githubCommitSha") == Some(NEW));
    assert!(
        commit_filter,
        "the list is filtered by the commit's metadata"
    );
    let e = v.for_commit("not-a-sha").await.unwrap_err().to_string();
    assert!(e.contains("not a git commit"), "{e}");
    assert!(
        v.deployment("dpl_nope")
            .await
            .unwrap_err()
            .to_string()
            .contains("404")
    );
}

#[tokio::test]
async fn wait_ready_waits_for_the_deployment_to_appear_and_build() {
    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    fake.script(Script {
        appear_after_lists: 2,
        polls: 3,
        end: "READY",
    });
    let id = fake.on_git_push(NEW, "main");
    let mut lines = Vec::new();
    let d = v
        .wait_ready(NEW, Duration::from_secs(10), &mut |l: &str| {
            lines.push(l.to_string())
        })
        .await
        .unwrap();
    assert_eq!(
        (d.id.as_str(), d.state.clone()),
        (id.as_str(), ReadyState::Ready)
    );
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v6/deployments")
        .count();
    assert!(
        lists >= 3,
        "it kept looking until the deployment appeared ({lists} lists)"
    );
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v13/"))
        .count();
    assert_eq!(polls, 4, "polled until READY");
    assert!(
        lines[0].starts_with("waiting for Vercel to start the deployment of 2222222"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("building 2222222 (QUEUED, ")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("building 2222222 (BUILDING, ") && l.ends_with(&id)),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 3, "one line per change of state: {lines:?}");
}

#[tokio::test]
async fn wait_ready_fails_on_error_and_canceled() {
    for end in ["ERROR", "CANCELED"] {
        let fake = FakeVercel::start().unwrap();
        fake.script(Script {
            appear_after_lists: 0,
            polls: 1,
            end,
        });
        let id = fake.on_git_push(NEW, "main");
        let e = client(&fake)
            .wait_ready(NEW, Duration::from_secs(10), &mut quiet())
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, VercelError::Failed { .. }), "{e:?}");
        assert!(
            text.contains(&id) && text.contains(end) && text.contains("2222222"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn wait_ready_gives_up_at_the_timeout() {
    let fake = FakeVercel::start().unwrap();
    fake.script(Script {
        appear_after_lists: 0,
        polls: 0,
        end: "NEVER",
    });
    fake.on_git_push(NEW, "main");
    let start = Instant::now();
    let e = client(&fake)
        .wait_ready(NEW, Duration::from_millis(600), &mut quiet())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let text = e.to_string();
    assert!(
        text.contains("is not ready after ") && text.ends_with("s: BUILDING"),
        "{text}"
    );

    // No deployment ever appears (the git integration is off).
    let empty = FakeVercel::start().unwrap();
    let text = client(&empty)
        .wait_ready(NEW, Duration::from_millis(300), &mut quiet())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("no deployment yet"), "{text}");
}

#[tokio::test]
async fn rate_limits_are_honoured_and_bounded() {
    let fake = FakeVercel::start().unwrap();
    fake.fault_with("GET", "/v9/projects", 429, 1, &[("Retry-After", "1")]);
    let start = Instant::now();
    assert_eq!(client(&fake).project().await.unwrap(), PROJECT_NAME);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    assert_eq!(fake.requests().len(), 2);

    let fake = FakeVercel::start().unwrap();
    fake.fault_with("GET", "/v9/projects", 429, 1, &[("Retry-After", "120")]);
    let e = client(&fake).project().await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 429") && e.contains("Retry-After 120s"),
        "{e}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "a wait longer than allowed is not slept"
    );

    let fake = FakeVercel::start().unwrap();
    fake.fault("GET", "/v9/projects", 429, 10);
    let e = client(&fake).project().await.unwrap_err().to_string();
    assert!(e.contains("after 4 attempts"), "{e}");
}

#[tokio::test]
async fn server_errors_are_retried_for_gets_only() {
    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    fake.add_ready(OLD, "main", true);
    fake.fault("GET", "/v6/deployments", 502, 2);
    assert!(v.for_commit(OLD).await.unwrap().is_some());
    assert_eq!(fake.requests().len(), 3);

    let before = fake.add_ready(OLD, "main", true);
    fake.fault("POST", "/v9/projects", 500, 1);
    let e = v.instant_rollback(&before).await.unwrap_err().to_string();
    assert!(e.contains("HTTP 500"), "{e}");
    let posts = |f: &FakeVercel| f.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(
        posts(&fake),
        1,
        "a rollback that may have happened is not repeated"
    );
    assert!(fake.rollbacks().is_empty());

    fake.fault("POST", "/v9/projects", 503, 1);
    v.instant_rollback(&before).await.unwrap();
    assert_eq!(posts(&fake), 3);
    assert_eq!(fake.rollbacks(), vec![before]);
}

#[tokio::test]
async fn the_token_goes_only_into_the_authorization_header() {
    let fake = FakeVercel::start().unwrap();
    fake.require_team(TEAM_ID);
    let mut vars = fake.vars();
    vars.push(("VERCEL_TEAM_ID".into(), TEAM_ID.into()));
    let v = Vercel::from_env(&Env::from_pairs(vars))
        .unwrap()
        .unwrap()
        .with_retry(fast())
        .with_poll(Duration::from_millis(10), Duration::from_millis(40));
    let before = fake.add_ready(OLD, "main", true);
    v.project().await.unwrap();
    v.current("main", true).await.unwrap().unwrap();
    fake.on_git_push(NEW, "main");
    v.wait_ready(NEW, Duration::from_secs(5), &mut quiet())
        .await
        .unwrap();
    v.for_commit(&NEW[..9]).await.unwrap().unwrap();
    v.instant_rollback(&before).await.unwrap();
    let requests = fake.requests();
    assert!(requests.len() >= 8, "{}", requests.len());
    for r in &requests {
        assert_eq!(
            r.param("teamId"),
            Some(TEAM_ID),
            "{} {}",
            r.method,
            r.target
        );
        assert_eq!(r.headers["authorization"], format!("Bearer {TOKEN}"));
        assert!(
            !r.target.contains(TOKEN) && !r.body.contains(TOKEN),
            "{}",
            r.target
        );
        let others = r.headers.iter().filter(|(k, _)| *k != "authorization");
        assert!(others.clone().all(|(_, v)| !v.contains(TOKEN)));
    }
}

#[tokio::test]
async fn errors_never_show_the_token() {
    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    // The fake's error messages quote the Authorization header.
    for (method, path, status) in [
        ("GET", "/v9/projects", 400),
        ("GET", "/v13/", 404),
        ("GET", "/v6/", 500),
    ] {
        fake.fault(method, path, status, 10);
    }
    let mut texts = vec![
        v.project().await.unwrap_err().to_string(),
        v.deployment("dpl_x").await.unwrap_err().to_string(),
        v.for_commit(NEW).await.unwrap_err().to_string(),
        v.wait_ready(NEW, Duration::from_secs(1), &mut quiet())
            .await
            .unwrap_err()
            .to_string(),
    ];
    fake.reject_token(403);
    texts.push(v.current("main", true).await.unwrap_err().to_string());
    let closed = Env::from_pairs(vec![
        ("VERCEL_TOKEN".into(), TOKEN.into()),
        ("VERCEL_PROJECT_ID".into(), PROJECT_ID.into()),
        ("VERCEL_API_URL".into(), "http://127.0.0.1:9".into()),
    ]);
    let unreachable = Vercel::from_env(&closed)
        .unwrap()
        .unwrap()
        .with_retry(fast());
    texts.push(unreachable.project().await.unwrap_err().to_string());
    for t in &texts {
        assert!(!t.contains(TOKEN), "{t}");
    }
    assert!(
        texts[0].contains("injected 400 for Bearer ***"),
        "{}",
        texts[0]
    );
    assert!(
        texts[5].contains("failed") && texts[5].contains("after 4 attempts"),
        "{}",
        texts[5]
    );
}

#[tokio::test]
async fn the_deploy_hook_starts_a_deployment_of_the_branch() {
    let fake = FakeVercel::start().unwrap();
    fake.set_head("main", NEW);
    let job = post_hook(&Secret::new(fake.hook_url())).await.unwrap();
    assert!(job.is_some_and(|j| j.starts_with("job_")));
    let d = fake.deployment_of(NEW).expect("the hook made a deployment");
    let ready = client(&fake)
        .wait_ready(NEW, Duration::from_secs(5), &mut quiet())
        .await
        .unwrap();
    assert_eq!(ready.id, d.id);
    let hook = fake
        .requests()
        .into_iter()
        .find(|r| r.path.contains("integrations"))
        .unwrap();
    assert_eq!(hook.method, "POST");
    assert!(
        !hook.headers.contains_key("authorization"),
        "no token goes to a hook"
    );

    // Any other platform's hook: any 2xx, no job id.
    let app = FakeApp::start(Health::Status(200)).unwrap();
    let other = format!("{}/api/health", app.url());
    assert_eq!(
        post_hook(&Secret::new(other)).await,
        Err("the deploy hook answered HTTP 404: {\"error\":\"not found\"}".to_string())
    );
}

#[tokio::test]
async fn deploy_hook_errors_never_show_its_url() {
    let fake = FakeVercel::start().unwrap();
    let wrong = fake.hook_url().replace(HOOK_ID, "HOOKwrongcanary");
    let e = post_hook(&Secret::new(&wrong)).await.unwrap_err();
    assert!(
        e.contains("HTTP 404") && !e.contains("HOOKwrongcanary"),
        "{e}"
    );

    fake.fault("POST", "/v1/integrations", 500, 1);
    let e = post_hook_with(&Secret::new(fake.hook_url()), &fast())
        .await
        .unwrap_err();
    assert!(
        e.contains("HTTP 500") && !e.contains(HOOK_ID) && !e.contains(PROJECT_ID),
        "{e}"
    );
    assert!(
        fake.deployments().is_empty(),
        "a failed POST is not repeated"
    );

    fake.set_head("main", NEW);
    fake.fault_with("POST", "/v1/integrations", 429, 1, &[("Retry-After", "0")]);
    post_hook_with(&Secret::new(fake.hook_url()), &fast())
        .await
        .unwrap();
    assert_eq!(
        fake.deployments().len(),
        1,
        "429: retried once, one deployment"
    );

    let closed = format!("http://127.0.0.1:9/v1/integrations/deploy/{PROJECT_ID}/{HOOK_ID}");
    let e = post_hook_with(&Secret::new(closed), &fast())
        .await
        .unwrap_err();
    assert!(
        e.contains("could not be reached") && !e.contains(HOOK_ID),
        "{e}"
    );
    let e = post_hook(&Secret::new(format!("http://example.com/{HOOK_ID}")))
        .await
        .unwrap_err();
    assert!(
        e.contains("VERCEL_DEPLOY_HOOK_URL") && !e.contains(HOOK_ID),
        "{e}"
    );
}

// ---- health ----

#[tokio::test]
async fn health_waits_for_the_new_commit_and_never_takes_the_old_one() {
    let app = FakeApp::start(Health::Commits {
        old: OLD.into(),
        new: NEW.into(),
        after: 3,
    })
    .unwrap();
    let mut lines = Vec::new();
    let ok = wait_healthy(
        &app.health_url(),
        &Expect::Commit(NEW.into()),
        None,
        Duration::from_secs(20),
        &mut |l: &str| lines.push(l.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(
        (ok.status, ok.commit.as_deref(), ok.attempts),
        (200, Some(NEW), 4)
    );
    assert_eq!(app.requests().len(), 4);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("still serving 1111111"), "{lines:?}");

    // Short shas match full ones.
    app.set(Health::Body(json!({"status": "ok", "commit": &NEW[..7]})));
    let ok = healthy(
        &app.health_url(),
        Expect::Commit(NEW.into()),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(ok.attempts, 1);

    // The old commit forever: never success.
    app.set(Health::Body(json!({"status": "ok", "commit": OLD})));
    let e = healthy(
        &app.health_url(),
        Expect::Commit(NEW.into()),
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("still serving 1111111") && e.contains("waiting for commit 2222222"),
        "{e}"
    );
}

#[tokio::test]
async fn health_after_a_rollback_waits_until_the_new_commit_is_gone() {
    let app = FakeApp::start(Health::Commits {
        old: NEW.into(),
        new: OLD.into(),
        after: 2,
    })
    .unwrap();
    let ok = healthy(
        &app.health_url(),
        Expect::NotCommit(NEW.into()),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!((ok.commit.as_deref(), ok.attempts), (Some(OLD), 3));
    app.set(Health::Body(json!({"commit": NEW})));
    let e = healthy(
        &app.health_url(),
        Expect::NotCommit(NEW.into()),
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(e.contains("still serving 2222222"), "{e}");
}

#[tokio::test]
async fn health_reads_other_commit_fields() {
    let app = FakeApp::start(Health::Body(json!({"ok": true, "git": {"commit": NEW}}))).unwrap();
    let got = |field: Option<&'static str>, expect: Expect| {
        let url = app.health_url();
        async move { wait_healthy(&url, &expect, field, Duration::from_secs(1), &mut quiet()).await }
    };
    assert_eq!(
        got(None, Expect::Any).await.unwrap().commit.as_deref(),
        Some(NEW)
    );
    app.set(Health::Body(json!({"version": {"rev": OLD}})));
    assert!(
        got(Some("rev"), Expect::Commit(NEW.into()))
            .await
            .unwrap_err()
            .contains("still serving 1111111")
    );
    assert_eq!(
        got(Some("rev"), Expect::Commit(OLD.into()))
            .await
            .unwrap()
            .commit
            .as_deref(),
        Some(OLD)
    );
    app.set(Health::Body(json!({"status": "ok"})));
    let ok = got(None, Expect::Commit(NEW.into())).await.unwrap();
    assert_eq!(
        ok.commit, None,
        "no commit in the body: 2xx is all it can say"
    );
}

#[tokio::test]
async fn health_failures_say_what_was_seen() {
    let app = FakeApp::start(Health::Status(500)).unwrap();
    let start = Instant::now();
    let e = healthy(&app.health_url(), Expect::Any, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        e.contains("answered 500") && e.contains("did not pass within 2s"),
        "{e}"
    );
    assert!(app.requests().len() >= 3, "retried with backoff");
    assert!(start.elapsed() < Duration::from_secs(4));

    app.set(Health::Hang);
    let secret_url = format!(
        "{}?x-vercel-protection-bypass=BYPASScanary",
        app.health_url()
    );
    let start = Instant::now();
    let e = healthy(&secret_url, Expect::Any, Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "bounded: {:?}",
        start.elapsed()
    );
    assert!(
        e.contains("no answer") && !e.contains("BYPASScanary"),
        "{e}"
    );

    let closed = "http://127.0.0.1:9/api/health?token=BYPASScanary";
    let mut lines = Vec::new();
    let e = wait_healthy(
        closed,
        &Expect::Any,
        None,
        Duration::from_millis(800),
        &mut |l: &str| lines.push(l.to_string()),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("no answer") && !e.contains("BYPASScanary"),
        "{e}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("BYPASScanary")),
        "{lines:?}"
    );
}

// ---- git push to a bare repository, Vercel's git integration, the app ----

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_push_is_deployed_served_and_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (bare, work) = (tmp.path().join("origin.git"), tmp.path().join("work"));
    git(
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    git(&work, &["checkout", "-q", "-b", "main"]);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let first = git(&work, &["rev-parse", "HEAD"]);

    let fake = FakeVercel::start().unwrap();
    let v = client(&fake);
    let before = fake.add_ready(&first, "main", true);
    fake.watch(&bare, true);
    let app = FakeApp::start(Health::Follow(fake.clone())).unwrap();
    git(&work, &["commit", "-q", "--allow-empty", "-m", "second"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let second = git(&work, &["rev-parse", "HEAD"]);

    let d = v
        .wait_ready(&second, Duration::from_secs(10), &mut quiet())
        .await
        .unwrap();
    assert_eq!(d.branch.as_deref(), Some("main"));
    let ok = healthy(
        &app.health_url(),
        Expect::Commit(second.clone()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(ok.commit.as_deref(), Some(second.as_str()));

    v.instant_rollback(&before).await.unwrap();
    let ok = healthy(
        &app.health_url(),
        Expect::NotCommit(second.clone()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(ok.commit.as_deref(), Some(first.as_str()));
    assert_eq!(fake.deployments().len(), 2, "one deployment per push");
}
