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
    /// `schema.name`.
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
    /// Locks it took on user relations (a new relation's own lock is left out).
    pub locks: Vec<Lock>,
    /// Tables whose data file changed (rewritten or truncated).
    pub rewritten: Vec<String>,
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

/// Build the measurement from the snapshots around a statement.
pub fn measurement(
    before_rels: &Relations,
    after_rels: &Relations,
    before_locks: &BTreeSet<(u32, String)>,
    after_locks: &BTreeSet<(u32, String)>,
    rows: Option<u64>,
    sampled: bool,
) -> Measurement {
    let mut locks: BTreeSet<Lock> = BTreeSet::new();
    for (oid, mode) in after_locks.difference(before_locks) {
        // A relation the statement created is nobody else's concern: only existing
        // relations (or ones it dropped) are reported.
        let Some(rel) = before_rels.get(oid) else {
            continue;
        };
        locks.insert(Lock {
            mode: mode.clone(),
            relation: rel.name.clone(),
        });
    }
    let mut rewritten = Vec::new();
    for (oid, b) in before_rels {
        if !matches!(b.kind, 'r' | 'm') {
            continue;
        }
        if let Some(a) = after_rels.get(oid) {
            if a.filenode != b.filenode {
                rewritten.push(a.name.clone());
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
        let m = measurement(&before, &after, &bl, &al, None, false);
        assert_eq!(
            m.locks,
            vec![Lock {
                mode: "AccessExclusiveLock".into(),
                relation: "public.a".into()
            }]
        );
        assert_eq!(m.rewritten, vec!["public.a".to_string()]);
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
