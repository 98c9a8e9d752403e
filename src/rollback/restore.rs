//! The restore method's IO: the dumps taken by `prepare`, and the rollback itself.
//!
//! The rollback reads what is there now (model, inventory, contents of tables that may have
//! changed), asks [`super::plan`] what to do, and checks the planned drops with a dry run in a
//! transaction that is rolled back: whatever else PostgreSQL would drop with them is added to
//! what gets restored, until the plan covers everything its drops take along. Then it writes
//! five scripts (drops and early changes; the schema dump's pre-data entries; the data dump's
//! entries; the post-data entries; in-place fixes and the state rows' deletion) and runs them
//! with `psql --single-transaction`, so either all of it happens or none of it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tokio_postgres::Client;

use super::catalog::{self, Object};
use super::plan::{self, Facts, Step};
use super::tools::{Tools, write_private};
use super::touched::Name;
use super::{Dumps, Inputs, Method, Prepared, RollbackError, RolledBack, state_rows, toc};
use crate::compare::introspect::introspect;
use crate::compare::model::Model;
use crate::db::{Conn, describe};

/// How long `prepare`'s dumps wait for a table's lock before they give up (and the deploy
/// stops, the target untouched).
const PREPARE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Touched tables beyond this many are dumped by dumping every table's rows.
const MAX_NAMED_TABLES: usize = 200;

fn tools<'a>(i: &'a Inputs<'a>) -> Tools<'a> {
    Tools {
        bin: i.tools,
        url: i.url,
        work_dir: i.work_dir,
    }
}

/// `pg_dump` pattern matching exactly `schema.table`.
fn pattern(schema: &str, table: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{}.{}", q(schema), q(table))
}

/// Take the schema dump and the data dump of the touched tables.
pub(crate) async fn dump(i: &Inputs<'_>, p: &Prepared) -> Result<Dumps, RollbackError> {
    let tag = crate::util::random_hex(6);
    let schema = i.work_dir.join(format!("schema-{tag}.dump"));
    let tables: Vec<(String, String)> = p
        .tables
        .iter()
        .map(|s| (s.spec.schema.clone(), s.spec.table.clone()))
        .collect();
    let rows = if tables.is_empty() {
        None
    } else if p.scope.everything.is_empty() && tables.len() <= MAX_NAMED_TABLES {
        Some(Rows::Of(&tables))
    } else {
        Some(Rows::All)
    };
    let data = rows.map(|_| i.work_dir.join(format!("data-{tag}.dump")));
    let parts = Parts {
        schema: &schema,
        data: data.as_deref().zip(rows),
        // On a live target the dumps must never queue behind the app's locks.
        lock_wait: Some(PREPARE_LOCK_WAIT),
        when: "before the migrations",
    };
    dump_parts(&tools(i), &parts).await?;
    Ok(Dumps { schema, data })
}

/// Whose rows a data-only dump holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// These tables' (schema, table).
    Of(&'a [(String, String)]),
    /// Every table's.
    All,
}

/// A schema-only dump and, optionally, a data-only dump, both without the `pgship` schema
/// and large objects.
pub(crate) struct Parts<'a> {
    pub schema: &'a Path,
    pub data: Option<(&'a Path, Rows<'a>)>,
    /// How long pg_dump may wait for a table's lock (`None`: as long as it takes).
    pub lock_wait: Option<std::time::Duration>,
    /// When the dumps are taken, for error messages (`before the migrations`).
    pub when: &'a str,
}

