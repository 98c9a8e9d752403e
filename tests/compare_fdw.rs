//! The postgres_fdw engine against real PostgreSQL: it gives exactly the catalog engine's lines
//! on the kinds it covers (every compare fixture, and a rich pair covering every covered kind,
//! on PostgreSQL 15 and 18 in both directions, run in the source and in a scratch database),
//! it leaves nothing behind (after success, an error, Ctrl-C, and a killed run followed by the
//! next run), the target's password reaches no server log, its errors carry hints, and its
//! `--data` report matches the catalog engine's.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pgship::cluster::{ClusterOptions, LocalCluster};
use pgship::compare::data::{self, DataOptions};
use pgship::compare::diff::catalog_compare;
use pgship::compare::fdw::{self, COVERED, FdwOptions, FdwOutcome, FdwPlace};
use pgship::compare::{Difference, SchemaFilter};
use pgship::db::{ConnectOptions, DbError, DbUrl, connect, tools};

fn filter() -> SchemaFilter {
    SchemaFilter {
        include: vec![],
        exclude: vec!["pgship".into(), "drizzle".into()],
    }
}

/// The covered lines of `diffs`, with their `breaking` lines, sorted.
fn lines(diffs: &[Difference]) -> Vec<String> {
    let mut out = Vec::new();
    for d in diffs.iter().filter(|d| COVERED.contains(&d.kind)) {
        out.push(d.line.clone());
        out.extend(d.breaking_line());
    }
    out.sort();
    out
}

fn catalog_lines(source: &str, target: &str) -> Vec<String> {
    let (s, t) = (DbUrl::parse(source).unwrap(), DbUrl::parse(target).unwrap());
    rt().block_on(async {
        let opts = ConnectOptions::default();
        let (s, t) = (
            connect(&s, &opts).await.unwrap(),
            connect(&t, &opts).await.unwrap(),
        );
        lines(
            &catalog_compare(&s.client, &t.client, &filter())
                .await
                .unwrap(),
        )
    })
}

fn run_fdw(
    source: &str,
    target: &str,
    place: FdwPlace,
    data: Option<DataOptions>,
) -> Result<FdwOutcome, DbError> {
    let (s, t) = (DbUrl::parse(source).unwrap(), DbUrl::parse(target).unwrap());
    let opts = FdwOptions {
        place,
        filter: filter(),
        data,
    };
    rt().block_on(fdw::compare(&s, &t, &ConnectOptions::default(), &opts))
}

fn fdw_lines(source: &str, target: &str, place: FdwPlace) -> Vec<String> {
    let out = run_fdw(source, target, place, None)
        .unwrap_or_else(|e| panic!("fdw engine failed: {e}{}", hint(&e)));
    assert!(out.differences.iter().all(|d| COVERED.contains(&d.kind)));
    assert!(out.not_covered.contains(&"view-added"));
    lines(&out.differences)
}

