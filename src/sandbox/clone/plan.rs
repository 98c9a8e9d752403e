//! The plan of one clone, decided from the source's inventory before anything runs: which
//! tools fit both servers, whether the schema goes in one transaction, which tables pgship
//! copies itself (and in how many streams), whether `pg_dump` still has data to copy, and the
//! memory the index builds get.

use crate::db::tools::BinDir;

use super::dest::DestInfo;
use super::source::{Inventory, TableInfo};
use super::{CloneError, CloneOptions, DataMode};

/// The steps of one clone, decided from the inventory before anything runs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub schema_only: bool,
    /// Restore the schema (pre-data) in one transaction.
    pub single_transaction: bool,
    /// Tables whose rows pgship copies itself with `COPY`, largest first (full data without
    /// a kept dump).
    pub copied: Vec<CopyTable>,
    /// `pg_dump | pg_restore` still has data to copy: sequence values, large objects,
    /// extension configuration tables, tables beyond [`MAX_COPIED`].
    pub rest: bool,
    /// `maintenance_work_mem` of the index and constraint builds, in MiB.
    pub index_memory_mb: u64,
    /// pgship adds the foreign keys unchecked ([`CloneOptions::trust_foreign_keys`], on a
    /// superuser destination).
    pub trust_foreign_keys: bool,
}

/// A table pgship copies.
#[derive(Debug, Clone)]
pub(crate) struct CopyTable {
    pub table: TableInfo,
    /// Truncate it first in the transaction that fills it: the rows are written frozen
    /// (`COPY FREEZE`: no hint-bit writes when the indexes are built) and, on a
    /// `wal_level=minimal` destination, without WAL.
    pub fresh: bool,
}

/// At most this many tables are copied by pgship (each is named on the command line of the
/// `pg_dump` that copies the rest, with `--exclude-table-data`).
pub(crate) const MAX_COPIED: usize = 1000;
/// Tables from this size are truncated and filled in one transaction: below it the extra
/// statements cost more than the WAL and hint bits they save (PostgreSQL WAL-logs relations
/// under `wal_skip_threshold`, 2 MB, at commit anyway).
const FRESH_MIN: u64 = 4 << 20;

impl Plan {
    /// `copied`: the tables pgship copies itself ([`copied_tables`], locked and measured).
    pub fn new(
        opts: &CloneOptions,
        inv: &Inventory,
        dest: &DestInfo,
        copied: Vec<CopyTable>,
    ) -> Plan {
        let schema_only = opts.data == DataMode::Schema;
        let keep_dump = opts.keep_dump.is_some();
        let rest = !schema_only
            && !keep_dump
            && (inv.tables.len() > copied.len()
                || inv.sequences > 0
                || inv.large_objects > 0
                || inv.extension_config);
        Plan {
            schema_only,
            single_transaction: inv.relations + inv.large_objects <= dest.lock_capacity / 2,
            rest,
            index_memory_mb: index_memory_mb(inv.tables.iter().map(|t| t.bytes).max()),
            trust_foreign_keys: opts.trust_foreign_keys && dest.superuser,
            copied,
        }
    }
}

/// The tables pgship copies itself when it copies rows: the largest, largest first, up to
/// [`MAX_COPIED`]; none for a schema-only clone or a kept dump (`pg_dump` writes them all).
pub(crate) fn copied_tables(opts: &CloneOptions, tables: &[TableInfo]) -> Vec<CopyTable> {
    if opts.data == DataMode::Schema || opts.keep_dump.is_some() {
        return Vec::new();
    }
    let mut sorted: Vec<&TableInfo> = tables.iter().collect();
    sorted.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.label.cmp(&b.label)));
    let copied = sorted
        .into_iter()
        .take(MAX_COPIED)
        .map(|t| CopyTable {
            table: t.clone(),
            fresh: false,
        })
        .collect();
    measured(copied, &[])
}

/// `copied` with the sizes measured once their locks are held (by OID; estimates stay where
/// none was measured), largest first, the big ones fresh.
pub(crate) fn measured(mut copied: Vec<CopyTable>, sizes: &[(u32, u64)]) -> Vec<CopyTable> {
    for c in &mut copied {
        if let Some((_, size)) = sizes.iter().find(|(oid, _)| *oid == c.table.oid) {
            c.table.bytes = *size;
        }
        c.fresh = c.table.bytes >= FRESH_MIN;
    }
    copied.sort_by(|a, b| {
        b.table
            .bytes
            .cmp(&a.table.bytes)
            .then_with(|| a.table.label.cmp(&b.table.label))
    });
    copied
}

/// Parallel `COPY` streams: one keeps about two cores busy (the source's `COPY TO` and the
/// destination's `COPY FROM`), so `jobs / 2`, at least one, at most one per table. (Without
/// an exported snapshot no other session can read what pgship's does: one.)
pub(crate) fn copy_streams(jobs: usize, tables: usize) -> usize {
    (jobs / 2).clamp(1, tables.max(1))
}

/// `maintenance_work_mem` for the index builds, in MiB: small sorts run in the CPU's caches,
/// and on a 4-million-row table a 16 MiB budget built each index 1.6x faster than 1 GiB (an
/// external sort of cache-sized runs beats one quicksort that misses the cache at every
/// step). The budget grows with the largest table (1/32 of it, so that a sort has at most
/// about 32 runs to merge in one pass), from 16 MiB to 1 GiB.
pub(crate) fn index_memory_mb(largest_table: Option<u64>) -> u64 {
    ((largest_table.unwrap_or(0) / 32) >> 20).clamp(16, 1024)
}

