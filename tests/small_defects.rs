//! Smaller defects of issue 13, as a user meets them: a drizzle folder whose journal was lost,
//! `status --exit-code` as a CI gate, names in `compare`'s text report, `.env.local` parse
//! errors, and what a `plan` killed with SIGKILL leaves for `sandbox list` and `sandbox gc`.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

// ---- a drizzle folder without its journal ----

#[test]
fn a_drizzle_folder_without_its_journal_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("drizzle");
    write(&dir, "0000_init.sql", "CREATE TABLE a (id int);");
    write(&dir, "0001_more.sql", "CREATE TABLE b (id int);");
    write(&dir, "meta/0000_snapshot.json", "{}");
    write(&dir, "meta/0001_snapshot.json", "{}");
    let err = pgship::source::detect(&dir).unwrap_err().to_string();
    assert!(err.starts_with(&dir.display().to_string()), "{err}");
    assert!(err.contains("no meta/_journal.json"), "{err}");
    assert!(err.contains("0000_snapshot.json and 1 more"), "{err}");

    // An empty meta/ or one without drizzle-kit's JSON is no trace of drizzle.
    let plain = tmp.path().join("plain");
    write(&plain, "001_a.sql", "CREATE TABLE a (id int);");
    std::fs::create_dir_all(plain.join("meta")).unwrap();
    assert_eq!(
        pgship::source::detect(&plain).unwrap(),
        pgship::source::SourceKind::Sql
    );
    write(&plain, "meta/notes.txt", "x");
    assert_eq!(
        pgship::source::detect(&plain).unwrap(),
        pgship::source::SourceKind::Sql
    );
    // With the journal back it is a drizzle folder again.
    write(
        &dir,
        "meta/_journal.json",
        &std::fs::read_to_string(fixture("drizzle-app/drizzle/meta/_journal.json")).unwrap(),
    );
    assert_eq!(
        pgship::source::detect(&dir).unwrap(),
        pgship::source::SourceKind::Drizzle
    );
}

#[test]
fn status_on_a_drizzle_folder_without_its_journal_refuses_and_changes_nothing() {
    let Some(db) = TestDb::new() else { return };
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("migrations");
    write(&dir, "0000_init.sql", "CREATE TABLE a (id int);");
    write(&dir, "meta/0000_snapshot.json", "{}");
    for cmd in ["status", "migrate"] {
        let out = run(pgship(project.path()).args([cmd, &db.url]));
        assert_eq!(out.code, 2, "{cmd}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("migrations") && out.stderr.contains("no meta/_journal.json"),
            "{cmd}: {}",
            out.stderr
        );
    }
    assert_eq!(db.scalar("SELECT to_regclass('public.a')::text"), None);
    assert_eq!(db.scalar("SELECT to_regnamespace('pgship')::text"), None);
}

// ---- status --exit-code ----

fn status(project: &Path, url: &str, gate: bool) -> (i32, Value) {
    let mut cmd = pgship(project);
    cmd.args(["status", url, "--format", "json"]);
    if gate {
        cmd.arg("--exit-code");
    }
    let out = run(&mut cmd);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    (out.code, v)
}

fn migrate(project: &Path, url: &str) -> Out {
    run(pgship(project).args(["migrate", url]))
}

