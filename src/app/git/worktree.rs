//! A temporary detached worktree of the user's repository, where merges, reverts and resets
//! happen and from where they are pushed. Dropping it removes it, so it goes away on failure,
//! on `?`, on a panic and when the future holding it is dropped; folders left by a killed run
//! are removed by the next one.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::run::{self, Out};
use super::{GitError, Repo, branch_ref, check_remote_in, resolve_in};

/// Worktree folders are `pgship-git-<pid>-<random>`, the pid of the pgship that made them.
const PREFIX: &str = "pgship-git-";

/// A detached worktree in a private folder; removed (`git worktree remove --force`, then
/// `git worktree prune`) when dropped.
#[derive(Debug)]
pub struct Worktree {
    path: PathBuf,
    top: PathBuf,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The merge commit's sha.
    Merged(String),
    /// The merge conflicted in these paths; it was aborted, the worktree is back at its start.
    Conflict(Vec<String>),
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Pushed,
    /// The remote did not take the ref: it moved (non-fast-forward, fetch first), the lease
    /// is stale, or the remote's hook declined it. The reason says which.
    Rejected(String),
}

impl Worktree {
    pub(super) fn add(repo: &Repo, parent: &Path, at: &str) -> Result<Worktree, GitError> {
        let action = "worktree";
        let sha = repo.resolve(at)?;
        let io =
            |p: &Path, e: std::io::Error| GitError::new(action, &format!("{}: {e}", p.display()));
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        let parent = parent.canonicalize().map_err(|e| io(parent, e))?;
        remove_stale(repo.top(), &parent);
        run::ok(repo.top(), action, &["worktree", "prune"])?;
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            crate::util::random_hex(6)
        );
        let path = parent.join(name);
        // `create` (not `create_all`) fails if the name exists, so nobody can plant it.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| io(&path, e))?;
        let wt = Worktree {
            path,
            top: repo.top().to_path_buf(),
        };
        let dir = wt.path.to_string_lossy().into_owned();
        let args = ["worktree", "add", "--detach", "--quiet", &dir, &sha];
        // LFS files stay pointers: the merge needs the blobs git has, not their downloads.
        let out = run::run_with(repo.top(), action, &args, &[("GIT_LFS_SKIP_SMUDGE", "1")])?;
        if !out.ok() {
            return Err(out.error(action));
        }
        Ok(wt)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn head(&self) -> Result<String, GitError> {
        resolve_in(&self.path, "HEAD")
    }

    /// Merge `commit` with --no-ff and `message` (the user's hooks and signing apply; rerere
    /// does not, so the outcome does not depend on remembered resolutions). A conflict aborts
    /// the merge (the worktree is back at its start) and returns the conflicting paths. A
    /// `commit` already contained in HEAD is an error: no empty merge is made.
    pub fn merge(&self, commit: &str, message: &str) -> Result<Merge, GitError> {
        let action = "merge";
        let start = self.head()?;
        let sha = resolve_in(&self.path, commit)?;
        let args = [
            "-c",
            "rerere.enabled=false",
            "merge",
            "--no-ff",
            "--no-edit",
            "-m",
            message,
            &sha,
        ];
        let out = run::run(&self.path, action, &args)?;
        if !out.ok() {
            return self
                .undo_failed(action, &out, &start, &["merge", "--abort"])
                .map(Merge::Conflict);
        }
        let head = self.head()?;
        if head == start {
            return Err(GitError::new(
                action,
                &format!("'{commit}' is already contained in {start}: nothing to merge"),
            ));
        }
        Ok(Merge::Merged(head))
    }

