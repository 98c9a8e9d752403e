//! What pgship reads from the source (and the destination) before cloning: the exported
//! snapshot, tables and their sizes, roles, extensions; the guards against cloning onto the
//! source or into a non-empty database; and who holds the lock that stopped `pg_dump`.
//!
//! Every query here only reads catalogs and never opens a user table: `pg_table_size` would
//! take a lock and queue behind the application's, so sizes come from `relpages` (and are
//! measured only for the tables pgship has locked itself, see [`lock_tables`]).

use std::time::Duration;

use tokio_postgres::Client;

use crate::db::{DbError, DbUrl, describe};

use super::CloneError;

/// Schemas that are not the user's.
const USER_NAMESPACE: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname !~ '^pg_(toast|temp_)'";

/// A table with rows to copy.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// `"schema"."table"`, a `pg_dump -t` pattern that matches exactly this table.
    pub pattern: String,
    /// From `relpages`: an estimate, 0 for tables never vacuumed or analyzed (measured once
    /// pgship holds the table's lock, see [`measure_tables`]).
    pub bytes: u64,
    pub oid: u32,
    /// The name quoted for SQL (`quote_ident`), e.g. `public."Order"`.
    pub qualified: String,
    /// `schema.table`, for progress lines.
    pub label: String,
    /// The columns `COPY` reads and writes, quoted, in their order: not dropped, not
    /// generated.
    pub columns: Vec<String>,
    /// Every column's type is a built-in one whose binary `COPY` format means the same on
    /// any server (no OIDs such as `regclass`, no extension or user types).
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extension {
    pub name: String,
    pub schema: String,
    pub version: String,
}

/// The source, as the clone needs it.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub tables: Vec<TableInfo>,
    /// Relations a restore locks (tables, their TOAST, sequences, views, ...).
    pub relations: i64,
    pub large_objects: i64,
    /// Sequences (their values are data).
    pub sequences: i64,
    /// Some extension has configuration tables, whose rows `pg_dump` copies.
    pub extension_config: bool,
    /// Roles that own objects or hold grants in the database, each with whether it is named
    /// by more than ownership (grants, policies, default privileges).
    pub roles: Vec<(String, bool)>,
    /// In an order that creates required extensions first.
    pub extensions: Vec<Extension>,
}

fn q(context: &str) -> impl Fn(tokio_postgres::Error) -> CloneError + '_ {
    move |e| CloneError::Db(DbError::query(context, &e))
}

/// Refuse when `src` and `dst` are the same database.
pub(crate) async fn check_not_same(
    src: &Client,
    dst: &Client,
    source: &DbUrl,
) -> Result<(), CloneError> {
    const WHO: &str = "SELECT current_database()::text || '/' || pg_postmaster_start_time()::text \
        || '/' || coalesce(inet_server_port(), 0)::text || '/' || \
        (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())::text";
    let a: String = src
        .query_one(WHO, &[])
        .await
        .map_err(q("identifying the source"))?
        .get(0);
    let b: String = dst
        .query_one(WHO, &[])
        .await
        .map_err(q("identifying the destination"))?
        .get(0);
    if a == b {
        return Err(CloneError::SameDatabase(source.redacted()));
    }
    Ok(())
}

/// Refuse a destination that already holds tables, views or sequences.
pub(crate) async fn check_empty(dst: &Client, dest: &DbUrl) -> Result<(), CloneError> {
    let sql = format!(
        "SELECT count(*) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE {USER_NAMESPACE} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
               WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid \
                 AND d.deptype = 'e')"
    );
    let relations: i64 = dst
        .query_one(&sql, &[])
        .await
        .map_err(q("inspecting the destination"))?
        .get(0);
    if relations > 0 {
        return Err(CloneError::NotEmpty {
            dest: dest.redacted(),
            relations,
        });
    }
    Ok(())
}

