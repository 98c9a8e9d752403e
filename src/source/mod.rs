//! Migration sources: read a migrations folder (Drizzle 0.x journal, Drizzle v1 folders, or a
//! plain folder of SQL files) into one [`Migration`] type.
//!
//! This module does no database IO and never changes a file. Everything it returns is what the
//! apply engine sends, byte for byte: for Drizzle that means the file is split exactly where
//! drizzle-orm splits it (`--> statement-breakpoint`), so pgship and the app's own `migrate()`
//! agree on what ran. Malformed input is an error that names the file and the problem.

pub mod cut;
pub mod drizzle;
pub mod drizzle_config;
pub mod drizzle_v1;
pub mod split;
pub mod sql_dir;
pub mod text;

pub use text::SqlText;

use std::path::{Path, PathBuf};

/// Which kind of folder a source was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// drizzle-kit 0.x: `meta/_journal.json` + `<tag>.sql`.
    Drizzle,
    /// drizzle-kit v1: `<timestamp>_<name>/migration.sql`.
    DrizzleV1,
    /// `<version>_<name>.sql` with optional `<version>_<name>.down.sql`.
    Sql,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Drizzle => "drizzle",
            SourceKind::DrizzleV1 => "drizzle-v1",
            SourceKind::Sql => "sql",
        }
    }

    /// Drizzle kinds keep their state in drizzle's own table.
    pub fn is_drizzle(self) -> bool {
        matches!(self, SourceKind::Drizzle | SourceKind::DrizzleV1)
    }
}

/// Whether a statement may run inside a transaction block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxRequirement {
    /// Ordinary transactional SQL.
    Any,
    /// Refused by PostgreSQL inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ...).
    NoTransaction,
    /// `ALTER TYPE ... ADD VALUE`: refused in a transaction before PostgreSQL 12.
    NoTransactionBeforePg12,
    /// `CALL` or `DO`: runs in a transaction like any statement, but the procedure or block may
    /// `COMMIT` itself, which only works outside a transaction block. Where the migration runs
    /// in autocommit (after its own top-level `COMMIT`) it is sent outside any block.
    MayCommit,
}

impl TxRequirement {
    /// Can this statement run inside a transaction on a server of major version `major`?
    pub fn allows_transaction(self, major: u32) -> bool {
        match self {
            TxRequirement::Any | TxRequirement::MayCommit => true,
            TxRequirement::NoTransaction => false,
            TxRequirement::NoTransactionBeforePg12 => major >= 12,
        }
    }
}

/// One unit the engine sends as a single simple-protocol query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The exact text sent to the server (for Drizzle: the whole chunk between breakpoints):
    /// a piece of the file's text, which it shares (see [`SqlText`]).
    pub sql: SqlText,
    /// Byte offset of `sql` in the file.
    pub offset: usize,
    /// 1-based line in the file of the statement's first token (not of leading blank lines
    /// or comments).
    pub line: u32,
    /// Whether it may run inside a transaction.
    pub tx: TxRequirement,
    /// Set when the statement is top-level transaction control: then it is never sent as it
    /// is; the engine gives it its meaning (see [`TxControl`]).
    pub control: Option<TxControl>,
}

/// Top-level transaction control in a migration file, with the meaning PostgreSQL gives it
/// when the file runs inside a runner's transaction, as drizzle-orm's `migrate()` runs it
/// (see drizzle-facts.md §4b).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxControl {
    /// `BEGIN` / `START TRANSACTION`: opens a transaction when none is open (after a `COMMIT`);
    /// inside the runner's transaction it does nothing (PostgreSQL only warns).
    Begin,
    /// `COMMIT` / `END`: commits what ran so far; the statements after it run in autocommit,
    /// each committing on its own, until a `BEGIN`.
    Commit,
    /// `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`: they
    /// would throw away or hand off the runner's transaction. pgship reads such a file (so
    /// `status` works) but refuses to apply it. Holds the keyword(s).
    Refused(String),
}

impl TxControl {
    /// The control a transaction-control keyword (as [`split::transaction_control`] names it)
    /// stands for; `None` for `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`, which are ordinary
    /// statements inside a transaction.
    pub fn from_keyword(keyword: &str) -> Option<TxControl> {
        match keyword {
            "BEGIN" | "START TRANSACTION" => Some(TxControl::Begin),
            "COMMIT" | "END" => Some(TxControl::Commit),
            "SAVEPOINT" | "RELEASE" | "ROLLBACK TO" => None,
            other => Some(TxControl::Refused(other.to_string())),
        }
    }
}

