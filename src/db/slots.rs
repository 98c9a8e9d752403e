//! Lock slots: whether each transaction of a batch fits in the server's shared lock table.
//!
//! PostgreSQL keeps every session's locks in one shared table with room for
//! `max_locks_per_transaction * (max_connections + max_prepared_transactions)` objects (the
//! documented figure; the server adds a little slack). A transaction keeps one slot for every
//! object it locks until it ends: each relation a statement creates, alters, reads or writes,
//! and the indexes, sequences and TOAST tables that come with it. Thousands of small
//! migrations in one transaction overflow it: PostgreSQL fails with `out of shared memory`
//! after running most of the batch, and everything is rolled back. [`estimate`] counts, before
//! anything runs, roughly what each transaction will hold, so `migrate` can refuse up front.
//!
//! The estimate is pure ([`Demand`] per statement, from PostgreSQL's parser; no database) and
//! errs high: every relation a statement names counts once per transaction, with what the
//! catalog says already hangs off it ([`dependents`]); a `CREATE TABLE` counts its TOAST table
//! and index, a sequence for every serial or identity column and an index for every primary
//! key, unique or exclusion constraint; a statement that locks something else (a type, a
//! function, a comment's object) counts one. [`capacity`] reads the server's side.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{AlterTableType, ConstrType, Node, ObjectType, RangeVar};
use pg_query::{NodeEnum, NodeRef};
use tokio_postgres::Client;

use super::apply::{Op, Step, TxMode, Work, steps};
use super::{DbError, quote_ident};
use crate::source::cut;
use crate::source::split;

/// Slots a transaction of pgship's needs besides the migrations' own: its state rows (the
/// state table, its index and sequence), the run's records, its transaction and virtual
/// transaction ids.
pub const OWN_SLOTS: u64 = 16;

/// What one statement asks of the lock table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// Relations it names, as `to_regclass` reads them (`"schema"."name"` or `"name"`).
    pub relations: BTreeSet<String>,
    /// Objects it creates that no name shows: indexes, sequences, TOAST tables.
    pub implied: u64,
    /// Other objects it locks (types, functions, the object of a comment...).
    pub other: u64,
}

impl Demand {
    /// What `sql` (one unit the engine sends: one or more statements) asks, statement by
    /// statement. Text that does not parse counts one slot.
    pub fn of(sql: &str) -> Demand {
        let mut d = Demand::default();
        let mut any = false;
        for c in cut::cuts(sql) {
            let Ok(c) = c else {
                d.other += 1;
                break;
            };
            any = true;
            d.add_statement(&sql[c.first..c.end]);
        }
        if !any && split::first_token_offset(sql).is_some() {
            d.other += 1;
        }
        d
    }

    fn add_statement(&mut self, stmt: &str) {
        // A data statement only names relations: the parser's summary tells them without
        // building the tree (the bulk of a data migration).
        if split::plain_dml(stmt) {
            match pg_query::summary(stmt, 0, -1) {
                Ok(s) => self
                    .relations
                    .extend(s.tables.iter().map(|t| key(&t.schema_name, &t.table_name))),
                Err(_) => self.other += 1,
            }
            return;
        }
        let Ok(parsed) = pg_query::parse(stmt, 0) else {
            self.other += 1;
            return;
        };
        let mut named = false;
        for (node, ..) in parsed.protobuf.nodes() {
            match node {
                NodeRef::RangeVar(r) => {
                    named = true;
                    self.relations.insert(range_key(r));
                }
                NodeRef::DropStmt(s) => named |= self.dropped(s.remove_type, &s.objects),
                NodeRef::CreateStmt(s) => {
                    self.implied += table_implied(&s.table_elts);
                    // LIKE reads another table (the walk does not reach it).
                    for e in &s.table_elts {
                        if let Some(NodeEnum::TableLikeClause(l)) = e.node.as_ref() {
                            self.relations.extend(l.relation.as_ref().map(range_key));
                        }
                    }
                }
                NodeRef::CreateTableAsStmt(_) => self.implied += 2,
                NodeRef::IndexStmt(_) => self.implied += 1,
                NodeRef::AlterTableStmt(s) => self.implied += alter_implied(&s.cmds),
                _ => {}
            }
        }
        if !named {
            self.other += 1;
        }
    }

