//! Migrations that commit on their own (a top-level `COMMIT` in a custom Drizzle migration, a
//! `CALL` of a procedure that commits in batches): applied with drizzle's meaning, every
//! committed step recorded, a failure after the `COMMIT` reported from that record, and a fixed
//! file continued where it stopped.

mod common;

use std::path::Path;

use common::*;

/// A Drizzle folder `drizzle/` in a temp project: `entries` are (tag, sql), `when` 1000 apart.
fn drizzle_project(entries: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_drizzle(dir.path(), entries);
    dir
}

fn write_drizzle(project: &Path, entries: &[(&str, &str)]) {
    let folder = project.join("drizzle");
    std::fs::create_dir_all(folder.join("meta")).unwrap();
    let mut journal = Vec::new();
    for (i, (tag, sql)) in entries.iter().enumerate() {
        std::fs::write(folder.join(format!("{tag}.sql")), sql).unwrap();
        journal.push(serde_json::json!({
            "idx": i, "version": "7", "when": 1_700_000_000_000_i64 + 1000 * i as i64,
            "tag": tag, "breakpoints": true
        }));
    }
    // An older drizzle-kit's header, as projects still carry it.
    let j = serde_json::json!({"version": "5", "dialect": "pg", "entries": journal});
    std::fs::write(
        folder.join("meta/_journal.json"),
        serde_json::to_string_pretty(&j).unwrap(),
    )
    .unwrap();
}

const INIT: &str = "CREATE TABLE \"t\" (\n\t\"id\" serial PRIMARY KEY NOT NULL,\n\t\"v\" integer\n);\n--> statement-breakpoint\nINSERT INTO \"t\" (\"v\") SELECT g FROM generate_series(1, 300) g;";

/// A custom migration: a procedure that commits between batches, the file's own COMMIT, then a
/// concurrent index, the CALL, and a BEGIN ... COMMIT group.
const CUSTOM: &str = "-- Custom SQL migration file, put your code below! --\nCREATE PROCEDURE bump() LANGUAGE plpgsql AS $$\nBEGIN\n  FOR i IN 0..2 LOOP\n    UPDATE t SET v = v + 1 WHERE id % 3 = i;\n    COMMIT;\n  END LOOP;\nEND $$;\n--> statement-breakpoint\nCOMMIT;\n--> statement-breakpoint\nCREATE INDEX CONCURRENTLY \"t_v_idx\" ON \"t\" (\"v\");\n--> statement-breakpoint\nCALL bump();\n--> statement-breakpoint\nBEGIN;\n--> statement-breakpoint\nALTER TABLE \"t\" ADD COLUMN \"w\" integer;\n--> statement-breakpoint\nUPDATE t SET w = v;\n--> statement-breakpoint\nCOMMIT;";

const MORE: &str = "CREATE TABLE \"u\" (\"id\" serial PRIMARY KEY NOT NULL);";

fn state_rows(db: &TestDb) -> Vec<Vec<Option<String>>> {
    db.query("SELECT id::text, created_at::text FROM drizzle.__drizzle_migrations ORDER BY id")
}

#[test]
fn a_files_commit_runs_what_follows_in_autocommit_and_a_call_commits_in_batches() {
    let Some(db) = TestDb::new() else { return };
    let project = drizzle_project(&[
        ("0000_init", INIT),
        ("0001_custom", CUSTOM),
        ("0002_more", MORE),
    ]);
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(state_rows(&db).len(), 3);
    assert_eq!(
        db.scalar("SELECT indisvalid::text FROM pg_index WHERE indexrelid = 't_v_idx'::regclass")
            .as_deref(),
        Some("true")
    );
    // Every row bumped once by the procedure, and copied into w by the BEGIN ... COMMIT group.
    assert_eq!(
        db.scalar("SELECT sum(v)::text || '/' || sum(w)::text FROM t")
            .as_deref(),
        Some("45450/45450")
    );
    assert_eq!(
        db.scalar("SELECT string_agg(status || ':' || statements_done || '/' || statement_count, ',' ORDER BY version) FROM pgship.applied_migrations")
            .as_deref(),
        Some("applied:2/2,applied:8/8,applied:1/1")
    );
    let again = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("up to date"), "{}", again.stderr);
}

