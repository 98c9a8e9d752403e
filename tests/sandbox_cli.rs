//! `pgship sandbox` through the real binary, for what `sandbox.rs` does not cover:
//!
//! - the `neon` strategy end to end against the loopback Neon API of `common/neon.rs`, whose
//!   create-branch makes a real copy of the target (a throwaway cluster filled by
//!   `pg_dump | pg_restore`, standing in for Neon's copy-on-write branch) and hands its URI back
//!   in `connection_uris`, as Neon does; and its failures, which must leave no record and no
//!   branch;
//! - `--keep-dump`;
//! - `sandbox gc`'s age rule for Neon branches left by runs on other machines.
//!
//! Each test gives pgship a private TMPDIR, so that its sandbox registry and clusters are this
//! test's alone.

mod common;
#[path = "common/neon.rs"]
mod fake;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use fake::{FakeNeon, KEY, PROJECT, connection_details};
use pgship::cluster::{ClusterOptions, LocalCluster};
use pgship::db::{ConnectOptions, DbUrl, connect};
use pgship::sandbox::{Record, Strategy, registry};
use serde_json::{Value, json};

const SETUP: &str = "CREATE TYPE tier AS ENUM ('free', 'pro');
CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, t tier DEFAULT 'free');
CREATE TABLE orders (id serial PRIMARY KEY, customer_id bigint REFERENCES customers(id), total numeric(12,2));
CREATE INDEX orders_customer_idx ON orders (customer_id);
INSERT INTO customers (email) SELECT 'c' || g || '@x' FROM generate_series(1, 400) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 400, g FROM generate_series(1, 2500) g;";

/// The fingerprint and the row counts of the tables [`SETUP`] fills.
fn fingerprint_and_counts(url: &str) -> (String, Vec<(String, i64)>) {
    common::fingerprint_and_counts(url, &["customers", "orders"])
}

fn reachable(url: &str) -> bool {
    rt().block_on(async {
        connect(&DbUrl::parse(url).unwrap(), &ConnectOptions::default())
            .await
            .is_ok()
    })
}

