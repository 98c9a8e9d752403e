//! Reader for plain SQL migration folders: `<version>_<name>.sql` files with optional
//! `<version>_<name>.down.sql` revert scripts.
//!
//! `version` is ASCII digits, `name` is non-empty. Files run in numeric version order (compared
//! as arbitrarily large integers, so `2_b` runs before `10_a` and nothing overflows). Each file
//! is split into single statements with PostgreSQL's own parser/scanner
//! ([`super::split::sql_statements`]).
//!
//! Errors, each naming the file(s): two files with the same numeric version (`1_a.sql` and
//! `001_b.sql`), a `.down.sql` without its up file, a file ending in `.sql` that does not follow
//! the pattern (so a typo is never silently skipped), text the scanner cannot split, non-UTF-8
//! text, and transaction control. Other files (README.md, ...), hidden files (names starting
//! with `.`, e.g. editor lock files) and subdirectories are ignored.
//!
//! This module only reads files; it never writes, never touches a database, and never reorders
//! or renames what it finds.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::split::sql_units;
use super::{
    DownScript, Migration, MigrationId, SourceError, SqlText, Statement, prepare_statements,
    read_dir_sorted, read_text, sha256_hex,
};

/// A file name split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFileName {
    /// Digits as written (leading zeros kept).
    pub version: String,
    /// `<version>_<name>` without the extension.
    pub stem: String,
    pub down: bool,
}

/// Parse `<version>_<name>.sql` / `<version>_<name>.down.sql`. `None` when the name does not
/// follow the pattern.
pub fn parse_file_name(file_name: &str) -> Option<SqlFileName> {
    let (stem, down) = match file_name.strip_suffix(".down.sql") {
        Some(stem) => (stem, true),
        None => (file_name.strip_suffix(".sql")?, false),
    };
    let (version, name) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some(SqlFileName {
        version: version.to_string(),
        stem: stem.to_string(),
        down,
    })
}

/// Compare two digit strings as integers of any size.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let a = normalize_version(a);
    let b = normalize_version(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The digits without leading zeros (`"0"` for all zeros).
fn normalize_version(v: &str) -> &str {
    let t = v.trim_start_matches('0');
    if t.is_empty() { "0" } else { t }
}

/// The migration files of a plain SQL folder `(name, path, down path)`, in version order,
/// checked by name but not read.
pub fn list(dir: &Path) -> Result<Vec<(SqlFileName, PathBuf, Option<PathBuf>)>, SourceError> {
    // Normalised version -> (file name info, path), for up and down files separately.
    let mut ups: BTreeMap<String, (SqlFileName, PathBuf)> = BTreeMap::new();
    let mut downs: BTreeMap<String, (SqlFileName, PathBuf)> = BTreeMap::new();

    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            continue;
        }
        let Some(file_name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            if has_sql_extension(&path.to_string_lossy()) {
                return Err(SourceError::invalid(&path, "file name is not valid UTF-8"));
            }
            continue;
        };
        // Hidden files (editor lock files such as `.#001_a.sql`) are not migrations.
        if !has_sql_extension(&file_name) || file_name.starts_with('.') {
            continue;
        }
        let Some(parsed) = parse_file_name(&file_name) else {
            return Err(SourceError::invalid(
                &path,
                "does not follow the migration file pattern <version>_<name>.sql (or \
                 <version>_<name>.down.sql), with <version> made of digits, e.g. \
                 001_create_users.sql; rename it or move it out of the migrations folder",
            ));
        };
        let key = normalize_version(&parsed.version).to_string();
        let map = if parsed.down { &mut downs } else { &mut ups };
        if let Some((_, other)) = map.get(&key) {
            return Err(SourceError::invalid(
                &path,
                format!(
                    "has the same version ({}) as {}; every migration needs its own version",
                    key,
                    other.display()
                ),
            ));
        }
        map.insert(key, (parsed, path));
    }

    for (key, (down, down_path)) in &downs {
        match ups.get(key) {
            Some((up, _)) if up.stem == down.stem => {}
            Some((up, up_path)) => {
                return Err(SourceError::invalid(
                    down_path,
                    format!(
                        "down file does not match its up file {}: expected {}.down.sql",
                        up_path.display(),
                        up.stem
                    ),
                ));
            }
            None => {
                return Err(SourceError::invalid(
                    down_path,
                    format!(
                        "down file without an up file: expected {}.sql next to it",
                        down.stem
                    ),
                ));
            }
        }
    }

    let mut ordered: Vec<(SqlFileName, PathBuf)> = ups.into_values().collect();
    ordered.sort_by(|a, b| compare_versions(&a.0.version, &b.0.version));
    Ok(ordered
        .into_iter()
        .map(|(file, path)| {
            let down = downs
                .remove(normalize_version(&file.version))
                .map(|(_, p)| p);
            (file, path, down)
        })
        .collect())
}

