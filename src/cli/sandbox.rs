//! `pgship sandbox create|drop|list|gc`: make a throwaway copy of a target and keep it for
//! debugging, remove it, list the kept ones, remove what dead runs left behind. Parses, calls
//! one function of [`crate::sandbox`] per subcommand, prints.

use serde_json::json;

use super::Globals;
use crate::config::Settings;
use crate::db::DbUrl;
use crate::error::{ExitCode, Result};
use crate::journal::console::Format;
use crate::sandbox::command::{self, CreateOptions, Created};
use crate::sandbox::{self, Strategy, clone};

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

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let settings = Settings::load(&globals.project, globals.config.as_deref())?;
    let console = &globals.console;
    match args.command {
        Sub::Create(a) => {
            let created =
                command::create(console, &globals.project, &settings, &a.options()).await?;
            print_created(globals, &created);
            Ok(ExitCode::Ok)
        }
        Sub::Drop { id } => {
            let r = sandbox::drop_kept(&id, &settings.env).await?;
            if console.format == Format::Json {
                console.json(&json!({"id": r.id, "strategy": r.strategy, "dropped": true}));
            } else {
                console.result(&format!("dropped {} sandbox {}", r.strategy.as_str(), r.id));
            }
            Ok(ExitCode::Ok)
        }
        Sub::List => {
            print_listed(globals, &sandbox::list());
            Ok(ExitCode::Ok)
        }
        Sub::Gc => {
            let out = command::gc(&settings).await?;
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

impl CreateArgs {
    fn options(self) -> CreateOptions {
        CreateOptions {
            target: self.target,
            strategy: self.sandbox,
            data: self.data.mode(),
            keep_dump: self.keep_dump,
            show_password: self.show_password,
        }
    }
}

fn print_listed(globals: &Globals, listed: &[sandbox::Listed]) {
    let console = &globals.console;
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
}

fn print_created(globals: &Globals, c: &Created) {
    let console = &globals.console;
    let (id, shown, seconds) = (&c.id, &c.url, c.seconds);
    if console.format == Format::Json {
        let mut doc = json!({"id": id, "strategy": c.strategy, "url": shown, "seconds": (seconds * 10.0).round() / 10.0});
        if let Some(p) = &c.dump {
            doc["dump"] = json!(p.display().to_string());
        }
        if let Some(r) = &c.clone {
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
        let dump = c
            .dump
            .as_ref()
            .map(|p| format!("dump: {}\n", p.display()))
            .unwrap_or_default();
        console.result(&format!(
            "sandbox {id} ({}) ready in {seconds:.1}s\n{shown}\n{dump}remove it with: pgship sandbox drop {id}",
            c.strategy.as_str()
        ));
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