#[test]
fn a_failure_after_a_files_commit_is_reported_from_the_record_and_a_fixed_file_continues() {
    let Some(db) = TestDb::new() else { return };
    let failing = format!(
        "{CUSTOM}\n--> statement-breakpoint\nCREATE TABLE \"b1\" (\"x\" integer);\n--> statement-breakpoint\nSELECT 1/0;\n--> statement-breakpoint\nCREATE TABLE \"c1\" (\"x\" integer);"
    );
    let project = drizzle_project(&[
        ("0000_init", INIT),
        ("0001_custom", &failing),
        ("0002_more", MORE),
    ]);
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("statement 10") && err.contains("division by zero"),
        "{err}"
    );
    assert!(err.contains("committed: 0000_init"), "{err}");
    assert!(
        err.contains("partially committed: 0001_custom (statements 1-9)"),
        "{err}"
    );
    assert!(err.contains("not committed: 0002_more"), "{err}");
    assert!(!err.contains("not committed: 0001_custom"), "{err}");
    // What committed is there; drizzle's table has only the completed migration.
    assert_eq!(state_rows(&db).len(), 1);
    assert!(db.scalar("SELECT to_regclass('b1')::text").is_some());
    assert!(db.scalar("SELECT to_regclass('c1')::text").is_none());

    // The fix changes the file after its committed part: refused without --allow-edited.
    let fixed = failing.replace("SELECT 1/0;", "SELECT 1;");
    write_drizzle(
        project.path(),
        &[
            ("0000_init", INIT),
            ("0001_custom", &fixed),
            ("0002_more", MORE),
        ],
    );
    let refused = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("--allow-edited to continue at statement 10"),
        "{}",
        refused.stderr
    );
    let status = run(pgship(project.path()).args(["status", &db.url, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["partial"][0]["name"], "0001_custom");
    assert_eq!(v["partial"][0]["edited_after_committed_part"], true);

    let out = run(pgship(project.path()).args(["migrate", &db.url, "--allow-edited"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("resuming 0001_custom at statement 10"),
        "{}",
        out.stderr
    );
    assert_eq!(state_rows(&db).len(), 3);
    assert!(db.scalar("SELECT to_regclass('c1')::text").is_some());
    // The procedure ran once: no committed step was repeated.
    assert_eq!(
        db.scalar("SELECT sum(v)::text FROM t").as_deref(),
        Some("45450")
    );
    // The record holds the file as it is now.
    let hash = pgship::util::sha256_hex(fixed.as_bytes());
    assert_eq!(
        db.scalar("SELECT hash FROM drizzle.__drizzle_migrations WHERE id = 2")
            .as_deref(),
        Some(hash.as_str())
    );
}

#[test]
fn a_changed_committed_part_is_never_continued() {
    let Some(db) = TestDb::new() else { return };
    let failing = "CREATE TABLE \"a1\" (\"x\" integer);\n--> statement-breakpoint\nCOMMIT;\n--> statement-breakpoint\nSELECT 1/0;";
    let project = drizzle_project(&[("0000_a", failing)]);
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(db.scalar("SELECT to_regclass('a1')::text").is_some());
    let changed = failing.replace("\"a1\"", "\"a2\"").replace("1/0", "1");
    write_drizzle(project.path(), &[("0000_a", &changed)]);
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--allow-edited"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("changed in those committed statements"),
        "{}",
        out.stderr
    );
    assert!(db.scalar("SELECT to_regclass('a2')::text").is_none());
}

#[test]
fn a_top_level_rollback_is_read_but_refused_before_anything_runs() {
    let Some(db) = TestDb::new() else { return };
    let project = drizzle_project(&[
        ("0000_init", INIT),
        (
            "0001_oops",
            "CREATE TABLE \"z\" (\"x\" integer);\n--> statement-breakpoint\nROLLBACK;",
        ),
    ]);
    let status = run(pgship(project.path()).args(["status", &db.url]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("0001_oops"), "{}", status.stdout);
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("0001_oops.sql:3") && out.stderr.contains("`ROLLBACK`"),
        "{}",
        out.stderr
    );
    assert!(db.scalar("SELECT to_regclass('t')::text").is_none());
}

/// Start `pgship migrate` on `db`, wait until a pgship session runs a query matching `like`,
/// and SIGKILL it.
fn kill_during(project: &Path, db: &TestDb, like: &str, extra: &[&str]) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = pgship(project)
        .args(["migrate", &db.url])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let probe = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgship' \
         AND datname = current_database() \
         AND pid <> pg_backend_pid() AND query LIKE '{like}' AND state = 'active'"
    );
    while db.scalar(&probe).as_deref() != Some("1") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "`{like}` never ran: {:?}",
            db.query("SELECT application_name, state, wait_event, query FROM pg_stat_activity")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server ends the orphaned session (client_connection_check_interval).
    let gone = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgship' \
         AND datname = current_database() \
         AND pid <> pg_backend_pid() AND query LIKE '{like}' AND state = 'active'"
    );
    while db.scalar(&gone).as_deref() != Some("0") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "session lingers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_crash_after_a_committed_concurrent_index_resumes_after_it() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        (
            "1_t.sql",
            "CREATE TABLE t (v int);\nINSERT INTO t SELECT generate_series(1, 100);\n",
        ),
        (
            "2_idx.sql",
            "CREATE INDEX CONCURRENTLY \"t_v_idx\" ON t (v);\nSELECT pg_sleep(30);\nCREATE TABLE u (a int);\n",
        ),
    ]);
    kill_during(project.path(), &db, "%pg_sleep(30)%", &[]);
    assert_eq!(
        db.scalar("SELECT status || ':' || statements_done FROM pgship.applied_migrations WHERE name = '2_idx'")
            .as_deref(),
        Some("partial:1")
    );
    let status = run(pgship(project.path()).args(["status", &db.url, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["partial"][0]["statements_done"], 1, "{v}");
    std::fs::write(
        project.path().join("migrations/2_idx.sql"),
        "CREATE INDEX CONCURRENTLY \"t_v_idx\" ON t (v);\nSELECT pg_sleep(0);\nCREATE TABLE u (a int);\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--allow-edited"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("resuming 2_idx at statement 2"),
        "{}",
        out.stderr
    );
    assert!(db.scalar("SELECT to_regclass('u')::text").is_some());
}

#[test]
fn a_concurrent_index_cut_while_it_builds_is_judged_from_the_catalog() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        (
            "1_t.sql",
            "CREATE TABLE t (v int);\nINSERT INTO t SELECT generate_series(1, 100);\n",
        ),
        (
            "2_idx.sql",
            "CREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY \"t_v_idx\" ON t (v);\nCREATE TABLE u (a int);\n",
        ),
    ]);
    // An old snapshot makes the build wait after the index is in the catalog (invalid).
    let url = pgship::db::DbUrl::parse(&db.url).unwrap();
    let rt = rt();
    let holder = rt
        .block_on(pgship::db::connect(
            &url,
            &pgship::db::ConnectOptions::default(),
        ))
        .unwrap();
    rt.block_on(
        holder
            .client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;"),
    )
    .unwrap();
    kill_during(
        project.path(),
        &db,
        "%CREATE INDEX CONCURRENTLY%",
        &["--lock-timeout", "30s"],
    );
    rt.block_on(holder.client.batch_execute("COMMIT")).unwrap();
    assert_eq!(
        db.scalar("SELECT indisvalid::text FROM pg_index WHERE indexrelid = 't_v_idx'::regclass")
            .as_deref(),
        Some("false")
    );
    // The intent names the statement that was running.
    assert_eq!(
        db.scalar("SELECT statements_done || ':' || running_statement FROM pgship.applied_migrations WHERE name = '2_idx'")
            .as_deref(),
        Some("1:1")
    );
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("was left invalid") && out.stderr.contains("running it"),
        "{}",
        out.stderr
    );
    assert_eq!(
        db.scalar("SELECT indisvalid::text FROM pg_index WHERE indexrelid = 't_v_idx'::regclass")
            .as_deref(),
        Some("true")
    );
    assert!(db.scalar("SELECT to_regclass('u')::text").is_some());
}