/// Open the read-only snapshot transaction and export its snapshot for `pg_dump`. A server
/// that cannot export one (a standby before PostgreSQL 10, some poolers) gets a warning and
/// dumps without it.
pub(crate) async fn begin_snapshot(
    src: &Client,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, CloneError> {
    const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    src.batch_execute(BEGIN)
        .await
        .map_err(q("starting the snapshot transaction"))?;
    match src
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
    {
        Ok(row) => Ok(Some(row.get(0))),
        Err(e) => {
            warnings.push(format!(
                "the source could not export a snapshot ({}): the schema, data and indexes were dumped by separate runs",
                describe(&e)
            ));
            src.batch_execute("ROLLBACK")
                .await
                .map_err(q("ending the snapshot transaction"))?;
            src.batch_execute(BEGIN)
                .await
                .map_err(q("starting the snapshot transaction"))?;
            Ok(None)
        }
    }
}

/// Built-in types whose binary `COPY` format is the same on every server since PostgreSQL 10
/// (and arrays of them): values, not OIDs or names that differ between servers.
const BINARY_TYPES: &str = "{16,17,18,19,20,21,23,25,26,27,28,29,114,142,600,601,602,603,604,628,\
     650,700,701,718,774,790,829,869,1042,1043,1082,1083,1114,1184,1186,1266,1560,1562,1700,2950,\
     3220,3614,3615,3802,3904,3906,3908,3910,3912,3926,5069}";

/// Read the inventory (inside the snapshot transaction) of a server of major `major`.
pub(crate) async fn inventory(src: &Client, major: u32) -> Result<Inventory, CloneError> {
    let err = q("reading the source's catalog");
    // Generated columns (PostgreSQL 12+) are computed by the destination, never copied.
    let generated = if major >= 12 {
        "AND a.attgenerated = ''"
    } else {
        ""
    };
    let tables_sql = format!(
        "SELECT n.nspname, c.relname, \
                (c.relpages::int8 + coalesce(t.relpages, 0)::int8) \
                  * current_setting('block_size')::int8, \
                c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), \
                coalesce(array_agg(pg_catalog.quote_ident(a.attname) ORDER BY a.attnum) \
                  FILTER (WHERE a.attnum IS NOT NULL), '{{}}'), \
                coalesce(bool_and(ty.oid = ANY('{BINARY_TYPES}'::oid[]) \
                  OR (ty.typcategory = 'A' AND ty.oid < 16384 \
                      AND ty.typelem = ANY('{BINARY_TYPES}'::oid[]))), true) \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
              AND NOT a.attisdropped {generated} \
         LEFT JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid \
         WHERE {USER_NAMESPACE} AND c.relkind = 'r' AND c.relpersistence <> 't' \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
               WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid \
                 AND d.deptype = 'e') \
         GROUP BY c.oid, n.nspname, c.relname, c.relpages, t.relpages \
         ORDER BY 3 DESC, 1, 2"
    );
    let tables = src
        .query(&tables_sql, &[])
        .await
        .map_err(&err)?
        .iter()
        .map(|r| {
            let (schema, table): (String, String) = (r.get(0), r.get(1));
            TableInfo {
                pattern: format!("{}.{}", pattern_quote(&schema), pattern_quote(&table)),
                bytes: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                oid: r.get(3),
                qualified: r.get(4),
                label: format!("{schema}.{table}"),
                columns: r.get(5),
                binary: r.get(6),
            }
        })
        .collect();
    let counts_sql = format!(
        "SELECT (SELECT count(*) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname !~ '^pg_temp_'), \
                (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata), \
                (SELECT count(*) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE {USER_NAMESPACE} AND c.relkind = 'S'), \
                EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extconfig IS NOT NULL)"
    );
    let counts = src.query_one(&counts_sql, &[]).await.map_err(&err)?;
    Ok(Inventory {
        tables,
        relations: counts.get(0),
        large_objects: counts.get(1),
        sequences: counts.get(2),
        extension_config: counts.get(3),
        roles: roles(src).await?,
        extensions: extensions(src).await?,
    })
}

