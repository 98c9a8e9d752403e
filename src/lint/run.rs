//! Running the rules over files: one file's statements at a time ([`FileLint`]), and a run
//! over many files in bounded memory ([`lint_files`]).
//!
//! [`lint_files`] reads each file when its turn comes, cuts it as it goes and parses a batch
//! of statements (about [`BATCH_BYTES`] of SQL, across files) on every core, then runs the
//! rules over the batch in order (the context carries from one statement and one file to the
//! next) and drops its parse trees before the next batch. What stays is the context (what
//! later statements need: objects created, constraints left NOT VALID, ...), the findings and
//! one file's text: memory does not grow with the number of files, nor with the size of one.

use std::collections::VecDeque;

use super::pieces::{self, Lines, Piece, Statements};
use super::{
    Context, Finding, Hit, Ignore, Outcome, Rule, Selection, Severity, Stmt, UNUSED_IGNORE, Wrap,
    ignores, rules,
};

/// SQL parsed per batch. PostgreSQL's parse tree of data-heavy SQL is 50 to 70 times its text,
/// so a batch holds some 15 MB of trees.
pub const BATCH_BYTES: usize = 256 * 1024;

/// The rules that run, chosen once for a run.
pub struct Active {
    rules: Vec<&'static Rule>,
    rb10: Option<&'static Rule>,
    selection: Selection,
}

impl Active {
    pub fn new(selection: &Selection) -> Active {
        Active {
            rules: rules::ALL
                .iter()
                .copied()
                .filter(|r| selection.runs(r))
                .collect(),
            rb10: rules::find("RB10").filter(|r| selection.runs(r)),
            selection: selection.clone(),
        }
    }
}

/// Linting one file, statement by statement.
pub struct FileLint {
    name: String,
    ignores: Vec<Ignore>,
    findings: Vec<Finding>,
}

impl FileLint {
    /// Start the file `name` whose text is `text`, run with `wrap`.
    pub fn begin(name: &str, text: &str, wrap: Wrap, ctx: &mut Context, out: &mut Outcome) -> Self {
        ctx.begin_file(wrap);
        out.files += 1;
        FileLint {
            name: name.to_string(),
            ignores: ignores(text),
            findings: Vec::new(),
        }
    }

    /// Run the rules over one statement.
    pub fn piece(&mut self, piece: &Piece, ctx: &mut Context, active: &Active, out: &mut Outcome) {
        out.statements += 1;
        let node = match &piece.parsed {
            Ok(n) => n,
            Err(msg) => {
                if let Some(rb10) = active.rb10 {
                    let hit = Hit::new(format!("the statement does not parse: {msg}"));
                    self.push(rb10, hit, piece);
                }
                return;
            }
        };
        let stmt = Stmt {
            node,
            sql: piece.sql,
            line: piece.line,
            column: piece.column,
            in_transaction: ctx.in_transaction_for(node),
        };
        for rule in &active.rules {
            for hit in (rule.check)(&stmt, ctx) {
                self.push(rule, hit, piece);
            }
        }
        ctx.observe(&stmt);
    }

    /// End the file: findings only known at its end, ignore comments that silenced nothing.
    pub fn finish(mut self, ctx: &mut Context, active: &Active, out: &mut Outcome) {
        for f in ctx.end_file() {
            // End-of-file findings (an uncommitted BEGIN): located at the statement that opened it.
            if let Some(rule) = rules::find(f.0).filter(|r| active.selection.runs(r)) {
                let piece = Piece {
                    sql: &f.2,
                    line: f.1.0,
                    column: f.1.1,
                    parsed: Err(String::new()),
                };
                self.push(rule, f.3, &piece);
            }
        }
        for ig in self.ignores.iter().filter(|ig| !ig.used.get()) {
            self.findings.push(unused_ignore(&self.name, ig));
        }
        self.findings.sort_by_key(|f| (f.line, f.column, f.rule));
        out.findings.append(&mut self.findings);
    }

    fn push(&mut self, rule: &Rule, hit: Hit, piece: &Piece) {
        let silenced = self.ignores.iter().find(|ig| {
            ig.ids.iter().any(|id| id == rule.id || id == rule.name)
                && (ig.file_wide || ig.line + 1 == piece.line)
        });
        if let Some(ig) = silenced {
            ig.used.set(true);
            return;
        }
        self.findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            severity: hit.severity.unwrap_or(rule.severity),
            file: self.name.clone(),
            line: piece.line,
            column: piece.column,
            statement: piece.sql.to_string(),
            message: hit.message,
            help: hit.help.unwrap_or_else(|| rule.help.to_string()),
        });
    }
}

