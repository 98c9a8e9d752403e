//! `pgship deploy`, `rollback <id>`: the whole database pipeline on real targets, as a user runs
//! it (the binary, a project folder, `DEV_POSTGRES_URL`), each on a fresh database.

mod common;
#[path = "common/neon.rs"]
mod fake;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::deploy::*;
use common::*;
use serde_json::Value;

/// `deploy` whose `--test-cmd` (run on the sandbox, after the clone) is `shell`, with the
/// target's URL in `$TARGET_FOR_TEST` so it can change the target behind the rehearsal's back.
fn deploy_after_clone(project: &Path, url: &str, tmp: &Path, shell: &str, extra: &[&str]) -> Out {
    let mut args = vec!["deploy", "dev", "--sandbox", "local", "--test-cmd", shell];
    args.extend(extra);
    let mut c = cmd(project, url, tmp, &args);
    c.env("TARGET_FOR_TEST", url);
    run(&mut c)
}

fn phases(lines: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        let p = l["phase"].as_str().unwrap().to_string();
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_drizzle_fixture_from_0001_deploys_with_every_artifact_and_phase() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    let full = tempfile::tempdir().unwrap();
    copy_dir(&project.path().join("drizzle"), full.path());
    drizzle_journal_upto(&project.path().join("drizzle"), 2);
    let m = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(m.code, 0, "{}", m.stderr);
    std::fs::remove_dir_all(project.path().join("drizzle")).unwrap();
    copy_dir(full.path(), &project.path().join("drizzle"));
    let tmp = private_tmp();

    let out = deploy(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(drizzle_state_rows(&db.url), drizzle_expected_state());
    let dir = runs(project.path(), "deploy-").pop().unwrap();
    for f in [
        "deployment.log",
        "rollback-state.json",
        "report.md",
        "report.json",
        "schema-comparison.json",
        "manifest.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    pgship::backup::check(&dir).expect("the backup verifies");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rollback-state.json")).unwrap())
            .unwrap();
    for key in [
        "deploymentId",
        "timestamp",
        "environment",
        "databaseBackup",
        "gitCommit",
        "gitBranch",
        "canRollback",
    ] {
        assert!(state.get(key).is_some(), "rollback-state.json lacks {key}");
    }
    assert_eq!(state["environment"], "dev");
    assert!(state["timestamp"].as_str().unwrap().ends_with('Z'));
    let lines = log_lines(&dir);
    assert_eq!(
        phases(&lines),
        [
            "PREFLIGHT",
            "SANDBOX_VALIDATION",
            "BACKUP",
            "DEPLOY",
            "POST_DEPLOY_VALIDATION",
            "SUCCESS"
        ]
    );
    for l in &lines {
        let level = l["level"].as_str().unwrap();
        assert!(
            ["DEBUG", "INFO", "WARN", "ERROR", "SUCCESS"].contains(&level),
            "{l}"
        );
    }
    let id = dir.file_name().unwrap().to_string_lossy().to_string();
    let table_phases = db.query(&format!(
        "SELECT DISTINCT phase FROM pgship.deployment_logs WHERE deployment_id = '{id}'"
    ));
    assert_eq!(table_phases.len(), 6, "{table_phases:?}");
    let row = db.query(&format!(
        "SELECT status, duration_ms > 0, array_length(migrations, 1) FROM pgship.deployments WHERE id = '{id}'"
    ));
    assert_eq!(
        row[0],
        [
            Some("succeeded".to_string()),
            Some("t".into()),
            Some("2".into())
        ]
    );
    // Nothing pending now: exit 0, fast, nothing written to the target.
    let again = deploy(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
    assert_eq!(drizzle_state_rows(&db.url), drizzle_expected_state());
}

#[test]
fn a_removed_table_aborts_in_the_rehearsal_and_leaves_the_target_as_it_was() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(&db, &[("002_drop.sql", "DROP TABLE notes;")]);
    let before = schema_dump(Path::new("/usr/lib/postgresql/15/bin/pg_dump"), &db.url);
    let runs_before = db.scalar("SELECT count(*) FROM pgship.deployments");
    let tmp = private_tmp();
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    assert_eq!(
        phases(&log_lines(&dir)),
        ["PREFLIGHT", "SANDBOX_VALIDATION", "ABORTED"]
    );
    assert_eq!(
        schema_dump(Path::new("/usr/lib/postgresql/15/bin/pg_dump"), &db.url),
        before
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.deployments"),
        runs_before
    );
    assert_eq!(sql_state(&db), ["001_init"]);
}

