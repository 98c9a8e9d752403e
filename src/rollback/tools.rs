//! `pg_dump`, `pg_restore` and `psql` as child processes. Each gets a cleared environment, a
//! URL without the password, and a passfile written for the run in the private work folder
//! (0600, removed when the child ends); output files are created 0600 by pgship and handed to
//! the child as its stdout. What a child prints on stderr is kept (its last lines) with the
//! password replaced, for error messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::RollbackError;
use crate::db::tools::BinDir;
use crate::db::{DbUrl, child};

/// Lines of a child's stderr kept for an error message.
const KEPT_LINES: usize = 40;

/// How to run the tools against one database.
pub(crate) struct Tools<'a> {
    pub bin: &'a BinDir,
    pub url: &'a DbUrl,
    pub work_dir: &'a Path,
}

/// A finished child: its stderr (sanitised, last lines).
pub(crate) struct Ran {
    pub ok: bool,
    pub status: String,
    pub stderr: String,
}

impl Tools<'_> {
    fn secrets(&self) -> Vec<String> {
        child::secrets_of(&[self.url])
    }

    /// Run `program` with `args` (the connection added as `--dbname` when `connect`), its
    /// stdout into `stdout` (a new 0600 file) or discarded.
    pub async fn run(
        &self,
        program: &str,
        args: &[String],
        connect: bool,
        stdout: Option<&Path>,
    ) -> Result<Ran, RollbackError> {
        let Some(out) = stdout else {
            return self.run_into(program, args, connect, None).await;
        };
        let f = create_private(out)?;
        let ran = self.run_into(program, args, connect, Some(f)).await;
        if ran.is_err() {
            let _ = std::fs::remove_file(out);
        }
        ran
    }

    /// Run `program` with its stdout into `out` (an open file) or discarded.
    pub async fn run_into(
        &self,
        program: &str,
        args: &[String],
        connect: bool,
        out: Option<std::fs::File>,
    ) -> Result<Ran, RollbackError> {
        let path = self.bin.bin(program);
        if !path.is_file() {
            return Err(RollbackError::Tool {
                step: program.to_string(),
                message: format!(
                    "{} does not exist (pgship uses {program} from the same folder as pg_dump)",
                    path.display()
                ),
            });
        }
        let passfile = if connect {
            Some(Passfile::write(self.work_dir, self.url)?)
        } else {
            None
        };
        let mut c = Command::new(&path);
        c.env_clear().envs(child::base_env(self.url));
        if let Some(p) = &passfile {
            c.env("PGPASSFILE", &p.path);
        }
        c.args(args);
        if connect {
            c.arg(format!(
                "--dbname={}",
                child::child_url(self.url, self.bin.major)
            ));
        }
        c.stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match out {
            Some(f) => c.stdout(Stdio::from(f)),
            None => c.stdout(Stdio::null()),
        };
        let mut child = c.spawn().map_err(|e| RollbackError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut err = Vec::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_end(&mut err).await;
        }
        let status = child.wait().await.map_err(|e| RollbackError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        drop(passfile);
        Ok(Ran {
            ok: status.success(),
            status: status.to_string(),
            stderr: child::last_lines(
                &child::sanitise(&String::from_utf8_lossy(&err), &self.secrets()),
                KEPT_LINES,
            ),
        })
    }

    /// Run and require success; the error names `step` and carries the child's last words.
    pub async fn run_ok(
        &self,
        step: &str,
        program: &str,
        args: &[String],
        connect: bool,
        stdout: Option<&Path>,
    ) -> Result<Ran, RollbackError> {
        let ran = self.run(program, args, connect, stdout).await?;
        if !ran.ok {
            return Err(RollbackError::Tool {
                step: step.to_string(),
                message: format!("{program} {}: {}", ran.status, ran.stderr.trim()),
            });
        }
        Ok(ran)
    }

    /// `pg_dump --format=custom` of the database into `out`, a new file (0600; an existing
    /// file or a symlink at `out` is refused), never waiting longer than `lock_wait` for a
    /// table's lock. pg_dump writes `out.partial` (created exclusively); only a complete dump
    /// is synced and linked to `out` (a link never replaces what is there), so `out` never
    /// holds a partial dump, even when pgship is killed. A run that fails leaves no file
    /// behind (a disk that filled up makes pg_dump fail): the error names `step`, the file and
    /// pg_dump's last words.
    pub async fn pg_dump(
        &self,
        step: &str,
        args: &[String],
        out: &Path,
        lock_wait: Option<std::time::Duration>,
    ) -> Result<(), RollbackError> {
        let refused = |e: &std::io::Error| RollbackError::Io {
            path: out.display().to_string(),
            message: refusal(out, e),
        };
        if std::fs::symlink_metadata(out).is_ok() {
            return Err(refused(&std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        let mut all = vec!["--format=custom".to_string(), "--no-password".to_string()];
        if let Some(wait) = lock_wait {
            // 0 would mean "wait forever" to PostgreSQL.
            all.push(format!("--lock-wait-timeout={}ms", wait.as_millis().max(1)));
        }
        all.extend(args.iter().cloned());
        let mut partial = out.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let f = child::create_private(&partial).map_err(|e| RollbackError::Io {
            path: partial.display().to_string(),
            message: refusal(&partial, &e),
        })?;
        let ran = self.run_into("pg_dump", &all, true, Some(f)).await;
        let done = match ran {
            Ok(r) if r.ok => publish(&partial, out).map_err(|e| refused(&e)),
            Ok(r) => Err(RollbackError::Tool {
                step: step.to_string(),
                message: format!(
                    "pg_dump {} writing {} (the incomplete file was removed): {}",
                    r.status,
                    out.display(),
                    r.stderr.trim()
                ),
            }),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&partial);
        done
    }
}

/// Sync a finished file and give it its final name, which must not exist yet.
fn publish(partial: &Path, out: &Path) -> std::io::Result<()> {
    std::fs::File::open(partial)?.sync_all()?;
    std::fs::hard_link(partial, out)?;
    if let Some(dir) = out.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// A passfile for one child, removed when dropped.
struct Passfile {
    path: PathBuf,
}

impl Passfile {
    fn write(dir: &Path, url: &DbUrl) -> Result<Passfile, RollbackError> {
        let path = dir.join(format!("pgpass-{}", crate::util::random_hex(6)));
        let mut f = create_private(&path)?;
        f.write_all(child::passfile(&[url]).as_bytes())
            .map_err(|e| RollbackError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Passfile { path })
    }
}

impl Drop for Passfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why a new private file could not be created, in words that say what to do.
fn refusal(path: &Path, e: &std::io::Error) -> String {
    let link = e.raw_os_error() == Some(libc::ELOOP)
        || std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if link || e.kind() == std::io::ErrorKind::AlreadyExists {
        format!(
            "refusing to write it: a {} is already there (pgship only writes new files; remove it or use another folder)",
            if link { "symlink" } else { "file" }
        )
    } else {
        e.to_string()
    }
}

/// Create `path` for writing: mode 0600, failing if it exists or is a symlink.
pub(crate) fn create_private(path: &Path) -> Result<std::fs::File, RollbackError> {
    child::create_private(path).map_err(|e| RollbackError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Write a new private file.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), RollbackError> {
    let mut f = create_private(path)?;
    f.write_all(text.as_bytes()).map_err(|e| RollbackError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_never_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_private(&p, "x").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_private(&p, "y").is_err());
    }
}
