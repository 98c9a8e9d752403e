//! Data checks on the sandbox: exact row counts per table, rows that new or NOT VALID
//! constraints reject, the user's check queries, and the app's own tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::compare::SchemaFilter;
use crate::compare::data::{orphans_sql, relation};
use crate::db::{DbError, quote_ident};

/// The ordinary tables the filter allows (partitions as themselves, partitioned parents not at
/// all, so nothing is counted twice): oid, schema, name.
async fn tables(
    client: &Client,
    filter: &SchemaFilter,
) -> Result<Vec<(u32, String, String)>, DbError> {
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {} ORDER BY 2, 3",
        SchemaFilter::sql("n.nspname", 1, 2)
    );
    let rows = client
        .query(&sql, &[&filter.include, &filter.exclude])
        .await
        .map_err(|e| DbError::query("listing tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Which table is which by `pg_class.oid`, whatever it is called: oid -> `schema.table`, for
/// the tables [`row_counts`] counts. Read before and after the migrations, it says which
/// tables they renamed ([`renamed_tables`]).
pub async fn table_oids(
    client: &Client,
    filter: &SchemaFilter,
) -> Result<BTreeMap<u32, String>, DbError> {
    Ok(tables(client, filter)
        .await?
        .into_iter()
        .map(|(oid, schema, table)| (oid, format!("{schema}.{table}")))
        .collect())
}

/// Tables of the same sandbox whose name changed between two [`table_oids`]: old -> new.
pub fn renamed_tables(
    before: &BTreeMap<u32, String>,
    after: &BTreeMap<u32, String>,
) -> BTreeMap<String, String> {
    before
        .iter()
        .filter_map(|(oid, old)| {
            after
                .get(oid)
                .filter(|new| *new != old)
                .map(|new| (old.clone(), new.clone()))
        })
        .collect()
}

/// Exact row counts of every ordinary table the filter allows (partitions counted as
/// themselves, partitioned parents not at all, so nothing is counted twice).
pub async fn row_counts(
    client: &Client,
    filter: &SchemaFilter,
) -> Result<BTreeMap<String, i64>, DbError> {
    let mut out = BTreeMap::new();
    for (_, schema, table) in tables(client, filter).await? {
        let q = format!("SELECT count(*) FROM {}", relation(&schema, &table, false));
        let n: i64 = client
            .query_one(&q, &[])
            .await
            .map_err(|e| DbError::query(format!("counting rows of {schema}.{table}"), &e))?
            .get(0);
        out.insert(format!("{schema}.{table}"), n);
    }
    Ok(out)
}

/// A table's rows before and after.
#[derive(Debug, Clone, Serialize)]
pub struct RowCount {
    /// Its name after the migrations (before, for a table they dropped).
    pub table: String,
    /// Its name before, when the migrations renamed it: `before` is the count under that name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Fewer rows after, and the migrations hold no DELETE or TRUNCATE for it.
    pub unexplained_loss: bool,
}

/// Join the counts, following each table of `renamed` (old -> new name) across its rename;
/// `removers` are the tables the pending SQL deletes from or truncates, under either name.
pub fn join_counts(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
    removers: &BTreeSet<String>,
    renamed: &BTreeMap<String, String>,
) -> Vec<RowCount> {
    let old_name: BTreeMap<&String, &String> = renamed.iter().map(|(o, n)| (n, o)).collect();
    let names: BTreeSet<&String> = after
        .keys()
        .chain(before.keys().filter(|t| !renamed.contains_key(*t)))
        .collect();
    names
        .into_iter()
        .map(|t| {
            let old = old_name.get(t).copied();
            // A name the migrations took from a renamed table is another table.
            let b = match old {
                Some(o) => before.get(o).copied(),
                None if renamed.contains_key(t) => None,
                None => before.get(t).copied(),
            };
            let a = after.get(t).copied();
            let removed_from = removers.contains(t) || old.is_some_and(|o| removers.contains(o));
            RowCount {
                table: t.clone(),
                renamed_from: old.cloned(),
                before: b,
                after: a,
                unexplained_loss: matches!((b, a), (Some(b), Some(a)) if a < b) && !removed_from,
            }
        })
        .collect()
}

/// The tables the SQL deletes rows from or truncates, as `schema.table` (unqualified names
/// are taken to be in `public`).
pub fn row_removers(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return out;
    };
    let name = |r: &pg_query::protobuf::RangeVar| {
        let schema = if r.schemaname.is_empty() {
            "public"
        } else {
            &r.schemaname
        };
        format!("{schema}.{}", r.relname)
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        match node {
            pg_query::NodeEnum::DeleteStmt(d) => {
                if let Some(r) = &d.relation {
                    out.insert(name(r));
                }
            }
            pg_query::NodeEnum::TruncateStmt(t) => {
                for n in &t.relations {
                    if let Some(pg_query::NodeEnum::RangeVar(r)) = &n.node {
                        out.insert(name(r));
                    }
                }
            }
            // A MERGE may delete.
            pg_query::NodeEnum::MergeStmt(m) => {
                if let Some(r) = &m.relation {
                    out.insert(name(r));
                }
            }
            _ => {}
        }
    }
    out
}

/// Rows that a constraint does not accept.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// `schema.table.constraint`.
    pub constraint: String,
    /// `foreign-key` or `check`.
    pub kind: &'static str,
    pub not_valid: bool,
    pub rows: i64,
}