/// Take the dumps of `parts` (the rollback's restore method, the deploy's `touched` backup).
/// Each file is new (0600); a failed dump leaves no file (see [`Tools::pg_dump`]); when the
/// data dump fails, the schema dump is removed too.
pub(crate) async fn dump_parts(t: &Tools<'_>, parts: &Parts<'_>) -> Result<(), RollbackError> {
    let common = ["--exclude-schema=pgship", "-B"];
    let mut args: Vec<String> = common.iter().map(|s| (*s).to_string()).collect();
    args.extend(["--schema-only".to_string(), "--no-subscriptions".into()]);
    let step = format!("dumping the schema {} (pg_dump --schema-only)", parts.when);
    t.pg_dump(&step, &args, parts.schema, parts.lock_wait)
        .await?;
    let Some((path, rows)) = parts.data else {
        return Ok(());
    };
    let mut args: Vec<String> = common.iter().map(|s| (*s).to_string()).collect();
    args.push("--data-only".into());
    if let Rows::Of(tables) = rows {
        args.push("--strict-names".into());
        for (schema, table) in tables {
            args.push(format!("--table={}", pattern(schema, table)));
        }
    }
    let step = format!(
        "dumping the touched tables' rows {} (pg_dump --data-only)",
        parts.when
    );
    let r = t.pg_dump(&step, &args, path, parts.lock_wait).await;
    if r.is_err() {
        let _ = std::fs::remove_file(parts.schema);
    }
    r
}

/// Tables that may have changed rows, still have columns of the recorded names, and whose
/// contents differ from the recorded ones (the hash reads values as text, so a type change
/// that keeps every value's text does not count; the plan sees the type change itself).
async fn rows_changed(
    client: &Client,
    p: &Prepared,
    m1: &Model,
) -> Result<BTreeSet<String>, RollbackError> {
    let candidates: Vec<_> = p
        .tables
        .iter()
        .filter(|t| p.scope.may_change.contains(&t.spec.key()))
        .filter(|t| {
            let k = t.spec.key();
            match (p.model.tables.get(&k), m1.tables.get(&k)) {
                (Some(a), Some(b)) => a.columns.keys().eq(b.columns.keys()),
                _ => false,
            }
        })
        .collect();
    let specs: Vec<_> = candidates.iter().map(|t| t.spec.clone()).collect();
    let now = catalog::contents(client, &specs).await?;
    Ok(candidates
        .iter()
        .filter(|t| match now.get(&t.spec.key()) {
            Some(Ok((rows, hash))) => *rows != t.rows || *hash != t.hash,
            _ => true,
        })
        .map(|t| t.spec.key())
        .collect())
}

/// Sequences the SQL set or altered by name. (The sequences of restored tables come back
/// with them; others are left where they are: moving a live sequence backwards would hand out
/// keys that are taken.)
fn touched_sequences(p: &Prepared) -> BTreeSet<String> {
    p.model
        .sequences
        .keys()
        .filter(|k| {
            let (schema, name) = k.split_once('.').unwrap_or(("public", k));
            p.touched
                .sequences
                .iter()
                .any(|n: &Name| n.matches(schema, name))
        })
        .cloned()
        .collect()
}

/// Run `steps` in a transaction that is rolled back; report the pre-existing objects they
/// remove and the tables they take a column from.
async fn dry_run(
    client: &Client,
    steps: &[Step],
) -> Result<(BTreeSet<(u32, u32)>, BTreeSet<u32>), RollbackError> {
    let ctx = "the rollback's dry run";
    let q = |e: tokio_postgres::Error| RollbackError::Db(crate::db::DbError::query(ctx, &e));
    client.batch_execute("BEGIN").await.map_err(q)?;
    let r = async {
        let before = catalog::inventory_in_tx(client).await.map_err(q)?;
        let cols_before = catalog::columns_in_tx(client).await.map_err(q)?;
        for s in steps {
            client
                .batch_execute(&s.sql)
                .await
                .map_err(|e| RollbackError::Restore {
                    object: s.what.clone(),
                    message: describe(&e),
                })?;
        }
        let after = catalog::inventory_in_tx(client).await.map_err(q)?;
        let cols_after = catalog::columns_in_tx(client).await.map_err(q)?;
        let after_ids: BTreeSet<(u32, u32)> = after.iter().map(Object::id).collect();
        let after_tables: BTreeSet<u32> = after
            .iter()
            .filter(|o| o.class == 1259)
            .map(|o| o.oid)
            .collect();
        let vanished = before
            .iter()
            .map(Object::id)
            .filter(|id| !after_ids.contains(id))
            .collect();
        let lost = cols_before
            .difference(&cols_after)
            .map(|(t, _)| *t)
            .filter(|t| after_tables.contains(t))
            .collect();
        Ok((vanished, lost))
    }
    .await;
    let _ = client.batch_execute("ROLLBACK").await;
    r
}

