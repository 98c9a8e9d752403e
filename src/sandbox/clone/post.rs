//! Indexes and constraints: the post-data archive, restored by `pg_restore -j`, with two
//! kinds of entry taken over by pgship because `pg_restore` serialises them.
//!
//! - **Primary keys and unique constraints** of plain tables. `ALTER TABLE ... ADD PRIMARY
//!   KEY` takes an `ACCESS EXCLUSIVE` lock while it builds its index, so `pg_restore` runs no
//!   other index build on that table meanwhile (on the benchmark's table: the primary key
//!   alone for 0.9 s, then the two other indexes). pgship builds the constraint's index with
//!   `CREATE UNIQUE INDEX` (a `SHARE` lock, as the other index builds take) while
//!   `pg_restore` builds the plain indexes, then turns it into the constraint with `ADD
//!   CONSTRAINT ... USING INDEX` (no build), with the index's replica identity and `CLUSTER
//!   ON` as the source has them. The catalog ends as `ADD PRIMARY KEY` leaves it.
//! - **Foreign keys, in a throwaway cluster** ([`super::CloneOptions::trust_foreign_keys`]).
//!   The rows come from one snapshot of a database where the key is valid, so checking them
//!   again (a scan of the referencing table, after every index build on it) can only repeat
//!   the source's answer: pgship adds the key `NOT VALID` and marks it validated in
//!   `pg_constraint`, as the source has it. A source whose rows break a key it calls valid
//!   (loaded with triggers disabled) is cloned as it is, where `pg_restore` would fail.
//!
//! Everything else (partitioned tables' constraints, deferrable and exclusion constraints,
//! triggers, rules, policies, comments, index attachments, materialized view refreshes) is
//! left to `pg_restore`, after pgship's constraints exist; foreign keys come last.

use tokio_postgres::Client;

use crate::db::{ConnectOptions, DbError, DbUrl, connect};

use super::CloneError;
use super::proc::Failure;

/// A constraint pgship may add itself, as the source has it.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    /// `pg_constraint.oid` on the source: the archive's entry is `<id>; 2606 <oid> ...`.
    pub oid: u32,
    pub kind: Kind,
    /// The table, schema-qualified and quoted.
    pub table: String,
    /// The constraint's name as it is (unquoted).
    pub name: String,
    /// `pg_get_indexdef` of its index (primary key, unique) or `pg_get_constraintdef`
    /// (foreign key), with every name qualified.
    pub definition: String,
    pub replica_identity: bool,
    pub clustered: bool,
    /// The table's size on the source: larger ones are built first.
    pub table_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    PrimaryKey,
    Unique,
    ForeignKey,
}

/// Constraints of plain tables that pgship may add itself: primary keys and unique
/// constraints (not deferrable, with a valid index), and validated foreign keys without a
/// comment. Names are qualified with an empty `search_path`, set for this query only.
pub(crate) async fn read_constraints(src: &Client) -> Result<Vec<Constraint>, CloneError> {
    const SQL: &str = "SELECT c.oid::int8, c.contype::text, format('%I.%I', n.nspname, t.relname), \
               c.conname::text, \
               CASE WHEN c.contype = 'f' THEN pg_get_constraintdef(c.oid) \
                    ELSE pg_get_indexdef(c.conindid) END, \
               coalesce(i.indisreplident, false), coalesce(i.indisclustered, false), \
               pg_relation_size(t.oid)::int8 \
        FROM pg_constraint c \
        JOIN pg_class t ON t.oid = c.conrelid \
        JOIN pg_namespace n ON n.oid = t.relnamespace \
        LEFT JOIN pg_index i ON i.indexrelid = c.conindid AND c.contype IN ('p', 'u') \
        WHERE t.relkind = 'r' AND NOT t.relispartition AND c.conparentid = 0 \
          AND NOT c.condeferrable \
          AND ((c.contype IN ('p', 'u') AND i.indisvalid AND i.indisready) \
               OR (c.contype = 'f' AND c.convalidated \
                   AND obj_description(c.oid, 'pg_constraint') IS NULL)) \
        ORDER BY 1";
    let q = |e: tokio_postgres::Error| {
        CloneError::Db(DbError::query("reading the source's constraints", &e))
    };
    src.batch_execute("SET LOCAL search_path = ''")
        .await
        .map_err(q)?;
    // A failed query ends the transaction (and the setting with it): its error is the one.
    let rows = src.query(SQL, &[]).await.map_err(q)?;
    src.batch_execute("SET LOCAL search_path TO DEFAULT")
        .await
        .map_err(q)?;
    let mut out = Vec::new();
    for r in rows {
        let kind = match r.get::<_, String>(1).as_str() {
            "p" => Kind::PrimaryKey,
            "u" => Kind::Unique,
            _ => Kind::ForeignKey,
        };
        let Ok(oid) = u32::try_from(r.get::<_, i64>(0)) else {
            continue;
        };
        out.push(Constraint {
            oid,
            kind,
            table: r.get(2),
            name: r.get(3),
            definition: r.get(4),
            replica_identity: r.get(5),
            clustered: r.get(6),
            table_bytes: r.get(7),
        });
    }
    Ok(out)
}

