//! The plan of one clone, decided from the source's inventory before anything runs: which
//! tools fit both servers, whether the schema and data go in one transaction, and whether the
//! data goes in one stream or several.

use crate::db::tools::BinDir;

use super::dest::DestInfo;
use super::source::Inventory;
use super::{CloneError, CloneOptions, DataMode};

/// The steps of one clone, decided from the inventory before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub schema_only: bool,
    /// Restore pre-data (and single-stream data) in one transaction.
    pub single_transaction: bool,
    /// Data streams when several: table patterns of streams 1.. (stream 0 takes the rest).
    pub streams: Option<Vec<Vec<String>>>,
    pub keep_dump: bool,
}

impl Plan {
    pub fn new(opts: &CloneOptions, inv: &Inventory, dest: &DestInfo) -> Plan {
        let schema_only = opts.data == DataMode::Schema;
        let streams = if schema_only || opts.keep_dump.is_some() {
            None
        } else {
            let sizes: Vec<(String, u64)> = inv
                .tables
                .iter()
                .map(|t| (t.pattern.clone(), t.bytes))
                .collect();
            plan_streams(&sizes, opts.jobs)
        };
        Plan {
            schema_only,
            single_transaction: inv.relations + inv.large_objects <= dest.lock_capacity / 2,
            streams,
            keep_dump: opts.keep_dump.is_some(),
        }
    }
}

/// Below this much data one stream is as fast as several.
const MIN_PARALLEL_DATA: u64 = 64 << 20;
/// At most this many tables are named on a `pg_dump` command line.
const MAX_NAMED_TABLES: usize = 1000;

/// Split tables into data streams balanced by size: `None` for one stream, else the tables of
/// streams 1.. (stream 0 takes every table not listed, plus sequences and large objects).
/// One stream keeps about two cores busy, so there are `jobs / 2` streams.
fn plan_streams(tables: &[(String, u64)], jobs: usize) -> Option<Vec<Vec<String>>> {
    let n = (jobs / 2).min(tables.len());
    let total: u64 = tables.iter().map(|t| t.1).sum();
    if n < 2 || total < MIN_PARALLEL_DATA {
        return None;
    }
    let mut sorted: Vec<&(String, u64)> = tables.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let named = sorted.len().min(MAX_NAMED_TABLES);
    let mut load = vec![0u64; n];
    load[0] = sorted[named..].iter().map(|t| t.1).sum();
    let mut bins: Vec<Vec<String>> = vec![Vec::new(); n];
    for (name, size) in &sorted[..named] {
        let i = (0..n).min_by_key(|&i| (load[i], i)).unwrap_or(0);
        load[i] += size;
        bins[i].push(name.clone());
    }
    let others: Vec<Vec<String>> = bins.into_iter().skip(1).filter(|b| !b.is_empty()).collect();
    if others.is_empty() {
        None
    } else {
        Some(others)
    }
}

/// `pg_dump` must be at least the source's major; `pg_restore` at most the destination's
/// (`pg_restore` 17+ sets `transaction_timeout`, which older servers reject).
pub(crate) fn check_tools(
    tools: &BinDir,
    source_major: u32,
    dest_major: u32,
) -> Result<(), CloneError> {
    for p in ["pg_dump", "pg_restore"] {
        if !tools.bin(p).is_file() {
            return Err(CloneError::Tools(format!(
                "{} not found in {}",
                p,
                tools.dir.display()
            )));
        }
    }
    if tools.major < source_major {
        return Err(CloneError::Tools(format!(
            "pg_dump {} cannot dump a PostgreSQL {source_major} server: use pg_dump {source_major} or newer",
            tools.version
        )));
    }
    if tools.major > dest_major {
        return Err(CloneError::Tools(format!(
            "pg_restore {} cannot restore into PostgreSQL {dest_major} (it sets parameters {dest_major} lacks): use client tools of a major from {source_major} to {dest_major}",
            tools.version
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn t(name: &str, mb: u64) -> (String, u64) {
        (name.to_string(), mb << 20)
    }

    #[test]
    fn one_stream_on_small_machines_or_small_data() {
        let tables = vec![t("a", 400), t("b", 300), t("c", 10)];
        assert_eq!(plan_streams(&tables, 1), None);
        assert_eq!(plan_streams(&tables, 2), None);
        assert_eq!(plan_streams(&tables, 3), None);
        assert_eq!(plan_streams(&[t("a", 20), t("b", 20)], 8), None);
        assert_eq!(plan_streams(&[t("a", 900)], 8), None);
    }

    #[test]
    fn streams_balance_by_size() {
        let tables = vec![
            t("a", 400),
            t("b", 300),
            t("c", 200),
            t("d", 100),
            t("e", 5),
        ];
        let s = plan_streams(&tables, 4).unwrap();
        assert_eq!(s.len(), 1);
        let named: u64 = s[0]
            .iter()
            .map(|n| tables.iter().find(|t| &t.0 == n).unwrap().1)
            .sum();
        let total: u64 = tables.iter().map(|t| t.1).sum();
        let diff = (total - named).abs_diff(named);
        assert!(diff <= 10 << 20, "unbalanced: {s:?}");
        let s = plan_streams(&tables, 8).unwrap();
        assert_eq!(s.len(), 3, "{s:?}");
    }

    #[test]
    fn many_tables_name_only_the_largest() {
        let tables: Vec<(String, u64)> = (0..5000).map(|i| (format!("t{i}"), 1 << 20)).collect();
        let s = plan_streams(&tables, 4).unwrap();
        let named: usize = s.iter().map(Vec::len).sum();
        assert!(named <= MAX_NAMED_TABLES, "{named}");
    }

    #[test]
    fn tools_must_fit_both_servers() {
        let b = |major: u32| BinDir {
            dir: PathBuf::from("/nonexistent"),
            version: format!("{major}.1"),
            major,
            preferred: false,
        };
        assert!(
            matches!(check_tools(&b(15), 15, 15), Err(CloneError::Tools(m)) if m.contains("not found"))
        );
        let here = crate::db::tools::find_dump_tools(1);
        if let Ok(real) = here {
            let m = real.major;
            assert!(check_tools(&real, m, m).is_ok());
            let e = check_tools(&real, m + 1, m + 1).unwrap_err().to_string();
            assert!(e.contains("cannot dump"), "{e}");
            let e = check_tools(&real, m, m - 1).unwrap_err().to_string();
            assert!(e.contains("cannot restore"), "{e}");
        }
    }
}
