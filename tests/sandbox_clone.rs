//! The clone engine against real PostgreSQL: a source with tables, rows, indexes, foreign
//! keys, a partitioned table, a view, a matview, functions, a trigger, enums, sequences with
//! advanced values, a large object, grants and the `citext` and `pg_trgm` extensions is cloned
//! into a fresh database on the same server, into a throwaway PostgreSQL 15 cluster and into a
//! PostgreSQL 18 cluster, with the same schema fingerprint, row counts and sequence values;
//! `--data schema` gives the schema and no rows; a table locked by the application fails the
//! clone within the lock wait and leaves the source untouched; no password reaches a child's
//! command line or environment; `--keep-dump` writes a 0600 dump `pg_restore -l` reads; several
//! data streams give the same result as one; dropping the clone kills its children. The rows
//! pgship copies itself (binary or text `COPY`) are the same, row for row, for every built-in
//! type's edge values, types only text carries across servers, generated and dropped columns,
//! a table without columns, inheritance, unlogged tables and partitions, on PostgreSQL 15 and
//! 18; large tables are written frozen. Throwaway clusters start from a private initdb
//! template, each with its own password.
//!
//! `cargo test --release --test sandbox_clone bench -- --ignored --nocapture` compares the
//! clone with `pg_dump --file` + `pg_restore` on `$PGSHIP_BENCH_DB` (e.g. a `pgbench -i -s 50`
//! database).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pgship::cluster::{ClusterOptions, LocalCluster};
use pgship::compare::SchemaFilter;
use pgship::compare::introspect::introspect;
use pgship::db::tools::{self, BinDir};
use pgship::db::{ConnectOptions, DbUrl, connect};
use pgship::sandbox::clone::{CloneError, CloneOptions, CloneReport, DataMode, Progress, clone};

/// A role on the shared server, dropped after the databases that reference it.
struct Role(String);

impl Role {
    fn new(prefix: &str, extra: &str) -> Role {
        let name = format!("{prefix}_{}", pgship::util::random_hex(4));
        query(&admin_url(), &format!("CREATE ROLE {name} {extra}"));
        Role(name)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let url = DbUrl::parse(&admin_url()).unwrap();
        let name = self.0.clone();
        let _ = rt().block_on(async move {
            let c = connect(&url, &ConnectOptions::default()).await?;
            let _ = c
                .client
                .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
                .await;
            Ok::<_, pgship::db::DbError>(())
        });
    }
}

fn rich_schema(reader: &str) -> String {
    format!(
        r#"
CREATE EXTENSION citext;
CREATE EXTENSION pg_trgm;
CREATE SCHEMA billing;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE customers (
  id serial PRIMARY KEY,
  email citext NOT NULL UNIQUE,
  name text NOT NULL,
  mood mood NOT NULL DEFAULT 'ok',
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE customers IS 'people who buy';
CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops);
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers (id),
  total numeric(12,2) NOT NULL CHECK (total >= 0),
  note text
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE SEQUENCE billing.invoice_no START 1000 INCREMENT 7;
CREATE TABLE billing.invoices (
  no bigint PRIMARY KEY DEFAULT nextval('billing.invoice_no'),
  order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  issued date NOT NULL
);
CREATE TABLE events (id bigserial, at date NOT NULL, payload jsonb, PRIMARY KEY (id, at))
  PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX events_payload_idx ON events USING gin (payload);
-- Primary keys and unique constraints pgship builds itself (with INCLUDE, storage options,
-- NULLS NOT DISTINCT, replica identity, CLUSTER ON, a comment), and the ones it leaves to
-- pg_restore (deferrable, exclusion); foreign keys it adds unchecked and the ones it leaves
-- (NOT VALID, commented).
CREATE TABLE shapes (
  id int NOT NULL,
  ref int NOT NULL,
  code text,
  parent_id int,
  during tsrange,
  CONSTRAINT shapes_pkey PRIMARY KEY (id) INCLUDE (code),
  CONSTRAINT shapes_ref_key UNIQUE (ref) WITH (fillfactor = 70),
  CONSTRAINT shapes_code_key UNIQUE NULLS NOT DISTINCT (code),
  CONSTRAINT shapes_code_deferred UNIQUE (code, id) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT shapes_no_overlap EXCLUDE USING gist (during WITH &&),
  CONSTRAINT shapes_parent_fk FOREIGN KEY (parent_id) REFERENCES shapes (id) ON DELETE SET NULL
);
ALTER TABLE shapes REPLICA IDENTITY USING INDEX shapes_ref_key;
ALTER TABLE shapes CLUSTER ON shapes_pkey;
COMMENT ON CONSTRAINT shapes_pkey ON shapes IS 'the key';
ALTER TABLE shapes ADD CONSTRAINT shapes_ref_fk FOREIGN KEY (ref) REFERENCES customers (id) NOT VALID;
ALTER TABLE shapes ADD CONSTRAINT shapes_customer_fk FOREIGN KEY (ref) REFERENCES customers (id);
COMMENT ON CONSTRAINT shapes_customer_fk ON shapes IS 'commented: pg_restore adds it';
CREATE FUNCTION order_total(c int) RETURNS numeric LANGUAGE sql STABLE
  AS $$ SELECT coalesce(sum(total), 0) FROM orders WHERE customer_id = c $$;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN NEW.note := coalesce(NEW.note, 'n/a'); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW big_spenders AS
  SELECT c.id, c.email, order_total(c.id) AS spent FROM customers c WHERE order_total(c.id) > 100;
CREATE MATERIALIZED VIEW order_counts AS
  SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id;
CREATE UNIQUE INDEX order_counts_idx ON order_counts (customer_id);
GRANT SELECT ON customers, orders TO {reader};
GRANT USAGE ON SCHEMA billing TO {reader};
GRANT SELECT, INSERT ON billing.invoices TO {reader};

INSERT INTO customers (email, name, mood)
  SELECT 'User' || g || '@Example.com', 'name ' || g, (ARRAY['sad','ok','happy'])[1 + g % 3]::mood
  FROM generate_series(1, 2000) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 2000, (g % 500) + 0.5 FROM generate_series(1, 6000) g;
INSERT INTO billing.invoices (order_id, issued)
  SELECT id, date '2025-01-01' + (id % 300)::int FROM orders WHERE id % 3 = 0;
INSERT INTO events (at, payload)
  SELECT date '2024-06-01' + (g % 400), jsonb_build_object('k', g) FROM generate_series(1, 3000) g;
INSERT INTO shapes
  SELECT g, g, CASE WHEN g = 7 THEN NULL ELSE 'c' || g END, NULLIF(g - 1, 0),
         tsrange(timestamp '2024-01-01' + g * interval '1 day', timestamp '2024-01-01' + (g + 1) * interval '1 day')
  FROM generate_series(1, 500) g;
REFRESH MATERIALIZED VIEW order_counts;
SELECT setval('customers_id_seq', 5000);
SELECT setval(pg_get_serial_sequence('orders', 'id'), 9000, false);
SELECT lo_from_bytea(0, 'hello large object');
ANALYZE;
"#
    )
}

