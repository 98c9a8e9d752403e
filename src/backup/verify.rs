//! Sealing a backup and checking a sealed one.
//!
//! [`seal`] accepts a dump only when `pg_restore --list` reads it (exit status 0) and it is
//! not empty, hashes it (sha256), counts the rows of every table whose data it holds on the
//! target (exact `count(*)`), and writes `manifest.json` beside the files: new, 0600, with the
//! strategy, each file's name, size and hash, the pg_dump and server versions, the database,
//! the WAL position and the time. Only a sealed backup is a backup.
//!
//! [`check`] re-reads the manifest and re-hashes every file: a missing, truncated, extended
//! or altered file is an error naming it. `pg_restore --list` alone cannot tell (it accepts a
//! truncated archive, and a flipped byte in uncompressed data restores without complaint), so
//! the hash is the check. Nothing here prints or holds a password; the manifest names files,
//! never the URL.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BackupError, BackupFile, Strategy, io_error};
use crate::db::tools::BinDir;
use crate::db::{ConnectOptions, DbError, DbUrl, connect, quote_ident};
use crate::rollback::toc;
use crate::rollback::tools::{Tools, write_private};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// The first bytes read for a TOC; doubled while the TOC runs past them.
const TOC_PREFIX: usize = 1 << 20;
/// The largest TOC prefix read (a dump with more than this of TOC is not from pgship).
const TOC_MAX: usize = 256 << 20;

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format of this file.
    pub version: u32,
    pub strategy: Strategy,
    pub files: Vec<ManifestFile>,
    pub pg_dump_version: String,
    pub server_version: String,
    /// The target database's name.
    pub database: String,
    /// `pg_current_wal_lsn()` when sealed (`None` on a standby or without the right).
    pub wal_lsn: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Every table whose rows a file holds, with its row count on the target when sealed.
    pub tables: Vec<TableRows>,
}

/// One sealed file, named relative to the manifest's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// Entries in its table of contents.
    pub entries: usize,
}

/// A table whose rows a dump holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub schema: String,
    pub table: String,
    pub rows: i64,
    /// The file holding them.
    pub file: String,
}