#[test]
fn a_row_written_after_the_clone_breaks_the_new_constraint_and_the_deploy_rolls_back() {
    let Some(db) = TestDb::new() else { return };
    let p = check_project(&db);
    let tmp = private_tmp();
    // The app's tests run on the sandbox after the clone; this one also writes to the target a
    // row the new constraint rejects (the rehearsal never saw it).
    let (fp_clone, _) = fingerprint_and_counts(&db.url, &["customers"]);
    let out = deploy_after_clone(p.path(), &db.url, tmp.path(), BREAK_CHECK, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let (fp, counts) = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    assert_eq!(fp, fp_clone, "the schema is as before");
    assert_eq!(
        counts,
        [("customers".to_string(), 51), ("notes".to_string(), 2)]
    );
    assert_eq!(sql_state(&db), ["001_init"]);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    let ph = phases(&log_lines(&dir));
    assert!(ph.contains(&"ROLLBACK".to_string()), "{ph:?}");
    assert_eq!(ph.last().unwrap(), "ROLLED_BACK");
}

#[test]
fn a_failing_smoke_check_after_the_commit_is_rolled_back_to_the_same_schema_data_and_state() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[(
            "002_more.sql",
            "ALTER TABLE customers ADD COLUMN phone text;\nUPDATE customers SET phone = '555';\nCREATE TABLE audit (id serial PRIMARY KEY, what text);",
        )],
    );
    std::fs::create_dir_all(p.path().join("pgship/smoke")).unwrap();
    std::fs::write(
        p.path().join("pgship/smoke/customers_have_no_phone.sql"),
        "SELECT id FROM customers WHERE phone IS NOT NULL LIMIT 1;",
    )
    .unwrap();
    let before = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    let hash_before =
        db.scalar("SELECT md5(string_agg(id || email, ',' ORDER BY id)) FROM customers");
    let tmp = private_tmp();
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("customers_have_no_phone.sql"),
        "{}",
        out.stdout
    );
    assert_eq!(
        fingerprint_and_counts(&db.url, &["customers", "notes"]),
        before
    );
    assert_eq!(
        db.scalar("SELECT md5(string_agg(id || email, ',' ORDER BY id)) FROM customers"),
        hash_before
    );
    assert_eq!(sql_state(&db), ["001_init"]);
    let status = db.scalar("SELECT status FROM pgship.deployments WHERE kind = 'deploy'");
    assert_eq!(status.as_deref(), Some("rolled-back"));
}

#[test]
fn a_lock_held_on_the_target_fails_the_apply_and_nothing_is_left_changed() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[("002_col.sql", "ALTER TABLE notes ADD COLUMN n int;")],
    );
    let tmp = private_tmp();
    // After the clone, a session takes a lock on the table and keeps it for 20 s.
    let test_cmd = "(psql -X -q \"$TARGET_FOR_TEST\" -c 'BEGIN; LOCK notes IN ACCESS SHARE MODE; SELECT pg_sleep(20)' >/dev/null 2>&1 &)";
    let before = fingerprint_and_counts(&db.url, &["notes"]);
    let extra = ["--lock-timeout", "100ms", "--lock-retries", "1"];
    let out = deploy_after_clone(p.path(), &db.url, tmp.path(), test_cmd, &extra);
    db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()");
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("lock"), "{}", out.stdout);
    assert_eq!(fingerprint_and_counts(&db.url, &["notes"]), before);
    assert_eq!(sql_state(&db), ["001_init"]);
}

#[test]
fn the_guard_refuses_to_restore_over_a_row_written_after_the_backup() {
    let Some(db) = TestDb::new() else { return };
    let p = guarded_project(&db);
    let tmp = private_tmp();
    let writer = write_after_apply(db.url.clone());
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert!(
        writer.join().unwrap(),
        "the writer never saw the new column"
    );
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("public.customers") && out.stdout.contains("1 inserted"),
        "{}",
        out.stdout
    );
    // Nothing restored: the row is there, and so is the new column.
    assert_eq!(
        db.scalar("SELECT count(*) FROM customers WHERE email = 'late@x.test'")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'flag'").as_deref(),
        Some("1")
    );
    let status = db.scalar("SELECT status FROM pgship.deployments WHERE kind = 'deploy'");
    assert_eq!(status.as_deref(), Some("needs-human"));
}

