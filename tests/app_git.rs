//! The git layer of `deploy`'s code half (src/app/git.rs) against real git: a bare repository
//! on disk as `origin`, the user's clone (a feature branch checked out, a stash entry, an
//! untracked file), and another clone that pushes meanwhile. Every case also checks that the
//! user's checkout is exactly as before and that no temporary worktree is left.

use std::path::{Path, PathBuf};
use std::process::Command;

use pgship::app::git::{
    GitError, Merge, MergeError, Push, Repo, Trial, merge_and_push, reset_and_push,
    revert_and_push, trial_merge,
};

const FEATURE: &str = "feature/login";
const LEAKY_URL: &str = "http://user:CANARY@127.0.0.1:1/x.git";

/// `git <args>` in `dir`, which must succeed; stdout trimmed. Never traced, never refreshing
/// the index (the snapshots compare its bytes).
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_TRACE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn hook(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    write(path, &format!("#!/bin/sh\n{script}\n"));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Everything of the user's checkout that pgship must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    index: Vec<u8>,
    status: String,
    head: String,
    symref: String,
    stash: String,
    branches: String,
}

struct Fx {
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    origin: PathBuf,
    user: PathBuf,
    other: PathBuf,
    parent: PathBuf,
    repo: Repo,
    feature: String,
    develop: String,
}

