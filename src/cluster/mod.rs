//! Throwaway local PostgreSQL clusters: `pgship demo` runs on one, tests use them for other
//! PostgreSQL majors, and the sandbox will clone targets into them.
//!
//! A cluster lives in its own folder under pgship's temp root (`$TMPDIR/pgship`), listens on
//! 127.0.0.1 on a free port with its socket in that folder, uses a random password with SCRAM
//! (it may hold copies of real data), and is tuned for throwaway use (no fsync, minimal WAL, no
//! autovacuum). It is stopped and its folder removed when the value is dropped; the folder's
//! name (`cluster-<pid>-<random>`) and `owner.json` record the owning pid so leftovers of killed
//! runs can be found ([`leftovers`], which reads `postmaster.pid` to tell a server still
//! running), and so are the other folders a run makes in the temp root ([`run_folders`]). initdb and postgres refuse
//! to run as root, so when pgship runs as root they run as the `postgres` user (or
//! `$PGSHIP_CLUSTER_USER`).
//!
//! initdb takes most of a cluster's start (0.6-2 s), so its output is kept as a template in
//! pgship's cache folder: `~/.cache/pgship/template-<major>-<key>` (or under
//! `$XDG_CACHE_HOME`; 0700, the key a hash of the binaries, their version, the cluster's user
//! and initdb's options), made once by initdb and never started. A cluster copies the
//! template's data folder (0.05-0.4 s) and sets its own random password in single-user mode
//! before it starts; a template that is not a private folder of pgship's user is ignored, and
//! any trouble with it falls back to initdb.

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
        if !self.copy_template() {
            let password = self.password.expose().to_string();
            self.initdb(&self.data(), &self.dir.join("pwfile"), &password)?;
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

    /// initdb into `data`, the superuser's password `password` (through `pwfile`, a private
    /// file removed afterwards, never initdb's arguments).
    fn initdb(&self, data: &Path, pwfile: &Path, password: &str) -> Result<(), ClusterError> {
        write_private(pwfile, password.as_bytes())?;
        self.chown(pwfile)?;
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(data)
            .args(INITDB_ARGS)
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| ClusterError(format!("cannot run initdb: {e}")));
        let _ = std::fs::remove_file(pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(ClusterError(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Fill the data folder from the initdb template (made now if there is none) and give it
    /// this cluster's password; false (and nothing left in the folder) if that did not work.
    fn copy_template(&self) -> bool {
        let Some(template) = self.template() else {
            return false;
        };
        let data = self.data();
        let copied = copy_tree(&template.join("data"), &data, self.run_as)
            .and_then(|()| self.set_password(&data));
        if copied.is_err() {
            let _ = std::fs::remove_dir_all(&data);
            return false;
        }
        true
    }

    /// The template folder for these binaries in pgship's cache folder: an existing one if it
    /// is a private folder of pgship's user, else a new one.
    fn template(&self) -> Option<PathBuf> {
        let cache = cache_root()?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let runs_as = self.run_as.map_or(me, |(uid, _)| uid);
        let key = crate::util::sha256_hex(
            format!(
                "pgship-template-1|{}|{}|{runs_as}|{}",
                self.bin.dir.display(),
                self.bin.version,
                INITDB_ARGS.join(" ")
            )
            .as_bytes(),
        );
        let name = format!("template-{}-{}", self.bin.major, &key[..16]);
        let path = cache.join(&name);
        if is_private_dir(&path, me) && path.join("data/PG_VERSION").is_file() {
            return Some(path);
        }
        if path.symlink_metadata().is_ok() {
            // Broken, or not ours: leave it, initdb as before.
            return None;
        }
        let temp = temp_root().ok()?;
        sweep_templates(&cache, &temp, &self.bin.dir, me);
        let suffix = format!("{}-{}", std::process::id(), crate::util::random_hex(4));
        // initdb runs as the cluster's user, which may not enter pgship's cache folder (root's
        // home): it writes into the temp root, and the result moves to the cache.
        let build = temp.join(format!("{TEMPLATE_BUILD}{suffix}"));
        let staging = cache.join(format!("{name}.tmp-{suffix}"));
        let made = (|| {
            mkdir(&build, 0o700)?;
            self.chown(&build)?;
            // The template's password is thrown away: it is never started, so it never
            // listens, and every copy gets its own.
            let password = crate::util::random_hex(16);
            self.initdb(&build.join("data"), &build.join("pwfile"), &password)?;
            mkdir(&staging, 0o700)?;
            if std::fs::rename(build.join("data"), staging.join("data")).is_err() {
                copy_tree(&build.join("data"), &staging.join("data"), self.run_as)?;
            }
            let owner = serde_json::json!({ "bin": self.bin.dir, "version": self.bin.version });
            std::fs::write(staging.join("template.json"), owner.to_string())
                .map_err(|e| ClusterError(format!("{}: {e}", staging.display())))?;
            std::fs::rename(&staging, &path)
                .map_err(|e| ClusterError(format!("{}: {e}", path.display())))
        })();
        let _ = std::fs::remove_dir_all(&build);
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
            // Another run may have made it meanwhile.
            return (is_private_dir(&path, me) && path.join("data/PG_VERSION").is_file())
                .then_some(path);
        }
        Some(path)
    }

    /// Set the superuser's password in single-user mode, before the server listens; the
    /// password goes through stdin, never the arguments.
    fn set_password(&self, data: &Path) -> Result<(), ClusterError> {
        use std::io::Write as _;
        let mut child = self
            .command("postgres")
            .args(["--single", "-c", "fsync=off", "-D"])
            .arg(data)
            .arg("postgres")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| ClusterError(format!("cannot run postgres --single: {e}")))?;
        let sql = format!(
            "ALTER ROLE postgres PASSWORD '{}';\n",
            self.password.expose().replace('\'', "''")
        );
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(|e| ClusterError(format!("postgres --single: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| ClusterError(format!("postgres --single: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || stderr.contains("ERROR:") {
            return Err(ClusterError(format!(
                "setting the password failed: {}",
                stderr.trim()
            )));
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), ClusterError> {
        let log = self.dir.join("server.log");
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            let from = std::fs::metadata(&log).map_or(0, |m| m.len());
            // PostgreSQL 10+ says in postmaster.pid when it is ready: pgship looks every few
            // milliseconds instead of pg_ctl's tenth of a second.
            let poll = self.bin.major >= 10;
            let out = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(if poll {
                    ["-W", "-t", "60"]
                } else {
                    ["-w", "-t", "60"]
                })
                .arg("-o")
                .arg(format!("-p {}", self.port))
                .arg("start")
                .output()
                .map_err(|e| ClusterError(format!("cannot run pg_ctl: {e}")))?;
            let started = if !out.status.success() {
                Err(log_since(&log, from))
            } else if poll {
                self.wait_ready(&log, from)
            } else {
                Ok(())
            };
            match started {
                Ok(()) => return Ok(()),
                Err(text) => last = text,
            }
            if !last.contains("could not bind") && !last.contains("already in use") {
                break;
            }
        }
        Err(ClusterError(format!(
            "the server did not start:\n{}",
            last.trim()
        )))
    }

    /// Wait (up to a minute) until the postmaster reports itself ready in `postmaster.pid`;
    /// what it logged after `from` if it fails.
    fn wait_ready(&self, log: &Path, from: u64) -> Result<(), String> {
        let pidfile = self.data().join("postmaster.pid");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&pidfile) {
                if postmaster_ready(&text) {
                    return Ok(());
                }
                let pid = text
                    .lines()
                    .next()
                    .and_then(|p| p.trim().parse::<u32>().ok());
                if pid.is_some_and(|p| !process_alive(p)) {
                    return Err(log_since(log, from));
                }
            }
            let logged = log_since(log, from);
            if logged.contains("FATAL:") || logged.contains("PANIC:") {
                return Err(logged);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("not ready after a minute\n{logged}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
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
    /// The pgship process that made it (from `owner.json`, else from the folder's name).
    pub pid: Option<u32>,
    /// The owning process still runs.
    pub alive: bool,
    pub kept: bool,
    pub bin: Option<PathBuf>,
    /// When it was started (`owner.json`).
    pub started_at: Option<String>,
    /// The server's postmaster and port, when `data/postmaster.pid` names a live process:
    /// the server still runs.
    pub postmaster: Option<(u32, Option<u16>)>,
}

/// Every cluster folder in pgship's temp root, with whether its owner is still alive and
/// whether its server still runs.
pub fn leftovers() -> Vec<Leftover> {
    let mut out: Vec<Leftover> = run_folders("cluster-")
        .into_iter()
        .filter(|(dir, _)| dir.is_dir())
        .map(|(dir, named_pid)| {
            let owner: serde_json::Value = std::fs::read_to_string(dir.join("owner.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            // A run killed before it wrote `owner.json` is still named in the folder's name.
            let pid = owner["pid"].as_u64().map(|p| p as u32).or(named_pid);
            Leftover {
                alive: pid.is_some_and(process_alive),
                pid,
                kept: owner["kept"].as_bool().unwrap_or(false),
                bin: owner["bin"].as_str().map(PathBuf::from),
                started_at: owner["started_at"].as_str().map(str::to_string),
                postmaster: running_postmaster(&dir.join("data")),
                dir,
            }
        })
        .collect();
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// The postmaster pid and port `postmaster.pid` of a data folder names, if that process runs.
fn running_postmaster(data: &Path) -> Option<(u32, Option<u16>)> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse::<u32>().ok()?;
    let port = lines.nth(2).and_then(|p| p.trim().parse::<u16>().ok());
    process_alive(pid).then_some((pid, port))
}

/// The entries of pgship's temp root named `<prefix><pid>-...`, each with the pid in its name
/// (the process that made it), sorted. Every folder a run makes there is named so: clusters
/// (`cluster-`), a clone's or a plan's private files (`clone-`), template builds
/// (`template-build-`), so that what a killed run left can be told from what a live one uses.
pub fn run_folders(prefix: &str) -> Vec<(PathBuf, Option<u32>)> {
    let Ok(root) = temp_root() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Option<u32>)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(prefix)?;
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            Some((e.path(), pid))
        })
        .collect();
    out.sort();
    out
}

/// Whether process `pid` exists (signal 0) and has not exited: a zombie (exited, not yet
/// reaped by its parent) is dead.
pub fn process_alive(pid: u32) -> bool {
    // 0 and what does not fit a pid_t would name process groups, not a process.
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// `/proc/<pid>/stat` says the process has exited (state `Z` or `X`); false where there is no
/// /proc.
fn is_zombie(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, the state follows the last
    // `)`.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

/// Stop the server of a cluster folder (if running) and remove the folder; a folder that is
/// gone already (`gc` removed the cluster before the record that names it) is removed.
pub fn remove_dir(dir: &Path, bin: Option<&Path>) -> Result<(), ClusterError> {
    if dir
        .symlink_metadata()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        return Ok(());
    }
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
    // A run killed while its server started or stopped, or while initdb ran, can leave a
    // process still writing into the folder: kill what names the folder on its command
    // line, then retry while entries keep appearing.
    kill_processes_in(dir);
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Ok(()),
            Err(e) if tries < 20 && retryable_removal(&e) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
                kill_processes_in(dir);
            }
            Err(e) => return Err(ClusterError(format!("{}: {e}", dir.display()))),
        }
    }
}

/// Errors of `remove_dir_all` that another process writing into the folder causes.
fn retryable_removal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTEMPTY) | Some(libc::EBUSY) | Some(libc::ENOENT)
    )
}

