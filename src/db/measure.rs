//! What a statement really does, measured while the engine runs it (the rehearsal's eyes):
//! the relation locks its backend holds (from `pg_locks`), the tables whose `relfilenode`
//! changed (a rewrite, or a TRUNCATE), and the rows it affected.
//!
//! - A statement inside a transaction is measured exactly: the backend's own relation locks
//!   are read on the same connection before and after it, so what it added is known, and
//!   those locks are held until the transaction ends.
//! - A statement that runs alone (CREATE INDEX CONCURRENTLY and the like) releases its locks
//!   when it ends, so a second connection samples `pg_locks` for the backend's pid while it
//!   runs; a lock held for less than one sampling round can be missed (`sampled` says so).
//! - A lock is attributed by the relation's OID, so a table renamed earlier in the
//!   transaction is still the same table; its name is the one it had when the statement ran.
//! - A lock the statement asks for that its transaction already holds (taken by an earlier
//!   statement) is not new in `pg_locks`; [`needs`] reads from the SQL what the statement
//!   asks for, and the held lock is attributed to it too (`held_before`).

mod needs;

pub use needs::{Need, needs};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::{Client, SimpleQueryMessage};

/// A user relation, as the catalog listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rel {
    /// `schema.name`, unquoted.
    pub name: String,
    pub kind: char,
    pub filenode: u32,
}

/// User relations (tables, partitioned tables, matviews, views, foreign tables) by OID.
pub type Relations = BTreeMap<u32, Rel>;

/// One relation lock held by the statement's backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Lock {
    /// `AccessExclusiveLock`, `ShareLock`, ... as `pg_locks.mode` spells it.
    pub mode: String,
    /// What the lock is on, whatever the relation is called.
    pub oid: u32,
    /// `schema.name` when the statement ran.
    pub relation: String,
    /// The statement asked for this lock and its transaction held it already (an earlier
    /// statement took it), so `pg_locks` showed nothing new.
    pub held_before: bool,
}

/// A table whose data file the statement changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub oid: u32,
    /// `schema.name` after the statement.
    pub relation: String,
}

impl Lock {
    /// The mode as the PostgreSQL docs name it: `ACCESS EXCLUSIVE`, `SHARE UPDATE EXCLUSIVE`.
    pub fn mode_words(&self) -> String {
        mode_words(&self.mode)
    }

    pub fn is_access_exclusive(&self) -> bool {
        self.mode == "AccessExclusiveLock"
    }
}

/// `ShareUpdateExclusiveLock` -> `SHARE UPDATE EXCLUSIVE`.
pub fn mode_words(mode: &str) -> String {
    let base = mode.strip_suffix("Lock").unwrap_or(mode);
    let mut out = String::new();
    for (i, ch) in base.char_indices() {
        if ch.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// The strength order of the table lock modes (PostgreSQL docs, "Table-Level Locks").
pub fn mode_rank(mode: &str) -> u8 {
    match mode {
        "AccessShareLock" => 1,
        "RowShareLock" => 2,
        "RowExclusiveLock" => 3,
        "ShareUpdateExclusiveLock" => 4,
        "ShareLock" => 5,
        "ShareRowExclusiveLock" => 6,
        "ExclusiveLock" => 7,
        "AccessExclusiveLock" => 8,
        _ => 0,
    }
}

/// What one statement did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measurement {
    /// Rows the statement reported (the sum over a chunk's commands); `None` when none of its
    /// commands reports a count (DDL).
    pub rows: Option<u64>,
    /// Locks it took on user relations (a new relation's own lock is left out), and those it
    /// asked for that its transaction held already.
    pub locks: Vec<Lock>,
    /// Tables whose data file changed (rewritten or truncated).
    pub rewritten: Vec<Rewrite>,
    /// Locks were sampled from a second connection (a statement run alone).
    pub sampled: bool,
}

const RELATIONS_SQL: &str = "\
SELECT c.oid, n.nspname || '.' || c.relname, c.relkind::text, c.relfilenode
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','m','v','f')
  AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'";

const LOCKS_SQL: &str = "\
SELECT relation, mode FROM pg_locks
WHERE pid = $1 AND locktype = 'relation' AND granted AND relation IS NOT NULL
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

pub async fn relations(client: &Client) -> Result<Relations, tokio_postgres::Error> {
    let rows = client.query(RELATIONS_SQL, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind: String = r.get(2);
            (
                r.get::<_, u32>(0),
                Rel {
                    name: r.get(1),
                    kind: kind.chars().next().unwrap_or('r'),
                    filenode: r.get(3),
                },
            )
        })
        .collect())
}

