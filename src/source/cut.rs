//! Cutting SQL text into statements in bounded memory, and line numbers in one forward pass.
//!
//! [`Cutter`] finds where each statement of a text ends, as PostgreSQL's parser would: at a
//! top-level `;`, not inside quotes, comments, dollar quotes or parentheses (a `CREATE RULE`
//! may list several actions in parentheses), and not inside the `BEGIN ATOMIC ... END` body of
//! a `CREATE FUNCTION` or `CREATE PROCEDURE`. It runs PostgreSQL's own scanner over windows of
//! the text (256 KiB, doubled while a window ends inside a quote or holds no complete
//! statement), so a file of any size is cut with memory bounded by its largest statement and
//! in time linear in its size; parsing a whole 50 MB file at once, as `split_with_parser`
//! does, holds a parse tree many times the file.
//!
//! The routine-body rule is psql's (`psqlscan.l`): in a statement that starts with
//! `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, `BEGIN` outside parentheses opens a block, `CASE`
//! inside one opens another, `END` closes one, and `;` ends the statement only outside
//! blocks. Text the scanner cannot read (an unterminated quoted string or comment) ends the
//! cutting with an error; the statements of the windows before it were cut already.
//!
//! Nothing here changes or drops text: a cut is a range of the text given.

use std::collections::VecDeque;

use pg_query::protobuf::{ScanToken, Token};

/// Where one statement lies in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Just after the previous statement's `;` (or the start of the text): the statement's
    /// leading whitespace and comments are part of it, as in PostgreSQL's own split.
    pub start: usize,
    /// Its first token that is not a comment.
    pub first: usize,
    /// Its terminating `;` (not included), or the end of the text.
    pub end: usize,
}

/// The scanner could not read the text from statement start `at` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub at: usize,
    /// The scanner's message, e.g. `unterminated quoted string at or near "'abc"`.
    pub message: String,
}

/// The first window scanned; doubled while it holds no complete statement.
const WINDOW: usize = 256 * 1024;

/// Cuts a text into statements, a window at a time. It holds no borrow of the text (each call
/// takes it), so its owner may keep the text next to it.
#[derive(Debug, Clone)]
pub struct Cutter {
    /// Start of the next statement not yet cut.
    pos: usize,
    window: usize,
    ready: VecDeque<Cut>,
    done: bool,
}

impl Default for Cutter {
    fn default() -> Self {
        Cutter {
            pos: 0,
            window: WINDOW,
            ready: VecDeque::new(),
            done: false,
        }
    }
}

