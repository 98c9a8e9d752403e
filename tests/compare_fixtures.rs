//! The schema-comparison fixtures in `tests/fixtures/compare/NNN-slug/`: each case holds a
//! `source.sql`, a `target.sql` and an `expected.txt` of vocabulary lines
//! (`shared/compare-vocabulary.md`). For every case the SQL is run into two fresh databases,
//! `pgship compare <source> <target> --format json` is run, and the reported lines (plus
//! `breaking <line>` for breaking differences) are compared with the expected ones as sets.
//! Misses (expected, not reported) and false positives (reported, not expected) are graded
//! separately, on the shared test server and on a PostgreSQL 18 throwaway cluster.
//!
//! `PGSHIP_COMPARE_CASE=slug,slug` runs only the cases whose folder name contains one of the
//! words; `PGSHIP_COMPARE_JOBS=N` sets how many cases run at once (default 4).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pgship::cluster::{ClusterOptions, LocalCluster};
use pgship::db::{ConnectOptions, DbUrl, connect, tools};

/// How long one `pgship compare` may take before the case fails.
const COMPARE_TIMEOUT: Duration = Duration::from_secs(120);

struct Case {
    name: String,
    source: String,
    target: String,
    expected: BTreeSet<String>,
}

/// What one case gave.
struct Outcome {
    name: String,
    expected: usize,
    misses: Vec<String>,
    false_positives: Vec<String>,
    /// The case could not be graded (SQL failed, pgship failed, malformed JSON) or the JSON
    /// broke a shape rule.
    errors: Vec<String>,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.misses.is_empty() && self.false_positives.is_empty() && self.errors.is_empty()
    }
}

/// The expected lines of an `expected.txt`: `#` comments and blank lines are skipped.
fn parse_expected(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn load_cases() -> Vec<Case> {
    let root = fixture("compare");
    let filter: Vec<String> = std::env::var("PGSHIP_COMPARE_CASE")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let read = |dir: &Path, file: &str| {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
    };
    let cases: Vec<Case> = dirs
        .iter()
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            source: read(dir, "source.sql"),
            target: read(dir, "target.sql"),
            expected: parse_expected(&read(dir, "expected.txt")),
        })
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    assert!(!cases.is_empty(), "no compare fixtures matched");
    cases
}