    /// Revert the merge commit `merge` (`git revert --no-commit -m 1`, then `git commit -m
    /// message`); the new commit's sha. A conflict (the branch changed the same lines since)
    /// or a revert that changes nothing is an error, and the worktree is back at its start.
    pub fn revert_merge(&self, merge: &str, message: &str) -> Result<String, GitError> {
        let action = "revert";
        let start = self.head()?;
        let sha = resolve_in(&self.path, merge)?;
        let out = run::run(
            &self.path,
            action,
            &["revert", "--no-commit", "-m", "1", &sha],
        )?;
        if !out.ok() {
            let files = self.undo_failed(action, &out, &start, &["revert", "--abort"])?;
            return Err(GitError::new(
                action,
                &format!("reverting {sha} conflicts in {}", files.join(", ")),
            ));
        }
        let staged = run::run(&self.path, action, &["diff", "--cached", "--quiet"])?;
        if staged.ok() {
            self.back_to(&start, &["revert", "--abort"]);
            return Err(GitError::new(
                action,
                &format!("reverting {sha} changes nothing: its changes are already gone"),
            ));
        }
        let out = run::run(
            &self.path,
            "commit",
            &["commit", "--no-edit", "-m", message],
        )?;
        if !out.ok() {
            self.back_to(&start, &["revert", "--abort"]);
            return Err(out.error("commit"));
        }
        self.head()
    }

    /// `git reset --hard <commit>` in the worktree (for the reset rollback mode).
    pub fn reset_to(&self, commit: &str) -> Result<(), GitError> {
        let sha = resolve_in(&self.path, commit)?;
        run::ok(&self.path, "reset", &["reset", "--hard", "--quiet", &sha]).map(drop)
    }

    /// Push HEAD to `refs/heads/<branch>` on `remote` (a remote's name, never a URL), reading
    /// `--porcelain`. `lease = Some(sha)` pushes with
    /// `--force-with-lease=refs/heads/<branch>:<sha>`: the remote must still be at `sha`, and
    /// then need not be an ancestor. A rejected ref is `Ok(Push::Rejected)`; a push that fails
    /// otherwise (auth, network, the local pre-push hook) is an error.
    pub fn push(&self, remote: &str, branch: &str, lease: Option<&str>) -> Result<Push, GitError> {
        let action = "push";
        check_remote_in(&self.path, remote)?;
        let refname = branch_ref(&self.path, branch)?;
        let lease = match lease {
            Some(rev) => Some(format!(
                "--force-with-lease={refname}:{}",
                resolve_in(&self.path, rev)?
            )),
            None => None,
        };
        let dst = format!("HEAD:{refname}");
        let mut args = vec!["push", "--porcelain"];
        args.extend(lease.as_deref());
        args.extend([remote, dst.as_str()]);
        let out = run::run(&self.path, action, &args)?;
        match porcelain_status(&out.stdout, &refname) {
            Some(Flag::Rejected(summary)) => Ok(Push::Rejected(rejection(&summary, &out.stderr))),
            Some(Flag::Done) if out.ok() => Ok(Push::Pushed),
            _ => Err(GitError::new(
                action,
                &format!("{remote} {branch}: {}", out.error(action).message),
            )),
        }
    }

    /// After a failed merge or revert: the unmerged paths, and the worktree back at `start`.
    /// No unmerged path means it failed for another reason: that is the error.
    fn undo_failed(
        &self,
        action: &str,
        out: &Out,
        start: &str,
        abort: &[&str],
    ) -> Result<Vec<String>, GitError> {
        let unmerged = run::ok_raw(
            &self.path,
            action,
            &["diff", "--name-only", "--diff-filter=U", "-z"],
        );
        self.back_to(start, abort);
        let files: Vec<String> = unmerged?
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(|p| crate::http::sanitize(p, ""))
            .collect();
        if files.is_empty() {
            Err(out.error(action))
        } else {
            Ok(files)
        }
    }

    /// Abort what is in progress and reset hard to `start`; best effort (the worktree is
    /// thrown away afterwards anyway).
    fn back_to(&self, start: &str, abort: &[&str]) {
        let _ = run::run(&self.path, "abort", abort);
        let _ = run::run(&self.path, "reset", &["reset", "--hard", "--quiet", start]);
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        remove(&self.top, &self.path);
    }
}