fn hint(e: &DbError) -> String {
    e.hint().map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

/// Both engines, and the fdw engine in both places, agree on `source` -> `target`; nothing
/// is left in the source database (see [`assert_clean`] for the server).
fn assert_same(what: &str, source: &TestDb, target: &TestDb) {
    assert_same_in(what, source, target, &[FdwPlace::Source, FdwPlace::Scratch]);
}

fn assert_same_in(what: &str, source: &TestDb, target: &TestDb, places: &[FdwPlace]) {
    let expected = catalog_lines(&source.url, &target.url);
    for &place in places {
        let got = fdw_lines(&source.url, &target.url, place);
        assert_eq!(
            got, expected,
            "{what} ({place:?}): fdw lines (left) differ from the catalog engine's (right)"
        );
    }
    let rows = query(&source.url, LOCAL_LEFTOVERS);
    assert!(rows.is_empty(), "{what}: left behind: {rows:?}");
}

/// What a run could leave in the database it ran in.
const LOCAL_LEFTOVERS: &str = "SELECT 'server ' || srvname FROM pg_foreign_server \
    WHERE srvname LIKE 'pgship\\_cmp\\_%' \
  UNION ALL SELECT 'mapping ' || srvname FROM pg_user_mappings WHERE srvname LIKE 'pgship\\_cmp\\_%' \
  UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE 'pgship\\_cmp\\_%' \
  UNION ALL SELECT 'foreign table ' || ftrelid::regclass FROM pg_foreign_table \
  UNION ALL SELECT 'extension ' || extname FROM pg_extension WHERE extname = 'postgres_fdw'";

fn apply(db: &TestDb, sql: &str) {
    if !sql.trim().is_empty() {
        query(&db.url, sql);
    }
}

/// Nothing of the engine is left on the server of `url` or in its database: no pgship_cmp_
/// server, user mapping, schema, foreign table, postgres_fdw extension or scratch database,
/// no postgres_fdw session (`url`'s database must not have had the extension before).
fn assert_clean(url: &str) {
    let rows = leftovers(url);
    assert!(rows.is_empty(), "left behind on {url}: {rows:?}");
}

/// [`assert_clean`] for a database where the test installed postgres_fdw itself.
fn assert_clean_with_extension(url: &str) {
    let rows: Vec<String> = leftovers(url)
        .into_iter()
        .filter(|r| r != "extension postgres_fdw")
        .collect();
    assert!(rows.is_empty(), "left behind on {url}: {rows:?}");
}

fn leftovers(url: &str) -> Vec<String> {
    // A cancelled remote session may take a moment to notice that its client is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<String> = query(
            url,
            &format!(
                "{LOCAL_LEFTOVERS} \
                 UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datname LIKE 'pgship\\_cmp\\_%' \
                 UNION ALL SELECT 'session ' || pid FROM pg_stat_activity WHERE application_name = 'pgship_compare'"
            ),
        )
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect();
        if rows.is_empty() || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Back to an empty database: no extension but plpgsql, no schema but an empty `public`.
const EMPTY_DATABASE: &str = "DO $$ DECLARE r record; BEGIN \
    FOR r IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP \
      EXECUTE format('DROP EXTENSION %I CASCADE', r.extname); END LOOP; \
    FOR r IN SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' \
      AND nspname <> 'information_schema' LOOP \
      EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname); END LOOP; END $$; \
    CREATE SCHEMA public AUTHORIZATION pg_database_owner; \
    GRANT USAGE ON SCHEMA public TO PUBLIC";

/// The tests here look at server-wide state (scratch databases, sessions): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn every_fixture_gives_the_catalog_engines_lines() {
    let _serial = serial();
    let Some(probe) = TestDb::new() else { return };
    drop(probe);
    let root = fixture("compare");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("source.sql").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() > 50, "compare fixtures in {}", root.display());
    // A few workers, each with a pair of databases emptied between fixtures (creating and
    // dropping databases, with the checkpoints that forces, would dominate the test). For
    // the same reason every third fixture only also runs in a scratch database (the rich
    // pairs run there in full).
    let queue = std::sync::Mutex::new(dirs.into_iter().enumerate().collect::<Vec<_>>());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let (source, target) = (TestDb::new().unwrap(), TestDb::new().unwrap());
                while let Some((i, dir)) = queue.lock().unwrap().pop() {
                    let name = dir.file_name().unwrap().to_string_lossy().to_string();
                    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                    for db in [&source, &target] {
                        apply(db, EMPTY_DATABASE);
                    }
                    apply(&source, &read("source.sql"));
                    apply(&target, &read("target.sql"));
                    let places: &[FdwPlace] = if i % 3 == 0 {
                        &[FdwPlace::Source, FdwPlace::Scratch]
                    } else {
                        &[FdwPlace::Source]
                    };
                    assert_same_in(&name, &source, &target, places);
                }
            });
        }
    });
    assert_clean(&admin_url());
}

