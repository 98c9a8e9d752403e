//! A project whose configuration disagrees with where the target keeps its state, paths named
//! on the command line, and long lists in failures.

mod common;

use common::*;

/// The drizzle fixture applied by pgship with drizzle's default state table.
fn migrated_fixture() -> Option<(TestDb, tempfile::TempDir)> {
    let db = TestDb::new()?;
    let project = project_with("drizzle-app/drizzle");
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    Some((db, project))
}

#[test]
fn a_config_naming_another_state_table_stops_before_applying_and_names_the_right_one() {
    let Some((db, project)) = migrated_fixture() else {
        return;
    };
    std::fs::write(
        project.path().join("drizzle.config.ts"),
        "import { defineConfig } from 'drizzle-kit';\nexport default defineConfig({ dialect: 'postgresql', out: './drizzle', migrations: { table: 'migrations', schema: 'public' } });\n",
    )
    .unwrap();
    let before = db.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations");
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("public.migrations has no rows")
            && out.stderr.contains("drizzle.__drizzle_migrations holds 4")
            && out
                .stderr
                .contains("schema: \"drizzle\", table: \"__drizzle_migrations\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("already exist"), "{}", out.stderr);
    // Nothing was created or applied: not even the configured table.
    assert!(
        db.scalar("SELECT to_regclass('public.migrations')::text")
            .is_none()
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations"),
        before
    );
    // status is read-only but says it.
    let status = run(pgship(project.path()).args(["status", &db.url, "--format", "json"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["state_problems"].as_array().map(Vec::len), Some(2), "{v}");
}

#[test]
fn objects_that_already_exist_stop_the_first_pending_migration() {
    let Some(db) = TestDb::new() else { return };
    db.query("CREATE TABLE users (id int)");
    let project = project_with("drizzle-app/drizzle");
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("0000_") && out.stderr.contains("\"users\""),
        "{}",
        out.stderr
    );
    assert!(
        db.scalar("SELECT to_regclass('drizzle.__drizzle_migrations')::text")
            .is_none()
    );
}

#[test]
fn a_relative_migrations_path_is_taken_from_the_current_folder() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    let elsewhere = tempfile::tempdir().unwrap();
    // Run from the project's parent, naming the project and a path relative to here.
    let parent = project.path().parent().unwrap();
    let rel = format!(
        "{}/drizzle",
        project.path().file_name().unwrap().to_string_lossy()
    );
    let out = run(pgship(parent)
        .args(["status", &db.url, "--project"])
        .arg(elsewhere.path())
        .args(["--migrations", &rel]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("0000_"), "{}", out.stdout);

    let out = run(pgship(parent).args(["status", &db.url, "--migrations", "no-such-folder"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no-such-folder") && out.stderr.contains("from --migrations"),
        "{}",
        out.stderr
    );
    let out = run(pgship(parent).args(["status", &db.url, "--project", "no-such-project"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no-such-project") && out.stderr.contains("from --project"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_long_list_of_uncommitted_migrations_is_folded() {
    let Some(db) = TestDb::new() else { return };
    let mut files: Vec<(String, String)> = (1..=40)
        .map(|i| {
            (
                format!("{i:03}_t{i}.sql"),
                format!("CREATE TABLE t{i} (a int);"),
            )
        })
        .collect();
    files[39].1 = "SELECT 1/0;".into();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let project = sql_project(&refs);
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("not committed:"))
        .expect("a not-committed line");
    assert!(
        line.contains("001_t1") && line.contains("... 32 more ...") && line.contains("040_t40"),
        "{line}"
    );
    assert!(line.len() < 200, "{line}");
}
