//! Honest limits against real PostgreSQL: a lock timeout that is no limit is refused, the
//! database's or role's lower statement_timeout applies and is named, `compare --data` gives up
//! on a locked table after a bounded wait, and every lock timeout names the blocking session.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use pgship::db::{Conn, ConnectOptions, DbUrl, connect};

/// A session of "the application" named `app`, that ran `sql` (which may open a transaction).
fn session(rt: &tokio::runtime::Runtime, url: &str, app: &str, sql: &str) -> Conn {
    let url = DbUrl::parse(url).unwrap();
    rt.block_on(async {
        let c = connect(&url, &ConnectOptions::default()).await.unwrap();
        c.client
            .batch_execute(&format!("SET application_name = '{app}'; {sql}"))
            .await
            .unwrap();
        c
    })
}

fn pgship_schema_exists(db: &TestDb) -> bool {
    db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgship'")
        .as_deref()
        == Some("1")
}

#[test]
fn a_lock_timeout_of_zero_or_over_a_minute_is_refused_before_anything_is_touched() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[("1_t.sql", "CREATE TABLE t (id int);\n")]);
    for (cmd, flags, words) in [
        (
            "migrate",
            vec!["--lock-timeout", "0"],
            "--lock-timeout must be at least 1ms",
        ),
        (
            "migrate",
            vec!["--lock-timeout", "0.4ms"],
            "--lock-timeout must be at least 1ms",
        ),
        (
            "migrate",
            vec!["--lock-timeout", "61s"],
            "--lock-timeout 61s is above 60s",
        ),
        (
            "plan",
            vec!["--lock-timeout", "0"],
            "--lock-timeout must be at least 1ms",
        ),
        (
            "plan",
            vec!["--lock-timeout", "2min"],
            "--lock-timeout 120s is above 60s",
        ),
    ] {
        let out = run(pgship(project.path()).arg(cmd).arg(&db.url).args(&flags));
        assert_eq!(out.code, 2, "{cmd} {flags:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(words),
            "{cmd} {flags:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("wait for its lock for ever")
                || out.stderr.contains("--allow-long-lock-timeout"),
            "{}",
            out.stderr
        );
    }
    assert!(
        !pgship_schema_exists(&db),
        "a refused run touched the target"
    );

    // The same for pgship.toml, naming the file and the key.
    std::fs::write(
        project.path().join("pgship.toml"),
        "[apply]\nlock_timeout = \"0\"\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("pgship.toml: [apply] lock_timeout must be at least 1ms"),
        "{}",
        out.stderr
    );
    std::fs::write(
        project.path().join("pgship.toml"),
        "[apply]\nlock_timeout = \"90s\"\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("pgship.toml: [apply] lock_timeout 90s is above 60s"),
        "{}",
        out.stderr
    );
    assert!(!pgship_schema_exists(&db));

    // Forced, a long timeout is accepted: by the flag, or by the file.
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--allow-long-lock-timeout"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(
        project.path().join("pgship.toml"),
        "[apply]\nlock_timeout = \"90s\"\nallow_long_lock_timeout = true\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(db.scalar("SELECT to_regclass('t')::text").is_some());
}