/// Every covered kind, with the texts that are hard to get right through postgres_fdw:
/// serial and `nextval` defaults, enum-typed defaults (`'a'::mood`), a public function in a
/// default, regclass constants, timestamptz constants, types in another schema, types only the
/// target has (scalar and array), domains, partitions on three levels, INHERITS, foreign keys,
/// NOT VALID, NO INHERIT, deferrable, CHECK constraints sharing a name in one schema,
/// exclusion constraints, partial and expression indexes, non-default operator classes,
/// mixed-case names, and names that change kind (table to view).
const RICH_TARGET: &str = r#"
CREATE SCHEMA other;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE other.level AS ENUM ('low', 'high');
CREATE TYPE gone AS ENUM ('x', 'y');
CREATE TYPE other.gone2 AS ENUM ('z');
CREATE TYPE reorder AS ENUM ('a', 'b', 'c');
CREATE TYPE "Odd Enum" AS ENUM ('It''s', 'plain');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'c' $$;
CREATE FUNCTION other.f(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$;
CREATE TABLE accounts (
  id serial PRIMARY KEY,
  email varchar(100) NOT NULL,
  status mood DEFAULT 'ok',
  lvl other.level DEFAULT 'low'::other.level,
  created timestamptz DEFAULT now(),
  code text DEFAULT next_code(),
  kinds mood[] DEFAULT '{sad}',
  old_col gone,
  qty posint,
  score numeric(10,2) DEFAULT 0.5,
  note text,
  "Mixed Case" text DEFAULT 'it''s',
  ref regclass DEFAULT 'accounts'::regclass,
  odd "Odd Enum" DEFAULT 'It''s',
  seq_id bigint DEFAULT nextval('accounts_id_seq'::regclass),
  plain_default int DEFAULT 1,
  gen int GENERATED ALWAYS AS (plain_default * 2) STORED
);
CREATE UNIQUE INDEX accounts_email_lower ON accounts (lower(email));
CREATE INDEX accounts_note_partial ON accounts (note) WHERE note IS NOT NULL;
CREATE INDEX accounts_old ON accounts (old_col);
CREATE INDEX accounts_pattern ON accounts (email varchar_pattern_ops);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  account_id int REFERENCES accounts ON DELETE CASCADE,
  amount int CHECK (amount > 0),
  during tstzrange,
  EXCLUDE USING gist (during WITH &&)
);
ALTER TABLE orders ADD CONSTRAINT orders_amount_max CHECK (amount < 1000) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_account_uq UNIQUE (account_id, amount);
CREATE TABLE other.items (id int PRIMARY KEY, name text, CONSTRAINT positive CHECK (id > 0));
CREATE TABLE other.things (id int, CONSTRAINT positive CHECK (id > 1) NO INHERIT);
CREATE TABLE other.typed (g other.gone2, garr gone[], lv other.level DEFAULT 'low');
CREATE TABLE events (id int, at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
  PARTITION BY RANGE (at);
CREATE TABLE events_2024_h1 PARTITION OF events_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE INDEX events_v ON events (v);
CREATE TABLE base (id int, label text);
CREATE TABLE derived (extra int) INHERITS (base);
CREATE TABLE becomes_view (id int);
CREATE VIEW was_view AS SELECT 1 AS x;
CREATE TABLE dropped (id int PRIMARY KEY);
CREATE TABLE uses_gone (g gone DEFAULT 'x', "Id" int);
CREATE TABLE "MixedCase" ("Key" int CONSTRAINT "Key check" CHECK ("Key" > 0));
CREATE INDEX "MixedCase Key" ON "MixedCase" ("Key");
"#;

const RICH_SOURCE: &str = r#"
CREATE SCHEMA other;
CREATE TYPE mood AS ENUM ('sad', 'happy', 'ecstatic');
CREATE TYPE other.level AS ENUM ('low', 'mid', 'high');
CREATE TYPE reorder AS ENUM ('c', 'a', 'b', 'd');
CREATE TYPE fresh AS ENUM ('n');
CREATE TYPE "Odd Enum" AS ENUM ('plain', 'It''s');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'c' $$;
CREATE FUNCTION other.f(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$;
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  account_id int,
  amount int CHECK (amount >= 0),
  during tstzrange,
  EXCLUDE USING gist (during WITH &&) DEFERRABLE
);
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  email varchar(200) NOT NULL,
  status mood DEFAULT 'happy',
  lvl other.level DEFAULT 'mid'::other.level,
  created timestamptz DEFAULT '2024-01-01 00:00:00+02',
  code text DEFAULT next_code() || 'x',
  kinds mood[] DEFAULT '{happy}',
  qty posint NOT NULL,
  score numeric(12,2) DEFAULT 0.5,
  note varchar(10),
  "Mixed Case" text DEFAULT 'it''s public.x',
  ref regclass DEFAULT 'orders'::regclass,
  odd "Odd Enum" DEFAULT 'plain',
  seq_id bigint DEFAULT nextval('orders_id_seq'::regclass),
  plain_default int DEFAULT other.f(2),
  gen int GENERATED ALWAYS AS (plain_default * 3) STORED,
  fresh_col fresh DEFAULT 'n'
);
CREATE UNIQUE INDEX accounts_email_lower ON accounts (upper(email));
CREATE INDEX accounts_note_partial ON accounts (note) WHERE note IS NOT NULL AND note <> '';
CREATE INDEX accounts_created ON accounts (created);
CREATE INDEX accounts_pattern ON accounts (email);
ALTER TABLE orders ADD CONSTRAINT orders_account_id_fkey FOREIGN KEY (account_id)
  REFERENCES accounts ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE orders ADD CONSTRAINT orders_amount_max CHECK (amount < 1000);
