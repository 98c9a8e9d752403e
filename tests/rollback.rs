//! The rollback module against real PostgreSQL: for each kind of change, a realistic schema
//! with data, `prepare`, the migrations applied by the apply engine, `roll_back`, `prove`
//! (which must say proven), and the migrations applied again. With CI=true a missing server
//! fails every test.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use pgship::compare::SchemaFilter;
use pgship::db::apply::{ApplyOptions, TxMode, Work, apply};
use pgship::db::state::{self, StateTable};
use pgship::db::tools::{BinDir, find_dump_tools};
use pgship::db::{ConnectOptions, DbUrl, connect};
use pgship::rollback::{self, Inputs, Method, Prepared, Proof, RolledBack};
use pgship::source::{DrizzleTable, Migration, SourceKind};

/// A shop: users with a serial key, a unique email, a comment and a grant; orders with an
/// identity key, a cascading foreign key to users, a check, a default and an index; a view
/// over both; a sequence-backed default; rows in every table.
const SHOP: &str = r#"
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE users (
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text,
    created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
COMMENT ON TABLE users IS 'people who buy';
COMMENT ON COLUMN users.email IS 'login';
GRANT SELECT ON users TO PUBLIC;
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    qty integer NOT NULL CHECK (qty > 0),
    total numeric(10, 2) NOT NULL DEFAULT 0,
    status order_status NOT NULL DEFAULT 'new'
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE TABLE visits (id serial PRIMARY KEY, status order_status DEFAULT 'paid', seen int);
CREATE VIEW user_orders AS
    SELECT u.email, o.qty, o.total FROM users u JOIN orders o ON o.user_id = u.id;
INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g
    FROM generate_series(1, 50) g;
INSERT INTO orders (user_id, qty, total, status)
    SELECT 1 + g % 50, 1 + g % 7, g * 1.25, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3]::order_status
    FROM generate_series(1, 200) g;
INSERT INTO visits (seen) SELECT g FROM generate_series(1, 20) g;
"#;

struct Env {
    db: TestDb,
    url: DbUrl,
    tools: BinDir,
    state: StateTable,
    filter: SchemaFilter,
    work: tempfile::TempDir,
    project: tempfile::TempDir,
}

impl Env {
    fn new(setup: &str) -> Option<Env> {
        let db = TestDb::new()?;
        db.query(setup);
        let url = DbUrl::parse(&db.url).unwrap();
        let major: u32 = db
            .scalar("SELECT current_setting('server_version_num')::int / 10000")
            .unwrap()
            .parse()
            .unwrap();
        let tools = find_dump_tools(major).expect("pg_dump for the test server");
        rt().block_on(async {
            let c = connect(&url, &ConnectOptions::default()).await.unwrap();
            state::bootstrap(&c.client).await.unwrap();
        });
        Some(Env {
            db,
            url,
            tools,
            state: StateTable::for_source(SourceKind::Sql, &DrizzleTable::default()),
            filter: SchemaFilter {
                include: vec![],
                exclude: vec!["pgship".into(), "drizzle".into()],
            },
            work: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
        })
    }

    /// Write `files` as a SQL migrations folder and read it.
    fn migrations(&self, files: &[(&str, &str)]) -> Vec<Migration> {
        let dir = self.project.path().join("migrations");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        pgship::source::read_as(&dir, SourceKind::Sql)
            .unwrap()
            .migrations
    }

