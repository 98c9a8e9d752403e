//! Who blocks a lock: after a lock timeout, the sessions holding (or queued ahead for) a lock
//! that conflicts with the one pgship asked for, named by pid, application, state and the age
//! of their transaction and query, so that every lock timeout pgship reports says who to ask.
//!
//! pgship's own request is gone once the timeout fired, so the conflict is computed from what
//! was asked for and PostgreSQL's lock conflict table ([`conflicts_with`]):
//! - a migration statement's locks are read from its SQL ([`super::measure::needed`]);
//!   `compare --data` asks for `ACCESS SHARE` on the tables it reads;
//! - a session queued for a conflicting lock is named together with the sessions it waits
//!   for (`pg_blocking_pids`), the head of the queue;
//! - when the statement's locks cannot be read from its SQL (a `DO` block, a function) or the
//!   wait was for a row (the error's context names the relation), the sessions with an open
//!   transaction holding locks on user relations (on that relation, for a row) are named as the
//!   likely holders ([`Found::Likely`]).
//!
//! Only `pg_locks` and `pg_stat_activity` are read: never a query's text, which may hold
//! secrets. Lookups are best effort: a failed lookup names nobody rather than hide the timeout.

use serde::Serialize;
use tokio_postgres::Client;

/// Lock modes as `pg_locks.mode` spells them, weakest first.
pub const MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// The modes that conflict with `mode` (PostgreSQL's "Conflicting Lock Modes" table); an
/// unknown mode conflicts with every mode.
pub fn conflicts_with(mode: &str) -> &'static [&'static str] {
    match mode {
        "AccessShareLock" => &MODES[7..],
        "RowShareLock" => &MODES[6..],
        "RowExclusiveLock" => &MODES[4..],
        "ShareUpdateExclusiveLock" => &MODES[3..],
        "ShareLock" => &[
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        ],
        "ShareRowExclusiveLock" => &MODES[2..],
        "ExclusiveLock" => &MODES[1..],
        _ => &MODES,
    }
}

/// How a blocking session was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// It holds, or is queued for, a lock that conflicts with the one asked for.
    Conflict,
    /// It holds a lock that a session queued ahead (a [`Found::Conflict`] one) waits for.
    Queue,
    /// The lock asked for is not known (or was on a row): it holds locks on the relation(s).
    Likely,
}

/// A session that blocks (or probably blocks) a lock pgship waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub pid: i32,
    pub application_name: String,
    /// `pg_stat_activity.state`: `active`, `idle in transaction`, ...
    pub state: String,
    /// Seconds its transaction has been open.
    pub transaction_s: Option<i64>,
    /// Seconds since its current (or last) query started.
    pub query_s: Option<i64>,
    /// The relation, `schema.name` quoted where needed.
    pub relation: String,
    /// As `pg_locks.mode` spells it.
    pub mode: String,
    /// Holds the lock (or is queued for it).
    pub granted: bool,
    pub found: Found,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        let mut about: Vec<String> = Vec::new();
        if !self.application_name.is_empty() {
            about.push(self.application_name.clone());
        }
        if !self.state.is_empty() {
            about.push(self.state.clone());
        }
        if let Some(s) = self.transaction_s {
            about.push(format!("transaction open {}", age(s)));
        }
        if let (Some(s), "active") = (self.query_s, self.state.as_str()) {
            about.push(format!("query running {}", age(s)));
        }
        if !about.is_empty() {
            write!(f, " ({})", about.join(", "))?;
        }
        let mode = super::measure::mode_words(&self.mode);
        if self.granted {
            write!(f, ": holds {mode} on {}", self.relation)
        } else {
            write!(f, ": queued for {mode} on {}", self.relation)
        }
    }
}

/// `25s`, `12min`, `3h`: whole units, as an age is read.
fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}min", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// Lines naming `blockers` for a report: `blocked by ...` (or `probably blocked by ...` when
/// found only as likely holders), at most `max` of them, or a line saying none was found.
pub fn describe(blockers: &[Blocker], max: usize) -> Vec<String> {
    if blockers.is_empty() {
        return vec![
            "no session holds a conflicting lock any more (the holder ended or released it)".into(),
        ];
    }
    let mut lines: Vec<String> = blockers
        .iter()
        .take(max)
        .map(|b| match b.found {
            Found::Likely => format!("probably blocked by {b}"),
            Found::Conflict | Found::Queue => format!("blocked by {b}"),
        })
        .collect();
    if blockers.len() > max {
        lines.push(format!("and {} more session(s)", blockers.len() - max));
    }
    lines
}

