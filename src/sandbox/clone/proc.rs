//! `pg_dump` and `pg_restore` as child processes: built with a cleared environment, a
//! password-less URL and a private passfile; `pg_dump`'s output piped through pgship (which
//! counts it and, on request, tees it into `clone.dump`) into `pg_restore`; stderr kept,
//! sanitised and capped for error messages; each child in its own process group, killed with
//! its workers when the future that owns it is dropped.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::db::{DbUrl, child};

use super::plan::CopyTable;
use super::private::{self, PrivateDir};
use super::pump::{pump, set_pipe_size};
use super::stderr::read_stderr;
use super::{CloneError, CloneOptions, Counters, Plan};

/// A failed step: a child's exit and what it said, or an IO error of pgship's own.
#[derive(Debug)]
pub(crate) enum Failure {
    Step(StepFailure),
    Io(CloneError),
    /// One of pgship's own sessions on the source gave up waiting for a lock (its
    /// `lock_timeout`), locking this table if it knows which.
    Locked(Option<String>),
}

#[derive(Debug)]
pub(crate) struct StepFailure {
    pub step: String,
    pub status: String,
    pub stderr: String,
    /// `pg_dump` gave up waiting for a table lock.
    pub lock_timeout: bool,
}

/// How to run the tools for one clone: the source's side is known first (`pg_dump` runs while
/// the destination may still be starting), the destination's once it is ready.
pub(crate) struct Tools {
    pg_dump: PathBuf,
    pg_restore: PathBuf,
    source_env: Vec<(String, String)>,
    dest_env: Vec<(String, String)>,
    dump_args: Vec<String>,
    restore_args: Vec<String>,
    secrets: Vec<String>,
}

impl Tools {
    /// The source's side, with its own passfile in `dir`.
    pub fn new(
        opts: &CloneOptions,
        dir: &PrivateDir,
        source: &DbUrl,
        snapshot: Option<&str>,
    ) -> Result<Tools, CloneError> {
        let passfile = dir.write("pgpass-source", child::passfile(&[source]).as_bytes())?;
        let mut dump_args = args(&[
            "--format=custom",
            "-Z0",
            "--no-password",
            "--no-security-labels",
            "--no-subscriptions",
        ]);
        dump_args.push(format!(
            "--lock-wait-timeout={}",
            opts.lock_wait_timeout.as_millis().max(1)
        ));
        if let Some(s) = snapshot {
            dump_args.push(format!("--snapshot={s}"));
        }
        dump_args.push(format!(
            "--dbname={}",
            child::child_url(source, opts.tools.major)
        ));
        Ok(Tools {
            pg_dump: opts.tools.bin("pg_dump"),
            pg_restore: opts.tools.bin("pg_restore"),
            source_env: child_env(source, &passfile, "-c default_transaction_read_only=on"),
            dest_env: Vec::new(),
            dump_args,
            restore_args: Vec::new(),
            secrets: child::secrets_of(&[source]),
        })
    }

    /// The destination's side, with its own passfile in `dir`.
    pub fn set_dest(
        &mut self,
        opts: &CloneOptions,
        dir: &PrivateDir,
        dest: &DbUrl,
        superuser: bool,
    ) -> Result<(), CloneError> {
        let passfile = dir.write("pgpass-dest", child::passfile(&[dest]).as_bytes())?;
        let mut restore_args = args(&[
            "--no-password",
            "--exit-on-error",
            "--no-tablespaces",
            "--no-security-labels",
            "--no-subscriptions",
        ]);
        if !superuser {
            restore_args.push("--no-owner".into());
        }
        restore_args.push(format!(
            "--dbname={}",
            child::child_url(dest, opts.tools.major)
        ));
        self.dest_env = child_env(dest, &passfile, "-c synchronous_commit=off");
        self.restore_args = restore_args;
        self.secrets.extend(child::secrets_of(&[dest]));
        Ok(())
    }

    fn command(&self, dump: bool) -> Command {
        let (program, env, args) = if dump {
            (&self.pg_dump, &self.source_env, &self.dump_args)
        } else {
            (&self.pg_restore, &self.dest_env, &self.restore_args)
        };
        let mut c = Command::new(program);
        c.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        c
    }

    /// With a kept dump, the whole archive in one `pg_dump` (`clone.dump` is written from
    /// it, and the post-data restore reads that file).
    pub fn dump_all(&self, plan: &Plan) -> Command {
        let mut c = self.command(true);
        if plan.schema_only {
            // Large objects are data: their metadata would otherwise come with pre-data.
            c.args(["-B", "--schema-only"]);
        }
        c
    }

    /// With a kept dump, the schema and data sections of the archive `pg_dump` streams.
    pub fn restore_all(&self, plan: &Plan) -> Command {
        let mut c = self.command(false);
        c.arg("--verbose");
        if plan.single_transaction {
            c.arg("--single-transaction");
        }
        c.arg("--section=pre-data");
        if !plan.schema_only {
            c.arg("--section=data");
        }
        c
    }