    /// `DROP TABLE/INDEX/SEQUENCE/VIEW ...` names its objects as lists of strings; whether it
    /// dropped relations.
    fn dropped(&mut self, remove_type: i32, objects: &[Node]) -> bool {
        let relation_kinds = [
            ObjectType::ObjectTable,
            ObjectType::ObjectIndex,
            ObjectType::ObjectSequence,
            ObjectType::ObjectView,
            ObjectType::ObjectMatview,
            ObjectType::ObjectForeignTable,
        ];
        if !relation_kinds.iter().any(|k| *k as i32 == remove_type) {
            return false;
        }
        for o in objects {
            if let Some(NodeEnum::List(list)) = &o.node {
                let parts: Vec<&str> = list.items.iter().filter_map(string).collect();
                match parts.as_slice() {
                    [name] => self.relations.insert(key("", name)),
                    [.., schema, name] => self.relations.insert(key(schema, name)),
                    [] => false,
                };
            }
        }
        true
    }
}

fn string(n: &Node) -> Option<&str> {
    match n.node.as_ref() {
        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
        _ => None,
    }
}

/// A relation's key, as `to_regclass` reads it.
pub fn key(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        quote_ident(name)
    } else {
        format!("{}.{}", quote_ident(schema), quote_ident(name))
    }
}

fn range_key(r: &RangeVar) -> String {
    key(&r.schemaname, &r.relname)
}

/// A new table's TOAST table and index (unless every column is of a fixed-width type), and
/// what its columns and constraints create.
fn table_implied(elements: &[Node]) -> u64 {
    let mut implied = 0;
    let mut toast = false;
    for e in elements {
        match e.node.as_ref() {
            Some(NodeEnum::ColumnDef(c)) => {
                toast |= !fixed_width(c);
                implied += column_implied(c);
            }
            Some(NodeEnum::Constraint(c)) => implied += constraint_implied(c.contype),
            // LIKE copies columns of unknown types.
            Some(_) => toast = true,
            None => {}
        }
    }
    implied + if toast { 2 } else { 0 }
}

/// Whether a column's type is stored in fixed width (no TOAST table for it). Unknown types
/// (domains, enums, user types) count as variable.
fn fixed_width(c: &pg_query::protobuf::ColumnDef) -> bool {
    let Some(t) = c.type_name.as_ref() else {
        return false;
    };
    t.array_bounds.is_empty()
        && t.names.last().and_then(string).is_some_and(|n| {
            matches!(
                n,
                "int2"
                    | "int4"
                    | "int8"
                    | "float4"
                    | "float8"
                    | "bool"
                    | "date"
                    | "time"
                    | "timetz"
                    | "timestamp"
                    | "timestamptz"
                    | "interval"
                    | "uuid"
                    | "money"
                    | "oid"
                    | "pg_lsn"
                    | "macaddr"
                    | "macaddr8"
                    | "point"
                    | "serial"
                    | "bigserial"
                    | "smallserial"
                    | "serial2"
                    | "serial4"
                    | "serial8"
            )
        })
}

/// A serial or identity column's sequence, a column constraint's index.
fn column_implied(c: &pg_query::protobuf::ColumnDef) -> u64 {
    let serial = c.type_name.as_ref().is_some_and(|t| {
        t.names.last().and_then(string).is_some_and(|n| {
            matches!(
                n,
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
            )
        })
    });
    let constraints: u64 = c
        .constraints
        .iter()
        .map(|k| match k.node.as_ref() {
            Some(NodeEnum::Constraint(k)) => {
                constraint_implied(k.contype)
                    + u64::from(k.contype == ConstrType::ConstrIdentity as i32)
            }
            _ => 0,
        })
        .sum();
    u64::from(serial) + constraints
}

/// The index a primary key, unique or exclusion constraint builds.
fn constraint_implied(contype: i32) -> u64 {
    let indexed = [
        ConstrType::ConstrPrimary,
        ConstrType::ConstrUnique,
        ConstrType::ConstrExclusion,
    ];
    u64::from(indexed.iter().any(|t| *t as i32 == contype))
}

fn alter_implied(cmds: &[Node]) -> u64 {
    cmds.iter()
        .map(|c| match c.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(cmd)) => {
                match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(col))
                        if cmd.subtype == AlterTableType::AtAddColumn as i32 =>
                    {
                        column_implied(col)
                    }
                    Some(NodeEnum::Constraint(k)) => constraint_implied(k.contype),
                    _ => 0,
                }
            }
            _ => 0,
        })
        .sum()
}