#[test]
fn an_interrupted_call_is_never_guessed() {
    let Some(db) = TestDb::new() else { return };
    let proc = "CREATE TABLE t (v int);\nINSERT INTO t VALUES (0);\nCREATE PROCEDURE slow() LANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE t SET v = v + 1;\n  COMMIT;\n  PERFORM pg_sleep(30);\nEND $$;\n";
    let project = drizzle_project(&[
        ("0000_proc", proc),
        (
            "0001_call",
            "COMMIT;\n--> statement-breakpoint\nCALL slow();\n--> statement-breakpoint\nCREATE TABLE \"after\" (\"a\" integer);",
        ),
    ]);
    kill_during(project.path(), &db, "%CALL slow()%", &[]);
    assert_eq!(db.scalar("SELECT v::text FROM t").as_deref(), Some("1"));
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("statement 2")
            && out.stderr.contains("--resolve-running done")
            && out.stderr.contains("0001_call.sql:3"),
        "{}",
        out.stderr
    );
    assert!(db.scalar("SELECT to_regclass('after')::text").is_none());
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--resolve-running", "done"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(db.scalar("SELECT v::text FROM t").as_deref(), Some("1"));
    assert!(db.scalar("SELECT to_regclass('after')::text").is_some());
    assert_eq!(state_rows(&db).len(), 2);
}