/// Take `ACCESS SHARE` locks on `tables` in the snapshot transaction, as `pg_dump` does on the
/// tables it dumps: the application's DDL on them then waits until the clone has read them,
/// and the session's `lock_timeout` makes pgship give up instead of queueing behind the
/// application's locks.
pub(crate) async fn lock_tables(
    src: &Client,
    tables: &[&TableInfo],
) -> Result<(), tokio_postgres::Error> {
    if tables.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = tables
        .iter()
        .map(|t| format!("ONLY {}", t.qualified))
        .collect();
    src.batch_execute(&format!(
        "LOCK TABLE {} IN ACCESS SHARE MODE",
        names.join(", ")
    ))
    .await
}

/// The sizes of tables this session holds locks on (heap and TOAST), in bytes by OID: reading
/// them cannot queue behind anyone once the locks are held.
pub(crate) async fn measure_tables(
    src: &Client,
    tables: &[&TableInfo],
) -> Result<Vec<(u32, u64)>, CloneError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = src
        .query(
            "SELECT c.oid, pg_catalog.pg_table_size(c.oid) FROM pg_catalog.pg_class c \
             WHERE c.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(q("measuring the source's tables"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let size: Option<i64> = r.get(1);
            (
                r.get(0),
                size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            )
        })
        .collect())
}

/// Roles that own the database's objects or appear in its grants, default privileges and
/// policies (`pg_shdepend`), plus owners `pg_shdepend` leaves out (the bootstrap superuser);
/// each with whether a restore without owners (`--no-owner`) still names it.
async fn roles(src: &Client) -> Result<Vec<(String, bool)>, CloneError> {
    let sql = format!(
        "WITH user_ns AS (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE {USER_NAMESPACE}), \
         deps AS (SELECT d.refobjid, d.deptype FROM pg_catalog.pg_shdepend d \
            WHERE d.refclassid = 'pg_catalog.pg_authid'::regclass \
              AND d.dbid = (SELECT oid FROM pg_catalog.pg_database \
                            WHERE datname = current_database())) \
         SELECT r.rolname::text, \
                r.oid IN (SELECT refobjid FROM deps WHERE deptype <> 'o' \
                          UNION SELECT defaclrole FROM pg_catalog.pg_default_acl) \
         FROM pg_catalog.pg_roles r WHERE r.oid IN ( \
           SELECT refobjid FROM deps \
           UNION SELECT nspowner FROM pg_catalog.pg_namespace \
            WHERE oid IN (SELECT oid FROM user_ns) \
           UNION SELECT relowner FROM pg_catalog.pg_class \
            WHERE relnamespace IN (SELECT oid FROM user_ns) \
           UNION SELECT proowner FROM pg_catalog.pg_proc \
            WHERE pronamespace IN (SELECT oid FROM user_ns) \
           UNION SELECT typowner FROM pg_catalog.pg_type \
            WHERE typnamespace IN (SELECT oid FROM user_ns)) \
         ORDER BY 1"
    );
    Ok(src
        .query(&sql, &[])
        .await
        .map_err(q("reading the source's roles"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn extensions(src: &Client) -> Result<Vec<Extension>, CloneError> {
    let rows = src
        .query(
            "SELECT e.extname::text, n.nspname::text, e.extversion, \
                    ARRAY(SELECT r.extname::text FROM pg_catalog.pg_depend d \
                          JOIN pg_catalog.pg_extension r ON r.oid = d.refobjid \
                          WHERE d.classid = 'pg_catalog.pg_extension'::regclass \
                            AND d.objid = e.oid \
                            AND d.refclassid = 'pg_catalog.pg_extension'::regclass) \
             FROM pg_catalog.pg_extension e \
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname <> 'plpgsql' ORDER BY 1",
            &[],
        )
        .await
        .map_err(q("reading the source's extensions"))?;
    let list = rows
        .iter()
        .map(|r| {
            (
                Extension {
                    name: r.get(0),
                    schema: r.get(1),
                    version: r.get(2),
                },
                r.get::<_, Vec<String>>(3),
            )
        })
        .collect();
    Ok(order_extensions(list))
}

/// Required extensions before those that need them; a cycle (impossible in PostgreSQL) keeps
/// the remaining ones in name order.
fn order_extensions(mut pending: Vec<(Extension, Vec<String>)>) -> Vec<Extension> {
    let mut out: Vec<Extension> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|(_, needs)| {
            needs.iter().all(|n| {
                out.iter().any(|e| &e.name == n) || !pending.iter().any(|p| &p.0.name == n)
            })
        });
        let i = ready.unwrap_or(0);
        out.push(pending.remove(i).0);
    }
    out
}

/// Quote a name for a `pg_dump -t` pattern: inside double quotes `*`, `?` and `.` are literal.
fn pattern_quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a `pg_dump` that gave up waiting for a lock was locking, from its stderr.
pub(crate) fn locking_in(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        l.split_once("LOCK TABLE ")
            .map(|(_, rest)| rest.split(" IN ").next().unwrap_or(rest).to_string())
    })
}