/// SIGKILL every process whose command line names a path inside `dir` (initdb, postgres,
/// pg_ctl of a cluster whose owner died); the server's children exit when it does.
fn kill_processes_in(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for e in entries.flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if names_path_inside(&cmdline, needle) {
            // SAFETY: kill has no memory preconditions; a pid that is gone gives ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Whether a NUL-separated command line has an argument that is `dir` or a path inside it
/// (also as the value of `--opt=dir/...`).
fn names_path_inside(cmdline: &[u8], dir: &[u8]) -> bool {
    cmdline.split(|b| *b == 0).any(|arg| {
        let arg = match arg.iter().position(|b| *b == b'=') {
            Some(i) if arg.starts_with(b"-") => &arg[i + 1..],
            _ => arg,
        };
        arg.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
    })
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the server logged after `from` bytes of its log.
fn log_since(log: &Path, from: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(0).min(text.len());
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// `postmaster.pid` says the server accepts connections (its eighth line, PostgreSQL 10+).
fn postmaster_ready(pidfile: &str) -> bool {
    pidfile.lines().nth(7).is_some_and(|l| l.trim() == "ready")
}

/// The prefix of the folders in the temp root where templates are made.
pub const TEMPLATE_BUILD: &str = "template-build-";

/// initdb's options (besides the folder and the password file).
const INITDB_ARGS: [&str; 8] = [
    "-U",
    "postgres",
    "-A",
    "scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
];

/// `path` is a real folder (not a symlink) owned by `uid` that nobody else may enter.
fn is_private_dir(path: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    path.symlink_metadata()
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
}

/// Copy a folder of directories and regular files (an initdb output), keeping modes, owned by
/// `owner` when given. Anything else (a symlink) is an error. The files (a thousand, most of
/// the time spent creating them) are copied by a thread per core, up to four.
fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
    let mut files = Vec::new();
    make_dirs(from, to, owner, &mut files)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 4);
    let per_thread = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let copies: Vec<_> = files
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    for (src, dst) in chunk {
                        std::fs::copy(src, dst)
                            .map_err(|e| ClusterError(format!("{}: {e}", src.display())))?;
                        chown_to(dst, owner)?;
                    }
                    Ok::<(), ClusterError>(())
                })
            })
            .collect();
        copies.into_iter().try_for_each(|c| {
            c.join()
                .map_err(|_| ClusterError("a copying thread panicked".into()))?
        })
    })
}

