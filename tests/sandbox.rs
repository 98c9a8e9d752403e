//! `pgship sandbox` as a user runs it: each strategy makes a copy whose schema fingerprint and
//! row counts equal the target's and is removed by `drop`; `template` refuses while someone is
//! connected; a killed `create` leaves something `gc` removes; a PostgreSQL 18 target clones
//! into a PostgreSQL 18 cluster.

mod common;

use common::*;
use serde_json::Value;

use pgship::db::{ConnectOptions, DbUrl, connect};

const SETUP: &str = "CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email citext NOT NULL UNIQUE, m mood DEFAULT 'ok');
CREATE TABLE orders (id serial PRIMARY KEY, user_id bigint REFERENCES users(id), total numeric(12,2), note text);
CREATE INDEX orders_note_trgm ON orders USING gin (note gin_trgm_ops);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO users (email) SELECT 'u' || g || '@x' FROM generate_series(1, 500) g;
INSERT INTO orders (user_id, total, note) SELECT 1 + g % 500, g, 'note ' || g FROM generate_series(1, 3000) g;";

/// The fingerprint and the row counts of the tables [`SETUP`] fills.
fn fingerprint_and_counts(url: &str) -> (String, Vec<(String, i64)>) {
    common::fingerprint_and_counts(url, &["users", "orders"])
}

fn create(project: &std::path::Path, target: &str, strategy: &str) -> (i32, Value, String) {
    create_with(project, target, strategy, &[])
}

fn create_with(
    project: &std::path::Path,
    target: &str,
    strategy: &str,
    env: &[(&str, &std::path::Path)],
) -> (i32, Value, String) {
    let mut cmd = pgship(project);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd.args([
        "sandbox",
        "create",
        target,
        "--sandbox",
        strategy,
        "--show-password",
        "--format",
        "json",
    ]));
    let v = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    (out.code, v, out.stderr)
}

