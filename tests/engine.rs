//! The apply engine against real PostgreSQL: concurrency, lock timeouts, statements that cannot
//! run in a transaction, crashes, and session settings.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use pgship::db::{ConnectOptions, DbUrl, connect};

#[test]
fn eight_processes_at_once_apply_each_migration_exactly_once() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    let children: Vec<_> = (0..8)
        .map(|_| {
            pgship(project.path())
                .args(["migrate", &db.url])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(!err.contains("already exists"), "{err}");
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations")
            .as_deref(),
        Some("4")
    );
    assert_eq!(
        db.scalar("SELECT count(DISTINCT hash) FROM drizzle.__drizzle_migrations")
            .as_deref(),
        Some("4")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.applied_migrations")
            .as_deref(),
        Some("4")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.deployments WHERE status = 'succeeded'")
            .as_deref(),
        Some("1")
    );
}

#[test]
fn lock_contention_gives_up_per_lock_timeout_retries_and_never_blocks_readers_long() {
    let Some(db) = TestDb::new() else { return };
    db.query("CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 100)");
    let project = sql_project(&[(
        "1_alter_orders.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    )]);
    let url = DbUrl::parse(&db.url).unwrap();
    let rt = rt();
    let (holder, probe) = rt.block_on(async {
        let h = connect(&url, &ConnectOptions::default()).await.unwrap();
        h.client
            .batch_execute("BEGIN; SELECT count(*) FROM orders")
            .await
            .unwrap();
        let p = connect(&url, &ConnectOptions::default()).await.unwrap();
        (h, p)
    });
    let mut child = pgship(project.path())
        .args([
            "migrate",
            &db.url,
            "--lock-timeout",
            "500ms",
            "--lock-retries",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "pgship did not give up"
        );
        let t = Instant::now();
        rt.block_on(probe.client.simple_query("SELECT count(*) FROM orders"))
            .unwrap();
        worst = worst.max(t.elapsed());
        probes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("retry 1/2") && err.contains("retry 2/2"),
        "{err}"
    );
    assert!(err.contains("55P03"), "{err}");
    assert!(err.contains("1_alter_orders"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    eprintln!("{probes} probes, worst reader latency {worst:?} with lock_timeout 500ms");
    assert!(probes >= 10, "only {probes} probes ran");
    assert!(
        worst <= Duration::from_millis(700),
        "a reader waited {worst:?} behind pgship's DDL"
    );
    rt.block_on(holder.client.batch_execute("ROLLBACK"))
        .unwrap();
    assert!(db.scalar("SELECT 1 FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'").is_none());
    // Once the reader is gone the same migration goes through.
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn concurrent_index_runs_alone_and_a_failed_one_leaves_no_invalid_index() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        (
            "1_items.sql",
            "CREATE TABLE items (sku text);\nINSERT INTO items VALUES ('a'), ('a'), ('b');\n",
        ),
        (
            "2_unique_sku.sql",
            "CREATE TABLE audit (id int);\nCREATE UNIQUE INDEX CONCURRENTLY items_sku_key ON items (sku);\nCREATE INDEX CONCURRENTLY audit_id_idx ON audit (id);\n",
        ),
    ]);
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("2_unique_sku") && err.contains("statement 2"),
        "{err}"
    );
    assert!(err.contains("could not create unique index"), "{err}");
    assert!(err.contains("dropped the invalid index"), "{err}");
    assert!(err.contains("committed: 1_items"), "{err}");
    assert!(
        err.contains("partially committed: 2_unique_sku (statements 1-1)"),
        "{err}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
            .as_deref(),
        Some("0")
    );
    assert!(
        db.scalar("SELECT to_regclass('items_sku_key')::text")
            .is_none()
    );
    let status = run(pgship(project.path()).args(["status", &db.url, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["partial"][0]["name"], "2_unique_sku");
    assert_eq!(v["partial"][0]["statements_done"], 1);

    // Fix the data; the rerun resumes at statement 2 and does not recreate `audit`.
    db.query("DELETE FROM items WHERE ctid = (SELECT max(ctid) FROM items WHERE sku = 'a')");
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("resuming 2_unique_sku at statement 2"),
        "{}",
        out.stderr
    );
    assert_eq!(
        db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_sku_key'::regclass")
            .as_deref(),
        Some("t")
    );
    assert_eq!(
        db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'audit_id_idx'::regclass")
            .as_deref(),
        Some("t")
    );
    assert_eq!(
        db.scalar("SELECT status || ':' || statements_done FROM pgship.applied_migrations WHERE name = '2_unique_sku'").as_deref(),
        Some("applied:3")
    );
}

#[test]
fn kill_9_during_a_slow_migration_leaves_nothing_half_applied_and_frees_the_lock() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[(
        "1_slow.sql",
        "CREATE TABLE slow_t (a int);\nINSERT INTO slow_t VALUES (1);\nSELECT pg_sleep(30);\n",
    )]);
    let mut child = pgship(project.path())
        .args(["migrate", &db.url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let sleeping = db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgship' AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(30)%' AND state = 'active'",
        );
        if sleeping.as_deref() == Some("1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the slow statement never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    let url = DbUrl::parse(&db.url).unwrap();
    let rt = rt();
    let other = rt
        .block_on(connect(&url, &ConnectOptions::default()))
        .unwrap();
    loop {
        let got: bool = rt
            .block_on(
                other
                    .client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY]),
            )
            .unwrap()
            .get(0);
        if got {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "the lock was still held 2 s after kill -9"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("lock free {:?} after kill -9", killed.elapsed());
    rt.block_on(
        other
            .client
            .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]),
    )
    .unwrap();
    assert!(db.scalar("SELECT to_regclass('slow_t')::text").is_none());
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.applied_migrations")
            .as_deref(),
        Some("0")
    );
    // The rerun applies it once, completely.
    std::fs::write(
        project.path().join("migrations/1_slow.sql"),
        "CREATE TABLE slow_t (a int);\nINSERT INTO slow_t VALUES (1);\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        db.scalar("SELECT count(*) FROM slow_t").as_deref(),
        Some("1")
    );
}