/// How a migration is identified in state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationId {
    /// Drizzle: the journal's `when` (ms since the epoch), stored as `created_at`.
    Drizzle { when: i64 },
    /// SQL folder: the numeric version from the file name, kept as written (leading zeros
    /// included) and compared numerically.
    Sql { version: String },
}

/// A down (revert) script for a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownScript {
    pub path: PathBuf,
    /// The file's text, as [`Migration::raw`].
    pub raw: SqlText,
    pub statements: Vec<Statement>,
}

/// One migration, as read from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Drizzle: the journal tag (`0000_init`); SQL: the file stem (`001_create_users`).
    pub name: String,
    /// Position in run order, from 0.
    pub order: usize,
    pub id: MigrationId,
    /// sha256 hex of the raw file bytes (drizzle's definition; fixed for all kinds).
    pub checksum: String,
    /// The whole file, byte for byte (`raw.as_bytes()`: a file that is not UTF-8 is refused),
    /// held once: every statement's `sql` is a piece of it.
    pub raw: SqlText,
    pub path: PathBuf,
    pub statements: Vec<Statement>,
    pub down: Option<DownScript>,
}

impl Migration {
    /// The first statement whose transaction control pgship refuses to apply, with its keyword.
    pub fn refused_control(&self) -> Option<(&Statement, &str)> {
        self.statements.iter().find_map(|s| match &s.control {
            Some(TxControl::Refused(kw)) => Some((s, kw.as_str())),
            _ => None,
        })
    }

    /// sha256 hex of the file's bytes through the end of its first `done` statements (all of
    /// the file when `done` covers every statement; nothing when it is 0).
    pub fn prefix_hash(&self, done: usize) -> String {
        let end = match done.checked_sub(1).and_then(|i| self.statements.get(i)) {
            Some(s) => (s.offset + s.sql.len()).min(self.raw.len()),
            None if done == 0 => 0,
            None => self.raw.len(),
        };
        sha256_hex(&self.raw.as_bytes()[..end])
    }

    /// Whether the file commits on its own (a top-level `COMMIT`): then not all of it is atomic.
    pub fn commits_itself(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.control == Some(TxControl::Commit))
    }

    /// Why pgship will not apply this migration, if it holds transaction control pgship cannot
    /// honour; the statement's line is `refused_control().0.line`.
    pub fn control_refusal(&self) -> Option<String> {
        let (_, keyword) = self.refused_control()?;
        Some(format!(
            "`{keyword}` at the top level of a migration would throw away or hand off the \
             transaction the migration runs in, so pgship does not apply it (top-level BEGIN \
             and COMMIT are honoured; inside a transaction use SAVEPOINT and ROLLBACK TO)"
        ))
    }
}

/// Where a Drizzle source keeps its state (from `drizzle.config.ts`, with drizzle's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrizzleTable {
    pub schema: String,
    pub table: String,
}

impl Default for DrizzleTable {
    fn default() -> Self {
        DrizzleTable {
            schema: "drizzle".into(),
            table: "__drizzle_migrations".into(),
        }
    }
}

/// A source that was read and validated.
#[derive(Debug, Clone)]
pub struct Source {
    pub kind: SourceKind,
    pub dir: PathBuf,
    /// In run order.
    pub migrations: Vec<Migration>,
}

/// A problem with the migrations folder. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SourceError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Detect the kind of `dir` and read it.
pub fn read(dir: &Path) -> Result<Source, SourceError> {
    let kind = detect(dir)?;
    read_as(dir, kind)
}

/// Read `dir` as a source of the given kind.
pub fn read_as(dir: &Path, kind: SourceKind) -> Result<Source, SourceError> {
    let migrations = match kind {
        SourceKind::Drizzle => drizzle::read(dir)?,
        SourceKind::DrizzleV1 => drizzle_v1::read(dir)?,
        SourceKind::Sql => sql_dir::read(dir)?,
    };
    Ok(Source {
        kind,
        dir: dir.to_path_buf(),
        migrations,
    })
}

/// A migration's place in a source, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// As [`Migration::name`].
    pub name: String,
    pub path: PathBuf,
}

