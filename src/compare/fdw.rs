//! The postgres_fdw engine: the target's catalogs are read through postgres_fdw into the
//! source database (or a scratch database, `--fdw-in scratch`) and the covered kinds
//! ([`COVERED`]) are diffed there in SQL, giving exactly the catalog engine's lines for them.
//!
//! Safety (reliability.md §4.3): everything the engine creates — the extension when it was not
//! installed, a `pgship_cmp_<pid>_<hex>` schema, foreign server, user mapping, foreign tables,
//! helper functions and temporary tables — is created inside ONE transaction that is rolled
//! back at the end, also on error and on Ctrl-C. Nothing a run creates is ever committed in the
//! source, so a killed run leaves nothing there: its backend rolls back when it notices the lost client
//! (within a second, as pgship's sessions poll with `client_connection_check_interval`).
//! `--fdw-in scratch` commits one thing, the scratch database `pgship_cmp_<pid>_<hex>` on the
//! source's server, dropped `WITH (FORCE)` at the end. Objects record their owning session
//! (`pid=… start=…` in their comment); each run first removes `pgship_cmp_` servers, schemas
//! and databases whose owner is no longer in `pg_stat_activity` and reports them.
//!
//! Secrets: the target's password reaches the server through `COPY … FROM STDIN (FORMAT
//! binary)` into a temporary table, and the user mapping is created from it by a `DO` block
//! with `format('%L')`; it is never in a statement's text or a bind parameter, so
//! `log_statement`, `log_min_duration_statement` and pg_stat_statements (default `track = top`)
//! never see it, and no error pgship shows carries it. For superusers, error context and
//! pg_stat_statements' `track = all` are switched off around that statement. What remains: the
//! mapping is a catalog row, so the password is in the WAL of the (rolled back) transaction,
//! and event triggers on `ddl_command_end` can read the mapping's options.
//!
//! The foreign server is reached *from the database server*: the target URL's host and port
//! must be reachable from there (a Unix-socket host only works on the same machine);
//! `sslmode`, `sslrootcert` (a path on the database server) and `channel_binding=require`
//! are passed on. Non-superusers need the extension installed, USAGE on the
//! `postgres_fdw` wrapper, CREATE on the database, and a password in the target URL that the
//! target asks for. Reading the target's defaults and check clauses through
//! information_schema needs a target role that owns (or is a member of the owner of) the
//! tables; otherwise the engine refuses rather than report wrong lines.
//!
//! Texts: postgres_fdw's remote session prints with `search_path = pg_catalog`. Both sides'
//! texts are compared printed that way (the local session sets the same settings), and the
//! target's defaults are shown rewritten by [`text::unqualify_public`]. Types are formatted
//! locally by name (`format_type` of the local type with the same schema and name), or built
//! from the names when the type does not exist locally: then a type modifier is shown as
//! `name(n)`, which is wrong for types with their own modifier output (PostGIS `geometry`).
//! With `--fdw-in scratch`, nothing but built-in types exists locally, so that applies to
//! both sides, and the source's defaults are rewritten too.
//!
//! Constraints are compared on what `pg_get_constraintdef` prints, read from pg_constraint and
//! pg_indexes: key columns, referenced table and columns, actions, deferrability, validity,
//! NO INHERIT, enforcement, the backing index's definition, exclusion operators, and for CHECK
//! constraints the clause from information_schema.check_constraints, which is keyed by schema
//! and name only. When one schema of a remote side holds several CHECK constraints with the
//! same name (on different tables), they are told apart by the NO INHERIT and NOT VALID that
//! PostgreSQL 17 and older print there, and otherwise their clauses are matched as sets: two
//! such constraints that swapped expressions are not seen as changed.
//!
//! Displayed remote defaults holding a `timestamptz` constant show it in GMT (postgres_fdw's
//! remote TimeZone), where the catalog engine uses the target session's TimeZone.
//!
//! Queries: a fixed number whatever the number of tables (about a dozen round trips); with
//! `--data`, one per table and one per foreign key, each computing both sides in the same
//! query.