/// The archive's entries, split into what runs when.
#[derive(Debug, Default)]
pub(crate) struct Split<'a> {
    /// `pg_restore -L` lines of plain index builds (run alongside [`Split::unique`]).
    pub indexes: Vec<String>,
    /// Primary keys and unique constraints pgship builds, largest table first.
    pub unique: Vec<&'a Constraint>,
    /// `pg_restore -L` lines of everything else (after the indexes and pgship's constraints).
    pub rest: Vec<String>,
    /// Foreign keys pgship adds last.
    pub foreign_keys: Vec<&'a Constraint>,
}

/// Split the lines of `pg_restore --list` (comments dropped). A constraint is taken over
/// only when its own entry is in the list, so what the archive leaves out stays out.
pub(crate) fn split<'a>(
    list: &str,
    constraints: &'a [Constraint],
    trust_foreign_keys: bool,
) -> Split<'a> {
    let mut s = Split::default();
    for line in list.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((_, rest)) = line.split_once("; ") else {
            s.rest.push(line.to_string());
            continue;
        };
        let mut words = rest.splitn(3, ' ');
        let (catalog, oid, desc) = (words.next(), words.next(), words.next().unwrap_or(""));
        let constraint = (catalog == Some("2606"))
            .then(|| oid.and_then(|o| o.parse::<u32>().ok()))
            .flatten()
            .and_then(|oid| constraints.iter().find(|c| c.oid == oid));
        match constraint {
            Some(c) if c.kind != Kind::ForeignKey && desc.starts_with("CONSTRAINT ") => {
                s.unique.push(c)
            }
            Some(c)
                if c.kind == Kind::ForeignKey
                    && trust_foreign_keys
                    && desc.starts_with("FK CONSTRAINT ") =>
            {
                s.foreign_keys.push(c)
            }
            _ if desc.starts_with("INDEX ") && !desc.starts_with("INDEX ATTACH ") => {
                s.indexes.push(line.to_string())
            }
            _ => s.rest.push(line.to_string()),
        }
    }
    s.unique.sort_by_key(|c| std::cmp::Reverse(c.table_bytes));
    s
}

/// `CREATE UNIQUE INDEX` of every constraint in `unique`, over `sessions` connections
/// (largest first), each with `memory_mb` of `maintenance_work_mem`.
pub(crate) async fn build_unique(
    dest: &DbUrl,
    unique: &[&Constraint],
    sessions: usize,
    memory_mb: u64,
) -> Result<(), Failure> {
    if unique.is_empty() {
        return Ok(());
    }
    let next = std::sync::Mutex::new(unique.iter());
    let opts = session(memory_mb);
    let worker = || async {
        let conn = connect(dest, &opts)
            .await
            .map_err(|e| Failure::Io(e.into()))?;
        loop {
            let Some(c) = next.lock().ok().and_then(|mut it| it.next().copied()) else {
                return Ok(());
            };
            conn.client
                .batch_execute(&c.definition)
                .await
                .map_err(|e| failed(&format!("building the index of {}", label(c)), &e))?;
        }
    };
    let workers = (0..sessions.clamp(1, unique.len())).map(|_| worker());
    super::futures_join_all(workers).await
}