/// For every foreign key and CHECK constraint that is NOT VALID, or that is not in `old`
/// (`schema.table.constraint` names that existed before the migrations), count the rows it
/// rejects.
pub async fn violations(
    client: &Client,
    filter: &SchemaFilter,
    old: &BTreeSet<String>,
) -> Result<Vec<Violation>, DbError> {
    let sql = format!(
        "SELECT n.nspname, c.relname, c.relkind = 'p', k.conname, k.contype::text, NOT k.convalidated,
                (SELECT array_agg(a.attname ORDER BY x.i) FROM unnest(k.conkey) WITH ORDINALITY x(n, i)
                   JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n),
                pn.nspname, pc.relname, pc.relkind = 'p',
                (SELECT array_agg(a.attname ORDER BY x.i) FROM unnest(k.confkey) WITH ORDINALITY x(n, i)
                   JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n),
                pg_get_expr(k.conbin, k.conrelid)
         FROM pg_constraint k
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_class pc ON pc.oid = k.confrelid LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
         WHERE k.contype IN ('f', 'c') AND k.conparentid = 0 AND {}
         ORDER BY 1, 2, 4",
        SchemaFilter::sql("n.nspname", 1, 2)
    );
    let rows = client
        .query(&sql, &[&filter.include, &filter.exclude])
        .await
        .map_err(|e| DbError::query("listing constraints", &e))?;
    let mut out = Vec::new();
    for r in rows {
        let (schema, table, partitioned): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        let (name, contype, not_valid): (String, String, bool) = (r.get(3), r.get(4), r.get(5));
        let key = format!("{schema}.{table}.{name}");
        if !not_valid && old.contains(&key) {
            continue;
        }
        let rel = relation(&schema, &table, partitioned);
        let (q, kind) = if contype == "f" {
            let cols: Vec<String> = r.get::<_, Option<Vec<String>>>(6).unwrap_or_default();
            let (ps, pt, pp): (String, String, bool) = (r.get(7), r.get(8), r.get(9));
            let pcols: Vec<String> = r.get::<_, Option<Vec<String>>>(10).unwrap_or_default();
            (
                orphans_sql(&rel, &cols, &relation(&ps, &pt, pp), &pcols),
                "foreign-key",
            )
        } else {
            let Some(expr) = r.get::<_, Option<String>>(11) else {
                continue;
            };
            (
                format!("SELECT count(*) FROM {rel} WHERE ({expr}) IS FALSE"),
                "check",
            )
        };
        let n: i64 = client
            .query_one(&q, &[])
            .await
            .map_err(|e| DbError::query(format!("checking the rows of constraint {key}"), &e))?
            .get(0);
        if n > 0 {
            out.push(Violation {
                constraint: key,
                kind,
                not_valid,
                rows: n,
            });
        }
    }
    Ok(out)
}

