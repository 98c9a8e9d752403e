//! The git steps of `deploy` and `rollback`, each from a fresh fetch and in its own temporary
//! worktree: the trial merge of PREFLIGHT, the merge and push of DEPLOY, and the two ways a
//! rollback undoes it (a revert commit, or a reset guarded by a lease).

use std::path::Path;

use super::{GitError, Merge, Push, Repo};

/// A pushed merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The branch tip the merge was made on (what a rollback returns to).
    pub before: String,
    pub merge_commit: String,
    /// The first push was rejected (the remote moved) and the merge was redone on the new tip.
    pub retried: bool,
}

/// Why a merge, revert or reset was not pushed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("the merge conflicts in {}", files.join(", "))]
    Conflict { files: Vec<String> },
    /// The reason names the remote and branch, and for the reset mode the commits found on top.
    #[error("push rejected: {reason}")]
    Rejected { reason: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// What a trial merge found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trial {
    /// The feature merges cleanly into the remote branch at `tip`, as the (throwaway) commit
    /// `merged`: what the deploy would push, to compare files with.
    Clean {
        tip: String,
        merged: String,
    },
    /// The remote branch at `tip` already contains the feature: there is no code step.
    AlreadyMerged {
        tip: String,
    },
    Conflict {
        tip: String,
        files: Vec<String>,
    },
}

/// The DEPLOY step: fetch `remote`'s `branch`, merge `feature` into its tip with --no-ff and
/// `message` in a temporary worktree, push. When the push is rejected (the remote moved, or
/// its hook declined), fetch again, merge again on the new tip (a conflict then is
/// [`MergeError::Conflict`]) and push once more; a second rejection is
/// [`MergeError::Rejected`]. A feature the branch already contains is an error
/// ([`MergeError::Git`], "already contained"), never an empty merge: callers learn it from
/// [`trial_merge`] first and skip the code step.
pub fn merge_and_push(
    repo: &Repo,
    parent: &Path,
    remote: &str,
    branch: &str,
    feature: &str,
    message: &str,
) -> Result<Merged, MergeError> {
    let feature_sha = repo.resolve(feature)?;
    with_one_retry(remote, branch, |retried| {
        let tip = repo.fetch(remote, branch)?;
        if repo.is_ancestor(&feature_sha, &tip)? {
            return Err(GitError::new(
                "merge",
                &format!("'{feature}' is already contained in {remote} {branch} ({tip}): nothing to merge"),
            )
            .into());
        }
        let wt = repo.worktree(parent, &tip)?;
        let merge_commit = match wt.merge(&feature_sha, message)? {
            Merge::Merged(sha) => sha,
            Merge::Conflict(files) => return Err(MergeError::Conflict { files }),
        };
        Ok(wt.push(remote, branch, None)?.then(|| Merged {
            before: tip,
            merge_commit,
            retried,
        }))
    })
}

/// The PREFLIGHT trial: fetch, merge `feature` into the remote branch's tip in a temporary
/// worktree, throw it away. The merge makes a real commit, so a missing committer identity or
/// a failing merge hook shows here, before anything changes.
pub fn trial_merge(
    repo: &Repo,
    parent: &Path,
    remote: &str,
    branch: &str,
    feature: &str,
) -> Result<Trial, GitError> {
    let feature_sha = repo.resolve(feature)?;
    let tip = repo.fetch(remote, branch)?;
    if repo.is_ancestor(&feature_sha, &tip)? {
        return Ok(Trial::AlreadyMerged { tip });
    }
    let wt = repo.worktree(parent, &tip)?;
    let message = format!("pgship trial merge of {feature} into {branch}");
    Ok(match wt.merge(&feature_sha, &message)? {
        Merge::Merged(merged) => Trial::Clean { tip, merged },
        Merge::Conflict(files) => Trial::Conflict { tip, files },
    })
}

/// Rollback, default mode: revert the merge commit `merge` (`-m 1`, keeping history) on the
/// remote branch's current tip with `message`, and push; retried once after a fetch when the
/// remote moved. The revert commit's sha. A merge that is not on the branch is an error.
pub fn revert_and_push(
    repo: &Repo,
    parent: &Path,
    remote: &str,
    branch: &str,
    merge: &str,
    message: &str,
) -> Result<String, MergeError> {
    let merge_sha = repo.resolve(merge)?;
    with_one_retry(remote, branch, |_| {
        let tip = repo.fetch(remote, branch)?;
        if !repo.is_ancestor(&merge_sha, &tip)? {
            return Err(GitError::new(
                "revert",
                &format!("{merge_sha} is not on {remote} {branch} ({tip}): nothing to revert"),
            )
            .into());
        }
        let wt = repo.worktree(parent, &tip)?;
        let revert = wt.revert_merge(&merge_sha, message)?;
        Ok(wt.push(remote, branch, None)?.then(|| revert))
    })
}

