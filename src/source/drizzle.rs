//! Reader for drizzle-kit 0.x migration folders: `meta/_journal.json` plus `<tag>.sql` files.
//!
//! It reproduces what drizzle-orm's `readMigrationFiles` + `PgDialect.migrate` do
//! (see /work/shared/drizzle-facts.md):
//! - run order is the journal's `entries` array order (not `idx`, nothing is sorted);
//! - each entry's file is `<dir>/<tag>.sql`; `.sql` files not in the journal are ignored;
//! - the file is split with `split("--> statement-breakpoint")`, chunks kept byte for byte;
//! - `hash` (our `checksum`) is the sha256 hex of the file, `created_at` is the entry's `when`.
//!
//! Stricter than drizzle where drizzle would go wrong silently or half-way: a journal that is not
//! JSON or has the wrong shape, a missing file, duplicate tags, duplicate `when` values (drizzle
//! would skip the second entry forever), non-UTF-8 text, transaction control inside a file, and
//! a non-transactional statement sharing a chunk with others are errors naming the file.
//!
//! Note for the state layer: some drizzle-orm versions (seen in drizzle-orm/src/migrator.ts at
//! commit 016e07d8eec7) replace `\r\n` with `\n` before hashing; 0.45.4 does not. For files with
//! CRLF line endings [`lf_normalized_checksum`] gives the other possible stored hash.
//!
//! This module only reads files; it never writes, never touches a database, and never guesses
//! an order the journal does not state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::split::drizzle_units;
use super::{
    Migration, MigrationId, SourceError, prepare_statements, read_bytes, read_text, sha256_hex,
};

/// One journal entry, as far as pgship uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub tag: String,
    pub when: i64,
}

/// Path of the journal inside a drizzle-kit 0.x migrations folder.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join("meta").join("_journal.json")
}

/// Read and validate `meta/_journal.json`; entries in journal order.
pub fn read_journal(dir: &Path) -> Result<Vec<JournalEntry>, SourceError> {
    let path = journal_path(dir);
    if !path.is_file() {
        return Err(SourceError::invalid(
            &path,
            "journal not found: a drizzle-kit migrations folder must contain meta/_journal.json \
             (is this the right folder? drizzle-kit writes it on `generate`)",
        ));
    }
    let bytes = read_bytes(&path)?;
    parse_journal(&path, &bytes)
}