/// The constraint names (`schema.table.constraint`) a database has now.
pub async fn constraint_names(
    client: &Client,
    filter: &SchemaFilter,
) -> Result<BTreeSet<String>, DbError> {
    let sql = format!(
        "SELECT n.nspname || '.' || c.relname || '.' || k.conname FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {}",
        SchemaFilter::sql("n.nspname", 1, 2)
    );
    let rows = client
        .query(&sql, &[&filter.include, &filter.exclude])
        .await
        .map_err(|e| DbError::query("listing constraints", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One `checks/*.sql` file's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub file: String,
    pub passed: bool,
    /// Column names of what it returned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Up to [`MAX_ROWS_SHOWN`] rows it returned (it must return none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Vec<Option<String>>>,
    /// How many rows it returned in all.
    pub row_count: usize,
    /// The error, when it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub const MAX_ROWS_SHOWN: usize = 10;

/// The `*.sql` files of `dir`, sorted; none when it does not exist.
pub fn check_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = fs_err::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// Run one check file in a read-only transaction that is rolled back; it passes when it
/// returns no rows.
pub async fn run_check(client: &Client, file: &Path, shown: &str) -> CheckResult {
    let mut res = CheckResult {
        file: shown.to_string(),
        passed: false,
        columns: Vec::new(),
        rows: Vec::new(),
        row_count: 0,
        error: None,
    };
    let sql = match fs_err::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            res.error = Some(e.to_string());
            return res;
        }
    };
    if let Err(e) = client.batch_execute("BEGIN READ ONLY").await {
        res.error = Some(crate::db::describe(&e));
        return res;
    }
    let out = client.simple_query(&sql).await;
    let _ = client.batch_execute("ROLLBACK").await;
    match out {
        Err(e) => res.error = Some(crate::db::describe(&e)),
        Ok(msgs) => {
            for m in msgs {
                match m {
                    SimpleQueryMessage::RowDescription(cols) if res.columns.is_empty() => {
                        res.columns = cols.iter().map(|c| c.name().to_string()).collect();
                    }
                    SimpleQueryMessage::Row(row) => {
                        if res.columns.is_empty() {
                            res.columns =
                                row.columns().iter().map(|c| c.name().to_string()).collect();
                        }
                        res.row_count += 1;
                        if res.rows.len() < MAX_ROWS_SHOWN {
                            res.rows.push(
                                (0..row.len())
                                    .map(|i| row.get(i).map(str::to_string))
                                    .collect(),
                            );
                        }
                    }
                    _ => {}
                }
            }
            res.passed = res.row_count == 0;
        }
    }
    res
}

/// The `--test-cmd` outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TestRun {
    pub command: String,
    pub passed: bool,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// The last lines of its output (stdout and stderr), secrets removed.
    pub output_tail: Vec<String>,
}

const TAIL_LINES: usize = 40;

/// Run `command` with `sh -c` in `dir`, `vars` added to its environment (the sandbox URL goes
/// there, never into arguments). Its output is kept with `secrets` replaced by `***`.
pub async fn run_tests(
    command: &str,
    dir: &Path,
    vars: &[(String, String)],
    secrets: &[String],
    timeout: Option<Duration>,
) -> TestRun {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, cmd.output())
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::other(format!(
                    "timed out after {}",
                    crate::util::format_duration(t)
                )))
            }),
        None => cmd.output().await,
    };
    let (exit_code, mut text) = match result {
        Ok(out) => {
            let mut t = String::from_utf8_lossy(&out.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.code(), t)
        }
        Err(e) => (None, format!("could not run it: {e}")),
    };
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(s.as_str(), "***");
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    TestRun {
        command: command.to_string(),
        passed: exit_code == Some(0),
        exit_code,
        seconds: started.elapsed().as_secs_f64(),
        output_tail: tail,
    }
}

