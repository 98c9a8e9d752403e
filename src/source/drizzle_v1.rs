//! Reader for drizzle-kit v1 migration folders: `<dir>/<YYYYMMDDHHMMSS>_<name>/migration.sql`
//! (next to `snapshot.json`, optionally `down.sql`), with no journal.
//!
//! # What drizzle-orm v1 does (findings; the state layer relies on these)
//!
//! Read in the stored copy of drizzle-team/drizzle-orm (v1/beta line; the index holds several
//! versions of each file, cited by commit where the tool gave one):
//! - `drizzle-orm/src/migrator.ts` (`readMigrationFiles`, v1 versions):
//!   `readdirSync(folder).map(subdir => ({ path: join(folder, subdir, 'migration.sql'), name:
//!   subdir })).filter(it => existsSync(it.path))`, then
//!   `migrations.sort((a, b) => a.name.localeCompare(b.name))`; for each:
//!   `query = readFileSync(path).toString()` (no CRLF normalisation),
//!   `sql = query.split('--> statement-breakpoint')`, `bps: true`,
//!   `folderMillis = formatToMillis(name.slice(0, 14))`,
//!   `hash = sha256(query) hex`, `name = <folder name>` (the whole folder name, e.g.
//!   `20250101120000_init`). The latest version also reads an optional `<folder>/down.sql`
//!   (`splitDownSql`, comment-only chunks dropped) for `rollback()`. If
//!   `meta/_journal.json` exists, v1 refuses (older betas: warned and read the 0.x layout).
//! - `drizzle-orm/src/migrator.utils.ts` (commits 2458948e7935, 45147e2052f5):
//!   `formatToMillis` = `Date.UTC(YYYY, MM - 1, DD, hh, mm, ss)`: the folder timestamp is read
//!   as **UTC** (not local time), seconds precision, so `created_at` is a multiple of 1000.
//!   `getMigrationsToRun`: a migration is pending iff its `name` is **not among the `name`s in
//!   the table** (rows with NULL name are ignored). The `created_at` comparison of 0.x is gone;
//!   order and `created_at` no longer decide what runs, and an older folder added later runs.
//! - `drizzle-orm/src/pg-core/async/session.ts` (`migrate`, v1): `CREATE SCHEMA IF NOT EXISTS`,
//!   `upgradeIfNeeded(...)`, and on a new database
//!   `CREATE TABLE IF NOT EXISTS <schema>.<table> (id SERIAL PRIMARY KEY, hash text NOT NULL,
//!   created_at bigint, name text, applied_at timestamp with time zone DEFAULT now())`; then
//!   `select id, hash, created_at, name`, and in **one transaction** for all pending migrations:
//!   each chunk via `tx.execute(sql.raw(stmt))`, then
//!   `insert into ... ("hash", "created_at", "name") values(hash, folderMillis, name)`.
//!   Same defaults as 0.x: schema `drizzle`, table `__drizzle_migrations`.
//! - `drizzle-orm/src/up-migrations/pg.ts` (commit 45147e2052f5): table "version 0" is the 0.x
//!   shape (id, hash, created_at); "version 1" adds `name` text, `applied_at` timestamptz
//!   default now() and `version` integer. Upgrade 0→1 (`ALTER TABLE ... ADD COLUMN IF NOT
//!   EXISTS` each) backfills `name` per row by matching `created_at` to a local folder's
//!   millis (hash as tie-breaker; else by hash alone; else NULL), and sets `version = 1`,
//!   `applied_at = NULL`. The version is read from the first row's `version` (missing/NULL = 0),
//!   or, for an empty table, from whether a `version` column exists. Note the new-table
//!   `CREATE` above has no `version` column and the insert does not set it, so drizzle re-runs
//!   the 0→1 backfill on a later run; rows stay keyed by `name`.
//!
//! pgship therefore reads: order = folder names compared like JavaScript's `localeCompare`
//! (approximated: see [`compare_names`]), `MigrationId::Drizzle { when }` with
//! `when = Date.UTC(...)` of the first 14 characters, `checksum` = sha256 of the raw
//! `migration.sql`, `name` = folder name (the key the v1 state table uses), statements = the
//! drizzle chunks. Two folders may share a `when` in v1 (pending is decided by name).
//!
//! Stricter than drizzle: a folder whose name does not start with 14 digits (drizzle would store
//! `created_at` NaN and fail at insert), a `migration.sql` that is not a file, non-UTF-8 text,
//! transaction control, and a non-transactional statement sharing a chunk with others are
//! errors naming the file. This module only reads files; it never writes and never touches a
//! database.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::split::drizzle_units;
use super::{
    DownScript, Migration, MigrationId, SourceError, prepare_statements, read_dir_sorted,
    read_text, sha256_hex,
};