/// A project folder and a private TMPDIR for pgship, and the variables it runs with.
struct Cli {
    project: tempfile::TempDir,
    tmp: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Cli {
    fn new(vars: Vec<(String, String)>) -> Cli {
        let tmp = tempfile::tempdir().unwrap();
        // Traversable by the `postgres` user a local sandbox cluster runs as under root.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Cli {
            project: tempfile::tempdir().unwrap(),
            tmp,
            vars,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = pgship(self.project.path());
        c.env("TMPDIR", self.tmp.path());
        for k in [
            "SANDBOX_POSTGRES_URL",
            "NEON_API_KEY",
            "NEON_PROJECT_ID",
            "NEON_API_URL",
            "PGSHIP_PG_BIN",
        ] {
            c.env_remove(k);
        }
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        run(self.cmd().args(args))
    }

    /// pgship's sandbox registry in the private TMPDIR.
    fn registry_dir(&self) -> PathBuf {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        self.tmp
            .path()
            .join("pgship")
            .join(format!("sandboxes-{uid}"))
    }

    fn records(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.registry_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn write_record(&self, r: &Record) {
        let dir = self.registry_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{}.json", r.id)),
            serde_json::to_vec(r).unwrap(),
        )
        .unwrap();
    }
}

fn no_secret(out: &Out, secrets: &[&str]) {
    for s in secrets.iter().chain([&KEY]) {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "a secret was shown:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

// ---- the Neon copy ----

/// The branch copies the fake made, by branch id.
type Copies = Arc<Mutex<HashMap<String, LocalCluster>>>;

/// Make the fake's create-branch copy the target the way a Neon branch holds its parent's
/// data: a server of its own (a throwaway cluster) with the target's database under the same
/// name, reached by the same role; `connection_uris` lists it (and the cluster's `postgres`
/// database, which is not the target's). Deleting the branch stops the cluster.
fn copy_on_create(fake: &FakeNeon, target: &TestDb) -> Copies {
    let copies: Copies = Arc::default();
    let source = target.url.clone();
    let dbname = target.name.clone();
    let made = copies.clone();
    fake.on_create(move |branch_id, _name| {
        let cluster = LocalCluster::start(&ClusterOptions {
            min_major: Some(15),
            ..Default::default()
        })
        .expect("a throwaway cluster for the branch");
        query(
            &cluster.url("postgres").expose(),
            &format!("CREATE DATABASE {dbname}"),
        );
        let copy = cluster.url(&dbname);
        pg_copy(&cluster, &source, &copy);
        let uris = vec![
            connection_details(&cluster.url("postgres")),
            connection_details(&copy),
        ];
        made.lock().unwrap().insert(branch_id.to_string(), cluster);
        uris
    });
    let gone = copies.clone();
    fake.on_delete(move |branch_id| {
        if let Some(mut c) = gone.lock().unwrap().remove(branch_id) {
            c.stop();
        }
    });
    copies
}

/// `pg_dump -Fc source | pg_restore -d dest`, the password through the environment.
fn pg_copy(cluster: &LocalCluster, source: &str, dest: &DbUrl) {
    let mut no_password = dest.clone();
    no_password.password = None;
    let mut dump = Command::new(cluster.bin.bin("pg_dump"))
        .args(["-Fc", "--dbname", source])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let restore = Command::new(cluster.bin.bin("pg_restore"))
        .args(["--exit-on-error", "--dbname", &no_password.expose()])
        .env(
            "PGPASSWORD",
            dest.password.as_ref().map(|p| p.expose()).unwrap_or(""),
        )
        .stdin(dump.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(dump.wait().unwrap().success(), "pg_dump failed");
    assert!(
        restore.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&restore.stderr)
    );
}

fn count(reqs: &[fake::Request], method: &str, path: &str) -> usize {
    reqs.iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

fn branches_path() -> String {
    format!("/api/v2/projects/{PROJECT}/branches")
}

/// The fake's branch named `pgship-sandbox-<id>`, created with a read-write endpoint from the
/// target's branch.
fn branch_of(fake: &FakeNeon, sandbox_id: &str) -> String {
    let want = format!("pgship-sandbox-{sandbox_id}");
    let reqs = fake.requests();
    let posts: Vec<&fake::Request> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.json()["branch"]["name"] == want.as_str())
        .collect();
    assert_eq!(posts.len(), 1, "one create-branch for {want}: {reqs:#?}");
    assert_eq!(
        posts[0].json(),
        json!({"branch": {"parent_id": "br-main-a1", "name": want},
               "endpoints": [{"type": "read_write"}]}),
        "a branch of the target's branch, with a read-write endpoint"
    );
    fake.made_branch(&want).unwrap()
}

/// Every operation of `branch` with one of `actions` was polled until `finished`.
fn awaited(fake: &FakeNeon, branch: &str, actions: &[&str]) {
    let reqs = fake.requests();
    for (id, b, action, status) in fake.operations() {
        if b != branch || !actions.contains(&action.as_str()) {
            continue;
        }
        assert_eq!(status, "finished", "{action} of {branch} was not awaited");
        let polls = count(
            &reqs,
            "GET",
            &format!("/api/v2/projects/{PROJECT}/operations/{id}"),
        );
        assert!(polls >= 2, "{action} of {branch} polled {polls} times");
    }
    let seen: Vec<String> = fake
        .operations()
        .into_iter()
        .filter(|(_, b, _, _)| b == branch)
        .map(|(_, _, a, _)| a)
        .collect();
    for a in actions {
        assert!(seen.iter().any(|s| s == a), "no {a} operation: {seen:?}");
    }
}

// ---- the neon strategy ----

#[test]
fn neon_sandbox_end_to_end_reaches_a_copy_of_the_target() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    let want = fingerprint_and_counts(&target.url);
    // The target's branch is served by the host of the target URL.
    let fake = FakeNeon::serving("127.0.0.1");
    let copies = copy_on_create(&fake, &target);
    let cli = Cli::new(fake.vars());

    // Without --show-password: the URL is redacted.
    let out = cli.run(&[
        "sandbox",
        "create",
        &target.url,
        "--sandbox",
        "neon",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["strategy"], "neon");
    assert!(v["seconds"].as_f64().is_some());
    let quiet_id = v["id"].as_str().unwrap().to_string();
    let quiet_branch = branch_of(&fake, &quiet_id);
    let quiet_copy = copies.lock().unwrap()[&quiet_branch].url(&target.name);
    let password = quiet_copy.password.as_ref().unwrap().expose().to_string();
    assert_eq!(
        v["url"],
        quiet_copy.redacted().as_str(),
        "Neon's URI for the target's database"
    );
    assert!(v["url"].as_str().unwrap().contains(":***@"), "{v}");
    no_secret(&out, &[&password]);
    awaited(&fake, &quiet_branch, &["create_branch", "start_compute"]);

    // With --show-password: the URL reaches a copy of the target.
    let out = cli.run(&[
        "sandbox",
        "create",
        &target.url,
        "--sandbox",
        "neon",
        "--show-password",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let url = v["url"].as_str().unwrap().to_string();
    let branch = branch_of(&fake, &id);
    assert_ne!(branch, quiet_branch);
    let copy = copies.lock().unwrap()[&branch].url(&target.name);
    assert_eq!(url, copy.expose());
    assert_ne!(
        DbUrl::parse(&url).unwrap().port(),
        5432,
        "not the target's server"
    );
    assert_eq!(
        fingerprint_and_counts(&url),
        want,
        "the sandbox holds the target's data"
    );
    let copy_password = copy.password.as_ref().unwrap().expose().to_string();

    // list shows both, redacted.
    let listed = cli.run(&["sandbox", "list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains(&quiet_id) && listed.stdout.contains(&id),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains(":***@127.0.0.1:"),
        "{}",
        listed.stdout
    );
    no_secret(&listed, &[&password, &copy_password]);

    // drop deletes each branch and waits for the deletion.
    for (sid, bid) in [(&quiet_id, &quiet_branch), (&id, &branch)] {
        let out = cli.run(&["sandbox", "drop", sid]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(&format!("dropped neon sandbox {sid}")),
            "{}",
            out.stdout
        );
        no_secret(&out, &[&password, &copy_password]);
        assert_eq!(
            count(
                &fake.requests(),
                "DELETE",
                &format!("{}/{bid}", branches_path())
            ),
            1
        );
        awaited(&fake, bid, &["suspend_compute", "delete_timeline"]);
    }
    assert_eq!(fake.branch_names(), vec!["main"]);
    assert!(copies.lock().unwrap().is_empty(), "the copies were removed");
    assert!(!reachable(&url), "the sandbox still answers after drop");
    assert!(cli.records().is_empty(), "{:?}", cli.records());
    let listed = cli.run(&["sandbox", "list"]);
    assert!(
        listed.stdout.contains("no kept sandboxes"),
        "{}",
        listed.stdout
    );
    // Every request carried the key in its header only.
    for r in fake.requests() {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert!(!r.path.contains(KEY));
    }
}

/// A create that fails after Neon made the branch: exit 2, the problem named, the branch
/// deleted, no record.
fn assert_failed_create_left_nothing(fake: &FakeNeon, cli: &Cli, out: &Out, copies: &Copies) {
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
    no_secret(out, &[]);
    let reqs = fake.requests();
    assert_eq!(count(&reqs, "POST", &branches_path()), 1);
    assert!(
        out.stderr.contains("br-sandbox-1") && out.stderr.contains("pgship-sandbox-"),
        "names the branch: {}",
        out.stderr
    );
    assert_eq!(
        count(
            &reqs,
            "DELETE",
            &format!("{}/br-sandbox-1", branches_path())
        ),
        1,
        "the branch Neon made was deleted"
    );
    assert_eq!(fake.branch_names(), vec!["main"]);
    assert!(copies.lock().unwrap().is_empty());
    assert!(cli.records().is_empty(), "{:?}", cli.records());
}

#[test]
fn neon_operation_that_ends_cancelled_fails_and_leaves_nothing() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    let fake = FakeNeon::serving("127.0.0.1");
    let copies = copy_on_create(&fake, &target);
    fake.script("create_branch", &["running", "cancelled"]);
    let cli = Cli::new(fake.vars());
    let out = cli.run(&[
        "sandbox",
        "create",
        &target.url,
        "--sandbox",
        "neon",
        "--format",
        "json",
    ]);
    assert_failed_create_left_nothing(&fake, &cli, &out, &copies);
    assert!(
        out.stderr.contains("(create_branch) ended `cancelled`"),
        "{}",
        out.stderr
    );
}

#[test]
fn neon_server_error_that_never_recovers_fails_and_leaves_nothing() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    let fake = FakeNeon::serving("127.0.0.1");
    let copies = copy_on_create(&fake, &target);
    // Neon made the branch, then every poll of its create_branch operation is a 500.
    fake.fail_polls("create_branch", 500);
    let cli = Cli::new(fake.vars());
    let out = cli.run(&["sandbox", "create", &target.url, "--sandbox", "neon"]);
    assert_failed_create_left_nothing(&fake, &cli, &out, &copies);
    assert!(
        out.stderr.contains("HTTP 500") && out.stderr.contains("after 6 attempts"),
        "{}",
        out.stderr
    );
}

#[test]
fn neon_create_refused_before_a_branch_exists_leaves_nothing() {
    let Some(target) = TestDb::new() else { return };
    let fake = FakeNeon::serving("127.0.0.1");
    // Every create is refused (a 400 is not retried): no branch is ever made.
    fake.fault("POST", "/branches", 400, 10)
        .body(json!({"code": "BRANCHES_LIMIT_EXCEEDED", "message": "branches limit exceeded"}))
        .add();
    let cli = Cli::new(fake.vars());
    let out = cli.run(&["sandbox", "create", &target.url, "--sandbox", "neon"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("HTTP 400 (BRANCHES_LIMIT_EXCEEDED): branches limit exceeded"),
        "{}",
        out.stderr
    );
    no_secret(&out, &[]);
    assert_eq!(fake.branch_names(), vec!["main"]);
    assert_eq!(count(&fake.requests(), "DELETE", &branches_path()), 0);
    assert!(cli.records().is_empty());
}

// ---- --keep-dump ----

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn keep_dump_writes_a_private_restorable_clone_dump_and_only_then() {
    let Some(target) = TestDb::new() else { return };
    target.query(SETUP);
    let want = fingerprint_and_counts(&target.url);
    let cli = Cli::new(Vec::new());

    let out = cli.run(&[
        "sandbox",
        "create",
        &target.url,
        "--sandbox",
        "local",
        "--keep-dump",
        "--show-password",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let dump = PathBuf::from(v["dump"].as_str().expect("the dump's path is printed"));
    let folder = dump.parent().unwrap();
    let run_id = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        run_id
            .strip_prefix("sandbox-")
            .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit())),
        "{}",
        dump.display()
    );
    assert_eq!(dump.file_name().unwrap(), "clone.dump");
    assert_eq!(
        std::fs::canonicalize(folder.parent().unwrap()).unwrap(),
        std::fs::canonicalize(cli.project.path().join(".deployments")).unwrap()
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dump), 0o600);
    assert_eq!(mode(folder), 0o700);
    // It is the only artifact.
    let files = files_under(&cli.project.path().join(".deployments"));
    assert_eq!(files.len(), 1, "{files:?}");
    // A custom-format archive of the target that pg_restore reads.
    let tools = pgship::db::tools::find_dump_tools(15).unwrap();
    let listed = Command::new(tools.bin("pg_restore"))
        .arg("--list")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let toc = String::from_utf8_lossy(&listed.stdout);
    for entry in [
        "TABLE public customers",
        "TABLE DATA public orders",
        "INDEX public orders_customer_idx",
        "FK CONSTRAINT public orders orders_customer_id_fkey",
    ] {
        assert!(toc.contains(entry), "{entry} missing from:\n{toc}");
    }
    // And the sandbox itself is a full copy.
    let url = v["url"].as_str().unwrap();
    assert_eq!(fingerprint_and_counts(url), want);
    let id = v["id"].as_str().unwrap();
    assert_eq!(cli.run(&["sandbox", "drop", id]).code, 0);
    assert!(dump.exists(), "dropping the sandbox keeps the dump");

    // Without the flag: no dump, no artifacts folder, nothing left in pgship's temp folder.
    let plain = Cli::new(Vec::new());
    let out = plain.run(&[
        "sandbox",
        "create",
        &target.url,
        "--sandbox",
        "local",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v.get("dump").is_none(), "{v}");
    assert!(!plain.project.path().join(".deployments").exists());
    let dumps: Vec<PathBuf> = files_under(plain.project.path())
        .into_iter()
        .chain(files_under(plain.tmp.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dump"))
        .collect();
    assert!(dumps.is_empty(), "{dumps:?}");
    assert_eq!(
        plain
            .run(&["sandbox", "drop", v["id"].as_str().unwrap()])
            .code,
        0
    );

    // A strategy that makes no dump refuses the flag before making anything.
    let out = plain.run(&[
        "sandbox",
        "create",
        &target.url,
        "--sandbox",
        "template",
        "--keep-dump",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--keep-dump"), "{}", out.stderr);
    assert!(!plain.project.path().join(".deployments").exists());
}

// ---- gc and Neon branches of other machines ----

fn ago(hours: f64) -> String {
    let secs = (hours * 3600.0) as i64;
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn neon_record(id: &str, branch: &str, kept: bool, pid: u32) -> Record {
    Record {
        id: id.to_string(),
        strategy: Strategy::Neon,
        url: format!("postgresql://app:pw@ep-{id}.c-3.us-east-2.aws.neon.tech/shop"),
        kept,
        pid,
        host: registry::hostname(),
        created_at: ago(9.0),
        kind: registry::Kind::Neon {
            project: PROJECT.to_string(),
            branch: branch.to_string(),
        },
    }
}

fn deleted(fake: &FakeNeon) -> Vec<String> {
    let prefix = format!("{}/", branches_path());
    let mut d: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .filter_map(|r| r.path.strip_prefix(&prefix).map(str::to_string))
        .collect();
    d.sort();
    d
}

#[test]
fn gc_removes_old_pgship_branches_that_nothing_here_keeps() {
    let fake = FakeNeon::start();
    // Left by a run on another machine 7 hours ago: a leftover.
    fake.add_branch(
        "br-old-1",
        "pgship-sandbox-20240101000000abcdef",
        false,
        false,
        &ago(7.0),
    );
    // Recent: maybe a rehearsal still running somewhere.
    fake.add_branch(
        "br-new-1",
        "pgship-sandbox-20990101000000abcdef",
        false,
        false,
        &ago(2.0),
    );
    // Old, but not pgship's.
    fake.add_branch(
        "br-feat-1",
        "feature-login",
        false,
        false,
        &ago(24.0 * 30.0),
    );
    fake.add_branch(
        "br-prefix-1",
        "my-pgship-sandbox-x",
        false,
        false,
        &ago(24.0),
    );
    // Old pgship branches this machine keeps, or a live run here owns.
    fake.add_branch("br-kept-1", "pgship-sandbox-kept1", false, false, &ago(8.0));
    fake.add_branch("br-live-1", "pgship-sandbox-live1", false, false, &ago(8.0));
    // Old, pgship's, but protected: never listed for gc.
    fake.add_branch(
        "br-prot-1",
        "pgship-sandbox-prot1",
        false,
        true,
        &ago(24.0 * 9.0),
    );
    // Recent, but recorded here by a run that died: the registry rule removes it.
    fake.add_branch("br-dead-1", "pgship-sandbox-dead1", false, false, &ago(0.2));
    let cli = Cli::new(fake.vars());
    cli.write_record(&neon_record("kept1", "br-kept-1", true, 1));
    cli.write_record(&neon_record(
        "live1",
        "br-live-1",
        false,
        std::process::id(),
    ));
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    cli.write_record(&neon_record("dead1", "br-dead-1", false, dead_pid));

    let out = cli.run(&["sandbox", "gc"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "removed Neon branch pgship-sandbox-20240101000000abcdef (br-old-1), created"
        ) && out.stdout.contains("older than 6h"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("removed neon sandbox dead1"),
        "{}",
        out.stdout
    );
    assert_eq!(deleted(&fake), vec!["br-dead-1", "br-old-1"]);
    no_secret(&out, &["pw@"]);
    let mut left = fake.branch_names();
    left.sort();
    assert_eq!(
        left,
        vec![
            "feature-login",
            "main",
            "my-pgship-sandbox-x",
            "pgship-sandbox-20990101000000abcdef",
            "pgship-sandbox-kept1",
            "pgship-sandbox-live1",
            "pgship-sandbox-prot1",
        ]
    );
    // The records of the kept sandbox and the live run stay; the dead run's is gone.
    let mut records: Vec<String> = cli
        .records()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    records.sort();
    assert_eq!(records, vec!["kept1", "live1"]);

    // A shorter `[sandbox] neon_gc_age` takes the 2-hour-old branch too.
    std::fs::write(
        cli.project.path().join("pgship.toml"),
        "[sandbox]\nneon_gc_age = \"90m\"\n",
    )
    .unwrap();
    let out = cli.run(&["sandbox", "gc", "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["failed"], json!([]));
    let removed = v["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{v}");
    assert!(
        removed[0].as_str().unwrap().contains("(br-new-1)")
            && removed[0].as_str().unwrap().contains("older than 90m"),
        "{v}"
    );
    assert_eq!(deleted(&fake), vec!["br-dead-1", "br-new-1", "br-old-1"]);

    // Nothing old is left: nothing to remove.
    let out = cli.run(&["sandbox", "gc"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("nothing to remove"), "{}", out.stdout);

    // A value that is not a duration names the key.
    std::fs::write(
        cli.project.path().join("pgship.toml"),
        "[sandbox]\nneon_gc_age = \"soon\"\n",
    )
    .unwrap();
    let out = cli.run(&["sandbox", "gc"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("neon_gc_age"), "{}", out.stderr);
}

#[test]
fn gc_without_neon_variables_asks_neon_nothing_and_a_failing_api_is_reported() {
    let fake = FakeNeon::start();
    fake.add_branch("br-old-1", "pgship-sandbox-old", false, false, &ago(7.0));
    let cli = Cli::new(Vec::new());
    let out = cli.run(&["sandbox", "gc"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(fake.requests().is_empty());

    // NEON_API_KEY and NEON_PROJECT_ID set, the API refusing: gc says so and exits 2.
    let mut vars = fake.vars();
    vars[0].1 = "napi_TESTKEY_wrong".into();
    let cli = Cli::new(vars);
    let out = cli.run(&["sandbox", "gc"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("could not remove Neon branches of project")
            && out.stdout.contains("HTTP 401"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("napi_TESTKEY_wrong") && !out.stderr.contains("wrong"));
    assert_eq!(fake.branch_names(), vec!["main", "pgship-sandbox-old"]);
}
