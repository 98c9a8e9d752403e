//! `pgship plan`: rehearsal on a real sandbox of a real target, as a user runs it.

mod common;

use std::path::Path;

use common::deploy::private_tmp;
use common::{TestDb, pgship, project_with, run, sql_project};
use serde_json::Value;

fn plan_json(project: &Path, target: &str, tmp: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut cmd = pgship(project);
    cmd.env("TMPDIR", tmp)
        .args(["plan", target, "--sandbox", "local", "--format", "json"])
        .args(extra);
    let out = run(&mut cmd);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan printed no JSON ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
            out.code, out.stdout, out.stderr
        )
    });
    (out.code, v, out.stderr)
}

fn reason_codes(v: &Value) -> Vec<String> {
    v["decision"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap(),
                r["code"].as_str().unwrap()
            )
        })
        .collect()
}

fn seed_shop(db: &TestDb) {
    db.query(
        "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme'), ('Globex', 'globex');
         INSERT INTO users (organization_id, email, full_name) SELECT 1 + (i % 2), 'u' || i || '@x.test', 'User ' || i FROM generate_series(1, 50) i;
         INSERT INTO products (organization_id, sku, name) SELECT 1 + (i % 2), 'sku-' || i, 'Product ' || i FROM generate_series(1, 20) i;
         INSERT INTO orders (user_id, total_cents) SELECT 1 + (i % 50), i * 100 FROM generate_series(1, 200) i;
         INSERT INTO order_items (order_id, product_id, quantity, unit_price) SELECT 1 + (i % 200), 1 + (i % 20), 1 + (i % 3), 9.99 FROM generate_series(1, 400) i;",
    );
}