ALTER TABLE orders ADD CONSTRAINT orders_account_uq CHECK (account_id IS NOT NULL) NOT VALID;
CREATE TABLE other.items (id int PRIMARY KEY, name text NOT NULL, CONSTRAINT positive CHECK (id > 2));
CREATE TABLE other.things (id int, CONSTRAINT positive CHECK (id > 1));
CREATE TABLE other.typed (g text, garr text[], lv other.level DEFAULT 'high');
CREATE TABLE events (id int, at date NOT NULL, v bigint, note text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
  PARTITION BY RANGE (at);
CREATE TABLE events_2024_h1 PARTITION OF events_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE events_2024_h2 PARTITION OF events_2024 FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
CREATE INDEX events_v ON events (v, id);
CREATE TABLE base (id bigint, label text, added text);
CREATE TABLE derived (extra int) INHERITS (base);
CREATE VIEW becomes_view AS SELECT 1 AS id;
CREATE TABLE was_view (x int);
CREATE TABLE uses_gone (g text DEFAULT 'x', "Id" bigint);
CREATE TABLE "MixedCase" ("Key" int CONSTRAINT "Key check" CHECK ("Key" > 1), "New Col" "Odd Enum");
CREATE INDEX "MixedCase Key" ON "MixedCase" ("Key") WHERE "Key" > 0;
CREATE TABLE added_table (id int PRIMARY KEY);
"#;

/// The rich pair on `source_admin` and `target_admin` (URLs of existing databases on each
/// server): both engines agree, in both places, in both directions.
fn rich_pair(source_admin: &str, target_admin: &str, what: &str) {
    let source = TestDb::on(source_admin).expect("source database");
    let target = TestDb::on(target_admin).expect("target database");
    apply(&source, RICH_SOURCE);
    apply(&target, RICH_TARGET);
    let expected = catalog_lines(&source.url, &target.url);
    // The pair exercises every covered kind, and the texts the fdw engine rewrites.
    for word in COVERED {
        assert!(
            expected.iter().any(|l| l.starts_with(&format!("{word} "))),
            "{what}: the rich pair gives no {word} line: {expected:#?}"
        );
    }
    for line in [
        "column-default-changed public.accounts.lvl 'low'::other.level -> 'mid'::other.level",
        "column-type-changed public.uses_gone.g gone -> text",
        "column-type-changed other.typed.garr gone[] -> text[]",
        "column-added public.accounts.fresh_col fresh",
    ] {
        assert!(
            expected.contains(&line.to_string()),
            "{what}: {line} in {expected:#?}"
        );
    }
    assert!(
        expected
            .iter()
            .any(|l| l.starts_with("column-default-changed public.accounts.status 'ok'::mood")),
        "{what}: {expected:#?}"
    );
    assert_same(what, &source, &target);
    assert_same(&format!("{what}, reversed"), &target, &source);
    assert_clean(source_admin);
    assert_clean(target_admin);
}

fn pg18_cluster() -> Option<LocalCluster> {
    let bin = pg18_bin()?;
    let b = tools::at(&bin, "postgres").expect("PostgreSQL 18 binaries run");
    assert_eq!(b.major, 18);
    Some(
        LocalCluster::start(&ClusterOptions {
            bin: Some(b),
            ..Default::default()
        })
        .unwrap(),
    )
}

#[test]
fn rich_pair_on_postgres_15() {
    let _serial = serial();
    let Some(probe) = TestDb::new() else { return };
    drop(probe);
    rich_pair(&admin_url(), &admin_url(), "PostgreSQL 15");
}

#[test]
fn rich_pair_across_postgres_15_and_18() {
    let _serial = serial();
    let Some(probe) = TestDb::new() else { return };
    drop(probe);
    let Some(cluster) = pg18_cluster() else {
        return;
    };
    let pg18 = cluster.url("postgres").expose();
    rich_pair(&admin_url(), &pg18, "source PostgreSQL 15, target 18");
    rich_pair(&pg18, &pg18, "PostgreSQL 18");
}

/// Run in a child process by the kill and Ctrl-C tests (see [`spawn_child`]); does nothing
/// in a normal test run.
#[test]
#[ignore = "a helper run in a child process"]
fn fdw_child_run() {
    let Ok(spec) = std::env::var("PGSHIP_FDW_CHILD") else {
        return;
    };
    let mut parts = spec.split('\n');
    let (source, target, place) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let place = if place == "scratch" {
        FdwPlace::Scratch
    } else {
        FdwPlace::Source
    };
    match run_fdw(source, target, place, None) {
        Ok(out) => println!("RESULT ok {}", out.differences.len()),
        Err(e) => println!("RESULT err {e}"),
    }
}

/// This test binary running [`fdw_child_run`] on `source` and `target`.
fn spawn_child(source: &str, target: &str, place: FdwPlace) -> std::process::Child {
    let place = if place == FdwPlace::Scratch {
        "scratch"
    } else {
        "source"
    };
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fdw_child_run", "--ignored", "--nocapture"])
        .env("PGSHIP_FDW_CHILD", format!("{source}\n{target}\n{place}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Hold an ACCESS EXCLUSIVE lock on the target's `pg_settings` view (which the engine reads
/// first through postgres_fdw; unlike the catalogs, locking it does not block new
/// connections) until the returned sender is dropped.
fn block_target(target: &str) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let url = DbUrl::parse(target).unwrap();
    std::thread::spawn(move || {
        rt().block_on(async {
            let c = connect(&url, &ConnectOptions::default()).await.unwrap();
            c.client
                .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_settings IN ACCESS EXCLUSIVE MODE")
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || rx.recv()).await;
            let _ = c.client.batch_execute("ROLLBACK").await;
        });
    });
    ready_rx.recv().unwrap();
    tx
}

/// Wait until the engine's remote session on `target`'s server waits for the lock.
fn wait_until_blocked(target: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(
        target,
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgship_compare' \
         AND wait_event_type = 'Lock'",
    )
    .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the engine never reached the target's catalogs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn child_output(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn nothing_remains_after_success_or_error() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    apply(
        &source,
        "CREATE TABLE t (id serial PRIMARY KEY, v text DEFAULT 'x')",
    );
    apply(&target, "CREATE TABLE t (id int)");
    for place in [FdwPlace::Source, FdwPlace::Scratch] {
        let out = run_fdw(&source.url, &target.url, place, None).unwrap();
        assert_eq!(out.differences.len(), 5, "{place:?}: {:?}", out.differences);
        assert!(out.removed_leftovers.is_empty());
        assert_clean(&source.url);
        // A target the database server cannot reach: a clear error with a hint, and nothing
        // left behind.
        let mut unreachable = DbUrl::parse(&target.url).unwrap();
        unreachable.hosts[0].port = Some(1);
        let err = run_fdw(&source.url, &unreachable.expose(), place, None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("through postgres_fdw"), "{text}");
        assert!(
            text.contains("Connection refused") || text.contains("connect"),
            "{text}"
        );
        assert!(
            hint(&err).contains("reachable from there"),
            "{}",
            hint(&err)
        );
        assert_clean(&source.url);
    }
}

#[test]
fn a_killed_run_leaves_nothing_in_the_source_and_its_scratch_database_is_removed_next_time() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    apply(&source, "CREATE TABLE t (id int)");
    apply(&target, "CREATE TABLE t (id int, v text)");
    for place in [FdwPlace::Source, FdwPlace::Scratch] {
        let unblock = block_target(&target.url);
        let mut child = spawn_child(&source.url, &target.url, place);
        wait_until_blocked(&target.url);
        // Everything the run made so far is uncommitted, or the scratch database.
        let scratch: Vec<String> = query(
            &source.url,
            "SELECT datname FROM pg_database WHERE datname LIKE 'pgship\\_cmp\\_%'",
        )
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
        assert_eq!(
            scratch.len(),
            usize::from(place == FdwPlace::Scratch),
            "{scratch:?}"
        );
        assert!(query(&source.url, LOCAL_LEFTOVERS).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        drop(unblock);
        if place == FdwPlace::Source {
            assert_clean(&source.url);
            continue;
        }
        // The scratch database outlives the killed run; the next run removes and reports it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !query(
            &source.url,
            "SELECT 1 FROM pg_stat_activity WHERE datname LIKE 'pgship\\_cmp\\_%'",
        )
        .is_empty()
        {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(100));
        }
        let next = run_fdw(&source.url, &target.url, FdwPlace::Source, None).unwrap();
        assert_eq!(
            next.removed_leftovers,
            vec![format!("database {}", scratch[0])]
        );
        assert_eq!(
            lines(&next.differences),
            [
                "breaking column-removed public.t.v",
                "column-removed public.t.v"
            ]
        );
        assert_clean(&source.url);
    }
}

