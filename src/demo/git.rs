//! The git the demo runs itself (its repository's setup and commits, and the simulated
//! services reading the bare repository): the real binary in a folder the demo made, with a
//! fixed identity and no prompt given through the environment, and the variables that would
//! point git at another repository removed. The user's git configuration is never changed.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The identity of the demo's own commits (and, in its repository's local configuration, of the
/// merges and reverts `deploy` makes there).
pub const NAME: &str = "pgship demo";
pub const EMAIL: &str = "demo@pgship.invalid";

/// `git <args>` in `dir`, not started.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    // The variables that would make git work on another repository than the folder.
    for var in crate::app::git::LOCATION {
        cmd.env_remove(var);
    }
    cmd.envs([
        ("GIT_AUTHOR_NAME", NAME),
        ("GIT_AUTHOR_EMAIL", EMAIL),
        ("GIT_COMMITTER_NAME", NAME),
        ("GIT_COMMITTER_EMAIL", EMAIL),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("LC_ALL", "C"),
    ]);
    cmd
}

/// `git <args>` in `dir`, which must succeed; its stdout, trimmed.
pub fn run(dir: &Path, args: &[&str]) -> Result<String> {
    let out = command(dir, args).output().map_err(|e| {
        Error::usage(format!(
            "the demo needs git: could not run it in {}: {e}",
            dir.display()
        ))
    })?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "git {} in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git <args>` in `dir` for a simulated service: its stdout when it succeeded.
pub fn read(dir: &Path, args: &[&str]) -> Option<String> {
    let out = command(dir, args).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
