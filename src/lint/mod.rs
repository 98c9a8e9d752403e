//! The migration linter: every statement of a migration, parsed by PostgreSQL's own parser
//! (libpg_query), checked against the rules of `lint-rules.md` (locks, rewrites, data loss,
//! changes that break running code, transaction constraints, robustness).
//!
//! - [`rules`]: one file per rule and the registry of all of them.
//! - [`context`]: what a rule knows besides the statement: the PostgreSQL version, whether
//!   the statement runs in a transaction, tables created earlier in the file or transaction,
//!   NOT VALID constraints and locks taken earlier, and the live catalog when given.
//! - [`ast`]: helpers over libpg_query's parse tree.
//! - [`catalog`]: what `--database` reads from a live database.
//! - [`objects`]: what the run creates, drops and renames, for the rules that look up
//!   dependencies.
//! - [`copies`]: values the run copies elsewhere before dropping them (DL01, DL02).
//! - [`report`]: text, JSON, SARIF and GitHub annotations.
//!
//! - [`input`]: the files and folders to lint, read as the engine reads migrations.
//! - [`pieces`]: a file cut into statements, each parsed on its own.
//! - [`run`]: the rules over files, one statement at a time, in bounded memory.
//! - [`command`]: `pgship lint` as one call: settings, rule selection, what to lint (paths,
//!   the project's migrations, or what is pending on a target), the run, the verdict.
//!
//! No IO here but [`catalog::load`], [`input`] and [`command`] (which alone reads settings
//! and connects, read-only).

pub mod ast;
pub mod catalog;
pub mod command;
pub mod context;
pub mod copies;
pub mod input;
pub mod objects;
pub mod pieces;
pub mod report;
pub mod rules;
pub mod run;

use std::collections::BTreeSet;

use pg_query::NodeEnum;
use serde::Serialize;

pub use context::{Context, Wrap};
pub use pieces::{Piece, prepare};

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A rule: its identity, defaults, and the check.
pub struct Rule {
    /// `LK01`.
    pub id: &'static str,
    /// `create-index-not-concurrently`.
    pub name: &'static str,
    pub severity: Severity,
    /// Rules marked opt-in in the catalogue are off by default.
    pub default_on: bool,
    /// What it detects, in one line.
    pub summary: &'static str,
    /// The safe alternative, in one line (a hit may give a more precise one).
    pub help: &'static str,
    /// Check one statement in its context.
    pub check: fn(&Stmt, &Context) -> Vec<Hit>,
}

/// What a rule found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub message: String,
    /// Overrides the rule's help.
    pub help: Option<String>,
    /// Overrides the rule's severity (e.g. raised or lowered by the version or the catalog).
    pub severity: Option<Severity>,
}

impl Hit {
    pub fn new(message: impl Into<String>) -> Hit {
        Hit {
            message: message.into(),
            help: None,
            severity: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Hit {
        self.help = Some(help.into());
        self
    }

    pub fn severity(mut self, s: Severity) -> Hit {
        self.severity = Some(s);
        self
    }
}

/// One parsed statement, as a rule sees it.
pub struct Stmt<'a> {
    /// The parsed statement.
    pub node: &'a NodeEnum,
    /// Its text, without surrounding whitespace and the terminating `;`.
    pub sql: &'a str,
    /// 1-based line and column of its first token in the file.
    pub line: u32,
    pub column: u32,
    /// Whether it runs inside a transaction block (an explicit BEGIN in the file, or the
    /// runner wrapping it).
    pub in_transaction: bool,
}

/// A finding, located in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub statement: String,
    pub message: String,
    pub help: String,
}

/// The pseudo-rule for `-- pgship:ignore` comments that silence nothing.
pub const UNUSED_IGNORE: (&str, &str) = ("IGNORE", "unused-ignore");

/// Which rules run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub enable: BTreeSet<String>,
    pub disable: BTreeSet<String>,
}

impl Selection {
    /// Whether `rule` runs: `--disable` wins over `--enable`, which wins over the default.
    /// IDs and names are both accepted (`LK01`, `create-index-not-concurrently`).
    pub fn runs(&self, rule: &Rule) -> bool {
        let named = |set: &BTreeSet<String>| {
            set.contains(rule.id) || set.contains(rule.name) || set.contains("all")
        };
        if self.disable.contains(rule.id) || self.disable.contains(rule.name) {
            return false;
        }
        named(&self.enable) || (rule.default_on && !self.disable.contains("all"))
    }

    /// Check that every ID or name given is a rule; the error names the unknown one.
    pub fn validate(&self) -> Result<(), String> {
        for id in self.enable.iter().chain(&self.disable) {
            if id != "all" && rules::find(id).is_none() {
                return Err(format!("unknown rule `{id}` (see `pgship lint --list`)"));
            }
        }
        Ok(())
    }
}