#[test]
fn with_rows_lost_allowed_the_guard_lets_the_rollback_restore() {
    let Some(db) = TestDb::new() else { return };
    let p = guarded_project(&db);
    std::fs::write(
        p.path().join("pgship.toml"),
        "[policy]\nrows_lost = \"allow\"\n",
    )
    .unwrap();
    let before = fingerprint_and_counts(&db.url, &["customers"]);
    let tmp = private_tmp();
    let writer = write_after_apply(db.url.clone());
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert!(writer.join().unwrap());
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fingerprint_and_counts(&db.url, &["customers"]), before);
    assert_eq!(sql_state(&db), ["001_init"]);
}

#[test]
fn rollback_of_a_finished_deployment_and_its_refusals() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[(
            "002_phone.sql",
            "ALTER TABLE customers ADD COLUMN phone text;\nCREATE TABLE audit (id serial PRIMARY KEY);",
        )],
    );
    let before = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    let tmp = private_tmp();
    let out = deploy(p.path(), &db.url, tmp.path(), &["--backup", "full"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    assert!(dir.join("backup.dump").is_file());
    let id = dir.file_name().unwrap().to_string_lossy().to_string();
    // A second deployment on top.
    std::fs::write(
        p.path().join("migrations/003_more.sql"),
        "CREATE TABLE later (id int);",
    )
    .unwrap();
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let later = runs(p.path(), "deploy-").pop().unwrap();
    let later_id = later.file_name().unwrap().to_string_lossy().to_string();
    let rb = |id: &str, extra: &[&str]| {
        let mut args = vec!["rollback", id];
        args.extend(extra);
        run(&mut cmd(p.path(), &db.url, tmp.path(), &args))
    };
    let refused = rb(&id, &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains(&later_id), "{}", refused.stderr);

    let unknown = rb("deploy-dev-1234", &[]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("deploy-dev-1234"),
        "{}",
        unknown.stderr
    );

    // The later one first; then a tampered state file and a tampered backup are refused.
    let ok = rb(&later_id, &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let state_path = dir.join("rollback-state.json");
    let original = std::fs::read_to_string(&state_path).unwrap();
    std::fs::write(
        &state_path,
        original.replace("\"canRollback\": true", "\"canRollback\": false"),
    )
    .unwrap();
    let tampered = rb(&id, &[]);
    assert_eq!(tampered.code, 1, "{}", tampered.stderr);
    assert!(tampered.stderr.contains("tampered"), "{}", tampered.stderr);
    std::fs::write(&state_path, &original).unwrap();
    let dump = dir.join("backup.dump");
    let mut bytes = std::fs::read(&dump).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&dump, &bytes).unwrap();
    let bad_backup = rb(&id, &[]);
    assert_eq!(bad_backup.code, 1, "{}", bad_backup.stderr);
    assert!(
        bad_backup.stderr.contains("sha256"),
        "{}",
        bad_backup.stderr
    );
    bytes[last] ^= 0xff;
    std::fs::write(&dump, &bytes).unwrap();

    let dry = rb(&id, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("would roll back"), "{}", dry.stdout);
    assert_eq!(sql_state(&db), ["001_init", "002_phone"]);
    let done = rb(&id, &[]);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(
        fingerprint_and_counts(&db.url, &["customers", "notes"]),
        before
    );
    assert_eq!(sql_state(&db), ["001_init"]);
    // From the target's copy when the local folder is gone: now refused, already undone.
    std::fs::remove_dir_all(&dir).unwrap();
    let again = rb(&id, &[]);
    assert_ne!(again.code, 0, "{}", again.stderr);
}

#[test]
fn a_live_deployment_holding_the_lock_makes_a_new_one_wait_then_fail_naming_it() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[("002_col.sql", "ALTER TABLE notes ADD COLUMN n int;")],
    );
    // Another run's session holds the migration lock.
    let mut holder = std::process::Command::new("psql")
        .args(["-X", "-q", &db.url, "-c"])
        .arg(format!(
            "SELECT pg_advisory_lock({LOCK_KEY}); SELECT pg_sleep(60)"
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while db
        .scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        .as_deref()
        != Some("1")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the lock was never taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tmp = private_tmp();
    let before = fingerprint_and_counts(&db.url, &["notes"]);
    let out = deploy(p.path(), &db.url, tmp.path(), &["--lock-wait", "1s"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("migration lock is held by"),
        "{}",
        out.stdout
    );
    assert_eq!(fingerprint_and_counts(&db.url, &["notes"]), before);
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn uncommitted_migrations_abort_unless_allowed_and_other_changes_never_block() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(&db, &[]);
    git(p.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(p.path().join(".gitignore"), ".deployments/\n").unwrap();
    git(p.path(), &["add", "."]);
    git(p.path(), &["commit", "-q", "-m", "init"]);
    std::fs::write(p.path().join("notes.txt"), "untracked elsewhere").unwrap();
    std::fs::write(
        p.path().join("migrations/002_col.sql"),
        "ALTER TABLE notes ADD COLUMN n int;",
    )
    .unwrap();
    let tmp = private_tmp();
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("002_col.sql"), "{}", out.stdout);
    assert!(!out.stdout.contains("notes.txt"), "{}", out.stdout);
    assert_eq!(sql_state(&db), ["001_init"]);
    let allowed = deploy(p.path(), &db.url, tmp.path(), &["--allow-dirty"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert_eq!(sql_state(&db), ["001_init", "002_col"]);
    let row = db.query(
        "SELECT git_commit IS NOT NULL, git_branch FROM pgship.deployments WHERE kind = 'deploy'",
    );
    assert_eq!(row[0], [Some("t".to_string()), Some("main".to_string())]);
}

/// Kill `deploy` with SIGKILL when its log first shows `phase`; the next deploy converges.
fn killed_at(phase: &str) {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[(
            "002_slow.sql",
            "SELECT pg_sleep(1);\nALTER TABLE notes ADD COLUMN n int;\nCREATE TABLE audit (id int);",
        )],
    );
    let tmp = private_tmp();
    let mut child = cmd(
        p.path(),
        &db.url,
        tmp.path(),
        &["deploy", "dev", "--sandbox", "local"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let needle = format!("\"phase\":\"{phase}\"");
    let started = Instant::now();
    let mut seen = false;
    while started.elapsed() < Duration::from_secs(120) && !seen {
        if let Some(dir) = runs(p.path(), "deploy-").pop() {
            seen = std::fs::read_to_string(dir.join("deployment.log"))
                .is_ok_and(|t| t.contains(&needle));
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen, "deploy never reached {phase}");
    child.kill().unwrap();
    child.wait().unwrap();
    let next = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(
        next.code, 0,
        "after a kill at {phase}: {}\n{}",
        next.stdout, next.stderr
    );
    assert_eq!(
        sql_state(&db),
        ["001_init", "002_slow"],
        "after a kill at {phase}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.deployments WHERE status = 'running'")
            .as_deref(),
        Some("0"),
        "after a kill at {phase}"
    );
    // No passfile or partial dump of the killed run is left behind.
    let left: Vec<String> = files_under(&p.path().join(".deployments"))
        .into_iter()
        .map(|f| f.display().to_string())
        .filter(|f| f.contains("pgpass-") || f.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "after a kill at {phase}: {left:?}");
    // The sandbox of a run killed during the rehearsal is removed by gc.
    let gc = run(&mut cmd(p.path(), &db.url, tmp.path(), &["sandbox", "gc"]));
    assert_eq!(gc.code, 0, "{}", gc.stderr);
}

#[test]
fn a_deploy_killed_at_each_phase_boundary_converges_on_the_next_run() {
    for phase in [
        "SANDBOX_VALIDATION",
        "BACKUP",
        "DEPLOY",
        "POST_DEPLOY_VALIDATION",
    ] {
        killed_at(phase);
    }
}

#[test]
fn deployment_ids_started_in_the_same_millisecond_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..50)
        .map(|_| pgship::deploy::new_id(dir.path(), "deploy", "dev").unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[test]
fn rollback_from_the_targets_copy_when_the_local_folder_is_gone_with_down_scripts() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(
        &db,
        &[
            (
                "002_audit.sql",
                "CREATE TABLE audit (id serial PRIMARY KEY, what text);\nALTER TABLE notes ADD COLUMN n int;",
            ),
            (
                "002_audit.down.sql",
                "ALTER TABLE notes DROP COLUMN n;\nDROP TABLE audit;",
            ),
        ],
    );
    let before = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    let tmp = private_tmp();
    let out = deploy(p.path(), &db.url, tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    let id = dir.file_name().unwrap().to_string_lossy().to_string();
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rollback-state.json")).unwrap())
            .unwrap();
    assert_eq!(state["rollbackMethod"], "down");
    // A CI runner: the artifacts are gone, the target's copy is what is left.
    std::fs::remove_dir_all(p.path().join(".deployments")).unwrap();
    let rb = run(&mut cmd(p.path(), &db.url, tmp.path(), &["rollback", &id]));
    assert_eq!(rb.code, 0, "{}\n{}", rb.stdout, rb.stderr);
    assert_eq!(
        fingerprint_and_counts(&db.url, &["customers", "notes"]),
        before
    );
    assert_eq!(sql_state(&db), ["001_init"]);
    assert_eq!(
        db.scalar(&format!(
            "SELECT status FROM pgship.deployments WHERE id = '{id}'"
        ))
        .as_deref(),
        Some("rolled-back")
    );
}

#[test]
fn a_neon_backup_is_a_branch_of_the_targets_branch() {
    let Some(db) = TestDb::new() else { return };
    let fake = fake::FakeNeon::serving("127.0.0.1");
    fake.script("create_branch", &["finished"]);
    fake.script("start_compute", &["finished"]);
    let p = applied_project(
        &db,
        &[("002_col.sql", "ALTER TABLE notes ADD COLUMN n int;")],
    );
    let tmp = private_tmp();
    let mut c = cmd(
        p.path(),
        &db.url,
        tmp.path(),
        &["deploy", "dev", "--sandbox", "local", "--backup", "neon"],
    );
    c.envs(fake.vars());
    let out = run(&mut c);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    let id = dir.file_name().unwrap().to_string_lossy().to_string();
    let branch = fake
        .made_branch(&format!("pgship-backup-{id}"))
        .expect("the backup branch was made");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rollback-state.json")).unwrap())
            .unwrap();
    assert_eq!(state["databaseBackup"], format!("neon:{branch}"));
    assert_eq!(state["backup"]["strategy"], "neon");
    assert_eq!(sql_state(&db), ["001_init", "002_col"]);
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(fake::KEY), "the API key leaked");
    }
}

#[test]
fn a_failed_deploy_with_a_neon_backup_restores_the_branch_and_keeps_pgships_history() {
    let Some(db) = TestDb::new() else { return };
    let fake = fake::FakeNeon::serving("127.0.0.1");
    fake.script("create_branch", &["finished"]);
    fake.script("start_compute", &["finished"]);
    fake.script("restore_branch", &["finished"]);
    // What Neon does to the data, on this server: a branch is a copy of the database at that
    // moment, and a restore puts the copy back in the target's place.
    let (admin, target) = (admin_url(), db.name.clone());
    let copy_of = {
        let target = target.clone();
        move |branch: &str| format!("{target}_{}", branch.replace('-', "_"))
    };
    {
        let (admin, target, copy_of) = (admin.clone(), target.clone(), copy_of.clone());
        fake.on_create(move |id, _| {
            query(
                &admin,
                &format!("CREATE DATABASE {} TEMPLATE {target}", copy_of(id)),
            );
            Vec::new()
        });
    }
    {
        let (admin, target, copy_of) = (admin.clone(), target.clone(), copy_of.clone());
        fake.on_restore(move |_, source| {
            query(&admin, &format!("DROP DATABASE {target} WITH (FORCE)"));
            query(
                &admin,
                &format!("CREATE DATABASE {target} TEMPLATE {}", copy_of(source)),
            );
        });
    }
    let p = applied_project(
        &db,
        &[(
            "002_more.sql",
            "ALTER TABLE customers ADD COLUMN phone text;\nCREATE TABLE audit (id serial PRIMARY KEY);",
        )],
    );
    std::fs::create_dir_all(p.path().join("pgship/smoke")).unwrap();
    std::fs::write(
        p.path().join("pgship/smoke/fails.sql"),
        "SELECT id FROM customers LIMIT 1;",
    )
    .unwrap();
    let before = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    let tmp = private_tmp();
    let mut c = cmd(
        p.path(),
        &db.url,
        tmp.path(),
        &["deploy", "dev", "--sandbox", "local", "--backup", "neon"],
    );
    c.envs(fake.vars());
    let out = run(&mut c);
    for (id, _) in fake.state.lock().unwrap().made.clone() {
        query(&admin, &format!("DROP DATABASE IF EXISTS {}", copy_of(&id)));
    }
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(fake.state.lock().unwrap().restores.len(), 1);
    assert_eq!(
        fingerprint_and_counts(&db.url, &["customers", "notes"]),
        before
    );
    assert_eq!(sql_state(&db), ["001_init"]);
    // History survives the restore: the migrate run before and this deployment, with its log.
    let id = id_of(&runs(p.path(), "deploy-").pop().unwrap());
    let rows = db.query("SELECT kind, status FROM pgship.deployments ORDER BY started_at");
    assert_eq!(
        rows,
        [
            [Some("migrate".to_string()), Some("succeeded".to_string())],
            [Some("deploy".to_string()), Some("rolled-back".to_string())]
        ]
    );
    let lines = db.scalar(&format!(
        "SELECT count(*) FROM pgship.deployment_logs WHERE deployment_id = '{id}' AND phase = 'ROLLBACK'"
    ));
    assert_ne!(lines.as_deref(), Some("0"));
}