    /// Dump the pre-data section (the schema without indexes and constraints) into `path`.
    pub async fn dump_pre_data(&self, path: &Path, schema_only: bool) -> Result<(), Failure> {
        let mut c = self.command(true);
        if schema_only {
            // Large objects are data: their metadata would otherwise come with pre-data.
            c.arg("-B");
        }
        c.args(["--section=pre-data", "--no-sync"])
            .arg(format!("--file={}", path.display()));
        let out = Proc::spawn(c, &self.pg_dump)?
            .finish(&self.secrets, &|_| {})
            .await;
        out.into_result("pg_dump (schema)", true)
    }

    /// Restore the pre-data archive at `path`, counting the tables it creates.
    pub async fn restore_pre_data(
        &self,
        path: &Path,
        plan: &Plan,
        counters: &Counters,
    ) -> Result<(), Failure> {
        let mut c = self.command(false);
        c.arg("--verbose");
        if plan.single_transaction {
            c.arg("--single-transaction");
        }
        c.arg(path);
        let copying = Cell::new(false);
        let on_line = |line: &str| restore_progress(line, counters, &copying);
        let out = Proc::spawn(c, &self.pg_restore)?
            .finish(&self.secrets, &on_line)
            .await;
        out.into_result("pg_restore (schema)", false)
    }

    /// The data pgship does not copy itself: every table but `copied`'s, sequence values and
    /// large objects.
    pub fn dump_rest(&self, copied: &[CopyTable]) -> Command {
        let mut c = self.command(true);
        c.arg("--section=data");
        for t in copied {
            c.arg(format!("--exclude-table-data={}", t.table.pattern));
        }
        c
    }

    pub fn restore_data(&self) -> Command {
        let mut c = self.command(false);
        c.arg("--verbose");
        c
    }

    /// Dump the post-data section into `path` (a small schema-only archive).
    pub async fn dump_post_data(&self, path: &Path) -> Result<(), Failure> {
        let mut c = self.command(true);
        c.args(["--section=post-data", "--no-sync"])
            .arg(format!("--file={}", path.display()));
        let out = Proc::spawn(c, &self.pg_dump)?
            .finish(&self.secrets, &|_| {})
            .await;
        out.into_result("pg_dump (indexes and constraints)", true)
    }