fn filter() -> SchemaFilter {
    SchemaFilter {
        include: vec![],
        exclude: vec!["pgship".into()],
    }
}

/// The schema model of `url` as pretty JSON (so a mismatch shows a readable diff) and its
/// fingerprint.
fn model(url: &str) -> (String, String) {
    let url = DbUrl::parse(url).unwrap();
    rt().block_on(async {
        let c = connect(&url, &ConnectOptions::default()).await.unwrap();
        let m = introspect(&c.client, &filter()).await.unwrap();
        (serde_json::to_string_pretty(&m).unwrap(), m.fingerprint())
    })
}

/// Every ordinary table outside the system schemas, qualified and quoted, by name.
fn user_tables(url: &str) -> Vec<String> {
    query(
        url,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname !~ '^pg_toast' ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// `schema.table count` for every table, sequences' values, matviews' populated state and
/// the number of large objects.
fn contents(url: &str) -> Vec<String> {
    let tables = user_tables(url);
    let mut out: Vec<String> = tables
        .iter()
        .map(|t| {
            let n = query(url, &format!("SELECT count(*) FROM {t}"));
            format!("{t} {}", n[0][0].clone().unwrap())
        })
        .collect();
    for r in query(
        url,
        "SELECT schemaname || '.' || sequencename, coalesce(last_value::text, 'not called') \
         FROM pg_sequences ORDER BY 1",
    ) {
        out.push(format!(
            "sequence {} {}",
            r[0].clone().unwrap(),
            r[1].clone().unwrap()
        ));
    }
    for r in query(
        url,
        "SELECT matviewname, ispopulated::text FROM pg_matviews ORDER BY 1",
    ) {
        out.push(format!(
            "matview {} populated {}",
            r[0].clone().unwrap(),
            r[1].clone().unwrap()
        ));
    }
    let lo = query(url, "SELECT count(*) FROM pg_largeobject_metadata");
    out.push(format!("large objects {}", lo[0][0].clone().unwrap()));
    out
}

fn dump_tools(url: &str) -> BinDir {
    let url = DbUrl::parse(url).unwrap();
    let major = rt().block_on(async {
        connect(&url, &ConnectOptions::default())
            .await
            .unwrap()
            .version
            .major()
    });
    tools::find_dump_tools(major).unwrap()
}

fn run_clone(
    source: &str,
    dest: &str,
    opts: &CloneOptions,
) -> (Result<CloneReport, CloneError>, Vec<Progress>) {
    let (s, d) = (DbUrl::parse(source).unwrap(), DbUrl::parse(dest).unwrap());
    let seen = std::cell::RefCell::new(Vec::new());
    let result = rt().block_on(clone(&s, &d, opts, &|p| seen.borrow_mut().push(p)));
    (result, seen.into_inner())
}

/// A new empty database on `cluster`, returning its URL.
fn cluster_db(cluster: &LocalCluster, name: &str) -> String {
    query(
        &cluster.url("postgres").expose(),
        &format!("CREATE DATABASE {name}"),
    );
    cluster.url(name).expose()
}

fn cluster_of_major(major: u32) -> Option<LocalCluster> {
    let bin = if major == 18 {
        tools::at(&pg18_bin()?, "postgres").expect("PostgreSQL 18 binaries run")
    } else {
        match tools::candidates(&["initdb", "pg_ctl", "postgres"])
            .into_iter()
            .find(|b| b.major == major)
        {
            Some(b) => b,
            None if in_ci() => panic!("CI=true and no PostgreSQL {major} server binaries"),
            None => {
                eprintln!("SKIPPED: no PostgreSQL {major} server binaries");
                return None;
            }
        }
    };
    Some(
        LocalCluster::start(&ClusterOptions {
            bin: Some(bin),
            ..Default::default()
        })
        .unwrap(),
    )
}

/// A model's JSON without the views' definitions and/or the extensions' versions.
fn masked(json: &str, views: bool, extensions: bool) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    if views {
        for (_, view) in v["views"].as_object_mut().unwrap().iter_mut() {
            view["definition"] = serde_json::Value::Null;
        }
    }
    if extensions {
        for (_, version) in v["extensions"].as_object_mut().unwrap().iter_mut() {
            *version = serde_json::Value::Null;
        }
    }
    serde_json::to_string_pretty(&v).unwrap()
}

fn assert_same(source: &str, dest: &str) {
    let (src_json, src_fp) = model(source);
    let (dst_json, dst_fp) = model(dest);
    assert_eq!(src_json, dst_json, "schema models differ");
    assert_eq!(src_fp, dst_fp);
    assert_eq!(contents(source), contents(dest));
}

#[test]
fn clones_into_a_fresh_database_on_the_same_server() {
    let reader = Role::new("pgship_clone_reader", "NOLOGIN");
    let Some(src) = TestDb::new() else { return };
    src.query(&rich_schema(&reader.0));
    let dst = TestDb::new().unwrap();
    let opts = CloneOptions::new(dump_tools(&src.url));
    let (result, progress) = run_clone(&src.url, &dst.url, &opts);
    let report = result.unwrap();
    assert_same(&src.url, &dst.url);
    // Customers, orders, invoices, shapes, two partitions and the partitioned parent.
    assert_eq!(report.tables, 7, "{report:?}");
    assert!(report.bytes > 100_000, "{report:?}");
    assert!(report.roles_created.is_empty());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let steps: Vec<&str> = report.steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        steps,
        ["prepare", "schema", "data", "indexes and constraints"]
    );
    let last = progress.last().unwrap();
    assert_eq!(last.tables_done, last.tables_total, "{last:?}");
    assert_eq!(last.tables_total, 6);
    eprintln!("{}", report.summary());
}