const RESOLVE_SQL: &str = "\
SELECT u.i, CASE WHEN u.via_index
                 THEN (SELECT x.indrelid FROM pg_index x WHERE x.indexrelid = r.oid)
                 ELSE r.oid END
FROM unnest($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY AS u(s, n, via_index, i)
CROSS JOIN LATERAL (SELECT to_regclass(CASE WHEN u.s = '' THEN quote_ident(u.n)
                     ELSE quote_ident(u.s) || '.' || quote_ident(u.n) END)::oid AS oid) r
WHERE r.oid IS NOT NULL";

/// `(relation oid, mode)` of the locks `sql` asks for ([`needs`]), its names resolved as the
/// session sees them now (before the statement runs: search path, renames earlier in the
/// transaction). Names that do not resolve (a table the statement creates) are left out.
pub async fn needed(
    client: &Client,
    sql: &str,
) -> Result<Vec<(u32, &'static str)>, tokio_postgres::Error> {
    let needs = needs(sql);
    if needs.is_empty() {
        return Ok(Vec::new());
    }
    let schemas: Vec<&str> = needs.iter().map(|n| n.schema.as_str()).collect();
    let names: Vec<&str> = needs.iter().map(|n| n.name.as_str()).collect();
    let via_index: Vec<bool> = needs.iter().map(|n| n.on_index_table).collect();
    let rows = client
        .query(RESOLVE_SQL, &[&schemas, &names, &via_index])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let i = usize::try_from(r.get::<_, i64>(0)).ok()?;
            let oid: Option<u32> = r.get(1);
            Some((oid?, needs.get(i.checked_sub(1)?)?.mode))
        })
        .collect())
}

