//! `deploy` with the code half, end to end: a real PostgreSQL target, a real git clone whose
//! `origin` is a bare repository on disk, the loopback Vercel (which hears pushes to that bare
//! repository as its git integration would) and the app's health endpoint.

mod common;

use std::path::Path;

use common::code::{CodeRepo, git};
use common::deploy::{id_of, log_lines, private_tmp, runs, sql_state};
use common::vercel::{FakeApp, FakeVercel, Health, PROJECT_ID, Script, TOKEN};
use common::{Out, TestDb, files_under, pgship, run};
use serde_json::Value;

const INIT: &str = "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL);
INSERT INTO customers (email) SELECT 'c' || i || '@x.test' FROM generate_series(1, 20) i;
";
const ADD: &str = "ALTER TABLE customers ADD COLUMN nickname text;\nCREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers (id));\n";

/// `dev` is served from `develop`, as Vercel's production (so instant rollbacks apply) unless
/// `production` is false (a preview environment, as `dev` is by default). `extra` may set its
/// own `deploy_timeout`.
fn toml(provider: &str, extra: &str, production: bool) -> String {
    let deploy_timeout = if extra.contains("deploy_timeout") {
        ""
    } else {
        "deploy_timeout = \"30s\"\n"
    };
    format!(
        "[app]\nprovider = \"{provider}\"\nhealth_timeout = \"4s\"\n{deploy_timeout}{extra}\n[environments.dev]\nproduction = {production}\n"
    )
}

/// The project: 001 applied to `db` on `develop`, `feature` adds 002 and the app's change.
struct Setup {
    repo: CodeRepo,
    db: TestDb,
    vercel: FakeVercel,
    app: FakeApp,
    tmp: tempfile::TempDir,
    /// The deployment serving dev before, and develop's commit then.
    previous: String,
    before: String,
    feature: String,
}

fn setup(provider: &str, extra: &str) -> Option<Setup> {
    setup_env(provider, extra, true)
}

fn setup_env(provider: &str, extra: &str, production: bool) -> Option<Setup> {
    let db = TestDb::new()?;
    let repo = CodeRepo::new(&[
        ("migrations/001_init.sql", INIT),
        ("pgship.toml", &toml(provider, extra, production)),
        ("app.txt", "v1\n"),
    ]);
    let m = run(pgship(&repo.work).args(["migrate", &db.url]));
    assert_eq!(m.code, 0, "{}", m.stderr);
    let feature = repo.commit(
        &[("migrations/002_orders.sql", ADD), ("app.txt", "v2\n")],
        "orders",
    );
    let vercel = FakeVercel::start().unwrap();
    if production {
        vercel.with_production_branch("develop");
    }
    let before = repo.remote_tip("develop");
    let previous = vercel.add_ready(&before, "develop", production);
    vercel.watch(&repo.origin, true);
    let app = FakeApp::start(Health::Follow(vercel.clone())).unwrap();
    Some(Setup {
        repo,
        db,
        vercel,
        app,
        tmp: private_tmp(),
        previous,
        before,
        feature,
    })
}