#[test]
fn session_settings_do_not_leak_into_the_next_migration() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        (
            "1_change_settings.sql",
            "CREATE SCHEMA other;\nSET search_path TO other;\nSET lock_timeout = 0;\nSET ROLE pg_monitor;\n",
        ),
        (
            "2_check.sql",
            "CREATE TABLE leaked AS SELECT current_user::text AS who, current_setting('lock_timeout') AS lt;\n",
        ),
    ]);
    for mode in ["all", "per-migration"] {
        let out = run(pgship(project.path()).args(["migrate", &db.url, "--tx-mode", mode]));
        assert_eq!(out.code, 0, "{mode}: {}", out.stderr);
        let row = db.query("SELECT who, lt FROM public.leaked");
        assert_eq!(
            row,
            vec![vec![Some("postgres".to_string()), Some("2s".to_string())]],
            "{mode}"
        );
        assert!(
            db.scalar("SELECT to_regclass('other.leaked')::text")
                .is_none(),
            "{mode}"
        );
        db.query("DROP TABLE public.leaked; DROP SCHEMA other; DROP SCHEMA pgship CASCADE");
    }
}

#[test]
fn per_migration_mode_commits_each_and_reports_what_was_not() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "2_b.sql",
            "CREATE TABLE b (id int);\n\n-- the next statement fails\nINSERT INTO missing VALUES (1);\n",
        ),
        ("3_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--tx-mode", "per-migration"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("2_b.sql:4"), "{}", out.stderr);
    assert!(out.stderr.contains("committed: 1_a"), "{}", out.stderr);
    assert!(
        out.stderr.contains("not committed: 2_b, 3_c"),
        "{}",
        out.stderr
    );
    assert!(db.scalar("SELECT to_regclass('a')::text").is_some());
    assert!(db.scalar("SELECT to_regclass('b')::text").is_none());
    // The default, one transaction, commits nothing at all.
    let Some(db2) = TestDb::new() else { return };
    let out = run(pgship(project.path()).args(["migrate", &db2.url]));
    assert_eq!(out.code, 1);
    assert!(db2.scalar("SELECT to_regclass('a')::text").is_none());
    assert!(
        out.stderr.contains("nothing was committed"),
        "{}",
        out.stderr
    );
}
