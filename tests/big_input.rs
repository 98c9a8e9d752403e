//! Big input: thousands of pending migrations against the server's lock table (applied when
//! they fit, refused before anything runs when one transaction could not hold their locks),
//! and a large migration read and applied as any other. Speed and memory are measured by
//! scripts/bench-big, not here.

mod common;

use common::*;
use pgship::cluster::{ClusterOptions, LocalCluster};

/// `n` tiny migrations, each a table with a serial key and a text column, and a row.
fn tiny_migrations(n: usize) -> tempfile::TempDir {
    let files: Vec<(String, String)> = (1..=n)
        .map(|i| {
            (
                format!("{i:05}_t{i}.sql"),
                format!(
                    "CREATE TABLE t{i} (id serial PRIMARY KEY, name text NOT NULL);\n\
                     INSERT INTO t{i} (name) VALUES ('row {i}');\n"
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    sql_project(&refs)
}

fn tables(url: &str) -> i64 {
    let rows = query(
        url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^t[0-9]+$'",
    );
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

fn pgship_schema(url: &str) -> bool {
    query(
        url,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgship'",
    )[0][0]
        .as_deref()
        == Some("1")
}

/// The server's lock table, as pgship reads it.
fn capacity(url: &str) -> pgship::db::slots::Capacity {
    rt().block_on(async {
        let c = pgship::db::connect(
            &pgship::db::DbUrl::parse(url).unwrap(),
            &pgship::db::ConnectOptions::default(),
        )
        .await
        .unwrap();
        pgship::db::slots::capacity(&c.client).await.unwrap()
    })
}

/// A refusal for lack of lock slots: exit 1 before anything ran, the way out named, the
/// migrations folded.
fn assert_refused_up_front(out: &Out, url: &str, n: usize) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the pending batch is too large for one transaction on this server"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`--tx-mode per-migration`")
            && out.stderr.contains("max_locks_per_transaction"),
        "{}",
        out.stderr
    );
    let folded = format!("... {} more ...", n - 5);
    assert!(
        out.stderr.contains(&folded) && out.stderr.contains(&format!("{n:05}_t{n}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("applying"), "{}", out.stderr);
    assert!(out.stderr.lines().count() < 10, "{}", out.stderr);
    // Nothing changed: no table, not even pgship's own schema.
    assert_eq!(tables(url), 0);
    assert!(!pgship_schema(url));
}

#[test]
fn two_thousand_tiny_migrations_apply_or_are_refused_up_front() {
    let Some(db) = TestDb::new() else { return };
    let n = 2000;
    let project = tiny_migrations(n);
    let cap = capacity(&db.url);
    // Each migration: its table, TOAST table and index, the serial's sequence, the key's index.
    let needed = (n as u64) * 5 + pgship::db::slots::OWN_SLOTS;
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    if needed <= cap.free() {
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(tables(&db.url), n as i64);
        return;
    }
    assert_refused_up_front(&out, &db.url, n);
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--tx-mode", "per-migration"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(tables(&db.url), n as i64);
}

/// On a server with a small lock table (`max_locks_per_transaction = 10`), a batch that would
/// fail with `out of shared memory` is refused before it starts, runs one migration per
/// transaction, and a batch that fits runs in one transaction.
#[test]
fn a_small_lock_table_refuses_what_it_cannot_hold() {
    let cluster = match LocalCluster::start(&ClusterOptions {
        settings: vec![("max_locks_per_transaction".into(), "10".into())],
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) if !in_ci() => return eprintln!("SKIPPED: {e}"),
        Err(e) => panic!("{e}"),
    };
    let admin = cluster.url("postgres").expose();
    let (Some(db), Some(witness)) = (TestDb::on(&admin), TestDb::on(&admin)) else {
        return;
    };
    let cap = capacity(&db.url);
    assert_eq!(cap.max_locks_per_transaction, 10);
    let n = 400;
    let project = tiny_migrations(n);

    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_refused_up_front(&out, &db.url, n);
    assert!(
        out.stderr
            .contains("room for 600 (max_locks_per_transaction 10 × (max_connections 60"),
        "{}",
        out.stderr
    );
    // The rehearsal refuses it the same way, before it makes a sandbox.
    let planned = run(pgship(project.path()).args(["plan", &db.url]));
    assert_eq!(planned.code, 1, "{}\n{}", planned.stdout, planned.stderr);
    assert!(
        planned.stderr.contains("room for 600") && !planned.stderr.contains("making a sandbox"),
        "{}",
        planned.stderr
    );
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--tx-mode", "per-migration"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(tables(&db.url), n as i64);

    // Twenty more fit in one transaction.
    let more = tiny_migrations(n + 20);
    let out = run(pgship(more.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("applying 20 migration(s), in one transaction"),
        "{}",
        out.stderr
    );
    assert_eq!(tables(&db.url), (n + 20) as i64);

    // What pgship refused really does not fit: the same SQL in one transaction fails. Last,
    // because the lock table's growth can leave the server unable to take new sessions.
    let all: String = (1..=n)
        .map(|i| {
            std::fs::read_to_string(
                project
                    .path()
                    .join("migrations")
                    .join(format!("{i:05}_t{i}.sql")),
            )
            .unwrap()
        })
        .collect();
    let failed = rt().block_on(async {
        let c = pgship::db::connect(
            &pgship::db::DbUrl::parse(&witness.url).unwrap(),
            &pgship::db::ConnectOptions::default(),
        )
        .await
        .unwrap();
        let e = c
            .client
            .batch_execute(&format!("BEGIN;\n{all}\nCOMMIT;"))
            .await
            .expect_err("too many locks for one transaction");
        pgship::db::describe(&e)
    });
    assert!(failed.contains("out of shared memory"), "{failed}");
}