mod cleanup;
mod data;
mod lines;
mod sql;
mod text;

use std::pin::pin;

use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{Difference, Kind, SchemaFilter};
use crate::db::url::SslMode;
use crate::db::{
    Conn, ConnectOptions, DbError, DbUrl, connect, describe, quote_ident, quote_literal,
};
use cleanup::{create_scratch, drop_scratch, finish_host, interruptible, owner_note, sweep};
use sql::{Origin, SideSql};

/// Where the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdwPlace {
    /// In the source database, inside a transaction that is rolled back.
    Source,
    /// In a scratch database created on the source's server, where source and target are both
    /// foreign servers.
    Scratch,
}

#[derive(Debug, Clone)]
pub struct FdwOptions {
    pub place: FdwPlace,
    pub filter: SchemaFilter,
    pub data: Option<super::data::DataOptions>,
}

#[derive(Debug, Clone)]
pub struct FdwOutcome {
    /// The differences of the covered kinds, unsorted.
    pub differences: Vec<Difference>,
    /// The vocabulary words this engine does not compute.
    pub not_covered: Vec<&'static str>,
    pub data: Option<super::data::DataReport>,
    /// Objects of earlier, killed runs that this run removed (`server pgship_cmp_…`).
    pub removed_leftovers: Vec<String>,
}

/// The kinds the fdw engine computes.
pub const COVERED: &[Kind] = &[
    Kind::EnumAdded,
    Kind::EnumRemoved,
    Kind::EnumValueAdded,
    Kind::EnumValueRemoved,
    Kind::EnumValuesReordered,
    Kind::TableAdded,
    Kind::TableRemoved,
    Kind::ColumnAdded,
    Kind::ColumnRemoved,
    Kind::ColumnTypeChanged,
    Kind::ColumnNullabilityChanged,
    Kind::ColumnDefaultChanged,
    Kind::IndexAdded,
    Kind::IndexRemoved,
    Kind::IndexChanged,
    Kind::ConstraintAdded,
    Kind::ConstraintRemoved,
    Kind::ConstraintChanged,
];

/// The vocabulary words outside [`COVERED`].
pub fn not_covered() -> Vec<&'static str> {
    Kind::ALL
        .iter()
        .filter(|k| !COVERED.contains(k))
        .map(|k| k.as_str())
        .collect()
}

/// The oldest PostgreSQL the engine reads (on both sides and where it runs).
const MIN_VERSION: u32 = 130000;
/// The `application_name` of postgres_fdw's sessions on the remote.
pub const REMOTE_APPLICATION_NAME: &str = "pgship_compare";

const HINT_INSTALL: &str = "install PostgreSQL's contrib modules on the database server \
    (postgresql-contrib, or postgresql-<major>-contrib on Debian and Ubuntu), or use --engine catalog";
const HINT_PRIVILEGE: &str = "the fdw engine needs a superuser, or a role with CREATE on the \
    database and USAGE on the postgres_fdw foreign-data wrapper with the extension already \
    installed (CREATE EXTENSION postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw \
    TO <role>); or use --engine catalog";
const HINT_PASSWORD: &str = "a role that is not a superuser can use postgres_fdw only with a \
    password in the target URL that the target asks for (md5 or scram, not trust or peer); \
    connect to the source as a superuser, or use --engine catalog";
const HINT_REACH: &str = "postgres_fdw connects from the database server, not from pgship: \
    the target's host and port must be reachable from there (a Unix-socket host only on the \
    same machine, `localhost` is the database server itself)";