/// Remove the worktree at `path` and its folder, then prune; best effort.
fn remove(top: &Path, path: &Path) {
    let dir = path.to_string_lossy();
    // Twice --force: also when it is locked.
    let _ = run::run(
        top,
        "worktree",
        &["worktree", "remove", "--force", "--force", &dir],
    );
    let _ = std::fs::remove_dir_all(path);
    let _ = run::run(top, "worktree", &["worktree", "prune"]);
}

/// Worktrees (any registered one, and any folder under `parent`) that a pgship process made
/// and that process is gone: it was killed mid-run.
fn remove_stale(top: &Path, parent: &Path) {
    let listed = run::ok(top, "worktree", &["worktree", "list", "--porcelain"]).unwrap_or_default();
    let registered = listed
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(PathBuf::from);
    let folders = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    for path in registered.chain(folders) {
        if is_stale(&path) {
            remove(top, &path);
        }
    }
}

/// `path` is named `pgship-git-<pid>-…` and that process no longer runs.
fn is_stale(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX))
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !crate::cluster::process_alive(pid))
}

enum Flag {
    Done,
    Rejected(String),
}

/// The porcelain line for `refname`: `<flag>\t<from>:<to>\t<summary>`; `!` is a rejection.
fn porcelain_status(stdout: &str, refname: &str) -> Option<Flag> {
    stdout.lines().find_map(|line| {
        let mut fields = line.splitn(3, '\t');
        let flag = fields.next()?;
        let refs = fields.next()?;
        if !refs.ends_with(&format!(":{refname}")) {
            return None;
        }
        let summary = fields.next().unwrap_or("").trim().to_string();
        Some(if flag == "!" {
            Flag::Rejected(summary)
        } else {
            Flag::Done
        })
    })
}

/// A rejection's reason: git's summary explained, and what the remote said (its hook's
/// output), scrubbed.
fn rejection(summary: &str, stderr: &str) -> String {
    let why = if summary.contains("fetch first") || summary.contains("non-fast-forward") {
        "the remote branch moved: it has commits this push lacks"
    } else if summary.contains("stale info") {
        "the remote branch is no longer at the expected commit (stale lease)"
    } else if summary.contains("remote rejected") {
        "the remote refused the update"
    } else {
        "the remote did not take it"
    };
    let remote: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("remote:") && l.len() > "remote:".len())
        .collect();
    let mut reason = format!("{summary}: {why}");
    if !remote.is_empty() {
        reason = format!("{reason} ({})", remote.join("; "));
    }
    crate::http::sanitize(&reason, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_lines_are_read_for_the_ref() {
        let out = "To /tmp/o.git\n!\tHEAD:refs/heads/develop\t[rejected] (fetch first)\nDone\n";
        match porcelain_status(out, "refs/heads/develop") {
            Some(Flag::Rejected(s)) => assert_eq!(s, "[rejected] (fetch first)"),
            _ => panic!("not a rejection"),
        }
        assert!(porcelain_status(out, "refs/heads/main").is_none());
        let ok = "To /tmp/o.git\n \tHEAD:refs/heads/main\t1a2b..3c4d\nDone\n";
        assert!(matches!(
            porcelain_status(ok, "refs/heads/main"),
            Some(Flag::Done)
        ));
    }

    #[test]
    fn rejections_say_why_and_keep_the_remote_message() {
        let r = rejection(
            "[remote rejected] (pre-receive hook declined)",
            "remote: branch is frozen        \nerror: failed to push some refs to 'http://u:CANARY@h/x'\n",
        );
        assert!(
            r.contains("pre-receive hook declined") && r.contains("branch is frozen"),
            "{r}"
        );
        assert!(!r.contains("CANARY") && !r.contains("error:"), "{r}");
        assert!(rejection("[rejected] (stale info)", "").contains("stale lease"));
    }
}