/// One file to lint.
pub struct Source<'a> {
    /// The name findings carry (a path relative to the project when possible).
    pub name: String,
    pub text: &'a str,
    /// `Drizzle`: split at `--> statement-breakpoint` first, as drizzle does.
    pub drizzle: bool,
    /// How the runner executes it.
    pub wrap: Wrap,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Outcome {
    pub files: usize,
    pub statements: usize,
    pub findings: Vec<Finding>,
}

/// A `-- pgship:ignore[-file] IDS reason` comment.
#[derive(Debug, Clone)]
struct Ignore {
    line: u32,
    column: u32,
    file_wide: bool,
    ids: Vec<String>,
    used: std::cell::Cell<bool>,
    text: String,
}

fn ignores(text: &str) -> Vec<Ignore> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let Some(pos) = l.find("-- pgship:ignore") else {
            continue;
        };
        let rest = &l[pos + "-- pgship:".len()..];
        let (file_wide, rest) = match rest.strip_prefix("ignore-file") {
            Some(r) => (true, r),
            None => (false, &rest["ignore".len()..]),
        };
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let ids = rest
            .split_whitespace()
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        out.push(Ignore {
            line: i as u32 + 1,
            column: pos as u32 + 1,
            file_wide,
            ids,
            used: std::cell::Cell::new(false),
            text: l[pos..].trim_end().to_string(),
        });
    }
    out
}

/// Lint one file, carrying `ctx` (its version, wrap and what earlier files created and
/// validated) in and out. The file is parsed whole; [`run::lint_files`] streams many files.
pub fn lint_source(src: &Source, ctx: &mut Context, selection: &Selection, out: &mut Outcome) {
    let pieces = prepare(src.text, src.drizzle);
    lint_prepared(src, pieces, ctx, selection, out);
}

/// Lint one file already cut and parsed by [`prepare`].
pub fn lint_prepared(
    src: &Source,
    pieces: Vec<Piece<'_>>,
    ctx: &mut Context,
    selection: &Selection,
    out: &mut Outcome,
) {
    let active = run::Active::new(selection);
    let mut file = run::FileLint::begin(&src.name, src.text, src.wrap, ctx, out);
    for piece in &pieces {
        file.piece(piece, ctx, &active, out);
    }
    file.finish(ctx, &active, out);
}

/// Lint a single SQL text with default settings (for tests and docs).
pub fn lint_text(sql: &str, pg_version: u32, wrap: Wrap) -> Vec<Finding> {
    let mut ctx = Context::new(pg_version, None);
    let mut out = Outcome::default();
    lint_source(
        &Source {
            name: "test.sql".into(),
            text: sql,
            drizzle: false,
            wrap,
        },
        &mut ctx,
        &Selection {
            enable: ["all".to_string()].into(),
            disable: BTreeSet::new(),
        },
        &mut out,
    );
    out.findings
}

/// Test support: lint `sql` with one rule enabled (and only it) and render its findings as
/// text, the snapshot each rule's tests compare against.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// Options of a test run.
    pub struct Opts {
        pub pg_version: u32,
        pub wrap: Wrap,
        pub catalog: Option<catalog::Catalog>,
    }

    impl Default for Opts {
        fn default() -> Self {
            Opts {
                pg_version: 17,
                wrap: Wrap::None,
                catalog: None,
            }
        }
    }

    /// The rendered findings of rule `id` on `sql` (an empty string when there are none).
    pub fn render_with(id: &str, sql: &str, opts: Opts) -> String {
        let rule = rules::find(id).expect("a registered rule");
        let mut ctx = Context::new(opts.pg_version, opts.catalog);
        let mut out = Outcome::default();
        lint_source(
            &Source {
                name: "m.sql".into(),
                text: sql,
                drizzle: false,
                wrap: opts.wrap,
            },
            &mut ctx,
            &Selection {
                enable: [rule.id.to_string()].into(),
                disable: rules::ALL
                    .iter()
                    .filter(|r| r.id != rule.id)
                    .map(|r| r.id.to_string())
                    .collect(),
            },
            &mut out,
        );
        out.findings.retain(|f| f.rule == rule.id);
        if out.findings.is_empty() {
            return String::new();
        }
        let text = report::text(&out);
        // Drop the summary line: the snapshot is the findings.
        text.rsplit_once("\n\n")
            .map(|(findings, _)| format!("{findings}\n"))
            .unwrap_or(text)
    }

    pub fn render(id: &str, sql: &str) -> String {
        render_with(id, sql, Opts::default())
    }
}
