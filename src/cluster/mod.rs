//! Throwaway local PostgreSQL clusters: `pgship demo` runs on one, tests use them for other
//! PostgreSQL majors, and the sandbox will clone targets into them.
//!
//! A cluster lives in its own folder under pgship's temp root (`$TMPDIR/pgship`), listens on
//! 127.0.0.1 on a free port with its socket in that folder, uses a random password with SCRAM
//! (it may hold copies of real data), and is tuned for throwaway use (no fsync, minimal WAL, no
//! autovacuum). It is stopped and its folder removed when the value is dropped; `owner.json`
//! records the owning pid so leftovers of killed runs can be found. initdb and postgres refuse
//! to run as root, so when pgship runs as root they run as the `postgres` user (or
//! `$PGSHIP_CLUSTER_USER`).

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::db::tools::{self, BinDir};
use crate::db::url::{DbUrl, Secret};

/// What went wrong with a throwaway cluster.
#[derive(Debug, thiserror::Error)]
#[error("throwaway cluster: {0}")]
pub struct ClusterError(pub String);

/// How to build a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Use these binaries instead of searching.
    pub bin: Option<BinDir>,
    /// The oldest acceptable major version.
    pub min_major: Option<u32>,
    /// Extra `postgresql.conf` settings.
    pub settings: Vec<(String, String)>,
    /// Certificate and key files (PEM) to serve TLS with.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct LocalCluster {
    pub dir: PathBuf,
    pub port: u16,
    pub bin: BinDir,
    password: Secret,
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl LocalCluster {
    /// initdb and start a cluster.
    pub fn start(opts: &ClusterOptions) -> Result<LocalCluster, ClusterError> {
        let bin = match &opts.bin {
            Some(b) => b.clone(),
            None => {
                let cands = tools::candidates(&["initdb", "pg_ctl", "postgres"]);
                tools::choose(&cands, opts.min_major).ok_or_else(|| {
                    ClusterError(format!(
                        "no PostgreSQL server binaries (initdb, pg_ctl, postgres){} found in $PGSHIP_PG_BIN, /usr/lib/postgresql/*/bin or PATH; install postgresql",
                        opts.min_major.map(|m| format!(" of major {m} or newer")).unwrap_or_default()
                    ))
                })?
            }
        };
        let run_as = run_as_user()?;
        let root = temp_root()?;
        let dir = root.join(format!(
            "cluster-{}-{}",
            std::process::id(),
            crate::util::random_hex(4)
        ));
        mkdir(&dir, 0o700)?;
        let mut cluster = LocalCluster {
            dir,
            port: 0,
            bin,
            password: Secret::new(crate::util::random_hex(16)),
            run_as,
            stopped: false,
        };
        cluster.write_owner()?;
        cluster.init(opts)?;
        cluster.launch()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.bin(program));
        c.env("LC_ALL", "C")
            .env_remove("PGPASSWORD")
            .env_remove("PGDATA");
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| ClusterError(format!("chown {}: {e}", path.display())))?;
        }
        Ok(())
    }

    fn write_owner(&self) -> Result<(), ClusterError> {
        let owner = serde_json::json!({
            "pid": std::process::id(),
            "started_at": jiff::Timestamp::now().to_string(),
            "bin": self.bin.dir,
        });
        std::fs::write(self.dir.join("owner.json"), owner.to_string())
            .map_err(|e| ClusterError(format!("{}: {e}", self.dir.display())))
    }

    fn init(&mut self, opts: &ClusterOptions) -> Result<(), ClusterError> {
        self.chown(&self.dir)?;
        let sock = self.dir.join("sock");
        mkdir(&sock, 0o700)?;
        self.chown(&sock)?;
        // The password reaches initdb through a private file, never its arguments.
        let pwfile = self.dir.join("pwfile");
        write_private(&pwfile, self.password.expose().as_bytes())?;
        self.chown(&pwfile)?;
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| ClusterError(format!("cannot run initdb: {e}")));
        let _ = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(ClusterError(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mem_mb = (total_memory_mb() / 16).clamp(64, 1024);
        let mut conf = format!(
            "\n# pgship throwaway cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nwal_level = minimal\nmax_wal_senders = 0\n\
             autovacuum = off\nshared_buffers = 64MB\nmaintenance_work_mem = {mem_mb}MB\nmax_connections = 60\n",
            sock.display().to_string().replace('\'', "''")
        );
        if let Some((cert, key)) = &opts.tls {
            for (src, name) in [(cert, "server.crt"), (key, "server.key")] {
                let dst = self.data().join(name);
                std::fs::copy(src, &dst)
                    .map_err(|e| ClusterError(format!("{}: {e}", src.display())))?;
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| ClusterError(format!("{}: {e}", dst.display())))?;
                self.chown(&dst)?;
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        for (k, v) in &opts.settings {
            conf.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        let path = self.data().join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| ClusterError(format!("{}: {e}", path.display())))?;
        f.write_all(conf.as_bytes())
            .map_err(|e| ClusterError(format!("{}: {e}", path.display())))
    }

    fn launch(&mut self) -> Result<(), ClusterError> {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            let log = self.dir.join("server.log");
            let out = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {}", self.port))
                .arg("start")
                .output()
                .map_err(|e| ClusterError(format!("cannot run pg_ctl: {e}")))?;
            if out.status.success() {
                return Ok(());
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
            if !last.contains("could not bind") && !last.contains("already in use") {
                break;
            }
        }
        Err(ClusterError(format!(
            "the server did not start:\n{}",
            last.trim()
        )))
    }

    /// The URL of database `dbname` on this cluster (user `postgres`).
    pub fn url(&self, dbname: &str) -> DbUrl {
        let raw = format!(
            "postgres://postgres:{}@127.0.0.1:{}/{}?sslmode=disable",
            self.password.expose(),
            self.port,
            dbname
        );
        DbUrl::parse(&raw).expect("a throwaway cluster URL always parses")
    }

    /// The same URL with TLS options instead of `sslmode=disable`, for TLS tests.
    pub fn url_with(&self, dbname: &str, query: &str) -> DbUrl {
        let raw = format!(
            "postgres://postgres:{}@localhost:{}/{}?{query}",
            self.password.expose(),
            self.port,
            dbname
        );
        DbUrl::parse(&raw).expect("a throwaway cluster URL always parses")
    }

    /// Stop the server and remove the folder. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster left running on purpose (`sandbox create` keeps its sandbox), or found by
/// [`leftovers`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeptCluster {
    pub dir: PathBuf,
    pub port: u16,
    pub bin: PathBuf,
}

impl LocalCluster {
    /// Leave the cluster running after this value is dropped: `owner.json` records it as kept,
    /// so `sandbox gc` leaves it alone until `sandbox drop` removes it.
    pub fn keep(mut self) -> Result<KeptCluster, ClusterError> {
        let owner = serde_json::json!({
            "pid": std::process::id(),
            "started_at": jiff::Timestamp::now().to_string(),
            "bin": self.bin.dir,
            "kept": true,
            "port": self.port,
        });
        std::fs::write(self.dir.join("owner.json"), owner.to_string())
            .map_err(|e| ClusterError(format!("{}: {e}", self.dir.display())))?;
        self.stopped = true;
        Ok(KeptCluster {
            dir: self.dir.clone(),
            port: self.port,
            bin: self.bin.dir.clone(),
        })
    }
}

/// A cluster folder in pgship's temp root.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub dir: PathBuf,
    pub pid: Option<u32>,
    /// The owning process still runs.
    pub alive: bool,
    pub kept: bool,
    pub bin: Option<PathBuf>,
}

