//! Console output: colored on a terminal, plain otherwise, and silent except for the final
//! document with `--format json`. Progress goes to stderr so stdout carries only results.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// Markdown (compare; other commands print text).
    Markdown,
    /// SARIF 2.1.0 for code scanning (lint; other commands print text).
    Sarif,
    /// GitHub workflow annotations (lint; other commands print text).
    Github,
}

/// Where people read what pgship does.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    pub format: Format,
    pub verbose: u8,
    pub quiet: bool,
}

const OK: Style = AnsiColor::Green.on_default();
const WARN: Style = AnsiColor::Yellow.on_default();
const ERR: Style = AnsiColor::Red.on_default().bold();
const DIM: Style = Style::new().dimmed();

impl Console {
    /// Ask on a terminal; without one, require `--yes`.
    pub fn confirm(&self, yes: bool, question: &str) -> crate::error::Result<()> {
        if yes {
            return Ok(());
        }
        if !Console::is_terminal() {
            return Err(
                crate::error::Error::usage(format!("{question}: confirmation needed"))
                    .with_hint("not on a terminal: pass --yes to confirm"),
            );
        }
        anstream::eprint!("{question} [y/N] ");
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| crate::error::Error::usage(format!("reading the answer: {e}")))?;
        if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            Ok(())
        } else {
            Err(crate::error::Error::refused(
                "not confirmed; nothing was changed",
            ))
        }
    }

    fn progress_enabled(&self) -> bool {
        !self.quiet && (self.format != Format::Json || self.verbose > 0)
    }

    /// A progress line.
    pub fn step(&self, msg: &str) {
        if self.progress_enabled() {
            anstream::eprintln!("{DIM}·{DIM:#} {msg}");
        }
    }

    /// A success line.
    pub fn ok(&self, msg: &str) {
        if self.progress_enabled() {
            anstream::eprintln!("{OK}✓{OK:#} {msg}");
        }
    }

    pub fn warn(&self, msg: &str) {
        if !self.quiet || self.format != Format::Json {
            anstream::eprintln!("{WARN}warning:{WARN:#} {msg}");
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 && !self.quiet {
            anstream::eprintln!("{DIM}  {msg}{DIM:#}");
        }
    }

    /// A log line of `level` as progress: SUCCESS green, WARN and ERROR as warnings (the
    /// run's own failure is reported once, at the end), DEBUG only with `-v`.
    pub fn line(&self, level: super::Level, msg: &str) {
        match level {
            super::Level::Success => self.ok(msg),
            super::Level::Error | super::Level::Warn => self.warn(msg),
            super::Level::Info => self.step(msg),
            super::Level::Debug => self.detail(msg),
        }
    }

    /// The style a level is shown in (`logs`): SUCCESS green, WARN yellow, ERROR red,
    /// DEBUG dimmed.
    pub fn level_style(level: super::Level) -> Style {
        match level {
            super::Level::Success => OK,
            super::Level::Warn => WARN,
            super::Level::Error => ERR,
            super::Level::Debug => DIM,
            super::Level::Info => Style::new(),
        }
    }

    /// An error, always shown (on stderr).
    pub fn error(&self, msg: &str, hint: Option<&str>) {
        anstream::eprintln!("{ERR}error:{ERR:#} {msg}");
        if let Some(h) = hint {
            anstream::eprintln!("{WARN}hint:{WARN:#} {h}");
        }
    }

    /// The result of a command, on stdout.
    pub fn result(&self, text: &str) {
        anstream::println!("{text}");
    }

    /// A JSON document on stdout.
    pub fn json(&self, value: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }

    pub fn is_terminal() -> bool {
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }
}