#[test]
fn the_databases_lower_statement_timeout_applies_and_the_failure_says_so() {
    let Some(db) = TestDb::new() else { return };
    db.query(&format!(
        "ALTER DATABASE {} SET statement_timeout = '2s'",
        db.name
    ));
    let project = sql_project(&[(
        "1_slow.sql",
        "CREATE TABLE slow_done (id int);\nSELECT pg_sleep(4);\n",
    )]);
    let started = Instant::now();
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        took < Duration::from_millis(3800),
        "took {took:?}: the 2s limit did not apply"
    );
    let named = format!(
        "statement_timeout 2s: the database's (ALTER DATABASE {} SET statement_timeout), lower than pgship's none",
        db.name
    );
    assert!(out.stderr.contains("57014"), "{}", out.stderr);
    assert!(out.stderr.contains("statement timeout"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("the limit that applied: {named}")),
        "{}",
        out.stderr
    );
    // Said up front too, and kept in the log.
    assert!(out.stderr.contains(&format!("· {named}")), "{}", out.stderr);
    let log = deployment_log(project.path());
    assert!(
        log.contains(r#""statement_timeout":{"applies":"database""#)
            || log.contains(r#""applies":"database""#),
        "{log}"
    );
    assert!(db.scalar("SELECT to_regclass('slow_done')::text").is_none());
}

#[test]
fn the_servers_limit_survives_a_migrations_reset_and_the_most_specific_setting_wins() {
    let Some(db) = TestDb::new() else { return };
    // Role in database (1s) before database (30s), as PostgreSQL applies them.
    db.query(&format!(
        "ALTER DATABASE {0} SET statement_timeout = '30s'; \
         ALTER ROLE postgres IN DATABASE {0} SET statement_timeout = '1s'",
        db.name
    ));
    let project = sql_project(&[
        (
            "1_lift.sql",
            "SET statement_timeout = 0;\nCREATE TABLE lifted (id int);\n",
        ),
        ("2_slow.sql", "SELECT pg_sleep(3);\n"),
    ]);
    let started = Instant::now();
    let out = run(pgship(project.path()).args([
        "--format",
        "json",
        "migrate",
        &db.url,
        "--statement-timeout",
        "10s",
    ]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_millis(2800),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "statement_timeout 1s: role postgres's in this database (ALTER ROLE postgres IN DATABASE {} SET statement_timeout), lower than pgship's 10s",
            db.name
        )),
        "{}",
        out.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["failure"]["migration"], "2_slow", "{json}");
    assert_eq!(json["failure"]["sqlstate"], "57014");
    assert_eq!(json["statement_timeout"]["ms"], 1000);
    assert_eq!(json["statement_timeout"]["applies"], "role-in-database");
    assert_eq!(json["statement_timeout"]["pgship_ms"], 10000);

    // pgship's own lower limit applies, and says so.
    let out = run(pgship(project.path()).args([
        "migrate",
        &db.url,
        "--statement-timeout",
        "500ms",
        "--dry-run",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "statement_timeout 500ms: pgship's, lower than role postgres's in this database 1s"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_lock_timeout_on_a_user_table_names_the_session_holding_it() {
    let Some(db) = TestDb::new() else { return };
    db.query("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)");
    let rt = rt();
    let reader = session(
        &rt,
        &db.url,
        "app_reader",
        "BEGIN; SELECT count(*) FROM orders",
    );
    let project = sql_project(&[("1_alter.sql", "ALTER TABLE orders ADD COLUMN note text;\n")]);
    let out = run(pgship(project.path()).args([
        "--format",
        "json",
        "migrate",
        &db.url,
        "--lock-timeout",
        "200ms",
        "--lock-retries",
        "1",
    ]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let who = format!(
        "pid {} (app_reader, idle in transaction, transaction open",
        reader.pid
    );
    let what = "holds ACCESS SHARE on public.orders";
    // In the retry's warning and in the failure.
    assert!(
        out.stderr.contains("retry 1/1") && out.stderr.matches(&who).count() >= 2,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("  blocked by {who}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(what), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let b = &json["failure"]["blocked_by"][0];
    assert_eq!(b["pid"], reader.pid, "{json}");
    assert_eq!(b["application_name"], "app_reader");
    assert_eq!(b["state"], "idle in transaction");
    assert_eq!(b["relation"], "public.orders");
    assert_eq!(b["mode"], "AccessShareLock");
    assert_eq!(b["found"], "conflict");
    rt.block_on(reader.client.batch_execute("ROLLBACK"))
        .unwrap();
}

#[test]
fn a_lock_timeout_behind_a_queued_lock_names_the_queue_and_its_head() {
    let Some(db) = TestDb::new() else { return };
    db.query("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)");
    let rt = rt();
    let reader = session(
        &rt,
        &db.url,
        "app_reader",
        "BEGIN; SELECT count(*) FROM orders",
    );
    // Another migration tool queues for ACCESS EXCLUSIVE behind the reader.
    let url = db.url.clone();
    let ddl = std::thread::spawn(move || {
        let own = common::rt();
        let c = session(&own, &url, "other_tool", "SELECT 1");
        let _ = own.block_on(
            c.client
                .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; ROLLBACK"),
        );
    });
    let waiting = Instant::now();
    while db
        .scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'other_tool' AND wait_event_type = 'Lock'")
        .as_deref()
        != Some("1")
    {
        assert!(waiting.elapsed() < Duration::from_secs(10), "the DDL never queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    // An INSERT (ROW EXCLUSIVE) is compatible with the reader, but queues behind the DDL.
    let project = sql_project(&[("1_seed.sql", "INSERT INTO orders VALUES (2);\n")]);
    let out = run(pgship(project.path()).args([
        "migrate",
        &db.url,
        "--lock-timeout",
        "200ms",
        "--lock-retries",
        "0",
    ]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("55P03"), "{}", out.stderr);
    assert!(
        out.stderr.contains("(other_tool, active")
            && out
                .stderr
                .contains("queued for ACCESS EXCLUSIVE on public.orders"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "blocked by pid {} (app_reader, idle in transaction",
            reader.pid
        )),
        "{}",
        out.stderr
    );
    rt.block_on(reader.client.batch_execute("ROLLBACK"))
        .unwrap();
    ddl.join().unwrap();
}

#[test]
fn a_row_lock_timeout_names_the_likely_holder() {
    let Some(db) = TestDb::new() else { return };
    db.query("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)");
    let rt = rt();
    let writer = session(
        &rt,
        &db.url,
        "app_writer",
        "BEGIN; UPDATE orders SET id = 1 WHERE id = 1",
    );
    let project = sql_project(&[("1_fix.sql", "UPDATE orders SET id = 10 WHERE id = 1;\n")]);
    let out = run(pgship(project.path()).args([
        "migrate",
        &db.url,
        "--lock-timeout",
        "200ms",
        "--lock-retries",
        "0",
    ]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "probably blocked by pid {} (app_writer, idle in transaction, transaction open",
            writer.pid
        )) && out.stderr.contains("holds ROW EXCLUSIVE on public.orders"),
        "{}",
        out.stderr
    );
    rt.block_on(writer.client.batch_execute("ROLLBACK"))
        .unwrap();
}

/// Two databases with the same tables; `plain` has no index (reading the schema does not lock
/// it), `indexed` has one.
fn compare_pair() -> Option<(TestDb, TestDb)> {
    let a = TestDb::new()?;
    let b = TestDb::new().unwrap();
    for db in [&a, &b] {
        db.query(
            "CREATE TABLE plain (id int); INSERT INTO plain VALUES (1); \
             CREATE TABLE indexed (id int PRIMARY KEY); INSERT INTO indexed VALUES (1)",
        );
    }
    Some((a, b))
}

fn compare(a: &TestDb, b: &TestDb, extra: &[&str]) -> (Out, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run(pgship(dir.path())
        .args([
            "compare",
            &a.url,
            &b.url,
            "--data",
            "--lock-wait-timeout",
            "1s",
        ])
        .args(extra));
    (out, started.elapsed())
}

#[test]
fn compare_data_gives_up_on_a_locked_table_after_the_bounded_wait_naming_the_holder() {
    let Some((a, b)) = compare_pair() else { return };
    let rt = rt();
    let holder = session(
        &rt,
        &b.url,
        "app_migration",
        "BEGIN; LOCK TABLE plain IN ACCESS EXCLUSIVE MODE",
    );
    let who = format!(
        "blocked by pid {} (app_migration, idle in transaction",
        holder.pid
    );
    for (engine, extra) in [
        ("catalog", vec![]),
        ("fdw (target remote)", vec!["--engine", "fdw"]),
        (
            "fdw scratch",
            vec!["--engine", "fdw", "--fdw-in", "scratch"],
        ),
    ] {
        let (out, took) = compare(&a, &b, &extra);
        assert_eq!(out.code, 2, "{engine}: {}", out.stderr);
        assert!(took < Duration::from_secs(8), "{engine}: took {took:?}");
        assert!(
            out.stderr.contains(
                "compare --data on the target: gave up after 1s waiting for a lock on table public.plain"
            ),
            "{engine}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(&who), "{engine}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("holds ACCESS EXCLUSIVE on public.plain"),
            "{engine}: {}",
            out.stderr
        );
    }
    // With the locked table on the fdw engine's own (local) side.
    let (out, _) = compare(&b, &a, &["--engine", "fdw"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("compare --data on the source: gave up after 1s")
            && out.stderr.contains(&who),
        "{}",
        out.stderr
    );
    rt.block_on(holder.client.batch_execute("ROLLBACK"))
        .unwrap();
    let (out, _) = compare(&a, &b, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn compare_reading_the_schema_gives_up_on_a_locked_table_naming_the_holder() {
    let Some((a, b)) = compare_pair() else { return };
    let rt = rt();
    let holder = session(
        &rt,
        &b.url,
        "app_migration",
        "BEGIN; LOCK TABLE indexed IN ACCESS EXCLUSIVE MODE",
    );
    let (out, took) = compare(&a, &b, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        out.stderr.contains("the target (") && out.stderr.contains("reading the schema"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("55P03"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "blocked by pid {} (app_migration, idle in transaction",
            holder.pid
        )) && out
            .stderr
            .contains("holds ACCESS EXCLUSIVE on public.indexed"),
        "{}",
        out.stderr
    );
    // A zero wait is no limit: refused.
    let dir = tempfile::tempdir().unwrap();
    let out = run(pgship(dir.path()).args(["compare", &a.url, &b.url, "--lock-wait-timeout", "0"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--lock-wait-timeout must be at least 1ms"),
        "{}",
        out.stderr
    );
    rt.block_on(holder.client.batch_execute("ROLLBACK"))
        .unwrap();
}

/// The text of the one run's deployment log under `project`.
fn deployment_log(project: &std::path::Path) -> String {
    let dir = project.join(".deployments");
    let mut text = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path().join("deployment.log");
        if p.exists() {
            text.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    text
}

#[test]
fn pgship_waits_no_longer_than_its_lock_timeout_for_a_concurrent_index_and_names_who_holds_it() {
    let Some(db) = TestDb::new() else { return };
    db.query("CREATE TABLE items (id int); INSERT INTO items VALUES (1)");
    let rt = rt();
    // CREATE INDEX CONCURRENTLY waits for the transactions that write the table.
    let holder = session(
        &rt,
        &db.url,
        "app_batch",
        "BEGIN; INSERT INTO items VALUES (2)",
    );
    let project = sql_project(&[(
        "1_idx.sql",
        "CREATE INDEX CONCURRENTLY items_id_idx ON items (id);\n",
    )]);
    let mut child = pgship(project.path())
        .args([
            "migrate",
            &db.url,
            "--lock-timeout",
            "300ms",
            "--lock-retries",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pgship did not give up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("55P03"), "{err}");
    assert!(
        err.contains(&format!(
            "blocked by pid {} (app_batch, idle in transaction",
            holder.pid
        )),
        "{err}"
    );
    rt.block_on(holder.client.batch_execute("ROLLBACK"))
        .unwrap();
}

#[test]
fn plan_rehearses_with_the_targets_lower_statement_timeout() {
    let Some(db) = TestDb::new() else { return };
    db.query(&format!(
        "ALTER DATABASE {} SET statement_timeout = '1s'",
        db.name
    ));
    let project = sql_project(&[("1_slow.sql", "SELECT pg_sleep(2);\n")]);
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run(pgship(project.path()).env("TMPDIR", tmp.path()).args([
        "plan",
        &db.url,
        "--sandbox",
        "local",
    ]));
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "statement_timeout 1s: the database's (ALTER DATABASE {} SET statement_timeout), lower than pgship's none",
            db.name
        )),
        "{}",
        out.stderr
    );
    // The rehearsal's statement was cancelled by it (pg_sleep(2) would pass without it).
    assert!(
        out.stderr.contains("1_slow failed at statement 1")
            && out.stderr.contains("statement timeout (SQLSTATE 57014)"),
        "{}",
        out.stderr
    );
}