#[test]
fn drizzle_fixture_at_0001_rehearses_0002_and_0003_proves_the_rollback_and_proceeds() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    let full = tempfile::tempdir().unwrap();
    common::copy_dir(&project.path().join("drizzle"), full.path());
    common::drizzle_journal_upto(&project.path().join("drizzle"), 2);
    let m = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(m.code, 0, "{}", m.stderr);
    seed_shop(&db);
    // The full set again: 0002 and 0003 are pending.
    std::fs::remove_dir_all(project.path().join("drizzle")).unwrap();
    common::copy_dir(full.path(), &project.path().join("drizzle"));
    let before = common::schema_dump(Path::new("/usr/lib/postgresql/15/bin/pg_dump"), &db.url);

    let tmp = private_tmp();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    let pending: Vec<&str> = v["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["0002_rename_full_name", "0003_drop_order_total"]);
    let lint: Vec<(String, String)> = v["lint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        lint.iter()
            .any(|(r, f)| r == "BI01" && f.contains("0002_rename_full_name")),
        "{lint:?}"
    );
    assert!(
        lint.iter()
            .any(|(r, f)| r == "DL02" && f.contains("0003_drop_order_total")),
        "{lint:?}"
    );
    let r = &v["rehearsal"];
    assert!(r["failure"].is_null());
    let diffs: Vec<&str> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_str().unwrap())
        .collect();
    assert!(
        diffs.contains(&"column-removed public.orders.total_cents"),
        "{diffs:?}"
    );
    // 0002's RENAME COLUMN is a rename, not a removal.
    assert!(
        diffs.contains(&"column-renamed public.users.full_name -> display_name"),
        "{diffs:?}"
    );
    assert!(
        !diffs.contains(&"column-removed public.users.full_name"),
        "{diffs:?}"
    );
    let removed = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["line"] == "column-removed public.orders.total_cents")
        .unwrap();
    assert_eq!(removed["breaking"], true);
    assert_eq!(removed["policy"], "warn");
    // Every statement was measured: the rename and the drop each took ACCESS EXCLUSIVE.
    let stmts = r["statements"].as_array().unwrap();
    assert_eq!(stmts.len(), 2, "{stmts:#?}");
    for (s, table) in stmts.iter().zip(["public.users", "public.orders"]) {
        assert!(
            s["locks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["mode"] == "ACCESS EXCLUSIVE" && l["relation"] == table),
            "{s:#}"
        );
    }
    let rb = &r["rollback"];
    assert_eq!(rb["proven"], true, "{rb:#}");
    assert_eq!(rb["reapplied"], true, "{rb:#}");
    assert_eq!(rb["reapplied_same_schema"], true, "{rb:#}");
    assert_eq!(v["decision"]["verdict"], "proceed-with-warnings");
    let reasons = reason_codes(&v);
    assert!(
        reasons.contains(&"warn breaking:column-removed".to_string()),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.starts_with("abort")),
        "{reasons:?}"
    );

    // Only read: the target is as it was.
    let after = common::schema_dump(Path::new("/usr/lib/postgresql/15/bin/pg_dump"), &db.url);
    assert_eq!(before, after);
    assert_eq!(
        db.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations")
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        db.scalar("SELECT sum(total_cents) FROM orders").as_deref(),
        Some("2010000")
    );
    // Artifacts, private.
    let id = v["deployment_id"].as_str().unwrap();
    let dir = project.path().join(".deployments").join(id);
    for f in [
        "report.md",
        "report.json",
        "schema-comparison.json",
        "deployment.log",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }
    let log = std::fs::read_to_string(dir.join("deployment.log")).unwrap();
    let phases: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["phase"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        phases.contains(&"PREFLIGHT".to_string())
            && phases.contains(&"SANDBOX_VALIDATION".to_string())
    );
    assert!(!log.contains("password"), "no secret in the log");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("column-removed public.orders.total_cents"),
        "{md}"
    );
    // No sandbox remains.
    assert_eq!(
        common::files_under(tmp.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn drizzle_bad_at_0003_aborts_on_the_broken_statement_and_changes_nothing() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle-bad");
    let full = tempfile::tempdir().unwrap();
    common::copy_dir(&project.path().join("drizzle"), full.path());
    common::drizzle_journal_upto(&project.path().join("drizzle"), 4);
    let m = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(m.code, 0, "{}", m.stderr);
    std::fs::remove_dir_all(project.path().join("drizzle")).unwrap();
    common::copy_dir(full.path(), &project.path().join("drizzle"));

    let tmp = private_tmp();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    let f = &v["rehearsal"]["failure"];
    assert_eq!(f["migration"], "0004_broken_custom");
    assert_eq!(f["statement"], 3);
    assert_eq!(f["sqlstate"], "42P01");
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("relation \"no_such_table\" does not exist"),
        "{f:#}"
    );
    assert_eq!(v["decision"]["verdict"], "abort");
    let reasons = reason_codes(&v);
    assert_eq!(reasons[0], "abort statement-failed", "{reasons:?}");
    let msg = v["decision"]["reasons"][0]["message"].as_str().unwrap();
    assert!(msg.contains("0004_broken_custom statement 3"), "{msg}");
    // The target is unchanged and no sandbox remains.
    assert_eq!(
        db.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations")
            .as_deref(),
        Some("4")
    );
    assert_eq!(
        db.scalar("SELECT to_regclass('public.audit_log')::text"),
        None
    );
    assert_eq!(
        common::files_under(tmp.path()),
        Vec::<std::path::PathBuf>::new()
    );

    // Text output names it too.
    let out = run(pgship(project.path()).env("TMPDIR", tmp.path()).args([
        "plan",
        &db.url,
        "--sandbox",
        "local",
    ]));
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("FAILED: 0004_broken_custom statement 3"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ABORT"), "{}", out.stdout);
}

const BASE: &str = "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE legacy_notes (id bigint PRIMARY KEY, body text);
INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 100) i;
INSERT INTO legacy_notes SELECT i, 'n' || i FROM generate_series(1, 10) i;
";

#[test]
fn a_dropped_table_aborts_by_default_and_proceeds_when_the_policy_allows_it() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[("001_base.sql", BASE)]);
    assert_eq!(
        run(pgship(project.path()).args(["migrate", &db.url])).code,
        0
    );
    std::fs::write(
        project.path().join("migrations/002_drop_legacy.sql"),
        "DROP TABLE legacy_notes;\n",
    )
    .unwrap();
    let tmp = private_tmp();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        reason_codes(&v).contains(&"abort breaking:table-removed".to_string()),
        "{:?}",
        reason_codes(&v)
    );
    assert_eq!(
        v["rehearsal"]["rollback"]["proven"], true,
        "{:#}",
        v["rehearsal"]["rollback"]
    );

    std::fs::write(
        project.path().join("pgship.toml"),
        "[policy.breaking]\ntable-removed = \"allow\"\n",
    )
    .unwrap();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 0, "{stderr}\n{:?}", reason_codes(&v));
    assert_eq!(
        db.scalar("SELECT count(*) FROM legacy_notes").as_deref(),
        Some("10")
    );
}

fn statement<'a>(v: &'a Value, migration: &str) -> &'a Value {
    v["rehearsal"]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["migration"] == migration)
        .unwrap_or_else(|| panic!("{migration} not rehearsed: {v:#}"))
}