    fn inputs<'a>(&'a self, pending: &'a [&'a Migration]) -> Inputs<'a> {
        Inputs {
            url: &self.url,
            tools: &self.tools,
            pending,
            state: &self.state,
            filter: &self.filter,
            work_dir: self.work.path(),
        }
    }

    fn prepare(&self, pending: &[&Migration]) -> Prepared {
        rt().block_on(rollback::prepare(&self.inputs(pending)))
            .unwrap_or_else(|e| panic!("prepare: {e}"))
    }

    /// Apply with the engine; Err carries the engine's failure text.
    fn apply(&self, pending: &[&Migration], mode: TxMode) -> Result<(), String> {
        rt().block_on(async {
            let c = connect(&self.url, &ConnectOptions::default())
                .await
                .unwrap();
            let work: Vec<Work<'_>> = pending
                .iter()
                .map(|m| Work {
                    migration: m,
                    start_at: 0,
                    uncertain: false,
                })
                .collect();
            let opts = ApplyOptions {
                tx_mode: mode,
                lock_retries: 0,
                backoff: Duration::from_millis(50),
                deployment_id: "deploy-test-1".into(),
                resolve_running: None,
                server_major: c.version.major(),
            };
            apply(&c.client, &self.state, &work, &opts, &mut |_| {})
                .await
                .map(|_| ())
                .map_err(|f| f.to_string())
        })
    }

    fn roll_back(&self, pending: &[&Migration], p: &Prepared) -> RolledBack {
        rt().block_on(rollback::roll_back(&self.inputs(pending), p))
            .unwrap_or_else(|e| panic!("roll_back: {e}"))
    }

    fn prove(&self, pending: &[&Migration], p: &Prepared) -> Proof {
        rt().block_on(rollback::prove(&self.inputs(pending), p))
            .unwrap_or_else(|e| panic!("prove: {e}"))
    }

    fn fingerprint(&self) -> String {
        rt().block_on(async {
            let c = connect(&self.url, &ConnectOptions::default())
                .await
                .unwrap();
            pgship::compare::introspect::introspect(&c.client, &self.filter)
                .await
                .unwrap()
                .fingerprint()
        })
    }

    fn state_rows(&self) -> String {
        self.db
            .scalar("SELECT count(*) FROM pgship.applied_migrations")
            .unwrap()
    }

    /// The whole cycle with the restore method: prepare, apply, roll back, prove, apply again
    /// (and the schema after the second apply is the one the first produced).
    fn cycle(&self, files: &[(&str, &str)], mode: TxMode) -> (Prepared, RolledBack, Proof) {
        let migrations = self.migrations(files);
        let pending: Vec<&Migration> = migrations.iter().collect();
        let before = self.fingerprint();
        let p = self.prepare(&pending);
        assert_eq!(p.fingerprint, before);
        self.apply(&pending, mode).expect("the migrations apply");
        let applied = self.fingerprint();
        let rb = self.roll_back(&pending, &p);
        let proof = self.prove(&pending, &p);
        assert!(
            proof.proven,
            "{}\nrolled back: {rb:#?}\nproof: {proof:#?}",
            proof.summary()
        );
        assert_eq!(self.state_rows(), "0", "the state rows are gone");
        self.apply(&pending, mode)
            .expect("the migrations apply again after the rollback");
        assert_eq!(
            self.fingerprint(),
            applied,
            "the second apply gives the same schema"
        );
        (p, rb, proof)
    }
}

#[test]
fn added_table_with_a_foreign_key_to_an_old_table() {
    let Some(env) = Env::new(SHOP) else { return };
    let (p, rb, proof) = env.cycle(
        &[(
            "001_posts.sql",
            "CREATE TABLE posts (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), \
               title text NOT NULL);\n\
             CREATE INDEX posts_user_id_idx ON posts (user_id);\n\
             INSERT INTO posts (user_id, title) SELECT id, 'hello ' || id FROM users;\n",
        )],
        TxMode::All,
    );
    assert_eq!(p.method, Method::Restore);
    assert!(p.why.contains("001_posts"), "{}", p.why);
    assert!(
        rb.dropped.iter().any(|d| d == "table public.posts"),
        "{:?}",
        rb.dropped
    );
    assert!(rb.recreated_tables.is_empty(), "{:?}", rb.recreated_tables);
    assert!(proof.tables.is_empty(), "nothing old was touched");
}

#[test]
fn added_column() {
    let Some(env) = Env::new(SHOP) else { return };
    let (p, rb, proof) = env.cycle(
        &[(
            "001_age.sql",
            "ALTER TABLE users ADD COLUMN age integer NOT NULL DEFAULT 18;\n\
             UPDATE users SET age = 30 WHERE id % 2 = 0;\n",
        )],
        TxMode::All,
    );
    assert!(p.tables.iter().any(|t| t.spec.key() == "public.users"));
    assert!(
        rb.recreated_tables
            .iter()
            .any(|t| t.starts_with("public.users")),
        "{rb:#?}"
    );
    // The view and the foreign key of orders, dropped with users, came back.
    assert!(
        rb.restored.iter().any(|r| r.contains("user_orders")),
        "{rb:#?}"
    );
    assert!(
        rb.restored
            .iter()
            .any(|r| r.contains("orders_user_id_fkey")),
        "{rb:#?}"
    );
    assert!(proof.tables.iter().all(|t| t.equal));
}

