//! `pgship history` and `pgship logs` on real runs: a target seeded by `pgship migrate` (one
//! run that succeeds, one that fails), read back from the local artifacts and from the
//! target's tables; the seed's log format (upper-case levels, `duration`, `stack_trace`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestDb, pgship, run, sql_project};
use serde_json::Value;

/// A project on `db` as `dev`, with two runs: `ok` applied 001 and 002, `failed` broke on 003.
struct Seeded {
    project: tempfile::TempDir,
    ok: String,
    failed: String,
}

fn seed(db: &TestDb) -> Seeded {
    let project = sql_project(&[
        ("001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        ("002_email.sql", "ALTER TABLE users ADD COLUMN email text;"),
    ]);
    env_file(project.path(), &format!("DEV_POSTGRES_URL={}\n", db.url));
    let out = run(pgship(project.path()).args(["migrate", "dev"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ok = only_new_run(project.path(), &[]);
    std::fs::write(
        project.path().join("migrations/003_bad.sql"),
        "ALTER TABLE users ADD COLUMN n int;\nSELECT 1/0;",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", "dev"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let failed = only_new_run(project.path(), std::slice::from_ref(&ok));
    Seeded {
        project,
        ok,
        failed,
    }
}

fn env_file(project: &Path, text: &str) {
    std::fs::write(project.join(".env"), text).unwrap();
}

fn runs(project: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(project.join(".deployments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    ids.sort();
    ids
}

fn only_new_run(project: &Path, known: &[String]) -> String {
    let new: Vec<String> = runs(project)
        .into_iter()
        .filter(|r| !known.contains(r))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new[0].clone()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn history_of_an_environment_as_text_and_json_with_local_only_folders() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    // A run whose folder is here but which never reached the table.
    let local_only = "deploy-dev-4102444800000";
    let dir = s.project.path().join(".deployments").join(local_only);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deployment.log"),
        format!(
            "{{\"timestamp\":\"2100-01-01T00:00:00.000Z\",\"deploymentId\":\"{local_only}\",\"phase\":\"PREFLIGHT\",\"level\":\"INFO\",\"message\":\"start\",\"metadata\":{{\"pending\":[\"003_bad\"]}}}}\n"
        ),
    )
    .unwrap();
    let out = run(pgship(s.project.path()).args(["history", "dev", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let items = v.as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![local_only, &s.failed, &s.ok], "newest first");
    assert_eq!(items[0]["recorded"], false);
    assert_eq!(items[0]["local"], true);
    assert_eq!(items[0]["status"], "unknown");
    assert_eq!(items[1]["status"], "failed");
    assert_eq!(items[1]["recorded"], true);
    assert_eq!(items[2]["status"], "succeeded");
    assert_eq!(items[2]["environment"], "dev");
    assert_eq!(items[2]["kind"], "migrate");
    assert_eq!(
        items[2]["migrations"],
        serde_json::json!(["001_users", "002_email"])
    );
    assert!(
        items[2]["duration_ms"].as_i64().unwrap() >= 0,
        "{}",
        items[2]
    );
    assert!(items[1]["error"].as_str().unwrap().contains("003_bad"));

    let out = run(pgship(s.project.path()).args(["history", "dev"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    for col in [
        "ID",
        "ENV",
        "STATUS",
        "STARTED",
        "DURATION",
        "MIGRATIONS",
        "COMMIT",
    ] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    assert!(lines[1].contains("unknown (local only)"), "{}", out.stdout);
    assert!(lines[2].starts_with(&s.failed) && lines[2].contains("failed"));
    assert!(lines[3].contains("001_users, 002_email"), "{}", out.stdout);

    let out =
        run(pgship(s.project.path()).args(["history", "dev", "--limit", "1", "--format", "json"]));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], local_only);
}

#[test]
fn history_without_an_environment_skips_an_unreachable_one() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    env_file(
        s.project.path(),
        &format!(
            "DEV_POSTGRES_URL={}\nUAT_POSTGRES_URL=postgres://app:s3cr3t-canary@127.0.0.1:1/nowhere\n",
            db.url
        ),
    );
    let out = run(pgship(s.project.path()).args(["history", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![s.failed.as_str(), s.ok.as_str()]);
    assert!(out.stderr.contains("uat skipped"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cr3t-canary"), "{}", out.stderr);
}

#[test]
fn a_target_without_pgship_has_no_history_and_that_is_not_an_error() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[("001_a.sql", "SELECT 1;")]);
    env_file(project.path(), &format!("DEV_POSTGRES_URL={}\n", db.url));
    let out = run(pgship(project.path()).args(["history", "dev"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("no history"), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "no deployments");
    let out = run(pgship(project.path()).args(["history", "dev", "--format", "json"]));
    assert_eq!(out.stdout.trim(), "[]");
    assert_eq!(
        db.scalar("SELECT to_regclass('pgship.deployments')::text"),
        None,
        "history created nothing"
    );
}

#[test]
fn logs_from_the_file_and_from_the_table_are_the_same_lines() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    let file = std::fs::read_to_string(
        s.project
            .path()
            .join(".deployments")
            .join(&s.failed)
            .join("deployment.log"),
    )
    .unwrap();
    let out = run(pgship(s.project.path()).args(["logs", &s.failed, "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, file, "json lines are the log's own lines");
    let text = run(pgship(s.project.path()).args(["logs", &s.failed]));
    assert_eq!(text.code, 0, "{}", text.stderr);
    let first = text.stdout.lines().next().unwrap();
    let parts: Vec<&str> = first.splitn(4, ' ').collect();
    assert_eq!(parts[0].len(), 12, "HH:MM:SS.mmm: {first}");
    assert_eq!((parts[1], parts[2]), ("PREFLIGHT", "INFO"), "{first}");
    assert!(
        text.stdout
            .contains("FAILED ERROR migration 003_bad failed at statement 2"),
        "{}",
        text.stdout
    );

    std::fs::remove_dir_all(s.project.path().join(".deployments")).unwrap();
    let out = run(pgship(s.project.path()).args(["logs", &s.failed, "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        json_lines(&out.stdout),
        json_lines(&file),
        "the table gives back the lines the file had"
    );
    let again = run(pgship(s.project.path()).args(["logs", &s.failed]));
    assert_eq!(again.stdout, text.stdout);
}

#[test]
fn logs_filters_by_phase_and_minimum_level() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    let levels = |args: &[&str]| -> Vec<(String, String)> {
        let out = run(pgship(s.project.path())
            .args(["logs", "--format", "json"])
            .args(args));
        assert_eq!(out.code, 0, "{}", out.stderr);
        json_lines(&out.stdout)
            .iter()
            .map(|l| {
                (
                    l["phase"].as_str().unwrap().to_string(),
                    l["level"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let all = levels(&[&s.ok]);
    assert!(all.len() >= 3, "{all:?}");
    assert_eq!(
        levels(&[&s.ok, "--phase", "success"]),
        vec![("SUCCESS".into(), "SUCCESS".into())]
    );
    assert_eq!(levels(&[&s.ok, "--level", "warn"]), vec![]);
    let info = levels(&[&s.ok, "--level", "INFO"]);
    assert!(
        info.contains(&("SUCCESS".into(), "SUCCESS".into())),
        "SUCCESS counts as INFO"
    );
    assert!(info.iter().all(|(_, l)| l != "DEBUG"), "{info:?}");
    assert!(info.len() < all.len() || !all.iter().any(|(_, l)| l == "DEBUG"));
    assert_eq!(
        levels(&[&s.failed, "--level", "error"]),
        vec![("FAILED".into(), "ERROR".into())]
    );
    // The same filters on the table.
    std::fs::remove_dir_all(s.project.path().join(".deployments")).unwrap();
    assert_eq!(
        levels(&[&s.failed, "--level", "error"]),
        vec![("FAILED".into(), "ERROR".into())]
    );
    assert_eq!(
        levels(&[&s.ok, "--phase", "SUCCESS", "--level", "info"]),
        vec![("SUCCESS".into(), "SUCCESS".into())]
    );
    let out = run(pgship(s.project.path()).args(["logs", &s.ok, "--level", "loud"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn unknown_and_malformed_ids_exit_2_and_say_where_pgship_looked() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    // A password in the URL (trust authentication ignores it) must not show.
    let with_password = db
        .url
        .replacen("://postgres@", "://postgres:canary-pw-7@", 1);
    env_file(
        s.project.path(),
        &format!("DEV_POSTGRES_URL={with_password}\n"),
    );
    let out = run(pgship(s.project.path()).args(["logs", "deploy-dev-1000000000000"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("unknown deployment deploy-dev-1000000000000"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(".deployments/deploy-dev-1000000000000/deployment.log"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("pgship.deployment_logs"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("canary-pw-7"), "{}", out.stderr);
    // An environment without a URL.
    let out = run(pgship(s.project.path()).args(["logs", "deploy-uat-1000000000000"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("UAT_POSTGRES_URL"), "{}", out.stderr);
    // Traversal: refused before any path is built.
    std::fs::write(s.project.path().join("secret.log"), "{}\n").unwrap();
    for bad in [
        "../secret",
        "../../etc/passwd",
        "deploy-dev-1/../../secret",
        "x",
    ] {
        let out = run(
            pgship(s.project.path().join(".deployments").as_path()).args([
                "--project",
                s.project.path().to_str().unwrap(),
                "logs",
                bad,
            ]),
        );
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("is not a deployment id"),
            "{}",
            out.stderr
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn levels_are_upper_case_and_duration_and_stack_trace_are_filled() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    for id in [&s.ok, &s.failed] {
        let file = std::fs::read_to_string(
            s.project
                .path()
                .join(".deployments")
                .join(id)
                .join("deployment.log"),
        )
        .unwrap();
        for l in json_lines(&file) {
            let level = l["level"].as_str().unwrap();
            assert!(
                ["DEBUG", "INFO", "WARN", "ERROR", "SUCCESS"].contains(&level),
                "{l}"
            );
            let ts = l["timestamp"].as_str().unwrap();
            assert_eq!((ts.len(), &ts[19..20], &ts[23..]), (24, ".", "Z"), "{ts}");
        }
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.deployment_logs WHERE level <> upper(level)"),
        Some("0".into())
    );
    let ok_duration = db.scalar(&format!(
        "SELECT duration FROM pgship.deployment_logs WHERE deployment_id = '{}' AND level = 'SUCCESS'",
        s.ok
    ));
    let metadata_ms = db.scalar(&format!(
        "SELECT metadata->>'duration_ms' FROM pgship.deployment_logs WHERE deployment_id = '{}' AND level = 'SUCCESS'",
        s.ok
    ));
    assert!(ok_duration.is_some(), "duration column filled");
    assert_eq!(ok_duration, metadata_ms);
    let trace = db
        .scalar(&format!(
            "SELECT stack_trace FROM pgship.deployment_logs WHERE deployment_id = '{}' AND level = 'ERROR'",
            s.failed
        ))
        .expect("stack_trace filled on the ERROR line");
    assert!(trace.contains("003_bad"), "{trace}");
    assert!(trace.contains("division by zero"), "{trace}");
    assert!(!trace.contains("password"), "{trace}");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM pgship.deployment_logs WHERE stack_trace IS NOT NULL AND level <> 'ERROR' AND deployment_id IN ('{}', '{}')",
            s.ok, s.failed
        )),
        Some("0".into())
    );
    let recorded = db.scalar(&format!(
        "SELECT duration_ms IS NOT NULL FROM pgship.deployments WHERE id = '{}'",
        s.ok
    ));
    assert_eq!(recorded.as_deref(), Some("t"));
}

/// A run in progress: its row says `running`, its folder has a first line.
fn running_run(db: &TestDb, project: &Path, id: &str) -> std::fs::File {
    db.query(&format!(
        "INSERT INTO pgship.deployments (id, kind, environment, target, status) \
         VALUES ('{id}', 'deploy', 'dev', 'postgres://x', 'running')"
    ));
    let dir = project.join(".deployments").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("deployment.log")).unwrap();
    writeln!(f, "{}", line(id, "PREFLIGHT", "INFO", "first")).unwrap();
    f
}

fn line(id: &str, phase: &str, level: &str, msg: &str) -> String {
    format!(
        r#"{{"timestamp":"2025-10-05T16:30:45.123Z","deploymentId":"{id}","phase":"{phase}","level":"{level}","message":"{msg}","metadata":{{}}}}"#
    )
}

/// Wait for `child` at most `limit`; kill it and fail when it does not end.
fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("logs --follow did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn output_of(child: std::process::Child) -> String {
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

#[test]
fn follow_prints_new_lines_and_ends_when_the_run_finishes() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    let id = "deploy-dev-4102444800001";
    let mut log = running_run(&db, s.project.path(), id);
    let mut child = pgship(s.project.path())
        .args(["logs", id, "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    writeln!(log, "{}", line(id, "BACKUP", "INFO", "second")).unwrap();
    // A line written in two pieces is printed once it is whole.
    let third = line(id, "DEPLOY", "WARN", "third");
    write!(log, "{}", &third[..20]).unwrap();
    log.flush().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    writeln!(log, "{}", &third[20..]).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    writeln!(log, "{}", line(id, "DEPLOY", "INFO", "last before the end")).unwrap();
    db.query(&format!(
        "UPDATE pgship.deployments SET status = 'succeeded' WHERE id = '{id}'"
    ));
    let status = wait(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let out = output_of(child);
    let messages: Vec<&str> = out
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap())
        .collect();
    assert_eq!(
        messages,
        vec!["first", "second", "third", "last before the end"],
        "{out}"
    );
}

#[test]
fn follow_on_the_table_ends_on_a_final_line_and_ctrl_c_ends_it_with_130() {
    let Some(db) = TestDb::new() else { return };
    let s = seed(&db);
    // From the table (no folder): a final line ends it even while the row says running.
    let id = "deploy-dev-4102444800002";
    drop(running_run(&db, s.project.path(), id));
    std::fs::remove_dir_all(s.project.path().join(".deployments").join(id)).unwrap();
    db.query(&format!(
        "INSERT INTO pgship.deployment_logs (deployment_id, \"timestamp\", phase, level, message) \
         VALUES ('{id}', now(), 'PREFLIGHT', 'INFO', 'first')"
    ));
    let mut child = pgship(s.project.path())
        .args(["logs", id, "--follow", "--format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    db.query(&format!(
        "INSERT INTO pgship.deployment_logs (deployment_id, \"timestamp\", phase, level, message, metadata) \
         VALUES ('{id}', now(), 'SUCCESS', 'SUCCESS', 'done', '{{\"duration_ms\": 5}}')"
    ));
    let status = wait(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let lines = json_lines(&output_of(child));
    let msgs: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, vec!["first", "done"]);
    assert_eq!(lines[1]["level"], "SUCCESS");

    // Ctrl-C while following a run that goes on.
    let id = "deploy-dev-4102444800003";
    drop(running_run(&db, s.project.path(), id));
    let mut child = pgship(s.project.path())
        .args(["logs", id, "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling the child this test started, by its pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = wait(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(output_of(child).contains("first"));
}

#[test]
fn a_schema_from_an_older_pgship_is_read_as_is_and_upgraded_by_the_next_run() {
    let Some(db) = TestDb::new() else { return };
    // pgship's schema before the seed's columns: no duration, stack_trace, migrations, ...
    db.query(
        "CREATE SCHEMA pgship;
         CREATE TABLE pgship.deployments (id text PRIMARY KEY, kind text NOT NULL,
           environment text NOT NULL, target text NOT NULL, status text NOT NULL,
           started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
           applied_by text NOT NULL DEFAULT current_user,
           migrations_applied integer NOT NULL DEFAULT 0, error text);
         CREATE TABLE pgship.applied_migrations (id bigserial PRIMARY KEY,
           source_kind text NOT NULL, version text NOT NULL, name text NOT NULL,
           checksum text NOT NULL, status text NOT NULL DEFAULT 'applied',
           statements_done integer NOT NULL, statement_count integer NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now(), duration_ms bigint NOT NULL,
           deployment_id text, applied_by text NOT NULL DEFAULT current_user,
           UNIQUE (source_kind, version));
         CREATE TABLE pgship.deployment_logs (id bigserial PRIMARY KEY,
           deployment_id text NOT NULL, \"timestamp\" timestamptz NOT NULL, phase text NOT NULL,
           level text NOT NULL, message text NOT NULL, metadata jsonb NOT NULL DEFAULT '{}');
         INSERT INTO pgship.deployments (id, kind, environment, target, status, started_at, finished_at)
           VALUES ('migrate-dev-1700000000000', 'migrate', 'dev', 'postgres://x', 'succeeded',
                   '2023-11-14 22:13:20+00', '2023-11-14 22:13:22+00');
         INSERT INTO pgship.deployment_logs (deployment_id, \"timestamp\", phase, level, message)
           VALUES ('migrate-dev-1700000000000', '2023-11-14 22:13:20+00', 'SUCCESS', 'info', 'old line');",
    );
    let project = sql_project(&[("001_a.sql", "CREATE TABLE a (id int);")]);
    env_file(project.path(), &format!("DEV_POSTGRES_URL={}\n", db.url));
    let out = run(pgship(project.path()).args(["history", "dev", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], "migrate-dev-1700000000000");
    assert_eq!(v[0]["duration_ms"], 2000, "from started and finished");
    let out = run(pgship(project.path()).args([
        "logs",
        "migrate-dev-1700000000000",
        "--level",
        "info",
        "--format",
        "json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["level"], "INFO",
        "an older lower-case level reads upper case"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgship.deployment_logs'::regclass AND attname = 'stack_trace'"),
        Some("0".into()),
        "reading changed nothing"
    );
    let out = run(pgship(project.path()).args(["migrate", "dev"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.deployment_logs WHERE duration IS NOT NULL AND level = 'SUCCESS'"),
        Some("1".into()),
        "the upgraded table takes the new columns"
    );
}