const APP: &str = "line 1\nline 2\nline 3\nline 4\nline 5\n";

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let mut fx = Fx::new_in(&root);
        fx._tmp = Some(tmp);
        fx
    }

    /// origin (bare), the user's clone with `main`, `develop` (both pushed) and the feature
    /// branch checked out, and another clone on `develop`.
    fn new_in(root: &Path) -> Fx {
        let origin = root.join("origin.git");
        let user = root.join("user");
        let other = root.join("other");
        git(root, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
        git(root, &["init", "-q", "-b", "main", "user"]);
        identity(&user);
        git(
            &user,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        write(&user.join(".gitignore"), ".deployments/\n");
        write(&user.join("README.md"), "# app\n");
        write(&user.join("app.ts"), APP);
        commit_all(&user, "init");
        git(&user, &["push", "-q", "origin", "main"]);
        git(&user, &["checkout", "-q", "-b", "develop"]);
        write(&user.join("config.ts"), "export const x = 1;\n");
        commit_all(&user, "develop: config");
        git(&user, &["push", "-q", "-u", "origin", "develop"]);
        git(&user, &["checkout", "-q", "-b", FEATURE]);
        write(
            &user.join("app.ts"),
            &APP.replace("line 2", "line 2: login"),
        );
        commit_all(&user, "feature: login");
        write(&user.join("README.md"), "# app, work in progress\n");
        git(&user, &["stash", "push", "-q", "-m", "wip"]);
        write(&user.join("notes.txt"), "untracked\n");
        // A tracked file whose stat data the index no longer matches: any command that
        // refreshed the index on disk would rewrite it (the snapshots compare its bytes).
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let f = std::fs::File::options()
            .write(true)
            .open(user.join(".gitignore"))
            .unwrap();
        f.set_modified(old).unwrap();
        git(
            root,
            &["clone", "-q", "-b", "develop", "origin.git", "other"],
        );
        identity(&other);
        let repo = Repo::discover(&user).unwrap().expect("a repository");
        Fx {
            _tmp: None,
            feature: git(&user, &["rev-parse", FEATURE]),
            develop: git(&user, &["rev-parse", "develop"]),
            parent: user.join(".deployments/dep-1"),
            root: root.to_path_buf(),
            origin,
            user,
            other,
            repo,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let u = &self.user;
        Snapshot {
            index: std::fs::read(u.join(".git/index")).unwrap(),
            status: git(u, &["status", "--porcelain=v1", "--untracked-files=all"]),
            head: git(u, &["rev-parse", "HEAD"]),
            symref: git(u, &["symbolic-ref", "HEAD"]),
            stash: git(u, &["stash", "list", "--format=%H %s"]),
            branches: git(u, &["for-each-ref", "refs/heads", "refs/stash"]),
        }
    }

    /// The checkout is as `before`, only the user's worktree is listed, and no folder is left
    /// under the deployment's parent.
    fn assert_untouched(&self, before: &Snapshot) {
        assert_eq!(&self.snapshot(), before, "the user's checkout changed");
        let list = git(&self.user, &["worktree", "list", "--porcelain"]);
        let worktrees: Vec<&str> = list
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .collect();
        assert_eq!(worktrees.len(), 1, "worktrees left: {list}");
        if let Ok(entries) = std::fs::read_dir(&self.parent) {
            let left: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            assert!(left.is_empty(), "left under the parent: {left:?}");
        }
    }

    /// `branch`'s commit on origin.
    fn remote(&self, branch: &str) -> String {
        git(&self.origin, &["rev-parse", branch])
    }

    /// A commit on develop in the other clone, not pushed yet.
    fn other_commit(&self, file: &str, text: &str, message: &str) -> String {
        git(
            &self.other,
            &["pull", "-q", "--ff-only", "origin", "develop"],
        );
        write(&self.other.join(file), text);
        commit_all(&self.other, message);
        git(&self.other, &["rev-parse", "HEAD"])
    }

    fn other_push(&self) {
        git(&self.other, &["push", "-q", "origin", "develop"]);
    }

    /// A post-merge hook in the user's repository (it runs in pgship's worktree after each
    /// merge, between the fetch and the push) with `script`, run after the repository
    /// variables git sets for hooks are unset.
    fn post_merge(&self, script: &str) {
        let clean = "unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX GIT_COMMON_DIR";
        hook(
            &self.user.join(".git/hooks/post-merge"),
            &format!("{clean}\n{script}"),
        );
    }

    /// The other clone's develop is pushed after the first merge pgship makes; the returned
    /// file exists once it was.
    fn push_once_after_merge(&self) -> PathBuf {
        let mark = self.root.join("moved");
        self.post_merge(&format!(
            "[ -e '{m}' ] && exit 0\n: > '{m}'\ngit -C '{o}' push -q origin develop",
            m = mark.display(),
            o = self.other.display()
        ));
        mark
    }

    fn deploy(&self, remote: &str) -> Result<pgship::app::git::Merged, MergeError> {
        merge_and_push(
            &self.repo,
            &self.parent,
            remote,
            "develop",
            FEATURE,
            "Deploy dep-1: merge feature/login into develop",
        )
    }
}

/// The files of the conflict `result` must be.
fn conflict<T: std::fmt::Debug>(result: Result<T, MergeError>) -> Vec<String> {
    match result {
        Err(MergeError::Conflict { files }) => files,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// The reason of the rejection `result` must be.
fn rejected<T: std::fmt::Debug>(result: Result<T, MergeError>) -> String {
    match result {
        Err(MergeError::Rejected { reason }) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn identity(dir: &Path) {
    git(dir, &["config", "user.name", "Test User"]);
    git(dir, &["config", "user.email", "test@example.com"]);
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

#[test]
fn clean_merge_is_pushed_as_a_two_parent_merge() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let trial = trial_merge(&fx.repo, &fx.parent, "origin", "develop", FEATURE).unwrap();
    let Trial::Clean { tip, merged } = &trial else {
        panic!("{trial:?}")
    };
    assert_eq!(tip, &fx.develop);
    assert_ne!(merged, tip, "the trial's merge commit");
    assert_eq!(fx.remote("develop"), fx.develop, "the trial pushed nothing");
    fx.assert_untouched(&before);

    let m = fx.deploy("origin").unwrap();
    assert_eq!(m.before, fx.develop);
    assert!(!m.retried);
    assert_eq!(fx.remote("develop"), m.merge_commit);
    let parents = git(
        &fx.origin,
        &["rev-list", "--parents", "-n1", &m.merge_commit],
    );
    assert_eq!(
        parents.split(' ').collect::<Vec<_>>(),
        [m.merge_commit.as_str(), &fx.develop, &fx.feature]
    );
    let message = git(&fx.origin, &["log", "-1", "--format=%B", &m.merge_commit]);
    assert!(
        message.contains("dep-1") && message.contains(FEATURE),
        "{message}"
    );
    let app = git(&fx.origin, &["show", "develop:app.ts"]);
    assert!(app.contains("line 2: login"));
    fx.assert_untouched(&before);
}

#[test]
fn already_merged_is_said_and_never_an_empty_merge() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let m = fx.deploy("origin").unwrap();
    let trial = trial_merge(&fx.repo, &fx.parent, "origin", "develop", FEATURE).unwrap();
    assert_eq!(
        trial,
        Trial::AlreadyMerged {
            tip: m.merge_commit.clone()
        }
    );
    match fx.deploy("origin") {
        Err(MergeError::Git(e)) => assert!(e.to_string().contains("already contained"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        fx.remote("develop"),
        m.merge_commit,
        "no empty merge pushed"
    );
    fx.assert_untouched(&before);
}

#[test]
fn conflict_is_found_by_the_trial_and_nothing_is_pushed() {
    let fx = Fx::new();
    let theirs = fx.other_commit("app.ts", &APP.replace("line 2", "line 2: other"), "other");
    fx.other_push();
    let before = fx.snapshot();
    let trial = trial_merge(&fx.repo, &fx.parent, "origin", "develop", FEATURE).unwrap();
    assert_eq!(
        trial,
        Trial::Conflict {
            tip: theirs.clone(),
            files: vec!["app.ts".into()]
        }
    );
    assert_eq!(conflict(fx.deploy("origin")), ["app.ts"]);
    assert_eq!(fx.remote("develop"), theirs, "nothing pushed");
    fx.assert_untouched(&before);
}

#[test]
fn dirty_tracked_files_are_listed_untracked_ignored() {
    let fx = Fx::new();
    let before = fx.snapshot();
    assert!(
        fx.repo.dirty_tracked().unwrap().is_empty(),
        "only untracked files yet"
    );
    fx.assert_untouched(&before);

    write(&fx.user.join("app.ts"), "changed, not staged\n");
    write(&fx.user.join("config.ts"), "changed and staged\n");
    git(&fx.user, &["add", "config.ts"]);
    git(&fx.user, &["mv", "README.md", "READ ME.md"]);
    write(&fx.user.join("other-untracked.txt"), "x\n");
    let before = fx.snapshot();
    let mut dirty = fx.repo.dirty_tracked().unwrap();
    dirty.sort();
    assert_eq!(dirty, ["READ ME.md", "app.ts", "config.ts"]);
    // The committed feature is what is deployed; the user's changes stay where they are.
    let m = fx.deploy("origin").unwrap();
    assert_eq!(
        git(&fx.origin, &["show", "develop:app.ts"]),
        APP.replace("line 2", "line 2: login").trim()
    );
    assert_eq!(fx.remote("develop"), m.merge_commit);
    fx.assert_untouched(&before);
}

#[test]
fn remote_moved_during_the_deploy_is_merged_again_and_pushed() {
    let fx = Fx::new();
    let theirs = fx.other_commit("other.ts", "export {};\n", "someone else");
    let before = fx.snapshot();
    let trial = trial_merge(&fx.repo, &fx.parent, "origin", "develop", FEATURE).unwrap();
    assert!(matches!(trial, Trial::Clean { .. }));
    // After the first merge (between its fetch and its push) the other clone pushes, once.
    let mark = fx.push_once_after_merge();
    let m = fx.deploy("origin").unwrap();
    assert!(mark.exists(), "the hook pushed");
    assert!(m.retried);
    assert_eq!(m.before, theirs);
    assert_eq!(fx.remote("develop"), m.merge_commit);
    let parents = git(
        &fx.origin,
        &["rev-list", "--parents", "-n1", &m.merge_commit],
    );
    assert!(
        parents.ends_with(&format!("{theirs} {}", fx.feature)),
        "{parents}"
    );
    fx.assert_untouched(&before);
}

#[test]
fn remote_moved_with_a_conflicting_change_is_a_conflict_and_pushes_nothing() {
    let fx = Fx::new();
    let theirs = fx.other_commit("app.ts", &APP.replace("line 2", "line 2: hotfix"), "hotfix");
    let before = fx.snapshot();
    let mark = fx.push_once_after_merge();
    assert_eq!(conflict(fx.deploy("origin")), ["app.ts"]);
    assert!(mark.exists(), "the hook pushed");
    assert_eq!(
        fx.remote("develop"),
        theirs,
        "only the other clone's commit"
    );
    fx.assert_untouched(&before);
}

#[test]
fn a_second_rejection_fails() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let count = fx.root.join("pushes");
    hook(
        &fx.origin.join("hooks/pre-receive"),
        &format!(
            "n=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'\n\
             [ $n -le 2 ] && {{ echo \"frozen by test, push $n\"; exit 1; }}\nexit 0",
            c = count.display()
        ),
    );
    let reason = rejected(fx.deploy("origin"));
    assert!(reason.contains("origin develop"), "{reason}");
    assert!(reason.contains("pre-receive hook declined"), "{reason}");
    assert!(reason.contains("frozen by test, push 2"), "{reason}");
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "2");
    assert_eq!(fx.remote("develop"), fx.develop, "nothing pushed");
    fx.assert_untouched(&before);
}

#[test]
fn a_remote_that_keeps_moving_fails_after_one_retry() {
    let fx = Fx::new();
    fx.other_commit("other.ts", "export {};\n", "first");
    let before = fx.snapshot();
    // Every merge is followed by a new commit pushed from the other clone.
    fx.post_merge(&format!(
        "git -C '{o}' commit -q --allow-empty -m moved && git -C '{o}' push -q origin develop",
        o = fx.other.display()
    ));
    let reason = rejected(fx.deploy("origin"));
    assert!(
        reason.contains("fetch first") && reason.contains("moved"),
        "{reason}"
    );
    let theirs = git(&fx.other, &["rev-parse", "HEAD"]);
    assert_eq!(
        fx.remote("develop"),
        theirs,
        "only the other clone's commits"
    );
    fx.assert_untouched(&before);
}

#[test]
fn revert_restores_the_tree_and_keeps_history() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let tree = git(&fx.origin, &["rev-parse", "develop^{tree}"]);
    let m = fx.deploy("origin").unwrap();
    let revert = revert_and_push(
        &fx.repo,
        &fx.parent,
        "origin",
        "develop",
        &m.merge_commit,
        "Revert dep-1: roll back feature/login",
    )
    .unwrap();
    assert_eq!(fx.remote("develop"), revert);
    assert_eq!(git(&fx.origin, &["rev-parse", "develop^{tree}"]), tree);
    assert_eq!(
        git(&fx.origin, &["rev-parse", "develop^"]),
        m.merge_commit,
        "history kept"
    );
    assert_eq!(
        git(&fx.origin, &["log", "-1", "--format=%s", "develop"]),
        "Revert dep-1: roll back feature/login"
    );
    fx.assert_untouched(&before);
}

#[test]
fn reset_mode_returns_the_branch_to_its_commit() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let m = fx.deploy("origin").unwrap();
    reset_and_push(
        &fx.repo,
        &fx.parent,
        "origin",
        "develop",
        &m.before,
        &m.merge_commit,
    )
    .unwrap();
    assert_eq!(fx.remote("develop"), fx.develop);
    fx.assert_untouched(&before);
}

#[test]
fn reset_mode_refuses_when_a_commit_was_pushed_meanwhile() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let m = fx.deploy("origin").unwrap();
    let hotfix = fx.other_commit("hotfix.ts", "fix\n", "hotfix: keep me");
    fx.other_push();
    let reason = rejected(reset_and_push(
        &fx.repo,
        &fx.parent,
        "origin",
        "develop",
        &m.before,
        &m.merge_commit,
    ));
    assert!(reason.contains(&hotfix[..7]), "{reason}");
    assert!(reason.contains("hotfix: keep me"), "{reason}");
    assert_eq!(fx.remote("develop"), hotfix, "the other commit is kept");
    fx.assert_untouched(&before);

    // The lease itself: a push whose lease names a commit the remote is no longer at.
    let wt = fx.repo.worktree(&fx.parent, &m.merge_commit).unwrap();
    wt.reset_to(&m.before).unwrap();
    match wt.push("origin", "develop", Some(&m.merge_commit)).unwrap() {
        Push::Rejected(reason) => assert!(reason.contains("stale"), "{reason}"),
        Push::Pushed => panic!("a stale lease pushed"),
    }
    drop(wt);
    assert_eq!(fx.remote("develop"), hotfix);
    fx.assert_untouched(&before);
}

#[test]
fn credentials_in_a_remote_url_never_reach_an_error() {
    let fx = Fx::new();
    git(&fx.user, &["remote", "add", "leaky", LEAKY_URL]);
    let before = fx.snapshot();
    fx.repo.check_remote("leaky").unwrap();
    let e = fx.repo.fetch("leaky", "develop").unwrap_err().to_string();
    assert!(e.starts_with("git fetch: leaky develop:"), "{e}");
    assert!(!e.contains("CANARY"), "{e}");
    let e = fx.deploy("leaky").unwrap_err().to_string();
    assert!(!e.contains("CANARY"), "{e}");
    let e = trial_merge(&fx.repo, &fx.parent, "leaky", "develop", FEATURE).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("CANARY"), "{e:?}");

    let e = fx.repo.check_remote("nope").unwrap_err().to_string();
    assert!(e.contains("'nope'"), "{e}");
    let e = fx.repo.check_remote(LEAKY_URL).unwrap_err().to_string();
    assert!(!e.contains("CANARY"), "a URL is no remote name: {e}");
    let e = fx.repo.fetch("origin", "nope").unwrap_err().to_string();
    assert!(e.contains("'nope'") && e.contains("'origin'"), "{e}");
    fx.assert_untouched(&before);
}

#[test]
fn a_dropped_worktree_is_removed() {
    let fx = Fx::new();
    let before = fx.snapshot();
    let path = std::sync::Mutex::new(PathBuf::new());
    let panicked = std::panic::catch_unwind(|| {
        let wt = fx.repo.worktree(&fx.parent, "develop").unwrap();
        *path.lock().unwrap() = wt.path().to_path_buf();
        assert_eq!(wt.head().unwrap(), fx.develop);
        panic!("mid-way");
    });
    assert!(panicked.is_err());
    let seen = path.lock().unwrap().clone();
    assert!(seen.starts_with(fx.parent.canonicalize().unwrap()) && !seen.exists());
    fx.assert_untouched(&before);

    let mut seen = PathBuf::new();
    let mut early = || -> Result<(), GitError> {
        let wt = fx.repo.worktree(&fx.parent, &fx.develop)?;
        seen = wt.path().to_path_buf();
        assert_eq!(wt.merge(FEATURE, "m")?, Merge::Merged(wt.head()?));
        Err(GitError::new("test", "early return"))?;
        Ok(())
    };
    assert!(early().is_err());
    assert!(!seen.as_os_str().is_empty() && !seen.exists());
    fx.assert_untouched(&before);

    // A folder left by a killed run (its pid is gone) is removed by the next one.
    std::fs::create_dir_all(&fx.parent).unwrap();
    let stale = fx.parent.join("pgship-git-999999999-dead");
    git(
        &fx.user,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            stale.to_str().unwrap(),
            "develop",
        ],
    );
    let wt = fx.repo.worktree(&fx.parent, "develop").unwrap();
    assert!(!stale.exists());
    drop(wt);
    fx.assert_untouched(&before);
}