    /// `pg_restore --list` of `archive`: its table of contents.
    pub async fn list(&self, archive: &Path) -> Result<String, Failure> {
        let mut c = Command::new(&self.pg_restore);
        c.env_clear()
            .envs(self.dest_env.iter().map(|(k, v)| (k, v)))
            .arg("--list")
            .arg(archive)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = c
            .output()
            .await
            .map_err(|e| Failure::Io(private::io_error(&self.pg_restore, &e)))?;
        if !out.status.success() {
            return Err(Failure::Step(StepFailure {
                step: "pg_restore --list".into(),
                status: out.status.to_string(),
                stderr: child::sanitise(&String::from_utf8_lossy(&out.stderr), &self.secrets),
                lock_timeout: false,
            }));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Restore the post-data section of `archive` with `jobs` parallel workers, each index
    /// build with `memory_mb` of `maintenance_work_mem`.
    pub async fn restore_post_data(
        &self,
        archive: &Path,
        list: Option<&Path>,
        jobs: usize,
        memory_mb: u64,
    ) -> Result<(), Failure> {
        let mut c = self.command(false);
        if let Some((_, options)) = self.dest_env.iter().find(|(k, _)| k == "PGOPTIONS") {
            c.env(
                "PGOPTIONS",
                format!("{options} -c maintenance_work_mem={memory_mb}MB"),
            );
        }
        c.arg("--section=post-data");
        if jobs > 1 {
            c.arg(format!("--jobs={jobs}"));
        }
        if let Some(l) = list {
            c.arg(format!("--use-list={}", l.display()));
        }
        c.arg(archive);
        let out = Proc::spawn(c, &self.pg_restore)?
            .finish(&self.secrets, &|_| {})
            .await;
        out.into_result("pg_restore (indexes and constraints)", false)
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

/// A child's whole environment ([`child::base_env`], its passfile and, unless the URL has
/// its own `options`, pgship's settings as `PGOPTIONS`).
fn child_env(url: &DbUrl, passfile: &Path, options: &str) -> Vec<(String, String)> {
    let mut env = child::base_env(url);
    env.push(("PGPASSFILE".into(), passfile.display().to_string()));
    if url.options.is_none() {
        env.push(("PGOPTIONS".into(), options.into()));
    }
    env
}

/// `pg_dump | pg_restore`, optionally teeing into a file.
pub(crate) struct Pipeline {
    pub step: String,
    pub dump: Command,
    pub restore: Command,
    pub sink: Option<std::fs::File>,
}

impl Pipeline {
    pub async fn run(mut self, tools: &Tools, counters: &Counters) -> Result<(), Failure> {
        self.dump.stdout(Stdio::piped());
        self.restore.stdin(Stdio::piped());
        let mut dump = Proc::spawn(self.dump, &tools.pg_dump)?;
        let mut restore = Proc::spawn(self.restore, &tools.pg_restore)?;
        let (Some(from), Some(to)) = (dump.child.stdout.take(), restore.child.stdin.take()) else {
            return Err(Failure::Io(CloneError::Io {
                path: "pipe".into(),
                message: "a child's pipe is missing".into(),
            }));
        };
        set_pipe_size(&from);
        set_pipe_size(&to);
        let copying = Cell::new(false);
        let on_line = |line: &str| restore_progress(line, counters, &copying);
        let sink = self.sink.map(tokio::fs::File::from_std);
        let (pumped, d, r) = tokio::join!(
            pump(from, to, sink, &counters.bytes),
            dump.finish(&tools.secrets, &|_| {}),
            restore.finish(&tools.secrets, &on_line),
        );
        if copying.get() {
            counters.table_done();
        }
        let dump_step = format!("pg_dump ({})", self.step);
        let restore_step = format!("pg_restore ({})", self.step);
        // pg_restore's own error first, unless it only saw its input end early: then pg_dump
        // is the cause (and a pg_dump killed by a closed pipe is the effect).
        if !r.ok && !input_ended(&r.stderr) {
            return r.into_result(&restore_step, false);
        }
        d.into_result(&dump_step, true)?;
        r.into_result(&restore_step, false)?;
        pumped.map_err(|e| {
            Failure::Io(CloneError::Io {
                path: format!("the pipe from pg_dump to pg_restore ({})", self.step),
                message: e.to_string(),
            })
        })
    }
}

/// Count tables from `pg_restore --verbose`.
fn restore_progress(line: &str, counters: &Counters, copying: &Cell<bool>) {
    if line.starts_with("pg_restore: creating TABLE \"") {
        counters.table_created();
    } else if let Some(rest) = line.strip_prefix("pg_restore: processing data for table \"") {
        if copying.replace(true) {
            counters.table_done();
        }
        counters.set_current(Some(rest.trim_end_matches('"').to_string()));
    }
}

/// pg_restore's complaints about a truncated archive (its writer died).
fn input_ended(stderr: &str) -> bool {
    [
        "could not read input file",
        "could not read from input file",
        "unexpected end of file",
        "input file is too short",
        "did not find magic string",
        "input file appears to be a text format dump",
    ]
    .iter()
    .any(|p| stderr.contains(p))
}

/// A running child, killed with its process group (pg_restore's parallel workers) when
/// dropped before it has been waited for.
struct Proc {
    child: Child,
}

/// How a child ended.
struct Outcome {
    ok: bool,
    status: String,
    stderr: String,
}

impl Proc {
    fn spawn(mut cmd: Command, program: &Path) -> Result<Proc, Failure> {
        let child = cmd
            .spawn()
            .map_err(|e| Failure::Io(private::io_error(program, &e)))?;
        Ok(Proc { child })
    }

    async fn finish(mut self, secrets: &[String], on_line: &dyn Fn(&str)) -> Outcome {
        let stderr = self.child.stderr.take();
        let read = async {
            match stderr {
                Some(s) => read_stderr(s, secrets, on_line).await,
                None => String::new(),
            }
        };
        let (status, stderr) = tokio::join!(self.child.wait(), read);
        match status {
            Ok(s) => Outcome {
                ok: s.success(),
                status: s.to_string(),
                stderr,
            },
            Err(e) => Outcome {
                ok: false,
                status: format!("could not wait for it: {e}"),
                stderr,
            },
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: the child has not been reaped (id() is Some), so its process group
            // (created with process_group(0)) is still ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Outcome {
    fn into_result(self, step: &str, is_dump: bool) -> Result<(), Failure> {
        if self.ok {
            return Ok(());
        }
        let lock_timeout = is_dump
            && self.stderr.contains("LOCK TABLE")
            && (self.stderr.contains("statement timeout") || self.stderr.contains("lock timeout"));
        Err(Failure::Step(StepFailure {
            step: step.to_string(),
            status: self.status,
            stderr: self.stderr,
            lock_timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_from_verbose_lines() {
        let c = Counters::default();
        let copying = Cell::new(false);
        for l in [
            "pg_restore: creating TABLE \"public.a\"",
            "pg_restore: creating TABLE ATTACH \"public.a_1\"",
            "pg_restore: creating TABLE \"public.b\"",
            "pg_restore: processing data for table \"public.a\"",
            "pg_restore: processing data for table \"public.b\"",
        ] {
            restore_progress(l, &c, &copying);
        }
        assert_eq!(
            c.tables_created.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        assert_eq!(c.tables_done.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(c.current().as_deref(), Some("public.b"));
    }
}
