//! git for the code half of a deployment, with the real `git` binary so that the user's
//! credential helpers, SSH configuration, hooks and commit signing work as in their shell.
//!
//! Rules this module keeps (callers cannot forget them):
//! - every process gets an argument list, never a shell, and `GIT_TERMINAL_PROMPT=0`,
//!   `LC_ALL=C`, `GIT_EDITOR=true`, `GIT_MERGE_AUTOEDIT=no` (see `run`);
//! - remotes are named, never given as URLs, so no URL (and no token in one) is ever an
//!   argument; everything git prints that reaches an error is scrubbed by
//!   [`crate::http::sanitize`];
//! - merges, reverts and resets happen in a temporary detached worktree ([`Worktree`]), removed
//!   when it is dropped: the user's checkout, index, stash, current branch and HEAD are never
//!   touched. Branch refs of the user's repository are never written either; a fetch updates
//!   only `FETCH_HEAD` and the remote-tracking branch, as `git fetch` does.
//!
//! The API is blocking: async callers run it with `tokio::task::spawn_blocking`.
//! [`merge_and_push`], [`trial_merge`], [`revert_and_push`] and [`reset_and_push`] are the
//! steps `deploy` and `rollback` take; nothing here knows the pipeline.

mod flow;
mod run;
mod worktree;

use std::path::{Path, PathBuf};

pub use flow::{
    MergeError, Merged, Trial, merge_and_push, reset_and_push, revert_and_push, trial_merge,
};
pub use run::LOCATION;
pub use worktree::{Merge, Push, Worktree};

/// A failed git step: what pgship was doing, and git's message (scrubbed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("git {action}: {message}")]
pub struct GitError {
    pub action: String,
    pub message: String,
}

impl GitError {
    /// An error whose message is scrubbed of URL passwords, bearer tokens and control
    /// characters.
    pub fn new(action: &str, message: &str) -> GitError {
        GitError {
            action: action.to_string(),
            message: crate::http::sanitize(message, ""),
        }
    }
}

/// A git repository's working tree, by its top-level folder.
#[derive(Debug, Clone)]
pub struct Repo {
    top: PathBuf,
}

impl Repo {
    /// The repository holding `dir` (`git rev-parse --show-toplevel`); None outside one.
    pub fn discover(dir: &Path) -> Result<Option<Repo>, GitError> {
        let out = run::run(dir, "rev-parse", &["rev-parse", "--show-toplevel"])?;
        if out.ok() {
            return Ok(Some(Repo {
                top: PathBuf::from(out.stdout.trim_end_matches(['\n', '\r'])),
            }));
        }
        if out.stderr.contains("not a git repository") {
            return Ok(None);
        }
        Err(out.error("rev-parse"))
    }

    pub fn top(&self) -> &Path {
        &self.top
    }