/// The error for a clone that gave up waiting for a table lock, naming the table and who
/// holds it when the source still shows it, else `locking` (what was being locked).
pub(crate) async fn locked_error(
    src: &Client,
    locking: Option<String>,
    timeout: Duration,
) -> CloneError {
    let holders = src
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), l.pid, \
                    coalesce(a.application_name, ''), coalesce(a.state, ''), \
                    coalesce(extract(epoch FROM clock_timestamp() - a.xact_start)::int8, -1) \
             FROM pg_catalog.pg_locks l \
             JOIN pg_catalog.pg_class c ON c.oid = l.relation \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock' \
               AND l.database = (SELECT oid FROM pg_catalog.pg_database \
                                 WHERE datname = current_database()) \
               AND l.pid <> pg_backend_pid() \
             ORDER BY 1, 2 LIMIT 5",
            &[],
        )
        .await
        .unwrap_or_default();
    if let Some(r) = holders.first() {
        let tables: Vec<String> = holders.iter().map(|r| r.get::<_, String>(0)).collect();
        let mut tables_unique = tables.clone();
        tables_unique.dedup();
        let (pid, app, state, secs): (i32, String, String, i64) =
            (r.get(1), r.get(2), r.get(3), r.get(4));
        let mut holder = format!("ACCESS EXCLUSIVE held by pid {pid}");
        let mut about = Vec::new();
        if !app.is_empty() {
            about.push(app);
        }
        if !state.is_empty() {
            about.push(state);
        }
        if secs >= 0 {
            about.push(format!("transaction open {secs}s"));
        }
        if !about.is_empty() {
            holder.push_str(&format!(" ({})", about.join(", ")));
        }
        return CloneError::Locked {
            what: format!(
                "table{} {}",
                if tables_unique.len() == 1 { "" } else { "s" },
                tables_unique.join(", ")
            ),
            holder: Some(holder),
            timeout,
        };
    }
    // The lock was released meanwhile: name what was being locked.
    let what = locking.map_or_else(|| "a table".to_string(), |t| format!("a table among {t}"));
    CloneError::Locked {
        what,
        holder: None,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, needs: &[&str]) -> (Extension, Vec<String>) {
        (
            Extension {
                name: name.into(),
                schema: "public".into(),
                version: "1.0".into(),
            },
            needs.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn extensions_after_what_they_need() {
        let order = order_extensions(vec![
            ext("a_needs_c", &["c"]),
            ext("b", &[]),
            ext("c", &["b"]),
            ext("d_needs_missing", &["not_in_source"]),
        ]);
        let names: Vec<&str> = order.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a_needs_c", "d_needs_missing"]);
    }

    #[test]
    fn what_pg_dump_was_locking() {
        let stderr = "pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout\n\
                      pg_dump: detail: Query was: LOCK TABLE public.busy IN ACCESS SHARE MODE";
        assert_eq!(locking_in(stderr).as_deref(), Some("public.busy"));
        assert_eq!(locking_in("pg_dump: error: connection failed"), None);
    }

    #[test]
    fn patterns_are_literal() {
        assert_eq!(pattern_quote("we\"ird.t*"), "\"we\"\"ird.t*\"");
    }
}