impl Setup {
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = pgship(&self.repo.work);
        c.env("TMPDIR", self.tmp.path())
            .env("DEV_POSTGRES_URL", &self.db.url)
            .env("DEV_URL", self.app.url())
            .envs(self.vercel.vars())
            .args(args);
        c
    }

    fn deploy(&self, extra: &[&str]) -> Out {
        let mut args = vec!["deploy", "dev", "--sandbox", "local"];
        args.extend(extra);
        run(&mut self.cmd(&args))
    }

    fn last_run(&self) -> std::path::PathBuf {
        runs(&self.repo.work, "deploy-dev-").pop().unwrap()
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.last_run().join("rollback-state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn has_orders(&self) -> bool {
        self.db
            .scalar("SELECT to_regclass('public.orders') IS NOT NULL")
            .as_deref()
            == Some("t")
    }

    /// The canary token went only into `Authorization` headers, and appears in no output,
    /// artifact or log row.
    fn assert_no_secret(&self, outs: &[&Out]) {
        for o in outs {
            assert!(!o.stdout.contains(TOKEN) && !o.stderr.contains(TOKEN));
        }
        for f in files_under(&self.repo.work.join(".deployments")) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(TOKEN),
                "{}",
                f.display()
            );
        }
        let rows = self.db.query(
            "SELECT message || metadata::text || coalesce(stack_trace, '') FROM pgship.deployment_logs",
        );
        assert!(!rows.is_empty());
        for r in rows {
            assert!(!r[0].clone().unwrap_or_default().contains(TOKEN));
        }
        let state = self
            .db
            .scalar(
                "SELECT coalesce(string_agg(rollback_state::text, ''), '') FROM pgship.deployments",
            )
            .unwrap_or_default();
        assert!(!state.contains(TOKEN));
        for r in self.vercel.requests() {
            assert!(!r.path.contains(TOKEN) && !r.body.contains(TOKEN), "{r:?}");
            for (k, v) in &r.headers {
                if v.contains(TOKEN) {
                    assert_eq!(k.to_ascii_lowercase(), "authorization", "{r:?}");
                }
            }
        }
        let config = std::fs::read_to_string(self.repo.work.join(".git/config")).unwrap();
        assert!(!config.contains(TOKEN));
    }
}