fn has_lock(s: &Value, mode: &str, rel: &str) -> bool {
    s["locks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["mode"] == mode && l["relation"] == rel)
}

#[test]
fn measured_locks_and_rewrites_on_real_data() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[(
        "001_base.sql",
        "CREATE TABLE t (id integer NOT NULL, v varchar(10));
         INSERT INTO t SELECT i, left(md5(i::text), 10) FROM generate_series(1, 300000) i;
         CREATE TABLE small (id integer, v text);
         INSERT INTO small VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )]);
    assert_eq!(
        run(pgship(project.path()).args(["migrate", &db.url])).code,
        0
    );
    let m = project.path().join("migrations");
    for (f, sql) in [
        (
            "002_add_column.sql",
            "ALTER TABLE t ADD COLUMN c integer;\n",
        ),
        ("003_index.sql", "CREATE INDEX t_v_idx ON t (v);\n"),
        (
            "004_index_concurrently.sql",
            "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n",
        ),
        (
            "005_bigint.sql",
            "ALTER TABLE t ALTER COLUMN id TYPE bigint;\n",
        ),
        (
            "006_wider_varchar.sql",
            "ALTER TABLE t ALTER COLUMN v TYPE varchar(20);\n",
        ),
        (
            "007_small_index.sql",
            "CREATE INDEX small_v_idx ON small (v);\n",
        ),
    ] {
        std::fs::write(m.join(f), sql).unwrap();
    }
    let tmp = private_tmp();
    let (_code, v, stderr) = plan_json(
        project.path(),
        &db.url,
        tmp.path(),
        &["--tx-mode", "per-migration"],
    );
    assert!(v["rehearsal"]["failure"].is_null(), "{stderr}\n{v:#}");
    let add = statement(&v, "002_add_column");
    assert!(has_lock(add, "ACCESS EXCLUSIVE", "public.t"), "{add:#}");
    let idx = statement(&v, "003_index");
    assert!(has_lock(idx, "SHARE", "public.t"), "{idx:#}");
    assert!(!has_lock(idx, "ACCESS EXCLUSIVE", "public.t"), "{idx:#}");
    let cic = statement(&v, "004_index_concurrently");
    assert_eq!(cic["alone"], true);
    assert!(
        has_lock(cic, "SHARE UPDATE EXCLUSIVE", "public.t"),
        "{cic:#}"
    );
    assert!(!has_lock(cic, "SHARE", "public.t"), "{cic:#}");
    let big = statement(&v, "005_bigint");
    assert_eq!(big["rewritten"], serde_json::json!(["public.t"]), "{big:#}");
    let wide = statement(&v, "006_wider_varchar");
    assert_eq!(wide["rewritten"], serde_json::json!([]), "{wide:#}");
    assert!(has_lock(wide, "ACCESS EXCLUSIVE", "public.t"), "{wide:#}");
    for s in [add, idx, big] {
        let l = s["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "public.t")
            .unwrap();
        assert_eq!(l["table_rows"], 300000);
        assert!(l["held_ms"].as_f64().unwrap() >= s["duration_ms"].as_f64().unwrap());
    }
    // LK01 on the three-row table is downgraded; on the big one it stays an error.
    let lk01: Vec<&Value> = v["lint"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "LK01")
        .collect();
    let small = lk01
        .iter()
        .find(|f| f["file"].as_str().unwrap().contains("007"))
        .unwrap();
    // The catalog's estimate already made it a warning; the measured 3 rows make it info.
    assert_eq!(small["severity"], "info", "{small:#}");
    assert_eq!(small["original_severity"], "warning", "{small:#}");
    assert_eq!(small["adjusted"], "downgraded");
    assert!(
        small["measured"]
            .as_str()
            .unwrap()
            .contains("public.small (3 rows)")
    );
    let big_idx = lk01
        .iter()
        .find(|f| f["file"].as_str().unwrap().contains("003"))
        .unwrap();
    assert_eq!(big_idx["severity"], "error", "{big_idx:#}");

    // A tight lock budget raises the rewrite's finding and aborts with the measured lock.
    std::fs::write(
        project.path().join("pgship.toml"),
        "[policy]\nmax_exclusive_lock_ms = 5\n",
    )
    .unwrap();
    let (code, v, _) = plan_json(
        project.path(),
        &db.url,
        tmp.path(),
        &["--tx-mode", "per-migration"],
    );
    assert_eq!(code, 1);
    let reasons = reason_codes(&v);
    assert!(
        reasons.contains(&"abort long-exclusive-lock".to_string()),
        "{reasons:?}"
    );
    let msg = v["decision"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "long-exclusive-lock")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("public.t (300000 rows)"), "{msg}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pgship.applied_migrations")
            .as_deref(),
        Some("1")
    );
}