fn unused_ignore(file: &str, ig: &Ignore) -> Finding {
    Finding {
        rule: UNUSED_IGNORE.0,
        name: UNUSED_IGNORE.1,
        severity: Severity::Warning,
        file: file.to_string(),
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
    }
}

/// A file to lint, read.
#[derive(Debug, Clone)]
pub struct Text {
    /// The name findings carry.
    pub name: String,
    pub text: String,
    /// Split at `--> statement-breakpoint` first, as drizzle does.
    pub drizzle: bool,
    pub wrap: Wrap,
}

/// A file of the run being cut: its text and where the cutting is.
struct Open {
    file: Text,
    lines: Lines,
    statements: Statements,
    /// Every statement has been handed out.
    cut: bool,
}

/// Where linting a file of the run is (kept apart from [`Open`]: the parse trees of a batch
/// borrow the texts while the rules update this).
#[derive(Default)]
struct Progress {
    /// Begun and not finished.
    lint: Option<FileLint>,
    finished: bool,
}

/// Lint `files` in order (each read when its turn comes), parsing ahead on `threads` threads.
/// The first error reading a file ends the run with it.
pub fn lint_files<E>(
    files: impl IntoIterator<Item = Result<Text, E>>,
    ctx: &mut Context,
    selection: &Selection,
    out: &mut Outcome,
    threads: usize,
) -> Result<(), E> {
    lint_in_batches(files, ctx, selection, out, threads, BATCH_BYTES)
}

/// [`lint_files`] with batches of `batch_bytes`.
fn lint_in_batches<E>(
    files: impl IntoIterator<Item = Result<Text, E>>,
    ctx: &mut Context,
    selection: &Selection,
    out: &mut Outcome,
    threads: usize,
    batch_bytes: usize,
) -> Result<(), E> {
    let active = Active::new(selection);
    let mut files = files.into_iter();
    let mut open: VecDeque<Open> = VecDeque::new();
    let mut progress: VecDeque<Progress> = VecDeque::new();
    let mut more = true;
    loop {
        let batch = gather(&mut files, &mut open, &mut more, batch_bytes)?;
        if open.is_empty() && !more {
            return Ok(());
        }
        progress.resize_with(open.len(), Progress::default);
        let parsed = parse_batch(&open, &batch, threads);
        lint_batch(&open, &mut progress, &batch, parsed, ctx, &active, out);
        while progress.front().is_some_and(|p| p.finished) {
            progress.pop_front();
            open.pop_front();
        }
    }
}

/// The next batch of statements `(file index in open, start, end)`, reading files as needed.
fn gather<E>(
    files: &mut impl Iterator<Item = Result<Text, E>>,
    open: &mut VecDeque<Open>,
    more: &mut bool,
    batch_bytes: usize,
) -> Result<Vec<(usize, usize, usize)>, E> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    while bytes < batch_bytes {
        if open.back().is_none_or(|f| f.cut) {
            let Some(file) = files.next().transpose()? else {
                *more = false;
                break;
            };
            // A file's text counts too, so many files without statements make a batch.
            bytes += file.text.len().min(batch_bytes);
            open.push_back(Open {
                lines: Lines::new(&file.text),
                statements: Statements::new(file.drizzle),
                file,
                cut: false,
            });
        }
        let i = open.len() - 1;
        let f = &mut open[i];
        match f.statements.next(&f.file.text) {
            Some((start, end)) => {
                bytes += end - start;
                batch.push((i, start, end));
            }
            None => f.cut = true,
        }
    }
    Ok(batch)
}

/// Parse the batch on up to `threads` threads, in order.
fn parse_batch<'a>(
    open: &'a VecDeque<Open>,
    batch: &[(usize, usize, usize)],
    threads: usize,
) -> Vec<Vec<Piece<'a>>> {
    let parse = |&(i, start, end): &(usize, usize, usize)| {
        let f = &open[i];
        pieces::parse(&f.file.text, &f.lines, start, end)
    };
    let threads = threads.clamp(1, batch.len().max(1));
    if threads == 1 {
        return batch.iter().map(parse).collect();
    }
    let per = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = batch
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(parse).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a lint worker does not panic"))
            .collect()
    })
}