/// `(relation oid, mode)` of the relation locks `pid` holds.
pub async fn locks(
    client: &Client,
    pid: i32,
) -> Result<BTreeSet<(u32, String)>, tokio_postgres::Error> {
    let rows = client.query(LOCKS_SQL, &[&pid]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Run `sql` with the simple query protocol (as the engine always does) and add up the
/// command counts.
pub async fn execute_counting(
    client: &Client,
    sql: &str,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    let mut total: Option<u64> = None;
    for m in msgs {
        if let SimpleQueryMessage::CommandComplete(n) = m {
            if n > 0 || command_reports_rows(sql) {
                *total.get_or_insert(0) += n;
            }
        }
    }
    Ok(total)
}

/// Whether a chunk holds DML, whose count of 0 means something (0 rows updated).
fn command_reports_rows(sql: &str) -> bool {
    match pg_query::parse(sql, 0) {
        Ok(parsed) => parsed.protobuf.stmts.iter().any(|s| {
            matches!(
                s.stmt.as_ref().and_then(|n| n.node.as_ref()),
                Some(
                    pg_query::NodeEnum::InsertStmt(_)
                        | pg_query::NodeEnum::UpdateStmt(_)
                        | pg_query::NodeEnum::DeleteStmt(_)
                        | pg_query::NodeEnum::MergeStmt(_)
                        | pg_query::NodeEnum::CopyStmt(_)
                )
            )
        }),
        // The server ran it, so it parses; a parser older than the server may not.
        Err(_) => {
            let up = sql.to_ascii_uppercase();
            ["UPDATE", "DELETE", "INSERT", "MERGE", "COPY"]
                .iter()
                .any(|w| {
                    up.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .any(|t| t == *w)
                })
        }
    }
}

/// Sample `pid`'s relation locks on `observer` until dropped, every `every`.
pub async fn sample(
    observer: &Client,
    pid: i32,
    every: Duration,
    seen: &mut BTreeSet<(u32, String)>,
) {
    loop {
        if let Ok(l) = locks(observer, pid).await {
            seen.extend(l);
        }
        tokio::time::sleep(every).await;
    }
}

/// Build the measurement from the snapshots around a statement and the locks it asked for
/// (`needed`, from [`needed`]).
pub fn measurement(
    before_rels: &Relations,
    after_rels: &Relations,
    before_locks: &BTreeSet<(u32, String)>,
    after_locks: &BTreeSet<(u32, String)>,
    needed: &[(u32, &str)],
    rows: Option<u64>,
    sampled: bool,
) -> Measurement {
    let new: BTreeSet<(u32, String)> = after_locks.difference(before_locks).cloned().collect();
    let held = held_for(needed, before_locks, &new)
        .into_iter()
        .map(|l| (l, true));
    let mut locks: BTreeSet<Lock> = BTreeSet::new();
    for ((oid, mode), held_before) in new.into_iter().map(|l| (l, false)).chain(held) {
        // A relation the statement created is nobody else's concern: only existing
        // relations (or ones it dropped) are reported.
        let Some(rel) = before_rels.get(&oid) else {
            continue;
        };
        locks.insert(Lock {
            mode,
            oid,
            relation: rel.name.clone(),
            held_before,
        });
    }
    let mut rewritten = Vec::new();
    for (oid, b) in before_rels {
        if !matches!(b.kind, 'r' | 'm') {
            continue;
        }
        if let Some(a) = after_rels.get(oid) {
            if a.filenode != b.filenode {
                rewritten.push(Rewrite {
                    oid: *oid,
                    relation: a.name.clone(),
                });
            }
        }
    }
    Measurement {
        rows,
        locks: locks.into_iter().collect(),
        rewritten,
        sampled,
    }
}

/// The locks a statement asked for (`needed`) that its transaction held already: for each
/// relation it took nothing new on, the weakest mode held that is at least as strong as the
/// strongest it asked for. Where it took something new, `pg_locks` already told what it did.
pub fn held_for(
    needed: &[(u32, &str)],
    before_locks: &BTreeSet<(u32, String)>,
    new: &BTreeSet<(u32, String)>,
) -> BTreeSet<(u32, String)> {
    let mut strongest: BTreeMap<u32, u8> = BTreeMap::new();
    for (oid, mode) in needed {
        let r = strongest.entry(*oid).or_default();
        *r = (*r).max(mode_rank(mode));
    }
    let mut out = BTreeSet::new();
    for (oid, rank) in strongest {
        if rank == 0 || new.iter().any(|(o, _)| *o == oid) {
            continue;
        }
        let covering = before_locks
            .iter()
            .filter(|(o, m)| *o == oid && mode_rank(m) >= rank)
            .min_by_key(|(_, m)| mode_rank(m));
        if let Some(l) = covering {
            out.insert(l.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_words_follow_the_docs() {
        assert_eq!(mode_words("AccessExclusiveLock"), "ACCESS EXCLUSIVE");
        assert_eq!(
            mode_words("ShareUpdateExclusiveLock"),
            "SHARE UPDATE EXCLUSIVE"
        );
        assert_eq!(mode_words("ShareLock"), "SHARE");
        assert!(mode_rank("AccessExclusiveLock") > mode_rank("ShareLock"));
    }

    fn rel(name: &str, kind: char, filenode: u32) -> Rel {
        Rel {
            name: name.into(),
            kind,
            filenode,
        }
    }

    #[test]
    fn new_locks_on_existing_relations_and_changed_files() {
        let before: Relations =
            [(1, rel("public.a", 'r', 10)), (2, rel("public.v", 'v', 0))].into();
        let after: Relations = [
            (1, rel("public.a", 'r', 11)),
            (2, rel("public.v", 'v', 0)),
            (3, rel("public.new", 'r', 30)),
        ]
        .into();
        let bl: BTreeSet<(u32, String)> = [(1, "RowExclusiveLock".to_string())].into();
        let al: BTreeSet<(u32, String)> = [
            (1, "RowExclusiveLock".to_string()),
            (1, "AccessExclusiveLock".to_string()),
            (3, "AccessExclusiveLock".to_string()),
        ]
        .into();
        let m = measurement(&before, &after, &bl, &al, &[], None, false);
        assert_eq!(
            m.locks,
            vec![Lock {
                mode: "AccessExclusiveLock".into(),
                oid: 1,
                relation: "public.a".into(),
                held_before: false,
            }]
        );
        assert_eq!(
            m.rewritten,
            vec![Rewrite {
                oid: 1,
                relation: "public.a".into()
            }]
        );
    }

    fn set(locks: &[(u32, &str)]) -> BTreeSet<(u32, String)> {
        locks.iter().map(|(o, m)| (*o, m.to_string())).collect()
    }

    #[test]
    fn a_lock_held_from_earlier_is_attributed_to_the_statement_that_asks_for_it() {
        // `ALTER TABLE t ADD COLUMN c ...` took ACCESS EXCLUSIVE; `... SET NOT NULL` asks for it
        // again, which pg_locks cannot show.
        let rels: Relations = [(1, rel("public.t", 'r', 10))].into();
        let held = set(&[(1, "AccessExclusiveLock"), (1, "RowExclusiveLock")]);
        let m = measurement(
            &rels,
            &rels,
            &held,
            &held,
            &[(1, "AccessExclusiveLock")],
            None,
            false,
        );
        assert_eq!(
            m.locks,
            vec![Lock {
                mode: "AccessExclusiveLock".into(),
                oid: 1,
                relation: "public.t".into(),
                held_before: true,
            }]
        );
        // Without asking for it, a held lock is not the statement's.
        let m = measurement(&rels, &rels, &held, &held, &[], None, false);
        assert!(m.locks.is_empty());
    }

    #[test]
    fn held_for_picks_the_weakest_covering_mode_and_trusts_new_locks() {
        let before = set(&[
            (1, "AccessExclusiveLock"),
            (1, "ShareRowExclusiveLock"),
            (2, "RowExclusiveLock"),
            (3, "AccessExclusiveLock"),
        ]);
        // A foreign key asks SHARE ROW EXCLUSIVE: the held one of that mode, not the stronger.
        assert_eq!(
            held_for(&[(1, "ShareRowExclusiveLock")], &before, &set(&[])),
            set(&[(1, "ShareRowExclusiveLock")])
        );
        // Two needs on one table: the strongest decides.
        assert_eq!(
            held_for(
                &[(1, "ShareUpdateExclusiveLock"), (1, "AccessExclusiveLock")],
                &before,
                &set(&[])
            ),
            set(&[(1, "AccessExclusiveLock")])
        );
        // Only a weaker lock held: not enough for what it asks, nothing attributed.
        assert_eq!(held_for(&[(2, "ShareLock")], &before, &set(&[])), set(&[]));
        // It took something new on the table: pg_locks told what it did.
        assert_eq!(
            held_for(
                &[(3, "AccessExclusiveLock")],
                &before,
                &set(&[(3, "ShareLock")])
            ),
            set(&[])
        );
    }

    #[test]
    fn locks_follow_the_oid_across_a_rename() {
        // public.t (oid 1) was renamed to public.u earlier in the transaction; the statement
        // names it u: its lock is on oid 1, under the name it has now.
        let before: Relations = [(1, rel("public.u", 'r', 10))].into();
        let after: Relations = [(1, rel("public.u", 'r', 11))].into();
        let m = measurement(
            &before,
            &after,
            &set(&[(1, "AccessExclusiveLock")]),
            &set(&[(1, "AccessExclusiveLock")]),
            &[(1, "AccessExclusiveLock")],
            None,
            false,
        );
        assert_eq!(m.locks.len(), 1);
        assert_eq!(
            (m.locks[0].oid, m.locks[0].relation.as_str()),
            (1, "public.u")
        );
        assert_eq!(m.rewritten[0].oid, 1);
    }

    #[test]
    fn dml_counts_zero_rows_ddl_counts_none() {
        assert!(command_reports_rows("UPDATE t SET a = 1"));
        assert!(command_reports_rows("insert into t values (1)"));
        assert!(!command_reports_rows(
            "ALTER TABLE updated_things ADD COLUMN x int"
        ));
        assert!(!command_reports_rows(
            "ALTER TABLE r ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p (id) ON UPDATE no action"
        ));
    }
}