/// What one transaction of a batch is estimated to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Estimate {
    pub slots: u64,
    /// The distinct relations its statements name.
    pub relations: usize,
    pub statements: usize,
}

/// The slots a transaction running statements with these demands holds: each distinct
/// relation once with what already hangs off it (`dependents`, from [`dependents`]; absent
/// for relations the batch creates), what the statements imply and lock besides, and
/// pgship's own ([`OWN_SLOTS`]).
pub fn estimate<'a>(
    demands: impl IntoIterator<Item = &'a Demand>,
    dependents: &BTreeMap<String, u64>,
) -> Estimate {
    let mut relations = BTreeSet::new();
    let mut extra = OWN_SLOTS;
    let mut statements = 0;
    for d in demands {
        statements += 1;
        extra += d.implied + d.other;
        relations.extend(d.relations.iter());
    }
    let hanging: u64 = relations
        .iter()
        .filter_map(|r| dependents.get(r.as_str()))
        .sum();
    Estimate {
        slots: relations.len() as u64 + hanging + extra,
        relations: relations.len(),
        statements,
    }
}

/// The demand of every statement of `work` that is sent (`[work item][statement]`; statements
/// already committed and transaction control, which the engine never sends, demand nothing).
pub fn demands(work: &[Work<'_>]) -> Vec<Vec<Demand>> {
    work.iter()
        .map(|w| {
            w.migration
                .statements
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    if i < w.start_at || s.control.is_some() {
                        Demand::default()
                    } else {
                        Demand::of(&s.sql)
                    }
                })
                .collect()
        })
        .collect()
}

/// Every relation the demands name, once.
pub fn named(demands: &[Vec<Demand>]) -> Vec<String> {
    let all: BTreeSet<&String> = demands
        .iter()
        .flatten()
        .flat_map(|d| d.relations.iter())
        .collect();
    all.into_iter().cloned().collect()
}