#[test]
fn ctrl_c_rolls_back_and_removes_everything() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    apply(&target, "CREATE TABLE t (id int)");
    for place in [FdwPlace::Source, FdwPlace::Scratch] {
        let unblock = block_target(&target.url);
        let child = spawn_child(&source.url, &target.url, place);
        wait_until_blocked(&target.url);
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let started = Instant::now();
        let output = child_output(child);
        assert!(
            output.contains("RESULT err interrupted (Ctrl-C)"),
            "{place:?}: {output}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{place:?}: slow to stop"
        );
        // Nothing remains, even before the target's lock is released.
        assert!(query(&source.url, LOCAL_LEFTOVERS).is_empty());
        assert!(
            query(
                &source.url,
                "SELECT 1 FROM pg_database WHERE datname LIKE 'pgship\\_cmp\\_%'"
            )
            .is_empty(),
            "{place:?}: the scratch database was not dropped"
        );
        drop(unblock);
        assert_clean(&source.url);
    }
}

#[test]
fn leftovers_of_dead_sessions_are_removed_and_live_ones_kept() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    // Leftovers as an older, committing version of the engine would leave them: a server
    // (with its user mapping), a schema with a foreign table, and a scratch database, each
    // recorded as owned by a session that no longer exists.
    let dead = "pgship compare (fdw engine) working objects, owner pid=999999 start=1";
    apply(
        &source,
        &format!(
            "CREATE EXTENSION postgres_fdw; \
             CREATE SERVER pgship_cmp_999999_dead FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'x'); \
             COMMENT ON SERVER pgship_cmp_999999_dead IS '{dead}'; \
             CREATE USER MAPPING FOR CURRENT_USER SERVER pgship_cmp_999999_dead; \
             CREATE SCHEMA pgship_cmp_999999_dead; \
             COMMENT ON SCHEMA pgship_cmp_999999_dead IS '{dead}'; \
             CREATE FOREIGN TABLE pgship_cmp_999999_dead.ft (id int) SERVER pgship_cmp_999999_dead"
        ),
    );
    query(&admin_url(), "CREATE DATABASE pgship_cmp_999999_dead");
    query(
        &admin_url(),
        &format!("COMMENT ON DATABASE pgship_cmp_999999_dead IS '{dead}'"),
    );
    // A database of a run that is still going (this session, held open) is left alone.
    let live_url = DbUrl::parse(&source.url).unwrap();
    rt().block_on(async {
        let live = connect(&live_url, &ConnectOptions::default()).await.unwrap();
        let name = format!("pgship_cmp_{}_live", live.pid);
        live.client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        live.client
            .batch_execute(&format!(
                "DO $$ BEGIN EXECUTE format('COMMENT ON DATABASE {name} IS %L', \
                 'owner pid=' || pg_backend_pid() || ' start=' || {}); END $$",
                "(SELECT (extract(epoch FROM backend_start) * 1000000)::bigint FROM pg_stat_activity WHERE pid = pg_backend_pid())"
            ))
            .await
            .unwrap();
        let out = fdw::compare(
            &live_url,
            &DbUrl::parse(&target.url).unwrap(),
            &ConnectOptions::default(),
            &FdwOptions {
                place: FdwPlace::Source,
                filter: filter(),
                data: None,
            },
        )
        .await
        .unwrap();
        let mut removed = out.removed_leftovers.clone();
        removed.sort();
        assert_eq!(
            removed,
            vec![
                "database pgship_cmp_999999_dead",
                "schema pgship_cmp_999999_dead",
                "server pgship_cmp_999999_dead"
            ]
        );
        let kept = live
            .client
            .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .unwrap();
        assert_eq!(kept.len(), 1, "the live run's database was removed");
        live.client
            .batch_execute(&format!("DROP DATABASE {name}"))
            .await
            .unwrap();
    });
    let rows = query(
        &source.url,
        "SELECT 1 FROM pg_foreign_server UNION ALL SELECT 1 FROM pg_user_mappings UNION ALL SELECT 1 FROM pg_foreign_table UNION ALL SELECT 1 FROM pg_namespace WHERE nspname LIKE 'pgship%'",
    );
    assert!(rows.is_empty(), "{rows:?}");
    // The extension was there before the runs: it stays.
    assert_eq!(
        query(
            &source.url,
            "SELECT 1 FROM pg_extension WHERE extname = 'postgres_fdw'"
        )
        .len(),
        1
    );
}