/// `"schema"."name"` for display in SQL.
pub fn qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((s, n)) => format!("{}.{}", quote_ident(s), quote_ident(n)),
        None => quote_ident(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removers_are_deletes_and_truncates() {
        let r = row_removers(
            "DELETE FROM users WHERE id < 3; TRUNCATE app.logs, audit; UPDATE orders SET x = 1; DROP TABLE gone;",
        );
        let want: BTreeSet<String> = ["public.users", "app.logs", "public.audit"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(r, want);
    }

    #[test]
    fn counts_flag_only_unexplained_losses() {
        let before: BTreeMap<String, i64> = [
            ("public.a".to_string(), 10),
            ("public.b".to_string(), 10),
            ("public.gone".to_string(), 5),
        ]
        .into();
        let after: BTreeMap<String, i64> = [
            ("public.a".to_string(), 7),
            ("public.b".to_string(), 8),
            ("public.new".to_string(), 0),
        ]
        .into();
        let removers: BTreeSet<String> = ["public.b".to_string()].into();
        let j = join_counts(&before, &after, &removers, &BTreeMap::new());
        let lost: Vec<&str> = j
            .iter()
            .filter(|c| c.unexplained_loss)
            .map(|c| c.table.as_str())
            .collect();
        assert_eq!(lost, vec!["public.a"]);
        assert_eq!(j.len(), 4);
    }

    #[test]
    fn counts_follow_a_table_across_its_rename() {
        let before: BTreeMap<String, i64> = [
            ("public.a".to_string(), 10),
            ("public.b".to_string(), 4),
            ("public.c".to_string(), 6),
            ("public.d".to_string(), 8),
        ]
        .into();
        // a -> a2 keeps its rows; b -> b2 loses some unexplained; c -> c2 is deleted from
        // under its old name; d -> d_old and a new d is created empty.
        let after: BTreeMap<String, i64> = [
            ("public.a2".to_string(), 10),
            ("public.b2".to_string(), 1),
            ("public.c2".to_string(), 0),
            ("public.d_old".to_string(), 8),
            ("public.d".to_string(), 0),
        ]
        .into();
        let renamed: BTreeMap<String, String> = [
            ("public.a", "public.a2"),
            ("public.b", "public.b2"),
            ("public.c", "public.c2"),
            ("public.d", "public.d_old"),
        ]
        .iter()
        .map(|(o, n)| (o.to_string(), n.to_string()))
        .collect();
        let removers: BTreeSet<String> = ["public.c".to_string()].into();
        let j = join_counts(&before, &after, &removers, &renamed);
        let got: Vec<String> = j
            .iter()
            .map(|c| {
                format!(
                    "{} from {:?}: {:?} -> {:?}, lost {}",
                    c.table, c.renamed_from, c.before, c.after, c.unexplained_loss
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "public.a2 from Some(\"public.a\"): Some(10) -> Some(10), lost false",
                "public.b2 from Some(\"public.b\"): Some(4) -> Some(1), lost true",
                "public.c2 from Some(\"public.c\"): Some(6) -> Some(0), lost false",
                "public.d from None: None -> Some(0), lost false",
                "public.d_old from Some(\"public.d\"): Some(8) -> Some(8), lost false",
            ]
        );
        let oids = |names: &[(u32, &str)]| -> BTreeMap<u32, String> {
            names.iter().map(|(o, n)| (*o, n.to_string())).collect()
        };
        assert_eq!(
            renamed_tables(
                &oids(&[(1, "public.a"), (2, "public.x"), (3, "public.gone")]),
                &oids(&[(1, "public.a2"), (2, "public.x"), (4, "public.new")])
            ),
            [("public.a".to_string(), "public.a2".to_string())].into()
        );
    }
}