#[test]
fn clones_into_throwaway_clusters_of_postgres_15_and_18() {
    let reader = Role::new("pgship_clone_reader", "NOLOGIN");
    let Some(src) = TestDb::new() else { return };
    src.query(&rich_schema(&reader.0));
    let tools = dump_tools(&src.url);
    for major in [15, 18] {
        let Some(cluster) = cluster_of_major(major) else {
            continue;
        };
        let dest = cluster_db(&cluster, "sandbox");
        // Without permission to create roles, the missing reader role is an error.
        let opts = CloneOptions::new(tools.clone());
        let err = run_clone(&src.url, &dest, &opts).0.unwrap_err();
        assert!(
            matches!(&err, CloneError::MissingRoles { roles } if roles.contains(&reader.0)),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("CREATE ROLE"));
        // As the local strategy clones: roles created, foreign keys added unchecked.
        let opts = CloneOptions {
            create_missing_roles: true,
            trust_foreign_keys: true,
            ..opts
        };
        let report = run_clone(&src.url, &dest, &opts).0.unwrap();
        assert_eq!(report.roles_created, vec![reader.0.clone()], "PG {major}");
        let keys = query(
            &dest,
            "SELECT conname::text, convalidated::text, obj_description(oid, 'pg_constraint') \
             FROM pg_constraint WHERE conrelid = 'shapes'::regclass AND contype <> 'n' ORDER BY 1",
        );
        let keys: Vec<String> = keys
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?}",
                    r[0].clone().unwrap(),
                    r[1].clone().unwrap(),
                    r[2]
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "shapes_code_deferred true None",
                "shapes_code_key true None",
                "shapes_customer_fk true Some(\"commented: pg_restore adds it\")",
                "shapes_no_overlap true None",
                "shapes_parent_fk true None",
                "shapes_pkey true Some(\"the key\")",
                "shapes_ref_fk false None",
                "shapes_ref_key true None",
            ],
            "PG {major}"
        );
        assert!(
            report.warnings.is_empty(),
            "PG {major}: {:?}",
            report.warnings
        );
        if major == 15 {
            assert_same(&src.url, &dest);
        } else {
            // A newer server deparses views its own way (PostgreSQL 16 dropped the table
            // prefix of single-table views): compare the rest with the source (extension
            // versions included), and the views with what pg_dump + pg_restore give on that
            // server (which installs its default extension versions).
            let clone = model(&dest).0;
            assert_eq!(
                masked(&model(&src.url).0, true, false),
                masked(&clone, true, false)
            );
            assert_eq!(contents(&src.url), contents(&dest));
            let reference = format!("reference{major}");
            let dump = tempfile::tempdir().unwrap();
            let src_url = DbUrl::parse(&src.url).unwrap();
            baseline(
                &tools,
                &src_url,
                &dump.path().join("x"),
                &cluster,
                &reference,
            );
            let reference = model(&cluster.url(&reference).expose()).0;
            assert_eq!(masked(&reference, false, true), masked(&clone, false, true));
        }
        let grants = query(
            &dest,
            &format!(
                "SELECT has_table_privilege('{}', 'billing.invoices', 'INSERT')::text",
                reader.0
            ),
        );
        assert_eq!(grants[0][0].as_deref(), Some("true"));
        eprintln!("PG {major}: {}", report.summary());
    }
}