/// What the engine learnt about the database it runs in.
struct Host {
    version: u32,
    superuser: bool,
    /// The schema postgres_fdw is installed in, when it is.
    fdw_schema: Option<String>,
    fdw_available: bool,
    /// The session's own printing settings, for display texts.
    session: Vec<(&'static str, String)>,
}

async fn host_info(client: &Client) -> Result<Host, DbError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, \
               current_setting('is_superuser') = 'on', \
               (SELECT n.nspname::text FROM pg_catalog.pg_extension e \
                JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
                WHERE e.extname = 'postgres_fdw'), \
               EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'postgres_fdw'), \
               current_setting('TimeZone'), current_setting('DateStyle'), \
               current_setting('IntervalStyle'), current_setting('extra_float_digits')",
            &[],
        )
        .await
        .map_err(|e| DbError::query("fdw engine: reading the server's settings", &e))?;
    let version: i32 = row.get(0);
    Ok(Host {
        version: u32::try_from(version).unwrap_or(0),
        superuser: row.get(1),
        fdw_schema: row.get(2),
        fdw_available: row.get(3),
        session: vec![
            ("TimeZone", row.get(4)),
            ("DateStyle", row.get(5)),
            ("IntervalStyle", row.get(6)),
            ("extra_float_digits", row.get(7)),
        ],
    })
}

/// Compare `source` and `target` with postgres_fdw. See the module docs.
pub async fn compare(
    source: &DbUrl,
    target: &DbUrl,
    connect_opts: &ConnectOptions,
    opts: &FdwOptions,
) -> Result<FdwOutcome, DbError> {
    let owner = connect(source, connect_opts).await?;
    if owner.version.num < MIN_VERSION {
        return Err(too_old("the source", owner.version.num));
    }
    let removed_leftovers = sweep(&owner).await?;
    let note = owner_note(&owner).await?;
    let name = format!("pgship_cmp_{}_{}", owner.pid, crate::util::random_hex(4));
    let (differences, data) = match opts.place {
        FdwPlace::Source => {
            let servers = [("t_", target)];
            let (result, interrupted) =
                interruptible(run(&owner, &name, &note, &servers, opts)).await;
            finish_host(&owner, interrupted).await;
            result?
        }
        FdwPlace::Scratch => {
            let servers = [("s_", source), ("t_", target)];
            let work = async {
                create_scratch(&owner, &name, &note).await?;
                let host = connect(&source.with_dbname(&name), connect_opts).await?;
                let r = run(&host, &name, &note, &servers, opts).await;
                finish_host(&host, false).await;
                r
            };
            // Interrupted, the scratch connection is dropped mid-statement; dropping the
            // database WITH (FORCE) ends its session.
            let (result, _) = interruptible(work).await;
            drop_scratch(&owner, &name).await;
            result?
        }
    };
    Ok(FdwOutcome {
        differences,
        not_covered: not_covered(),
        data,
        removed_leftovers,
    })
}

fn too_old(what: &str, num: u32) -> DbError {
    DbError::Other(format!(
        "the fdw engine needs PostgreSQL 13 or later, and {what} runs {}.{}\n  hint: use --engine catalog",
        num / 10000,
        num % 10000
    ))
}

/// The libpq options of a foreign server for `url`; with `lock_wait`, the remote sessions get
/// it as `lock_timeout` (`--data` reads the remote's tables, and must not queue behind the
/// application's locks there).
fn server_options(
    url: &DbUrl,
    lock_wait: Option<std::time::Duration>,
) -> Vec<(&'static str, String)> {
    let mut o = Vec::new();
    if url.hosts.is_empty() {
        o.push(("host", "localhost".to_string()));
        o.push(("port", "5432".to_string()));
    } else {
        let hosts: Vec<&str> = url.hosts.iter().map(|h| h.host.as_str()).collect();
        let ports: Vec<String> = url
            .hosts
            .iter()
            .map(|h| h.port.unwrap_or(5432).to_string())
            .collect();
        o.push(("host", hosts.join(",")));
        o.push(("port", ports.join(",")));
    }
    if let Some(a) = &url.hostaddr {
        o.push(("hostaddr", a.clone()));
    }
    if let Some(db) = &url.dbname {
        o.push(("dbname", db.clone()));
    }
    o.push(("sslmode", url.sslmode.as_str().to_string()));
    if let Some(root) = &url.sslrootcert {
        if url.sslmode != SslMode::Disable {
            o.push(("sslrootcert", root.clone()));
        }
    }
    if url.channel_binding == crate::db::url::ChannelBinding::Require {
        o.push(("channel_binding", "require".to_string()));
    }
    o.push((
        "connect_timeout",
        url.connect_timeout.unwrap_or(10).to_string(),
    ));
    o.push(("application_name", REMOTE_APPLICATION_NAME.to_string()));
    o.push(("fetch_size", "10000".to_string()));
    if let Some(wait) = lock_wait {
        o.push((
            "options",
            format!("-c lock_timeout={}", wait.as_millis().max(1)),
        ));
    }
    o
}