pub(crate) async fn run(
    conn: &Conn,
    i: &Inputs<'_>,
    p: &Prepared,
) -> Result<RolledBack, RollbackError> {
    let client = &conn.client;
    let dumps = p.dumps.as_ref().ok_or_else(|| {
        RollbackError::Invalid("the restore method needs the dumps `prepare` takes".into())
    })?;
    let m1 = introspect(client, i.filter).await?;
    let now = catalog::inventory(client).await?;
    let schema_toc = toc::read(&dumps.schema)?;
    let data_toc = match &dumps.data {
        Some(d) => toc::read(d)?,
        None => Vec::new(),
    };
    let rows_changed = rows_changed(client, p, &m1).await?;
    let touched_sequences = touched_sequences(p);
    let swaps = plan::enum_swap_candidates(&p.model, &m1, &p.objects, &now);
    let enum_deps = catalog::enum_dependents(client, &swaps).await?;
    let mut owners = BTreeMap::new();
    for oid in &swaps {
        owners.insert(*oid, catalog::type_owner(client, *oid).await?);
    }
    let (user, _) = catalog::role(client).await?;
    let protected = i.state.drizzle.as_ref().map(|d| d.schema.as_str());
    let pre_ids: BTreeSet<(u32, u32)> = p.objects.iter().map(Object::id).collect();

    let mut doomed = BTreeSet::new();
    let mut doomed_columns = BTreeSet::new();
    let mut round = 0;
    let (chosen, early) = loop {
        round += 1;
        let facts = Facts {
            m0: &p.model,
            m1: &m1,
            pre: &p.objects,
            now: &now,
            filter: i.filter,
            rows_changed: &rows_changed,
            toc: &schema_toc,
            data_toc: &data_toc,
            protected_schema: protected,
            enum_deps: &enum_deps,
            type_owners: &owners,
            current_user: &user,
            doomed: &doomed,
            doomed_columns: &doomed_columns,
            sequences: &p.sequences,
            touched_sequences: &touched_sequences,
        };
        let chosen = plan::plan(&facts);
        if let Some((table, why)) = chosen.missing_data.first() {
            return Err(RollbackError::MissingData {
                table: table.clone(),
                why: why.clone(),
            });
        }
        let objs: Vec<&Object> = chosen.drops.iter().map(|&k| &now[k]).collect();
        let ids: Vec<(u32, u32)> = objs.iter().map(|o| o.id()).collect();
        let edges = catalog::edges(client, &ids).await?;
        let mut early: Vec<Step> = plan::order_drops(&objs, &edges)
            .into_iter()
            .map(|o| Step {
                what: format!("dropping {}", plan::describe(&now, o)),
                sql: o.drop.clone(),
            })
            .collect();
        early.extend(chosen.early.iter().cloned());
        let (vanished, lost) = dry_run(client, &early).await?;
        let more: Vec<(u32, u32)> = vanished
            .into_iter()
            .filter(|id| pre_ids.contains(id))
            .filter(|id| !doomed.contains(id) && !chosen.explicit_doomed.contains(id))
            .collect();
        let more_columns: Vec<u32> = lost
            .into_iter()
            .filter(|t| pre_ids.contains(&(1259, *t)))
            .filter(|t| !doomed_columns.contains(t) && !chosen.recreate_oids.contains(t))
            .collect();
        if (more.is_empty() && more_columns.is_empty()) || round >= 8 {
            break (chosen, early);
        }
        doomed.extend(more);
        doomed_columns.extend(more_columns);
    };

    let dir = i
        .work_dir
        .join(format!("rollback-{}", crate::util::random_hex(6)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| RollbackError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
    let t = tools(i);
    let mut files: Vec<PathBuf> = Vec::new();
    let early_file = dir.join("00-early.sql");
    write_private(&early_file, &render(&early, None))?;
    files.push(early_file);
    for (name, ids, archive) in [
        ("10-pre", &chosen.pre_ids, Some(&dumps.schema)),
        ("20-data", &chosen.data_ids, dumps.data.as_ref()),
        ("30-post", &chosen.post_ids, Some(&dumps.schema)),
    ] {
        let Some(archive) = archive.filter(|_| !ids.is_empty()) else {
            continue;
        };
        let list = dir.join(format!("{name}.list"));
        write_private(&list, &toc::list_file(ids))?;
        let out = dir.join(format!("{name}.sql"));
        t.run_ok(
            &format!("writing the restore script {name}.sql (pg_restore)"),
            "pg_restore",
            &[
                format!("--use-list={}", list.display()),
                "--file=-".to_string(),
                archive.display().to_string(),
            ],
            false,
            Some(&out),
        )
        .await?;
        files.push(for_server(&dir, &out, conn.version.major())?);
    }
    let present = state_rows::present(client, i.state).await?;
    let mut late = chosen.late.clone();
    for m in i.pending.iter().rev() {
        for sql in state_rows::deletes(i.state, present, m) {
            late.push(Step {
                what: format!("state rows of {}", m.name),
                sql,
            });
        }
    }
    let late_file = dir.join("40-late.sql");
    write_private(&late_file, &render(&late, Some("SET search_path = public")))?;
    files.push(late_file);

    let mut args: Vec<String> = [
        "-X",
        "-q",
        "--no-password",
        "--single-transaction",
        "-v",
        "ON_ERROR_STOP=1",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    for f in &files {
        args.push(format!("--file={}", f.display()));
    }
    let ran = t.run("psql", &args, true, None).await?;
    if !ran.ok {
        // The scripts stay for inspection, in the private folder.
        return Err(psql_failure(&ran.stderr, &ran.status));
    }
    // They hold copies of rows: gone once they are no longer needed.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RolledBack {
        method: Method::Restore,
        migrations: i.pending.iter().rev().map(|m| m.name.clone()).collect(),
        dropped: early
            .iter()
            .filter(|s| s.what.starts_with("dropping "))
            .map(|s| s.what.trim_start_matches("dropping ").to_string())
            .collect(),
        restored: chosen.restored.clone(),
        recreated_tables: chosen.recreated_tables.clone(),
        fixed: early
            .iter()
            .filter(|s| !s.what.starts_with("dropping "))
            .chain(chosen.late.iter())
            .map(|s| s.what.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        warnings: chosen.warnings.clone(),
        duration_ms: 0,
    })
}

/// A script written by a newer `pg_restore` than the server, without the settings the server
/// does not know (pg_restore cannot know the server when it writes a file).
fn for_server(dir: &Path, script: &Path, server_major: u32) -> Result<PathBuf, RollbackError> {
    let io = |e: std::io::Error| RollbackError::Io {
        path: script.display().to_string(),
        message: e.to_string(),
    };
    let text = std::fs::read_to_string(script).map_err(io)?;
    let Some(fixed) = without_unknown_settings(&text, server_major) else {
        return Ok(script.to_path_buf());
    };
    let name = script
        .file_stem()
        .map_or_else(|| "script".into(), |s| s.to_string_lossy().into_owned());
    let out = dir.join(format!("{name}.server.sql"));
    write_private(&out, &fixed)?;
    Ok(out)
}

/// `text` without `SET` lines of settings older servers reject, when there are any.
fn without_unknown_settings(text: &str, server_major: u32) -> Option<String> {
    let unknown = |l: &str| server_major < 17 && l == "SET transaction_timeout = 0;";
    if !text.lines().any(unknown) {
        return None;
    }
    let mut out: String = text
        .lines()
        .filter(|l| !unknown(l))
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    Some(out)
}

/// A script of steps, each preceded by a `-- pgship:` line naming it.
fn render(steps: &[Step], prologue: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(p) = prologue {
        s.push_str(p);
        s.push_str(";\n\n");
    }
    for step in steps {
        let what: String = step.what.chars().filter(|c| !c.is_control()).collect();
        s.push_str(&format!("-- pgship: {what}\n{};\n\n", step.sql));
    }
    s
}

/// The error of a failed `psql` run, naming the object whose statement failed.
fn psql_failure(stderr: &str, status: &str) -> RollbackError {
    let Some((file, line, message)) = locate(stderr) else {
        return RollbackError::Tool {
            step: "running the rollback (psql)".into(),
            message: format!("psql {status}: {}", stderr.trim()),
        };
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let object = marker(&text, line).unwrap_or_else(|| {
        format!(
            "{} line {line}",
            Path::new(&file)
                .file_name()
                .map_or(file.clone(), |f| f.to_string_lossy().into_owned())
        )
    });
    RollbackError::Restore {
        object,
        message: format!("{message} (nothing was changed: the rollback runs in one transaction)"),
    }
}

/// `psql:FILE:LINE: ERROR:  ...` -> (FILE, LINE, the error and what follows it).
fn locate(stderr: &str) -> Option<(String, usize, String)> {
    let lines: Vec<&str> = stderr.lines().collect();
    for (n, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix("psql:") else {
            continue;
        };
        let Some(at) = rest.find(": ERROR:") else {
            continue;
        };
        let (place, msg) = rest.split_at(at);
        let (file, line) = place.rsplit_once(':')?;
        let mut message = msg[2..].trim().to_string();
        for more in &lines[n + 1..] {
            message.push('\n');
            message.push_str(more.trim_end());
        }
        return Some((
            file.to_string(),
            line.parse().ok()?,
            message.trim().to_string(),
        ));
    }
    None
}

/// The object the statement at `line` (1-based) of a script belongs to: the nearest
/// `-- pgship:` line above it, or pg_restore's `-- Name: ...; Type: ...; Schema: ...` header.
fn marker(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    for l in lines.iter().rev() {
        if let Some(what) = l.strip_prefix("-- pgship: ") {
            return Some(what.to_string());
        }
        let header = l
            .strip_prefix("-- Name: ")
            .or_else(|| l.strip_prefix("-- Data for Name: "));
        if let Some(h) = header {
            let mut name = "";
            let mut kind = "";
            let mut schema = "-";
            for (i, part) in h.split("; ").enumerate() {
                if i == 0 {
                    name = part;
                } else if let Some(t) = part.strip_prefix("Type: ") {
                    kind = t;
                } else if let Some(s) = part.strip_prefix("Schema: ") {
                    schema = s;
                }
            }
            return Some(if schema == "-" {
                format!("{kind} {name}")
            } else {
                format!("{kind} {schema}.{name}")
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_errors_name_the_object() {
        let script = "SET x = 1;\n\n--\n-- Name: users; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.users (\n    id integer\n);\n";
        assert_eq!(marker(script, 8).as_deref(), Some("TABLE public.users"));
        assert_eq!(marker(script, 1), None);
        let mine = render(
            &[Step {
                what: "dropping table public.posts".into(),
                sql: "DROP TABLE IF EXISTS \"public\".\"posts\" CASCADE".into(),
            }],
            Some("SET search_path = public"),
        );
        assert_eq!(
            mine,
            "SET search_path = public;\n\n-- pgship: dropping table public.posts\nDROP TABLE IF EXISTS \"public\".\"posts\" CASCADE;\n\n"
        );
        assert_eq!(
            marker(&mine, 4).as_deref(),
            Some("dropping table public.posts")
        );
        let stderr = "psql:/w/rollback-ab/10-pre.sql:8: ERROR:  relation \"users\" already exists\nCONTEXT:  x";
        let (file, line, msg) = locate(stderr).unwrap();
        assert_eq!((file.as_str(), line), ("/w/rollback-ab/10-pre.sql", 8));
        assert_eq!(
            msg,
            "ERROR:  relation \"users\" already exists\nCONTEXT:  x"
        );
        assert!(locate("psql: error: connection refused").is_none());
    }

    #[test]
    fn settings_older_servers_reject_are_left_out() {
        let text = "SET lock_timeout = 0;\nSET transaction_timeout = 0;\nCREATE TABLE t ();\n";
        assert_eq!(
            without_unknown_settings(text, 15).as_deref(),
            Some("SET lock_timeout = 0;\nCREATE TABLE t ();\n")
        );
        assert_eq!(without_unknown_settings(text, 17), None);
        assert_eq!(without_unknown_settings("SELECT 1;\n", 15), None);
    }

    #[test]
    fn patterns_match_exact_names() {
        assert_eq!(pattern("public", "users"), "\"public\".\"users\"");
        assert_eq!(pattern("we\"ird", "a.b*"), "\"we\"\"ird\".\"a.b*\"");
    }
}
