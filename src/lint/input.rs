//! What `pgship lint` reads: the migrations of a source, and the files and folders named on the
//! command line. A folder that is a migrations folder, told and listed exactly as every other
//! command tells and lists one ([`source::detect`], [`source::list_as`]), is linted as
//! pgship's engine applies it: only the migrations its journal (or naming) lists, in their
//! order, in the engine's transactions, so `pgship lint DIR` and `pgship lint --migrations DIR`
//! agree. Any other folder: its `.sql` files, recursively, each a loose file.
//!
//! Inputs are listed first and each file is read only when its turn comes
//! ([`Input::read`]), so a run holds one file's text at a time.
//!
//! The only file IO of the linter besides [`super::catalog::load`]'s queries.

use std::path::{Path, PathBuf};

use super::Wrap;
use super::run::Text;
use crate::source::{self, Listed, SourceError, SourceKind, split};

/// A file to lint, not read yet.
#[derive(Debug, Clone)]
pub struct Input {
    /// The name findings carry: the path relative to the project when it is inside it.
    pub name: String,
    pub path: PathBuf,
    /// Split at `--> statement-breakpoint` first, as drizzle does; `None`: when the text holds
    /// one (a loose file).
    pub drizzle: Option<bool>,
    pub wrap: Wrap,
}

impl Input {
    /// Read the file (UTF-8 text, or an error naming it).
    pub fn read(&self) -> Result<Text, SourceError> {
        let bytes = fs_err::read(&self.path).map_err(|e| SourceError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| SourceError::invalid(&self.path, "not UTF-8 text"))?;
        // A Drizzle migration is refused where the engine refuses to read it.
        if self.drizzle == Some(true) {
            source::check_drizzle_text(&self.path, &text)?;
        }
        Ok(Text {
            name: self.name.clone(),
            drizzle: self
                .drizzle
                .unwrap_or_else(|| text.contains(split::BREAKPOINT)),
            text,
            wrap: self.wrap,
        })
    }
}

/// `path` relative to `project` when inside it, else as given.
pub fn display(project: &Path, path: &Path) -> String {
    let base = project
        .canonicalize()
        .unwrap_or_else(|_| project.to_path_buf());
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    full.strip_prefix(&base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// The inputs of the migrations `listed` of a source of `kind`, in the order given, run with
/// `wrap`.
pub fn from_migrations<'a>(
    project: &Path,
    kind: SourceKind,
    listed: impl IntoIterator<Item = &'a Listed>,
    wrap: Wrap,
) -> Vec<Input> {
    listed
        .into_iter()
        .map(|m| Input {
            name: display(project, &m.path),
            path: m.path.clone(),
            drizzle: Some(kind != SourceKind::Sql),
            wrap,
        })
        .collect()
}

/// The inputs of the files and folders `paths` (relative to `project` unless absolute):
/// migrations folders run with `engine`, loose files with `loose`.
pub fn read_paths(
    project: &Path,
    paths: &[PathBuf],
    loose: Wrap,
    engine: Wrap,
) -> Result<Vec<Input>, SourceError> {
    let mut out = Vec::new();
    for p in paths {
        let full = if p.is_absolute() {
            p.clone()
        } else {
            project.join(p)
        };
        if full.is_dir() {
            folder(project, &full, loose, engine, &mut out)?;
        } else if full.is_file() {
            out.push(file(project, &full, loose));
        } else {
            return Err(SourceError::invalid(p, "no such file or folder"));
        }
    }
    Ok(out)
}

/// A folder: a migrations folder as the engine applies it, else its `.sql` files and
/// subfolders. A Drizzle folder that does not list (a journal entry without its file, ...) is
/// an error, as for every other command; a folder of `.sql` files whose names are not
/// migration names is a folder of loose files.
fn folder(
    project: &Path,
    dir: &Path,
    loose: Wrap,
    engine: Wrap,
    out: &mut Vec<Input>,
) -> Result<(), SourceError> {
    let listed = match source::detect(dir) {
        Ok(kind @ (SourceKind::Drizzle | SourceKind::DrizzleV1)) => {
            Some((kind, source::list_as(dir, kind)?))
        }
        Ok(SourceKind::Sql) => source::list_as(dir, SourceKind::Sql)
            .ok()
            .map(|l| (SourceKind::Sql, l)),
        Err(_) => None,
    };
    if let Some((kind, listed)) = listed {
        out.extend(from_migrations(project, kind, &listed, engine));
        return Ok(());
    }
    let io = |e: std::io::Error| SourceError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut entries: Vec<PathBuf> = fs_err::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            folder(project, &p, loose, engine, out)?;
        } else if p.extension().is_some_and(|e| e == "sql") {
            out.push(file(project, &p, loose));
        }
    }
    Ok(())
}

fn file(project: &Path, path: &Path, wrap: Wrap) -> Input {
    Input {
        name: display(project, path),
        path: path.to_path_buf(),
        drizzle: None,
        wrap,
    }
}