/// The migrations of `dir` read as a source of the given kind, in run order, checked as
/// [`read_as`] checks them by their names (journal, file names, folders) but not read: for
/// callers that read one file at a time.
pub fn list_as(dir: &Path, kind: SourceKind) -> Result<Vec<Listed>, SourceError> {
    Ok(match kind {
        SourceKind::Drizzle => drizzle::list(dir)?
            .into_iter()
            .map(|(e, path)| Listed { name: e.tag, path })
            .collect(),
        SourceKind::DrizzleV1 => drizzle_v1::list(dir)?
            .into_iter()
            .map(|(name, folder, _)| Listed {
                name,
                path: folder.join("migration.sql"),
            })
            .collect(),
        SourceKind::Sql => sql_dir::list(dir)?
            .into_iter()
            .map(|(f, path, _)| Listed { name: f.stem, path })
            .collect(),
    })
}

/// Tell which kind of migrations folder `dir` is.
///
/// `meta/_journal.json` means drizzle-kit 0.x; otherwise a subdirectory holding `migration.sql`
/// means drizzle-kit v1; otherwise any `*.sql` file means a plain SQL folder. Anything else is an
/// error, as is a `dir` that is missing or not a directory, and a `meta/` holding drizzle-kit's
/// JSON files without `_journal.json`: a drizzle folder whose journal was lost, which read as
/// plain SQL would run in another order and keep its state in another table.
pub fn detect(dir: &Path) -> Result<SourceKind, SourceError> {
    let meta = fs_err::metadata(dir).map_err(|e| SourceError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    if !meta.is_dir() {
        return Err(SourceError::invalid(dir, "not a directory"));
    }
    let journal = dir.join("meta").join("_journal.json");
    if journal.is_file() {
        return Ok(SourceKind::Drizzle);
    }
    let traces = drizzle_meta_files(&dir.join("meta"))?;
    if let Some(first) = traces.first() {
        let more = match traces.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return Err(SourceError::invalid(
            dir,
            format!(
                "meta/ holds drizzle-kit files ({first}{more}) but no meta/_journal.json{}: \
                 this is a drizzle migrations folder whose journal (the list and order of the \
                 migrations) is lost; restore meta/_journal.json, e.g. from version control",
                if journal.exists() { " file" } else { "" }
            ),
        ));
    }
    let mut has_sql = false;
    for entry in read_dir_sorted(dir)? {
        if entry.is_dir() {
            if entry.join("migration.sql").is_file() {
                return Ok(SourceKind::DrizzleV1);
            }
        } else if entry.is_file()
            && entry
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
        {
            has_sql = true;
        }
    }
    if has_sql {
        return Ok(SourceKind::Sql);
    }
    Err(SourceError::invalid(
        dir,
        "no migrations found: expected meta/_journal.json (drizzle-kit), \
         <timestamp>_<name>/migration.sql folders (drizzle-kit v1) or <version>_<name>.sql files",
    ))
}

/// The JSON files in a drizzle `meta/` folder (drizzle-kit writes only `_journal.json` and
/// `<n>_snapshot.json` there), by name; none when `meta` is not a folder.
fn drizzle_meta_files(meta: &Path) -> Result<Vec<String>, SourceError> {
    if !meta.is_dir() {
        return Ok(Vec::new());
    }
    Ok(read_dir_sorted(meta)?
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter(|n| n.to_ascii_lowercase().ends_with(".json"))
        .collect())
}

/// The entries of `dir` (full paths), sorted by file name so results never depend on the order
/// the file system lists them in.
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io = |e: std::io::Error| SourceError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io)? {
        out.push(entry.map_err(io)?.path());
    }
    out.sort();
    Ok(out)
}

/// If a drizzle `dialect` value (journal header or config) clearly names another database, its
/// name. drizzle-kit has written `"pg"` and `"postgresql"` for PostgreSQL, and drizzle-orm's
/// `migrate()` never reads the journal's field, so only a known other database is refused:
/// an unknown value is accepted as drizzle accepts it.
pub(crate) fn other_database_dialect(dialect: &str) -> Option<&'static str> {
    match dialect.trim().to_ascii_lowercase().as_str() {
        "mysql" | "mysql2" => Some("MySQL"),
        "sqlite" | "better-sqlite" | "libsql" | "turso" | "d1" => Some("SQLite"),
        "singlestore" => Some("SingleStore"),
        "gel" => Some("Gel"),
        "mssql" => Some("SQL Server"),
        "cockroach" | "cockroachdb" => Some("CockroachDB"),
        _ => None,
    }
}

/// sha256 of `bytes` as lowercase hex (drizzle's `hash`).
pub(crate) use crate::util::sha256_hex;

/// `bytes` as UTF-8, or an error naming `path`, the byte offset and the line of the first
/// invalid byte.
pub(crate) fn utf8_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, SourceError> {
    std::str::from_utf8(bytes).map_err(|e| not_utf8(path, bytes, &e))
}

