//! `compare --data` against real PostgreSQL: two fresh databases filled with equal, changed,
//! recounted, NULL-vs-empty, oversized, partitioned and inherited tables and orphaned foreign
//! keys, compared with `pgship::compare::data::compare`.

mod common;

use common::*;
use pgship::compare::SchemaFilter;
use pgship::compare::data::{Contents, DataOptions, DataReport, Side, TableData, compare};
use pgship::db::{ConnectOptions, DbUrl, connect};

const SOURCE: &str = r#"
CREATE TABLE same (id int PRIMARY KEY, name text, at timestamptz, price numeric(10,2), tags text[]);
INSERT INTO same SELECT i, 'n' || i, timestamptz '2024-01-01 00:00+00' + i * interval '1 hour',
  i / 3.0, ARRAY['a', NULL, i::text] FROM generate_series(1, 300) i;
CREATE TABLE changed (id int PRIMARY KEY, v text);
INSERT INTO changed SELECT i, 'v' || i FROM generate_series(1, 100) i;
CREATE TABLE counts (id int);
INSERT INTO counts SELECT generate_series(1, 10);
CREATE TABLE nulls (id int, v text);
INSERT INTO nulls VALUES (1, NULL), (2, 'x');
CREATE TABLE big (id int, pad text);
INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i;
CREATE TABLE extra (id int, v text);
INSERT INTO extra SELECT i, 'e' || i FROM generate_series(1, 5) i;
CREATE TABLE "We""ird" ("Mixed Case" text, id int);
INSERT INTO "We""ird" VALUES ('a', 1), ('b', 2);
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, 3);
CREATE TABLE child (id int, parent_id int);
INSERT INTO child VALUES (1, 1), (2, 99), (3, 98), (4, NULL);
ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
CREATE TABLE kinds (id int PRIMARY KEY);
INSERT INTO kinds VALUES (1), (2);
CREATE TABLE events (id int, day date, kind int REFERENCES kinds) PARTITION BY RANGE (day);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events VALUES (1, '2024-03-01', 1), (2, '2025-03-01', 2), (3, '2025-04-01', 1);
CREATE TABLE inh_parent (id int);
CREATE TABLE inh_child () INHERITS (inh_parent);
INSERT INTO inh_parent VALUES (1);
INSERT INTO inh_child VALUES (2), (3);
CREATE SCHEMA skipme;
CREATE TABLE skipme.t (id int);
INSERT INTO skipme.t VALUES (1);
CREATE TABLE only_source (id int);
"#;

const TARGET: &str = r#"
CREATE TABLE same (tags text[], price numeric(10,2), at timestamptz, name text, id int PRIMARY KEY);
INSERT INTO same (id, name, at, price, tags) SELECT i, 'n' || i,
  timestamptz '2024-01-01 00:00+00' + i * interval '1 hour', i / 3.0, ARRAY['a', NULL, i::text]
  FROM generate_series(300, 1, -1) i;
