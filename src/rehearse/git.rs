//! The project's git state, as PREFLIGHT records it: branch, HEAD commit, and whether the
//! working tree has uncommitted changes. A plan only reports it; the deploy refuses
//! uncommitted changes inside the migrations folder ([`dirty_in`]) unless `--allow-dirty`.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitState {
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    pub commit: String,
    /// No uncommitted changes to tracked files and no untracked files outside .gitignore.
    pub clean: bool,
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The state of the repository holding `dir`; `None` when it is not in one (or git is
/// missing).
pub fn state(dir: &Path) -> Option<GitState> {
    let commit = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    let branch = git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]);
    let status = git(dir, &["status", "--porcelain"])?;
    Some(GitState {
        branch,
        commit,
        clean: status.is_empty(),
    })
}

/// Uncommitted changes (modified, staged, deleted or untracked files) under `sub`, as git
/// lists them; empty outside a repository.
pub fn dirty_in(dir: &Path, sub: &Path) -> Vec<String> {
    let Some(sub) = sub.to_str() else {
        return Vec::new();
    };
    git(
        dir,
        &["status", "--porcelain", "--untracked-files=all", "--", sub],
    )
    .map(|s| s.lines().map(|l| l.trim().to_string()).collect())
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn branch_commit_and_dirtiness() {
        let d = std::env::temp_dir().join(format!("pgship-git-{}", crate::util::random_hex(4)));
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(state(&d), None, "not a repository");
        run(&d, &["init", "-q", "-b", "feature"]);
        assert_eq!(state(&d), None, "no commit yet");
        std::fs::write(d.join("a.sql"), "SELECT 1;\n").unwrap();
        run(&d, &["add", "a.sql"]);
        run(&d, &["commit", "-q", "-m", "one"]);
        let s = state(&d).unwrap();
        assert_eq!(s.branch.as_deref(), Some("feature"));
        assert_eq!(s.commit.len(), 40);
        assert!(s.clean);
        std::fs::write(d.join("a.sql"), "SELECT 2;\n").unwrap();
        assert!(!state(&d).unwrap().clean);
        run(&d, &["checkout", "-q", "--detach"]);
        assert_eq!(state(&d).unwrap().branch, None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
