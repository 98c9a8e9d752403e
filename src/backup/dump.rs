//! The dumps of the `full` and `touched` strategies, written into a private folder.
//!
//! `full` is one `pg_dump --format=custom` of the target without the `pgship` schema;
//! `touched` is a schema-only dump plus a data-only dump of the touched tables, taken by the
//! same code as the rollback's restore method (`rollback::restore::dump_parts`). Every file is
//! created here, exclusively and without following symlinks (an existing file or a symlink
//! at the path is refused, naming it), mode 0600, and handed to pg_dump as its stdout; a
//! pg_dump that fails (a lock it may not wait for, a disk that fills up) or leaves an empty
//! file has its file removed, and the error names the file and pg_dump's last words with
//! passwords scrubbed. pg_dump gets the password through a passfile, never its arguments.
//!
//! The directory format with `--jobs` was measured against this on a pgbench scale-40
//! target (606 MB, 2 cores; `scripts/bench-backup`): custom 2.9-3.2 s, directory with
//! `--jobs=2` 2.6-3.3 s over three runs, the same 11 MB. Not adopted: one table holds almost
//! all the rows and pg_dump's jobs split the work by table, while the directory format gives
//! up the single sealed file.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BackupError, BackupFile, io_error};
use crate::db::DbUrl;
use crate::db::tools::BinDir;
use crate::rollback::restore::{Parts, Rows, dump_parts};
use crate::rollback::tools::Tools;

/// The file of a full backup.
pub const FULL: &str = "backup.dump";
/// The schema dump of a touched backup.
pub const SCHEMA: &str = "backup-schema.dump";
/// The data dump of a touched backup.
pub const DATA: &str = "backup-data.dump";

/// `pg_dump` of the whole target without the `pgship` schema into `dir/backup.dump`.
pub async fn full(
    url: &DbUrl,
    tools: &BinDir,
    dir: &Path,
    lock_wait: Duration,
) -> Result<BackupFile, BackupError> {
    private_folder(dir)?;
    let out = dir.join(FULL);
    let t = Tools {
        bin: tools,
        url,
        work_dir: dir,
    };
    let args = ["--exclude-schema=pgship".to_string()];
    t.pg_dump(
        "backing up the target (pg_dump, full)",
        &args,
        &out,
        Some(lock_wait),
    )
    .await?;
    measured(&out)
}

/// The target's schema into `dir/backup-schema.dump` and the rows of `tables` (schema,
/// table) into `dir/backup-data.dump` (no data file when `tables` is empty). A table that
/// does not exist is an error naming it (`--strict-names`).
pub async fn touched(
    url: &DbUrl,
    tools: &BinDir,
    dir: &Path,
    tables: &[(String, String)],
    lock_wait: Duration,
) -> Result<Vec<BackupFile>, BackupError> {
    private_folder(dir)?;
    let schema = dir.join(SCHEMA);
    let data = (!tables.is_empty()).then(|| dir.join(DATA));
    let t = Tools {
        bin: tools,
        url,
        work_dir: dir,
    };
    let parts = Parts {
        schema: &schema,
        data: data.as_deref().map(|d| (d, Rows::Of(tables))),
        lock_wait: Some(lock_wait),
        when: "for the backup",
    };
    dump_parts(&t, &parts).await?;
    let mut files = vec![measured(&schema)];
    if let Some(d) = &data {
        files.push(measured(d));
    }
    let files: Result<Vec<BackupFile>, BackupError> = files.into_iter().collect();
    if files.is_err() {
        remove_all(std::iter::once(&schema).chain(data.as_ref()));
    }
    files
}

/// The size of a finished dump; an empty one is removed and refused (pg_dump always writes
/// a header, so an empty file means its output was lost).
fn measured(path: &Path) -> Result<BackupFile, BackupError> {
    let bytes = std::fs::symlink_metadata(path)
        .map_err(|e| io_error(path, &e))?
        .len();
    if bytes == 0 {
        let _ = std::fs::remove_file(path);
        return Err(BackupError::Dump {
            step: format!("checking {}", path.display()),
            message: "pg_dump reported success but wrote nothing; the empty file was removed"
                .into(),
        });
    }
    Ok(BackupFile {
        path: path.to_path_buf(),
        bytes,
        sha256: String::new(),
    })
}

fn remove_all<'a>(paths: impl Iterator<Item = &'a PathBuf>) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// Remove what a killed run may have left in a backup folder: unfinished dumps
/// (`*.partial`, never a backup) and passfiles (`pgpass-*`, they hold the password). Returns
/// what was removed.
pub fn remove_leftovers(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, &e)),
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") || name.starts_with("pgpass-") {
            let p = e.path();
            std::fs::remove_file(&p).map_err(|err| io_error(&p, &err))?;
            removed.push(p);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Make `dir` a private folder: created 0700 when missing; an existing one must be a real
/// folder (not a symlink) owned by this user, and is made 0700.
pub fn private_folder(dir: &Path) -> Result<(), BackupError> {
    let refuse = |message: String| BackupError::Folder {
        path: dir.display().to_string(),
        message,
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| refuse(format!("cannot create it: {e}")))?;
            std::fs::symlink_metadata(dir).map_err(|e| refuse(e.to_string()))?
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symlink; refusing to write a backup through it".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a folder".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(refuse(format!(
            "it belongs to uid {}, not to this user (uid {me})",
            meta.uid()
        )));
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| refuse(format!("cannot make it 0700: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_made_private_and_symlinks_refused() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        private_folder(&fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700);
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_folder(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        let e = private_folder(&link).unwrap_err().to_string();
        assert!(e.contains("symlink") && e.contains("link"), "{e}");
        let file = root.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(private_folder(&file).is_err());
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed() {
        let root = tempfile::tempdir().unwrap();
        for n in [FULL, "backup.dump.partial", "pgpass-ab12", "manifest.json"] {
            std::fs::write(root.path().join(n), "x").unwrap();
        }
        let removed = remove_leftovers(root.path()).unwrap();
        assert_eq!(
            removed,
            [
                root.path().join("backup.dump.partial"),
                root.path().join("pgpass-ab12")
            ]
        );
        assert!(root.path().join(FULL).exists() && root.path().join("manifest.json").exists());
        assert!(
            remove_leftovers(&root.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn empty_dumps_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join(FULL);
        std::fs::write(&p, "").unwrap();
        let e = measured(&p).unwrap_err().to_string();
        assert!(e.contains("wrote nothing") && e.contains(FULL), "{e}");
        assert!(!p.exists());
        std::fs::write(&p, "PGDMP").unwrap();
        assert_eq!(measured(&p).unwrap().bytes, 5);
    }
}