/// Validate journal bytes read from `path`.
pub fn parse_journal(path: &Path, bytes: &[u8]) -> Result<Vec<JournalEntry>, SourceError> {
    let bad = |msg: String| SourceError::invalid(path, msg);
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "not valid JSON: {} (line {}, column {})",
            strip_position(&e.to_string()),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(root) = &value else {
        return Err(bad(format!(
            "expected a JSON object, found {}",
            kind_of(&value)
        )));
    };
    match root.get("dialect") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) => {
            if let Some(db) = super::other_database_dialect(d) {
                return Err(bad(format!(
                    "the journal's dialect is \"{d}\" ({db}): pgship supports only PostgreSQL \
                     (drizzle-kit writes \"postgresql\", or \"pg\" in older versions)"
                )));
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "\"dialect\" must be a string, found {}",
                kind_of(other)
            )));
        }
    }
    let entries = match root.get("entries") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(bad(format!(
                "\"entries\" must be an array, found {}",
                kind_of(other)
            )));
        }
        None => return Err(bad("missing the \"entries\" array".to_string())),
    };

    let mut out: Vec<JournalEntry> = Vec::with_capacity(entries.len());
    let mut by_tag: HashMap<&str, usize> = HashMap::new();
    let mut by_when: HashMap<i64, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(obj) = entry else {
            return Err(bad(format!(
                "entries[{i}] must be an object, found {}",
                kind_of(entry)
            )));
        };
        let tag = match obj.get("tag") {
            Some(Value::String(t)) => t.as_str(),
            Some(other) => {
                return Err(bad(format!(
                    "entries[{i}].tag must be a string, found {}",
                    kind_of(other)
                )));
            }
            None => return Err(bad(format!("entries[{i}] has no \"tag\""))),
        };
        if tag.is_empty() || tag == "." || tag == ".." || tag.contains(['/', '\\', '\0']) {
            return Err(bad(format!(
                "entries[{i}].tag {tag:?} is not a plain file name (expected something like \
                 \"0000_init\")"
            )));
        }
        let when = match obj.get("when") {
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                bad(format!(
                    "entries[{i}] (tag \"{tag}\"): \"when\" must be an integer number of \
                     milliseconds, found {n}"
                ))
            })?,
            Some(other) => {
                return Err(bad(format!(
                    "entries[{i}] (tag \"{tag}\"): \"when\" must be an integer, found {}",
                    kind_of(other)
                )));
            }
            None => return Err(bad(format!("entries[{i}] (tag \"{tag}\") has no \"when\""))),
        };
        if let Some(&first) = by_tag.get(tag) {
            return Err(bad(format!(
                "entries[{first}] and entries[{i}] have the same tag \"{tag}\""
            )));
        }
        if let Some(&first) = by_when.get(&when) {
            let other = &out[first].tag;
            return Err(bad(format!(
                "entries[{first}] (\"{other}\") and entries[{i}] (\"{tag}\") have the same \
                 \"when\" {when}: drizzle-orm applies only migrations whose \"when\" is greater \
                 than the last applied one, so it would skip one of them forever; give \"{tag}\" \
                 a later \"when\""
            )));
        }
        by_tag.insert(tag, i);
        by_when.insert(when, i);
        out.push(JournalEntry {
            tag: tag.to_string(),
            when,
        });
    }
    Ok(out)
}

/// The journal's entries with their files, in journal order, without reading the files.
pub fn list(dir: &Path) -> Result<Vec<(JournalEntry, PathBuf)>, SourceError> {
    let entries = read_journal(dir)?;
    let journal = journal_path(dir);
    let mut out = Vec::with_capacity(entries.len());
    for (order, entry) in entries.into_iter().enumerate() {
        let path = dir.join(format!("{}.sql", entry.tag));
        if !path.is_file() {
            return Err(SourceError::invalid(
                &path,
                format!(
                    "file not found, but {} lists it (entry {order}, tag \"{}\")",
                    journal.display(),
                    entry.tag
                ),
            ));
        }
        out.push((entry, path));
    }
    Ok(out)
}

/// Read a drizzle-kit 0.x migrations folder, in journal order.
pub fn read(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    let listed = list(dir)?;
    let mut out = Vec::with_capacity(listed.len());
    for (order, (entry, path)) in listed.into_iter().enumerate() {
        let raw = read_text(&path)?;
        let statements = prepare_statements(&path, &raw, drizzle_units(&raw), true)?;
        out.push(Migration {
            name: entry.tag,
            order,
            id: MigrationId::Drizzle { when: entry.when },
            checksum: sha256_hex(raw.as_bytes()),
            statements,
            raw,
            path,
            down: None,
        });
    }
    Ok(out)
}