#[test]
fn a_non_superuser_destination_keeps_grants_and_drops_owners() {
    let reader = Role::new("pgship_clone_reader", "NOLOGIN");
    let owner = Role::new("pgship_clone_owner", "LOGIN PASSWORD 'owner-pw'");
    let Some(src) = TestDb::new() else { return };
    src.query(&rich_schema(&reader.0));
    let dst = TestDb::new().unwrap();
    dst.query(&format!("ALTER DATABASE {} OWNER TO {}", dst.name, owner.0));
    let mut dest = DbUrl::parse(&dst.url).unwrap();
    dest.user = Some(owner.0.clone());
    dest.password = Some(pgship::db::url::Secret::new("owner-pw"));
    let opts = CloneOptions::new(dump_tools(&src.url));
    let report = run_clone(&src.url, &dest.expose(), &opts).0.unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("not a superuser")),
        "{:?}",
        report.warnings
    );
    assert_same(&src.url, &dst.url);
    let owners = dst.query(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace \
         IN ('public'::regnamespace, 'billing'::regnamespace)",
    );
    assert_eq!(owners, vec![vec![Some(owner.0.clone())]]);
}

#[test]
fn schema_only_gives_the_schema_and_no_rows() {
    let reader = Role::new("pgship_clone_reader", "NOLOGIN");
    let Some(src) = TestDb::new() else { return };
    src.query(&rich_schema(&reader.0));
    let dst = TestDb::new().unwrap();
    let opts = CloneOptions {
        data: DataMode::Schema,
        ..CloneOptions::new(dump_tools(&src.url))
    };
    let report = run_clone(&src.url, &dst.url, &opts).0.unwrap();
    assert_eq!(model(&src.url), model(&dst.url));
    let contents = contents(&dst.url);
    for line in &contents {
        if line.starts_with("sequence") {
            assert!(line.ends_with("not called"), "{line}");
        } else if line.starts_with("matview") {
            assert!(line.ends_with("populated false"), "{line}");
        } else {
            assert!(line.ends_with(" 0"), "{line}");
        }
    }
    assert_eq!(report.tables, 7);
    let steps: Vec<&str> = report.steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(steps, ["prepare", "schema", "indexes and constraints"]);
}

