//! The top-level error and the exit codes of DESIGN.md.
//!
//! Every failure that reaches `main` is one of these. Its `Display` is the message the user
//! sees; `hint` is printed on its own line. Nothing here may carry a password: URLs are
//! always redacted before they are put into an error.

use std::fmt;

/// Exit codes, as documented in DESIGN.md and `pgship --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success, or nothing to do.
    Ok = 0,
    /// Aborted or refused before the target changed, or a migration failed and was rolled back.
    Refused = 1,
    /// Usage, configuration, connection or internal error.
    Usage = 2,
    /// The deployment failed once the target had changed, and the target is back as it was.
    RolledBack = 3,
    /// The deployment failed and the target is not back as it was: a person must act.
    NeedsHuman = 4,
    /// Interrupted by SIGINT (what was committed is recorded and said).
    Interrupted = 130,
    /// Interrupted by SIGTERM.
    Terminated = 143,
}

/// What went wrong, with the exit code it maps to.
#[derive(Debug)]
pub struct Error {
    pub code: ExitCode,
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            code: ExitCode::Usage,
            message: message.into(),
            hint: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Error {
            code: ExitCode::Refused,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<crate::source::SourceError> for Error {
    fn from(e: crate::source::SourceError) -> Self {
        Error::usage(e.to_string())
    }
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error::usage(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