#[test]
fn a_missing_committer_identity_is_named() {
    let fx = Fx::new();
    git(&fx.user, &["config", "user.name", ""]);
    let before = fx.snapshot();
    let e = trial_merge(&fx.repo, &fx.parent, "origin", "develop", FEATURE)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no committer identity") && e.contains("user.name"),
        "{e}"
    );
    assert_eq!(fx.remote("develop"), fx.develop);
    fx.assert_untouched(&before);
}

#[test]
fn repository_facts() {
    let fx = Fx::new();
    let before = fx.snapshot();
    std::fs::create_dir_all(fx.user.join("src/deep")).unwrap();
    let repo = Repo::discover(&fx.user.join("src/deep")).unwrap().unwrap();
    assert_eq!(repo.top(), fx.user.canonicalize().unwrap());
    let outside = tempfile::tempdir().unwrap();
    assert!(Repo::discover(outside.path()).unwrap().is_none());
    assert_eq!(fx.repo.current_branch().unwrap().as_deref(), Some(FEATURE));
    assert_eq!(fx.repo.resolve(FEATURE).unwrap(), fx.feature);
    let e = fx.repo.resolve("no-such-branch").unwrap_err().to_string();
    assert!(e.contains("'no-such-branch'"), "{e}");
    let e = fx.repo.resolve("--output=x").unwrap_err().to_string();
    assert!(e.contains("no commit named '--output=x'"), "{e}");
    assert!(fx.repo.is_ancestor("develop", FEATURE).unwrap());
    assert!(!fx.repo.is_ancestor(FEATURE, "develop").unwrap());
    git(&fx.other, &["checkout", "-q", "--detach"]);
    let other = Repo::discover(&fx.other).unwrap().unwrap();
    assert_eq!(other.current_branch().unwrap(), None);
    assert_eq!(fx.repo.fetch("origin", "develop").unwrap(), fx.develop);
    fx.assert_untouched(&before);
}

