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
//!
//! No IO here but [`catalog::load`] and [`input`].

pub mod ast;
pub mod catalog;
pub mod context;
pub mod copies;
pub mod input;
pub mod objects;
pub mod report;
pub mod rules;

use std::collections::BTreeSet;

use pg_query::NodeEnum;
use serde::Serialize;

use crate::source::split;
pub use context::{Context, Wrap};

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

/// A statement cut from a file and parsed: its text, where its first token is, and its parse
/// tree (or the parser's error).
pub struct Piece<'a> {
    sql: &'a str,
    line: u32,
    column: u32,
    parsed: Result<NodeEnum, String>,
}

/// Line and column lookups over one text.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { text, starts }
    }

    fn at(&self, offset: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line as u32, column as u32)
    }
}

/// The offset of the first byte after whitespace and comments (`--`, nested `/* */`).
fn skip_blank(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = s[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b';' => i += 1,
            _ => return Some(i),
        }
    }
    None
}

/// Cut a file into parsed statements: Drizzle chunks first when `drizzle`, then each chunk is
/// parsed once by PostgreSQL's parser, which gives every statement's place. A chunk that does
/// not parse is cut by the scanner and each piece parsed on its own, so the statement at fault
/// is found (RB10) and the others are still linted. Safe to call from several threads.
pub fn prepare(text: &str, drizzle: bool) -> Vec<Piece<'_>> {
    let chunks: Vec<(usize, &str)> = if drizzle {
        split::drizzle_chunks(text)
            .into_iter()
            .map(|s| (s.offset, &text[s.offset..s.offset + s.sql.len()]))
            .collect()
    } else {
        vec![(0, text)]
    };
    let lines = Lines::new(text);
    let mut out = Vec::new();
    let mut push = |start: usize, end: usize, parsed: Result<NodeEnum, String>| {
        let (line, column) = lines.at(start);
        out.push(Piece {
            sql: text[start..end].trim_end(),
            line,
            column,
            parsed,
        });
    };
    for (base, chunk) in chunks {
        if let Ok(result) = pg_query::parse(chunk, 0) {
            for raw in result.protobuf.stmts {
                let loc = usize::try_from(raw.stmt_location)
                    .unwrap_or(0)
                    .min(chunk.len());
                let end = match usize::try_from(raw.stmt_len) {
                    Ok(0) | Err(_) => chunk.len(),
                    Ok(n) => (loc + n).min(chunk.len()),
                };
                let Some(first) = skip_blank(&chunk[loc..end]) else {
                    continue;
                };
                let Some(node) = raw.stmt.and_then(|n| n.node) else {
                    continue;
                };
                push(base + loc + first, base + end, Ok(node));
            }
            continue;
        }
        for s in split_tolerant(chunk) {
            let piece = &chunk[s.offset..s.offset + s.sql.len()];
            let Some(first) = split::first_token_offset(piece) else {
                continue;
            };
            let at = base + s.offset + first;
            let sql = text[at..base + s.offset + piece.len()].trim_end();
            let parsed = match pg_query::parse(sql, 0) {
                Ok(r) => r
                    .protobuf
                    .stmts
                    .into_iter()
                    .find_map(|raw| raw.stmt.and_then(|n| n.node))
                    .ok_or_else(|| "empty statement".to_string()),
                Err(pg_query::Error::Parse(m)) => Err(m),
                Err(other) => Err(other.to_string()),
            };
            push(at, base + s.offset + piece.len(), parsed);
        }
    }
    out
}

/// Split `chunk` into statements. When the scanner fails (an unterminated quote or comment),
/// the longest prefix that ends at a `;` and splits cleanly is split normally and the rest is
/// one piece, which will fail to parse and be reported as RB10 at its own line.
fn split_tolerant(chunk: &str) -> Vec<crate::source::Statement> {
    if let Ok(s) = split::sql_statements(chunk) {
        return s;
    }
    let cuts: Vec<usize> = chunk.match_indices(';').map(|(i, _)| i + 1).collect();
    // Binary search for the last cut whose prefix splits.
    let (mut lo, mut hi) = (0usize, cuts.len());
    let mut best: Option<(usize, Vec<crate::source::Statement>)> = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        match split::sql_statements(&chunk[..cuts[mid]]) {
            Ok(s) => {
                best = Some((cuts[mid], s));
                lo = mid + 1;
            }
            Err(_) => hi = mid,
        }
    }
    let (at, mut out) = best.unwrap_or((0, Vec::new()));
    let rest = &chunk[at..];
    if let Some(first) = split::first_token_offset(rest) {
        out.push(crate::source::Statement {
            sql: rest[first..].to_string(),
            offset: at + first,
            line: 0,
            tx: crate::source::TxRequirement::Any,
            control: None,
        });
    }
    out
}