    /// The checked-out branch; None on a detached HEAD.
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let out = run::run(&self.top, "symbolic-ref", &["symbolic-ref", "-q", "HEAD"])?;
        match out.code {
            Some(0) => {
                let r = out.stdout.trim();
                Ok(Some(r.strip_prefix("refs/heads/").unwrap_or(r).to_string()))
            }
            Some(1) => Ok(None),
            _ => Err(out.error("symbolic-ref")),
        }
    }

    /// A revision's commit sha (`rev-parse --verify <rev>^{commit}`), error naming the rev.
    pub fn resolve(&self, rev: &str) -> Result<String, GitError> {
        resolve_in(&self.top, rev)
    }

    /// Tracked files with uncommitted changes, staged or not (untracked files ignored), as
    /// paths relative to the top. Reads without refreshing the index on disk.
    pub fn dirty_tracked(&self) -> Result<Vec<String>, GitError> {
        let args = [
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=no",
            "--ignore-submodules=none",
        ];
        let out = run::ok_raw(&self.top, "status", &args)?;
        Ok(parse_status_z(&out))
    }

    /// The remote's URL exists (`git remote get-url`), without returning it. Error names the
    /// remote. This is also what makes every remote argument a name, never a URL.
    pub fn check_remote(&self, remote: &str) -> Result<(), GitError> {
        check_remote_in(&self.top, remote)
    }

    /// `git fetch <remote> <branch>`; the remote branch's tip sha. A branch missing on the
    /// remote is an error naming remote and branch. Tags are not fetched (a moved tag would
    /// fail the fetch) and submodules are not recursed into.
    pub fn fetch(&self, remote: &str, branch: &str) -> Result<String, GitError> {
        let action = "fetch";
        self.check_remote(remote)?;
        let refname = branch_ref(&self.top, branch)?;
        let args = [
            "fetch",
            "--no-tags",
            "--recurse-submodules=no",
            remote,
            &refname,
        ];
        let out = run::run(&self.top, action, &args)?;
        if !out.ok() {
            if out.stderr.contains("couldn't find remote ref") {
                return Err(GitError::new(
                    action,
                    &format!("branch '{branch}' not found on remote '{remote}'"),
                ));
            }
            let e = out.error(action);
            return Err(GitError::new(
                action,
                &format!("{remote} {branch}: {}", e.message),
            ));
        }
        resolve_in(&self.top, "FETCH_HEAD")
    }

    /// `git merge-base --is-ancestor a b`.
    pub fn is_ancestor(&self, a: &str, b: &str) -> Result<bool, GitError> {
        let a = self.resolve(a)?;
        let b = self.resolve(b)?;
        let action = "merge-base";
        let out = run::run(&self.top, action, &["merge-base", "--is-ancestor", &a, &b])?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(out.error(action)),
        }
    }

    /// A detached worktree at `at` in a fresh folder under `parent` (created 0700).
    pub fn worktree(&self, parent: &Path, at: &str) -> Result<Worktree, GitError> {
        Worktree::add(self, parent, at)
    }

    /// The files among `paths` (in the working tree) that `commit` does not hold as they are on
    /// disk: absent there (untracked, or on another branch), or with other content (`git
    /// hash-object` of the file against the blob at `commit:<path>`).
    pub fn not_at(&self, commit: &str, paths: &[PathBuf]) -> Result<Vec<PathBuf>, GitError> {
        let mut out = Vec::new();
        for path in paths {
            let (Some(dir), Some(name)) =
                (path.parent(), path.file_name().and_then(|n| n.to_str()))
            else {
                out.push(path.clone());
                continue;
            };
            let spec = format!("{commit}:./{name}");
            let args = [
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ];
            let there = run::run(dir, "rev-parse", &args)?;
            let here = run::ok(dir, "hash-object", &["hash-object", "--", name])?;
            if !there.ok() || there.stdout.trim() != here {
                out.push(path.clone());
            }
        }
        Ok(out)
    }

    /// `git log --format=%h %s from..to`: the commits on `to` that `from` lacks, one a line.
    pub fn log_between(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        let range = format!("{}..{}", self.resolve(from)?, self.resolve(to)?);
        let out = run::ok(&self.top, "log", &["log", "--format=%h %s", &range])?;
        Ok(out.lines().map(|l| crate::http::sanitize(l, "")).collect())
    }
}

/// [`Repo::check_remote`] in `dir`.
fn check_remote_in(dir: &Path, remote: &str) -> Result<(), GitError> {
    let action = "remote";
    if remote.is_empty() || remote.starts_with('-') {
        return Err(GitError::new(
            action,
            &format!("'{remote}' is not a remote name"),
        ));
    }
    let out = run::run(dir, action, &["remote", "get-url", remote])?;
    if out.ok() {
        Ok(())
    } else if out.stderr.contains("No such remote") {
        Err(GitError::new(
            action,
            &format!("no remote named '{remote}' (`git remote -v` lists them)"),
        ))
    } else {
        Err(out.error(action))
    }
}

/// `rev-parse --verify <rev>^{commit}` in `dir`.
fn resolve_in(dir: &Path, rev: &str) -> Result<String, GitError> {
    let spec = format!("{rev}^{{commit}}");
    let args = [
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &spec,
    ];
    let out = run::run(dir, "rev-parse", &args)?;
    match out.code {
        Some(0) => Ok(out.stdout.trim().to_string()),
        Some(1) => Err(GitError::new(
            "rev-parse",
            &format!("no commit named '{rev}'"),
        )),
        _ => Err(out.error("rev-parse")),
    }
}

/// `refs/heads/<branch>`, checked by `git check-ref-format` (error naming the branch).
fn branch_ref(dir: &Path, branch: &str) -> Result<String, GitError> {
    let refname = format!("refs/heads/{branch}");
    let out = run::run(dir, "check-ref-format", &["check-ref-format", &refname])?;
    if out.ok() && !branch.starts_with('-') {
        Ok(refname)
    } else {
        Err(GitError::new(
            "check-ref-format",
            &format!("'{branch}' is not a valid branch name"),
        ))
    }
}

/// Paths from `git status --porcelain=v1 -z`: `XY path`, and for renames and copies the new
/// path followed by the old one as its own field (skipped).
fn parse_status_z(out: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        let Some((xy, path)) = entry.split_at_checked(3) else {
            continue;
        };
        if xy.starts_with(['R', 'C']) {
            fields.next();
        }
        paths.push(path.to_string());
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_paths_include_renames_once() {
        let z = " M src/a.ts\0M  b.ts\0R  new.ts\0old.ts\0A  c d.ts\0";
        assert_eq!(
            parse_status_z(z),
            vec!["src/a.ts", "b.ts", "new.ts", "c d.ts"]
        );
        assert!(parse_status_z("").is_empty());
    }

    #[test]
    fn errors_are_scrubbed() {
        let e = GitError::new("fetch", "fatal: http://u:CANARY@h/x\n");
        assert_eq!(e.to_string(), "git fetch: fatal: http://u:***@h/x");
    }
}
