//! Cutting a file into statements and parsing them one at a time, so that linting a file of
//! any size holds one statement's parse tree (or one batch's) at a time, never the file's:
//! PostgreSQL's parse tree of a data-heavy file is dozens of times the file.
//!
//! Statements are cut as the engine cuts them (Drizzle chunks first, then PostgreSQL's scanner
//! over bounded windows, see [`crate::source::cut`]); each is parsed on its own. Where the
//! scanner cannot read on (an unterminated quote or comment), the longest prefix that ends at a
//! `;` and scans cleanly is cut normally and the rest is one piece, which fails to parse and is
//! reported (RB10) at its own line.

use std::collections::VecDeque;

use pg_query::NodeEnum;

use crate::source::cut::{self, Cutter};
use crate::source::split;

/// A statement cut from a file and parsed: its text, where its first token is, and its parse
/// tree (or the parser's error).
pub struct Piece<'a> {
    pub(super) sql: &'a str,
    pub(super) line: u32,
    pub(super) column: u32,
    pub(super) parsed: Result<NodeEnum, String>,
}

/// Line and column lookups over one text (the text is given at each lookup).
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { starts }
    }

    /// 1-based line and column (in characters) of `offset` in `text`.
    pub fn at(&self, text: &str, offset: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = text[start..offset].chars().count() + 1;
        (line as u32, column as u32)
    }
}

/// Finds the statements of one file as they are needed: `(start, end)` byte ranges from each
/// statement's first token to its `;` (excluded). Holds no borrow of the text.
pub struct Statements {
    drizzle: bool,
    /// The chunk being cut (the whole text when not Drizzle), and where the next one starts.
    chunk: Option<(usize, usize)>,
    next_chunk: Option<usize>,
    cutter: Cutter,
    ready: VecDeque<(usize, usize)>,
}

impl Statements {
    pub fn new(drizzle: bool) -> Statements {
        Statements {
            drizzle,
            chunk: None,
            next_chunk: Some(0),
            cutter: Cutter::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next statement of `text` (the same text at every call), or `None` at the end.
    pub fn next(&mut self, text: &str) -> Option<(usize, usize)> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            let Some((base, end)) = self.chunk else {
                self.chunk = Some(self.next_chunk_of(text)?);
                self.cutter = Cutter::default();
                continue;
            };
            let chunk = &text[base..end];
            match self.cutter.next(chunk) {
                Some(Ok(c)) => return Some((base + c.first, base + c.end)),
                Some(Err(e)) => {
                    let at = base + e.at;
                    self.ready
                        .extend(salvage(&text[at..end]).map(|(s, e)| (at + s, at + e)));
                    self.chunk = None;
                }
                None => self.chunk = None,
            }
        }
    }

    /// The next Drizzle chunk (`text.split(BREAKPOINT)`), or the whole text once.
    fn next_chunk_of(&mut self, text: &str) -> Option<(usize, usize)> {
        let start = self.next_chunk?;
        if !self.drizzle {
            self.next_chunk = None;
            return Some((0, text.len()));
        }
        match text[start..].find(split::BREAKPOINT) {
            Some(i) => {
                self.next_chunk = Some(start + i + split::BREAKPOINT.len());
                Some((start, start + i))
            }
            None => {
                self.next_chunk = None;
                Some((start, text.len()))
            }
        }
    }
}

/// Statements of `rest`, which the scanner cannot read to its end: the longest prefix ending
/// at a `;` that scans cleanly is cut normally (found by bisection, each try in bounded
/// memory), and what follows is one piece.
fn salvage(rest: &str) -> impl Iterator<Item = (usize, usize)> {
    let semicolons: Vec<usize> = rest.match_indices(';').map(|(i, _)| i + 1).collect();
    let clean = |end: usize| -> Option<Vec<(usize, usize)>> {
        cut::cuts(&rest[..end])
            .map(|c| c.ok().map(|c| (c.first, c.end)))
            .collect()
    };
    let (mut lo, mut hi) = (0usize, semicolons.len());
    let mut best: (usize, Vec<(usize, usize)>) = (0, Vec::new());
    while lo < hi {
        let mid = (lo + hi) / 2;
        match clean(semicolons[mid]) {
            Some(cuts) => {
                best = (semicolons[mid], cuts);
                lo = mid + 1;
            }
            None => hi = mid,
        }
    }
    let (at, mut out) = best;
    if let Some(first) = split::first_token_offset(&rest[at..]) {
        out.push((at + first, rest.len()));
    }
    out.into_iter()
}