/// The whole comparison on `host`, inside one transaction the caller rolls back.
async fn run(
    host: &Conn,
    name: &str,
    note: &str,
    servers: &[(&'static str, &DbUrl)],
    opts: &FdwOptions,
) -> Result<(Vec<Difference>, Option<super::data::DataReport>), DbError> {
    let client = &host.client;
    let info = host_info(client).await?;
    if info.version < MIN_VERSION {
        return Err(too_old("the database the fdw engine runs in", info.version));
    }
    if info.fdw_schema.is_none() && !info.fdw_available {
        return Err(DbError::Other(format!(
            "the postgres_fdw extension is not available on the server of {}\n  hint: {HINT_INSTALL}",
            host.url.redacted()
        )));
    }
    let lock_wait = opts.data.as_ref().map(|d| d.lock_wait);
    setup(client, &info, name, note, servers, lock_wait).await?;
    let sides = probe(client, name, servers, host.version.num).await?;
    let mut batch = format!("{};\n", sql::SESSION_LIKE_REMOTE);
    batch.push_str(&sql::helper_functions(name, &info.session));
    for side in &sides {
        batch.push_str(&sql::copy_side(name, side, &opts.filter));
    }
    for side in &sides {
        batch.push_str(&sql::normalize_side(name, side, &opts.filter));
    }
    client
        .batch_execute(&batch)
        .await
        .map_err(|e| remote_error(&e, "reading both catalogs", servers))?;
    let rows = client
        .query(sql::DIFF, &[])
        .await
        .map_err(|e| DbError::query("fdw engine: computing the differences", &e))?;
    let differences = lines::differences(client, rows, servers).await?;
    let data = match &opts.data {
        None => None,
        Some(d) => Some(data::compare(client, name, &sides, servers, d).await?),
    };
    Ok((differences, data))
}

/// Create the schema, the extension when needed, the servers and the user mappings.
async fn setup(
    client: &Client,
    info: &Host,
    name: &str,
    note: &str,
    servers: &[(&'static str, &DbUrl)],
    lock_wait: Option<std::time::Duration>,
) -> Result<(), DbError> {
    let ns = quote_ident(name);
    let mut batch = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\n\
         CREATE SCHEMA {ns};\nCOMMENT ON SCHEMA {ns} IS {note};\n",
        note = quote_literal(note)
    );
    if info.fdw_schema.is_none() {
        batch.push_str(&format!(
            "CREATE EXTENSION postgres_fdw WITH SCHEMA {ns};\n"
        ));
    }
    for (prefix, url) in servers {
        let server = quote_ident(&server_name(name, prefix, servers.len()));
        let options: Vec<String> = server_options(url, lock_wait)
            .iter()
            .map(|(k, v)| format!("{k} {}", quote_literal(v)))
            .collect();
        batch.push_str(&format!(
            "CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({});\n\
             COMMENT ON SERVER {server} IS {};\n",
            options.join(", "),
            quote_literal(note)
        ));
    }
    batch.push_str("CREATE TEMP TABLE pgship_fdw_secret (server text, usr text, pw text);\n");
    client
        .batch_execute(&batch)
        .await
        .map_err(|e| setup_error(&e, "setting up postgres_fdw"))?;
    // The credentials travel as COPY data: never in a statement's text or a bind parameter.
    let sink = client
        .copy_in("COPY pg_temp.pgship_fdw_secret FROM STDIN (FORMAT binary)")
        .await
        .map_err(|e| DbError::query("fdw engine: passing the targets' credentials", &e))?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::TEXT, Type::TEXT, Type::TEXT]
    ));
    for (prefix, url) in servers {
        let server = server_name(name, prefix, servers.len());
        let user = crate::db::child::user_of(url);
        let password = url
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .filter(|p| !p.is_empty());
        let values: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&server, &user, &password];
        writer
            .as_mut()
            .write(&values)
            .await
            .map_err(|e| DbError::query("fdw engine: passing the targets' credentials", &e))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| DbError::query("fdw engine: passing the targets' credentials", &e))?;
    let quiet = if info.superuser {
        "SET LOCAL log_error_verbosity = 'terse'; \
         SELECT set_config('pg_stat_statements.track', 'none', true) \
         WHERE current_setting('pg_stat_statements.track', true) = 'all';\n"
    } else {
        ""
    };
    let restore = if info.superuser {
        "SET LOCAL log_error_verbosity TO DEFAULT;\n"
    } else {
        ""
    };
    client
        .batch_execute(&format!(
            "{quiet}DO $pgship$ DECLARE r record; BEGIN \
               FOR r IN SELECT * FROM pg_temp.pgship_fdw_secret LOOP \
                 EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER %I OPTIONS (user %L%s)', \
                   r.server, r.usr, \
                   CASE WHEN r.pw IS NULL THEN '' ELSE format(', password %L', r.pw) END); \
               END LOOP; END $pgship$;\n\
             DROP TABLE pg_temp.pgship_fdw_secret;\n{restore}"
        ))
        .await
        // The context of a failed mapping statement holds the password: show the message only.
        .map_err(|e| {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| "the connection failed".into());
            DbError::Other(format!("fdw engine: creating the user mapping: {message}"))
        })
}