/// `pg_dump` must be at least the source's major; `pg_restore` at most the destination's
/// (`pg_restore` 17+ sets `transaction_timeout`, which older servers reject).
pub(crate) fn check_tools(
    tools: &BinDir,
    source_major: u32,
    dest_major: u32,
) -> Result<(), CloneError> {
    check_dump_tools(tools, source_major)?;
    if tools.major > dest_major {
        return Err(CloneError::Tools(format!(
            "pg_restore {} cannot restore into PostgreSQL {dest_major} (it sets parameters {dest_major} lacks): use client tools of a major from {source_major} to {dest_major}",
            tools.version
        )));
    }
    Ok(())
}

/// The part of [`check_tools`] known before the destination is: the tools exist and
/// `pg_dump` can dump the source.
pub(crate) fn check_dump_tools(tools: &BinDir, source_major: u32) -> Result<(), CloneError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn table(name: &str, mb: u64) -> TableInfo {
        TableInfo {
            pattern: format!("\"public\".\"{name}\""),
            bytes: mb << 20,
            oid: u32::try_from(mb).unwrap(),
            qualified: format!("public.{name}"),
            label: format!("public.{name}"),
            columns: vec!["id".into()],
            binary: true,
        }
    }

    fn inventory(tables: Vec<TableInfo>) -> Inventory {
        Inventory {
            tables,
            relations: 10,
            large_objects: 0,
            sequences: 0,
            extension_config: false,
            roles: Vec::new(),
            extensions: Vec::new(),
        }
    }

    fn opts(jobs: usize) -> CloneOptions {
        let mut o = CloneOptions::new(BinDir {
            dir: PathBuf::from("/nonexistent"),
            version: "15.1".into(),
            major: 15,
            preferred: false,
        });
        o.jobs = jobs;
        o
    }

    const DEST: DestInfo = DestInfo {
        superuser: true,
        lock_capacity: 1000,
    };

    fn plan(o: &CloneOptions, inv: &Inventory) -> Plan {
        Plan::new(o, inv, &DEST, copied_tables(o, &inv.tables))
    }

    #[test]
    fn largest_tables_first_and_only_big_ones_fresh() {
        let inv = inventory(vec![table("small", 1), table("big", 400), table("mid", 4)]);
        let p = plan(&opts(2), &inv);
        let names: Vec<(&str, bool)> = p
            .copied
            .iter()
            .map(|c| (c.table.label.as_str(), c.fresh))
            .collect();
        assert_eq!(
            names,
            [
                ("public.big", true),
                ("public.mid", true),
                ("public.small", false)
            ]
        );
        assert!(!p.rest, "nothing is left for pg_dump");
        assert!(p.single_transaction);
    }

    #[test]
    fn measured_sizes_reorder_and_refresh() {
        let inv = inventory(vec![table("a", 1), table("b", 400), table("c", 4)]);
        let copied = copied_tables(&opts(2), &inv.tables);
        // "a" (oid 1) turns out to be 900 MiB (never analyzed), "b" (oid 400) 2 MiB.
        let m = measured(copied, &[(1, 900 << 20), (400, 2 << 20)]);
        let names: Vec<(&str, bool)> = m
            .iter()
            .map(|c| (c.table.label.as_str(), c.fresh))
            .collect();
        assert_eq!(
            names,
            [("public.a", true), ("public.c", true), ("public.b", false)]
        );
    }

    #[test]
    fn pg_dump_copies_what_pgship_does_not() {
        let mut inv = inventory(vec![table("t", 1)]);
        inv.sequences = 1;
        assert!(plan(&opts(2), &inv).rest);
        let mut inv = inventory(vec![table("t", 1)]);
        inv.large_objects = 3;
        assert!(plan(&opts(2), &inv).rest);
        let mut inv = inventory(vec![table("t", 1)]);
        inv.extension_config = true;
        assert!(plan(&opts(2), &inv).rest);
        let many: Vec<TableInfo> = (0..MAX_COPIED + 5)
            .map(|i| table(&format!("t{i}"), 1))
            .collect();
        let p = plan(&opts(2), &inventory(many));
        assert_eq!(p.copied.len(), MAX_COPIED);
        assert!(p.rest);
    }

    #[test]
    fn schema_only_and_kept_dumps_copy_nothing_themselves() {
        let inv = inventory(vec![table("t", 100)]);
        let mut o = opts(2);
        o.data = DataMode::Schema;
        let p = plan(&o, &inv);
        assert!(p.copied.is_empty() && !p.rest && p.schema_only);
        let mut o = opts(2);
        o.keep_dump = Some(PathBuf::from("/tmp/x"));
        let p = plan(&o, &inv);
        assert!(p.copied.is_empty() && !p.rest);
    }

    #[test]
    fn streams_follow_cores_and_tables() {
        assert_eq!(copy_streams(1, 10), 1);
        assert_eq!(copy_streams(2, 10), 1);
        assert_eq!(copy_streams(3, 10), 1);
        assert_eq!(copy_streams(8, 10), 4);
        assert_eq!(copy_streams(8, 2), 2);
        assert_eq!(copy_streams(8, 0), 1);
    }

    #[test]
    fn index_memory_grows_with_the_largest_table() {
        assert_eq!(index_memory_mb(None), 16);
        assert_eq!(index_memory_mb(Some(520 << 20)), 16);
        assert_eq!(index_memory_mb(Some(4 << 30)), 128);
        assert_eq!(index_memory_mb(Some(1 << 40)), 1024);
    }

    #[test]
    fn too_many_relations_for_one_transaction() {
        let mut inv = inventory(vec![table("t", 1)]);
        inv.relations = 600;
        assert!(!plan(&opts(2), &inv).single_transaction);
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