/// The migration folders `(name, folder, when)` in drizzle's run order, without reading their
/// files.
pub fn list(dir: &Path) -> Result<Vec<(String, PathBuf, i64)>, SourceError> {
    let journal = dir.join("meta").join("_journal.json");
    if journal.is_file() {
        return Err(SourceError::invalid(
            &journal,
            "this is a drizzle-kit 0.x folder (it has meta/_journal.json), not a v1 folder; \
             read it as drizzle, or upgrade it with `drizzle-kit up`",
        ));
    }
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for entry in read_dir_sorted(dir)? {
        let sql = entry.join("migration.sql");
        if !sql.exists() {
            continue;
        }
        if !sql.is_file() {
            return Err(SourceError::invalid(&sql, "is not a regular file"));
        }
        let Some(name) = entry.file_name().and_then(|n| n.to_str()) else {
            return Err(SourceError::invalid(
                &entry,
                "folder name is not valid UTF-8",
            ));
        };
        folders.push((name.to_string(), entry.clone()));
    }
    folders.sort_by(|a, b| compare_names(&a.0, &b.0));
    folders
        .into_iter()
        .map(|(name, folder)| {
            let when = folder_millis(&name).ok_or_else(|| {
                SourceError::invalid(
                    folder.join("migration.sql"),
                    format!(
                        "folder name \"{name}\" does not start with a 14-digit UTC timestamp \
                         (YYYYMMDDHHMMSS_<name>), which drizzle-orm stores as created_at"
                    ),
                )
            })?;
            Ok((name, folder, when))
        })
        .collect()
}

/// Read a drizzle-kit v1 migrations folder, in drizzle's run order.
pub fn read(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    let listed = list(dir)?;
    let mut out = Vec::with_capacity(listed.len());
    for (order, (name, folder, when)) in listed.into_iter().enumerate() {
        let path = folder.join("migration.sql");
        let raw = read_text(&path)?;
        let statements = prepare_statements(&path, &raw, drizzle_units(&raw), true)?;

        let down_path = folder.join("down.sql");
        let down = if down_path.is_file() {
            let down_raw = read_text(&down_path)?;
            let down_statements =
                prepare_statements(&down_path, &down_raw, drizzle_units(&down_raw), true)?;
            Some(DownScript {
                path: down_path,
                raw: down_raw,
                statements: down_statements,
            })
        } else {
            None
        };

        out.push(Migration {
            name,
            order,
            id: MigrationId::Drizzle { when },
            checksum: sha256_hex(raw.as_bytes()),
            statements,
            raw,
            path,
            down,
        });
    }
    Ok(out)
}