#[test]
fn each_strategy_copies_the_target_and_drop_removes_it() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    let want = fingerprint_and_counts(&target.url);
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join(".env"),
        format!("SANDBOX_POSTGRES_URL={}\n", admin_url()),
    )
    .unwrap();
    std::fs::write(
        project.path().join("pgship.toml"),
        "[sandbox]\nallow_template = true\n",
    )
    .unwrap();
    for strategy in ["local", "server", "template"] {
        let (code, v, err) = create(project.path(), &target.url, strategy);
        assert_eq!(code, 0, "{strategy}: {err}");
        assert_eq!(v["strategy"], strategy);
        let url = v["url"].as_str().unwrap().to_string();
        assert!(v["seconds"].as_f64().is_some());
        assert_eq!(fingerprint_and_counts(&url), want, "{strategy}");
        // local and server copy the rows through pgship and say what they copied; template
        // copies inside the server.
        if strategy == "template" {
            assert!(v.get("clone").is_none(), "{v}");
        } else {
            let tables = v["clone"]["tables"].as_u64().unwrap();
            assert!(tables >= 2, "{v}");
            assert!(v["clone"]["bytes"].as_u64().unwrap() > 0, "{v}");
            let steps: Vec<&str> = v["clone"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["step"].as_str().unwrap())
                .collect();
            assert_eq!(
                steps,
                ["prepare", "schema", "data", "indexes and constraints"]
            );
        }
        let id = v["id"].as_str().unwrap();
        let listed = run(pgship(project.path()).args(["sandbox", "list"]));
        assert!(listed.stdout.contains(id), "{}", listed.stdout);
        assert!(!listed.stdout.contains(":***@") || !url.contains("***"));
        let out = run(pgship(project.path()).args(["sandbox", "drop", id]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let gone = rt().block_on(async {
            connect(&DbUrl::parse(&url).unwrap(), &ConnectOptions::default())
                .await
                .is_err()
        });
        assert!(gone, "{strategy}: the sandbox still answers after drop");
    }
}

#[test]
fn template_refuses_while_another_session_is_connected() {
    let Some(target) = TestDb::new() else { return };
    target.query("CREATE TABLE t (id int)");
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("pgship.toml"),
        "[sandbox]\nallow_template = true\n",
    )
    .unwrap();
    let sandboxes = || {
        query(
            &admin_url(),
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgship\\_sandbox\\_%'",
        )[0][0]
            .clone()
    };
    let before = sandboxes();
    let mut other = std::process::Command::new("psql")
        .args([&target.url, "-c", "SELECT pg_sleep(30)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let (code, _, err) = create(project.path(), &target.url, "template");
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no other sessions"), "{err}");
    assert_eq!(sandboxes(), before, "nothing was created");
}

#[test]
fn a_killed_create_leaves_a_cluster_that_gc_removes() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    // Enough rows that the clone is still running when the process is killed.
    target.query("INSERT INTO orders (user_id, total, note) SELECT 1, g, repeat('x', 200) FROM generate_series(1, 300000) g");
    let project = tempfile::tempdir().unwrap();
    let before: Vec<_> = pgship::cluster::leftovers()
        .into_iter()
        .map(|l| l.dir)
        .collect();
    let mut child = pgship(project.path())
        .args(["sandbox", "create", &target.url, "--sandbox", "local"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until its cluster exists, then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mine = loop {
        let now: Vec<_> = pgship::cluster::leftovers()
            .into_iter()
            .filter(|l| !before.contains(&l.dir) && l.pid == Some(child.id()))
            .collect();
        if let Some(l) = now
            .first()
            .filter(|l| l.dir.join("data/postmaster.pid").exists())
        {
            break l.dir.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no cluster appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mine.exists(), "kill -9 leaves the cluster behind");
    let out = run(pgship(project.path()).args(["sandbox", "gc"]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&mine.display().to_string()),
        "{}",
        out.stdout
    );
    assert!(!mine.exists(), "gc removed the cluster folder");
}

#[test]
fn a_postgres_18_target_clones_into_a_postgres_18_cluster() {
    let Some(bin) = pg18_bin() else { return };
    let b = pgship::db::tools::at(&bin, "postgres").unwrap();
    let cluster = pgship::cluster::LocalCluster::start(&pgship::cluster::ClusterOptions {
        bin: Some(b),
        ..Default::default()
    })
    .unwrap();
    let admin = cluster.url("postgres").expose();
    let Some(target) = TestDb::on(&admin) else {
        return;
    };
    target.query(SETUP);
    let want = fingerprint_and_counts(&target.url);
    let project = tempfile::tempdir().unwrap();
    // Without PostgreSQL 18 binaries on the search path the local strategy says so.
    let (code, _, err) = create(project.path(), &target.url, "local");
    if code != 0 {
        assert!(err.contains("of major 18 or newer"), "{err}");
    }
    let (code, v, err) = create_with(
        project.path(),
        &target.url,
        "local",
        &[("PGSHIP_PG_BIN", bin.as_path())],
    );
    assert_eq!(code, 0, "{err}");
    let url = v["url"].as_str().unwrap();
    let version = query(url, "SHOW server_version_num")[0][0].clone().unwrap();
    assert!(version.starts_with("18"), "{version}");
    assert_eq!(fingerprint_and_counts(url), want);
    let out = run(pgship(project.path()).args(["sandbox", "drop", v["id"].as_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn ctrl_c_and_sigterm_during_a_clone_leave_nothing_behind() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    target.query("INSERT INTO orders (user_id, total, note) SELECT 1, g, repeat('x', 200) FROM generate_series(1, 300000) g");
    let project = tempfile::tempdir().unwrap();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let before: Vec<_> = pgship::cluster::leftovers()
            .into_iter()
            .map(|l| l.dir)
            .collect();
        let child = pgship(project.path())
            .args(["sandbox", "create", &target.url, "--sandbox", "local"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mine = loop {
            if let Some(l) = pgship::cluster::leftovers().into_iter().find(|l| {
                !before.contains(&l.dir)
                    && l.pid == Some(child.id())
                    && l.dir.join("data/postmaster.pid").exists()
            }) {
                break l.dir;
            }
            assert!(std::time::Instant::now() < deadline, "no cluster appeared");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out_pid = child.id();
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(out_pid as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "signal {signal}: {stderr}");
        assert!(
            !mine.exists(),
            "signal {signal}: the cluster folder is left: {stderr}"
        );
        let pid = out_pid;
        assert!(
            !pgship::sandbox::registry::all()
                .iter()
                .any(|r| r.pid == pid),
            "signal {signal}: a registry record is left"
        );
    }
}

#[test]
fn an_extension_the_local_binaries_lack_is_named_and_nothing_is_left() {
    // The PostgreSQL 18 wheel has no pgcrypto; the local server's PostgreSQL 15 has it.
    let Some(bin) = pg18_bin() else { return };
    if bin
        .join("../share/postgresql/extension/pgcrypto.control")
        .exists()
    {
        return;
    }
    let Some(target) = TestDb::new() else { return };
    target.query("CREATE EXTENSION pgcrypto; CREATE TABLE t (id uuid DEFAULT gen_random_uuid())");
    let project = tempfile::tempdir().unwrap();
    // A private temp root, so that only this run's clusters are looked at (traversable by
    // the `postgres` user the cluster runs as under root).
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, _, err) = create_with(
        project.path(),
        &target.url,
        "local",
        &[("PGSHIP_PG_BIN", bin.as_path()), ("TMPDIR", tmp.path())],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("extension pgcrypto"), "{err}");
    assert!(!err.contains("initdb failed"), "{err}");
    let clusters = std::fs::read_dir(tmp.path().join("pgship"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("cluster-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(clusters, 0, "the cluster was removed");
}

/// Off a terminal, `create` in text prints no progress but the clone's summary line, then the
/// result.
#[test]
fn create_in_text_prints_the_clone_summary() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    let project = tempfile::tempdir().unwrap();
    let out =
        run(pgship(project.path()).args(["sandbox", "create", &target.url, "--sandbox", "local"]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let summary = out
        .stderr
        .lines()
        .find(|l| l.contains("cloned "))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(summary.contains("cloned 2 tables ("), "{summary}");
    assert!(summary.contains("indexes and constraints"), "{summary}");
    assert!(
        !out.stderr.contains('\r'),
        "no progress redraws off a terminal"
    );
    let id = out
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        out.stdout
            .starts_with(&format!("sandbox {id} (local) ready in ")),
        "{}",
        out.stdout
    );
    let dropped = run(pgship(project.path()).args(["sandbox", "drop", id]));
    assert_eq!(dropped.code, 0, "{}", dropped.stderr);
}