#[test]
fn a_failure_after_a_concurrent_step_says_what_committed_and_the_rerun_continues_after_it() {
    for (first, expect_done) in [
        (
            "CREATE INDEX CONCURRENTLY \"t_v_idx\" ON t (v);\nSELECT 1/0;\n",
            1,
        ),
        (
            "CREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY \"t_v_idx\" ON t (v);\nSELECT 1/0;\n",
            2,
        ),
    ] {
        let Some(db) = TestDb::new() else { return };
        let project = sql_project(&[
            ("1_t.sql", "CREATE TABLE t (v int);\n"),
            ("2_idx.sql", first),
        ]);
        let out = run(pgship(project.path()).args(["migrate", &db.url]));
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "partially committed: 2_idx (statements 1-{expect_done}); a rerun resumes at statement {}",
                expect_done + 1
            )),
            "{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("not committed: 2_idx"),
            "{}",
            out.stderr
        );
        std::fs::write(
            project.path().join("migrations/2_idx.sql"),
            first.replace("1/0", "1"),
        )
        .unwrap();
        let out = run(pgship(project.path()).args(["migrate", &db.url, "--allow-edited"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            db.scalar(
                "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 't_v_idx'::regclass"
            )
            .as_deref(),
            Some("true")
        );
    }
}

#[test]
fn sigint_and_sigterm_roll_back_record_interrupted_and_exit_130_or_143() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let Some(db) = TestDb::new() else { return };
        let project = sql_project(&[
            ("1_a.sql", "CREATE TABLE a (x int);\n"),
            (
                "2_slow.sql",
                "CREATE TABLE b (x int);\nSELECT pg_sleep(30);\n",
            ),
        ]);
        let child = pgship(project.path())
            .args(["migrate", &db.url, "--tx-mode", "per-migration"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while db
            .scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()")
            .as_deref()
            != Some("1")
        {
            assert!(started.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{err}");
        assert!(
            err.contains(&format!("interrupted by {name}")) && err.contains("committed: 1_a"),
            "{err}"
        );
        assert!(db.scalar("SELECT to_regclass('b')::text").is_none());
        assert_eq!(
            db.scalar("SELECT status FROM pgship.deployments")
                .as_deref(),
            Some("interrupted")
        );
    }
}

#[test]
fn a_killed_run_is_reported_by_status_and_marked_by_the_next_migrate() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        ("1_a.sql", "CREATE TABLE a (x int);\n"),
        (
            "2_slow.sql",
            "CREATE TABLE b (x int);\nSELECT pg_sleep(30);\n",
        ),
    ]);
    std::fs::write(
        project.path().join("pgship.toml"),
        "[apply]\ntx_mode = \"per-migration\"\n",
    )
    .unwrap();
    kill_during(project.path(), &db, "%pg_sleep(30)%", &[]);
    assert_eq!(
        db.scalar("SELECT status FROM pgship.deployments")
            .as_deref(),
        Some("running")
    );
    let status = run(pgship(project.path()).args(["status", &db.url, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let runs = v["interrupted_runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{v}");
    assert!(runs[0].as_str().unwrap().contains("committed: 1_a"), "{v}");
    // status is read-only.
    assert_eq!(
        db.scalar("SELECT status FROM pgship.deployments")
            .as_deref(),
        Some("running")
    );
    std::fs::write(
        project.path().join("migrations/2_slow.sql"),
        "CREATE TABLE b (x int);\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("interrupted earlier"), "{}", out.stderr);
    assert_eq!(
        db.scalar("SELECT string_agg(status, ',' ORDER BY started_at) FROM pgship.deployments")
            .as_deref(),
        Some("interrupted,succeeded")
    );
}
