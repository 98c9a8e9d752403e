//! SIGINT and SIGTERM for long commands: listened for from the moment they are installed, so
//! a signal that arrives while pgship works is seen, and also when pgship was started with
//! SIGINT ignored (a background job of a script), which would otherwise make it impossible to
//! interrupt. Callers decide what an interruption means; nothing here exits the process.

use crate::error::ExitCode;

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code of DESIGN.md: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Signal::Interrupt => ExitCode::Interrupted,
            Signal::Terminate => ExitCode::Terminated,
        }
    }
}

/// Installed handlers for SIGINT and SIGTERM.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Interrupt,
        }
    }
}
