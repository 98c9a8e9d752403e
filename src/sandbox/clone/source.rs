//! What pgship reads from the source (and the destination) before cloning: the exported
//! snapshot, tables and their sizes, roles, extensions; the guards against cloning onto the
//! source or into a non-empty database; and who holds the lock that stopped `pg_dump`.
//!
//! Every query here only reads catalogs and never opens a user table: `pg_table_size` would
//! take a lock and queue behind the application's, so sizes come from `relpages`.

use std::time::Duration;

use tokio_postgres::Client;

use crate::db::{DbError, DbUrl, describe};

use super::CloneError;

/// Schemas that are not the user's.
const USER_NAMESPACE: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname !~ '^pg_(toast|temp_)'";

/// A table whose rows `pg_dump` copies.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// `"schema"."table"`, a `pg_dump -t` pattern that matches exactly this table.
    pub pattern: String,
    /// From `relpages`: an estimate, 0 for tables never vacuumed or analyzed.
    pub bytes: u64,
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

/// Read the inventory (inside the snapshot transaction).
pub(crate) async fn inventory(src: &Client) -> Result<Inventory, CloneError> {
    let err = q("reading the source's catalog");
    let tables_sql = format!(
        "SELECT n.nspname, c.relname, \
                (c.relpages::int8 + coalesce(t.relpages, 0)::int8) \
                  * current_setting('block_size')::int8 \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
         WHERE {USER_NAMESPACE} AND c.relkind = 'r' AND c.relpersistence <> 't' \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
               WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid \
                 AND d.deptype = 'e') \
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
            }
        })
        .collect();
    const COUNTS: &str = "SELECT (SELECT count(*) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname !~ '^pg_temp_'), \
                (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)";
    let counts = src.query_one(COUNTS, &[]).await.map_err(&err)?;
    Ok(Inventory {
        tables,
        relations: counts.get(0),
        large_objects: counts.get(1),
        roles: roles(src).await?,
        extensions: extensions(src).await?,
    })
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

/// The error for a `pg_dump` that gave up waiting for a table lock, naming the table and who
/// holds it when the source still shows it.
pub(crate) async fn locked_error(src: &Client, stderr: &str, timeout: Duration) -> CloneError {
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
    // The lock was released meanwhile: name what pg_dump was locking.
    let what = stderr
        .lines()
        .find_map(|l| {
            l.split_once("LOCK TABLE ")
                .map(|(_, rest)| rest.split(" IN ").next().unwrap_or(rest).to_string())
        })
        .map_or_else(|| "a table".to_string(), |t| format!("a table among {t}"));
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
    fn patterns_are_literal() {
        assert_eq!(pattern_quote("we\"ird.t*"), "\"we\"\"ird.t*\"");
    }
}