/// Every cluster folder in pgship's temp root, with whether its owner is still alive.
pub fn leftovers() -> Vec<Leftover> {
    let Ok(root) = temp_root() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_name().to_string_lossy().starts_with("cluster-") || !dir.is_dir() {
            continue;
        }
        let owner: serde_json::Value = std::fs::read_to_string(dir.join("owner.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let pid = owner["pid"].as_u64().map(|p| p as u32);
        out.push(Leftover {
            alive: pid.is_some_and(process_alive),
            pid,
            kept: owner["kept"].as_bool().unwrap_or(false),
            bin: owner["bin"].as_str().map(PathBuf::from),
            dir,
        });
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// Whether process `pid` exists (signal 0).
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Stop the server of a cluster folder (if running) and remove the folder.
pub fn remove_dir(dir: &Path, bin: Option<&Path>) -> Result<(), ClusterError> {
    let data = dir.join("data");
    if data.join("postmaster.pid").exists() {
        let bin = bin
            .map(Path::to_path_buf)
            .or_else(|| {
                tools::candidates(&["pg_ctl"])
                    .first()
                    .map(|b| b.dir.clone())
            })
            .ok_or_else(|| ClusterError("no pg_ctl found to stop the cluster".into()))?;
        let mut c = Command::new(bin.join("pg_ctl"));
        c.env("LC_ALL", "C")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"]);
        if let Some((uid, gid)) = run_as_user()? {
            c.uid(uid).gid(gid);
        }
        let _ = c.output();
    }
    std::fs::remove_dir_all(dir).map_err(|e| ClusterError(format!("{}: {e}", dir.display())))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `$TMPDIR/pgship`, created if needed and traversable by the cluster user.
pub fn temp_root() -> Result<PathBuf, ClusterError> {
    let root = std::env::temp_dir().join("pgship");
    if !root.exists() {
        mkdir(&root, 0o1777)?;
    }
    Ok(root)
}

fn mkdir(path: &Path, mode: u32) -> Result<(), ClusterError> {
    std::fs::create_dir_all(path).map_err(|e| ClusterError(format!("{}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ClusterError(format!("{}: {e}", path.display())))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ClusterError(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| ClusterError(format!("{}: {e}", path.display())))
}

fn free_port() -> Result<u16, ClusterError> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| ClusterError(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ClusterError(format!("no free port: {e}")))
}

fn total_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(1024, |kb| kb / 1024)
}

/// The uid and gid to run server binaries as: none unless pgship runs as root.
fn run_as_user() -> Result<Option<(u32, u32)>, ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::env::var("PGSHIP_CLUSTER_USER").unwrap_or_else(|_| "postgres".into());
    let c_name =
        std::ffi::CString::new(name.clone()).map_err(|_| ClusterError("bad user name".into()))?;
    // SAFETY: c_name is a valid NUL-terminated string; getpwnam returns null or a pointer to a
    // static record we read immediately.
    let pw = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if pw.is_null() {
        return Err(ClusterError(format!(
            "running as root, and PostgreSQL refuses to run as root: create the user `{name}` or set PGSHIP_CLUSTER_USER to an unprivileged user"
        )));
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}