/// drizzle-orm's `formatToMillis(name.slice(0, 14))`: `Date.UTC(Y, M - 1, D, h, m, s)`, with
/// JavaScript's overflow rules (month 13 rolls into the next year, second 60 into the next
/// minute, years 0..=99 mean 1900..=1999). `None` unless the name starts with 14 ASCII digits.
pub fn folder_millis(name: &str) -> Option<i64> {
    let digits = name.get(..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i64>().ok());
    let mut year = num(0..4)?;
    let month = num(4..6)? - 1;
    let day = num(6..8)?;
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if (0..=99).contains(&year) {
        year += 1900;
    }
    // ECMAScript MakeDay: normalise the month, then add the day offset.
    let y = year + month.div_euclid(12);
    let m = month.rem_euclid(12) + 1;
    let days = days_from_civil(y, m, 1) + day - 1;
    Some(days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Order of folder names, approximating JavaScript's `a.localeCompare(b)` (ICU root
/// collation) for the names drizzle-kit writes: first ignoring case with punctuation before
/// digits before letters, then lowercase before uppercase, then by bytes. Names that differ
/// already in the 14-digit timestamp compare exactly as drizzle does; only same-second ties
/// with unusual characters could differ from ICU.
pub fn compare_names(a: &str, b: &str) -> Ordering {
    let primary = |s: &str| s.chars().map(primary_weight).collect::<Vec<_>>();
    primary(a)
        .cmp(&primary(b))
        .then_with(|| {
            let case = |s: &str| s.chars().map(|c| c.is_uppercase()).collect::<Vec<_>>();
            case(a).cmp(&case(b))
        })
        .then_with(|| a.cmp(b))
}

fn primary_weight(c: char) -> (u8, u32) {
    const PUNCT: &str = "\t\n\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";
    if let Some(i) = PUNCT.find(c) {
        (0, u32::try_from(i).unwrap_or(u32::MAX))
    } else if c.is_ascii_digit() {
        (1, u32::from(c))
    } else if c.is_ascii_alphabetic() {
        (2, u32::from(c.to_ascii_lowercase()))
    } else {
        (3, c.to_lowercase().next().map_or(u32::from(c), u32::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TxRequirement;

    fn write(dir: &Path, rel: &str, text: &[u8]) {
        let p = dir.join(rel);
        fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs_err::write(p, text).expect("write");
    }

    #[test]
    fn millis_are_utc_like_date_utc() {
        assert_eq!(
            folder_millis("20250101120000_init"),
            Some(1_735_732_800_000)
        );
        assert_eq!(folder_millis("19700101000000_x"), Some(0));
        // 2024 is a leap year: Feb 29 exists.
        assert_eq!(folder_millis("20240229000000_x"), Some(1_709_164_800_000));
        // JavaScript rolls over: month 13 of 2024 is January 2025, second 60 the next minute.
        assert_eq!(
            folder_millis("20241301120000_x"),
            folder_millis("20250101120000_y")
        );
        assert_eq!(
            folder_millis("20250101115960_x"),
            folder_millis("20250101120000_y")
        );
        assert_eq!(folder_millis("2025010112000_x"), None);
        assert_eq!(folder_millis("init"), None);
        assert_eq!(folder_millis("2025010112000a_x"), None);
    }

    #[test]
    fn names_order_like_locale_compare() {
        let mut names = vec![
            "20250102000000_b",
            "20250101000000_Zeta",
            "20250101000000_alpha",
            "20250101000000_a_b",
            "20250101000000_a1",
        ];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(
            names,
            [
                "20250101000000_a_b",
                "20250101000000_a1",
                "20250101000000_alpha",
                "20250101000000_Zeta",
                "20250102000000_b"
            ]
        );
        assert_eq!(
            compare_names("20250101000000_a", "20250101000000_A"),
            Ordering::Less
        );
    }

    #[test]
    fn reads_v1_folders() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        write(
            d,
            "20250102000000_second/migration.sql",
            b"ALTER TABLE \"a\" ADD COLUMN \"b\" int;",
        );
        write(d, "20250102000000_second/snapshot.json", b"{}");
        write(
            d,
            "20250101120000_init/migration.sql",
            b"CREATE TABLE \"a\" (\"id\" int);\n--> statement-breakpoint\nCREATE INDEX CONCURRENTLY \"i\" ON \"a\" (\"id\");",
        );
        write(
            d,
            "20250101120000_init/down.sql",
            b"-- down\nDROP TABLE \"a\";",
        );
        write(d, "notes/readme.txt", b"ignored");
        write(d, "stray.sql", b"ignored");

        let m = read(d).expect("reads");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "20250101120000_init");
        assert_eq!(m[0].order, 0);
        assert_eq!(
            m[0].id,
            MigrationId::Drizzle {
                when: 1_735_732_800_000
            }
        );
        assert_eq!(m[0].path, d.join("20250101120000_init/migration.sql"));
        assert_eq!(m[0].checksum, sha256_hex(m[0].raw.as_bytes()));
        assert_eq!(m[0].statements.len(), 2);
        assert_eq!(m[0].statements[1].tx, TxRequirement::NoTransaction);
        assert_eq!(m[0].statements[1].line, 3);
        let down = m[0].down.as_ref().expect("down.sql read");
        assert_eq!(down.statements.len(), 1);
        assert_eq!(down.statements[0].line, 2);
        assert_eq!(m[1].name, "20250102000000_second");
        assert!(m[1].down.is_none());
    }

    #[test]
    fn bad_folder_name_and_journal_are_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "init/migration.sql", b"SELECT 1;");
        let msg = read(tmp.path()).expect_err("must fail").to_string();
        assert!(
            msg.contains("init/migration.sql") && msg.contains("14-digit"),
            "{msg}"
        );

        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "meta/_journal.json", b"{\"entries\":[]}");
        let msg = read(tmp.path()).expect_err("must fail").to_string();
        assert!(msg.contains("_journal.json"), "{msg}");
    }

    #[test]
    fn non_utf8_is_an_error_and_transaction_control_is_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(
            tmp.path(),
            "20250101000000_x/migration.sql",
            b"SELECT '\xc3';",
        );
        let msg = read(tmp.path()).expect_err("must fail").to_string();
        assert!(
            msg.contains("20250101000000_x/migration.sql") && msg.contains("UTF-8"),
            "{msg}"
        );

        let tmp = tempfile::tempdir().expect("tempdir");
        write(
            tmp.path(),
            "20250101000000_x/migration.sql",
            b"SELECT 1;\n--> statement-breakpoint\nCOMMIT;",
        );
        let m = read(tmp.path()).expect("reads");
        assert!(m[0].commits_itself());
        assert_eq!(m[0].statements[1].line, 3);
    }
}