/// Rollback, `git_rollback = "reset"`: reset the branch to `to` and push with
/// `--force-with-lease=refs/heads/<branch>:<merge>`. When the remote is no longer at `merge`
/// (somebody pushed meanwhile) nothing is pushed and [`MergeError::Rejected`] names the
/// commits found on top of the merge. A branch already at `to` is left as it is.
pub fn reset_and_push(
    repo: &Repo,
    parent: &Path,
    remote: &str,
    branch: &str,
    to: &str,
    merge: &str,
) -> Result<(), MergeError> {
    let to_sha = repo.resolve(to)?;
    let merge_sha = repo.resolve(merge)?;
    let tip = repo.fetch(remote, branch)?;
    if tip == to_sha {
        return Ok(());
    }
    if tip != merge_sha {
        return Err(moved_on(repo, remote, branch, &merge_sha, &tip));
    }
    let wt = repo.worktree(parent, &tip)?;
    wt.reset_to(&to_sha)?;
    match wt.push(remote, branch, Some(&merge_sha))? {
        Push::Pushed => Ok(()),
        Push::Rejected(reason) => {
            let now = repo.fetch(remote, branch)?;
            if now == merge_sha {
                Err(MergeError::Rejected {
                    reason: format!("{remote} {branch}: {reason}"),
                })
            } else {
                Err(moved_on(repo, remote, branch, &merge_sha, &now))
            }
        }
    }
}

impl Push {
    /// `Some(value)` when pushed; the rejection's reason otherwise.
    fn then<T>(self, value: impl FnOnce() -> T) -> Result<T, String> {
        match self {
            Push::Pushed => Ok(value()),
            Push::Rejected(reason) => Err(reason),
        }
    }
}

/// Run `attempt` (given whether it is the retry); an inner `Err(reason)` is a rejected push,
/// retried once.
fn with_one_retry<T>(
    remote: &str,
    branch: &str,
    mut attempt: impl FnMut(bool) -> Result<Result<T, String>, MergeError>,
) -> Result<T, MergeError> {
    let first = match attempt(false)? {
        Ok(done) => return Ok(done),
        Err(reason) => reason,
    };
    attempt(true)?.map_err(|second| MergeError::Rejected {
        reason: format!("{remote} {branch} refused the push twice: first {first}; then {second}"),
    })
}

/// The refusal of the reset mode: `remote`'s `branch` is at `tip`, no longer at `merge`.
fn moved_on(repo: &Repo, remote: &str, branch: &str, merge: &str, tip: &str) -> MergeError {
    let commits = match repo.log_between(merge, tip) {
        Ok(lines) if lines.is_empty() => "no commit on top of it (the branch was rewritten)".into(),
        Ok(lines) => format!("commits on top of it: {}", shorten(&lines, 10)),
        Err(e) => format!("commits on top of it unknown ({e})"),
    };
    MergeError::Rejected {
        reason: format!(
            "{remote} {branch} is no longer at the merge {merge} but at {tip}, nothing pushed; {commits}"
        ),
    }
}

/// The first `n` lines joined, and how many more there are.
fn shorten(lines: &[String], n: usize) -> String {
    let mut s = lines.iter().take(n).cloned().collect::<Vec<_>>().join("; ");
    if lines.len() > n {
        s.push_str(&format!("; and {} more", lines.len() - n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rejections_fail_and_name_both() {
        let mut calls = 0;
        let r: Result<(), MergeError> = with_one_retry("origin", "develop", |retried| {
            calls += 1;
            assert_eq!(retried, calls == 2);
            Ok(Err(format!("no {calls}")))
        });
        assert_eq!(calls, 2);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("origin develop") && e.contains("no 1") && e.contains("no 2"),
            "{e}"
        );
        let ok = with_one_retry("o", "b", |retried| {
            Ok(if retried { Ok(7) } else { Err("x".into()) })
        });
        assert_eq!(ok.unwrap(), 7);
    }

    #[test]
    fn long_commit_lists_are_shortened() {
        let lines: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        assert_eq!(shorten(&lines[..2], 10), "c0; c1");
        assert!(shorten(&lines, 10).ends_with("c9; and 2 more"));
    }
}
