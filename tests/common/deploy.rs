//! Helpers of the deploy tests: a project whose first migration is applied, `pgship` with
//! `dev` pointing at a test database, and reading a deployment's folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Out, TestDb, pgship, query, run, sql_project};

/// A private TMPDIR for pgship's clusters (readable by the unprivileged user they run as).
pub fn private_tmp() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// `pgship <args>` on `project` with `dev` pointing at `url`, sandboxes in `tmp`.
pub fn cmd(project: &Path, url: &str, tmp: &Path, args: &[&str]) -> std::process::Command {
    let mut c = pgship(project);
    c.env("TMPDIR", tmp).env("DEV_POSTGRES_URL", url).args(args);
    c
}

/// `pgship deploy dev --sandbox local <extra>`.
pub fn deploy(project: &Path, url: &str, tmp: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["deploy", "dev", "--sandbox", "local"];
    args.extend(extra);
    run(&mut cmd(project, url, tmp, &args))
}

/// The deployment folders of `project` whose id starts with `prefix`, oldest first.
pub fn runs(project: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(project.join(".deployments"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix));
    out.sort();
    out
}

/// A deployment folder's id.
pub fn id_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().to_string()
}

/// The lines of a deployment's `deployment.log`.
pub fn log_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("deployment.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// pgship's own state rows of a plain SQL project, in order.
pub fn sql_state(db: &TestDb) -> Vec<String> {
    db.query("SELECT name FROM pgship.applied_migrations ORDER BY version")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
}

/// Two tables with rows: what `applied_project`'s 001 makes.
pub const INIT: &str = "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL);
INSERT INTO customers (email) SELECT 'c' || i || '@x.test' FROM generate_series(1, 50) i;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('a'), ('b');
";

/// A project whose 001 ([`INIT`]) is applied with `migrate`, and `pending` on top.
pub fn applied_project(db: &TestDb, pending: &[(&str, &str)]) -> tempfile::TempDir {
    let p = sql_project(&[("001_init.sql", INIT)]);
    let m = run(pgship(p.path()).args(["migrate", &db.url]));
    assert_eq!(m.code, 0, "{}", m.stderr);
    for (name, text) in pending {
        std::fs::write(p.path().join("migrations").join(name), text).unwrap();
    }
    p
}

/// Insert a row into `customers` from another session as soon as column `flag` exists.
pub fn write_after_apply(url: String) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            let has = query(
                &url,
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'flag'",
            );
            if has[0][0].as_deref() == Some("1") {
                query(&url, "INSERT INTO customers (email) VALUES ('late@x.test')");
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    })
}

/// A project whose pending 002 adds `customers.flag`, with a smoke check that fails after 2 s
/// (time for [`write_after_apply`]'s writer): the deploy rolls back, unless the guard refuses.
pub fn guarded_project(db: &TestDb) -> tempfile::TempDir {
    let p = applied_project(
        db,
        &[(
            "002_flag.sql",
            "ALTER TABLE customers ADD COLUMN flag boolean NOT NULL DEFAULT false;\nUPDATE customers SET flag = true WHERE id < 10;",
        )],
    );
    std::fs::create_dir_all(p.path().join("pgship/smoke")).unwrap();
    // Fails, after giving the writer time to write.
    std::fs::write(
        p.path().join("pgship/smoke/slow_failure.sql"),
        "SELECT 1 AS failing FROM pg_sleep(2);",
    )
    .unwrap();
    p
}

/// A project whose pending 002 adds a CHECK on `customers.email`; [`BREAK_CHECK`] as the
/// deploy's `--test-cmd` (with the target's URL in `$TARGET_FOR_TEST`) writes, after the
/// clone, a row to the target that the rehearsal never saw and the CHECK rejects.
pub fn check_project(db: &TestDb) -> tempfile::TempDir {
    applied_project(
        db,
        &[(
            "002_check.sql",
            "ALTER TABLE notes ADD COLUMN n int NOT NULL DEFAULT 1;\nALTER TABLE customers ADD CONSTRAINT email_at CHECK (email LIKE '%@%');",
        )],
    )
}

pub const BREAK_CHECK: &str =
    "psql -X -q \"$TARGET_FOR_TEST\" -c \"INSERT INTO customers (email) VALUES ('no-at-sign')\"";