#[test]
fn dropped_column_data_is_restored_exactly() {
    let Some(env) = Env::new(SHOP) else { return };
    let before = env
        .db
        .query("SELECT id, name, email FROM users ORDER BY id");
    let migrations =
        env.migrations(&[("001_drop_name.sql", "ALTER TABLE users DROP COLUMN name;\n")]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    env.apply(&pending, TxMode::All).unwrap();
    env.roll_back(&pending, &p);
    let proof = env.prove(&pending, &p);
    assert!(proof.proven, "{}", proof.summary());
    assert_eq!(
        env.db
            .query("SELECT id, name, email FROM users ORDER BY id"),
        before
    );
    // The serial sequence continues where it was.
    assert_eq!(
        env.db
            .scalar("SELECT last_value FROM users_id_seq")
            .as_deref(),
        Some("50")
    );
    env.apply(&pending, TxMode::All).unwrap();
}

#[test]
fn column_type_change_integer_to_bigint() {
    let Some(env) = Env::new(SHOP) else { return };
    env.cycle(
        &[(
            "001_bigint.sql",
            "DROP VIEW user_orders;\n\
             ALTER TABLE orders ALTER COLUMN qty TYPE bigint;\n\
             CREATE VIEW user_orders AS \
               SELECT u.email, o.qty, o.total FROM users u JOIN orders o ON o.user_id = u.id;\n",
        )],
        TxMode::All,
    );
    assert_eq!(
        env.db
            .scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'qty'")
            .as_deref(),
        Some("bigint"),
        "applied again"
    );
}

#[test]
fn renamed_column() {
    let Some(env) = Env::new(SHOP) else { return };
    let (_, rb, _) = env.cycle(
        &[(
            "001_rename.sql",
            "ALTER TABLE users RENAME COLUMN email TO login;\n",
        )],
        TxMode::All,
    );
    assert!(
        rb.recreated_tables
            .iter()
            .any(|t| t.starts_with("public.users")),
        "{rb:#?}"
    );
}

#[test]
fn added_enum_value_used_by_columns_and_defaults() {
    let Some(env) = Env::new(SHOP) else { return };
    // The new value is used in a second migration (its own transaction, as PostgreSQL
    // requires); `visits` holds the enum with a default and is not written.
    let (_, rb, proof) = env.cycle(
        &[
            (
                "001_refunded.sql",
                "ALTER TYPE order_status ADD VALUE 'refunded' AFTER 'shipped';\n",
            ),
            (
                "002_refund.sql",
                "UPDATE orders SET status = 'refunded' WHERE id % 10 = 0;\n\
                 ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'paid';\n",
            ),
        ],
        TxMode::PerMigration,
    );
    assert!(
        rb.fixed
            .iter()
            .any(|f| f.contains("enum public.order_status")),
        "{rb:#?}"
    );
    assert!(
        rb.fixed.iter().any(|f| f.contains("public.visits.status")),
        "{rb:#?}"
    );
    assert!(proof.tables.iter().any(|t| t.table == "public.orders"));
    assert_eq!(
        env.db
            .scalar("SELECT count(*) FROM pg_type WHERE typname LIKE 'order_status%'")
            .as_deref(),
        Some("1"),
        "no leftover type"
    );
}

#[test]
fn data_migration_update() {
    let Some(env) = Env::new(SHOP) else { return };
    let before = env.db.query("SELECT id, email FROM users ORDER BY id");
    let (p, rb, proof) = env.cycle(
        &[(
            "001_upper.sql",
            "UPDATE users SET email = upper(email);\nDELETE FROM orders WHERE qty = 1;\n",
        )],
        TxMode::All,
    );
    assert!(p.scope.may_change.contains("public.users"));
    assert!(rb.recreated_tables.len() >= 2, "{rb:#?}");
    assert!(proof.tables.iter().all(|t| t.equal));
    // Applied again: emails are upper case; the first rollback had restored them.
    let again = env
        .db
        .query("SELECT id, lower(email) FROM users ORDER BY id");
    assert_eq!(again, before);
}

#[test]
fn dropped_table_referenced_by_a_foreign_key_and_a_view() {
    let Some(env) = Env::new(SHOP) else { return };
    let (_, rb, proof) = env.cycle(
        &[("001_drop_users.sql", "DROP TABLE users CASCADE;\n")],
        TxMode::All,
    );
    for expected in ["public.users", "user_orders", "orders_user_id_fkey"] {
        assert!(
            rb.restored.iter().any(|r| r.contains(expected)),
            "{expected} not restored: {rb:#?}"
        );
    }
    assert!(
        proof
            .tables
            .iter()
            .any(|t| t.table == "public.users" && t.equal)
    );
}

#[test]
fn partial_apply_is_rolled_back_too() {
    let Some(env) = Env::new(SHOP) else { return };
    let migrations = env.migrations(&[
        (
            "001_ok.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\nCREATE TABLE tags (id int);\n",
        ),
        ("002_bad.sql", "UPDATE orders SET qty = 0;\n"),
    ]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    let failure = env
        .apply(&pending, TxMode::PerMigration)
        .expect_err("002 violates the check");
    assert!(failure.contains("002_bad"), "{failure}");
    assert_eq!(env.state_rows(), "1", "001 is committed");
    env.roll_back(&pending, &p);
    let proof = env.prove(&pending, &p);
    assert!(proof.proven, "{}", proof.summary());
    assert_eq!(env.state_rows(), "0");
    env.apply(&pending[..1], TxMode::PerMigration)
        .expect("001 applies again");
}

#[test]
fn down_scripts_when_every_migration_has_one() {
    let Some(env) = Env::new(SHOP) else { return };
    let migrations = env.migrations(&[
        (
            "001_phone.sql",
            "ALTER TABLE users ADD COLUMN phone text;\nCREATE INDEX users_phone_idx ON users (phone);\n",
        ),
        ("001_phone.down.sql", "DROP INDEX users_phone_idx;\nALTER TABLE users DROP COLUMN phone;\n"),
        ("002_coupons.sql", "CREATE TABLE coupons (code text PRIMARY KEY, pct int);\n"),
        ("002_coupons.down.sql", "DROP TABLE coupons;\n"),
    ]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    assert_eq!(p.method, Method::Down, "{}", p.why);
    assert!(p.dumps.is_none());
    env.apply(&pending, TxMode::All).unwrap();
    let rb = env.roll_back(&pending, &p);
    assert_eq!(rb.migrations, ["002_coupons", "001_phone"]);
    let proof = env.prove(&pending, &p);
    assert!(proof.proven, "{}", proof.summary());
    assert_eq!(env.state_rows(), "0");
    env.apply(&pending, TxMode::All).expect("applies again");
}

#[test]
fn a_down_script_that_forgets_something_is_not_proven() {
    let Some(env) = Env::new(SHOP) else { return };
    let migrations = env.migrations(&[
        (
            "001_phone.sql",
            "ALTER TABLE users ADD COLUMN phone text;\nUPDATE users SET name = 'x' WHERE id = 1;\n",
        ),
        // Forgets the column, and cannot know the old name.
        ("001_phone.down.sql", "SELECT 1;\n"),
    ]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    env.apply(&pending, TxMode::All).unwrap();
    env.roll_back(&pending, &p);
    let proof = env.prove(&pending, &p);
    assert!(!proof.proven);
    assert!(
        proof
            .differences
            .iter()
            .any(|d| d.contains("public.users.phone")),
        "{proof:#?}"
    );
    let users = proof
        .tables
        .iter()
        .find(|t| t.table == "public.users")
        .unwrap();
    assert!(!users.equal, "{proof:#?}");
    assert!(
        proof.summary().starts_with("not proven"),
        "{}",
        proof.summary()
    );
}

#[test]
fn a_failing_down_script_names_the_migration_and_statement() {
    let Some(env) = Env::new(SHOP) else { return };
    let migrations = env.migrations(&[
        ("001_t.sql", "CREATE TABLE t1 (a int);\n"),
        (
            "001_t.down.sql",
            "DROP TABLE t1;\nDROP TABLE no_such_table;\n",
        ),
    ]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    env.apply(&pending, TxMode::All).unwrap();
    let err = rt()
        .block_on(rollback::roll_back(&env.inputs(&pending), &p))
        .expect_err("the down script fails")
        .to_string();
    assert!(
        err.contains("001_t") && err.contains("statement 2") && err.contains("no_such_table"),
        "{err}"
    );
    // Its transaction was rolled back: t1 is still there, and so is the state row.
    assert_eq!(
        env.db
            .scalar("SELECT to_regclass('t1') IS NOT NULL")
            .as_deref(),
        Some("t")
    );
    assert_eq!(env.state_rows(), "1");
}

#[test]
fn restore_with_postgresql_18_tools() {
    let Some(bin) = pg18_bin() else { return };
    let Some(mut env) = Env::new(SHOP) else {
        return;
    };
    env.tools = pgship::db::tools::at(&bin, "pg_dump").expect("pg_dump 18 runs");
    assert_eq!(env.tools.major, 18);
    env.cycle(
        &[(
            "001_mixed.sql",
            "ALTER TABLE orders DROP COLUMN total CASCADE;\nUPDATE users SET name = NULL;\n\
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE qty > 3;\n",
        )],
        TxMode::All,
    );
}

#[test]
fn the_dumps_are_private_and_hold_no_password() {
    let Some(env) = Env::new(SHOP) else { return };
    let migrations = env.migrations(&[("001_x.sql", "UPDATE users SET name = 'y';\n")]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    let dumps = p.dumps.as_ref().unwrap();
    use std::os::unix::fs::PermissionsExt;
    for f in [Some(&dumps.schema), dumps.data.as_ref()]
        .into_iter()
        .flatten()
    {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    // No passfile is left behind.
    let left: Vec<String> = std::fs::read_dir(env.work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgpass"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Prepared round-trips through JSON (the deploy stores it in rollback-state.json).
    let json = serde_json::to_string(&p).unwrap();
    let back: Prepared = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    assert!(Path::new(&dumps.schema).starts_with(env.work.path()));
}

#[test]
fn drizzle_fixture_rename_and_drop_column_with_drizzle_state() {
    let Some(mut env) = Env::new("SELECT 1") else {
        return;
    };
    env.state = StateTable::for_source(SourceKind::Drizzle, &DrizzleTable::default());
    let project = project_with("drizzle-app/drizzle");
    let all = pgship::source::read(&project.path().join("drizzle"))
        .unwrap()
        .migrations;
    let (done, pending): (Vec<&Migration>, Vec<&Migration>) = all.iter().partition(|m| m.order < 2);
    env.apply(&done, TxMode::All).unwrap();
    env.db.query(
        "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme'), ('Globex', 'globex');
         INSERT INTO users (organization_id, email, full_name)
           SELECT 1 + g % 2, 'u' || g || '@x.io', 'Name ' || g FROM generate_series(1, 30) g;
         INSERT INTO orders (user_id, status, total_cents)
           SELECT 1 + g % 30, 'paid', g * 100 FROM generate_series(1, 60) g;",
    );
    let before = env.fingerprint();
    let p = env.prepare(&pending);
    assert_eq!(p.method, Method::Restore);
    env.apply(&pending, TxMode::All).unwrap();
    let applied = env.fingerprint();
    let drizzle_rows = || {
        env.db
            .scalar("SELECT count(*) FROM drizzle.__drizzle_migrations")
            .unwrap()
    };
    assert_eq!(drizzle_rows(), "4");
    env.roll_back(&pending, &p);
    let proof = env.prove(&pending, &p);
    assert!(proof.proven, "{}", proof.summary());
    assert_eq!(env.fingerprint(), before);
    assert_eq!(drizzle_rows(), "2", "only the rolled-back rows are deleted");
    assert_eq!(
        env.db
            .scalar("SELECT sum(total_cents) FROM orders")
            .as_deref(),
        Some("183000")
    );
    env.apply(&pending, TxMode::All).unwrap();
    assert_eq!(env.fingerprint(), applied);
    assert_eq!(drizzle_rows(), "4");
}

#[test]
fn renamed_table_new_schema_and_concurrent_index() {
    let Some(env) = Env::new(SHOP) else { return };
    let (_, rb, _) = env.cycle(
        &[
            (
                "001_rename.sql",
                "ALTER TABLE visits RENAME TO page_visits;\n\
                 CREATE SCHEMA reporting;\n\
                 CREATE TABLE reporting.daily (day date PRIMARY KEY, n int);\n\
                 CREATE FUNCTION reporting.total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.orders';\n",
            ),
            (
                "002_index.sql",
                "CREATE INDEX CONCURRENTLY orders_total_idx ON orders (total);\n",
            ),
        ],
        TxMode::All,
    );
    assert!(
        rb.recreated_tables
            .iter()
            .any(|t| t.starts_with("public.visits (renamed to public.page_visits)")),
        "{rb:#?}"
    );
    assert!(
        rb.dropped.iter().any(|d| d == "schema reporting"),
        "{rb:#?}"
    );
    assert!(
        rb.dropped.iter().any(|d| d.contains("orders_total_idx")),
        "{rb:#?}"
    );
}

#[test]
fn an_opaque_statement_saves_and_compares_every_table() {
    let Some(env) = Env::new(SHOP) else { return };
    let (p, rb, proof) = env.cycle(
        &[(
            "001_do.sql",
            "DO $$ BEGIN UPDATE visits SET seen = seen + 1; DELETE FROM orders WHERE qty > 5; END $$;\n",
        )],
        TxMode::All,
    );
    assert!(p.scope.everything[0].contains("DO block"), "{:?}", p.scope);
    assert_eq!(proof.tables.len(), 3);
    // users' rows did not change, so it was left alone.
    assert!(
        !rb.recreated_tables
            .iter()
            .any(|t| t.starts_with("public.users")),
        "{rb:#?}"
    );
}

#[test]
fn table_attributes_are_put_back_in_place() {
    let Some(env) = Env::new(SHOP) else { return };
    let (_, rb, _) = env.cycle(
        &[(
            "001_attrs.sql",
            "COMMENT ON TABLE users IS 'customers';\n\
             ALTER TABLE users ALTER COLUMN name SET NOT NULL;\n\
             ALTER TABLE users ALTER COLUMN name SET DEFAULT 'anonymous';\n\
             REVOKE SELECT ON users FROM PUBLIC;\n\
             ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0);\n\
             ALTER TABLE orders DROP CONSTRAINT orders_qty_check;\n\
             DROP INDEX orders_user_id_idx;\n",
        )],
        TxMode::All,
    );
    assert!(rb.recreated_tables.is_empty(), "{rb:#?}");
    assert!(
        rb.fixed.iter().any(|f| f == "comment of public.users"),
        "{rb:#?}"
    );
    assert!(
        rb.fixed.iter().any(|f| f.contains("orders_qty_check")),
        "{rb:#?}"
    );
    assert!(
        rb.restored.iter().any(|r| r.contains("orders_user_id_idx")),
        "{rb:#?}"
    );
}

#[test]
fn partitioned_and_inherited_tables() {
    let Some(env) = Env::new(
        "CREATE TABLE events (id int NOT NULL, at date NOT NULL, kind text) PARTITION BY RANGE (at);
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE INDEX events_at_idx ON events (at);
         INSERT INTO events SELECT g, date '2024-06-01' + g, 'k' || g % 3 FROM generate_series(1, 400) g;
         CREATE TABLE notes (id int PRIMARY KEY, body text);
         CREATE TABLE pinned_notes (rank int) INHERITS (notes);
         INSERT INTO notes VALUES (1, 'a'), (2, 'b');
         INSERT INTO pinned_notes VALUES (3, 'c', 1);",
    ) else {
        return;
    };
    let (p, rb, proof) = env.cycle(
        &[(
            "001_events.sql",
            "UPDATE events SET kind = upper(kind) WHERE id % 2 = 0;\n\
             DELETE FROM notes WHERE id = 3;\n\
             ALTER TABLE events DETACH PARTITION events_2025;\n",
        )],
        TxMode::All,
    );
    assert!(
        p.scope.tables.contains("public.events_2024"),
        "{:?}",
        p.scope
    );
    assert!(
        p.scope.tables.contains("public.pinned_notes"),
        "{:?}",
        p.scope
    );
    assert!(proof.tables.iter().all(|t| t.equal));
    assert!(!rb.recreated_tables.is_empty());
}

#[test]
fn many_kinds_of_change_at_once() {
    let Some(env) = Env::new(&format!(
        "{SHOP}
         CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');
         CREATE TABLE contacts (id int PRIMARY KEY, email email_address, kind order_status);
         INSERT INTO contacts VALUES (1, 'a@b.c', 'new'), (2, 'd@e.f', 'paid');
         CREATE SEQUENCE invoice_no START 1000;
         SELECT nextval('invoice_no');
         CREATE FUNCTION order_count(uid int) RETURNS bigint LANGUAGE sql STABLE
           AS 'SELECT count(*) FROM orders WHERE user_id = uid';
         CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY 1;"
    )) else {
        return;
    };
    let (_, rb, _) = env.cycle(
        &[
            (
                "001_types.sql",
                "ALTER TYPE order_status RENAME TO order_state;\n\
                 ALTER TYPE order_state ADD VALUE 'lost';\n\
                 ALTER DOMAIN email_address ADD CONSTRAINT email_short CHECK (length(VALUE) < 100);\n\
                 CREATE TYPE priority AS ENUM ('low', 'high');\n\
                 ALTER TABLE contacts ADD COLUMN prio priority DEFAULT 'low';\n",
            ),
            (
                "002_code.sql",
                "CREATE OR REPLACE FUNCTION order_count(uid int) RETURNS bigint LANGUAGE sql STABLE \
                   AS 'SELECT count(*) + 0 FROM orders WHERE user_id = uid';\n\
                 CREATE OR REPLACE VIEW user_orders AS \
                   SELECT u.email, o.qty, o.total, o.id FROM users u JOIN orders o ON o.user_id = u.id;\n\
                 CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n\
                 CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();\n\
                 ALTER SEQUENCE invoice_no INCREMENT BY 10;\n\
                 SELECT setval('invoice_no', 5000);\n\
                 GRANT USAGE ON SEQUENCE invoice_no TO PUBLIC;\n\
                 COMMENT ON COLUMN orders.qty IS 'how many';\n\
                 REFRESH MATERIALIZED VIEW order_totals;\n",
            ),
        ],
        TxMode::PerMigration,
    );
    assert_eq!(
        env.db.scalar("SELECT nextval('invoice_no')").as_deref(),
        Some("5010"),
        "applied again: the sequence moves by 10 from 5000"
    );
    assert!(
        rb.fixed.iter().any(|f| f.contains("renamed back")),
        "{rb:#?}"
    );
}

#[test]
fn a_rollback_that_fails_changes_nothing_and_names_the_object() {
    let Some(mut env) = Env::new(SHOP) else {
        return;
    };
    // A password in the URL (the server trusts local connections, so any works): it must not
    // appear in errors or in what is recorded.
    let secret = "s3cr3t-Pa55";
    let mut url = env.url.clone();
    url.password = Some(pgship::db::url::Secret::new(secret));
    env.url = url;
    let migrations = env.migrations(&[(
        "001_lost.sql",
        "ALTER TYPE order_status ADD VALUE 'lost';\n",
    )]);
    let pending: Vec<&Migration> = migrations.iter().collect();
    let p = env.prepare(&pending);
    env.apply(&pending, TxMode::All).unwrap();
    // The app writes the new label into a table the migration did not touch.
    env.db
        .query("UPDATE visits SET status = 'lost' WHERE id = 1");
    let applied = env.fingerprint();
    let err = rt()
        .block_on(rollback::roll_back(&env.inputs(&pending), &p))
        .expect_err("the label cannot be taken back")
        .to_string();
    assert!(
        err.contains("public.visits.status") && err.contains("lost"),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");
    assert!(!serde_json::to_string(&p).unwrap().contains(secret));
    assert_eq!(env.fingerprint(), applied, "nothing changed");
    assert_eq!(env.state_rows(), "1");
    assert_eq!(
        env.db
            .scalar("SELECT status FROM visits WHERE id = 1")
            .as_deref(),
        Some("lost")
    );
}