fn server_name(name: &str, prefix: &str, count: usize) -> String {
    if count == 1 {
        name.to_string()
    } else {
        format!("{name}_{}", prefix.trim_end_matches('_'))
    }
}

/// Ask each remote its version (the first connection through postgres_fdw), and describe
/// the sides.
async fn probe(
    client: &Client,
    name: &str,
    servers: &[(&'static str, &DbUrl)],
    local_version: u32,
) -> Result<Vec<SideSql>, DbError> {
    let mut sides: Vec<SideSql> = servers
        .iter()
        .map(|(prefix, _)| SideSql {
            prefix,
            origin: Origin::Remote {
                server: server_name(name, prefix, servers.len()),
                version: 0,
                legacy_checks: false,
                block_size: 8192,
            },
        })
        .collect();
    let mut ddl = String::new();
    let mut selects = Vec::new();
    for side in &sides {
        for stmt in sql::probe_tables(name, side) {
            ddl.push_str(&stmt);
            ddl.push_str(";\n");
        }
        selects.push(sql::probe_select(name, side.prefix));
    }
    client
        .batch_execute(&ddl)
        .await
        .map_err(|e| setup_error(&e, "creating foreign tables"))?;
    let row = client
        .query_one(&format!("SELECT {}", selects.join(", ")), &[])
        .await
        .map_err(|e| remote_error(&e, "connecting through postgres_fdw", servers))?;
    for (i, side) in sides.iter_mut().enumerate() {
        let version: Option<i32> = row.get(3 * i);
        let legacy: Option<bool> = row.get(3 * i + 1);
        let block: Option<i32> = row.get(3 * i + 2);
        let version = version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let which = if side.prefix == "s_" {
            "the source"
        } else {
            "the target"
        };
        if version < MIN_VERSION {
            return Err(too_old(which, version));
        }
        if let Origin::Remote {
            version: v,
            legacy_checks,
            block_size,
            ..
        } = &mut side.origin
        {
            *v = version;
            *legacy_checks = legacy.unwrap_or(version < 180000);
            *block_size = block.and_then(|b| u32::try_from(b).ok()).unwrap_or(8192);
        }
    }
    if servers.len() == 1 {
        sides.insert(
            0,
            SideSql {
                prefix: "s_",
                origin: Origin::Local {
                    version: local_version,
                },
            },
        );
    }
    Ok(sides)
}

/// An error while creating the engine's objects, with a hint for the usual causes. (DbError
/// has no hint of its own outside connection errors: the hint is a line of the message, as in
/// [`describe`].)
fn setup_error(e: &tokio_postgres::Error, what: &str) -> DbError {
    let message = describe(e);
    let code = e.code().map(|c| c.code()).unwrap_or_default();
    let lower = message.to_lowercase();
    let hint = if code == "42501" {
        Some(HINT_PRIVILEGE)
    } else if code == "25006" {
        Some("the source is read-only (a standby?): use --engine catalog")
    } else if code == "58P01" || lower.contains("is not available") {
        Some(HINT_INSTALL)
    } else {
        None
    };
    DbError::Other(match hint {
        Some(h) => format!("fdw engine: {what}: {message}\n  hint: {h}"),
        None => format!("fdw engine: {what}: {message}"),
    })
}

/// An error that may have come from a remote through postgres_fdw.
fn remote_error(
    e: &tokio_postgres::Error,
    what: &str,
    servers: &[(&'static str, &DbUrl)],
) -> DbError {
    let message = describe(e);
    let code = e.code().map(|c| c.code()).unwrap_or_default();
    let which = servers
        .iter()
        .find(|(prefix, _)| {
            message.contains(&format!("_{}\"", prefix.trim_end_matches('_'))) || servers.len() == 1
        })
        .map(|(_, url)| url.redacted())
        .unwrap_or_else(|| "the source or the target".into());
    match code {
        "08001" | "08006" | "08000" | "08004" => {
            let hint = if message.contains("password authentication failed") {
                "check the user and password in the URL".to_string()
            } else if message.contains("does not exist") {
                "check the user and database name in the URL".to_string()
            } else {
                HINT_REACH.to_string()
            };
            DbError::Connect {
                target: format!("{which} through postgres_fdw"),
                message,
                hint: Some(hint),
            }
        }
        "2F003" => DbError::Connect {
            target: format!("{which} through postgres_fdw"),
            message,
            hint: Some(HINT_PASSWORD.into()),
        },
        _ => DbError::Query {
            context: format!("fdw engine: {what}"),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_and_not_covered_partition_the_vocabulary() {
        let nc = not_covered();
        assert_eq!(nc.len() + COVERED.len(), Kind::ALL.len());
        assert!(nc.contains(&"view-added") && !nc.contains(&"table-added"));
    }

    #[test]
    fn server_options_come_from_the_url_and_carry_no_secret() {
        let u = DbUrl::parse(
            "postgres://app:s3cret@db.example.com:6543/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        let o = server_options(&u, None);
        let get = |k: &str| o.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("host"), Some("db.example.com"));
        assert_eq!(get("port"), Some("6543"));
        assert_eq!(get("dbname"), Some("shop"));
        assert_eq!(get("sslmode"), Some("verify-full"));
        assert_eq!(get("sslrootcert"), Some("/etc/ca.pem"));
        assert!(!format!("{o:?}").contains("s3cret"));
        assert_eq!(crate::db::child::user_of(&u), "app");
        assert_eq!(get("options"), None);
        let o = server_options(&u, Some(std::time::Duration::from_secs(5)));
        assert!(o.contains(&("options", "-c lock_timeout=5000".to_string())));
    }
}