#[test]
fn a_locked_table_fails_fast_and_leaves_the_source_untouched() {
    let Some(src) = TestDb::new() else { return };
    src.query(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE busy (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT generate_series(1, 100); INSERT INTO busy VALUES (1, 'x');",
    );
    let dst = TestDb::new().unwrap();
    let before = (model(&src.url), contents(&src.url));
    let opts = CloneOptions {
        lock_wait_timeout: Duration::from_secs(1),
        ..CloneOptions::new(dump_tools(&src.url))
    };
    let (s, d) = (
        DbUrl::parse(&src.url).unwrap(),
        DbUrl::parse(&dst.url).unwrap(),
    );
    let (err, elapsed) = rt().block_on(async {
        let app = connect(&s, &ConnectOptions::default()).await.unwrap();
        app.client
            .batch_execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let t = Instant::now();
        let err = clone(&s, &d, &opts, &|_| {}).await.unwrap_err();
        let elapsed = t.elapsed();
        app.client.batch_execute("ROLLBACK").await.unwrap();
        (err, elapsed)
    });
    let msg = err.to_string();
    assert!(matches!(err, CloneError::Locked { .. }), "{msg}");
    assert!(
        msg.contains("public.busy") && msg.contains("gave up after 1s") && msg.contains("pid "),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("--lock-wait-timeout"));
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    eprintln!("{msg} ({elapsed:?})");
    assert_eq!((model(&src.url), contents(&src.url)), before);
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        src.name
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while src.scalar(&sql).as_deref() != Some("0") {
        assert!(Instant::now() < deadline, "a session of the clone remains");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Scan every process's command line and environment for `needles` until `stop`; return
/// how many pg_dump/pg_restore processes were seen, every leak found, and the passfiles they
/// were given (checked to be mode 0600 while they exist).
fn watch_processes(
    needles: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (usize, Vec<String>, BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    let mut passfiles = BTreeSet::new();
    let mut leaks = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if pid.parse::<u32>().is_err() {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmd.contains("pg_dump ") || cmd.contains("pg_restore ") {
                seen.insert(pid.clone());
                let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
                let env = String::from_utf8_lossy(&environ).replace('\0', " ");
                for n in &needles {
                    if cmd.contains(n.as_str()) || env.contains(n.as_str()) {
                        leaks.push(format!("pid {pid}: {cmd}"));
                    }
                }
                let passfile = env
                    .split(' ')
                    .find_map(|kv| kv.strip_prefix("PGPASSFILE="))
                    .map(str::to_string);
                if let Some(f) = passfile.filter(|f| passfiles.insert(f.clone())) {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(m) = std::fs::metadata(&f) {
                        if m.permissions().mode() & 0o777 != 0o600 {
                            leaks.push(format!("{f} has mode {:o}", m.permissions().mode()));
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (seen.len(), leaks, passfiles)
}

#[test]
fn passwords_never_reach_a_command_line() {
    let password = format!("canary-{}", pgship::util::random_hex(6));
    let role = Role::new("pgship_clone_pw", &format!("LOGIN PASSWORD '{password}'"));
    let Some(src) = TestDb::new() else { return };
    src.query(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, repeat('v', 200) FROM generate_series(1, 200000) g;
         CREATE TABLE u (id int REFERENCES t);
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {0};",
        role.0
    ));
    let mut source = DbUrl::parse(&src.url).unwrap();
    source.user = Some(role.0.clone());
    source.password = Some(pgship::db::url::Secret::new(password.clone()));
    let Some(cluster) = cluster_of_major(15).or_else(|| cluster_of_major(18)) else {
        return;
    };
    let dest = DbUrl::parse(&cluster_db(&cluster, "sandbox")).unwrap();
    let dest_password = dest.password.as_ref().unwrap().expose().to_string();
    let opts = CloneOptions {
        create_missing_roles: true,
        ..CloneOptions::new(dump_tools(&src.url))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let needles = vec![password.clone(), dest_password.clone()];
        std::thread::spawn(move || watch_processes(needles, stop))
    };
    let result = rt().block_on(clone(&source, &dest, &opts, &|_| {}));
    stop.store(true, Ordering::Relaxed);
    let (seen, leaks, passfiles) = watcher.join().unwrap();
    let report = result.unwrap();
    assert!(
        seen >= 2,
        "the watcher saw {seen} pg_dump/pg_restore processes"
    );
    assert!(leaks.is_empty(), "{leaks:?}");
    assert!(!format!("{report:?}").contains(&password));
    assert_eq!(contents(&src.url), contents(&dest.expose()));
    // The children's passfile was private, and it is gone with its folder.
    assert!(!passfiles.is_empty());
    for f in &passfiles {
        let dir = Path::new(f).parent().unwrap();
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }

    // A failing child's error carries no password either: a type named like the source's
    // table makes pg_restore (not pgship's own checks) fail.
    let dst2 = DbUrl::parse(&cluster_db(&cluster, "sandbox2")).unwrap();
    query(
        &cluster.url("sandbox2").expose(),
        "CREATE TYPE t AS ENUM ('x')",
    );
    let err = rt()
        .block_on(clone(&source, &dst2, &opts, &|_| {}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pg_restore") && err.contains("already exists"),
        "{err}"
    );
    assert!(
        !err.contains(&password) && !err.contains(&dest_password),
        "{err}"
    );
}

#[test]
fn keep_dump_writes_a_private_archive() {
    let reader = Role::new("pgship_clone_reader", "NOLOGIN");
    let Some(src) = TestDb::new() else { return };
    src.query(&rich_schema(&reader.0));
    let dst = TestDb::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clone.dump");
    let tools = dump_tools(&src.url);
    let opts = CloneOptions {
        keep_dump: Some(path.clone()),
        ..CloneOptions::new(tools.clone())
    };
    let report = run_clone(&src.url, &dst.url, &opts).0.unwrap();
    assert_same(&src.url, &dst.url);
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), report.bytes);
    let list = std::process::Command::new(tools.bin("pg_restore"))
        .arg("--list")
        .arg(&path)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    for entry in [
        "TABLE DATA public customers",
        "INDEX public customers_name_trgm",
        "FK CONSTRAINT public orders",
    ] {
        assert!(list.contains(entry), "{entry} missing from\n{list}");
    }

    // An existing file is never overwritten.
    let dst2 = TestDb::new().unwrap();
    std::fs::write(&path, b"keep me").unwrap();
    let err = run_clone(&src.url, &dst2.url, &opts).0.unwrap_err();
    assert!(err.to_string().contains("clone.dump"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn several_data_streams_give_the_same_clone() {
    let reader = Role::new("pgship_clone_reader", "NOLOGIN");
    let Some(src) = TestDb::new() else { return };
    src.query(&rich_schema(&reader.0));
    // Enough data (by the planner's estimate) for two streams with four jobs.
    src.query(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, repeat('b', 120) FROM generate_series(1, 500000) g;",
    );
    src.query("VACUUM ANALYZE big");
    let dst = TestDb::new().unwrap();
    let opts = CloneOptions {
        jobs: 4,
        ..CloneOptions::new(dump_tools(&src.url))
    };
    let (result, progress) = run_clone(&src.url, &dst.url, &opts);
    let report = result.unwrap();
    let steps: Vec<&str> = report.steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        steps,
        ["prepare", "schema", "data", "indexes and constraints"]
    );
    assert_same(&src.url, &dst.url);
    let last = progress.last().unwrap();
    assert_eq!((last.tables_done, last.tables_total), (7, 7), "{last:?}");
    eprintln!("{}", report.summary());
}

/// Tables whose rows pgship copies itself in both formats: built-in types in binary
/// (including edge values), and in text what only text carries across servers (`regclass`
/// values are names there, OIDs in binary; enums, domains, composites, extension types); a
/// generated and a dropped column, a table without columns, inheritance, an unlogged table,
/// partitions, names that need quoting, and a table big enough to be filled frozen. (No `xml`:
/// the PostgreSQL 18 build the tests use has no libxml.)
const AWKWARD: &str = r#"
CREATE EXTENSION citext;
CREATE SCHEMA "Odd Schema";
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN pos AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE "Odd Schema"."Mixed ""Case""" (
  id int PRIMARY KEY,
  "Weird ""Col""" text,
  dropped_later int,
  rel regclass,
  typ regtype,
  mo mood,
  moods mood[],
  p pos,
  pr pair,
  ci citext,
  g int GENERATED ALWAYS AS (id * 2) STORED
);
ALTER TABLE "Odd Schema"."Mixed ""Case""" DROP COLUMN dropped_later;
INSERT INTO "Odd Schema"."Mixed ""Case""" (id, "Weird ""Col""", rel, typ, mo, moods, p, pr, ci)
VALUES (1, E'tab\there\nnewline \\ backslash, ünïcødé', '"Odd Schema"."Mixed ""Case"""', 'mood',
        'ok', '{sad,ok}', 5, ROW(1, 'x,y'), 'MiXeD'),
       (2, NULL, 'pg_class', 'int4', NULL, NULL, NULL, NULL, NULL);
CREATE TABLE builtin_types (
  id int, n numeric, f float8, r real, ts timestamptz, t timestamp, d date, tm time,
  tz timetz, iv interval, b bytea, bits varbit, bt bit(4), m money, j jsonb, js json,
  arr int[], tarr text[], narr numeric[], rng int4range, trng tstzrange, u uuid, ip inet,
  cidr_ cidr, mac macaddr, tv tsvector, tq tsquery, pt point, bx box, ch char(5),
  vc varchar(10), nm name, bo bool, i2 int2, i8 int8, o oid, lsn pg_lsn
);
INSERT INTO builtin_types VALUES
  (1, 'NaN', 'NaN', '-Infinity', 'infinity', '-infinity', 'infinity', '24:00', '23:59+05:30',
   '-1 year 2 mons -3 days 04:05:06.789', E'\\x00ff00', B'10110', B'1010', '-12.34',
   '{"a": [1, 2.50, null], "b": "ü"}', '{"keep":  "spacing"}', '{1,NULL,-3}', '{"a b",NULL,"c,d"}',
   '{Infinity,-0.0,1e-30}', '[1,5)', '[2024-01-01 00:00+00,)', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03', 'a:1 b:2,3',
   'a & !b', '(1.5,-2)', '((0,0),(1,1))', 'ab', 'x', 'nom', true, -32768, 9223372036854775807,
   4294967295, '16/B374D848'),
  (2, '-0.000123456789012345678901234567890', -0.0, 3.4e38, '1999-12-31 23:59:59.999999+14',
   '0001-01-01 00:00', '4713-01-01 BC', '00:00', '00:00-12', '0', '', B'', B'0000', '0',
   'null', '[]', '{}', '{}', '{}', 'empty', 'empty', '00000000-0000-0000-0000-000000000000',
   '0.0.0.0', '::/0', '00:00:00:00:00:00', '', 'a', '(0,0)', '((0,0),(0,0))', '', '', '',
   false, 0, 0, 0, '0/0'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE nocols ();
INSERT INTO nocols SELECT FROM generate_series(1, 3);
CREATE TABLE parent (id int, v text);
CREATE TABLE child (extra int) INHERITS (parent);
INSERT INTO parent VALUES (1, 'in the parent only');
INSERT INTO child VALUES (2, 'in the child', 7);
CREATE UNLOGGED TABLE scratch (id int, v text);
INSERT INTO scratch SELECT g, 'u' || g FROM generate_series(1, 50) g;
CREATE TABLE measurements (id int, at date NOT NULL, v float8) PARTITION BY RANGE (at);
CREATE TABLE measurements_a PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_b PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO measurements SELECT g, date '2024-06-01' + g % 400, g / 7.0 FROM generate_series(1, 2000) g;
CREATE TABLE big (id int PRIMARY KEY, v text, n numeric, ts timestamptz, arr int[]);
INSERT INTO big SELECT g, CASE WHEN g % 97 = 0 THEN NULL ELSE repeat(E'é\t', g % 7) || md5(g::text) END,
  g / 3.0, timestamptz '2020-01-01' + g * interval '1 minute', ARRAY[g, -g]
  FROM generate_series(1, 120000) g;
CREATE INDEX big_v ON big (v);
ANALYZE;
"#;

/// Every table's row count and a hash of its rows' text (in one session setting for all
/// servers), by name.
fn table_contents(url: &str) -> Vec<String> {
    let tables = user_tables(url);
    tables
        .iter()
        .map(|t| {
            let rows = query(
                url,
                &format!(
                    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
                     SET extra_float_digits = 3; SET lc_monetary = 'C'; SET search_path = public; \
                     SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) \
                     FROM ONLY {t} x"
                ),
            );
            format!(
                "{t} {} {}",
                rows[0][0].clone().unwrap(),
                rows[0][1].clone().unwrap()
            )
        })
        .collect()
}

#[test]
fn copies_every_type_and_table_shape_exactly() {
    let Some(src) = TestDb::new() else { return };
    src.query(AWKWARD);
    let want = table_contents(&src.url);
    assert!(want.len() >= 9, "{want:?}");
    let tools = dump_tools(&src.url);
    // A fresh database on the same server, in two streams (a session imports the snapshot).
    let dst = TestDb::new().unwrap();
    let opts = CloneOptions {
        jobs: 4,
        ..CloneOptions::new(tools.clone())
    };
    let report = run_clone(&src.url, &dst.url, &opts).0.unwrap();
    eprintln!("{}", report.summary());
    assert_eq!(table_contents(&dst.url), want);
    assert_eq!(model(&src.url), model(&dst.url));
    // The big table was written frozen and all-visible (COPY FREEZE), the small ones not.
    let frozen = "SELECT all_frozen::text, (SELECT relpages FROM pg_class WHERE oid = 'big'::regclass)::text \
                  FROM pg_visibility_map_summary('big')";
    let has_visibility =
        dst.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_visibility'");
    if has_visibility.as_deref() == Some("1") {
        dst.query("CREATE EXTENSION pg_visibility");
        let row = dst.query(frozen);
        assert_eq!(row[0][0], row[0][1], "all of big's pages are frozen");
        assert!(row[0][1].as_deref() != Some("0"));
    }
    // A newer server: the built-in types' binary format and the text of the others read the
    // same there.
    if let Some(cluster) = cluster_of_major(18) {
        let dest = cluster_db(&cluster, "sandbox");
        let opts = CloneOptions {
            create_missing_roles: true,
            ..CloneOptions::new(tools)
        };
        run_clone(&src.url, &dest, &opts).0.unwrap();
        assert_eq!(table_contents(&dest), want);
    }
}

#[test]
fn throwaway_clusters_start_from_a_private_template_with_their_own_passwords() {
    let Some(a) = cluster_of_major(15) else {
        return;
    };
    let Some(b) = cluster_of_major(15) else {
        return;
    };
    let Some(root) = pgship::cluster::cache_root() else {
        eprintln!("SKIPPED: no cache folder (HOME unset)");
        return;
    };
    let templates: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("template-15-") && !n.contains(".tmp-")
        })
        .collect();
    assert!(!templates.is_empty(), "no template in {}", root.display());
    use std::os::unix::fs::PermissionsExt;
    for t in &templates {
        let mode = t.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is not private", t.path().display());
    }
    // Nothing of the template is left in the temp root.
    let temp = pgship::cluster::temp_root().unwrap();
    for e in std::fs::read_dir(&temp).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.starts_with("template-"), "{n} in {}", temp.display());
    }
    let (ua, ub) = (a.url("postgres"), b.url("postgres"));
    assert_ne!(ua.password, ub.password);
    assert_eq!(query(&ub.expose(), "SELECT 1")[0][0].as_deref(), Some("1"));
    // a's password does not open b.
    let mut wrong = ub.clone();
    wrong.password = ua.password.clone();
    let refused = rt().block_on(connect(&wrong, &ConnectOptions::default()));
    assert!(refused.is_err(), "a's password opened b");
}

#[test]
fn refuses_the_source_itself_and_a_non_empty_destination() {
    let Some(src) = TestDb::new() else { return };
    src.query("CREATE TABLE t (id int)");
    let opts = CloneOptions::new(dump_tools(&src.url));
    let err = run_clone(&src.url, &src.url, &opts).0.unwrap_err();
    assert!(matches!(err, CloneError::SameDatabase(_)), "{err}");
    let dst = TestDb::new().unwrap();
    dst.query("CREATE TABLE leftover (id int)");
    let err = run_clone(&src.url, &dst.url, &opts).0.unwrap_err();
    assert!(
        matches!(err, CloneError::NotEmpty { relations: 1, .. }),
        "{err}"
    );
}

#[test]
fn dropping_the_clone_kills_its_children() {
    let Some(src) = TestDb::new() else { return };
    src.query(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, repeat('v', 300) FROM generate_series(1, 400000) g;",
    );
    let dst = TestDb::new().unwrap();
    let opts = CloneOptions::new(dump_tools(&src.url));
    let (s, d) = (
        DbUrl::parse(&src.url).unwrap(),
        DbUrl::parse(&dst.url).unwrap(),
    );
    let cut = rt().block_on(async {
        tokio::time::timeout(Duration::from_millis(400), clone(&s, &d, &opts, &|_| {})).await
    });
    assert!(
        cut.is_err(),
        "the clone should still be running after 400ms"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = children_named(&["pg_dump", "pg_restore"]);
        let sessions = query(
            &admin_url(),
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname IN ('{}', '{}')",
                src.name, dst.name
            ),
        );
        let sessions = sessions[0][0].clone().unwrap();
        if children.is_empty() && sessions == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running: {children:?}, {sessions} sessions"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Processes whose parent is this test process and whose name is one of `names`.
fn children_named(names: &[&str]) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((left, right)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = left.split_once(" (").map(|x| x.1).unwrap_or_default();
        let ppid = right.split_whitespace().nth(1).unwrap_or_default();
        let state = right.split_whitespace().next().unwrap_or_default();
        if ppid == me && state != "Z" && names.contains(&comm) {
            out.push(format!("{comm} {state}"));
        }
    }
    out
}

/// CPU seconds of this process and of its waited-for children.
fn cpu_seconds() -> (f64, f64) {
    let usage = |who| {
        // SAFETY: getrusage fills the struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN))
}

/// CPU seconds of a cluster's ended backends (the postmaster's waited-for children).
fn server_cpu(data_dir: &Path) -> f64 {
    let pid = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap_or_default();
    let pid = pid.lines().next().unwrap_or_default().trim().to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|x| x.1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // cutime and cstime are fields 16 and 17 of stat, 14 and 15 after the comm.
    let ticks: f64 = fields.get(13..15).map_or(0.0, |f| {
        f.iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum()
    });
    ticks / 100.0
}

/// Peak resident memory of this process, from /proc/self/status.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// pg_dump --format=custom --file + createdb + pg_restore, against the clone, into the same
/// throwaway cluster.
#[test]
#[ignore]
fn bench() {
    let Ok(source) = std::env::var("PGSHIP_BENCH_DB") else {
        eprintln!("set PGSHIP_BENCH_DB to the URL of a database to clone (e.g. pgbench -i -s 50)");
        return;
    };
    let rounds: usize = std::env::var("PGSHIP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let tools = dump_tools(&source);
    let cluster = cluster_of_major(tools.major).expect("a server of the tools' major");
    let src = DbUrl::parse(&source).unwrap();
    let work = tempfile::tempdir().unwrap();
    let rss_before = peak_rss_kb();
    let data = cluster.dir.join("data");
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    let admin = cluster.url("postgres").expose();
    let lsn = || {
        query(&admin, "SELECT pg_current_wal_lsn() - '0/0'")[0][0]
            .clone()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let measure = |f: &mut dyn FnMut()| {
        let w0 = lsn();
        let (s0, c0, d0) = (cpu_seconds().0, cpu_seconds().1, server_cpu(&data));
        let t = Instant::now();
        f();
        let wall = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(300));
        let (s1, c1, d1) = (cpu_seconds().0, cpu_seconds().1, server_cpu(&data));
        let cpu = format!(
            "cpu: pgship {:.2}s, pg_dump+pg_restore {:.2}s, destination server {:.2}s; WAL {:.0} MiB",
            s1 - s0,
            c1 - c0,
            d1 - d0,
            (lsn() - w0) / 1048576.0
        );
        (wall, cpu)
    };
    for round in 0..rounds {
        let dump = work.path().join(format!("x{round}.dump"));
        let (wall, cpu) = measure(&mut || {
            baseline(&tools, &src, &dump, &cluster, &format!("base{round}"));
        });
        base.push(wall);
        eprintln!("round {round}: baseline {wall:.2}s ({cpu})");
        let dest = DbUrl::parse(&cluster_db(&cluster, &format!("clone{round}"))).unwrap();
        let mut summary = String::new();
        let (wall, cpu) = measure(&mut || {
            let report = rt()
                .block_on(clone(
                    &src,
                    &dest,
                    &CloneOptions::new(tools.clone()),
                    &|_| {},
                ))
                .unwrap();
            summary = report.summary();
        });
        ours.push(wall);
        eprintln!("round {round}: clone {wall:.2}s ({cpu}; {summary})");
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, o) = (median(&mut base), median(&mut ours));
    eprintln!(
        "median: baseline {b:.2}s, clone {o:.2}s, ratio {:.2}; peak RSS of this process {} MiB (before: {} MiB)",
        o / b,
        peak_rss_kb() / 1024,
        rss_before / 1024
    );
}

fn baseline(tools: &BinDir, src: &DbUrl, dump: &Path, cluster: &LocalCluster, name: &str) {
    let mut plain = src.clone();
    plain.password = None;
    let status = std::process::Command::new(tools.bin("pg_dump"))
        .arg("--format=custom")
        .arg(format!("--file={}", dump.display()))
        .arg(format!("--dbname={}", plain.expose()))
        .env(
            "PGPASSWORD",
            src.password.as_ref().map(|p| p.expose()).unwrap_or(""),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let dest = DbUrl::parse(&cluster_db(cluster, name)).unwrap();
    let mut plain = dest.clone();
    plain.password = None;
    let status = std::process::Command::new(tools.bin("pg_restore"))
        .arg(format!("--dbname={}", plain.expose()))
        .arg(dump)
        .env("PGPASSWORD", dest.password.as_ref().unwrap().expose())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A source whose rows break a foreign key it holds as valid (loaded with its triggers
/// disabled): a throwaway cluster's clone trusts the key and gets the rows as they are, while
/// a checked clone (pg_restore's) fails naming the key.
#[test]
fn trusted_foreign_keys_are_cloned_as_the_source_has_them() {
    let Some(src) = TestDb::new() else { return };
    src.query(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
         INSERT INTO parent SELECT generate_series(1, 10);
         INSERT INTO child SELECT g, 1 + g % 10 FROM generate_series(1, 1000) g;
         ALTER TABLE child DISABLE TRIGGER ALL;
         INSERT INTO child VALUES (5000, 99);
         ALTER TABLE child ENABLE TRIGGER ALL;",
    );
    let tools = dump_tools(&src.url);
    let Some(cluster) = cluster_of_major(15) else {
        return;
    };
    let trusted = cluster_db(&cluster, "trusted");
    let opts = CloneOptions {
        trust_foreign_keys: true,
        ..CloneOptions::new(tools.clone())
    };
    run_clone(&src.url, &trusted, &opts).0.unwrap();
    assert_same(&src.url, &trusted);
    let fk = query(
        &trusted,
        "SELECT convalidated::text FROM pg_constraint WHERE conname = 'child_parent_id_fkey'",
    );
    assert_eq!(fk[0][0].as_deref(), Some("true"));
    let orphan = query(
        &trusted,
        "SELECT parent_id::text FROM child WHERE id = 5000",
    );
    assert_eq!(orphan[0][0].as_deref(), Some("99"));
    // The key is enforced from here on, as on the source.
    let refused = rt().block_on(async {
        let url = DbUrl::parse(&trusted).unwrap();
        let conn = connect(&url, &ConnectOptions::default()).await.unwrap();
        conn.client
            .batch_execute("INSERT INTO child VALUES (5001, 98)")
            .await
            .unwrap_err()
    });
    assert!(
        refused.to_string().contains("child_parent_id_fkey")
            || format!("{refused:?}").contains("child_parent_id_fkey"),
        "{refused:?}"
    );

    let checked = cluster_db(&cluster, "checked");
    let err = run_clone(&src.url, &checked, &CloneOptions::new(tools))
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("child_parent_id_fkey"), "{err}");
}