/// Run by [`no_git_argument_carries_a_remote_url`] in a child test process with `GIT_TRACE`
/// set: a trial, a deploy, a revert, and a fetch from a remote whose URL has a password.
#[test]
#[ignore = "run with GIT_TRACE by no_git_argument_carries_a_remote_url"]
fn traced_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let root =
        std::env::var_os("PGSHIP_TRACE_ROOT").map_or(tmp.path().to_path_buf(), PathBuf::from);
    let fx = Fx::new_in(&root);
    git(&fx.user, &["remote", "add", "leaky", LEAKY_URL]);
    let trial = trial_merge(&fx.repo, &fx.parent, "origin", "develop", FEATURE).unwrap();
    assert!(matches!(trial, Trial::Clean { .. }));
    let m = fx.deploy("origin").unwrap();
    revert_and_push(
        &fx.repo,
        &fx.parent,
        "origin",
        "develop",
        &m.merge_commit,
        "revert",
    )
    .unwrap();
    assert!(fx.repo.fetch("leaky", "develop").is_err());
    assert!(fx.deploy("leaky").is_err());
}

#[test]
fn no_git_argument_carries_a_remote_url() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "traced_deploy", "--ignored", "--test-threads=1"])
        .env("GIT_TRACE", &trace)
        .env("PGSHIP_TRACE_ROOT", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    // What pgship spawned (git's own helpers, such as upload-pack or remote-http, get the
    // URL from git itself, as in the user's shell).
    let ours = [
        "fetch",
        "push",
        "remote",
        "worktree",
        "merge",
        "revert",
        "commit",
        "reset",
        "rev-parse",
        "merge-base",
        "log",
        "diff",
        "status",
        "symbolic-ref",
        "check-ref-format",
    ];
    let origin = dir.path().join("origin.git");
    let secrets = [origin.to_str().unwrap(), "127.0.0.1:1", "CANARY", "http://"];
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some((_, args)) = line.split_once("trace: built-in: git ") else {
            continue;
        };
        let sub = args
            .split(' ')
            .find(|a| !a.starts_with('-') && !a.contains('='))
            .unwrap_or("");
        if !ours.contains(&sub) {
            continue;
        }
        seen.insert(sub.to_string());
        for s in secrets {
            assert!(!args.contains(s), "a git argument carries {s}: {line}");
        }
    }
    for sub in ["fetch", "push", "merge", "revert", "worktree"] {
        assert!(seen.contains(sub), "no traced `git {sub}` in {seen:?}");
    }
    assert!(text.contains(
        "built-in: git fetch --no-tags --recurse-submodules=no leaky refs/heads/develop"
    ));
}