/// The folders of `from` made under `to` (modes kept), and the files to copy into them.
fn make_dirs(
    from: &Path,
    to: &Path,
    owner: Option<(u32, u32)>,
    files: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), ClusterError> {
    let err = |p: &Path, e: std::io::Error| ClusterError(format!("{}: {e}", p.display()));
    let meta = from.symlink_metadata().map_err(|e| err(from, e))?;
    std::fs::create_dir(to).map_err(|e| err(to, e))?;
    std::fs::set_permissions(to, meta.permissions()).map_err(|e| err(to, e))?;
    chown_to(to, owner)?;
    for entry in std::fs::read_dir(from).map_err(|e| err(from, e))? {
        let entry = entry.map_err(|e| err(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| err(&src, e))?;
        if kind.is_dir() {
            make_dirs(&src, &dst, owner, files)?;
        } else if kind.is_file() {
            files.push((src, dst));
        } else {
            return Err(ClusterError(format!(
                "{}: not a file or folder",
                src.display()
            )));
        }
    }
    Ok(())
}

fn chown_to(path: &Path, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| ClusterError(format!("{}: {e}", path.display()))),
        None => Ok(()),
    }
}

/// Remove what templates of `bin` left: other versions' templates in `cache` (the binaries
/// were upgraded), and half-made ones of dead runs there and in `temp`; only folders of `uid`.
fn sweep_templates(cache: &Path, temp: &Path, bin: &Path, uid: u32) {
    let dead = |rest: &str| {
        rest.split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| !process_alive(p))
    };
    if let Ok(entries) = std::fs::read_dir(temp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(TEMPLATE_BUILD)
                && dead(rest)
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if !name.starts_with("template-") || !is_private_dir(&path, uid) {
            continue;
        }
        if let Some((_, rest)) = name.split_once(".tmp-") {
            if dead(rest) {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        let owner: serde_json::Value = std::fs::read_to_string(path.join("template.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if owner["bin"].as_str() == Some(&bin.display().to_string()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// pgship's cache folder, `$XDG_CACHE_HOME/pgship` or `~/.cache/pgship`, created 0700 if
/// needed; none when it cannot be made private to pgship's user.
pub fn cache_root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .filter(|b| b.is_absolute())?;
    let root = base.join("pgship");
    if root.symlink_metadata().is_err() {
        std::fs::create_dir_all(&root).ok()?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).ok()?;
    }
    // SAFETY: geteuid has no preconditions.
    is_private_dir(&root, unsafe { libc::geteuid() }).then_some(root)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ready_is_the_eighth_line_of_postmaster_pid() {
        let starting =
            "123\n/data\n1700000000\n5432\n/sock\n127.0.0.1\n  5432001     65538\nstarting\n";
        assert!(!postmaster_ready(starting));
        assert!(postmaster_ready(&starting.replace("starting", "ready   ")));
        assert!(!postmaster_ready("123\n/data\n"), "a file being written");
    }

    #[test]
    fn log_since_reads_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(&log, "old FATAL: line\nnew line\n").unwrap();
        assert_eq!(log_since(&log, 16), "new line\n");
        assert_eq!(log_since(&log, 1000), "");
        assert_eq!(log_since(&dir.path().join("none"), 0), "");
    }

    #[test]
    fn templates_must_be_private_folders_of_the_user() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let t = dir.path().join("template");
        std::fs::create_dir(&t).unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(is_private_dir(&t, me));
        assert!(!is_private_dir(&t, me + 1), "someone else's");
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!is_private_dir(&t, me), "others may enter it");
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&t, &link).unwrap();
        assert!(!is_private_dir(&link, me), "a symlink");
        assert!(!is_private_dir(&dir.path().join("none"), me));
    }

    #[test]
    fn command_lines_naming_the_folder_are_recognised() {
        let dir = b"/tmp/pgship/cluster-1";
        assert!(names_path_inside(
            b"initdb\0-D\0/tmp/pgship/cluster-1/data\0",
            dir
        ));
        assert!(names_path_inside(
            b"postgres\0-D\0/tmp/pgship/cluster-1\0",
            dir
        ));
        assert!(names_path_inside(
            b"initdb\0--pgdata=/tmp/pgship/cluster-1/data\0",
            dir
        ));
        assert!(!names_path_inside(
            b"postgres\0-D\0/tmp/pgship/cluster-10/data\0",
            dir
        ));
        assert!(!names_path_inside(b"postgres: checkpointer \0", dir));
        assert!(!names_path_inside(b"", dir));
    }

    #[test]
    fn a_process_writing_into_the_folder_does_not_stop_its_removal() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("cluster-busy");
        std::fs::create_dir(&there).unwrap();
        // A shell that keeps creating files in the folder, named by its command line.
        let script =
            "while :; do mkdir -p \"$1/d\" 2>/dev/null; touch \"$1/d/$RANDOM\" 2>/dev/null; done";
        let mut child = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&there)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let removed = remove_dir(&there, None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut killed = false;
        while !killed && std::time::Instant::now() < deadline {
            killed = child.try_wait().unwrap().is_some();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        removed.unwrap();
        assert!(killed, "the writer was killed");
        assert!(!there.exists());
    }

    #[test]
    fn only_real_pids_are_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(0), "0 is the caller's process group");
        assert!(!process_alive(u32::MAX), "-1 would be every process");
        // Above the default pid_max: no such process.
        assert!(!process_alive(0x7fff_fff0));
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not reaped: a zombie until `wait`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !is_zombie(pid as libc::pid_t) {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!process_alive(pid));
        child.wait().unwrap();
        assert!(!process_alive(pid));
        assert!(!is_zombie(std::process::id() as libc::pid_t));
    }

    #[test]
    fn postmaster_pid_files_name_a_running_server_only_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_postmaster(dir.path()), None, "no file");
        let me = std::process::id();
        std::fs::write(
            dir.path().join("postmaster.pid"),
            format!("{me}\n/data\n1700000000\n5433\n/sock\n127.0.0.1\n  1  2\nready\n"),
        )
        .unwrap();
        assert_eq!(running_postmaster(dir.path()), Some((me, Some(5433))));
        std::fs::write(dir.path().join("postmaster.pid"), "2147483632\n/data\n").unwrap();
        assert_eq!(running_postmaster(dir.path()), None, "a dead server");
    }

    #[test]
    fn removing_a_folder_that_is_gone_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        assert!(remove_dir(&dir.path().join("cluster-gone"), None).is_ok());
        let there = dir.path().join("cluster-there");
        std::fs::create_dir(&there).unwrap();
        remove_dir(&there, None).unwrap();
        assert!(!there.exists());
    }

    #[test]
    fn copy_tree_keeps_modes_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("base/1")).unwrap();
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(from.join("PG_VERSION"), "15\n").unwrap();
        std::fs::write(from.join("base/1/1259"), vec![7u8; 3 * 8192]).unwrap();
        std::fs::set_permissions(
            from.join("base/1/1259"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to, None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&to), 0o700);
        assert_eq!(mode(&to.join("base/1/1259")), 0o600);
        assert_eq!(std::fs::read(to.join("PG_VERSION")).unwrap(), b"15\n");
        assert_eq!(
            std::fs::read(to.join("base/1/1259")).unwrap().len(),
            3 * 8192
        );
        std::os::unix::fs::symlink("/etc/passwd", from.join("base/evil")).unwrap();
        assert!(copy_tree(&from, &dir.path().join("to2"), None).is_err());
    }
}
