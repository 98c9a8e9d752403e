//! `pgship sandbox create|gc` as library calls: a sandbox of a target made and kept (with its
//! dump kept too when asked), and the leftovers of dead runs removed with the age from
//! `[sandbox] neon_gc_age`. `drop` and `list` are [`super::drop_kept`] and [`super::list`].
//!
//! Reads the target only. Never shows a password unless asked to (`show_password`).

use std::path::{Path, PathBuf};

use super::clone::{self, CloneReport};
use super::{Collected, GcOptions, Request, Sandbox, Strategy};
use crate::config::Settings;
use crate::db::{DbError, DbUrl};
use crate::error::{Error, Result};
use crate::journal::Console;
use crate::journal::console::Format;

/// What `sandbox create` was asked.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Environment name, `local`, or a URL.
    pub target: String,
    /// Over `[sandbox] strategy`, else auto.
    pub strategy: Option<Strategy>,
    pub data: clone::DataMode,
    /// Also write the dump to `.deployments/sandbox-<unix-millis>/clone.dump` in the project.
    pub keep_dump: bool,
    /// Return the URL with its password.
    pub show_password: bool,
}

/// A sandbox made and kept.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub strategy: Strategy,
    pub seconds: f64,
    /// Its URL, redacted unless `show_password`.
    pub url: String,
    /// The kept dump, absolute.
    pub dump: Option<PathBuf>,
    /// What copying the rows did (local and server).
    pub clone: Option<CloneReport>,
}

/// Make a sandbox of `opts.target` and keep it (`pgship sandbox drop <id>` removes it).
/// Progress goes to the console (on a terminal, the clone's progress line too).
pub async fn create(
    console: &Console,
    project_dir: &Path,
    settings: &Settings,
    opts: &CreateOptions,
) -> Result<Created> {
    let target = settings.target(&opts.target)?;
    let url = DbUrl::parse(&target.url).map_err(DbError::from)?;
    let mut req =
        Request::resolve(settings, opts.strategy, opts.data, None).map_err(Error::usage)?;
    let resolved = super::resolve(req.strategy, &url, &settings.env, req.allow_template);
    if opts.keep_dump && !matches!(resolved, Strategy::Local | Strategy::Server) {
        return Err(Error::usage(format!(
            "--keep-dump keeps the dump a local or server sandbox is restored from, and the {} strategy copies without one",
            resolved.as_str()
        )));
    }
    let dump_dir = opts.keep_dump.then(|| dump_dir(project_dir)).transpose()?;
    let keep_dump = dump_dir.as_ref().map(|d| d.join("clone.dump"));
    req.keep_dump = keep_dump.clone();
    console.step(&format!("making a sandbox of {}", url.redacted()));
    let sb = match make(console, &url, &req, settings).await {
        Ok(sb) => sb,
        Err(e) => {
            // The clone removes a partial dump; the folder made for it goes too (if empty).
            if let Some(d) = &dump_dir {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e.into());
        }
    };
    let clone = sb.clone_report.clone();
    let (id, strategy, seconds) = (sb.id.clone(), sb.strategy, sb.seconds);
    let url = if opts.show_password {
        sb.url.expose()
    } else {
        sb.url.redacted()
    };
    sb.keep().await?;
    Ok(Created {
        id,
        strategy,
        seconds,
        url,
        // Shown absolute: the project folder may be `.` or given relative to elsewhere.
        dump: keep_dump.map(|p| std::fs::canonicalize(&p).unwrap_or(p)),
        clone,
    })
}

/// The sandbox, with the clone's progress line on a terminal, then its summary and warnings.
async fn make(
    console: &Console,
    url: &DbUrl,
    req: &Request,
    settings: &Settings,
) -> std::result::Result<Sandbox, super::SandboxError> {
    let terminal = console.format == Format::Text && Console::is_terminal();
    let progress = |p: clone::Progress| {
        if terminal {
            anstream::eprint!("\r\x1b[2K· {}", p.line());
        }
    };
    let sb = Sandbox::create(url, req, &settings.env, &progress).await?;
    if terminal {
        anstream::eprintln!();
    }
    if let Some(r) = &sb.clone_report {
        console.step(&r.summary());
        for w in &r.warnings {
            console.warn(w);
        }
    }
    Ok(sb)
}

/// The run's artifacts folder for a kept dump, as `migrate` makes one (0700; clone.dump in it
/// is 0600).
fn dump_dir(project_dir: &Path) -> Result<PathBuf> {
    let dir = project_dir
        .join(".deployments")
        .join(format!("sandbox-{}", crate::util::unix_millis()));
    private_dir(&dir).map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// Make `dir` (and its parents) with `dir` itself private: 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Remove what dead runs left behind, Neon branches older than `[sandbox] neon_gc_age`
/// (default [`super::DEFAULT_NEON_GC_AGE`]) included.
pub async fn gc(settings: &Settings) -> Result<Collected> {
    let neon_age = match &settings.file.sandbox.neon_gc_age {
        Some(t) => crate::util::parse_duration(t)
            .map_err(|e| Error::usage(format!("[sandbox] neon_gc_age: {e}")))?,
        None => super::DEFAULT_NEON_GC_AGE,
    };
    Ok(super::gc(&settings.env, &GcOptions { neon_age }).await)
}