/// Turn the indexes [`build_unique`] built into their constraints.
pub(crate) async fn attach_unique(dest: &DbUrl, unique: &[&Constraint]) -> Result<(), Failure> {
    if unique.is_empty() {
        return Ok(());
    }
    let conn = connect(dest, &ConnectOptions::default())
        .await
        .map_err(|e| Failure::Io(e.into()))?;
    let sql: String = unique.iter().map(|c| attach_sql(c)).collect();
    conn.client
        .batch_execute(&format!("BEGIN;\n{sql}COMMIT;"))
        .await
        .map_err(|e| failed("adding primary keys and unique constraints", &e))
}

fn attach_sql(c: &Constraint) -> String {
    let name = crate::db::quote_ident(&c.name);
    let kind = if c.kind == Kind::PrimaryKey {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    let mut sql = format!(
        "ALTER TABLE ONLY {} ADD CONSTRAINT {name} {kind} USING INDEX {name};\n",
        c.table
    );
    if c.replica_identity {
        sql.push_str(&format!(
            "ALTER TABLE ONLY {} REPLICA IDENTITY USING INDEX {name};\n",
            c.table
        ));
    }
    if c.clustered {
        sql.push_str(&format!("ALTER TABLE {} CLUSTER ON {name};\n", c.table));
    }
    sql
}

/// Add `keys` without checking their rows and mark them validated, in one transaction.
pub(crate) async fn add_foreign_keys(dest: &DbUrl, keys: &[&Constraint]) -> Result<(), Failure> {
    if keys.is_empty() {
        return Ok(());
    }
    let conn = connect(dest, &ConnectOptions::default())
        .await
        .map_err(|e| Failure::Io(e.into()))?;
    let fail = |e: tokio_postgres::Error| failed("adding foreign keys", &e);
    conn.client.batch_execute("BEGIN").await.map_err(fail)?;
    for c in keys {
        conn.client
            .batch_execute(&foreign_key_sql(c))
            .await
            .map_err(|e| failed(&format!("adding {}", label(c)), &e))?;
    }
    let tables: Vec<&str> = keys.iter().map(|c| c.table.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|c| c.name.as_str()).collect();
    let marked = conn
        .client
        .execute(
            "UPDATE pg_catalog.pg_constraint c SET convalidated = true \
             FROM unnest($1::text[], $2::text[]) AS k(tbl, name) \
             WHERE c.conrelid = k.tbl::regclass AND c.conname = k.name AND c.contype = 'f'",
            &[&tables, &names],
        )
        .await
        .map_err(fail)?;
    if marked != keys.len() as u64 {
        return Err(Failure::Io(CloneError::Db(DbError::Other(format!(
            "marking foreign keys validated: {marked} of {} found",
            keys.len()
        )))));
    }
    conn.client.batch_execute("COMMIT").await.map_err(fail)
}

fn foreign_key_sql(c: &Constraint) -> String {
    format!(
        "ALTER TABLE ONLY {} ADD CONSTRAINT {} {} NOT VALID",
        c.table,
        crate::db::quote_ident(&c.name),
        c.definition
    )
}

fn session(memory_mb: u64) -> ConnectOptions {
    ConnectOptions {
        settings: vec![
            ("maintenance_work_mem".into(), format!("{memory_mb}MB")),
            ("synchronous_commit".into(), "off".into()),
        ],
        ..ConnectOptions::default()
    }
}

fn label(c: &Constraint) -> String {
    let what = match c.kind {
        Kind::PrimaryKey => "primary key",
        Kind::Unique => "unique constraint",
        Kind::ForeignKey => "foreign key",
    };
    format!("{what} {} of {}", c.name, c.table)
}

fn failed(context: &str, e: &tokio_postgres::Error) -> Failure {
    Failure::Io(CloneError::Db(DbError::query(context, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint(oid: u32, kind: Kind, bytes: i64) -> Constraint {
        Constraint {
            oid,
            kind,
            table: "public.\"T\"".into(),
            name: format!("c{oid}"),
            definition: String::new(),
            replica_identity: false,
            clustered: false,
            table_bytes: bytes,
        }
    }

    const LIST: &str = ";\n; Archive created at 2026-11-24\n;\n\
        3400; 1259 16400 INDEX public t_v_idx postgres\n\
        3401; 2606 16401 CONSTRAINT public t t_pkey postgres\n\
        3402; 2606 16402 CONSTRAINT public big big_pkey postgres\n\
        3403; 2606 16403 CONSTRAINT public t t_ex postgres\n\
        3404; 0 0 INDEX ATTACH public p_1_v_idx postgres\n\
        3405; 2620 16405 TRIGGER public t t_trg postgres\n\
        3406; 2606 16406 FK CONSTRAINT public t t_big_fkey postgres\n\
        3407; 0 0 COMMENT public CONSTRAINT t_pkey ON t postgres\n";

    #[test]
    fn only_listed_eligible_constraints_are_taken_over() {
        let cs = vec![
            constraint(16401, Kind::PrimaryKey, 10),
            constraint(16402, Kind::Unique, 1000),
            constraint(16406, Kind::ForeignKey, 10),
            // Not in the archive: never added.
            constraint(16999, Kind::PrimaryKey, 10),
        ];
        let s = split(LIST, &cs, true);
        assert_eq!(
            s.indexes,
            ["3400; 1259 16400 INDEX public t_v_idx postgres"]
        );
        let unique: Vec<u32> = s.unique.iter().map(|c| c.oid).collect();
        assert_eq!(unique, [16402, 16401], "largest table first");
        assert_eq!(s.foreign_keys.len(), 1);
        assert_eq!(
            s.rest,
            [
                "3403; 2606 16403 CONSTRAINT public t t_ex postgres",
                "3404; 0 0 INDEX ATTACH public p_1_v_idx postgres",
                "3405; 2620 16405 TRIGGER public t t_trg postgres",
                "3407; 0 0 COMMENT public CONSTRAINT t_pkey ON t postgres",
            ]
        );
        // Without trust, foreign keys stay with pg_restore.
        let s = split(LIST, &cs, false);
        assert!(s.foreign_keys.is_empty());
        assert!(s.rest.iter().any(|l| l.contains("FK CONSTRAINT")));
    }

    #[test]
    fn statements() {
        let mut c = constraint(1, Kind::PrimaryKey, 0);
        c.name = "Odd \"pk\"".into();
        c.replica_identity = true;
        c.clustered = true;
        assert_eq!(
            attach_sql(&c),
            "ALTER TABLE ONLY public.\"T\" ADD CONSTRAINT \"Odd \"\"pk\"\"\" PRIMARY KEY USING INDEX \"Odd \"\"pk\"\"\";\n\
             ALTER TABLE ONLY public.\"T\" REPLICA IDENTITY USING INDEX \"Odd \"\"pk\"\"\";\n\
             ALTER TABLE public.\"T\" CLUSTER ON \"Odd \"\"pk\"\"\";\n"
        );
        let mut f = constraint(2, Kind::ForeignKey, 0);
        f.definition = "FOREIGN KEY (a) REFERENCES public.b(id) ON DELETE CASCADE".into();
        assert_eq!(
            foreign_key_sql(&f),
            "ALTER TABLE ONLY public.\"T\" ADD CONSTRAINT \"c2\" FOREIGN KEY (a) REFERENCES public.b(id) ON DELETE CASCADE NOT VALID"
        );
    }
}