/// Lint one file, carrying `ctx` (its version, wrap and what earlier files created and
/// validated) in and out.
pub fn lint_source(src: &Source, ctx: &mut Context, selection: &Selection, out: &mut Outcome) {
    let pieces = prepare(src.text, src.drizzle);
    lint_prepared(src, pieces, ctx, selection, out);
}

/// Lint one file already cut and parsed by [`prepare`] (which callers may run in parallel).
pub fn lint_prepared(
    src: &Source,
    pieces: Vec<Piece<'_>>,
    ctx: &mut Context,
    selection: &Selection,
    out: &mut Outcome,
) {
    let ignores = ignores(src.text);
    let active: Vec<&Rule> = rules::ALL
        .iter()
        .copied()
        .filter(|r| selection.runs(r))
        .collect();
    let rb10 = rules::find("RB10").expect("RB10 is registered");
    ctx.begin_file(src.wrap);
    out.files += 1;
    let mut findings = Vec::new();
    let push = |rule: &Rule, hit: Hit, piece: &Piece, findings: &mut Vec<Finding>| {
        let silenced = ignores.iter().find(|ig| {
            ig.ids.iter().any(|id| id == rule.id || id == rule.name)
                && (ig.file_wide || ig.line + 1 == piece.line)
        });
        if let Some(ig) = silenced {
            ig.used.set(true);
            return;
        }
        findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            severity: hit.severity.unwrap_or(rule.severity),
            file: src.name.clone(),
            line: piece.line,
            column: piece.column,
            statement: piece.sql.to_string(),
            message: hit.message,
            help: hit.help.unwrap_or_else(|| rule.help.to_string()),
        });
    };
    for piece in &pieces {
        out.statements += 1;
        let node = match &piece.parsed {
            Ok(n) => n,
            Err(msg) => {
                if selection.runs(rb10) {
                    push(
                        rb10,
                        Hit::new(format!("the statement does not parse: {msg}")),
                        piece,
                        &mut findings,
                    );
                }
                continue;
            }
        };
        let stmt = Stmt {
            node,
            sql: piece.sql,
            line: piece.line,
            column: piece.column,
            in_transaction: ctx.in_transaction_for(node, piece.sql),
        };
        for rule in &active {
            for hit in (rule.check)(&stmt, ctx) {
                push(rule, hit, piece, &mut findings);
            }
        }
        ctx.observe(&stmt);
    }
    for f in ctx.end_file() {
        // End-of-file findings (an uncommitted BEGIN): located at the statement that opened it.
        if let Some(rule) = rules::find(f.0).filter(|r| selection.runs(r)) {
            let piece = Piece {
                sql: &f.2,
                line: f.1.0,
                column: f.1.1,
                parsed: Err(String::new()),
            };
            push(rule, f.3, &piece, &mut findings);
        }
    }
    for ig in ignores.iter().filter(|ig| !ig.used.get()) {
        findings.push(Finding {
            rule: UNUSED_IGNORE.0,
            name: UNUSED_IGNORE.1,
            severity: Severity::Warning,
            file: src.name.clone(),
            line: ig.line,
            column: ig.column,
            statement: ig.text.clone(),
            message: if ig.ids.is_empty() {
                "this ignore comment names no rule".into()
            } else if ig.file_wide {
                format!("`{}` silences nothing in this file", ig.ids.join(","))
            } else {
                format!(
                    "`{}` silences nothing: no finding of that rule on the statement on the next line",
                    ig.ids.join(",")
                )
            },
            help: "remove the comment, or put it on the line just before the statement".into(),
        });
    }
    findings.sort_by_key(|f| (f.line, f.column, f.rule));
    out.findings.extend(findings);
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