#[test]
fn a_failing_check_and_failing_tests_each_abort_with_the_reason() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[("001_base.sql", BASE)]);
    assert_eq!(
        run(pgship(project.path()).args(["migrate", &db.url])).code,
        0
    );
    std::fs::write(
        project.path().join("migrations/002_flag.sql"),
        "ALTER TABLE customers ADD COLUMN vip boolean NOT NULL DEFAULT false;\nUPDATE customers SET vip = true WHERE id <= 3;\n",
    )
    .unwrap();
    let checks = project.path().join("pgship/checks");
    std::fs::create_dir_all(&checks).unwrap();
    std::fs::write(
        checks.join("names_present.sql"),
        "SELECT id FROM customers WHERE name = '';\n",
    )
    .unwrap();
    let tmp = private_tmp();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 0, "{stderr}\n{:?}", reason_codes(&v));
    assert_eq!(v["rehearsal"]["checks"][0]["passed"], true);

    std::fs::write(
        checks.join("too_many_vips.sql"),
        "SELECT id, name FROM customers WHERE vip ORDER BY id;\n",
    )
    .unwrap();
    let (code, v, _) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 1);
    assert!(reason_codes(&v).contains(&"abort check-failed".to_string()));
    let c = v["rehearsal"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"].as_str().unwrap().ends_with("too_many_vips.sql"))
        .unwrap();
    assert_eq!(c["row_count"], 3);
    assert_eq!(c["rows"][0], serde_json::json!(["1", "c1"]));
    let text = run(pgship(project.path()).env("TMPDIR", tmp.path()).args([
        "plan",
        &db.url,
        "--sandbox",
        "local",
    ]));
    assert_eq!(text.code, 1);
    assert!(
        text.stdout
            .contains("too_many_vips.sql: FAILED, returned 3 row(s)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("1 | c1"), "{}", text.stdout);
    std::fs::remove_file(checks.join("too_many_vips.sql")).unwrap();

    // The tests see the sandbox, not the target.
    let seen = project.path().join("seen-db.txt");
    let cmd = format!(
        "psql \"$DATABASE_URL\" -Atc 'SELECT inet_server_port(), count(*) FILTER (WHERE vip) FROM customers' > {} && exit 3",
        seen.display()
    );
    let (code, v, _) = plan_json(project.path(), &db.url, tmp.path(), &["--test-cmd", &cmd]);
    assert_eq!(code, 1);
    assert!(
        reason_codes(&v).contains(&"abort test-failed".to_string()),
        "{:?}",
        reason_codes(&v)
    );
    assert_eq!(
        v["rehearsal"]["tests"]["exit_code"], 3,
        "{:#}",
        v["rehearsal"]["tests"]
    );
    let seen = std::fs::read_to_string(&seen).unwrap();
    // The local sandbox is a cluster of its own, on another port.
    let (port, vips) = seen.trim().split_once('|').unwrap();
    assert_ne!(port, "5432", "the tests ran against the target's server");
    assert_eq!(vips, "3", "the tests saw the migrated sandbox");
    let ok = plan_json(
        project.path(),
        &db.url,
        tmp.path(),
        &[
            "--test-cmd",
            "psql \"$DATABASE_URL\" -c 'SELECT vip FROM customers LIMIT 1'",
        ],
    );
    assert_eq!(ok.0, 0, "{}", ok.2);
    assert_eq!(db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'vip'").as_deref(), Some("0"));
    assert_eq!(
        common::files_under(tmp.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn nothing_pending_says_so_and_exits_0() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[("001_base.sql", BASE)]);
    assert_eq!(
        run(pgship(project.path()).args(["migrate", &db.url])).code,
        0
    );
    let tmp = private_tmp();
    let (code, v, _) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 0);
    assert!(v["git"].is_null(), "not a repository");
    // In a repository, PREFLIGHT records the branch, the commit and uncommitted changes.
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .current_dir(project.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q", "-b", "feature/orders"]);
    std::fs::write(project.path().join(".gitignore"), ".deployments/\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    let (_, v, _) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(v["git"]["branch"], "feature/orders");
    assert_eq!(v["git"]["clean"], true);
    std::fs::write(project.path().join("notes.txt"), "wip\n").unwrap();
    let (_, v, _) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(v["git"]["clean"], false);
    assert_eq!(v["pending"], serde_json::json!([]));
    assert!(v["sandbox"].is_null());
    assert_eq!(v["decision"]["verdict"], "proceed");
}

#[test]
fn rows_lost_through_a_cascade_and_rows_a_not_valid_foreign_key_rejects_are_reported() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[(
        "001_base.sql",
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE CASCADE, placed_by bigint);
         INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 100) i;
         INSERT INTO orders SELECT i, 1 + i % 100, CASE WHEN i % 10 = 0 THEN 999 ELSE 1 + i % 100 END FROM generate_series(1, 1000) i;",
    )]);
    assert_eq!(
        run(pgship(project.path()).args(["migrate", &db.url])).code,
        0
    );
    let m = project.path().join("migrations");
    // An FK that existing rows break, added NOT VALID: it applies, and the rehearsal counts them.
    std::fs::write(
        m.join("002_placed_by_fk.sql"),
        "ALTER TABLE orders ADD CONSTRAINT orders_placed_by_fk FOREIGN KEY (placed_by) REFERENCES customers (id) NOT VALID;\n",
    )
    .unwrap();
    let tmp = private_tmp();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 0, "{stderr}\n{:?}", reason_codes(&v));
    let viol = &v["rehearsal"]["violations"];
    assert_eq!(
        viol[0]["constraint"], "public.orders.orders_placed_by_fk",
        "{viol:#}"
    );
    assert_eq!(viol[0]["rows"], 100);
    assert_eq!(viol[0]["not_valid"], true);
    assert!(reason_codes(&v).contains(&"warn violations".to_string()));

    // Deleting customers cascades into orders: orders lose rows no statement deletes from.
    std::fs::write(
        m.join("003_prune_customers.sql"),
        "DELETE FROM customers WHERE id > 90;\n",
    )
    .unwrap();
    let (code, v, _) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        reason_codes(&v).contains(&"abort rows-lost".to_string()),
        "{:?}",
        reason_codes(&v)
    );
    let counts = v["rehearsal"]["row_counts"].as_array().unwrap();
    let orders = counts
        .iter()
        .find(|c| c["table"] == "public.orders")
        .unwrap();
    assert_eq!(orders["unexplained_loss"], true, "{orders:#}");
    let customers = counts
        .iter()
        .find(|c| c["table"] == "public.customers")
        .unwrap();
    assert_eq!(customers["after"], 90);
    assert_eq!(
        customers["unexplained_loss"], false,
        "its DELETE explains it"
    );
    // The rollback put the deleted rows back before re-applying.
    assert_eq!(v["rehearsal"]["rollback"]["proven"], true);
    assert_eq!(
        db.scalar("SELECT count(*) FROM orders").as_deref(),
        Some("1000")
    );
}

