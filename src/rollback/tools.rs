//! `pg_dump`, `pg_restore` and `psql` as child processes. Each gets a cleared environment, a
//! URL without the password, and a passfile written for the run in the private work folder
//! (0600, removed when the child ends); output files are created 0600 by pgship and handed to
//! the child as its stdout. What a child prints on stderr is kept (its last lines) with the
//! password replaced, for error messages.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::RollbackError;
use crate::db::DbUrl;
use crate::db::tools::BinDir;

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
        self.url
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .filter(|p| !p.is_empty())
            .into_iter()
            .collect()
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
        c.env_clear();
        for keep in ["HOME", "PATH", "TMPDIR"] {
            if let Ok(v) = std::env::var(keep) {
                c.env(keep, v);
            }
        }
        c.env("LC_ALL", "C")
            .env("PGAPPNAME", crate::db::connect::APPLICATION_NAME)
            .env(
                "PGCONNECT_TIMEOUT",
                self.url.connect_timeout.unwrap_or(10).to_string(),
            );
        if let Some(p) = &passfile {
            c.env("PGPASSFILE", &p.path);
        }
        c.args(args);
        if connect {
            c.arg(format!("--dbname={}", child_url(self.url, self.bin.major)));
        }
        c.stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match stdout {
            Some(out) => {
                let f = create_private(out)?;
                c.stdout(Stdio::from(f));
            }
            None => {
                c.stdout(Stdio::null());
            }
        }
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
            stderr: sanitise(&String::from_utf8_lossy(&err), &self.secrets()),
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
}

/// A passfile for one child, removed when dropped.
struct Passfile {
    path: PathBuf,
}

impl Passfile {
    fn write(dir: &Path, url: &DbUrl) -> Result<Passfile, RollbackError> {
        let path = dir.join(format!("pgpass-{}", crate::util::random_hex(6)));
        let mut f = create_private(&path)?;
        f.write_all(passfile_text(url).as_bytes())
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

/// Create `path` for writing: mode 0600, failing if it exists or is a symlink.
pub(crate) fn create_private(path: &Path) -> Result<std::fs::File, RollbackError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| RollbackError::Io {
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

/// The user pgship connects as when the URL names none (as `db::connect` does).
fn user_of(url: &DbUrl) -> String {
    url.user.clone().unwrap_or_else(|| {
        std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into())
    })
}

/// The passfile lines for `url`: every host of the URL with its password, then the user's
/// own passfile when the URL carries no password.
fn passfile_text(url: &DbUrl) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    let Some(password) = &url.password else {
        let own = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")));
        return own
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
    };
    let user = user_of(url);
    let mut out = String::new();
    let hosts: Vec<(String, String)> = if url.hosts.is_empty() {
        vec![("localhost".into(), "*".into())]
    } else {
        url.hosts
            .iter()
            .map(|h| {
                let host = if h.host.starts_with('/') || h.host.is_empty() {
                    "localhost".to_string()
                } else {
                    h.host.clone()
                };
                (host, h.port.map_or("*".into(), |p| p.to_string()))
            })
            .collect()
    };
    for (host, port) in hosts {
        out.push_str(&format!(
            "{}:{port}:*:{}:{}\n",
            esc(&host),
            esc(&user),
            esc(password.expose())
        ));
    }
    out
}

/// The URL a child connects with: no password, an explicit user, and with `verify-*` but no
/// `sslrootcert` the system's roots (libpq 16+), as pgship's own connections verify.
fn child_url(url: &DbUrl, tools_major: u32) -> String {
    let mut u = url.clone();
    u.password = None;
    u.user = Some(user_of(url));
    let mut s = u.expose();
    let verify = matches!(
        url.sslmode,
        crate::db::url::SslMode::VerifyCa | crate::db::url::SslMode::VerifyFull
    );
    if verify && url.sslrootcert.is_none() && tools_major >= 16 {
        s.push(if s.contains('?') { '&' } else { '?' });
        s.push_str("sslrootcert=system");
    }
    s
}

/// Passwords replaced by `***`, control characters dropped, the last lines kept.
pub(crate) fn sanitise(text: &str, secrets: &[String]) -> String {
    let mut s = text.to_string();
    for secret in secrets {
        s = s.replace(secret.as_str(), "***");
    }
    let lines: Vec<String> = s
        .lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .take(500)
                .collect()
        })
        .collect();
    let skip = lines.len().saturating_sub(KEPT_LINES);
    lines[skip..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passfile_and_child_url_keep_the_password_out_of_arguments() {
        let u =
            DbUrl::parse("postgres://app:p%3Aw%5Cd@db.example.com:6543/x?sslmode=require").unwrap();
        assert_eq!(passfile_text(&u), "db.example.com:6543:*:app:p\\:w\\\\d\n");
        let s = child_url(&u, 15);
        assert_eq!(s, "postgres://app@db.example.com:6543/x?sslmode=require");
        let v = DbUrl::parse("postgres://app:hunter2@db/x?sslmode=verify-full").unwrap();
        assert!(child_url(&v, 16).ends_with("sslrootcert=system"));
        assert!(!child_url(&v, 16).contains("hunter2"));
    }

    #[test]
    fn sanitising_replaces_secrets_and_keeps_the_tail() {
        let text = (0..100)
            .map(|i| format!("line {i} s3cret\u{1b}"))
            .collect::<Vec<_>>()
            .join("\n");
        let s = sanitise(&text, &["s3cret".into()]);
        assert_eq!(s.lines().count(), KEPT_LINES);
        assert!(s.ends_with("line 99 ***"));
        assert!(!s.contains("s3cret"));
    }

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