/// The sessions blocking `requests` (`(relation oid, mode asked for)`): those holding or
/// queued for a conflicting lock, and those the queued ones wait for.
pub async fn for_requests(client: &Client, requests: &[(u32, &str)]) -> Vec<Blocker> {
    let mut oids = Vec::new();
    let mut modes = Vec::new();
    for (oid, mode) in requests {
        for m in conflicts_with(mode) {
            oids.push(*oid);
            modes.push(*m);
        }
    }
    if oids.is_empty() {
        return Vec::new();
    }
    lookup(client, &oids, &modes, false).await
}

/// The sessions blocking the statement `sql` that just gave up waiting for a lock with
/// `error` (SQLSTATE 55P03), on `client` (outside a failed transaction: after its ROLLBACK).
pub async fn after_timeout(
    client: &Client,
    sql: &str,
    error: &tokio_postgres::Error,
) -> Vec<Blocker> {
    let needed = super::measure::needed(client, sql)
        .await
        .unwrap_or_default();
    let requests: Vec<(u32, &str)> = needed.iter().map(|(o, m)| (*o, *m)).collect();
    let found = for_requests(client, &requests).await;
    if !found.is_empty() {
        return found;
    }
    let context = error.as_db_error().and_then(|d| d.where_()).unwrap_or("");
    match row_relation(context) {
        Some(rel) => row_holders(client, &rel).await,
        None if needed.is_empty() => {
            let all: Vec<&str> = MODES.to_vec();
            lookup(client, &vec![0; all.len()], &all, true).await
        }
        None => Vec::new(),
    }
}

/// The relation a row-lock wait was on, from the error's context
/// (`while updating tuple (0,1) in relation "orders"`).
pub fn row_relation(context: &str) -> Option<String> {
    let rest = context.split("in relation \"").nth(1)?;
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

/// Sessions with an open transaction holding a row-level lock mode (or stronger) on `rel`.
async fn row_holders(client: &Client, rel: &str) -> Vec<Blocker> {
    let Ok(row) = client
        .query_one(
            "SELECT coalesce(to_regclass(quote_ident($1))::oid, 0::oid)",
            &[&rel],
        )
        .await
    else {
        return Vec::new();
    };
    let oid: u32 = row.get(0);
    if oid == 0 {
        return Vec::new();
    }
    let modes = &MODES[1..];
    lookup(client, &vec![oid; modes.len()], modes, true).await
}

/// Locks of other sessions on relation `oids[i]` (0: any relation) in mode `modes[i]`,
/// with the sessions queued ones wait for; `likely` marks them all [`Found::Likely`] and keeps
/// only sessions with an open transaction.
async fn lookup(client: &Client, oids: &[u32], modes: &[&str], likely: bool) -> Vec<Blocker> {
    let Ok(rows) = client.query(LOOKUP_SQL, &[&oids, &modes, &likely]).await else {
        return Vec::new();
    };
    let mut out: Vec<Blocker> = rows
        .iter()
        .map(|r| Blocker {
            pid: r.get(0),
            relation: r.get(1),
            mode: r.get(2),
            granted: r.get(3),
            found: match (likely, r.get::<_, bool>(4)) {
                (true, _) => Found::Likely,
                (false, true) => Found::Queue,
                (false, false) => Found::Conflict,
            },
            application_name: r.get(5),
            state: r.get(6),
            transaction_s: r.get(7),
            query_s: r.get(8),
        })
        .collect();
    // Holders first, the oldest transaction first: the likeliest root of the wait.
    out.sort_by_key(|b| (!b.granted, std::cmp::Reverse(b.transaction_s), b.pid));
    out
}

/// `$1` relation oids (0: any relation), `$2` the modes that conflict, pairwise; `$3`: only
/// user relations and sessions with an open transaction. Other sessions' temporary tables are
/// never what pgship waits for.
const LOOKUP_SQL: &str = "\
WITH req(rel, mode) AS (SELECT * FROM unnest($1::oid[], $2::text[])),
direct AS (
  SELECT DISTINCT l.pid, l.relation, l.mode, l.granted, false AS queue
  FROM pg_catalog.pg_locks l JOIN req r ON (r.rel = l.relation OR r.rel = 0) AND r.mode = l.mode
  WHERE l.locktype = 'relation' AND l.pid IS NOT NULL AND l.pid <> pg_backend_pid()
    AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())),