#[test]
fn a_postgres_18_target_is_rehearsed_with_postgres_18_tools() {
    let Some(bin) = common::pg18_bin() else {
        return;
    };
    let b = pgship::db::tools::at(&bin, "postgres").unwrap();
    let cluster = pgship::cluster::LocalCluster::start(&pgship::cluster::ClusterOptions {
        bin: Some(b),
        ..Default::default()
    })
    .unwrap();
    let Some(db) = TestDb::on(&cluster.url("postgres").expose()) else {
        return;
    };
    let project = sql_project(&[("001_base.sql", BASE)]);
    assert_eq!(
        run(pgship(project.path()).args(["migrate", &db.url])).code,
        0
    );
    std::fs::write(
        project.path().join("migrations/002_rename.sql"),
        "ALTER TABLE customers RENAME COLUMN name TO full_name;\nALTER TABLE customers ALTER COLUMN id TYPE numeric(20);\n",
    )
    .unwrap();
    let tmp = private_tmp();
    // Without tools of major 18 the plan says which are missing, and makes nothing.
    let mut cmd = pgship(project.path());
    cmd.env("TMPDIR", tmp.path())
        .env("PATH", "/usr/bin:/bin")
        .args(["plan", &db.url, "--sandbox", "local"]);
    let out = run(&mut cmd);
    if out.code != 0 {
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("major version 18 or newer"),
            "{}",
            out.stderr
        );
    }
    let mut cmd = pgship(project.path());
    cmd.env("TMPDIR", tmp.path())
        .env("PGSHIP_PG_BIN", &bin)
        .args(["plan", &db.url, "--sandbox", "local", "--format", "json"]);
    let out = run(&mut cmd);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.stderr));
    assert!(
        v["server_version"].as_str().unwrap().starts_with("18"),
        "{v:#}"
    );
    let big = statement(&v, "002_rename");
    assert!(
        has_lock(big, "ACCESS EXCLUSIVE", "public.customers"),
        "{big:#}"
    );
    let rb = &v["rehearsal"]["rollback"];
    assert_eq!(rb["proven"], true, "{rb:#}");
    assert_eq!(rb["reapplied_same_schema"], true, "{rb:#}");
    assert_eq!(out.code, 0, "{}\n{:?}", out.stderr, reason_codes(&v));
    assert_eq!(
        common::files_under(tmp.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// A Drizzle project whose folder holds `migrations` (tag, SQL), one journal entry each.
fn drizzle_project(migrations: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("drizzle");
    std::fs::create_dir_all(out.join("meta")).unwrap();
    std::fs::write(
        dir.path().join("drizzle.config.ts"),
        "import { defineConfig } from \"drizzle-kit\";\n\
         export default defineConfig({ dialect: \"postgresql\", schema: \"./src/schema.ts\", out: \"./drizzle\" });\n",
    )
    .unwrap();
    let mut entries = Vec::new();
    for (i, (tag, sql)) in migrations.iter().enumerate() {
        std::fs::write(out.join(format!("{tag}.sql")), sql).unwrap();
        entries.push(serde_json::json!({
            "idx": i, "version": "7", "when": 1_795_484_177_772_u64 + i as u64,
            "tag": tag, "breakpoints": true
        }));
    }
    let journal = serde_json::json!({"version": "7", "dialect": "postgresql", "entries": entries});
    std::fs::write(
        out.join("meta/_journal.json"),
        serde_json::to_string_pretty(&journal).unwrap(),
    )
    .unwrap();
    dir
}

/// The rehearsed statement whose SQL contains `needle`.
fn statement_with<'a>(v: &'a Value, needle: &str) -> &'a Value {
    v["rehearsal"]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sql"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no statement with {needle}: {v:#}"))
}