/// The text of the test server's log, if pgship can find it (Debian's pg_ctlcluster layout).
fn pg15_log(url: &str) -> Option<std::path::PathBuf> {
    let major = query(
        url,
        "SELECT current_setting('server_version_num')::int / 10000",
    )[0][0]
        .clone()
        .unwrap();
    let path = std::path::PathBuf::from(format!("/var/log/postgresql/postgresql-{major}-main.log"));
    path.exists().then_some(path)
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Roles made for one test, dropped at the end.
struct Roles {
    url: String,
    names: Vec<String>,
}

impl Drop for Roles {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = std::panic::catch_unwind(|| {
                query(
                    &self.url,
                    &format!("DROP OWNED BY {n} CASCADE; DROP ROLE IF EXISTS {n}"),
                )
            });
        }
    }
}

#[test]
fn the_targets_password_reaches_no_log_and_no_error() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let Some(cluster) = pg18_cluster() else {
        return;
    };
    let tag = pgship::util::random_hex(8);
    let secret = pgship::util::random_hex(8);
    let password = format!("pw'\"\\ {secret}$$;");
    let admin18 = cluster.url("postgres").expose();
    let target = TestDb::on(&admin18).unwrap();
    let reader = format!("fdw_reader_{tag}");
    let _roles18 = Roles {
        url: target.url.clone(),
        names: vec![reader.clone()],
    };
    // The target's tables belong to the role pgship reads them with, so information_schema
    // shows it their defaults; it logs everything it runs.
    apply(
        &target,
        &format!(
            "CREATE ROLE {reader} LOGIN PASSWORD {}; GRANT CREATE ON SCHEMA public TO {reader}; \
             ALTER ROLE {reader} SET log_statement = 'all'; \
             SET ROLE {reader}; CREATE TABLE t (id int DEFAULT 7, v text CHECK (v <> '')); RESET ROLE",
            pgship::db::quote_literal(&password)
        ),
    );
    let mut target_url = DbUrl::parse(&target.url).unwrap();
    target_url.user = Some(reader.clone());
    target_url.password = Some(pgship::db::url::Secret::new(password.clone()));
    let target_url = target_url.expose();
    // Source: a superuser and a role with just enough, both logging every statement and its
    // parameters.
    let plain = format!("fdw_plain_{tag}");
    let su = format!("fdw_su_{tag}");
    let _roles = Roles {
        url: source.url.clone(),
        names: vec![plain.clone(), su.clone()],
    };
    apply(
        &source,
        &format!(
            "CREATE TABLE t (id int DEFAULT 8, v text); \
             CREATE EXTENSION postgres_fdw; \
             CREATE ROLE {plain} LOGIN; CREATE ROLE {su} LOGIN SUPERUSER; \
             GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {plain}; \
             GRANT CREATE ON DATABASE {db} TO {plain}; \
             ALTER ROLE {plain} SET log_statement = 'all'; \
             ALTER ROLE {plain} SET log_min_duration_statement = 0; \
             ALTER ROLE {su} SET log_statement = 'all'; \
             ALTER ROLE {su} SET log_min_duration_statement = 0",
            db = source.name
        ),
    );
    let as_role = |role: &str| {
        let mut u = DbUrl::parse(&source.url).unwrap();
        u.user = Some(role.to_string());
        u.expose()
    };
    let expected = vec![
        "column-default-changed public.t.id 7 -> 8".to_string(),
        "constraint-removed public.t.t_v_check check".to_string(),
    ];
    for role in [&plain, &su] {
        for place in [FdwPlace::Source, FdwPlace::Scratch] {
            if place == FdwPlace::Scratch && role == &plain {
                continue; // a scratch database needs CREATEDB and the extension in it
            }
            let out = run_fdw(&as_role(role), &target_url, place, None)
                .unwrap_or_else(|e| panic!("{role} {place:?}: {e}{}", hint(&e)));
            assert_eq!(lines(&out.differences), expected, "{role} {place:?}");
        }
        // Errors do not show it either: a wrong database name and a wrong user.
        for bad in [
            target_url.replace(&format!("/{}?", target.name), "/no_such_db?"),
            target_url.replace(&reader, "nobody"),
        ] {
            let err = run_fdw(&as_role(role), &bad, FdwPlace::Source, None).unwrap_err();
            let text = format!("{err} {err:?}{}", hint(&err));
            assert!(!text.contains(&secret), "{text}");
            assert!(text.contains("through postgres_fdw"), "{text}");
        }
        query(
            &as_role(role),
            &format!("SELECT 'pgship-marker-{tag}-{role}'"),
        );
    }
    assert_clean_with_extension(&source.url);
    let cluster_log = read_lossy(&cluster.dir.join("server.log"));
    assert!(
        cluster_log.contains("pg_settings"),
        "the target logged postgres_fdw's statements: {}",
        &cluster_log[cluster_log.len().saturating_sub(2000)..]
    );
    assert!(
        !cluster_log.contains(&secret),
        "the target's log holds the password"
    );
    match pg15_log(&source.url) {
        Some(path) => {
            let log = read_lossy(&path);
            for role in [&plain, &su] {
                assert!(
                    log.contains(&format!("pgship-marker-{tag}-{role}")),
                    "{} logs {role}'s statements",
                    path.display()
                );
            }
            assert!(
                log.contains("CREATE USER MAPPING") || log.contains("pgship_fdw_secret"),
                "the runs were logged"
            );
            assert!(
                !log.contains(&secret),
                "{} holds the password",
                path.display()
            );
        }
        None if in_ci() => panic!("CI=true and the test server's log was not found"),
        None => eprintln!("SKIPPED: the source server's log file was not found"),
    }
}

