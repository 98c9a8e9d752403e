//! Finding `pg_dump` and `pg_restore` whose major version is at least the server's (pg_dump
//! refuses to dump a newer server), and the server binaries for throwaway clusters.
//!
//! Candidates, in order of preference: `$PGSHIP_PG_BIN`, `/usr/lib/postgresql/*/bin`, then
//! every `PATH` entry. Among those that qualify pgship takes `$PGSHIP_PG_BIN` if it
//! qualifies, else the lowest qualifying major (closest to the server).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of PostgreSQL binaries and their major version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BinDir {
    pub dir: PathBuf,
    /// e.g. `15.20`.
    pub version: String,
    pub major: u32,
    /// Whether it came from `$PGSHIP_PG_BIN`.
    pub preferred: bool,
}

impl BinDir {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Every directory that holds all of `programs`, with the version `--version` reports for the
/// first of them.
pub fn candidates(programs: &[&str]) -> Vec<BinDir> {
    let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
    if let Some(p) = std::env::var_os("PGSHIP_PG_BIN").filter(|p| !p.is_empty()) {
        dirs.push((PathBuf::from(p), true));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .collect();
        found.sort();
        dirs.extend(found.into_iter().map(|d| (d, false)));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).map(|d| (d, false)));
    }
    let mut out: Vec<BinDir> = Vec::new();
    for (dir, preferred) in dirs {
        if !programs.iter().all(|p| is_executable(&dir.join(p))) {
            continue;
        }
        let canonical = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if out
            .iter()
            .any(|b| std::fs::canonicalize(&b.dir).unwrap_or_else(|_| b.dir.clone()) == canonical)
        {
            continue;
        }
        if let Some(version) = version_of(&dir.join(programs[0])) {
            let major = major_of(&version);
            out.push(BinDir {
                dir,
                version,
                major,
                preferred,
            });
        }
    }
    out
}

/// Pick the directory to use for a server of major `server_major` (or any, if `None`).
pub fn choose(cands: &[BinDir], server_major: Option<u32>) -> Option<BinDir> {
    let ok = |b: &&BinDir| server_major.is_none_or(|m| b.major >= m);
    if let Some(p) = cands.iter().filter(ok).find(|b| b.preferred) {
        return Some(p.clone());
    }
    match server_major {
        Some(_) => cands.iter().filter(ok).min_by_key(|b| b.major).cloned(),
        None => cands.iter().max_by_key(|b| b.major).cloned(),
    }
}

/// `pg_dump`/`pg_restore` for a server, or an explanation of what was found instead.
pub fn find_dump_tools(server_major: u32) -> Result<BinDir, String> {
    let cands = candidates(&["pg_dump", "pg_restore"]);
    choose(&cands, Some(server_major)).ok_or_else(|| {
        let found: Vec<String> =
            cands.iter().map(|b| format!("{} ({})", b.dir.display(), b.version)).collect();
        format!(
            "no pg_dump/pg_restore of major version {server_major} or newer found{}; install postgresql-client-{server_major} or set PGSHIP_PG_BIN to its bin directory",
            if found.is_empty() { String::new() } else { format!(" (found: {})", found.join(", ")) }
        )
    })
}

/// The binaries in `dir`, if `program` there runs and reports a version.
pub fn at(dir: &Path, program: &str) -> Option<BinDir> {
    let version = version_of(&dir.join(program))?;
    Some(BinDir {
        dir: dir.to_path_buf(),
        major: major_of(&version),
        version,
        preferred: true,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` -> `15.20`.
fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_digit())
                .to_string()
        })
}

fn major_of(version: &str) -> u32 {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n").as_deref(),
            Some("15.20")
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 18.6\n").as_deref(),
            Some("18.6")
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 19devel\n").as_deref(),
            Some("19")
        );
        assert_eq!(major_of("9.6.24"), 9);
        assert_eq!(major_of("18.6"), 18);
    }

    #[test]
    fn choosing() {
        let b = |major: u32, preferred: bool| BinDir {
            dir: PathBuf::from(format!("/pg/{major}")),
            version: format!("{major}.1"),
            major,
            preferred,
        };
        let c = vec![b(15, false), b(18, false), b(16, false)];
        assert_eq!(choose(&c, Some(15)).unwrap().major, 15);
        assert_eq!(choose(&c, Some(17)).unwrap().major, 18);
        assert_eq!(choose(&c, Some(19)), None);
        assert_eq!(choose(&c, None).unwrap().major, 18);
        let c = vec![b(15, false), b(18, true)];
        assert_eq!(choose(&c, Some(15)).unwrap().major, 18);
    }

    #[test]
    fn finds_real_tools_or_explains() {
        match find_dump_tools(99) {
            Ok(b) => panic!("found a pg_dump 99: {b:?}"),
            Err(e) => assert!(
                e.contains("major version 99") && e.contains("PGSHIP_PG_BIN"),
                "{e}"
            ),
        }
    }
}