fn phase_messages(dir: &Path, phase: &str) -> Vec<String> {
    log_lines(dir)
        .iter()
        .filter(|l| l["phase"] == phase)
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn database_and_code_deploy_merge_push_wait_and_check_health() {
    let Some(s) = setup("vercel", "") else { return };
    let checkout = s.repo.checkout_state();
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(s.has_orders());
    // develop's tip is a merge of the feature into the commit it had before.
    let tip = s.repo.remote_tip("develop");
    let parents = git(&s.repo.origin, &["rev-list", "--parents", "-n", "1", &tip]);
    assert_eq!(
        parents.split(' ').skip(1).collect::<Vec<_>>(),
        [s.before.as_str(), s.feature.as_str()]
    );
    let message = git(&s.repo.origin, &["log", "-1", "--format=%s", &tip]);
    let id = id_of(&s.last_run());
    assert!(
        message.contains("feature") && message.contains(&id),
        "{message}"
    );
    assert_eq!(s.repo.remote_file("develop", "app.txt").unwrap(), "v2\n");
    // Vercel built it, it is what serves dev, and the health check saw it.
    let dep = s
        .vercel
        .deployment_of(&tip)
        .expect("a deployment of the merge");
    assert_eq!(dep.state, "READY");
    assert_eq!(s.vercel.serving_commit().as_deref(), Some(tip.as_str()));
    assert!(!s.app.requests().is_empty());
    // The state: the branch before, and the code half's record.
    let st = s.state();
    assert_eq!(st["gitCommit"], s.before.as_str());
    assert_eq!(st["gitBranch"], "develop");
    assert_eq!(st["code"]["mergeCommit"], tip.as_str());
    assert_eq!(st["code"]["previousDeployment"], s.previous.as_str());
    assert_eq!(st["code"]["newDeployment"], dep.id.as_str());
    let row =
        s.db.scalar(&format!(
            "SELECT git_commit FROM pgship.deployments WHERE id = '{id}'"
        ))
        .unwrap();
    assert_eq!(row, tip);
    let deploy = phase_messages(&s.last_run(), "DEPLOY");
    assert!(
        deploy
            .iter()
            .any(|m| m.contains("merged feature into develop")),
        "{deploy:?}"
    );
    assert!(deploy.iter().any(|m| m.contains("READY")), "{deploy:?}");
    let post = phase_messages(&s.last_run(), "POST_DEPLOY_VALIDATION");
    assert!(
        post.iter().any(|m| m.starts_with("health check")),
        "{post:?}"
    );
    assert_eq!(s.repo.checkout_state(), checkout);
    // status shows the environment's code next to the migrations.
    let st = run(&mut s.cmd(&["status", "dev"]));
    assert_eq!(st.code, 0, "{}", st.stderr);
    assert!(
        st.stdout.contains("branch develop on origin"),
        "{}",
        st.stdout
    );
    assert!(st.stdout.contains(&tip[..12]), "{}", st.stdout);
    assert!(st.stdout.contains(&dep.id), "{}", st.stdout);
    s.assert_no_secret(&[&out]);
}

#[test]
fn a_health_check_answered_by_the_old_code_rolls_back_code_first_then_the_database() {
    let Some(s) = setup("vercel", "") else { return };
    // The app keeps answering from the commit before: the new code never goes live.
    s.app.set(Health::Body(
        serde_json::json!({"status": "ok", "commit": s.before}),
    ));
    let checkout = s.repo.checkout_state();
    let out = s.deploy(&[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!s.has_orders(), "the database is back");
    assert_eq!(sql_state(&s.db), ["001_init"]);
    // The code: instant rollback to the deployment before, and the merge reverted.
    assert_eq!(s.vercel.rollbacks(), std::slice::from_ref(&s.previous));
    let tip = s.repo.remote_tip("develop");
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(
        tree(&tip),
        tree(&s.before),
        "develop's tree is the one before"
    );
    let st = s.state();
    let merge = st["code"]["mergeCommit"].as_str().unwrap().to_string();
    assert_eq!(st["code"]["revertCommit"], tip.as_str());
    assert!(
        git(&s.repo.origin, &["rev-list", &tip]).contains(&merge),
        "history kept"
    );
    // Code first, then the database.
    let lines = phase_messages(&s.last_run(), "ROLLBACK");
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {lines:#?}"))
    };
    assert!(pos("instant rollback") < pos("reverted"));
    assert!(pos("reverted") < pos("rolled back:"));
    let post = phase_messages(&s.last_run(), "POST_DEPLOY_VALIDATION");
    assert!(post.iter().any(|m| m.contains("still serving")), "{post:?}");
    assert_eq!(s.repo.checkout_state(), checkout);
    s.assert_no_secret(&[&out]);
}

#[test]
fn a_conflict_is_found_in_preflight_and_nothing_changes() {
    let Some(s) = setup("vercel", "") else { return };
    // Somebody changed app.txt on develop meanwhile.
    s.repo
        .push_from_other("develop", "app.txt", "v1-hotfix\n", "hotfix");
    let tip = s.repo.remote_tip("develop");
    let checkout = s.repo.checkout_state();
    let out = s.deploy(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("conflicts in app.txt"),
        "{}",
        out.stderr
    );
    assert_eq!(s.repo.remote_tip("develop"), tip, "nothing pushed");
    assert!(!s.has_orders(), "the target is untouched");
    assert!(s.vercel.rollbacks().is_empty());
    assert_eq!(s.repo.checkout_state(), checkout);
}

#[test]
fn uncommitted_tracked_changes_stop_the_deploy_unless_allowed() {
    let Some(s) = setup("vercel", "") else { return };
    std::fs::write(s.repo.work.join("app.txt"), "v3 not committed\n").unwrap();
    let out = s.deploy(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("uncommitted changes to tracked files: app.txt"),
        "{}",
        out.stderr
    );
    assert!(!s.has_orders());
    let checkout = s.repo.checkout_state();
    let out = s.deploy(&["--allow-dirty"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // The committed state was deployed; the working file is still the user's.
    assert_eq!(s.repo.remote_file("develop", "app.txt").unwrap(), "v2\n");
    assert_eq!(
        std::fs::read_to_string(s.repo.work.join("app.txt")).unwrap(),
        "v3 not committed\n"
    );
    assert_eq!(s.repo.checkout_state(), checkout);
}

#[test]
fn rollback_of_a_finished_deployment_restores_code_and_database() {
    let Some(s) = setup("vercel", "") else { return };
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let id = id_of(&s.last_run());
    let merge = s.repo.remote_tip("develop");
    let checkout = s.repo.checkout_state();
    let rb = run(&mut s.cmd(&["rollback", &id]));
    assert_eq!(rb.code, 0, "{}\n{}", rb.stdout, rb.stderr);
    assert!(!s.has_orders());
    assert_eq!(s.vercel.rollbacks(), std::slice::from_ref(&s.previous));
    assert_eq!(
        s.vercel.serving_commit().as_deref(),
        Some(s.before.as_str())
    );
    let tip = s.repo.remote_tip("develop");
    assert_ne!(tip, merge);
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(tree(&tip), tree(&s.before));
    // What the code rollback did is kept, in the file and the target's copy alike.
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(
            s.repo
                .work
                .join(".deployments")
                .join(&id)
                .join("rollback-state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(file["code"]["revertCommit"], tip.as_str());
    assert_eq!(file["code"]["instantRollback"], true);
    let copy =
        s.db.scalar(&format!(
            "SELECT rollback_state::text FROM pgship.deployments WHERE id = '{id}'"
        ))
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&copy).unwrap(), file);
    assert_eq!(s.repo.checkout_state(), checkout);
    s.assert_no_secret(&[&out, &rb]);
}

#[test]
fn reset_mode_refuses_to_destroy_a_commit_pushed_meanwhile() {
    let Some(s) = setup("vercel", "git_rollback = \"reset\"\n") else {
        return;
    };
    // The health check fails (old code answers), and meanwhile somebody pushes on develop.
    s.app.set(Health::Body(
        serde_json::json!({"status": "ok", "commit": s.before}),
    ));
    let pusher = {
        let origin = s.repo.origin.clone();
        let root = s.repo.root.path().to_path_buf();
        std::thread::spawn(move || push_when_merged(&root, &origin))
    };
    let out = s.deploy(&[]);
    let pushed = pusher.join().unwrap();
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("keep me"), "{}", out.stderr);
    // The commit pushed meanwhile is still there.
    assert_eq!(s.repo.remote_tip("develop"), pushed);
    assert!(
        out.stderr.contains("git revert -m 1"),
        "commands left: {}",
        out.stderr
    );
}

/// Wait until `develop` on `origin` is a merge, then push a commit on top of it from another
/// clone; that commit.
fn push_when_merged(root: &Path, origin: &Path) -> String {
    let start = std::time::Instant::now();
    loop {
        let tip = git(origin, &["rev-parse", "refs/heads/develop"]);
        let parents = git(origin, &["rev-list", "--parents", "-n", "1", &tip]);
        if parents.split(' ').count() == 3 {
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "no merge pushed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::code::push_from_other(
        root,
        origin,
        "develop",
        ("hotfix.txt", "x\n"),
        "hotfix: keep me",
    )
}

#[test]
fn a_hook_without_a_token_is_proven_live_by_the_health_check() {
    let Some(s) = setup("hook", "") else { return };
    s.vercel.with_hook_branch("develop");
    // Built at once: without a token nobody polls it, the health check is the proof.
    s.vercel.script(Script {
        appear_after_lists: 0,
        polls: 0,
        end: "READY",
    });
    let mut c = s.cmd(&["deploy", "dev", "--sandbox", "local"]);
    for (k, _) in s.vercel.vars() {
        c.env_remove(k);
    }
    c.env("VERCEL_DEPLOY_HOOK_URL", s.vercel.hook_url());
    let out = run(&mut c);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let tip = s.repo.remote_tip("develop");
    // The hook started the build of the pushed merge; the health check saw it live.
    assert!(s.vercel.deployment_of(&tip).is_some());
    assert!(
        s.vercel
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("/integrations/deploy/"))
    );
    let post = phase_messages(&s.last_run(), "POST_DEPLOY_VALIDATION");
    assert!(
        post.iter()
            .any(|m| m.contains(&format!("commit {}", &tip[..12]))),
        "{post:?}"
    );
    // The hook URL is a secret.
    let hook_secret = common::vercel::HOOK_ID;
    assert!(!out.stdout.contains(hook_secret) && !out.stderr.contains(hook_secret));
    for f in files_under(&s.repo.work.join(".deployments")) {
        assert!(!String::from_utf8_lossy(&std::fs::read(&f).unwrap()).contains(hook_secret));
    }
    let _ = PROJECT_ID;
}

#[test]
fn a_build_that_fails_on_vercel_rolls_back_the_database_and_reverts() {
    let Some(s) = setup("vercel", "") else { return };
    s.vercel.script(Script {
        appear_after_lists: 1,
        polls: 2,
        end: "ERROR",
    });
    let out = s.deploy(&[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("ERROR"), "{}", out.stderr);
    assert!(!s.has_orders());
    let tip = s.repo.remote_tip("develop");
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(tree(&tip), tree(&s.before));
}

#[test]
fn ctrl_c_while_vercel_builds_rolls_back_what_was_pushed() {
    let Some(s) = setup("vercel", "") else { return };
    s.vercel.script(Script {
        appear_after_lists: 0,
        polls: 0,
        end: "NEVER",
    });
    let child = s
        .cmd(&["deploy", "dev", "--sandbox", "local"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the merge is pushed and the build is awaited.
    let start = std::time::Instant::now();
    loop {
        let tip = s.repo.remote_tip("develop");
        if tip != s.before && s.vercel.deployment_of(&tip).is_some() {
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "no build started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // At once: the signal may arrive while the merge is still being recorded; it is kept and
    // ends the wait that follows.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(!s.has_orders());
    let tip = s.repo.remote_tip("develop");
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(tree(&tip), tree(&s.before), "the pushed merge was reverted");
}

#[test]
fn a_feature_already_merged_deploys_the_database_without_a_code_step() {
    let Some(s) = setup("vercel", "") else { return };
    // The feature reached develop another way (a merged pull request); its migration did not
    // reach the database yet.
    git(&s.repo.work, &["push", "-q", "origin", "HEAD:develop"]);
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(s.has_orders());
    assert_eq!(s.repo.remote_tip("develop"), s.feature, "nothing pushed");
    assert!(
        out.stderr
            .contains("feature is already merged into develop: no code step"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("already merged: no code step"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_token_that_cannot_read_the_project_aborts_in_preflight() {
    let Some(s) = setup("vercel", "") else { return };
    s.vercel.reject_token(403);
    let out = s.deploy(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("VERCEL_TOKEN cannot read project"),
        "{}",
        out.stderr
    );
    assert!(!s.has_orders());
    assert_eq!(s.repo.remote_tip("develop"), s.before);
    assert!(!out.stderr.contains(TOKEN) && !out.stdout.contains(TOKEN));
}

#[test]
fn code_without_a_migration_is_deployed_alone_and_rolled_back_alone() {
    let Some(s) = setup("vercel", "") else { return };
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // A change of the app alone.
    s.repo.commit(&[("app.txt", "v3\n")], "copy change");
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("no migration was pending"),
        "{}",
        out.stdout
    );
    assert_eq!(s.repo.remote_file("develop", "app.txt").unwrap(), "v3\n");
    let id = id_of(&s.last_run());
    let row = s.db.query(&format!(
        "SELECT status, git_commit FROM pgship.deployments WHERE id = '{id}'"
    ));
    assert_eq!(row[0][0].as_deref(), Some("succeeded"));
    assert_eq!(
        row[0][1].as_deref(),
        Some(s.repo.remote_tip("develop").as_str())
    );
    // The next one is never answered by its new code: the code alone goes back.
    s.repo.commit(&[("app.txt", "v4\n")], "broken copy");
    let serving = s.repo.remote_tip("develop");
    s.app
        .set(Health::Body(serde_json::json!({"commit": serving})));
    let out = s.deploy(&[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(s.repo.remote_file("develop", "app.txt").unwrap(), "v3\n");
    assert!(s.has_orders(), "the database is not touched");
    let rb = run(&mut s.cmd(&["rollback", &id_of(&s.last_run())]));
    assert_eq!(rb.code, 1, "{}", rb.stderr);
    assert!(rb.stderr.contains("deployed code only"), "{}", rb.stderr);
}

#[test]
fn a_preview_environment_is_rolled_back_by_the_revert_without_an_instant_rollback() {
    // `dev` as Vercel serves it by default: preview deployments of `develop`. Vercel's instant
    // rollback points the production domains elsewhere; it is not for a preview.
    let Some(s) = setup_env("vercel", "", false) else {
        return;
    };
    s.app.set(Health::Body(
        serde_json::json!({"status": "ok", "commit": s.before}),
    ));
    let out = s.deploy(&[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        s.vercel.rollbacks().is_empty(),
        "no instant rollback of a preview"
    );
    assert!(!s.has_orders());
    let tip = s.repo.remote_tip("develop");
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(tree(&tip), tree(&s.before), "the merge was reverted");
    // The revert's build is what brings the old code back: it was awaited.
    assert_eq!(
        s.vercel.deployment_of(&tip).map(|d| d.state).as_deref(),
        Some("READY")
    );
    s.assert_no_secret(&[&out]);
}

#[test]
fn a_hook_without_a_token_needs_the_health_check_to_name_the_pushed_commit() {
    let Some(s) = setup("hook", "deploy_timeout = \"2s\"\n") else {
        return;
    };
    s.vercel.with_hook_branch("develop");
    // The app answers 2xx without saying which commit it runs: nothing proves the new code
    // is live (the old deployment answers just the same).
    s.app.set(Health::Body(serde_json::json!({"status": "ok"})));
    let mut c = s.cmd(&["deploy", "dev", "--sandbox", "local"]);
    for (k, _) in s.vercel.vars() {
        c.env_remove(k);
    }
    c.env("VERCEL_DEPLOY_HOOK_URL", s.vercel.hook_url());
    let out = run(&mut c);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no commit"), "{}", out.stderr);
    assert!(!s.has_orders());
    let tip = s.repo.remote_tip("develop");
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(tree(&tip), tree(&s.before));
}

#[test]
fn a_run_killed_while_the_host_builds_has_recorded_its_merge_for_rollback() {
    let Some(s) = setup("vercel", "") else { return };
    s.vercel.script(Script {
        appear_after_lists: 0,
        polls: 0,
        end: "NEVER",
    });
    let mut child = s
        .cmd(&["deploy", "dev", "--sandbox", "local"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let merge = loop {
        let tip = s.repo.remote_tip("develop");
        if tip != s.before && s.vercel.deployment_of(&tip).is_some() {
            break tip;
        }
        assert!(start.elapsed().as_secs() < 120, "no build started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SIGKILL (an OOM kill, a CI runner's hard stop): no handler runs.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.state()["code"]["mergeCommit"], merge.as_str());
    let id = id_of(&s.last_run());
    let rb = run(&mut s.cmd(&["rollback", &id]));
    assert_eq!(rb.code, 0, "{}\n{}", rb.stdout, rb.stderr);
    assert!(!s.has_orders());
    let tip = s.repo.remote_tip("develop");
    let tree = |c: &str| git(&s.repo.origin, &["rev-parse", &format!("{c}^{{tree}}")]);
    assert_eq!(tree(&tip), tree(&s.before), "the pushed merge was reverted");
}

#[test]
fn a_pending_migration_the_feature_commit_lacks_stops_the_deploy() {
    let Some(s) = setup("vercel", "") else { return };
    // Written, never added: it would reach the database and not the pushed code.
    let extra = "CREATE TABLE untracked_t (id int);\n";
    std::fs::write(s.repo.work.join("migrations/003_untracked.sql"), extra).unwrap();
    let checkout = s.repo.checkout_state();
    let out = s.deploy(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("migrations/003_untracked.sql")
            && out.stderr.contains("not in feature"),
        "{}",
        out.stderr
    );
    assert!(!s.has_orders(), "the target is untouched");
    assert_eq!(s.repo.remote_tip("develop"), s.before, "nothing pushed");
    assert_eq!(s.repo.checkout_state(), checkout);
    // `--from` a ref that lacks the checkout's migrations: the same refusal.
    git(&s.repo.work, &["branch", "released", &s.before]);
    let out = s.deploy(&["--from", "released"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("migrations/002_orders.sql") && out.stderr.contains("not in released"),
        "{}",
        out.stderr
    );
    assert!(!s.has_orders());
    // Committed, it goes with the code.
    s.repo
        .commit(&[("migrations/003_untracked.sql", extra)], "003");
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        s.repo
            .remote_file("develop", "migrations/003_untracked.sql")
            .is_some()
    );
}

#[test]
fn the_database_stays_while_the_app_still_runs_the_new_code() {
    let Some(s) = setup("vercel", "") else { return };
    // The database fails its smoke check once the code is live (Follow: the app answers from
    // what Vercel's production serves).
    let smoke = s.repo.work.join("pgship/smoke");
    std::fs::create_dir_all(&smoke).unwrap();
    std::fs::write(smoke.join("always_fails.sql"), "SELECT 1 AS wrong;\n").unwrap();
    // The code cannot be rolled back: the instant rollback fails, and the remote refuses
    // the revert.
    s.vercel.fault("POST", "/v9/projects", 500, 5);
    let hook = s.repo.origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  git log -1 --format=%s \"$new\" | grep -q '^Revert' && { echo 'reverts are frozen' >&2; exit 1; }\ndone\nexit 0\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
    let out = s.deploy(&[]);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let merge = s.repo.remote_tip("develop");
    assert_ne!(merge, s.before);
    assert_eq!(s.vercel.serving_commit().as_deref(), Some(merge.as_str()));
    assert!(s.has_orders(), "the new code's schema stays under it");
    assert!(
        out.stderr.contains("not restoring the database"),
        "{}",
        out.stderr
    );
    let id = id_of(&s.last_run());
    assert!(
        out.stderr.contains(&format!("pgship rollback {id}")),
        "{}",
        out.stderr
    );
}

#[test]
fn after_an_instant_rollback_the_next_production_build_is_promoted() {
    let Some(s) = setup("vercel", "") else { return };
    s.app.set(Health::Body(
        serde_json::json!({"status": "ok", "commit": s.before}),
    ));
    let out = s.deploy(&[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(s.vercel.rollbacks().len(), 1);
    // A new branch from develop as it is now, with a change of the app alone.
    git(&s.repo.work, &["fetch", "-q", "origin"]);
    git(
        &s.repo.work,
        &["checkout", "-q", "-b", "fix", "origin/develop"],
    );
    s.repo.commit(&[("app.txt", "v5\n")], "fix");
    s.app.set(Health::Follow(s.vercel.clone()));
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let tip = s.repo.remote_tip("develop");
    let dep = s.vercel.deployment_of(&tip).unwrap();
    assert_eq!(s.vercel.promotions(), std::slice::from_ref(&dep.id));
    assert_eq!(s.vercel.serving_commit().as_deref(), Some(tip.as_str()));
    assert!(out.stderr.contains("promoted"), "{}", out.stderr);
}

#[test]
fn a_feature_deployed_again_after_its_revert_is_refused_until_the_revert_is_reverted() {
    let Some(s) = setup("vercel", "") else { return };
    s.app.set(Health::Body(
        serde_json::json!({"status": "ok", "commit": s.before}),
    ));
    let out = s.deploy(&[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let revert = s.repo.remote_tip("develop");
    // A fix of the app on the same branch: git takes the reverted commits as merged, so the
    // merge would bring the fix without the migration the database would get.
    s.repo.commit(&[("fix.txt", "fixed\n")], "fix");
    s.app.set(Health::Follow(s.vercel.clone()));
    let out = s.deploy(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("migrations/002_orders.sql"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("revert that revert"), "{}", out.stderr);
    assert!(!s.has_orders());
    assert_eq!(s.repo.remote_tip("develop"), revert, "nothing pushed");
    // Reverting the revert on develop makes the feature whole again.
    git(&s.repo.work, &["fetch", "-q", "origin"]);
    git(
        &s.repo.work,
        &["checkout", "-q", "-b", "unrevert", "origin/develop"],
    );
    git(&s.repo.work, &["revert", "--no-edit", &revert]);
    git(&s.repo.work, &["push", "-q", "origin", "HEAD:develop"]);
    git(&s.repo.work, &["checkout", "-q", "feature"]);
    let out = s.deploy(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(s.has_orders());
    assert_eq!(s.repo.remote_file("develop", "app.txt").unwrap(), "v2\n");
    assert_eq!(s.repo.remote_file("develop", "fix.txt").unwrap(), "fixed\n");
    assert!(
        s.repo
            .remote_file("develop", "migrations/002_orders.sql")
            .is_some()
    );
}