#[test]
fn errors_say_what_to_do() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    let tag = pgship::util::random_hex(6);
    let (nobody, granted) = (format!("fdw_nobody_{tag}"), format!("fdw_granted_{tag}"));
    let _roles = Roles {
        url: source.url.clone(),
        names: vec![nobody.clone(), granted.clone()],
    };
    apply(
        &source,
        &format!("CREATE ROLE {nobody} LOGIN; CREATE ROLE {granted} LOGIN"),
    );
    let as_role = |role: &str| {
        let mut u = DbUrl::parse(&source.url).unwrap();
        u.user = Some(role.to_string());
        u.expose()
    };
    // Without the extension, or without rights: superuser or grants, or the catalog engine.
    let err = run_fdw(&as_role(&nobody), &target.url, FdwPlace::Source, None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("permission denied"), "{text}");
    assert!(
        text.contains("GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw"),
        "{text}"
    );
    assert!(text.contains("--engine catalog"), "{text}");
    assert_clean(&source.url);
    // With the rights, a target that does not ask for a password (trust): postgres_fdw
    // refuses a role that is not a superuser.
    apply(
        &source,
        &format!(
            "CREATE EXTENSION postgres_fdw; \
             GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {granted}; \
             GRANT CREATE ON DATABASE {} TO {granted}",
            source.name
        ),
    );
    let err = run_fdw(&as_role(&granted), &target.url, FdwPlace::Source, None).unwrap_err();
    assert!(err.to_string().contains("password"), "{err}");
    assert!(hint(&err).contains("not trust or peer"), "{}", hint(&err));
    // A scratch database needs CREATEDB.
    let err = run_fdw(&as_role(&granted), &target.url, FdwPlace::Scratch, None).unwrap_err();
    assert!(err.to_string().contains("CREATEDB"), "{err}");
    // A target role that does not own the tables cannot read their defaults through
    // information_schema: refused rather than reporting wrong lines.
    apply(&target, "CREATE TABLE t (id int DEFAULT 1)");
    apply(&source, "CREATE TABLE t (id int DEFAULT 2)");
    let mut as_nobody = DbUrl::parse(&target.url).unwrap();
    as_nobody.user = Some(nobody.clone());
    let err = run_fdw(&source.url, &as_nobody.expose(), FdwPlace::Source, None).unwrap_err();
    assert!(
        err.to_string().contains("the default of public.t.id"),
        "{err}"
    );
    assert!(err.to_string().contains("--engine catalog"), "{err}");
    assert_clean_with_extension(&source.url);
}

const DATA_SOURCE: &str = r#"
CREATE TABLE same (id int PRIMARY KEY, name text, at timestamptz, price numeric(10,2), tags text[],
  b bytea, f float8, j jsonb);
INSERT INTO same SELECT i, 'n' || i, timestamptz '2024-01-01 00:00+00' + i * interval '1 hour',
  i / 3.0, ARRAY['a', NULL, i::text], decode(md5(i::text), 'hex'), i / 7.0, jsonb_build_object('k', i)
  FROM generate_series(1, 300) i;
CREATE TABLE changed (id int PRIMARY KEY, v text);
INSERT INTO changed SELECT i, 'v' || i FROM generate_series(1, 100) i;
CREATE TABLE counts (id int);
INSERT INTO counts SELECT generate_series(1, 10);
CREATE TABLE nulls (id int, v text);
INSERT INTO nulls VALUES (1, NULL), (2, 'x');
CREATE TABLE big (id int, pad text);
INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i;
CREATE TYPE mood AS ENUM ('a', 'b');
CREATE TABLE typed (id int, m mood, e text);
INSERT INTO typed VALUES (1, 'a', 'x'), (2, 'b', NULL);
CREATE TABLE "We""ird" ("Mixed Case" text, id int);
INSERT INTO "We""ird" VALUES ('a', 1), ('b', 2);
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, 3);
CREATE TABLE child (id int, parent_id int);
INSERT INTO child VALUES (1, 1), (2, 99), (3, 98), (4, NULL);
ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
CREATE TABLE kinds (id int PRIMARY KEY);
INSERT INTO kinds VALUES (1), (2);
CREATE TABLE events (id int, day date, kind int REFERENCES kinds) PARTITION BY RANGE (day);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events VALUES (1, '2024-03-01', 1), (2, '2025-03-01', 2), (3, '2025-04-01', 1);
CREATE TABLE only_source (id int);
ANALYZE;
"#;

const DATA_TARGET: &str = r#"
CREATE TABLE same (j jsonb, f float8, b bytea, tags text[], price numeric(10,2), at timestamptz,
  name text, id int PRIMARY KEY);
