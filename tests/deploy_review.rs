//! Review of the deploy pipeline (issue 14): each test shows one defect found in review, on a
//! real target, driven through the binary as a user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::deploy::*;
use common::*;

/// A smoke folder that cannot be read (here `[deploy] smoke_dir` names a file) is found only
/// after the migrations committed: the deploy must still roll back (exit 3), not exit 2 with
/// the target changed and its row left `running`.
#[test]
fn an_unreadable_smoke_folder_after_the_commit_is_rolled_back_not_left_applied() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[("002_col.sql", "ALTER TABLE notes ADD COLUMN n int;")],
    );
    std::fs::write(
        p.path().join("pgship.toml"),
        "[deploy]\nsmoke_dir = \"smoke.sql\"\n",
    )
    .unwrap();
    std::fs::write(p.path().join("smoke.sql"), "SELECT 1 WHERE false;").unwrap();
    let before = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    let tmp = private_tmp();
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        fingerprint_and_counts(&db.url, &["customers", "notes"]),
        before
    );
    assert_eq!(sql_state(&db), ["001_init"]);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.deployments WHERE status = 'running'")
            .as_deref(),
        Some("0")
    );
}

/// Start `deploy`, and SIGKILL it once its log shows the DEPLOY phase's start (the apply is
/// running: the migration sleeps). Returns the killed run's folder.
fn kill_during_apply(p: &Path, url: &str, tmp: &Path) -> PathBuf {
    let mut child = cmd(p, url, tmp, &["deploy", "dev", "--sandbox", "local"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(120) && seen.is_none() {
        if let Some(dir) = runs(p, "deploy-").pop() {
            let text = std::fs::read_to_string(dir.join("deployment.log")).unwrap_or_default();
            if text.contains("\"phase\":\"DEPLOY\"") {
                seen = Some(dir);
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "deploy ended by itself"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let dir = seen.expect("deploy never reached DEPLOY");
    // Well inside the apply (the migration sleeps 4 s).
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    dir
}

const SLOW_UPDATE: &str = "UPDATE customers SET email = email || '';\nSELECT pg_sleep(4);\nALTER TABLE notes ADD COLUMN n int;";

/// A deploy killed during its apply: its local rollback-state.json and the target's copy must
/// agree, so that `rollback <id>` is not refused as "tampered".
#[test]
fn a_deploy_killed_during_the_apply_leaves_a_state_file_equal_to_the_targets_copy() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(&db, &[("002_slow.sql", SLOW_UPDATE)]);
    let tmp = private_tmp();
    let dir = kill_during_apply(p.path(), &db.url, tmp.path());
    let id = id_of(&dir);
    let rb = run(&mut cmd(
        p.path(),
        &db.url,
        tmp.path(),
        &["rollback", &id, "--dry-run"],
    ));
    assert_eq!(rb.code, 0, "{}\n{}", rb.stdout, rb.stderr);
    assert!(!rb.stderr.contains("tampered"), "{}", rb.stderr);
}

/// A deploy killed during its apply, then the app writes to a table the rollback would
/// restore: `rollback <id>` must find the write (the data-loss guard) and refuse to restore
/// over it (exit 4), not restore the table's recorded rows and lose the write.
#[test]
fn the_guard_still_watches_when_the_deploy_was_killed_during_the_apply() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(&db, &[("002_slow.sql", SLOW_UPDATE)]);
    let tmp = private_tmp();
    let dir = kill_during_apply(p.path(), &db.url, tmp.path());
    let id = id_of(&dir);
    // The killed backend finishes its sleep, finds its client gone and ends: then the app
    // writes.
    let started = Instant::now();
    while db
        .scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        .as_deref()
        != Some("0")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "lock never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    db.query("INSERT INTO customers (email) VALUES ('after-the-kill@x.test')");
    let rb = run(&mut cmd(p.path(), &db.url, tmp.path(), &["rollback", &id]));
    assert_eq!(
        db.scalar("SELECT count(*) FROM customers WHERE email = 'after-the-kill@x.test'")
            .as_deref(),
        Some("1"),
        "the row written after the kill was lost: {}\n{}",
        rb.stdout,
        rb.stderr
    );
    assert_eq!(rb.code, 4, "{}\n{}", rb.stdout, rb.stderr);
}