queued AS (
  SELECT DISTINCT h.pid, h.relation, h.mode, true, true
  FROM direct w CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS b(pid)
  JOIN pg_catalog.pg_locks h ON h.pid = b.pid AND h.relation = w.relation
   AND h.locktype = 'relation' AND h.granted
  WHERE NOT w.granted AND b.pid <> pg_backend_pid())
SELECT DISTINCT ON (x.pid, x.relation) x.pid, format('%I.%I', n.nspname, c.relname), x.mode,
       x.granted, x.queue, coalesce(a.application_name, ''), coalesce(a.state, ''),
       extract(epoch FROM clock_timestamp() - a.xact_start)::int8,
       extract(epoch FROM clock_timestamp() - a.query_start)::int8
FROM (SELECT * FROM direct UNION ALL SELECT * FROM queued) x
JOIN pg_catalog.pg_class c ON c.oid = x.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = x.pid
WHERE n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
  AND (NOT $3 OR (a.xact_start IS NOT NULL
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')))
ORDER BY x.pid, x.relation, x.granted DESC, x.queue
LIMIT 50";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_table_is_symmetric_and_matches_the_docs() {
        for a in MODES {
            for b in MODES {
                assert_eq!(
                    conflicts_with(a).contains(&b),
                    conflicts_with(b).contains(&a),
                    "{a} / {b}"
                );
            }
        }
        assert_eq!(conflicts_with("AccessShareLock"), &["AccessExclusiveLock"]);
        assert!(!conflicts_with("RowExclusiveLock").contains(&"RowExclusiveLock"));
        assert!(conflicts_with("ShareUpdateExclusiveLock").contains(&"ShareUpdateExclusiveLock"));
        assert!(!conflicts_with("ShareLock").contains(&"ShareLock"));
        assert_eq!(conflicts_with("AccessExclusiveLock").len(), 8);
        assert_eq!(conflicts_with("bogus").len(), 8);
    }

    #[test]
    fn row_relation_comes_from_the_context() {
        assert_eq!(
            row_relation("while updating tuple (0,1) in relation \"orders\"").as_deref(),
            Some("orders")
        );
        assert_eq!(
            row_relation("SQL statement \"x\"\nwhile locking tuple (3,4) in relation \"a b\"")
                .as_deref(),
            Some("a b")
        );
        assert_eq!(row_relation("PL/pgSQL function f() line 3"), None);
    }

    fn blocker(found: Found, granted: bool, state: &str) -> Blocker {
        Blocker {
            pid: 4242,
            application_name: "psql".into(),
            state: state.into(),
            transaction_s: Some(25),
            query_s: Some(3),
            relation: "public.orders".into(),
            mode: "AccessShareLock".into(),
            granted,
            found,
        }
    }

    #[test]
    fn a_blocker_says_who_what_and_how_long() {
        assert_eq!(
            blocker(Found::Conflict, true, "idle in transaction").to_string(),
            "pid 4242 (psql, idle in transaction, transaction open 25s): holds ACCESS SHARE on public.orders"
        );
        assert_eq!(
            blocker(Found::Conflict, false, "active").to_string(),
            "pid 4242 (psql, active, transaction open 25s, query running 3s): queued for ACCESS SHARE on public.orders"
        );
        let lines = describe(
            &[
                blocker(Found::Likely, true, "idle in transaction"),
                blocker(Found::Conflict, true, "active"),
            ],
            1,
        );
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("probably blocked by pid 4242"),
            "{lines:?}"
        );
        assert_eq!(lines[1], "and 1 more session(s)");
        assert!(describe(&[], 3)[0].starts_with("no session holds"));
        assert_eq!(
            (age(0), age(119), age(600), age(10_000)),
            ("0s".into(), "119s".into(), "10min".into(), "2h".into())
        );
    }
}