impl Cutter {
    /// The next statement of `text` (the same text at every call), an error where the scanner
    /// cannot read on (after which there is nothing more), or `None` at the end. Statements
    /// holding only comments are skipped.
    pub fn next(&mut self, text: &str) -> Option<Result<Cut, ScanError>> {
        loop {
            if let Some(cut) = self.ready.pop_front() {
                return Some(Ok(cut));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.refill(text) {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    /// Scan the next window and queue the statements it completes.
    fn refill(&mut self, text: &str) -> Result<(), ScanError> {
        loop {
            let end = window_end(text, self.pos, self.window);
            let last = end == text.len();
            let slice = &text[self.pos..end];
            if is_blank(slice) {
                if last {
                    self.done = true;
                    return Ok(());
                }
                self.window = self.window.saturating_mul(2);
                continue;
            }
            let tokens = match pg_query::scan_tokens(slice) {
                Ok(t) => t,
                // The window may end inside a quote or comment: look further before failing.
                Err(_) if !last => {
                    self.window = self.window.saturating_mul(2);
                    continue;
                }
                Err(e) => {
                    return Err(ScanError {
                        at: self.pos,
                        message: scan_message(e),
                    });
                }
            };
            let before = self.ready.len();
            let resume = walk(&tokens, self.pos, slice.len(), last, &mut self.ready);
            match resume {
                Some(next) => {
                    self.pos = next;
                    self.done = last;
                    self.window = WINDOW;
                    return Ok(());
                }
                // No statement ends in this window (only the last token may be cut short).
                None => {
                    debug_assert_eq!(self.ready.len(), before);
                    self.window = self.window.saturating_mul(2);
                }
            }
        }
    }
}

/// Where a window of `window` bytes from `pos` ends: just after the last `;` that ends a line
/// in its second half (most likely a statement's end, so the window seldom ends inside a
/// quote and is scanned once), else at `window` bytes (on a character boundary).
fn window_end(text: &str, pos: usize, window: usize) -> usize {
    let hard = pos.saturating_add(window).min(text.len());
    if hard == text.len() {
        return hard;
    }
    let half = pos + window / 2;
    let bytes = text.as_bytes();
    if let Some(i) = bytes[half..hard].windows(2).rposition(|w| w == b";\n") {
        return half + i + 2;
    }
    let mut end = hard;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

/// The statements of `text`, in order (see [`Cutter`]).
pub fn cuts(text: &str) -> impl Iterator<Item = Result<Cut, ScanError>> + '_ {
    let mut cutter = Cutter::default();
    std::iter::from_fn(move || cutter.next(text))
}

/// Only whitespace as PostgreSQL's scanner reads it (the scanner gives no token for it).
pub fn is_blank(s: &str) -> bool {
    s.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

fn scan_message(e: pg_query::Error) -> String {
    match e {
        pg_query::Error::Scan(m) | pg_query::Error::Split(m) | pg_query::Error::Parse(m) => m,
        other => other.to_string(),
    }
}

/// Statement-level state while walking tokens: psql's rules for `;`.
#[derive(Default)]
struct Walk {
    /// Absolute offset of the statement's first non-comment token.
    first: Option<usize>,
    parens: usize,
    /// Open `BEGIN`/`CASE` blocks of a routine body.
    blocks: usize,
    /// Words seen so far (keywords and identifiers), and whether the first ones spell
    /// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    words: usize,
    or_replace: bool,
    routine: bool,
    /// The statement's last token is a `;` inside parentheses or a block (unbalanced text):
    /// where it is.
    trailing_semicolon: Option<usize>,
}

impl Walk {
    /// Track `token`; whether it is a `;` that ends the statement.
    fn token(&mut self, token: &ScanToken, at: usize) -> bool {
        let t = token.token;
        if t == Token::Ascii59 as i32 && self.parens == 0 && self.blocks == 0 {
            return true;
        }
        self.first.get_or_insert(at);
        self.trailing_semicolon = (t == Token::Ascii59 as i32).then_some(at);
        if t == Token::Ascii40 as i32 {
            self.parens += 1;
        } else if t == Token::Ascii41 as i32 {
            self.parens = self.parens.saturating_sub(1);
        } else if t == Token::Ident as i32 || token.keyword_kind != 0 {
            self.word(t);
        }
        false
    }

    fn word(&mut self, t: i32) {
        let is = |k: Token| t == k as i32;
        let routine_word = is(Token::Function) || is(Token::Procedure);
        match self.words {
            0 if !is(Token::Create) => self.words = usize::MAX,
            1 => {
                self.or_replace = is(Token::Or);
                self.routine = routine_word;
            }
            2 if self.or_replace && !is(Token::Replace) => self.or_replace = false,
            3 if self.or_replace => self.routine = routine_word,
            _ => {}
        }
        self.words = self.words.saturating_add(1);
        if !self.routine || self.parens > 0 {
            return;
        }
        // CASE ends with END too, so it counts inside a block.
        if is(Token::BeginP) || (is(Token::Case) && self.blocks > 0) {
            self.blocks += 1;
        } else if is(Token::EndP) {
            self.blocks = self.blocks.saturating_sub(1);
        }
    }
}

/// Walk a window's tokens (offsets relative to `base`, the window `len` bytes long), queue
/// the statements that end in it, and return where the next window starts: after the last
/// `;` that ended a statement, or the end of the window when it is the end of the text.
/// `None` when no statement ends in a window that is not the last.
fn walk(
    tokens: &[ScanToken],
    base: usize,
    len: usize,
    last: bool,
    out: &mut VecDeque<Cut>,
) -> Option<usize> {
    let mut start = base;
    let mut state = Walk::default();
    let mut resume = None;
    let mut pending = Vec::new();
    for token in tokens {
        if token.token == Token::SqlComment as i32 || token.token == Token::CComment as i32 {
            continue;
        }
        let at = base + usize::try_from(token.start).unwrap_or(0);
        if state.token(token, at) {
            if let Some(first) = state.first {
                pending.push(Cut {
                    start,
                    first,
                    end: at,
                });
            }
            start = at + 1;
            resume = Some(start);
            state = Walk::default();
        }
    }
    if last {
        if let Some(first) = state.first {
            // Unbalanced text runs to the end; a `;` ending it is not part of it.
            let end = state.trailing_semicolon.unwrap_or(base + len);
            pending.push(Cut { start, first, end });
        }
        resume = Some(base + len);
    }
    out.extend(pending);
    resume
}

/// 1-based line numbers of increasing offsets in one text, counted in one forward pass (an
/// offset before the previous one counts again from the start).
#[derive(Debug, Clone)]
pub struct LineCursor<'a> {
    text: &'a [u8],
    at: usize,
    line: u32,
}

impl<'a> LineCursor<'a> {
    pub fn new(text: &'a str) -> LineCursor<'a> {
        LineCursor {
            text: text.as_bytes(),
            at: 0,
            line: 1,
        }
    }

    /// The line of `offset` (offsets past the end count as the end).
    pub fn line(&mut self, offset: usize) -> u32 {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            self.at = 0;
            self.line = 1;
        }
        let newlines = self.text[self.at..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line = self
            .line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
        self.at = offset;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<(&str, &str)> {
        cuts(text)
            .map(|c| {
                let c = c.expect("scans");
                (&text[c.start..c.end], &text[c.first..c.end])
            })
            .collect()
    }

    #[test]
    fn cuts_at_top_level_semicolons_only() {
        let text = "-- head\nSELECT 'a;b', \"c;d\", $x$ ; $x$ /* ; */;\n\n;  -- only a comment\n;\
                    CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\
                    \nSELECT 2";
        let got = pieces(text);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(
            got[0].0,
            "-- head\nSELECT 'a;b', \"c;d\", $x$ ; $x$ /* ; */"
        );
        assert_eq!(got[0].1, "SELECT 'a;b', \"c;d\", $x$ ; $x$ /* ; */");
        assert!(got[1].1.starts_with("CREATE RULE") && got[1].1.ends_with("VALUES (2))"));
        assert_eq!(got[2], ("\nSELECT 2", "SELECT 2"));
    }

    #[test]
    fn unbalanced_text_runs_to_the_end_without_its_last_semicolon() {
        let text = "SELECT 1;\nINSERT INTO t VALUES ((1);\nSELECT 2; -- c\n";
        let got = pieces(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, "INSERT INTO t VALUES ((1);\nSELECT 2");
    }

    #[test]
    fn routine_bodies_stay_whole() {
        let text = "CREATE OR REPLACE FUNCTION f(begin_at int) RETURNS int LANGUAGE sql\n\
                    BEGIN ATOMIC\n  SELECT CASE WHEN begin_at > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\n\
                    CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;\n\
                    CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN CASE WHEN true THEN 1 END;\n\
                    SELECT 3;";
        let got = pieces(text);
        let firsts: Vec<&str> = got.iter().map(|p| p.1).collect();
        assert_eq!(firsts.len(), 4, "{firsts:#?}");
        assert!(firsts[0].ends_with("SELECT 2;\nEND"), "{}", firsts[0]);
        assert!(firsts[1].ends_with("VALUES (1); END"), "{}", firsts[1]);
        assert!(firsts[2].ends_with("THEN 1 END"), "{}", firsts[2]);
        assert_eq!(firsts[3], "SELECT 3");
        // Not a routine: BEGIN is transaction control, each statement on its own.
        assert_eq!(pieces("BEGIN; SELECT 1; END;").len(), 3);
    }

    #[test]
    fn windows_that_end_inside_quotes_grow() {
        // Statements longer than the window, and quotes that straddle window ends.
        let long = format!("'{}'", "x;".repeat(WINDOW));
        let text = format!(
            "SELECT {long};\nSELECT $q${}$q$;\n{}SELECT 1",
            "y;".repeat(WINDOW / 2 + 7),
            "SELECT 'z';".repeat(WINDOW / 8)
        );
        let got: Vec<Cut> = cuts(&text).map(|c| c.expect("scans")).collect();
        assert_eq!(got.len(), 3 + WINDOW / 8);
        assert_eq!(&text[got[0].first..got[0].end], format!("SELECT {long}"));
        assert!(text[got[1].first..got[1].end].ends_with("$q$"));
        assert_eq!(&text[got.last().unwrap().first..], "SELECT 1");
        for w in got.windows(2) {
            assert_eq!(w[1].start, w[0].end + 1);
        }
    }

    #[test]
    fn multibyte_text_at_window_ends() {
        let text = format!("SELECT '{}';SELECT 'é';", "é".repeat(WINDOW));
        let got: Vec<Cut> = cuts(&text).map(|c| c.expect("scans")).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(&text[got[1].first..got[1].end], "SELECT 'é'");
    }

    #[test]
    fn unscannable_text_is_an_error_after_the_windows_before_it() {
        let text = "SELECT 1;\nSELECT 'open;\nSELECT 2;";
        let got: Vec<Result<Cut, ScanError>> = cuts(text).collect();
        assert_eq!(got.len(), 1);
        let err = got[0].as_ref().expect_err("fails");
        assert_eq!(err.at, 0);
        assert!(
            err.message.contains("unterminated quoted string"),
            "{err:?}"
        );
        // Statements in earlier windows are cut before the error.
        let text = format!("{}SELECT 'open;", "SELECT 1;".repeat(WINDOW / 4));
        let got: Vec<Result<Cut, ScanError>> = cuts(&text).collect();
        let err = got.last().expect("some").as_ref().expect_err("fails last");
        assert!(
            got.len() > WINDOW / 9 && err.at > 0,
            "{} {err:?}",
            got.len()
        );
        assert!(got[..got.len() - 1].iter().all(Result::is_ok));
        assert!(pieces("").is_empty());
        assert!(pieces(" \n\t").is_empty());
        assert!(pieces("-- nothing\n/* here */ ;\n").is_empty());
    }

    #[test]
    fn line_cursor_counts_forward() {
        let text = "a\nb\nc";
        let mut lines = LineCursor::new(text);
        assert_eq!(lines.line(0), 1);
        assert_eq!(lines.line(2), 2);
        assert_eq!(lines.line(4), 3);
        assert_eq!(lines.line(999), 3);
        assert_eq!(lines.line(1), 1);
    }
}