/// Run the rules over a parsed batch, file by file in order: files are begun when first
/// reached and finished once every statement of theirs is linted.
fn lint_batch(
    open: &VecDeque<Open>,
    progress: &mut VecDeque<Progress>,
    batch: &[(usize, usize, usize)],
    parsed: Vec<Vec<Piece<'_>>>,
    ctx: &mut Context,
    active: &Active,
    out: &mut Outcome,
) {
    let mut parsed = batch.iter().map(|b| b.0).zip(parsed).peekable();
    for (i, (f, p)) in open.iter().zip(progress.iter_mut()).enumerate() {
        if p.finished {
            continue;
        }
        let lint = p.lint.get_or_insert_with(|| {
            FileLint::begin(&f.file.name, &f.file.text, f.file.wrap, ctx, out)
        });
        while let Some((_, pieces)) = parsed.next_if(|(fi, _)| *fi == i) {
            for piece in &pieces {
                lint.piece(piece, ctx, active, out);
            }
        }
        if f.cut {
            if let Some(lint) = p.lint.take() {
                lint.finish(ctx, active, out);
            }
            p.finished = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{Source, lint_source};

    fn selection() -> Selection {
        Selection {
            enable: ["all".to_string()].into(),
            disable: Default::default(),
        }
    }

    /// Streaming in batches over several threads finds what linting each file whole finds.
    #[test]
    fn batches_find_what_whole_files_find() {
        let mut files = Vec::new();
        for i in 0..40 {
            let text = format!(
                "-- pgship:ignore LK01 reviewed\nCREATE INDEX i{i} ON t{i} (a);\n\
                 CREATE TABLE t{i} (id int);\n{}\nALTER TABLE t{i} ADD COLUMN b int NOT NULL;\n\
                 BEGIN;\nALTER TABLE t{i} ALTER COLUMN b TYPE bigint;\nthis is not sql;\n",
                "INSERT INTO t VALUES (1), (2), (3);\n".repeat(i * 5)
            );
            files.push(Text {
                name: format!("{i:03}.sql"),
                text,
                drizzle: i % 3 == 0,
                wrap: Wrap::Engine {
                    per_migration: i % 2 == 0,
                },
            });
        }
        files.push(Text {
            name: "empty.sql".into(),
            text: "-- nothing\n".into(),
            drizzle: false,
            wrap: Wrap::None,
        });
        let sel = selection();
        let mut whole = Outcome::default();
        let mut ctx = Context::new(16, None);
        for f in &files {
            let src = Source {
                name: f.name.clone(),
                text: &f.text,
                drizzle: f.drizzle,
                wrap: f.wrap,
            };
            lint_source(&src, &mut ctx, &sel, &mut whole);
        }
        let batch = 2048;
        let total: usize = files.iter().map(|f| f.text.len()).sum();
        assert!(total > 20 * batch, "{total}");
        for threads in [1, 3] {
            let mut streamed = Outcome::default();
            let mut ctx = Context::new(16, None);
            let ok: Result<(), ()> = lint_in_batches(
                files.iter().cloned().map(Ok),
                &mut ctx,
                &sel,
                &mut streamed,
                threads,
                batch,
            );
            ok.expect("no read errors");
            assert_eq!(streamed.files, whole.files);
            assert_eq!(streamed.statements, whole.statements);
            assert_eq!(streamed.findings, whole.findings);
        }
        assert!(whole.findings.iter().any(|f| f.rule == "RB10"));
        assert_eq!(whole.files, 41);
    }

    #[test]
    fn a_read_error_ends_the_run() {
        let sel = selection();
        let mut out = Outcome::default();
        let mut ctx = Context::new(16, None);
        let files = vec![
            Ok(Text {
                name: "a.sql".into(),
                text: "SELECT 1;".into(),
                drizzle: false,
                wrap: Wrap::None,
            }),
            Err("b.sql: not UTF-8"),
        ];
        let err = lint_files(files, &mut ctx, &sel, &mut out, 2).expect_err("fails");
        assert_eq!(err, "b.sql: not UTF-8");
    }
}
