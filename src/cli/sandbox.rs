//! `pgship sandbox create|drop|list|gc`: make a throwaway copy of a target and keep it for
//! debugging, remove it, list the kept ones, remove what dead runs left behind.

use serde_json::json;

use super::Globals;
use crate::config::Settings;
use crate::db::{DbError, DbUrl};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::sandbox::{self, Request, Sandbox, SandboxError, Strategy, clone};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Make a sandbox of a target and keep it; prints its id, strategy and URL.
    Create(CreateArgs),
    /// Remove a kept sandbox.
    Drop {
        /// The id `sandbox create` printed.
        id: String,
    },
    /// List kept sandboxes, and orphaned ones (left by runs that died; `gc` removes them).
    List,
    /// Remove sandboxes left behind by runs that died (not kept ones).
    Gc,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Environment name, `local`, or a postgres:// URL.
    pub target: String,
    /// How to make it (default: [sandbox] strategy, else auto).
    #[arg(long, value_enum)]
    pub sandbox: Option<Strategy>,
    /// `full` (default) or `schema` (no rows).
    #[arg(long, value_enum, default_value = "full")]
    pub data: DataArg,
    /// Also write the dump to .deployments/sandbox-<unix-millis>/clone.dump (local and server).
    #[arg(long)]
    pub keep_dump: bool,
    /// Print the URL with its password.
    #[arg(long)]
    pub show_password: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataArg {
    Full,
    Schema,
}

impl DataArg {
    pub fn mode(self) -> clone::DataMode {
        match self {
            DataArg::Full => clone::DataMode::Full,
            DataArg::Schema => clone::DataMode::Schema,
        }
    }
}

pub(super) fn sandbox_err(e: SandboxError) -> Error {
    e.into()
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let console = &globals.console;
    match args.command {
        Sub::Create(a) => create(globals, &settings, a).await,
        Sub::Drop { id } => {
            let r = sandbox::drop_kept(&id, &settings.env)
                .await
                .map_err(sandbox_err)?;
            if console.format == Format::Json {
                console.json(&json!({"id": r.id, "strategy": r.strategy, "dropped": true}));
            } else {
                console.result(&format!("dropped {} sandbox {}", r.strategy.as_str(), r.id));
            }
            Ok(ExitCode::Ok)
        }
        Sub::List => {
            let listed = sandbox::list();
            if console.format == Format::Json {
                let items: Vec<_> = listed.iter().map(listed_json).collect();
                console.json(&json!(items));
            } else if listed.is_empty() {
                console.result("no kept sandboxes");
            } else {
                let mut lines: Vec<String> = listed.iter().map(listed_line).collect();
                if listed
                    .iter()
                    .any(|l| l.state == sandbox::ListedState::Orphaned)
                {
                    lines.push("orphaned sandboxes were left by runs that died: remove them with `pgship sandbox gc`".into());
                }
                console.result(&lines.join("\n"));
            }
            Ok(ExitCode::Ok)
        }
        Sub::Gc => {
            let neon_age = match &settings.file.sandbox.neon_gc_age {
                Some(t) => crate::util::parse_duration(t)
                    .map_err(|e| Error::usage(format!("[sandbox] neon_gc_age: {e}")))?,
                None => sandbox::DEFAULT_NEON_GC_AGE,
            };
            let out = sandbox::gc(&settings.env, &sandbox::GcOptions { neon_age }).await;
            if console.format == Format::Json {
                console.json(&json!(out));
            } else {
                let mut lines: Vec<String> =
                    out.removed.iter().map(|r| format!("removed {r}")).collect();
                lines.extend(out.failed.iter().map(|f| format!("could not remove {f}")));
                if lines.is_empty() {
                    lines.push("nothing to remove".into());
                }
                console.result(&lines.join("\n"));
            }
            Ok(if out.failed.is_empty() {
                ExitCode::Ok
            } else {
                ExitCode::Usage
            })
        }
    }
}

fn listed_json(l: &sandbox::Listed) -> serde_json::Value {
    let mut v = json!({
        "id": l.id,
        "strategy": l.strategy,
        "state": l.state.as_str(),
        "url": l.url.as_deref().map(redact),
        "created_at": l.created_at,
        "pid": l.pid,
    });
    if let Some(d) = &l.dir {
        v["dir"] = json!(d.display().to_string());
    }
    if let Some((pid, port)) = l.postmaster {
        v["server"] = json!({"pid": pid, "port": port});
    }
    v
}