/// The transaction the engine runs `work` in (in `mode`) that holds the most: its estimate and
/// the work items it runs statements of.
pub fn largest(
    work: &[Work<'_>],
    demands: &[Vec<Demand>],
    mode: TxMode,
    server_major: u32,
    dependents: &BTreeMap<String, u64>,
) -> Option<(Estimate, Vec<usize>)> {
    steps(work, mode, server_major)
        .iter()
        .map(|step| {
            let ops: &[Op] = match step {
                Step::Tx(ops) => ops,
                Step::Alone(op) => std::slice::from_ref(op),
            };
            let mut items: Vec<usize> = Vec::new();
            let stmts = ops.iter().filter_map(|op| match op {
                Op::Statement { work, stmt } => {
                    if items.last() != Some(work) {
                        items.push(*work);
                    }
                    demands.get(*work).and_then(|d| d.get(*stmt))
                }
                _ => None,
            });
            let e = estimate(stmts.collect::<Vec<_>>(), dependents);
            (e, items)
        })
        .max_by_key(|(e, _)| e.slots)
}

/// Why the batch cannot run on this server as configured, as a refusal and its hint; `None`
/// when every transaction fits. In whole-run mode, it says whether one transaction per
/// migration would fit.
pub fn refusal(
    work: &[Work<'_>],
    demands: &[Vec<Demand>],
    mode: TxMode,
    server_major: u32,
    dependents: &BTreeMap<String, u64>,
    capacity: &Capacity,
) -> Option<(String, String)> {
    let (worst, items) = largest(work, demands, mode, server_major, dependents)?;
    if worst.slots <= capacity.free() {
        return None;
    }
    let room = format!(
        "this server's lock table has room for {}{}",
        capacity.describe(),
        match capacity.in_use {
            0 => String::new(),
            n => format!(", {} of them held by other sessions now", thousands(n)),
        }
    );
    let names: Vec<&str> = items
        .iter()
        .map(|&i| work[i].migration.name.as_str())
        .collect();
    let raise = "raise max_locks_per_transaction on the server (it takes a restart)";
    if items.len() > 1 {
        let one = largest(
            work,
            demands,
            TxMode::PerMigration,
            server_major,
            dependents,
        );
        let message = format!(
            "the pending batch is too large for one transaction on this server: its {} \
             migrations ({}) need about {} lock slots, and {room}; PostgreSQL would fail with \
             `out of shared memory` partway and roll everything back",
            thousands(names.len() as u64),
            crate::util::fold_list(&names, 3, 2),
            thousands(worst.slots),
        );
        let hint = match one {
            Some((e, _)) if e.slots <= capacity.free() => format!(
                "apply them with `--tx-mode per-migration` (each migration commits on its own; \
                 the largest needs about {} slots), or {raise}",
                thousands(e.slots)
            ),
            _ => format!("split the largest migrations, or {raise}"),
        };
        return Some((message, hint));
    }
    let message = format!(
        "migration {} needs about {} lock slots in one transaction ({} relations), and {room}; \
         PostgreSQL would fail with `out of shared memory` partway and roll it back",
        names.first().copied().unwrap_or("?"),
        thousands(worst.slots),
        worst.relations,
    );
    Some((
        message,
        format!("split it into smaller migrations, or {raise}"),
    ))
}

/// The server's lock table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub max_locks_per_transaction: u64,
    pub max_connections: u64,
    pub max_prepared_transactions: u64,
    /// Slots other sessions hold now (locks not on the fast path).
    pub in_use: u64,
}

impl Capacity {
    /// The documented size of the lock table.
    pub fn slots(&self) -> u64 {
        self.max_locks_per_transaction
            .saturating_mul(self.max_connections + self.max_prepared_transactions)
    }

    /// What one transaction may take now.
    pub fn free(&self) -> u64 {
        self.slots().saturating_sub(self.in_use)
    }

    /// `6,400 (max_locks_per_transaction 64 × (max_connections 100 + max_prepared_transactions 0))`.
    pub fn describe(&self) -> String {
        format!(
            "{} (max_locks_per_transaction {} × (max_connections {} + max_prepared_transactions {}))",
            thousands(self.slots()),
            self.max_locks_per_transaction,
            self.max_connections,
            self.max_prepared_transactions
        )
    }
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The server's lock table: its settings and the slots other sessions hold.
pub async fn capacity(client: &Client) -> Result<Capacity, DbError> {
    let row = client
        .query_one(
            "SELECT current_setting('max_locks_per_transaction')::bigint, \
                    current_setting('max_connections')::bigint, \
                    current_setting('max_prepared_transactions')::bigint, \
                    (SELECT count(*) FROM pg_locks WHERE NOT fastpath AND pid IS DISTINCT FROM pg_backend_pid())",
            &[],
        )
        .await
        .map_err(|e| DbError::query("reading the server's lock table settings", &e))?;
    let get = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(Capacity {
        max_locks_per_transaction: get(0),
        max_connections: get(1),
        max_prepared_transactions: get(2),
        in_use: get(3),
    })
}

/// For each of `relations` (keys as [`key`] makes them) that exists, the objects that hang off
/// it and are locked with it: its indexes, its TOAST table and index, the sequences it owns.
pub async fn dependents(
    client: &Client,
    relations: &[String],
) -> Result<BTreeMap<String, u64>, DbError> {
    if relations.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = client
        .query(
            "SELECT r.name, \
                    (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) \
                  + CASE WHEN c.reltoastrelid <> 0 THEN 2 ELSE 0 END \
                  + (SELECT count(*) FROM pg_depend d JOIN pg_class s ON s.oid = d.objid \
                     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                       AND d.refobjid = c.oid AND d.deptype IN ('a', 'i') AND s.relkind = 'S') \
             FROM unnest($1::text[]) AS r(name) \
             JOIN pg_class c ON c.oid = to_regclass(r.name)",
            &[&relations],
        )
        .await
        .map_err(|e| DbError::query("reading the indexes and sequences of the pending migrations' tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let n: i64 = r.get(1);
            (r.get::<_, String>(0), u64::try_from(n).unwrap_or(0))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(sqls: &[&str]) -> u64 {
        let demands: Vec<Demand> = sqls.iter().map(|s| Demand::of(s)).collect();
        estimate(&demands, &BTreeMap::new()).slots - OWN_SLOTS
    }

    #[test]
    fn a_new_table_counts_what_comes_with_it() {
        // The table, its TOAST table and index, the serial's sequence, the key's index.
        assert_eq!(
            slots(&["CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL)"]),
            5
        );
        // Only fixed-width columns: no TOAST table.
        assert_eq!(
            slots(&["CREATE TABLE t (id bigint PRIMARY KEY, at timestamptz, ok boolean)"]),
            2
        );
        assert_eq!(slots(&["CREATE TABLE t (id int, tags int[])"]), 3);
        assert_eq!(slots(&["CREATE TABLE t (LIKE u)"]), 4);
        // Identity, unique column and table constraints, an exclusion constraint.
        assert_eq!(
            slots(&[
                "CREATE TABLE s.t (id bigint GENERATED ALWAYS AS IDENTITY, a text UNIQUE, b int, \
                 PRIMARY KEY (id), EXCLUDE USING gist (b WITH =))"
            ]),
            1 + 2 + 1 + 1 + 1 + 1
        );
        // The same table named again costs nothing more; its index does.
        assert_eq!(
            slots(&[
                "CREATE TABLE t (id int)",
                "CREATE INDEX t_i ON t (id)",
                "INSERT INTO t VALUES (1), (2)",
                "ALTER TABLE t ADD COLUMN n bigserial UNIQUE",
            ]),
            1 + 1 + 2
        );
    }

    #[test]
    fn statements_name_the_relations_they_lock() {
        let d = Demand::of(
            "INSERT INTO app.orders (user_id) SELECT id FROM users WHERE id IN (SELECT user_id FROM \"Carts\");\n\
             UPDATE users SET n = 1; DROP TABLE old_a, app.old_b; DROP INDEX i1;",
        );
        let names: Vec<&str> = d.relations.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "\"Carts\"",
                "\"app\".\"old_b\"",
                "\"app\".\"orders\"",
                "\"i1\"",
                "\"old_a\"",
                "\"users\""
            ]
        );
        assert_eq!((d.implied, d.other), (0, 0));
        // A statement that locks no relation, and text that does not parse: one each.
        let d = Demand::of(
            "CREATE TYPE mood AS ENUM ('a'); COMMENT ON TYPE mood IS 'x'; this is not sql",
        );
        assert_eq!((d.relations.len(), d.other), (0, 3));
        assert_eq!(Demand::of("-- nothing"), Demand::default());
    }

    #[test]
    fn existing_relations_bring_their_indexes_and_distinct_ones_count_once() {
        let demands = [
            Demand::of("ALTER TABLE users ADD COLUMN a int"),
            Demand::of("UPDATE users SET a = 1"),
            Demand::of("INSERT INTO new_table SELECT * FROM users"),
        ];
        let dependents = BTreeMap::from([("\"users\"".to_string(), 7)]);
        let e = estimate(&demands, &dependents);
        assert_eq!(e.relations, 2);
        assert_eq!(e.statements, 3);
        assert_eq!(e.slots, 2 + 7 + OWN_SLOTS);
    }

    #[test]
    fn two_thousand_small_migrations_overflow_a_default_server() {
        let sqls: Vec<String> = (0..2000)
            .map(|i| {
                format!(
                    "CREATE TABLE m{i} (id serial PRIMARY KEY, name text NOT NULL, at timestamptz DEFAULT now());\n\
                     CREATE INDEX m{i}_name ON m{i} (name);\nINSERT INTO m{i} (name) VALUES ('a')"
                )
            })
            .collect();
        let demands: Vec<Demand> = sqls.iter().map(|s| Demand::of(s)).collect();
        let all = estimate(&demands, &BTreeMap::new());
        assert_eq!(all.slots, 2000 * 6 + OWN_SLOTS);
        let default = Capacity {
            max_locks_per_transaction: 64,
            max_connections: 100,
            max_prepared_transactions: 0,
            in_use: 10,
        };
        assert_eq!(default.slots(), 6400);
        assert!(all.slots > default.free());
        // One migration per transaction fits easily.
        assert!(estimate(&demands[..1], &BTreeMap::new()).slots < default.free());
        assert_eq!(
            default.describe(),
            "6,400 (max_locks_per_transaction 64 × (max_connections 100 + max_prepared_transactions 0))"
        );
        assert_eq!(thousands(12016), "12,016");
        assert_eq!(thousands(999), "999");
    }

    fn migrations(n: usize) -> Vec<crate::source::Migration> {
        (0..n)
            .map(|i| {
                let mut m = crate::source::testing::migration(&format!("{:05}_m{i}", i + 1));
                m.statements = [
                    format!("CREATE TABLE m{i} (id serial PRIMARY KEY, name text)"),
                    format!("CREATE INDEX m{i}_name ON m{i} (name)"),
                    format!("INSERT INTO m{i} (name) VALUES ('a')"),
                ]
                .into_iter()
                .map(|sql| crate::source::Statement {
                    sql: sql.into(),
                    offset: 0,
                    line: 1,
                    tx: crate::source::TxRequirement::Any,
                    control: None,
                })
                .collect();
                m
            })
            .collect()
    }

    fn work(ms: &[crate::source::Migration]) -> Vec<Work<'_>> {
        ms.iter()
            .map(|m| Work {
                migration: m,
                start_at: 0,
                uncertain: false,
            })
            .collect()
    }

    fn server(max_locks: u64) -> Capacity {
        Capacity {
            max_locks_per_transaction: max_locks,
            max_connections: 100,
            max_prepared_transactions: 0,
            in_use: 3,
        }
    }

    #[test]
    fn a_batch_too_large_for_one_transaction_is_refused_with_the_way_out() {
        let ms = migrations(2000);
        let w = work(&ms);
        let d = demands(&w);
        let none = BTreeMap::new();
        let (msg, hint) = refusal(&w, &d, TxMode::All, 15, &none, &server(64)).expect("refused");
        assert!(msg.contains("too large for one transaction"), "{msg}");
        assert!(msg.contains("its 2,000 migrations (00001_m0, 00002_m1, 00003_m2, ... 1995 more ..., 01999_m1998, 02000_m1999)"), "{msg}");
        assert!(msg.contains("about 12,016 lock slots"), "{msg}");
        assert!(
            msg.contains("room for 6,400 (max_locks_per_transaction 64"),
            "{msg}"
        );
        assert!(msg.contains("3 of them held by other sessions"), "{msg}");
        assert!(
            hint.contains("`--tx-mode per-migration`") && hint.contains("about 22 slots"),
            "{hint}"
        );
        // One transaction per migration fits; so does the batch on a larger lock table.
        assert_eq!(
            refusal(&w, &d, TxMode::PerMigration, 15, &none, &server(64)),
            None
        );
        assert_eq!(refusal(&w, &d, TxMode::All, 15, &none, &server(128)), None);
        // Where even one migration does not fit, pgship says so.
        let (msg, hint) = refusal(
            &w[..1],
            &d[..1],
            TxMode::All,
            15,
            &none,
            &Capacity {
                max_locks_per_transaction: 1,
                max_connections: 20,
                max_prepared_transactions: 0,
                in_use: 0,
            },
        )
        .expect("refused");
        assert!(
            msg.starts_with("migration 00001_m0 needs about 22 lock slots"),
            "{msg}"
        );
        assert!(
            hint.starts_with("split it into smaller migrations"),
            "{hint}"
        );
        let tiny = Capacity {
            max_locks_per_transaction: 10,
            max_connections: 1,
            ..server(1)
        };
        let (_, hint) = refusal(&w[..3], &d[..3], TxMode::All, 15, &none, &tiny).expect("refused");
        assert!(hint.starts_with("split the largest migrations"), "{hint}");
    }

    #[test]
    fn statements_that_run_alone_end_the_transaction() {
        let mut ms = migrations(1100);
        // A concurrent index in the middle: the engine commits before it and starts anew.
        ms[550].statements[1].sql = "CREATE INDEX CONCURRENTLY m550_name ON m550 (name)".into();
        ms[550].statements[1].tx = crate::source::TxRequirement::NoTransaction;
        let w = work(&ms);
        let d = demands(&w);
        let none = BTreeMap::new();
        let (whole, items) = largest(&w, &d, TxMode::All, 15, &none).expect("steps");
        assert!(
            whole.slots < 6400 - 3 && items.len() < 600,
            "{whole:?} {}",
            items.len()
        );
        assert_eq!(refusal(&w, &d, TxMode::All, 15, &none, &server(64)), None);
        // Committed statements and transaction control demand nothing.
        let mut w = work(&ms[..1]);
        w[0].start_at = 1;
        let d = demands(&w);
        assert_eq!(d[0][0], Demand::default());
        assert_eq!(named(&d), ["\"m0\""]);
    }
}