/// If `raw` contains `\r\n`, the sha256 hex of the text with every `\r\n` replaced by `\n` (what
/// drizzle-orm versions that normalise line endings store as `hash`); `None` otherwise.
pub fn lf_normalized_checksum(raw: &[u8]) -> Option<String> {
    if !raw.windows(2).any(|w| w == b"\r\n") {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    Some(sha256_hex(&out))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message ends with " at line L column C"; we print those separately.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TxRequirement;

    const GOOD: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/drizzle-app/drizzle"
    );
    const BAD: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/drizzle-app/drizzle-bad"
    );
    const STATE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/drizzle-app/expected-state.sql"
    );

    /// (hash, created_at) pairs from the INSERTs in expected-state.sql, in id order.
    fn expected_state() -> Vec<(String, i64)> {
        let text = fs_err::read_to_string(STATE).expect("expected-state.sql");
        text.lines()
            .filter(|l| l.starts_with("INSERT INTO drizzle.__drizzle_migrations"))
            .map(|l| {
                let values = l.split("VALUES (").nth(1).expect("values");
                let parts: Vec<&str> = values.trim_end_matches(");").split(", ").collect();
                let hash = parts[1].trim_matches('\'').to_string();
                let when = parts[2].parse().expect("created_at");
                (hash, when)
            })
            .collect()
    }

    #[test]
    fn reads_the_fixture_like_drizzle() {
        let migrations = read(Path::new(GOOD)).expect("fixture reads");
        let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "0000_init",
                "0001_add_product_components",
                "0002_rename_full_name",
                "0003_drop_order_total"
            ]
        );
        let expected = expected_state();
        assert_eq!(expected.len(), 4);
        for (i, (m, (hash, when))) in migrations.iter().zip(&expected).enumerate() {
            assert_eq!(m.order, i);
            assert_eq!(&m.checksum, hash, "{}", m.name);
            assert_eq!(m.id, MigrationId::Drizzle { when: *when });
            assert_eq!(m.path, Path::new(GOOD).join(format!("{}.sql", m.name)));
            assert!(m.down.is_none());
            let joined: Vec<&str> = m.statements.iter().map(|s| s.sql.as_str()).collect();
            assert_eq!(joined.join("--> statement-breakpoint"), m.raw.as_str());
            for s in &m.statements {
                assert!(s.sql.is_piece_of(&m.raw), "the file is held once");
                assert_eq!(s.sql.start(), s.offset);
            }
            assert!(m.statements.iter().all(|s| s.tx == TxRequirement::Any));
        }
        assert_eq!(migrations[0].statements.len(), 15);
        assert_eq!(migrations[1].statements.len(), 6);
        assert_eq!(migrations[2].statements.len(), 1);
        assert_eq!(
            migrations[0].checksum,
            "e926c27758a8b58fba4c96570c4ca46b6c28d5cd511c283aee0d2dc58c53b6d8"
        );
    }

    #[test]
    fn reads_the_bad_set() {
        let migrations = read(Path::new(BAD)).expect("bad set still reads");
        assert_eq!(migrations.len(), 5);
        let m = &migrations[4];
        assert_eq!(m.name, "0004_broken_custom");
        assert_eq!(m.statements.len(), 4);
        assert_eq!(m.statements[2].line, 12);
        assert!(m.statements[2].sql.contains("no_such_table"));
    }

    /// A copy of the good fixture in a temp dir, with `journal` as the journal text.
    fn temp_copy(journal: Option<&[u8]>) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs_err::create_dir(tmp.path().join("meta")).expect("mkdir");
        for entry in fs_err::read_dir(GOOD).expect("readdir") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|e| e == "sql") {
                fs_err::copy(&p, tmp.path().join(p.file_name().expect("name"))).expect("copy");
            }
        }
        let journal_bytes = match journal {
            Some(j) => j.to_vec(),
            None => fs_err::read(journal_path(Path::new(GOOD))).expect("journal"),
        };
        fs_err::write(journal_path(tmp.path()), journal_bytes).expect("write journal");
        tmp
    }

    fn err_of(dir: &Path) -> String {
        read(dir).expect_err("must fail").to_string()
    }

    #[test]
    fn missing_journal_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let msg = err_of(tmp.path());
        assert!(msg.contains("_journal.json"), "{msg}");
        assert!(msg.contains("not found"), "{msg}");
    }

    #[test]
    fn journal_not_json() {
        let tmp = temp_copy(Some(
            b"{\n  \"entries\": [\n    {\"tag\": \"0000_init\",, }\n]}",
        ));
        let msg = err_of(tmp.path());
        assert!(msg.contains("_journal.json"), "{msg}");
        assert!(msg.contains("not valid JSON"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn every_postgresql_dialect_drizzle_kit_wrote_is_accepted() {
        let path = Path::new("meta/_journal.json");
        for dialect in ["postgresql", "pg", "postgres", "PostgreSQL"] {
            let json = format!(
                r#"{{"version":"5","dialect":"{dialect}","entries":[{{"idx":0,"version":"5","when":1,"tag":"a","breakpoints":true}},{{"idx":3,"version":"7","when":2,"tag":"b","breakpoints":true}}]}}"#
            );
            let entries = parse_journal(path, json.as_bytes()).expect(dialect);
            assert_eq!(entries.len(), 2, "{dialect}");
        }
        for (dialect, db) in [
            ("sqlite", "SQLite"),
            ("mysql", "MySQL"),
            ("turso", "SQLite"),
        ] {
            let json = format!(r#"{{"dialect":"{dialect}","entries":[]}}"#);
            let msg = parse_journal(path, json.as_bytes())
                .expect_err(dialect)
                .to_string();
            assert!(msg.contains(dialect) && msg.contains(db), "{msg}");
        }
    }

    #[test]
    fn journal_wrong_shape() {
        for (journal, needle) in [
            (&b"[]"[..], "expected a JSON object"),
            (
                b"{\"dialect\":\"mysql\",\"entries\":[]}",
                "supports only PostgreSQL",
            ),
            (b"{\"entries\":{}}", "\"entries\" must be an array"),
            (b"{\"version\":\"7\"}", "missing the \"entries\""),
            (b"{\"entries\":[{\"when\":1}]}", "has no \"tag\""),
            (b"{\"entries\":[{\"tag\":\"a\"}]}", "has no \"when\""),
            (
                b"{\"entries\":[{\"tag\":\"a\",\"when\":\"1\"}]}",
                "must be an integer",
            ),
            (
                b"{\"entries\":[{\"tag\":\"a\",\"when\":1.5}]}",
                "must be an integer",
            ),
            (
                b"{\"entries\":[{\"tag\":\"../x\",\"when\":1}]}",
                "not a plain file name",
            ),
        ] {
            let tmp = temp_copy(Some(journal));
            let msg = err_of(tmp.path());
            assert!(msg.contains("_journal.json"), "{msg}");
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn entry_without_file() {
        let tmp = temp_copy(Some(
            br#"{"dialect":"postgresql","entries":[{"idx":0,"when":1,"tag":"0000_init"},{"idx":1,"when":2,"tag":"0001_missing"}]}"#,
        ));
        let msg = err_of(tmp.path());
        assert!(msg.contains("0001_missing.sql"), "{msg}");
        assert!(msg.contains("not found"), "{msg}");
    }

    #[test]
    fn duplicate_tag_and_when() {
        let tmp = temp_copy(Some(
            br#"{"entries":[{"when":1,"tag":"0000_init"},{"when":2,"tag":"0000_init"}]}"#,
        ));
        let msg = err_of(tmp.path());
        assert!(
            msg.contains("_journal.json") && msg.contains("same tag"),
            "{msg}"
        );

        let tmp = temp_copy(Some(
            br#"{"entries":[{"when":5,"tag":"0000_init"},{"when":5,"tag":"0002_rename_full_name"}]}"#,
        ));
        let msg = err_of(tmp.path());
        assert!(
            msg.contains("_journal.json") && msg.contains("same \"when\" 5"),
            "{msg}"
        );
    }

    #[test]
    fn order_is_journal_order_and_strays_are_ignored() {
        let tmp = temp_copy(Some(
            br#"{"entries":[{"idx":1,"when":20,"tag":"0002_rename_full_name"},{"idx":0,"when":10,"tag":"0000_init"}]}"#,
        ));
        fs_err::write(tmp.path().join("9999_stray.sql"), "garbage").expect("write");
        let m = read(tmp.path()).expect("reads");
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["0002_rename_full_name", "0000_init"]);
        assert_eq!(m[0].id, MigrationId::Drizzle { when: 20 });
    }

    #[test]
    fn non_utf8_sql() {
        let tmp = temp_copy(None);
        let mut bytes = b"CREATE TABLE a (id int);\nSELECT '".to_vec();
        bytes.push(0xff);
        bytes.extend_from_slice(b"';");
        fs_err::write(tmp.path().join("0003_drop_order_total.sql"), &bytes).expect("write");
        let msg = err_of(tmp.path());
        assert!(msg.contains("0003_drop_order_total.sql"), "{msg}");
        assert!(
            msg.contains("UTF-8") && msg.contains("byte offset 33"),
            "{msg}"
        );
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn transaction_control_is_marked_and_mixed_chunks_are_rejected() {
        let tmp = temp_copy(None);
        let f = tmp.path().join("0002_rename_full_name.sql");
        // One chunk holding BEGIN, a statement and COMMIT: cut into three, text kept.
        let text = "BEGIN;\nALTER TABLE \"users\" RENAME COLUMN a TO b;\nCOMMIT;";
        fs_err::write(&f, text).expect("write");
        let ms = read(tmp.path()).expect("reads");
        let m = &ms[2];
        let parts: Vec<(&str, Option<crate::source::TxControl>, u32)> = m
            .statements
            .iter()
            .map(|s| (s.sql.as_str(), s.control.clone(), s.line))
            .collect();
        use crate::source::TxControl::{Begin, Commit};
        assert_eq!(
            parts,
            [
                ("BEGIN;", Some(Begin), 1),
                ("\nALTER TABLE \"users\" RENAME COLUMN a TO b;\n", None, 2),
                ("COMMIT;", Some(Commit), 3)
            ]
        );
        assert!(m.commits_itself() && m.refused_control().is_none());
        assert_eq!(m.checksum, sha256_hex(text.as_bytes()));

        // A custom migration's COMMIT chunk, then CONCURRENTLY and CALL each in their own.
        fs_err::write(
            &f,
            "SELECT 1;--> statement-breakpoint\nCOMMIT;--> statement-breakpoint\nCREATE INDEX CONCURRENTLY i ON t (a);--> statement-breakpoint\nCALL p();",
        )
        .expect("write");
        let m = &read(tmp.path()).expect("reads")[2];
        let kinds: Vec<_> = m
            .statements
            .iter()
            .map(|s| (s.tx, s.control.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (TxRequirement::Any, None),
                (TxRequirement::Any, Some(Commit)),
                (TxRequirement::NoTransaction, None),
                (TxRequirement::MayCommit, None)
            ]
        );

        // ROLLBACK is read (status works) but refused to apply, naming the line.
        fs_err::write(&f, "SELECT 1;\n--> statement-breakpoint\nROLLBACK;").expect("write");
        let m = &read(tmp.path()).expect("reads")[2];
        let (stmt, kw) = m.refused_control().expect("refused");
        assert_eq!((kw, stmt.line), ("ROLLBACK", 3));
        assert!(m.control_refusal().expect("why").contains("`ROLLBACK`"));

        fs_err::write(
            &f,
            "CREATE TABLE t (a int);--> statement-breakpoint\nSELECT 1;\nCREATE INDEX CONCURRENTLY i ON t (a);",
        )
        .expect("write");
        let msg = err_of(tmp.path());
        assert!(msg.contains("0002_rename_full_name.sql"), "{msg}");
        assert!(
            msg.contains("line 3") && msg.contains("statement-breakpoint"),
            "{msg}"
        );

        // Alone in its chunk it is fine, and marked.
        fs_err::write(
            &f,
            "CREATE TABLE t (a int);--> statement-breakpoint\nCREATE INDEX CONCURRENTLY i ON t (a);",
        )
        .expect("write");
        let m = read(tmp.path()).expect("reads");
        assert_eq!(m[2].statements[1].tx, TxRequirement::NoTransaction);
    }

    #[test]
    fn crlf_checksum_variant() {
        assert_eq!(lf_normalized_checksum(b"a\nb"), None);
        assert_eq!(lf_normalized_checksum(b"a\r\nb"), Some(sha256_hex(b"a\nb")));
    }
}
