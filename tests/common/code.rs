//! The code half's test project: a bare repository on disk as `origin`, and a clone of it as the
//! user's project (plain SQL migrations, `.deployments/` git-ignored), with `main` and `develop`
//! pushed and a feature branch checked out.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `git <args>` in `dir` with a fixed identity; its trimmed stdout. Panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub struct CodeRepo {
    pub root: tempfile::TempDir,
    /// The bare repository (`origin`).
    pub origin: PathBuf,
    /// The user's clone: the project folder.
    pub work: PathBuf,
}

impl CodeRepo {
    /// `files` committed on `main` and `develop` (both pushed), then the branch `feature`
    /// checked out.
    pub fn new(files: &[(&str, &str)]) -> CodeRepo {
        let root = tempfile::tempdir().unwrap();
        let origin = root.path().join("origin.git");
        let work = root.path().join("app");
        std::fs::create_dir_all(&origin).unwrap();
        git(&origin, &["init", "-q", "--bare", "-b", "main"]);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["config", "user.name", "Test"]);
        git(&work, &["config", "user.email", "test@example.com"]);
        git(
            &work,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        std::fs::write(work.join(".gitignore"), ".deployments/\n").unwrap();
        for (name, text) in files {
            write(&work, name, text);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "init"]);
        git(&work, &["push", "-q", "origin", "main"]);
        git(&work, &["push", "-q", "origin", "main:develop"]);
        git(&work, &["checkout", "-q", "-b", "feature"]);
        CodeRepo { root, origin, work }
    }

    /// Write `files` in the clone and commit them on the current branch; the commit.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (name, text) in files {
            write(&self.work, name, text);
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The tip of `branch` on the remote.
    pub fn remote_tip(&self, branch: &str) -> String {
        git(
            &self.origin,
            &["rev-parse", &format!("refs/heads/{branch}")],
        )
    }

    /// A file's content at the remote `branch`'s tip (None when absent).
    pub fn remote_file(&self, branch: &str, path: &str) -> Option<String> {
        let o = Command::new("git")
            .current_dir(&self.origin)
            .args(["show", &format!("{branch}:{path}")])
            .output()
            .unwrap();
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Somebody else pushes a commit writing `file` to the remote's `branch` (from a clone of
    /// their own); the commit.
    pub fn push_from_other(&self, branch: &str, file: &str, text: &str, message: &str) -> String {
        push_from_other(
            self.root.path(),
            &self.origin,
            branch,
            (file, text),
            message,
        )
    }

    /// What must not change in the user's checkout: status, HEAD, branch, stash, index bytes,
    /// worktrees.
    pub fn checkout_state(&self) -> Vec<String> {
        vec![
            git(&self.work, &["status", "--porcelain"]),
            git(&self.work, &["rev-parse", "HEAD"]),
            git(&self.work, &["symbolic-ref", "HEAD"]),
            git(&self.work, &["stash", "list"]),
            pgship::util::sha256_file(&self.work.join(".git/index"))
                .unwrap()
                .1,
            git(&self.work, &["worktree", "list", "--porcelain"]),
        ]
    }
}

/// [`CodeRepo::push_from_other`] from a clone made under `root` (usable from another thread).
pub fn push_from_other(
    root: &Path,
    origin: &Path,
    branch: &str,
    (file, text): (&str, &str),
    message: &str,
) -> String {
    let name = format!("other-{}", pgship::util::random_hex(3));
    let other = root.join(&name);
    git(
        root,
        &["clone", "-q", "-b", branch, origin.to_str().unwrap(), &name],
    );
    write(&other, file, text);
    git(&other, &["add", file]);
    git(&other, &["commit", "-qm", message]);
    git(&other, &["push", "-q", "origin", branch]);
    git(&other, &["rev-parse", "HEAD"])
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
