//! One `git` process: the real binary from PATH, an argument list (never a shell), the user's
//! environment plus the few variables that make it non-interactive and its messages stable,
//! and what it printed boiled down to a scrubbed line for an error.

use std::path::Path;
use std::process::{Command, Stdio};

use super::GitError;

/// Variables set for every call: never prompt (a missing credential fails instead of hanging),
/// English messages (they are parsed), no editor, no merge-message editing, and no opportunistic
/// index refresh (`status` must not rewrite the user's index).
const ENV: [(&str, &str); 5] = [
    ("GIT_TERMINAL_PROMPT", "0"),
    ("LC_ALL", "C"),
    ("GIT_EDITOR", "true"),
    ("GIT_MERGE_AUTOEDIT", "no"),
    ("GIT_OPTIONAL_LOCKS", "0"),
];

/// Variables that would point git at another repository or index than the folder it runs in
/// (set when pgship itself runs from a git hook); the folder alone decides.
pub const LOCATION: [&str; 6] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
];

/// What a finished `git` printed.
pub(super) struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// git's message, scrubbed: its `fatal:`/`error:`/`CONFLICT`/`remote:` lines when there are
    /// any, else everything but hints; stderr before stdout.
    pub fn message(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
            .collect();
        let key: Vec<&str> = lines.iter().copied().filter(|l| is_key_line(l)).collect();
        let chosen = if key.is_empty() { lines } else { key };
        let text = if chosen.is_empty() {
            format!(
                "exited with {}",
                self.code.map_or("a signal".into(), |c| c.to_string())
            )
        } else {
            chosen.join("; ")
        };
        crate::http::sanitize(&text, "")
    }

    /// The error for a failed call: git's message, or what is missing for a commit.
    pub fn error(&self, action: &str) -> GitError {
        if lacks_identity(&self.stderr) {
            return GitError::new(
                action,
                &format!(
                    "no committer identity: set user.name and user.email \
                     (git config user.name \"Your Name\"; git config user.email you@example.com) \
                     ({})",
                    self.message()
                ),
            );
        }
        GitError::new(action, &self.message())
    }
}

fn is_key_line(line: &str) -> bool {
    ["fatal:", "error:", "CONFLICT", "remote:"]
        .iter()
        .any(|p| line.starts_with(p))
}

/// git's ways of saying it has no name or e-mail to put on a commit.
fn lacks_identity(stderr: &str) -> bool {
    [
        "Please tell me who you are",
        "unable to auto-detect email address",
        "empty ident name",
        "auto-detection is disabled",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// Run `git <args>` in `dir`; only a failure to start it is an error.
pub(super) fn run(dir: &Path, action: &str, args: &[&str]) -> Result<Out, GitError> {
    run_with(dir, action, args, &[])
}

/// [`run`] with extra environment variables.
pub(super) fn run_with(
    dir: &Path,
    action: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Out, GitError> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in LOCATION {
        cmd.env_remove(var);
    }
    cmd.envs(ENV).envs(env.iter().copied());
    let out = cmd.output().map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            "the git program was not found on PATH: install git".to_string()
        } else {
            format!("could not run git in {}: {e}", dir.display())
        };
        GitError::new(action, &message)
    })?;
    Ok(Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// [`run`] that must succeed; its stdout, trimmed.
pub(super) fn ok(dir: &Path, action: &str, args: &[&str]) -> Result<String, GitError> {
    ok_raw(dir, action, args).map(|s| s.trim().to_string())
}

/// [`run`] that must succeed; its stdout as printed.
pub(super) fn ok_raw(dir: &Path, action: &str, args: &[&str]) -> Result<String, GitError> {
    let out = run(dir, action, args)?;
    if out.ok() {
        Ok(out.stdout)
    } else {
        Err(out.error(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str, stderr: &str) -> Out {
        Out {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn message_keeps_the_useful_lines_and_scrubs() {
        let o = out(
            1,
            "Auto-merging x.ts\nCONFLICT (content): Merge conflict in x.ts\nAutomatic merge failed\n",
            "hint: do this\nfatal: unable to access 'http://u:CANARY@h/x.git/': refused\n",
        );
        let m = o.message();
        assert!(
            m.contains("CONFLICT (content): Merge conflict in x.ts"),
            "{m}"
        );
        assert!(m.contains("fatal: unable to access"), "{m}");
        assert!(!m.contains("CANARY") && !m.contains("hint") && !m.contains("Auto-merging"));
        assert_eq!(out(2, "", "").message(), "exited with 2");
        assert_eq!(out(1, "", "something odd\n").message(), "something odd");
    }

    #[test]
    fn a_missing_identity_is_named() {
        let o = out(
            128,
            "",
            "*** Please tell me who you are.\n\nfatal: empty ident name\n",
        );
        let e = o.error("merge").to_string();
        assert!(e.starts_with("git merge: no committer identity"), "{e}");
        assert!(e.contains("user.name") && e.contains("user.email"), "{e}");
    }
}