/// `<id>  <strategy> <created>  <url or folder>`, and for an orphan what is left of it.
fn listed_line(l: &sandbox::Listed) -> String {
    let place = match (&l.url, &l.dir) {
        (Some(u), _) => redact(u),
        (None, Some(d)) => format!("throwaway cluster {}", d.display()),
        (None, None) => String::new(),
    };
    let mut line = format!(
        "{}  {:<8} {}  {place}",
        l.id,
        l.strategy.as_str(),
        l.created_at.as_deref().unwrap_or("?"),
    );
    if l.state == sandbox::ListedState::Orphaned {
        let run = l.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        line.push_str(&format!("  ORPHANED: its run{run} is gone"));
        if let Some((pid, _)) = l.postmaster {
            line.push_str(&format!(", its server (pid {pid}) still runs"));
        }
    }
    line
}

fn redact(url: &str) -> String {
    DbUrl::parse(url)
        .map(|u| u.redacted())
        .unwrap_or_else(|_| "<unparsable>".into())
}

async fn create(globals: &Globals, settings: &Settings, a: CreateArgs) -> Result<ExitCode> {
    let console = &globals.console;
    let target = settings.target(&a.target)?;
    let url = DbUrl::parse(&target.url).map_err(DbError::from)?;
    let mut req = sandbox_request(settings, a.sandbox, a.data, None)?;
    let resolved = sandbox::resolve(req.strategy, &url, &settings.env, req.allow_template);
    if a.keep_dump && !matches!(resolved, Strategy::Local | Strategy::Server) {
        return Err(Error::usage(format!(
            "--keep-dump keeps the dump a local or server sandbox is restored from, and the {} strategy copies without one",
            resolved.as_str()
        )));
    }
    // The run's artifacts folder, as `migrate` makes one (0700; clone.dump in it is 0600).
    let dump_dir = if a.keep_dump {
        let dir = globals
            .project
            .join(".deployments")
            .join(format!("sandbox-{}", crate::util::unix_millis()));
        private_dir(&dir).map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?;
        Some(dir)
    } else {
        None
    };
    let keep_dump = dump_dir.as_ref().map(|d| d.join("clone.dump"));
    req.keep_dump = keep_dump.clone();
    console.step(&format!("making a sandbox of {}", url.redacted()));
    let terminal = console.format == Format::Text && crate::journal::Console::is_terminal();
    let progress = |p: clone::Progress| {
        if terminal {
            anstream::eprint!("\r\x1b[2K· {}", p.line());
        }
    };
    let sb = match Sandbox::create(&url, &req, &settings.env, &progress).await {
        Ok(sb) => sb,
        Err(e) => {
            // The clone removes a partial dump; the folder made for it goes too (if empty).
            if let Some(d) = &dump_dir {
                let _ = std::fs::remove_dir(d);
            }
            return Err(sandbox_err(e));
        }
    };
    if terminal {
        anstream::eprintln!();
    }
    if let Some(r) = &sb.clone_report {
        console.step(&r.summary());
        for w in &r.warnings {
            console.warn(w);
        }
    }
    let report = sb.clone_report.clone();
    let (id, strategy, seconds) = (sb.id.clone(), sb.strategy, sb.seconds);
    let shown = if a.show_password {
        sb.url.expose()
    } else {
        sb.url.redacted()
    };
    sb.keep().await.map_err(sandbox_err)?;
    // Shown absolute: the project folder may be `.` or given relative to elsewhere.
    let keep_dump = keep_dump.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    if console.format == Format::Json {
        let mut doc = json!({"id": id, "strategy": strategy, "url": shown, "seconds": (seconds * 10.0).round() / 10.0});
        if let Some(p) = &keep_dump {
            doc["dump"] = json!(p.display().to_string());
        }
        if let Some(r) = &report {
            doc["clone"] = json!({
                "tables": r.tables,
                "bytes": r.bytes,
                "steps": r.steps.iter().map(|(s, t)| json!({"step": s, "seconds": (t * 100.0).round() / 100.0})).collect::<Vec<_>>(),
                "roles_created": r.roles_created,
                "warnings": r.warnings,
            });
        }
        console.json(&doc);
    } else {
        let dump = keep_dump
            .as_ref()
            .map(|p| format!("dump: {}\n", p.display()))
            .unwrap_or_default();
        console.result(&format!(
            "sandbox {id} ({}) ready in {seconds:.1}s\n{shown}\n{dump}remove it with: pgship sandbox drop {id}",
            strategy.as_str()
        ));
    }
    Ok(ExitCode::Ok)
}

/// Make `dir` (and its parents) with `dir` itself private: 0700.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The sandbox request from flags over `[sandbox]` over defaults (shared with `plan`).
pub(super) fn sandbox_request(
    settings: &Settings,
    strategy: Option<Strategy>,
    data: DataArg,
    keep_dump: Option<std::path::PathBuf>,
) -> Result<Request> {
    Request::resolve(settings, strategy, data.mode(), keep_dump).map_err(Error::usage)
}
