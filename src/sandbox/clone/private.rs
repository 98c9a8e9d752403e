//! Private files of a clone: a 0700 folder under pgship's temp root for the passfile and the
//! post-data archive (removed when the clone ends, and by the next clone or `sandbox gc` if
//! pgship was killed), and the optional `clone.dump` (0600, never overwriting, never through a
//! symlink). `plan` keeps its rehearsal's files (the target's schema dump) in such a folder too.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::CloneError;

/// The folder's name is `clone-<pid>-<random>`, the pid of the pgship process that made it.
pub(crate) const PREFIX: &str = "clone-";

/// A folder only pgship's user can enter, removed on drop.
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    pub fn create() -> Result<PrivateDir, CloneError> {
        let root = crate::cluster::temp_root().map_err(|e| CloneError::Io {
            path: std::env::temp_dir().display().to_string(),
            message: e.to_string(),
        })?;
        let path = root.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            crate::util::random_hex(6)
        ));
        // `create` (not `create_all`) fails if the name exists, so nobody can plant it.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| io_error(&path, &e))?;
        Ok(PrivateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write a new 0600 file in the folder.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, CloneError> {
        let path = self.path.join(name);
        let mut f = create_private(&path)?;
        f.write_all(bytes).map_err(|e| io_error(&path, &e))?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Create `path` for writing: mode 0600, failing if it exists or is a symlink.
pub(crate) fn create_private(path: &Path) -> Result<std::fs::File, CloneError> {
    crate::db::child::create_private(path).map_err(|e| io_error(path, &e))
}

/// The kept dump file.
pub(crate) fn create_dump_file(path: &Path) -> Result<std::fs::File, CloneError> {
    create_private(path)
}

pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> CloneError {
    CloneError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Remove the folders of clones whose pgship process is gone (killed before its guard ran).
pub(crate) fn sweep() {
    for (path, pid) in crate::cluster::run_folders(PREFIX) {
        if pid.is_some_and(|p| !crate::cluster::process_alive(p)) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_and_files() {
        let dir = PrivateDir::create().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let f = dir.write("pgpass", b"x").unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(dir.write("pgpass", b"y").is_err(), "never overwrites");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(create_private(&link).is_err(), "never follows a symlink");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn sweep_removes_dead_owners_only() {
        let root = crate::cluster::temp_root().unwrap();
        // pid 0x7ffffff0 does not exist (above the default pid_max).
        let dead = root.join(format!(
            "{PREFIX}2147483632-test{}",
            crate::util::random_hex(3)
        ));
        let live = root.join(format!(
            "{PREFIX}{}-test{}",
            std::process::id(),
            crate::util::random_hex(3)
        ));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&live).unwrap();
        sweep();
        assert!(!dead.exists());
        assert!(live.exists());
        std::fs::remove_dir(&live).unwrap();
    }
}