impl TableRows {
    pub fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl Manifest {
    /// The files with their full paths in `dir`.
    pub fn backup_files(&self, dir: &Path) -> Vec<BackupFile> {
        self.files
            .iter()
            .map(|f| BackupFile {
                path: dir.join(&f.name),
                bytes: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect()
    }
}

/// Verify `files` (in `dir`), count the rows they hold on the target, and write
/// `dir/manifest.json`.
pub async fn seal(
    url: &DbUrl,
    tools: &BinDir,
    files: Vec<BackupFile>,
    dir: &Path,
    strategy: Strategy,
) -> Result<Manifest, BackupError> {
    let t = Tools {
        bin: tools,
        url,
        work_dir: dir,
    };
    let mut sealed = Vec::new();
    let mut data: Vec<(String, String, String)> = Vec::new();
    for f in &files {
        let name = file_name(&f.path, dir)?;
        let ran = t
            .run(
                "pg_restore",
                &["--list".into(), path_arg(&f.path)],
                false,
                None,
            )
            .await?;
        if !ran.ok {
            return Err(BackupError::Unreadable {
                file: f.path.display().to_string(),
                message: format!("pg_restore --list {}: {}", ran.status, ran.stderr.trim()),
            });
        }
        let entries = read_toc(&f.path)?;
        let (bytes, sha256) = hash_file(&f.path).await?;
        if bytes == 0 || (f.bytes != 0 && bytes != f.bytes) {
            return Err(BackupError::Mismatch {
                file: f.path.display().to_string(),
                message: format!("{bytes} bytes now, {} when pg_dump finished", f.bytes),
            });
        }
        for e in entries.iter().filter(|e| e.desc == "TABLE DATA") {
            let schema = e.namespace.clone().unwrap_or_default();
            data.push((schema, e.tag.clone(), name.clone()));
        }
        sealed.push(ManifestFile {
            name,
            bytes,
            sha256,
            entries: entries.len(),
        });
    }
    let target = target_facts(url, &data).await?;
    let manifest = Manifest {
        version: 1,
        strategy,
        files: sealed,
        pg_dump_version: tools.version.clone(),
        server_version: target.version,
        database: target.database,
        wal_lsn: target.lsn,
        created_at: jiff::Timestamp::now().to_string(),
        tables: target.tables,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BackupError::Invalid(format!("writing the manifest: {e}")))?;
    write_private(&dir.join(MANIFEST), &format!("{text}\n"))?;
    Ok(manifest)
}

/// What the target says at sealing time.
struct TargetFacts {
    version: String,
    database: String,
    lsn: Option<String>,
    tables: Vec<TableRows>,
}

/// The server's version, database, WAL position and the exact row count of each table.
async fn target_facts(
    url: &DbUrl,
    data: &[(String, String, String)],
) -> Result<TargetFacts, BackupError> {
    let conn = connect(url, &ConnectOptions::default()).await?;
    let c = &conn.client;
    let q = |ctx: &str, e: &tokio_postgres::Error| BackupError::Db(DbError::query(ctx, e));
    let row = c
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(|e| q("reading the database name", &e))?;
    let database: String = row.get(0);
    let lsn = match c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await {
        Ok(r) => r.get::<_, Option<String>>(0),
        Err(_) => None,
    };
    let mut tables = Vec::with_capacity(data.len());
    for (schema, table, file) in data {
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            quote_ident(schema),
            quote_ident(table)
        );
        let row = c
            .query_one(&sql, &[])
            .await
            .map_err(|e| q(&format!("counting the rows of {schema}.{table}"), &e))?;
        tables.push(TableRows {
            schema: schema.clone(),
            table: table.clone(),
            rows: row.get(0),
            file: file.clone(),
        });
    }
    Ok(TargetFacts {
        version: conn.version.text.clone(),
        database,
        lsn,
        tables,
    })
}

/// Re-read `dir/manifest.json` and re-hash every file it names: any difference (missing,
/// truncated, extended, altered, not a regular file) is an error naming the file.
pub fn check(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    let manifest = read_manifest(&path)?;
    for f in &manifest.files {
        let p = dir.join(&f.name);
        let bad = |message: String| BackupError::Mismatch {
            file: p.display().to_string(),
            message,
        };
        let meta =
            std::fs::symlink_metadata(&p).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(bad("it is not a regular file".into()));
        }
        if meta.len() != f.bytes {
            return Err(bad(format!(
                "{} bytes, the manifest says {} (truncated or extended)",
                meta.len(),
                f.bytes
            )));
        }
        let (_, sha256) = hash_sync(&p)?;
        if sha256 != f.sha256 {
            return Err(bad(format!(
                "sha256 {sha256}, the manifest says {} (the file was altered)",
                f.sha256
            )));
        }
    }
    Ok(manifest)
}

fn read_manifest(path: &Path) -> Result<Manifest, BackupError> {
    let err = |message: String| BackupError::Manifest {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(err("it is not a regular file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| err(format!("not a pgship backup manifest: {e}")))?;
    if m.version != 1 {
        return Err(err(format!(
            "manifest version {} is not supported",
            m.version
        )));
    }
    if m.files.is_empty() {
        return Err(err("it names no file".into()));
    }
    for f in &m.files {
        if !is_plain_name(&f.name) {
            return Err(err(format!(
                "file name `{}` is not a plain name in the backup folder",
                f.name.escape_debug()
            )));
        }
    }
    Ok(m)
}

/// A name without folders, `..` or control characters.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// The file's name, which must be directly in `dir`.
fn file_name(path: &Path, dir: &Path) -> Result<String, BackupError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| is_plain_name(n));
    match name {
        Some(n) if path.parent() == Some(dir) => Ok(n),
        _ => Err(BackupError::Invalid(format!(
            "{} is not a file directly in the backup folder {}",
            path.display(),
            dir.display()
        ))),
    }
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// The archive's TOC, reading only as much of the file as the TOC takes.
pub fn read_toc(path: &Path) -> Result<Vec<toc::Entry>, BackupError> {
    let mut f = std::fs::File::open(path).map_err(|e| io_error(path, &e))?;
    let mut buf = Vec::new();
    let mut want = TOC_PREFIX;
    loop {
        let have = buf.len();
        (&mut f)
            .take((want - have) as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(path, &e))?;
        match toc::parse(&buf) {
            Ok(entries) => return Ok(entries),
            Err(m) if m.contains("ends") && buf.len() == want && want < TOC_MAX => want *= 2,
            Err(m) => {
                return Err(BackupError::Unreadable {
                    file: path.display().to_string(),
                    message: m,
                });
            }
        }
    }
}

async fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let p: PathBuf = path.to_path_buf();
    tokio::task::spawn_blocking(move || hash_sync(&p))
        .await
        .map_err(|e| BackupError::Invalid(format!("hashing {}: {e}", path.display())))?
}

/// Size and hex sha256, read in 1 MiB pieces.
fn hash_sync(path: &Path) -> Result<(u64, String), BackupError> {
    crate::util::sha256_file(path).map_err(|e| io_error(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(
            hash_sync(&p).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string()
            )
        );
    }

    #[test]
    fn manifests_name_only_plain_files() {
        assert!(is_plain_name("backup.dump"));
        for bad in ["", ".", "..", "../x", "a/b", "a\nb"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        let dir = Path::new("/b");
        assert_eq!(file_name(Path::new("/b/x.dump"), dir).unwrap(), "x.dump");
        assert!(file_name(Path::new("/c/x.dump"), dir).is_err());
    }

    #[test]
    fn tampered_manifests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains(MANIFEST), "{e}");
        let m = dir.path().join(MANIFEST);
        std::fs::write(
            &m,
            r#"{"version":1,"strategy":"full","files":[{"name":"../etc","bytes":1,"sha256":"x","entries":1}],
            "pg_dump_version":"15","server_version":"15","database":"d","wal_lsn":null,"created_at":"t","tables":[]}"#,
        )
        .unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a plain name"), "{e}");
    }
}