#[test]
fn status_exit_code_gates_on_edited_missing_skipped_and_partial() {
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    let p = project.path();
    let dir = p.join("migrations");
    // Pending only: clean.
    assert_eq!(status(p, &db.url, true).0, 0);
    let out = migrate(p, &db.url);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, v) = status(p, &db.url, true);
    assert_eq!((code, &v["clean"]), (0, &Value::Bool(true)));

    // Edited: 1 with --exit-code, 0 without.
    std::fs::write(dir.join("1_a.sql"), "CREATE TABLE a (id bigint);\n").unwrap();
    let (code, v) = status(p, &db.url, true);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["edited"][0]["name"], "1_a");
    assert_eq!(v["clean"], false);
    assert_eq!(status(p, &db.url, false).0, 0);
    let text = run(pgship(p).args(["status", &db.url, "--exit-code"]));
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert!(text.stdout.contains("EDITED"), "{}", text.stdout);
    std::fs::write(dir.join("1_a.sql"), "CREATE TABLE a (id int);\n").unwrap();

    // Missing: the applied file is gone.
    std::fs::rename(dir.join("1_a.sql"), p.join("1_a.sql")).unwrap();
    std::fs::write(dir.join("2_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    let (code, v) = status(p, &db.url, true);
    assert_eq!(
        (code, v["missing"][0]["name"].as_str()),
        (1, Some("1_a")),
        "{v}"
    );
    std::fs::rename(p.join("1_a.sql"), dir.join("1_a.sql")).unwrap();
    std::fs::remove_file(dir.join("2_b.sql")).unwrap();

    // Skipped: 3 applied, then 2 appears before it.
    std::fs::write(dir.join("3_c.sql"), "CREATE TABLE c (id int);\n").unwrap();
    assert_eq!(migrate(p, &db.url).code, 0);
    assert_eq!(status(p, &db.url, true).0, 0);
    std::fs::write(dir.join("2_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    let (code, v) = status(p, &db.url, true);
    assert_eq!(
        (code, v["skipped"][0]["name"].as_str()),
        (1, Some("2_b")),
        "{v}"
    );
}

#[test]
fn status_exit_code_gates_on_a_partially_applied_migration() {
    let Some(db) = TestDb::new() else { return };
    // The file commits its first statement itself, then fails.
    let project = sql_project(&[(
        "1_half.sql",
        "CREATE TABLE half (id int);\nCOMMIT;\nSELECT 1/0;\n",
    )]);
    let p = project.path();
    let out = migrate(p, &db.url);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (code, v) = status(p, &db.url, true);
    assert_eq!(v["partial"][0]["name"], "1_half", "{v}");
    assert_eq!(code, 1, "{v}");
    assert_eq!(status(p, &db.url, false).0, 0);
}

#[test]
fn status_exit_code_gates_on_a_run_left_running_by_a_killed_migrate() {
    use std::time::{Duration, Instant};
    let Some(db) = TestDb::new() else { return };
    let project = sql_project(&[
        ("1_a.sql", "CREATE TABLE a (x int);\n"),
        (
            "2_slow.sql",
            "CREATE TABLE b (x int);\nSELECT pg_sleep(30);\n",
        ),
    ]);
    let p = project.path();
    let mut child = pgship(p)
        .args(["migrate", &db.url, "--tx-mode", "per-migration"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = |n: &str| {
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgship' \
             AND datname = current_database() AND pid <> pg_backend_pid() \
             AND query LIKE '%pg_sleep(30)%' AND state = 'active'",
        )
        .as_deref()
            == Some(n)
    };
    let started = Instant::now();
    while !sleeping("1") {
        assert!(started.elapsed() < Duration::from_secs(30), "never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server ends the orphaned session.
    while !sleeping("0") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "session lingers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, v) = status(p, &db.url, true);
    assert_eq!(v["interrupted_runs"].as_array().unwrap().len(), 1, "{v}");
    for clean in ["edited", "skipped", "missing", "partial", "state_problems"] {
        assert_eq!(v[clean], serde_json::json!([]), "{clean}: {v}");
    }
    assert_eq!((code, &v["clean"]), (1, &Value::Bool(false)), "{v}");
    // The next migrate marks it interrupted and finishes: clean again.
    std::fs::write(p.join("migrations/2_slow.sql"), "CREATE TABLE b (x int);\n").unwrap();
    let out = migrate(p, &db.url);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(status(p, &db.url, true).0, 0);
}

// ---- compare: names quoted in text, raw in JSON ----

#[test]
fn compare_text_quotes_names_that_need_it_and_json_keeps_them_raw() {
    let Some(source) = TestDb::new() else { return };
    let Some(target) = TestDb::new() else { return };
    let setup = "CREATE TABLE plain (id int);
                 CREATE TABLE \"a.b\" (\"c d\" int, \"Total\" int, \"user\" int, ok int);
                 CREATE SCHEMA \"My App\";
                 CREATE TABLE \"My App\".\"order\" (id int);";
    source.query(setup);
    target.query("CREATE TABLE plain (id int); CREATE TABLE \"a.b\" (ok int);");
    let project = tempfile::tempdir().unwrap();
    let out = run(pgship(project.path()).args(["compare", &source.url, &target.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = &out.stdout;
    for want in [
        "\npublic.\"a.b\"\n",
        "+ column-added public.\"a.b\".\"c d\" integer",
        "+ column-added public.\"a.b\".\"Total\" integer",
        "+ column-added public.\"a.b\".\"user\" integer",
        "+ schema-added \"My App\"",
        "+ table-added \"My App\".\"order\"",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert!(!text.contains("plain"), "no difference on `plain`:\n{text}");

    let out =
        run(pgship(project.path()).args(["compare", &source.url, &target.url, "--format", "json"]));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let lines: Vec<&str> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"column-added public.a.b.c d integer"),
        "{lines:?}"
    );
    assert!(lines.contains(&"table-added My App.order"), "{lines:?}");
    assert!(
        v["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["object"] == "public.a.b.Total"),
        "{v}"
    );
}

// ---- .env.local parse errors ----

#[test]
fn an_env_local_parse_error_names_the_file_line_and_variable() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join(".env.local"),
        "# local settings\nDEV_POSTGRES_URL=postgres://u@h/db\n\nDATABASE_URL=postgres://u:s3cret@h/db trailing\n",
    )
    .unwrap();
    std::fs::create_dir(project.path().join("migrations")).unwrap();
    let out = run(pgship(project.path()).args(["status", "local"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(".env.local"), "{}", out.stderr);
    assert!(
        out.stderr.contains("line 4 (DATABASE_URL)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    assert!(!out.stderr.contains("byte"), "{}", out.stderr);
}

// ---- a plan killed with SIGKILL, then `sandbox list` and `sandbox gc` ----

/// Every path under `dir`, relative, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The folder of the temp root named `<prefix><pid>-...` holding `inside` (a file name prefix,
/// or "" for any folder).
fn run_folder(root: &Path, prefix: &str, pid: u32, inside: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{prefix}{pid}-")))
                && std::fs::read_dir(p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with(inside))
        })
}

/// Processes whose command line names `dir` or a path inside it.
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[test]
fn a_plan_killed_mid_rehearsal_leaves_an_orphan_that_list_shows_and_gc_removes_entirely() {
    use std::io::BufRead;
    let Some(target) = TestDb::new() else { return };
    target.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);");
    let project = sql_project(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "2_slow.sql",
            "SELECT pg_sleep(30);\nCREATE TABLE b (id int);\n",
        ),
    ]);
    // A private TMPDIR the cluster's unprivileged user can enter: pgship's temp root only.
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("pgship");
    let before = entries(tmp.path());
    let cli = |args: &[&str]| run(pgship(project.path()).env("TMPDIR", tmp.path()).args(args));

    let mut child = pgship(project.path())
        .env("TMPDIR", tmp.path())
        .args(["plan", &target.url, "--sandbox", "local"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Mid-rehearsal: the sandbox is up, the rollback's schema dump of the target is written,
    // and the slow migration runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut log = Vec::new();
    let (cluster, dump_dir) = loop {
        log.extend(rx.try_iter());
        let rehearsing = log.iter().any(|l| l.contains("sandbox before:"));
        let cluster = run_folder(&root, "cluster-", pid, "data")
            .filter(|c| c.join("data/postmaster.pid").exists());
        let dump = run_folder(&root, "clone-", pid, "schema-");
        if let (true, Some(c), Some(d)) = (rehearsing, cluster, dump) {
            break (c, d);
        }
        assert!(
            std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the plan never got mid-rehearsal:\n{}",
            log.join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();

    // What the kill leaves: the server running, the registry record, the schema dump.
    let postmaster: u32 = std::fs::read_to_string(cluster.join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        pgship::cluster::process_alive(postmaster),
        "the server runs on"
    );
    assert!(!processes_in(&cluster).is_empty());
    assert!(dump_dir.exists());

    let listed = cli(&["sandbox", "list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed
            .stdout
            .contains(&format!("ORPHANED: its run (pid {pid}) is gone"))
            && listed
                .stdout
                .contains(&format!("its server (pid {postmaster}) still runs")),
        "{}",
        listed.stdout
    );
    let listed = cli(&["sandbox", "list", "--format", "json"]);
    let v: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["state"], "orphaned");
    assert_eq!(v[0]["strategy"], "local");
    assert_eq!(v[0]["pid"], pid);
    assert_eq!(v[0]["server"]["pid"], postmaster);
    assert_eq!(v[0]["dir"], cluster.display().to_string());

    let gc = cli(&["sandbox", "gc"]);
    assert_eq!(gc.code, 0, "{}\n{}", gc.stdout, gc.stderr);
    assert!(
        gc.stdout.contains(&cluster.display().to_string())
            && gc.stdout.contains(&format!(
                "removed temp folder {} of pid {pid}",
                dump_dir.display()
            )),
        "{}",
        gc.stdout
    );
    // Nothing of the run is left: no file in the temp folder (pgship's root and its registry
    // folder stay, empty), no process of its cluster.
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let mut want = before.clone();
    want.extend(["pgship".to_string(), format!("pgship/sandboxes-{uid}")]);
    want.sort();
    assert_eq!(entries(tmp.path()), want);
    assert!(!pgship::cluster::process_alive(postmaster));
    assert_eq!(processes_in(&cluster), Vec::<String>::new());
    // The plan never changed the target.
    assert_eq!(target.scalar("SELECT to_regclass('public.a')::text"), None);

    let again = cli(&["sandbox", "gc"]);
    assert_eq!(again.stdout.trim(), "nothing to remove", "{}", again.stdout);
    let listed = cli(&["sandbox", "list"]);
    assert_eq!(
        listed.stdout.trim(),
        "no kept sandboxes",
        "{}",
        listed.stdout
    );
}