/// What the plan decided about `rule`'s finding and overall: (severity, adjusted, verdict,
/// reason codes without repeats).
fn outcome(v: &Value, rule: &str) -> (String, String, String, Vec<String>) {
    let f = v["lint"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule}: {:#}", v["lint"]));
    let mut reasons = reason_codes(v);
    reasons.sort();
    reasons.dedup();
    (
        f["severity"].as_str().unwrap().to_string(),
        f["adjusted"].as_str().unwrap_or("").to_string(),
        v["decision"]["verdict"].as_str().unwrap().to_string(),
        reasons,
    )
}

const ADD_COLUMN: &str = "ALTER TABLE t ADD COLUMN c integer DEFAULT 0;\n";
const SET_NOT_NULL: &str = "ALTER TABLE t ALTER COLUMN c SET NOT NULL;\n";

#[test]
fn set_not_null_after_add_column_is_decided_the_same_however_the_statements_are_split() {
    let Some(db) = TestDb::new() else { return };
    db.query(
        "CREATE TABLE t (id integer PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 300) i;",
    );
    let both = format!("{ADD_COLUMN}{SET_NOT_NULL}");
    // (what, project, --tx-mode, whether SET NOT NULL shares ADD COLUMN's transaction)
    let shapes = [
        (
            "one file",
            sql_project(&[("002_not_null.sql", &both)]),
            "all",
            true,
        ),
        (
            "two migrations in one transaction",
            sql_project(&[
                ("002_add.sql", ADD_COLUMN),
                ("003_not_null.sql", SET_NOT_NULL),
            ]),
            "all",
            true,
        ),
        (
            "two migrations in two transactions",
            sql_project(&[
                ("002_add.sql", ADD_COLUMN),
                ("003_not_null.sql", SET_NOT_NULL),
            ]),
            "per-migration",
            false,
        ),
        (
            "one Drizzle chunk",
            drizzle_project(&[("0000_not_null", &both)]),
            "all",
            false,
        ),
    ];
    let tmp = private_tmp();
    // By default LK06 on a 300-row table is downgraded; with no lock budget it is raised.
    for (policy, expected) in [
        ("", ("info", "downgraded", "proceed", Vec::<String>::new())),
        (
            "[policy]\nmax_exclusive_lock_ms = 0\n",
            (
                "error",
                "raised",
                "abort",
                vec![
                    "abort lint-error".to_string(),
                    "abort long-exclusive-lock".to_string(),
                ],
            ),
        ),
    ] {
        for (what, project, tx_mode, shared) in &shapes {
            std::fs::write(project.path().join("pgship.toml"), policy).unwrap();
            let (_, v, stderr) =
                plan_json(project.path(), &db.url, tmp.path(), &["--tx-mode", tx_mode]);
            assert!(
                v["rehearsal"]["failure"].is_null(),
                "{what}: {stderr}\n{v:#}"
            );
            let s = statement_with(&v, "SET NOT NULL");
            let lock = s["locks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["mode"] == "ACCESS EXCLUSIVE" && l["relation"] == "public.t")
                .unwrap_or_else(|| panic!("{what}: SET NOT NULL has no lock: {s:#}"));
            assert_eq!(lock["table_rows"], 300, "{what}: {lock:#}");
            assert!(lock["held_ms"].as_f64().unwrap() > 0.0, "{what}: {lock:#}");
            if *shared {
                // pg_locks showed nothing new: the lock ADD COLUMN took is attributed.
                assert_eq!(lock["held_before"], true, "{what}: {lock:#}");
                let add = statement_with(&v, "ADD COLUMN");
                assert_eq!(lock["held_since"]["migration"], add["migration"], "{what}");
                assert_eq!(lock["held_since"]["statement"], add["statement"], "{what}");
                let add_lock = &add["locks"][0];
                assert_eq!(lock["held_ms"], add_lock["held_ms"], "{what}: {v:#}");
            } else {
                assert!(lock["held_before"].is_null(), "{what}: {lock:#}");
            }
            let (sev, adjusted, verdict, reasons) = outcome(&v, "LK06");
            assert_eq!(
                (sev.as_str(), adjusted.as_str(), verdict.as_str(), reasons),
                (expected.0, expected.1, expected.2, expected.3.clone()),
                "{what} with policy {policy:?}"
            );
        }
    }
}

#[test]
fn a_table_renamed_earlier_in_the_transaction_keeps_its_measured_locks() {
    let Some(db) = TestDb::new() else { return };
    db.query(
        "CREATE TABLE orders (id integer PRIMARY KEY, v text);
         INSERT INTO orders SELECT i, 'v' || i FROM generate_series(1, 300) i;",
    );
    let project = sql_project(&[(
        "001_purchases.sql",
        "ALTER TABLE orders RENAME TO purchases;\n\
         CREATE INDEX purchases_v_idx ON purchases (v);\n\
         ALTER TABLE purchases ALTER COLUMN v SET NOT NULL;\n",
    )]);
    let tmp = private_tmp();
    let (_, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert!(v["rehearsal"]["failure"].is_null(), "{stderr}\n{v:#}");
    // The index takes SHARE, new in pg_locks, on the table now called purchases: it is the
    // table that was orders, with its rows.
    let idx = statement_with(&v, "CREATE INDEX");
    assert!(has_lock(idx, "SHARE", "public.orders"), "{idx:#}");
    let share = idx["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mode"] == "SHARE")
        .unwrap();
    assert_eq!(share["named"], "public.purchases", "{share:#}");
    assert_eq!(share["table_rows"], 300, "{share:#}");
    // SET NOT NULL asks for the ACCESS EXCLUSIVE the rename took.
    let nn = statement_with(&v, "SET NOT NULL");
    let ae = nn["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mode"] == "ACCESS EXCLUSIVE")
        .unwrap_or_else(|| panic!("{nn:#}"));
    assert_eq!(ae["relation"], "public.orders", "{ae:#}");
    assert_eq!(ae["named"], "public.purchases", "{ae:#}");
    assert_eq!(ae["held_since"]["statement"], 1, "{ae:#}");
    // The findings on both statements meet the measurements: a 300-row table.
    for rule in ["LK01", "LK06"] {
        let f = v["lint"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule}: {:#}", v["lint"]));
        assert_eq!(f["adjusted"], "downgraded", "{f:#}");
        assert!(
            f["measured"]
                .as_str()
                .unwrap()
                .contains("public.orders (300 rows)"),
            "{f:#}"
        );
    }
}

/// A Drizzle folder in `dir`: `files` as its migrations, in order, and the journal listing them.
fn drizzle_folder(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    let entries: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, (tag, sql))| {
            std::fs::write(dir.join(format!("{tag}.sql")), sql).unwrap();
            serde_json::json!({"idx": i, "version": "7", "when": 1_700_000_000_000u64 + i as u64 * 1000,
                               "tag": tag, "breakpoints": true})
        })
        .collect();
    let journal = serde_json::json!({"version": "7", "dialect": "postgresql", "entries": entries});
    std::fs::write(
        dir.join("meta/_journal.json"),
        serde_json::to_string_pretty(&journal).unwrap(),
    )
    .unwrap();
}

