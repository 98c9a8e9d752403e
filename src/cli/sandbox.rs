//! `pgship sandbox create|drop|list|gc`: make a throwaway copy of a target and keep it for
//! debugging, remove it, list the kept ones, remove what dead runs left behind.

use std::time::Duration;

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
    /// List kept sandboxes.
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
    /// Also write the dump to .deployments/<id>/clone.dump (local and server).
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

fn sandbox_err(e: SandboxError) -> Error {
    match e {
        SandboxError::Refused(m) => Error::refused(m),
        SandboxError::Interrupted => Error::refused(e.to_string()),
        other => Error::usage(other.to_string()),
    }
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let console = &globals.console;
    match args.command {
        Sub::Create(a) => create(globals, &settings, a).await,
        Sub::Drop { id } => {
            let r = sandbox::drop_kept(&id).await.map_err(sandbox_err)?;
            if console.format == Format::Json {
                console.json(&json!({"id": r.id, "strategy": r.strategy, "dropped": true}));
            } else {
                console.result(&format!("dropped {} sandbox {}", r.strategy.as_str(), r.id));
            }
            Ok(ExitCode::Ok)
        }
        Sub::List => {
            let kept = sandbox::list();
            if console.format == Format::Json {
                let items: Vec<_> = kept
                    .iter()
                    .map(|r| {
                        json!({"id": r.id, "strategy": r.strategy, "url": redact(&r.url), "created_at": r.created_at})
                    })
                    .collect();
                console.json(&json!(items));
            } else if kept.is_empty() {
                console.result("no kept sandboxes");
            } else {
                let lines: Vec<String> = kept
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  {:<8} {}  {}",
                            r.id,
                            r.strategy.as_str(),
                            r.created_at,
                            redact(&r.url)
                        )
                    })
                    .collect();
                console.result(&lines.join("\n"));
            }
            Ok(ExitCode::Ok)
        }
        Sub::Gc => {
            let out = sandbox::gc(&settings.env).await;
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

fn redact(url: &str) -> String {
    DbUrl::parse(url)
        .map(|u| u.redacted())
        .unwrap_or_else(|_| "<unparsable>".into())
}

async fn create(globals: &Globals, settings: &Settings, a: CreateArgs) -> Result<ExitCode> {
    let console = &globals.console;
    let target = settings.target(&a.target)?;
    let url = DbUrl::parse(&target.url).map_err(DbError::from)?;
    let f = &settings.file.sandbox;
    let strategy = match (a.sandbox, f.strategy.as_deref()) {
        (Some(s), _) => s,
        (None, None) => Strategy::Auto,
        (None, Some(s)) => Strategy::parse(s).ok_or_else(|| {
            Error::usage(format!(
                "[sandbox] strategy = \"{s}\": expected auto, local, server, template or neon"
            ))
        })?,
    };
    let lock_wait_timeout = match &f.lock_wait_timeout {
        Some(t) => crate::util::parse_duration(t)
            .map_err(|e| Error::usage(format!("[sandbox] lock_wait_timeout: {e}")))?,
        None => Duration::from_secs(5),
    };
    let keep_dump = if a.keep_dump {
        let id = format!("sandbox-{}", crate::util::unix_millis());
        let dir = globals.project.join(".deployments").join(id);
        fs_err::create_dir_all(&dir).map_err(|e| Error::usage(e.to_string()))?;
        Some(dir.join("clone.dump"))
    } else {
        None
    };
    let req = Request {
        strategy,
        data: match a.data {
            DataArg::Full => clone::DataMode::Full,
            DataArg::Schema => clone::DataMode::Schema,
        },
        keep_dump,
        allow_template: f.allow_template.unwrap_or(false),
        lock_wait_timeout,
    };
    console.step(&format!("making a sandbox of {}", url.redacted()));
    let terminal = console.format == Format::Text && crate::journal::Console::is_terminal();
    let progress = |p: clone::Progress| {
        if terminal {
            anstream::eprint!("\r\x1b[2K· {}", p.line());
        }
    };
    let sb = Sandbox::create(&url, &req, &settings.env, &progress)
        .await
        .map_err(sandbox_err)?;
    if terminal {
        anstream::eprintln!();
    }
    let (id, strategy, seconds) = (sb.id.clone(), sb.strategy, sb.seconds);
    let shown = if a.show_password {
        sb.url.expose()
    } else {
        sb.url.redacted()
    };
    sb.keep().await.map_err(sandbox_err)?;
    if console.format == Format::Json {
        console.json(&json!({"id": id, "strategy": strategy, "url": shown, "seconds": (seconds * 10.0).round() / 10.0}));
    } else {
        console.result(&format!(
            "sandbox {id} ({}) ready in {seconds:.1}s\n{shown}\nremove it with: pgship sandbox drop {id}",
            strategy.as_str()
        ));
    }
    Ok(ExitCode::Ok)
}