/// Parse the statement `text[start..end]` (from its first token): one piece, or several when
/// the parser finds several statements in it (the cutter keeps a routine body whole by psql's
/// rule, which a function named `begin` can fool).
pub fn parse<'t>(text: &'t str, lines: &Lines, start: usize, end: usize) -> Vec<Piece<'t>> {
    let sql = &text[start..end];
    let piece = |at: usize, to: usize, parsed| {
        let (line, column) = lines.at(text, at);
        Piece {
            sql: text[at..to].trim_end(),
            line,
            column,
            parsed,
        }
    };
    let stmts = match pg_query::parse(sql, 0) {
        Ok(r) => r.protobuf.stmts,
        Err(pg_query::Error::Parse(m)) => return vec![piece(start, end, Err(m))],
        Err(other) => return vec![piece(start, end, Err(other.to_string()))],
    };
    if stmts.len() <= 1 {
        let node = stmts
            .into_iter()
            .find_map(|raw| raw.stmt.and_then(|n| n.node));
        return vec![piece(
            start,
            end,
            node.ok_or_else(|| "empty statement".to_string()),
        )];
    }
    let mut out = Vec::with_capacity(stmts.len());
    for raw in stmts {
        let loc = usize::try_from(raw.stmt_location)
            .unwrap_or(0)
            .min(sql.len());
        let to = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(n) => (loc + n).min(sql.len()),
        };
        let (Some(first), Some(node)) = (
            split::first_token_offset(&sql[loc..to]),
            raw.stmt.and_then(|n| n.node),
        ) else {
            continue;
        };
        out.push(piece(start + loc + first, start + to, Ok(node)));
    }
    out
}

/// Cut and parse a whole file at once (for callers that lint small texts; [`super::run`]
/// streams).
pub fn prepare(text: &str, drizzle: bool) -> Vec<Piece<'_>> {
    let lines = Lines::new(text);
    let mut statements = Statements::new(drizzle);
    let mut out = Vec::new();
    while let Some((start, end)) = statements.next(text) {
        out.extend(parse(text, &lines, start, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str, drizzle: bool) -> Vec<(String, u32, bool)> {
        prepare(text, drizzle)
            .iter()
            .map(|p| (p.sql.to_string(), p.line, p.parsed.is_ok()))
            .collect()
    }

    #[test]
    fn statements_are_cut_and_parsed_one_by_one() {
        let got = texts(
            "-- head\nCREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1) ;\nthis is not sql;\nSELECT 1",
            false,
        );
        assert_eq!(
            got,
            [
                ("CREATE TABLE a (id int)".into(), 2, true),
                ("INSERT INTO a VALUES (1)".into(), 4, true),
                ("this is not sql".into(), 5, false),
                ("SELECT 1".into(), 6, true),
            ]
        );
    }

    #[test]
    fn drizzle_chunks_come_first() {
        let text = "CREATE TABLE a (id int);\n--> statement-breakpoint\nSELECT 'x --> statement-breakpoint';\n--> statement-breakpoint\n-- only a comment\n";
        let got = texts(text, true);
        // drizzle splits inside the string too, as drizzle-orm does.
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], ("CREATE TABLE a (id int)".into(), 1, true));
        assert!(!got[1].2 && !got[2].2, "{got:?}");
    }

    #[test]
    fn an_unterminated_quote_leaves_the_statements_before_it() {
        let got = texts("SELECT 1;\nSELECT 2;\nSELECT 'open;\nSELECT 3;", false);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], ("SELECT 1".into(), 1, true));
        assert_eq!(got[1], ("SELECT 2".into(), 2, true));
        assert_eq!(got[2].1, 3);
        assert!(!got[2].2);
    }

    #[test]
    fn several_statements_the_cutter_kept_together_are_parsed_apart() {
        let got = texts(
            "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; SELECT 2;",
            false,
        );
        let sqls: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            sqls,
            [
                "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1",
                "SELECT 2"
            ]
        );
    }
}