INSERT INTO same (id, name, at, price, tags, b, f, j) SELECT i, 'n' || i,
  timestamptz '2024-01-01 00:00+00' + i * interval '1 hour', i / 3.0, ARRAY['a', NULL, i::text],
  decode(md5(i::text), 'hex'), i / 7.0, jsonb_build_object('k', i)
  FROM generate_series(300, 1, -1) i;
CREATE TABLE changed (id int PRIMARY KEY, v text);
INSERT INTO changed SELECT i, CASE i WHEN 50 THEN 'changed' ELSE 'v' || i END FROM generate_series(1, 100) i;
CREATE TABLE counts (id int);
INSERT INTO counts SELECT generate_series(1, 12);
CREATE TABLE nulls (id int, v text);
INSERT INTO nulls VALUES (1, ''), (2, 'x');
CREATE TABLE big (id int, pad text);
INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i;
CREATE TYPE mood AS ENUM ('a', 'b', 'c');
CREATE TABLE typed (e text, m mood, id int);
INSERT INTO typed VALUES ('x', 'a', 1), (NULL, 'b', 2);
CREATE TABLE "We""ird" (id int, "Mixed Case" text);
INSERT INTO "We""ird" VALUES (2, 'b'), (1, 'a');
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, 3);
CREATE TABLE child (id int, parent_id int REFERENCES parent (id));
INSERT INTO child VALUES (1, 1), (4, NULL);
CREATE TABLE pair_parent (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE pair_child (a int, b int);
INSERT INTO pair_child VALUES (1, NULL), (5, 5);
ALTER TABLE pair_child ADD CONSTRAINT pair_fk FOREIGN KEY (a, b) REFERENCES pair_parent NOT VALID;
CREATE TABLE kinds (id int PRIMARY KEY);
INSERT INTO kinds VALUES (1), (2);
CREATE TABLE events (id int, day date, kind int);
INSERT INTO events VALUES (3, '2025-04-01', 1), (2, '2025-03-01', 2), (1, '2024-03-01', 1);
ANALYZE;
"#;

/// The report as JSON, with table sizes in notes blanked: the fdw engine estimates a remote
/// table's size from relpages, the catalog engine measures it.
fn data_report_json(r: &data::DataReport) -> serde_json::Value {
    let mut r = r.clone();
    for t in &mut r.tables {
        if let Some(note) = &mut t.note {
            if let Some((head, tail)) = note.split_once(" bytes, over") {
                let head = head.trim_end_matches(|c: char| c.is_ascii_digit());
                *note = format!("{head}N bytes, over{tail}");
            }
        }
    }
    serde_json::to_value(&r).unwrap()
}

#[test]
fn data_through_foreign_tables_matches_the_catalog_engine() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    apply(&source, DATA_SOURCE);
    apply(&target, DATA_TARGET);
    for fast in [false, true] {
        let opts = DataOptions {
            fast,
            max_bytes: 200 * 1024,
            ..DataOptions::default()
        };
        let (s, t) = (
            DbUrl::parse(&source.url).unwrap(),
            DbUrl::parse(&target.url).unwrap(),
        );
        let expected = rt().block_on(async {
            let c = ConnectOptions::default();
            let (s, t) = (
                connect(&s, &c).await.unwrap(),
                connect(&t, &c).await.unwrap(),
            );
            data::compare(&s.client, &t.client, &filter(), &opts)
                .await
                .unwrap()
        });
        // The fixture is meaningful: equal, different and skipped tables, and orphans.
        let json = data_report_json(&expected);
        let contents: Vec<&str> = json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["contents"].as_str().unwrap())
            .collect();
        if !fast {
            assert!(contents.contains(&"equal") && contents.contains(&"different"));
            assert!(contents.contains(&"not-compared"), "{json:#}");
        }
        assert!(expected.orphans.iter().any(|o| o.rows > 0));
        for place in [FdwPlace::Source, FdwPlace::Scratch] {
            let out = run_fdw(&source.url, &target.url, place, Some(opts.clone()))
                .unwrap_or_else(|e| panic!("{e}{}", hint(&e)));
            let got = data_report_json(out.data.as_ref().unwrap());
            assert_eq!(got, json, "fast={fast} {place:?}");
            assert_clean(&source.url);
        }
    }
}

#[test]
fn data_notes_remote_inherits_children() {
    let _serial = serial();
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().unwrap();
    let sql = "CREATE TABLE inh_parent (id int); CREATE TABLE inh_child () INHERITS (inh_parent); \
               INSERT INTO inh_parent VALUES (1); INSERT INTO inh_child VALUES (2), (3);";
    apply(&source, sql);
    apply(&target, sql);
    let out = run_fdw(
        &source.url,
        &target.url,
        FdwPlace::Source,
        Some(DataOptions::default()),
    )
    .unwrap();
    let report = out.data.unwrap();
    let parent = report
        .tables
        .iter()
        .find(|t| t.table == "public.inh_parent")
        .unwrap();
    assert_eq!(parent.contents, data::Contents::NotCompared);
    assert!(
        parent
            .note
            .as_deref()
            .unwrap()
            .contains("INHERITS children on target")
    );
    assert!(!report.differs());
    let child = report
        .tables
        .iter()
        .find(|t| t.table == "public.inh_child")
        .unwrap();
    assert_eq!(child.contents, data::Contents::Equal);
    assert_eq!((child.source_rows, child.target_rows), (2, 2));
}