UPDATE same SET name = name WHERE id % 7 = 0;
CREATE TABLE changed (id int PRIMARY KEY, v text);
INSERT INTO changed SELECT i, CASE i WHEN 50 THEN 'changed' ELSE 'v' || i END FROM generate_series(1, 100) i;
CREATE TABLE counts (id int);
INSERT INTO counts SELECT generate_series(1, 12);
CREATE TABLE nulls (id int, v text);
INSERT INTO nulls VALUES (1, ''), (2, 'x');
CREATE TABLE big (id int, pad text);
INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i;
CREATE TABLE extra (id int, v text, added int);
INSERT INTO extra SELECT i, 'e' || i, i FROM generate_series(1, 5) i;
CREATE TABLE "We""ird" (id int, "Mixed Case" text);
INSERT INTO "We""ird" VALUES (2, 'b'), (1, 'a');
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, 3);
CREATE TABLE child (id int, parent_id int REFERENCES parent (id));
INSERT INTO child VALUES (1, 1), (4, NULL);
CREATE TABLE pair_parent (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE pair_child (a int, b int);
INSERT INTO pair_child VALUES (1, NULL), (5, 5);
ALTER TABLE pair_child ADD CONSTRAINT pair_fk FOREIGN KEY (a, b) REFERENCES pair_parent NOT VALID;
CREATE TABLE kinds (id int PRIMARY KEY);
INSERT INTO kinds VALUES (1), (2);
CREATE TABLE events (id int, day date, kind int);
INSERT INTO events VALUES (3, '2025-04-01', 1), (2, '2025-03-01', 2), (1, '2024-03-01', 1);
CREATE TABLE inh_parent (id int);
CREATE TABLE inh_child () INHERITS (inh_parent);
INSERT INTO inh_parent VALUES (1);
INSERT INTO inh_child VALUES (2), (3);
CREATE SCHEMA skipme;
CREATE TABLE skipme.t (id int);
INSERT INTO skipme.t VALUES (2);
"#;

/// Run the data comparison between two test databases.
fn run_compare(source: &TestDb, target: &TestDb, opts: &DataOptions) -> DataReport {
    let filter = SchemaFilter {
        include: Vec::new(),
        exclude: vec!["skipme".into()],
    };
    rt().block_on(async {
        let s = connect(
            &DbUrl::parse(&source.url).unwrap(),
            &ConnectOptions::default(),
        )
        .await
        .unwrap();
        let t = connect(
            &DbUrl::parse(&target.url).unwrap(),
            &ConnectOptions::default(),
        )
        .await
        .unwrap();
        let report = compare(&s.client, &t.client, &filter, opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Both sessions are left outside any transaction: a write works.
        for c in [&s.client, &t.client] {
            c.batch_execute("CREATE TEMP TABLE after_compare (id int)")
                .await
                .unwrap();
        }
        report
    })
}

fn table<'a>(r: &'a DataReport, name: &str) -> &'a TableData {
    r.tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("{name} not in {:#?}", r.tables))
}

fn pair() -> Option<(TestDb, TestDb)> {
    Some((TestDb::new()?, TestDb::new()?))
}

#[test]
fn finds_changed_recounted_null_and_orphaned_data_and_skips_large_tables() {
    let Some((source, target)) = pair() else {
        return;
    };
    source.query(SOURCE);
    target.query(TARGET);
    source.query(&format!(
        "ALTER DATABASE {} SET timezone = 'UTC'",
        source.name
    ));
    target.query(&format!(
        "ALTER DATABASE {} SET timezone = 'Asia/Tokyo'",
        target.name
    ));
    let opts = DataOptions {
        fast: false,
        max_bytes: 256 * 1024,
        ..DataOptions::default()
    };
    let r = run_compare(&source, &target, &opts);

    let names: Vec<&str> = r.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(
        names,
        [
            "public.We\"ird",
            "public.big",
            "public.changed",
            "public.child",
            "public.counts",
            "public.events",
            "public.extra",
            "public.inh_child",
            "public.inh_parent",
            "public.kinds",
            "public.nulls",
            "public.parent",
            "public.same",
        ],
        "present on both sides, partitions and excluded schemas left out"
    );
    assert!(r.tables.iter().all(|t| t.exact));

    let same = table(&r, "public.same");
    assert_eq!(
        (same.source_rows, same.target_rows, same.contents),
        (300, 300, Contents::Equal),
        "column order, physical order and time zone do not matter: {same:?}"
    );
    assert_eq!(same.note, None);
    assert_eq!(table(&r, "public.We\"ird").contents, Contents::Equal);
    assert_eq!(table(&r, "public.changed").contents, Contents::Different);
    let counts = table(&r, "public.counts");
    assert_eq!(
        (counts.source_rows, counts.target_rows, counts.contents),
        (10, 12, Contents::Different)
    );
    assert_eq!(table(&r, "public.nulls").contents, Contents::Different);

    let big = table(&r, "public.big");
    assert_eq!(
        (big.source_rows, big.target_rows, big.contents),
        (5000, 5000, Contents::NotCompared)
    );
    assert!(
        big.note
            .as_deref()
            .unwrap()
            .contains("over the 262144-byte limit"),
        "{big:?}"
    );

    let extra = table(&r, "public.extra");
    assert_eq!(extra.contents, Contents::Equal);
    assert_eq!(
        extra.note.as_deref(),
        Some("hashed on the common columns only, without added (target only)")
    );

    let events = table(&r, "public.events");
    assert_eq!(
        (events.source_rows, events.target_rows, events.contents),
        (3, 3, Contents::Equal),
        "a partitioned table compares through its root with a plain one"
    );
    let inh = table(&r, "public.inh_parent");
    assert_eq!((inh.source_rows, inh.contents), (1, Contents::Equal));
    assert_eq!(table(&r, "public.inh_child").source_rows, 2);

    let orphans: Vec<(Side, &str, &str, bool, i64)> = r
        .orphans
        .iter()
        .map(|o| {
            (
                o.side,
                o.constraint.as_str(),
                o.references.as_str(),
                o.not_valid,
                o.rows,
            )
        })
        .collect();
    assert_eq!(
        orphans,
        [
            (
                Side::Source,
                "public.child.child_parent_fk",
                "public.parent",
                true,
                2
            ),
            (
                Side::Source,
                "public.events.events_kind_fkey",
                "public.kinds",
                false,
                0
            ),
            (
                Side::Target,
                "public.child.child_parent_id_fkey",
                "public.parent",
                false,
                0
            ),
            (
                Side::Target,
                "public.pair_child.pair_fk",
                "public.pair_parent",
                true,
                1
            ),
        ],
        "NULL keys are not orphans, and the FK clones on partitions are not counted again"
    );
    assert!(r.differs());

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["orphans"][0]["side"], "source");
    assert!(
        json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["contents"] == "not-compared")
    );
}