/// Run `sql` as one simple-query batch (DO blocks and function bodies work).
fn exec_batch(url: &str, sql: &str) -> Result<(), String> {
    let url = DbUrl::parse(url).map_err(|e| e.0)?;
    rt().block_on(async {
        let c = connect(&url, &ConnectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        c.client
            .batch_execute(sql)
            .await
            .map_err(|e| pgship::db::describe(&e))
    })
}

/// Run `pgship compare <source> <target> <extra..>` from an empty project folder (no migration
/// SQL, so renames are removed plus added), with a time limit. Returns (exit code, stdout,
/// stderr).
fn compare(source: &str, target: &str, extra: &[&str]) -> Result<(i32, String, String), String> {
    let project = tempfile::tempdir().unwrap();
    compare_in(project.path(), source, target, extra)
}

/// [`compare`] run from the folder `project`.
fn compare_in(
    project: &Path,
    source: &str,
    target: &str,
    extra: &[&str],
) -> Result<(i32, String, String), String> {
    let out_dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let mut child = pgship(project)
        .args(["compare", source, target])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .map_err(|e| format!("cannot run pgship: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMPARE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "pgship compare did not finish within {}s",
                COMPARE_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Ok((
        status.code().unwrap_or(-1),
        read(&out_path),
        read(&err_path),
    ))
}

/// Check the JSON report's shape and return its lines: every difference's `line`, plus
/// `breaking <line>` for breaking ones. Shape violations are pushed to `errors`.
fn report_lines(
    stdout: &str,
    secrets: &[&str],
    errors: &mut Vec<String>,
) -> Option<BTreeSet<String>> {
    let v: serde_json::Value = match serde_json::from_str(stdout) {
        Ok(v) => v,
        Err(e) => {
            errors.push(format!("stdout is not JSON ({e}):\n{stdout}"));
            return None;
        }
    };
    let mut shape = |ok: bool, what: &str| {
        if !ok {
            errors.push(format!("JSON shape: {what}"));
        }
    };
    for secret in secrets {
        shape(!stdout.contains(secret), "the report shows a password");
    }
    shape(v["source"].is_string(), "`source` is not a string");
    shape(v["target"].is_string(), "`target` is not a string");
    shape(v["engine"] == "catalog", "`engine` is not \"catalog\"");
    shape(
        v.get("data").is_some_and(|d| d.is_null()),
        "`data` is not null",
    );
    let Some(diffs) = v["differences"].as_array() else {
        shape(false, "`differences` is not an array");
        return None;
    };
    let identical = v["identical"].as_bool();
    shape(identical.is_some(), "`identical` is not a boolean");
    shape(
        identical == Some(diffs.is_empty()),
        "`identical` does not equal \"no differences\"",
    );
    let (fs, ft) = (
        v["fingerprints"]["source"].as_str(),
        v["fingerprints"]["target"].as_str(),
    );
    match (fs, ft) {
        (Some(fs), Some(ft)) if !fs.is_empty() && !ft.is_empty() => shape(
            (fs == ft) == diffs.is_empty(),
            &format!(
                "fingerprints must be equal exactly when identical (identical: {}, source {fs}, target {ft})",
                diffs.is_empty()
            ),
        ),
        _ => shape(
            false,
            "`fingerprints.source`/`.target` are not non-empty strings",
        ),
    }
    let mut lines = BTreeSet::new();
    for d in diffs {
        let (Some(kind), Some(line), Some(breaking)) = (
            d["kind"].as_str(),
            d["line"].as_str(),
            d["breaking"].as_bool(),
        ) else {
            errors.push(format!(
                "JSON shape: difference without kind/line/breaking: {d}"
            ));
            continue;
        };
        if !d["object"].is_string() {
            errors.push(format!("JSON shape: difference without `object`: {d}"));
        }
        if !line.starts_with(&format!("{kind} ")) {
            errors.push(format!(
                "JSON shape: line does not start with its kind: {d}"
            ));
        }
        if breaking && d["reason"].as_str().is_none_or(|r| r.trim().is_empty()) {
            errors.push(format!(
                "JSON shape: breaking difference without a reason: {d}"
            ));
        }
        if !lines.insert(line.to_string()) {
            errors.push(format!("reported twice: {line}"));
        }
        if breaking {
            lines.insert(format!("breaking {line}"));
        }
    }
    Some(lines)
}

fn run_case(admin: &str, case: &Case) -> Outcome {
    let mut outcome = Outcome {
        name: case.name.clone(),
        expected: case.expected.len(),
        misses: Vec::new(),
        false_positives: Vec::new(),
        errors: Vec::new(),
    };
    let source = TestDb::on(admin).expect("a source database");
    let target = TestDb::on(admin).expect("a target database");
    for (db, sql, file) in [
        (&source, &case.source, "source.sql"),
        (&target, &case.target, "target.sql"),
    ] {
        if let Err(e) = exec_batch(&db.url, sql) {
            outcome.errors.push(format!("{file} failed: {e}"));
        }
    }
    if !outcome.errors.is_empty() {
        return outcome;
    }
    let (code, stdout, stderr) = match compare(&source.url, &target.url, &["--format", "json"]) {
        Ok(r) => r,
        Err(e) => {
            outcome.errors.push(e);
            return outcome;
        }
    };
    if code != 0 {
        outcome.errors.push(format!(
            "pgship compare exited with {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ));
        return outcome;
    }
    let passwords: Vec<String> = [&source.url, &target.url]
        .iter()
        .filter_map(|u| {
            DbUrl::parse(u)
                .ok()?
                .password
                .map(|p| p.expose().to_string())
        })
        .collect();
    let secrets: Vec<&str> = passwords.iter().map(String::as_str).collect();
    let Some(reported) = report_lines(&stdout, &secrets, &mut outcome.errors) else {
        return outcome;
    };
    outcome.misses = case.expected.difference(&reported).cloned().collect();
    outcome.false_positives = reported.difference(&case.expected).cloned().collect();
    outcome
}

/// Run every case against the server at `admin`, print a scoreboard, fail on any failed case.
fn run_all(admin: &str, label: &str) {
    let cases = load_cases();
    let jobs = std::env::var("PGSHIP_COMPARE_JOBS")
        .ok()
        .and_then(|j| j.parse::<usize>().ok())
        .unwrap_or(4)
        .clamp(1, 16);
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(cases.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let outcome = run_case(admin, case);
                    outcomes.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));

    println!("compare fixtures on {label}:");
    let (mut misses, mut fps, mut errored) = (0, 0, 0);
    let mut failed = Vec::new();
    for o in &outcomes {
        misses += o.misses.len();
        fps += o.false_positives.len();
        if !o.errors.is_empty() {
            errored += 1;
        }
        if o.passed() {
            println!("  ok    {} ({} lines)", o.name, o.expected);
            continue;
        }
        failed.push(o.name.clone());
        println!(
            "  FAIL  {}: misses {}, false positives {}{}",
            o.name,
            o.misses.len(),
            o.false_positives.len(),
            if o.errors.is_empty() { "" } else { ", error" }
        );
        for m in &o.misses {
            println!("          - missing:    {m}");
        }
        for f in &o.false_positives {
            println!("          + unexpected: {f}");
        }
        for e in &o.errors {
            for (i, l) in e.lines().enumerate() {
                println!("          {} {l}", if i == 0 { "!" } else { " " });
            }
        }
    }
    println!(
        "{label}: misses: {misses}, false positives: {fps} over {} cases ({} passed, {} failed, {errored} with errors)",
        outcomes.len(),
        outcomes.len() - failed.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} compare fixtures failed on {label} (misses: {misses}, false positives: {fps}): {}",
        failed.len(),
        outcomes.len(),
        failed.join(", ")
    );
}

#[test]
fn compare_fixtures_on_the_shared_server() {
    // Probe the server first: without one (and without CI=true) the test is skipped.
    let Some(probe) = TestDb::new() else { return };
    let version = probe.scalar("SHOW server_version").unwrap_or_default();
    drop(probe);
    run_all(
        &admin_url(),
        &format!("PostgreSQL {version} (shared server)"),
    );
}

#[test]
fn compare_fixtures_on_postgres_18() {
    let Some(bin) = pg18_bin() else { return };
    let b = tools::at(&bin, "postgres").expect("PostgreSQL 18 binaries run");
    assert_eq!(b.major, 18);
    let cluster = LocalCluster::start(&ClusterOptions {
        bin: Some(b),
        ..Default::default()
    })
    .expect("a PostgreSQL 18 throwaway cluster");
    let admin = cluster.url("postgres").expose();
    let version = query(&admin, "SHOW server_version")[0][0]
        .clone()
        .unwrap_or_default();
    assert!(version.starts_with("18."), "{version}");
    run_all(&admin, &format!("PostgreSQL {version} (throwaway cluster)"));
    drop(cluster);
}

/// A copy of the drizzle fixture's project whose journal (and folder) hold only the first
/// `n` migrations.
fn drizzle_project_cut_to(n: usize) -> tempfile::TempDir {
    let project = project_with("drizzle-app/drizzle");
    let dir = project.path().join("drizzle");
    let journal_path = dir.join("meta/_journal.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal_path).unwrap()).unwrap();
    let entries = j["entries"].as_array().unwrap().clone();
    assert!(n <= entries.len());
    for e in &entries[n..] {
        let tag = e["tag"].as_str().unwrap();
        std::fs::remove_file(dir.join(format!("{tag}.sql"))).unwrap();
    }
    j["entries"] = serde_json::Value::Array(entries[..n].to_vec());
    std::fs::write(&journal_path, serde_json::to_string_pretty(&j).unwrap()).unwrap();
    project
}

fn migrate(project: &Path, url: &str) {
    let out = run(pgship(project).args(["migrate", url]));
    assert_eq!(
        out.code, 0,
        "migrate\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

#[test]
fn compare_reports_the_drizzle_fixture_changes() {
    // Source: the fixture migrated to 0003; target: migrated to 0001. Deploying the source
    // onto the target renames users.full_name (0002) and drops orders.total_cents (0003).
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().expect("a second database");
    migrate(drizzle_project_cut_to(4).path(), &source.url);
    migrate(drizzle_project_cut_to(2).path(), &target.url);
    assert_eq!(
        target.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations"),
        Some("2".into())
    );

    let (code, stdout, stderr) = compare(&source.url, &target.url, &["--format", "json"]).unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut errors = Vec::new();
    let lines = report_lines(&stdout, &[], &mut errors).expect("a JSON report");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The state schemas (pgship, drizzle) differ too but are not compared by default.
    let expected = parse_expected(
        "column-removed public.users.full_name
         breaking column-removed public.users.full_name
         column-added public.users.display_name text
         column-removed public.orders.total_cents
         breaking column-removed public.orders.total_cents",
    );
    assert_eq!(
        lines,
        expected,
        "\nmisses: {:?}\nfalse positives: {:?}",
        expected.difference(&lines).collect::<Vec<_>>(),
        lines.difference(&expected).collect::<Vec<_>>()
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let total = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["line"] == "column-removed public.orders.total_cents")
        .expect("the total_cents difference");
    assert_eq!(total["kind"], "column-removed");
    assert_eq!(total["object"], "public.orders.total_cents");
    assert_eq!(total["breaking"], true);

    // --exit-code: 1 when anything differs, 0 for a database compared with itself.
    let (code, _, stderr) = compare(
        &source.url,
        &target.url,
        &["--format", "json", "--exit-code"],
    )
    .unwrap();
    assert_eq!(code, 1, "{stderr}");
    let (code, stdout, stderr) = compare(
        &source.url,
        &source.url,
        &["--format", "json", "--exit-code"],
    )
    .unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut errors = Vec::new();
    let lines = report_lines(&stdout, &[], &mut errors).expect("a JSON report");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn compare_reads_renames_from_the_migrations_pending_on_the_target() {
    // The same two databases as above, compared from the project whose migrations the target
    // has not all applied: 0002 renames users.full_name, so it is a rename, not a removal.
    let Some(source) = TestDb::new() else { return };
    let target = TestDb::new().expect("a second database");
    let full = drizzle_project_cut_to(4);
    migrate(full.path(), &source.url);
    migrate(drizzle_project_cut_to(2).path(), &target.url);

    let (code, stdout, stderr) =
        compare_in(full.path(), &source.url, &target.url, &["--format", "json"]).unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut errors = Vec::new();
    let lines = report_lines(&stdout, &[], &mut errors).expect("a JSON report");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let expected = parse_expected(
        "column-renamed public.users.full_name -> display_name
         breaking column-renamed public.users.full_name -> display_name
         column-removed public.orders.total_cents
         breaking column-removed public.orders.total_cents",
    );
    assert_eq!(lines, expected);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let renamed = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "column-renamed")
        .unwrap();
    assert_eq!(renamed["object"], "public.users.display_name");
    assert_eq!(renamed["policy"], "warn");

    // Nothing pending on the source: no SQL explains the difference the other way round, so
    // the column the source lacks is removed plus added.
    let (code, stdout, stderr) =
        compare_in(full.path(), &target.url, &source.url, &["--format", "json"]).unwrap();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines = report_lines(&stdout, &[], &mut errors).expect("a JSON report");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(
        lines.contains("column-removed public.users.display_name")
            && lines.contains("column-added public.users.full_name text"),
        "{lines:?}"
    );
}