/// Read a plain SQL migrations folder, in version order.
pub fn read(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    let listed = list(dir)?;
    let mut out = Vec::with_capacity(listed.len());
    for (order, (file, path, down_path)) in listed.into_iter().enumerate() {
        let (raw, statements) = read_statements(&path)?;
        let down = match down_path {
            Some(down_path) => {
                let (down_raw, down_statements) = read_statements(&down_path)?;
                Some(DownScript {
                    path: down_path,
                    raw: down_raw,
                    statements: down_statements,
                })
            }
            None => None,
        };
        out.push(Migration {
            name: file.stem,
            order,
            id: MigrationId::Sql {
                version: file.version,
            },
            checksum: sha256_hex(raw.as_bytes()),
            statements,
            raw,
            path,
            down,
        });
    }
    Ok(out)
}

fn has_sql_extension(name: &str) -> bool {
    name.len() >= 4
        && name.is_char_boundary(name.len() - 4)
        && name[name.len() - 4..].eq_ignore_ascii_case(".sql")
}

/// Read one file and split it into checked statements.
fn read_statements(path: &Path) -> Result<(SqlText, Vec<Statement>), SourceError> {
    let raw = read_text(path)?;
    let statements = sql_units(&raw).map_err(|msg| SourceError::invalid(path, msg))?;
    let statements = prepare_statements(path, &raw, statements, false)?;
    Ok((raw, statements))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TxRequirement;

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let p = tmp.path().join(name);
            fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs_err::write(p, text).expect("write");
        }
        tmp
    }

    fn err_of(files: &[(&str, &[u8])]) -> String {
        let tmp = dir_with(files);
        read(tmp.path()).expect_err("must fail").to_string()
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("001_create_users.sql"),
            Some(SqlFileName {
                version: "001".into(),
                stem: "001_create_users".into(),
                down: false
            })
        );
        assert_eq!(parse_file_name("1_a.down.sql").map(|f| f.down), Some(true));
        for bad in [
            "create.sql",
            "_a.sql",
            "1_.sql",
            "1.sql",
            "v1_a.sql",
            "1a_b.sql",
            "1_a.txt",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_compare_as_big_integers() {
        assert_eq!(compare_versions("2", "10"), Ordering::Less);
        assert_eq!(compare_versions("0002", "10"), Ordering::Less);
        assert_eq!(compare_versions("007", "7"), Ordering::Equal);
        assert_eq!(compare_versions("0", "000"), Ordering::Equal);
        assert_eq!(
            compare_versions("99999999999999999999999999", "100000000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn reads_in_numeric_order_with_downs() {
        let tmp = dir_with(&[
            ("10_a.sql", b"CREATE TABLE a (id int);"),
            (
                "2_b.sql",
                b"-- b\nCREATE TABLE b (id int);\nCREATE INDEX CONCURRENTLY bi ON b (id);",
            ),
            ("2_b.down.sql", b"DROP TABLE b;"),
            ("README.md", b"# notes"),
            (".#10_a.sql", b"editor lock file"),
            ("sub/99_x.sql", b"not read"),
        ]);
        let m = read(tmp.path()).expect("reads");
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["2_b", "10_a"]);
        assert_eq!(
            m[0].id,
            MigrationId::Sql {
                version: "2".into()
            }
        );
        assert_eq!(m[0].order, 0);
        assert_eq!(m[1].order, 1);
        assert_eq!(m[0].statements.len(), 2);
        assert_eq!(m[0].statements[0].line, 2);
        assert_eq!(m[0].statements[1].tx, TxRequirement::NoTransaction);
        assert_eq!(m[0].checksum, sha256_hex(m[0].raw.as_bytes()));
        for s in &m[0].statements {
            assert!(s.sql.is_piece_of(&m[0].raw), "the file is held once");
            assert_eq!(&m[0].raw[s.offset..s.offset + s.sql.len()], s.sql.as_str());
        }
        let down = m[0].down.as_ref().expect("down");
        assert_eq!(down.path, tmp.path().join("2_b.down.sql"));
        assert_eq!(down.statements.len(), 1);
        assert!(m[1].down.is_none());
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let tmp = dir_with(&[(
            "1_fn.sql",
            b"CREATE FUNCTION f() RETURNS trigger AS $body$\nBEGIN\n  NEW.x := 1; RETURN NEW;\nEND;\n$body$ LANGUAGE plpgsql;\nSELECT 1;",
        )]);
        let m = read(tmp.path()).expect("reads");
        assert_eq!(m[0].statements.len(), 2);
        assert!(m[0].statements[0].sql.contains("RETURN NEW;"));
        assert_eq!(m[0].statements[1].line, 6);
    }

    #[test]
    fn duplicates_are_errors_naming_both() {
        let msg = err_of(&[("1_a.sql", b"SELECT 1;"), ("001_b.sql", b"SELECT 2;")]);
        assert!(
            msg.contains("1_a.sql") && msg.contains("001_b.sql"),
            "{msg}"
        );
        assert!(msg.contains("same version"), "{msg}");
    }

    #[test]
    fn orphan_and_mismatched_downs_are_errors() {
        let msg = err_of(&[("1_a.sql", b"SELECT 1;"), ("2_b.down.sql", b"SELECT 2;")]);
        assert!(
            msg.contains("2_b.down.sql") && msg.contains("without an up file"),
            "{msg}"
        );
        let msg = err_of(&[("1_a.sql", b"SELECT 1;"), ("1_b.down.sql", b"SELECT 2;")]);
        assert!(
            msg.contains("1_b.down.sql") && msg.contains("1_a.down.sql"),
            "{msg}"
        );
    }

    #[test]
    fn misnamed_sql_files_are_errors() {
        for name in ["create_users.sql", "1-a.sql", "1_a.SQL", "1_.sql"] {
            let msg = err_of(&[("1_a.sql", b"SELECT 1;"), (name, b"SELECT 2;")]);
            assert!(
                msg.contains(name) && msg.contains("pattern"),
                "{name}: {msg}"
            );
        }
    }

    #[test]
    fn bad_text_is_an_error() {
        let msg = err_of(&[("1_a.sql", b"SELECT '\xff';")]);
        assert!(msg.contains("1_a.sql") && msg.contains("UTF-8"), "{msg}");
        let msg = err_of(&[("1_a.sql", b"SELECT 1;\nSELECT 'open;")]);
        assert!(
            msg.contains("1_a.sql") && msg.contains("unterminated"),
            "{msg}"
        );
    }

    #[test]
    fn transaction_control_is_read_and_marked() {
        use crate::source::TxControl;
        let tmp = dir_with(&[
            (
                "1_a.sql",
                b"CREATE TABLE a (id int);\nBEGIN;\nSELECT 1;\nCOMMIT;",
            ),
            ("2_b.sql", b"ROLLBACK;"),
        ]);
        let m = read(tmp.path()).expect("reads");
        let controls: Vec<_> = m[0]
            .statements
            .iter()
            .map(|s| (s.control.clone(), s.line))
            .collect();
        assert_eq!(
            controls,
            [
                (None, 1),
                (Some(TxControl::Begin), 2),
                (None, 3),
                (Some(TxControl::Commit), 4)
            ]
        );
        assert_eq!(m[1].refused_control().map(|(_, kw)| kw), Some("ROLLBACK"));
    }
}