/// The error for `bytes` (read from `path`) that are not UTF-8 where `e` says.
fn not_utf8(path: &Path, bytes: &[u8], e: &std::str::Utf8Error) -> SourceError {
    let at = e.valid_up_to();
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    SourceError::invalid(
        path,
        format!(
            "not valid UTF-8: invalid byte 0x{:02x} at byte offset {at} (line {line}); \
             migration files must be UTF-8 text",
            bytes.get(at).copied().unwrap_or(0)
        ),
    )
}

/// Read a whole migration file as text, kept once (the bytes read become the text without a
/// copy); the error names the path, and for a file that is not UTF-8 where it is not.
pub(crate) fn read_text(path: &Path) -> Result<SqlText, SourceError> {
    String::from_utf8(read_bytes(path)?)
        .map(SqlText::from)
        .map_err(|e| not_utf8(path, e.as_bytes(), &e.utf8_error()))
}

/// Read a whole file; the error names the path.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, SourceError> {
    fs_err::read(path).map_err(|e| SourceError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Give a migration's statements their final shape: top-level transaction control is cut out
/// of the unit it shares with other statements and marked (see [`TxControl`]), and a statement
/// that cannot run in a transaction block but shares one query string with others is refused
/// (PostgreSQL would refuse it: a multi-statement query string runs as one implicit
/// transaction). `text` is the whole file (for line numbers); `drizzle` picks the wording of the
/// hint. Transaction control is never refused here: reading must accept what drizzle applies.
pub(crate) fn prepare_statements(
    path: &Path,
    text: &str,
    units: Vec<split::Unit>,
    drizzle: bool,
) -> Result<Vec<Statement>, SourceError> {
    let units = split::separate_units(text, units);
    for unit in &units {
        check_unit(path, text, unit, drizzle)?;
    }
    Ok(units.into_iter().map(|u| u.stmt).collect())
}

/// Refuse a unit holding a statement that cannot run in a transaction block together with
/// other statements (see [`prepare_statements`]).
fn check_unit(
    path: &Path,
    text: &str,
    unit: &split::Unit,
    drizzle: bool,
) -> Result<(), SourceError> {
    let Some(bad) = unit.infos.as_deref().and_then(split::multi_offender) else {
        return Ok(());
    };
    let stmt = &unit.stmt;
    let line = split::line_at(text, stmt.offset + bad.offset);
    let why = bad.why.unwrap_or("this statement");
    let hint = if drizzle {
        "put a `--> statement-breakpoint` line between it and the other statements"
    } else {
        "end each statement with `;` so it is sent on its own"
    };
    Err(SourceError::invalid(
        path,
        format!(
            "line {line}: {why} cannot run inside a transaction block, but it is sent in one \
             query string together with other statements (starting at line {}), which \
             PostgreSQL runs as a single transaction; {hint}",
            stmt.line
        ),
    ))
}

/// Check a Drizzle migration's text (read from `path`) as [`read_as`] checks it, one chunk at
/// a time and keeping nothing: for callers that read files themselves (the linter).
pub fn check_drizzle_text(path: &Path, text: &str) -> Result<(), SourceError> {
    let mut lines = cut::LineCursor::new(text);
    let mut pieces = Vec::new();
    for unit in split::drizzle_units_lazily(text, |range| SqlText::from(&text[range])) {
        pieces.clear();
        split::separate_unit(&mut lines, unit, &mut pieces);
        for piece in &pieces {
            check_unit(path, text, piece, true)?;
        }
    }
    Ok(())
}

/// Builders for other modules' tests.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A SQL-folder migration `name` (version 1, file `name`) without statements, checksum or
    /// down script: tests set the fields they care about.
    pub fn migration(name: &str) -> Migration {
        Migration {
            name: name.into(),
            order: 0,
            id: MigrationId::Sql {
                version: "1".into(),
            },
            checksum: String::new(),
            raw: SqlText::default(),
            path: name.into(),
            statements: Vec::new(),
            down: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/drizzle-app");

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs_err::write(p, text).expect("write");
    }

    #[test]
    fn detects_each_kind() {
        let good = Path::new(APP).join("drizzle");
        assert_eq!(detect(&good).expect("detects"), SourceKind::Drizzle);
        let source = read(&good).expect("reads");
        assert_eq!(source.kind, SourceKind::Drizzle);
        assert_eq!(source.migrations.len(), 4);

        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "20250101000000_init/migration.sql", "SELECT 1;");
        write(tmp.path(), "README.md", "x");
        assert_eq!(detect(tmp.path()).expect("detects"), SourceKind::DrizzleV1);
        assert_eq!(read(tmp.path()).expect("reads").migrations.len(), 1);

        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "001_init.sql", "SELECT 1;");
        write(tmp.path(), "docs/notes.md", "x");
        assert_eq!(detect(tmp.path()).expect("detects"), SourceKind::Sql);
        assert_eq!(
            read(tmp.path()).expect("reads").migrations[0].name,
            "001_init"
        );
    }

    #[test]
    fn listing_names_what_reading_reads() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "10_b.sql", "SELECT 1;");
        write(tmp.path(), "2_a.sql", "SELECT 2;");
        write(tmp.path(), "2_a.down.sql", "SELECT 3;");
        let v1 = tempfile::tempdir().expect("tempdir");
        write(v1.path(), "20250102000000_b/migration.sql", "SELECT 1;");
        write(v1.path(), "20250101000000_a/migration.sql", "SELECT 2;");
        for (dir, kind) in [
            (Path::new(APP).join("drizzle"), SourceKind::Drizzle),
            (v1.path().to_path_buf(), SourceKind::DrizzleV1),
            (tmp.path().to_path_buf(), SourceKind::Sql),
        ] {
            let read: Vec<Listed> = read_as(&dir, kind)
                .expect("reads")
                .migrations
                .into_iter()
                .map(|m| Listed {
                    name: m.name,
                    path: m.path,
                })
                .collect();
            assert_eq!(list_as(&dir, kind).expect("lists"), read, "{kind:?}");
            assert!(!read.is_empty());
        }
        // Names are checked when listing, contents are not read.
        write(tmp.path(), "3_c.sql", "SELECT 'open;");
        assert!(read_as(tmp.path(), SourceKind::Sql).is_err());
        assert_eq!(
            list_as(tmp.path(), SourceKind::Sql).expect("lists").len(),
            3
        );
        write(tmp.path(), "x.sql", "SELECT 1;");
        assert!(list_as(tmp.path(), SourceKind::Sql).is_err());
    }

    #[test]
    fn statements_are_pieces_of_the_file_held_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let text =
            "BEGIN;\nCREATE TABLE a (x int);\nCOMMIT;\n--> statement-breakpoint\nSELECT 1;\n";
        write(tmp.path(), "20250101000000_init/migration.sql", text);
        let m = &read(tmp.path()).expect("reads").migrations[0];
        assert_eq!(m.raw, text);
        assert_eq!(m.checksum, sha256_hex(text.as_bytes()));
        let sent: Vec<&str> = m.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sent,
            [
                "BEGIN;",
                "\nCREATE TABLE a (x int);\n",
                "COMMIT;",
                "\nSELECT 1;\n"
            ]
        );
        for s in &m.statements {
            assert!(
                s.sql.is_piece_of(&m.raw),
                "{:?} is not a piece of the file",
                s.sql
            );
            assert_eq!(&text[s.offset..s.offset + s.sql.len()], s.sql);
        }
        assert_eq!(m.prefix_hash(2), sha256_hex(&text.as_bytes()[..31]));
    }

    #[test]
    fn a_drizzle_text_is_checked_as_it_is_read() {
        let path = Path::new("0001_x.sql");
        let ok =
            "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\n--> statement-breakpoint\nSELECT 1;";
        assert!(check_drizzle_text(path, ok).is_ok());
        let bad = "SELECT 1;\n--> statement-breakpoint\nCREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);";
        let msg = check_drizzle_text(path, bad)
            .expect_err("refused")
            .to_string();
        assert!(
            msg.contains("0001_x.sql: line 4: CREATE INDEX CONCURRENTLY"),
            "{msg}"
        );
    }

    #[test]
    fn detect_errors_name_the_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "README.md", "x");
        let msg = detect(tmp.path()).expect_err("empty").to_string();
        assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
        assert!(
            msg.contains("no migrations found") && msg.contains("meta/_journal.json"),
            "{msg}"
        );

        let missing = tmp.path().join("nope");
        let msg = detect(&missing).expect_err("missing").to_string();
        assert!(msg.contains("nope"), "{msg}");

        let file = tmp.path().join("README.md");
        let msg = detect(&file).expect_err("file").to_string();
        assert!(
            msg.contains("README.md") && msg.contains("not a directory"),
            "{msg}"
        );
    }

    #[test]
    fn sha256_hex_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