/// What drizzle-kit writes for two tables with a serial key, a unique email, a foreign key and
/// an index.
const DRIZZLE_INIT: &str = r#"CREATE TABLE "customer" (
	"id" serial PRIMARY KEY NOT NULL,
	"full_name" text NOT NULL,
	"email" varchar(255) NOT NULL,
	CONSTRAINT "customer_email_unique" UNIQUE("email")
);
--> statement-breakpoint
CREATE TABLE "invoice" (
	"id" serial PRIMARY KEY NOT NULL,
	"customer_id" integer NOT NULL,
	"amount_cents" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "invoice" ADD CONSTRAINT "invoice_customer_id_customer_id_fk" FOREIGN KEY ("customer_id") REFERENCES "public"."customer"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "invoice_customer_idx" ON "invoice" USING btree ("customer_id");"#;

/// drizzle-kit's answer to a table rename and a column rename (its prompts), with a column
/// added to the renamed table.
const DRIZZLE_RENAME: &str = r#"ALTER TABLE "customer" RENAME TO "client";--> statement-breakpoint
ALTER TABLE "client" RENAME COLUMN "full_name" TO "display_name";--> statement-breakpoint
ALTER TABLE "client" ADD COLUMN "phone" text;"#;

#[test]
fn drizzle_renames_of_a_populated_table_proceed_with_warnings_and_its_rows_are_followed() {
    let Some(db) = TestDb::new() else { return };
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("drizzle");
    drizzle_folder(&dir, &[("0000_init", DRIZZLE_INIT)]);
    let m = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(m.code, 0, "{}", m.stderr);
    db.query(
        "INSERT INTO customer (full_name, email) SELECT 'c' || i, 'c' || i || '@x.test' FROM generate_series(1, 30) i;
         INSERT INTO invoice (customer_id, amount_cents) SELECT 1 + i % 30, i FROM generate_series(1, 100) i;",
    );
    drizzle_folder(
        &dir,
        &[("0000_init", DRIZZLE_INIT), ("0001_rename", DRIZZLE_RENAME)],
    );
    let tmp = private_tmp();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 0, "{stderr}\n{:?}", reason_codes(&v));
    assert_eq!(v["decision"]["verdict"], "proceed-with-warnings");
    let r = &v["rehearsal"];
    let lines: Vec<&str> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_str().unwrap())
        .collect();
    // The renames, the new column, and nothing that only follows the rename (the foreign key
    // pointing at the table, its index, its serial sequence's owner).
    assert_eq!(
        lines,
        [
            "table-renamed public.customer -> public.client",
            "column-renamed public.client.full_name -> display_name",
            "column-added public.client.phone text",
        ],
        "{:#}",
        r["differences"]
    );
    let renamed = &r["differences"][0];
    assert_eq!(renamed["kind"], "table-renamed");
    assert_eq!(renamed["object"], "public.client");
    assert_eq!(renamed["breaking"], true);
    assert_eq!(renamed["policy"], "warn");
    let reasons = reason_codes(&v);
    assert_eq!(
        reasons,
        [
            "warn breaking:table-renamed",
            "warn breaking:column-renamed"
        ],
        "the lint's BI01 and BI02 are decided by the rename policies, once"
    );
    // The rows are counted under the new name against the old one's.
    let counts = r["row_counts"].as_array().unwrap();
    let client = counts
        .iter()
        .find(|c| c["table"] == "public.client")
        .unwrap_or_else(|| panic!("{counts:#?}"));
    assert_eq!(client["renamed_from"], "public.customer");
    assert_eq!(
        (&client["before"], &client["after"]),
        (&30.into(), &30.into())
    );
    assert_eq!(client["unexplained_loss"], false);
    assert!(
        !counts.iter().any(|c| c["table"] == "public.customer"),
        "{counts:#?}"
    );
    assert_eq!(r["rollback"]["proven"], true, "{:#}", r["rollback"]);
    assert_eq!(r["rollback"]["reapplied_same_schema"], true);
    // The target was only read.
    assert_eq!(
        db.scalar("SELECT count(*) FROM customer").as_deref(),
        Some("30")
    );

    // Their own policy keys decide them.
    std::fs::write(
        project.path().join("pgship.toml"),
        "[policy.breaking]\ntable-renamed = \"abort\"\ncolumn-renamed = \"allow\"\n",
    )
    .unwrap();
    let (code, v, stderr) = plan_json(project.path(), &db.url, tmp.path(), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(reason_codes(&v), ["abort breaking:table-renamed"]);
    assert_eq!(
        common::files_under(tmp.path()),
        Vec::<std::path::PathBuf>::new()
    );
}
