//! `pgship lint` as a user runs it: the Drizzle fixture, syntax errors mid-file, ignore
//! comments, the output formats and exit codes, `--pending` and `--database` against a real
//! PostgreSQL.

mod common;

use common::*;
use serde_json::Value;

fn lint_json(project: &std::path::Path, args: &[&str]) -> (i32, Value) {
    let out = run(pgship(project)
        .args(["lint", "--format", "json"])
        .args(args));
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, v)
}

fn findings_of<'a>(v: &'a Value, file_part: &str) -> Vec<(&'a str, &'a str)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["file"].as_str().unwrap().contains(file_part))
        .map(|f| (f["rule"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect()
}

#[test]
fn the_drizzle_fixture_gives_dl02_bi01_and_nothing_at_error_for_init() {
    let project = project_with("drizzle-app/drizzle");
    // As files (each on its own), and as the project's source (pgship's engine).
    for args in [&["drizzle"][..], &[][..]] {
        let (code, v) = lint_json(project.path(), args);
        assert_eq!(v["files"], 4, "{v}");
        let drop = findings_of(&v, "0003_drop_order_total");
        assert!(drop.contains(&("DL02", "error")), "{drop:?}");
        let rename = findings_of(&v, "0002_rename_full_name");
        assert!(rename.iter().any(|(r, _)| *r == "BI01"), "{rename:?}");
        let init = findings_of(&v, "0000_init");
        assert!(
            !init.iter().any(|(_, s)| *s == "error"),
            "0000_init has error findings: {init:?}"
        );
        assert_eq!(code, 1, "DL02 is an error");
        let f = &v["findings"].as_array().unwrap()[0];
        for key in [
            "rule",
            "name",
            "severity",
            "file",
            "line",
            "column",
            "statement",
            "message",
            "help",
        ] {
            assert!(f.get(key).is_some(), "finding without {key}: {f}");
        }
    }
}

#[test]
fn a_file_that_does_not_parse_in_its_third_statement_is_linted_around_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "CREATE INDEX a ON orders (x);\nALTER TABLE orders DROP COLUMN note;\nALTER TABLE orders ADD COLUMN;\nALTER TABLE users RENAME COLUMN a TO b;\n",
    )
    .unwrap();
    let (code, v) = lint_json(dir.path(), &["m.sql"]);
    assert_eq!(code, 1);
    assert_eq!(v["statements"], 4);
    let got: Vec<(String, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [("LK01", 1), ("DL02", 2), ("RB10", 3), ("BI01", 4)] {
        assert!(
            got.contains(&(want.0.to_string(), want.1)),
            "missing {want:?} in {got:?}"
        );
    }
}

#[test]
fn ignore_comments_silence_and_unused_ones_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "-- pgship:ignore-file DL02 the column is unused since v3\n\
         ALTER TABLE orders DROP COLUMN note;\n\
         -- pgship:ignore LK01 orders has 12 rows\n\
         CREATE INDEX a ON orders (x);\n\
         -- pgship:ignore LK02 nothing to silence here\n\
         CREATE INDEX b ON orders (y);\n",
    )
    .unwrap();
    let (_, v) = lint_json(dir.path(), &["m.sql"]);
    let got: Vec<(&str, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap(), f["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, vec![("IGNORE", 5), ("LK01", 6)], "{v}");
}

#[test]
fn formats_switches_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "CREATE INDEX a ON orders (x);\nALTER TABLE users RENAME COLUMN a TO b;\n",
    )
    .unwrap();
    // Text: file:line:col, rule, the statement with a marker, help.
    let out = run(pgship(dir.path()).args(["lint", "m.sql"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("m.sql:1:1: error LK01 create-index-not-concurrently:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  1 | CREATE INDEX a ON orders (x)\n    | ^^^^"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  help: "), "{}", out.stdout);
    // Disabling the error leaves a warning: exit 0 unless --fail-on warning.
    let out = run(pgship(dir.path()).args(["lint", "m.sql", "--disable", "LK01"]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = run(pgship(dir.path()).args([
        "lint",
        "m.sql",
        "--disable",
        "LK01",
        "--fail-on",
        "warning",
    ]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    // The same switches in pgship.toml.
    std::fs::write(
        dir.path().join("pgship.toml"),
        "[lint]\ndisable = [\"create-index-not-concurrently\"]\n",
    )
    .unwrap();
    assert_eq!(run(pgship(dir.path()).args(["lint", "m.sql"])).code, 0);
    std::fs::remove_file(dir.path().join("pgship.toml")).unwrap();
    // Unknown rules and paths are usage errors.
    let out = run(pgship(dir.path()).args(["lint", "m.sql", "--enable", "LK99"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("LK99"), "{}", out.stderr);
    let out = run(pgship(dir.path()).args(["lint", "nope.sql"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("nope.sql"), "{}", out.stderr);
    // SARIF 2.1.0.
    let out = run(pgship(dir.path()).args(["lint", "m.sql", "--format", "sarif"]));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results[0]["ruleId"], "LK01");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    assert_eq!(v["runs"][0]["tool"]["driver"]["rules"][0]["id"], "BI01");
    // GitHub annotations.
    let out = run(pgship(dir.path()).args(["lint", "m.sql", "--format", "github"]));
    assert!(
        out.stdout.starts_with(
            "::error file=m.sql,line=1,col=1,title=LK01 create-index-not-concurrently::"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("\n::warning file=m.sql,line=2,col=1,title=BI01 rename-column::"),
        "{}",
        out.stdout
    );
    // --list.
    let out = run(pgship(dir.path()).args(["lint", "--list"]));
    assert_eq!(out.stdout.lines().count(), 61);
}

#[test]
fn pending_and_database_modes_use_the_target() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        (
            "001_init.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY, note text);\n",
        ),
        (
            "002_index.sql",
            "CREATE INDEX orders_note_idx ON orders (note);\n",
        ),
    ]);
    std::fs::write(
        project.path().join(".env"),
        format!("DEV_POSTGRES_URL={}\n", db.url),
    )
    .unwrap();
    // Apply only the first migration.
    std::fs::rename(
        project.path().join("migrations/002_index.sql"),
        project.path().join("002_index.sql.later"),
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["migrate", "dev"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::rename(
        project.path().join("002_index.sql.later"),
        project.path().join("migrations/002_index.sql"),
    )
    .unwrap();
    // Only 002 is pending, and orders exists (created by an applied migration): LK01.
    let (code, v) = lint_json(project.path(), &["--pending", "dev"]);
    assert_eq!(v["files"], 1, "{v}");
    assert_eq!(findings_of(&v, "002_index"), vec![("LK01", "error")]);
    assert_eq!(code, 1);
    // With the catalog, the empty orders table is small: the finding drops to a warning.
    let (code, v) = lint_json(project.path(), &["--pending", "dev", "--database", "dev"]);
    assert_eq!(
        findings_of(&v, "002_index"),
        vec![("LK01", "warning")],
        "{v}"
    );
    assert_eq!(code, 0);
    // Without --pending each migration is linted as if the earlier ones were applied: orders
    // is an existing table for 002.
    let (_, v) = lint_json(project.path(), &[]);
    assert_eq!(v["files"], 2);
    assert_eq!(findings_of(&v, "002_index"), vec![("LK01", "error")], "{v}");
    // With --pending on a database where nothing is applied, both run in one transaction:
    // the index on the table created in the same run is exempt.
    let Some(empty) = TestDb::new() else { return };
    std::fs::write(
        project.path().join(".env"),
        format!(
            "DEV_POSTGRES_URL={}\nUAT_POSTGRES_URL={}\n",
            db.url, empty.url
        ),
    )
    .unwrap();
    let (_, v) = lint_json(project.path(), &["--pending", "uat"]);
    assert_eq!(v["files"], 2);
    assert!(findings_of(&v, "002_index").is_empty(), "{v}");
}

/// Write a drizzle-kit folder at `dir`: `meta/_journal.json` listing `entries` (tag, SQL) in
/// the order given, and each `<tag>.sql`.
fn drizzle_folder(dir: &std::path::Path, entries: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    let listed: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, (tag, sql))| {
            std::fs::write(dir.join(format!("{tag}.sql")), sql).unwrap();
            serde_json::json!({"idx": i, "version": "7", "when": 1795484177772_i64 + i as i64,
                "tag": tag, "breakpoints": true})
        })
        .collect();
    let journal = serde_json::json!({"version": "7", "dialect": "postgresql", "entries": listed});
    std::fs::write(
        dir.join("meta/_journal.json"),
        serde_json::to_string_pretty(&journal).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_drizzle_folder_given_as_a_path_is_linted_as_migrations_dir_lints_it() {
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("db/migrations");
    // The journal's order is not the files' name order.
    drizzle_folder(
        &dir,
        &[
            (
                "0001_orders_region",
                "ALTER TABLE \"orders\" ADD COLUMN \"region\" text;--> statement-breakpoint\n\
                 UPDATE \"orders\" SET \"region\" = 'eu';",
            ),
            (
                "0000_orders_index",
                "CREATE INDEX \"orders_created_idx\" ON \"orders\" USING btree (\"created_at\");",
            ),
        ],
    );
    // A file the journal does not list: drizzle never runs it.
    std::fs::write(dir.join("0002_stray.sql"), "DROP TABLE \"users\";").unwrap();

    let (code, by_path) = lint_json(project.path(), &["db/migrations"]);
    let (code_m, by_flag) = lint_json(project.path(), &["--migrations", "db/migrations"]);
    assert_eq!(by_path, by_flag);
    assert_eq!(code, code_m);
    assert_eq!(code, 1);
    assert_eq!(by_path["files"], 2, "{by_path}");
    let files: Vec<&str> = by_path["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(!files.iter().any(|f| f.contains("stray")), "{files:?}");
    // In the journal's order.
    let first = |part: &str| files.iter().position(|f| f.contains(part));
    assert!(
        first("0001_orders_region") < first("0000_orders_index"),
        "{files:?}"
    );
    // The backfill runs in the transaction that took the ALTER's lock: only the engine's
    // transaction shows it.
    assert!(
        findings_of(&by_path, "0001_orders_region").contains(&("LK22", "error")),
        "{by_path}"
    );
    assert_eq!(
        findings_of(&by_path, "0000_orders_index"),
        vec![("LK01", "error")]
    );
    // The project folder holding it: the same migrations, nothing else.
    let (code_root, root) = lint_json(project.path(), &["."]);
    assert_eq!((code_root, &root["findings"]), (code, &by_path["findings"]));
    // Loose files are still loose files, each on its own.
    let (_, one) = lint_json(project.path(), &["db/migrations/0001_orders_region.sql"]);
    assert!(
        !findings_of(&one, "0001_orders_region")
            .iter()
            .any(|(r, _)| *r == "LK22"),
        "{one}"
    );
}

#[test]
fn a_sql_migrations_folder_given_as_a_path_is_linted_as_migrations_dir_lints_it() {
    let project = sql_project(&[
        (
            "002_backfill.sql",
            "ALTER TABLE orders ADD COLUMN region text;\nUPDATE orders SET region = 'eu';\n",
        ),
        ("001_index.sql", "CREATE INDEX orders_idx ON orders (id);\n"),
    ]);
    let (code, by_path) = lint_json(project.path(), &["migrations"]);
    let (code_m, by_flag) = lint_json(project.path(), &["--migrations", "migrations"]);
    assert_eq!((code, &by_path), (code_m, &by_flag));
    assert!(
        findings_of(&by_path, "002_backfill").contains(&("LK22", "error")),
        "{by_path}"
    );
    // A folder of .sql files that are not migrations: loose files.
    let loose = tempfile::tempdir().unwrap();
    std::fs::create_dir(loose.path().join("sql")).unwrap();
    std::fs::write(
        loose.path().join("sql/backfill.sql"),
        "ALTER TABLE orders ADD COLUMN region text;\nUPDATE orders SET region = 'eu';\n",
    )
    .unwrap();
    let (_, v) = lint_json(loose.path(), &["sql"]);
    assert_eq!(v["files"], 1);
    assert!(
        findings_of(&v, "backfill")
            .iter()
            .all(|(r, _)| *r != "LK22"),
        "{v}"
    );
}

#[test]
fn drop_cascade_with_the_catalog_is_reported_only_where_something_depends() {
    let Some(db) = TestDb::new() else { return };
    query(
        &db.url,
        "CREATE TABLE users (id serial PRIMARY KEY, parent int REFERENCES users (id), mail text);\
         CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users (id));\
         CREATE VIEW active_users AS SELECT id, mail FROM users;\
         CREATE TABLE sessions (id text PRIMARY KEY, user_id int);\
         CREATE TYPE mood AS ENUM ('ok');\
         CREATE TABLE moods (m mood);\
         CREATE TYPE unused AS ENUM ('x');",
    );
    let dir = tempfile::tempdir().unwrap();
    let drops = [
        ("sessions.sql", "DROP TABLE \"sessions\" CASCADE;"),
        ("users.sql", "DROP TABLE \"users\" CASCADE;"),
        (
            "types.sql",
            "DROP TYPE \"unused\" CASCADE;\nDROP TYPE \"mood\" CASCADE;",
        ),
        (
            "column.sql",
            "ALTER TABLE \"users\" DROP COLUMN \"mail\" CASCADE;",
        ),
    ];
    for (name, sql) in drops {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let dl08 = |args: &[&str]| -> (i32, Vec<(String, u64, String, String)>) {
        let mut all = vec!["--disable", "DL01,DL02"];
        all.extend(args);
        let (code, v) = lint_json(dir.path(), &all);
        let found = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "DL08")
            .map(|f| {
                (
                    f["file"].as_str().unwrap().to_string(),
                    f["line"].as_u64().unwrap(),
                    f["severity"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (code, found)
    };
    // Without the catalog: nothing is known about dependents; table and column drops, which
    // DL01 and DL02 report, are information only.
    let (code, found) = dl08(&["sessions.sql", "column.sql"]);
    assert_eq!(code, 0, "{found:?}");
    assert!(found.iter().all(|f| f.2 == "info"), "{found:?}");
    assert_eq!(found.len(), 2);
    // With it: only what has dependents, which are named.
    let (code, found) = dl08(&["sessions.sql", "--database", &db.url]);
    assert_eq!((code, found.len()), (0, 0), "{found:?}");
    let (code, found) = dl08(&["users.sql", "--database", &db.url]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].3,
        "DROP TABLE users CASCADE also drops what depends on it: constraint \
         orders_user_id_fkey on table orders, view active_users"
    );
    let (_, found) = dl08(&["types.sql", "--database", &db.url]);
    let got: Vec<(u64, &str)> = found.iter().map(|f| (f.1, f.2.as_str())).collect();
    assert_eq!(got, vec![(2, "error")], "{found:?}");
    assert!(found[0].3.ends_with("column m of table moods"), "{found:?}");
    let (_, found) = dl08(&["column.sql", "--database", &db.url]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].3.ends_with("depends on it: view active_users"),
        "{found:?}"
    );
}

#[test]
fn a_table_never_analyzed_is_counted_when_small_and_never_called_empty() {
    let Some(db) = TestDb::new() else { return };
    // Autovacuum off, so neither table is analyzed behind the test's back: reltuples stays -1.
    db.query(
        "CREATE TABLE orders (id int, user_id int) WITH (autovacuum_enabled = false);
         INSERT INTO orders SELECT i, i % 7 FROM generate_series(1, 500) i;
         CREATE TABLE events (id int, kind text, body text) WITH (autovacuum_enabled = false);
         INSERT INTO events SELECT i, 'k' || i % 5, repeat('x', 200) FROM generate_series(1, 60000) i;",
    );
    assert_eq!(
        db.query(
            "SELECT relname, reltuples::int, pg_relation_size(oid) > 8 * 1024 * 1024 FROM pg_class \
             WHERE relname IN ('orders', 'events') ORDER BY 1"
        ),
        vec![
            vec![Some("events".into()), Some("-1".into()), Some("t".into())],
            vec![Some("orders".into()), Some("-1".into()), Some("f".into())],
        ]
    );
    let project = sql_project(&[(
        "001_indexes.sql",
        "CREATE INDEX orders_user_idx ON orders (user_id);\nCREATE INDEX events_kind_idx ON events (kind);\n",
    )]);
    let (_, v) = lint_json(project.path(), &["migrations", "--database", &db.url]);
    let lk01: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["severity"].as_str().unwrap(), f["help"].as_str().unwrap()))
        .collect();
    // The small one is counted exactly; the large one is not called small, nor empty.
    assert_eq!(lk01.len(), 2, "{v:#}");
    assert_eq!(lk01[0].0, "warning");
    assert!(
        lk01[0].1.contains("orders is small (500 rows, "),
        "{}",
        lk01[0].1
    );
    assert_eq!(lk01[1].0, "error");
    assert!(!lk01[1].1.contains("rows"), "{}", lk01[1].1);
    // Only read: the tables are still never analyzed.
    assert_eq!(
        db.scalar("SELECT reltuples::int FROM pg_class WHERE relname = 'orders'")
            .as_deref(),
        Some("-1")
    );
}