#[test]
fn equal_databases_do_not_differ() {
    let Some((source, target)) = pair() else {
        return;
    };
    let setup = "CREATE TABLE p (id int PRIMARY KEY, v jsonb, b bytea, f float8, i interval);
        INSERT INTO p SELECT i, jsonb_build_object('k', i), decode(md5(i::text), 'hex'),
          i / 7.0, i * interval '90 minutes' FROM generate_series(1, 50) i;
        CREATE TABLE c (id int, p_id int REFERENCES p);
        INSERT INTO c SELECT i, i FROM generate_series(1, 50) i;
        CREATE TABLE empty (id int);";
    source.query(setup);
    target.query(setup);
    let n = &target.name;
    target.query(&format!(
        "ALTER DATABASE {n} SET IntervalStyle = 'iso_8601'; \
         ALTER DATABASE {n} SET extra_float_digits = 0; ALTER DATABASE {n} SET bytea_output = 'escape'"
    ));
    let r = run_compare(&source, &target, &DataOptions::default());
    assert!(!r.differs(), "{r:#?}");
    assert!(
        r.tables.iter().all(|t| t.contents == Contents::Equal),
        "{r:#?}"
    );
    assert_eq!(r.orphans.len(), 2);
}

#[test]
fn fast_uses_estimates_and_says_when_a_table_was_never_analyzed() {
    let Some((source, target)) = pair() else {
        return;
    };
    let setup = "CREATE TABLE analyzed (id int);
        INSERT INTO analyzed SELECT generate_series(1, 1000);
        ANALYZE analyzed;
        CREATE TABLE fresh (id int) WITH (autovacuum_enabled = false);
        INSERT INTO fresh SELECT generate_series(1, 10);";
    source.query(setup);
    target.query(setup);
    target.query("INSERT INTO fresh VALUES (11)");
    let r = run_compare(
        &source,
        &target,
        &DataOptions {
            fast: true,
            ..DataOptions::default()
        },
    );
    let analyzed = table(&r, "public.analyzed");
    assert_eq!(
        (
            analyzed.source_rows,
            analyzed.target_rows,
            analyzed.exact,
            analyzed.contents
        ),
        (1000, 1000, false, Contents::Equal)
    );
    let fresh = table(&r, "public.fresh");
    assert_eq!(
        (fresh.source_rows, fresh.target_rows, fresh.contents),
        (-1, -1, Contents::Different),
        "the hash still runs with --fast"
    );
    let note = fresh.note.as_deref().unwrap();
    assert!(
        note.contains("row count unknown on source: never analyzed")
            && note.contains("row count unknown on target: never analyzed"),
        "{note}"
    );
}
