//! Statement splitting and classification for migration files.
//!
//! Two ways to cut a file into the units the engine sends:
//! - [`drizzle_chunks`]: exactly what drizzle-orm does (`text.split("--> statement-breakpoint")`),
//!   each chunk kept byte for byte, so pgship sends what the app's own `migrate()` would send;
//! - [`sql_statements`]: one statement per unit for plain SQL folders, cut where PostgreSQL's
//!   parser would cut (by its scanner, over bounded windows: see [`super::cut`]), so quotes,
//!   dollar quotes, comments and `BEGIN ATOMIC` bodies are respected in a file of any size.
//!
//! It also classifies statements: whether they may run inside a transaction block
//! ([`tx_requirement`]) and whether they are transaction control ([`transaction_control`]);
//! [`separate_control`] cuts top-level `BEGIN`/`COMMIT` out of the units they share with other
//! statements, so the engine can give them their meaning (see `TxControl`). Each statement is
//! parsed at most once, and plain data statements (`INSERT`, ...) not at all unless it matters.
//!
//! This module must never change the text it is given (no trimming, no normalising of line
//! endings), never drop text that holds SQL, never panic on odd input, and never talk to a
//! database. Whatever it cannot classify is `TxRequirement::Any`: the server is the authority.

use pg_query::NodeEnum;
use pg_query::protobuf::{self, Token};

use std::ops::Range;

use super::cut::{self, LineCursor};
use super::{SqlText, Statement, TxRequirement};

/// The separator drizzle-kit writes and drizzle-orm splits on.
pub const BREAKPOINT: &str = "--> statement-breakpoint";

/// 1-based line number of `byte_offset` in `text` (offsets past the end count as the end).
pub fn line_at(text: &str, byte_offset: usize) -> u32 {
    let end = byte_offset.min(text.len());
    let newlines = text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    u32::try_from(newlines)
        .unwrap_or(u32::MAX - 1)
        .saturating_add(1)
}

/// A unit the engine sends, with what the parser told about each of its statements (`None`
/// when the unit does not parse): read once, used to classify, cut out transaction control and
/// check the unit without parsing it again.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub stmt: Statement,
    pub infos: Option<Vec<StatementInfo>>,
}

/// Split a Drizzle migration file exactly like drizzle-orm does.
///
/// Every chunk of `text.split("--> statement-breakpoint")` that holds at least one SQL token is
/// returned unchanged (its leading newline included); chunks holding only whitespace and
/// comments (for example after a trailing breakpoint) are dropped, which is harmless because the
/// server treats them as empty queries. `offset` is the chunk's byte offset in the file and
/// `line` the line of its first SQL token.
pub fn drizzle_chunks(text: &str) -> Vec<Statement> {
    drizzle_units(&SqlText::from(text))
        .into_iter()
        .map(|u| u.stmt)
        .collect()
}

/// [`drizzle_chunks`] of the file `file`, each with its statements described; their text is
/// a piece of `file`'s.
pub(crate) fn drizzle_units(file: &SqlText) -> Vec<Unit> {
    drizzle_units_lazily(file, |range| file.slice(range)).collect()
}

/// [`drizzle_units`] of `text` one at a time, each chunk's text made by `sql_of` from its byte
/// range in `text`.
pub(crate) fn drizzle_units_lazily<'a>(
    text: &'a str,
    sql_of: impl Fn(Range<usize>) -> SqlText + 'a,
) -> impl Iterator<Item = Unit> + 'a {
    let mut offset = 0usize;
    let mut lines = LineCursor::new(text);
    text.split(BREAKPOINT).filter_map(move |chunk| {
        let at = offset;
        offset += chunk.len() + BREAKPOINT.len();
        let first = first_token_offset(chunk)?;
        let infos = analyze(chunk);
        Some(Unit {
            stmt: Statement {
                sql: sql_of(at..at + chunk.len()),
                offset: at,
                line: lines.line(at + first),
                tx: strictest(infos.as_deref()),
                control: None,
            },
            infos,
        })
    })
}

/// Split a plain SQL file into single statements.
///
/// Cuts where PostgreSQL's parser would (see [`cut::Cutter`]: PostgreSQL's scanner over
/// bounded windows, so quotes, dollar quotes, comments, parentheses and `BEGIN ATOMIC` bodies
/// are respected in any size of file), on invalid SQL too: nothing is dropped but pieces
/// holding only whitespace, comments and `;`. `sql` is the piece without its terminating `;`.
///
/// The error is the scanner's message (for example an unterminated quoted string or comment);
/// the caller adds the file name.
pub fn sql_statements(text: &str) -> Result<Vec<Statement>, String> {
    Ok(sql_units(&SqlText::from(text))?
        .into_iter()
        .map(|u| u.stmt)
        .collect())
}

/// [`sql_statements`] of the file `file`, each with its statement described; their text is a
/// piece of `file`'s.
pub(crate) fn sql_units(file: &SqlText) -> Result<Vec<Unit>, String> {
    let text = file.as_str();
    if let Some(at) = text.bytes().position(|b| b == 0) {
        return Err(format!(
            "line {}: the text contains a NUL byte, which PostgreSQL cannot receive in a query",
            line_at(text, at)
        ));
    }
    let mut out = Vec::new();
    let mut lines = LineCursor::new(text);
    for c in cut::cuts(text) {
        let c = c.map_err(|e| scanner_message(text, &e))?;
        for (start, end, info) in single_statements(text, c) {
            out.push(Unit {
                stmt: Statement {
                    sql: file.slice(start..end),
                    offset: start,
                    line: lines.line(start),
                    tx: info.as_ref().map_or(TxRequirement::Any, |i| i.tx),
                    control: None,
                },
                infos: info.map(|i| vec![i]),
            });
        }
    }
    Ok(out)
}

/// The statements of the piece `c` of `text` as `(start, end, info)`: each from its first
/// token (leading comments are not sent, as PostgreSQL's own split places statements) to its
/// `;`, the info relative to `start` (`None` when it does not parse). One, unless the parser
/// finds several in a piece the cutter kept whole (psql's routine-body rule can be fooled, e.g.
/// by a function named `begin`): then they are cut where the parser says.
fn single_statements(text: &str, c: cut::Cut) -> Vec<(usize, usize, Option<StatementInfo>)> {
    let sql = &text[c.first..c.end];
    if plain_dml(sql) {
        return vec![(c.first, c.end, Some(dml_info(0, sql.len())))];
    }
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return vec![(c.first, c.end, None)];
    };
    let infos = parsed_infos(sql, &parsed.protobuf.stmts, 0);
    if infos.len() < 2 {
        return vec![(c.first, c.end, infos.into_iter().next())];
    }
    infos
        .into_iter()
        .map(|info| {
            let shifted = StatementInfo {
                offset: 0,
                end: info.end - info.offset,
                ..info
            };
            (c.first + info.offset, c.first + info.end, Some(shifted))
        })
        .collect()
}

fn scanner_message(text: &str, err: &cut::ScanError) -> String {
    let rest = &text[err.at..];
    match unterminated_at(rest) {
        Some(at) => format!(
            "cannot split into statements: {} (starting at line {})",
            err.message,
            line_at(text, err.at + at)
        ),
        None => format!("cannot split into statements: {}", err.message),
    }
}

/// The scanner's tokens (`pg_query::scan_tokens` builds a slice from a null pointer when there
/// are none, so blank text is answered here).
fn scan_tokens(sql: &str) -> Result<Vec<protobuf::ScanToken>, pg_query::Error> {
    if cut::is_blank(sql) {
        return Ok(Vec::new());
    }
    pg_query::scan_tokens(sql)
}

fn is_comment(token: &protobuf::ScanToken) -> bool {
    token.token == Token::SqlComment as i32 || token.token == Token::CComment as i32
}

/// Byte offset (in `sql`) of the first token that is not a comment, or `None` when the text holds
/// only whitespace and comments. Skips whitespace, `--` comments and (nested) `/* */` comments
/// as PostgreSQL's scanner does, without scanning the rest of the text; an unterminated
/// comment counts as content, because the server would reject it.
pub fn first_token_offset(sql: &str) -> Option<usize> {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match block_comment_end(b, i) {
                Some(end) => i = end,
                None => return Some(i),
            },
            _ => return Some(i),
        }
    }
    None
}

/// End (exclusive) of the nested `/* */` comment starting at `start`, if it is terminated.
fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Whether a statement (from its first token) is plain data manipulation or a query, which
/// runs in any transaction and is never transaction control: told from its first word, so the
/// bulk of a data migration (`INSERT`s) need not be parsed to be classified.
pub fn plain_dml(statement: &str) -> bool {
    let word_len = statement
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$' || *b >= 0x80)
        .count();
    let word = &statement[..word_len];
    [
        "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE", "MERGE", "COPY",
    ]
    .iter()
    .any(|k| word.eq_ignore_ascii_case(k))
}

fn dml_info(offset: usize, end: usize) -> StatementInfo {
    StatementInfo {
        offset,
        tx: TxRequirement::Any,
        why: None,
        transaction_control: None,
        end,
    }
}

/// Best-effort position of an unterminated quote or comment, for error messages only.
fn unterminated_at(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match block_comment_end(b, i) {
                Some(end) => i = end,
                None => return Some(i),
            },
            q @ (b'\'' | b'"') => {
                let start = i;
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Some(start),
                        Some(&c) if c == q && b.get(i + 1) == Some(&q) => i += 2,
                        Some(&c) if c == q => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'$' => {
                // Dollar quote: $tag$ ... $tag$ (tag: letters, digits, underscores, not leading digit).
                let start = i;
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80)
                {
                    j += 1;
                }
                let tag_ok =
                    b.get(j) == Some(&b'$') && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                if !tag_ok {
                    i += 1;
                    continue;
                }
                let tag = &b[start..=j];
                match find_bytes(&b[j + 1..], tag) {
                    Some(pos) => i = j + 1 + pos + tag.len(),
                    None => return Some(start),
                }
            }
            _ => i += 1,
        }
    }
    None
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One statement of a unit, as far as the parser could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementInfo {
    /// Byte offset in the analysed text of the statement's first token.
    pub offset: usize,
    pub tx: TxRequirement,
    /// What makes it non-transactional, e.g. `CREATE INDEX CONCURRENTLY`.
    pub why: Option<&'static str>,
    /// The transaction-control keyword(s) if it is one, e.g. `BEGIN`, `START TRANSACTION`.
    pub transaction_control: Option<String>,
    /// Byte offset in the analysed text just past the statement (its `;` not included).
    pub end: usize,
}

/// Parse `sql` and describe each statement, or `None` when it does not parse.
///
/// Statement by statement (cut by [`cut::Cutter`]), so memory stays bounded on a unit of any
/// size. A statement that [`plain_dml`] recognises is described without building its parse
/// tree; whether it parses is checked (by the parser, without a tree) only when the answer
/// matters: when another statement of the unit is transaction control or cannot run anywhere.
pub fn analyze(sql: &str) -> Option<Vec<StatementInfo>> {
    let mut out = Vec::new();
    let mut unchecked = Vec::new();
    for c in cut::cuts(sql) {
        let c = c.ok()?;
        let piece = &sql[c.start..c.end];
        let first = c.first - c.start;
        let infos = if plain_dml(&piece[first..]) {
            unchecked.push((c.start, c.end));
            vec![dml_info(first, piece.len())]
        } else {
            let parsed = pg_query::parse(piece, 0).ok()?;
            parsed_infos(piece, &parsed.protobuf.stmts, first)
        };
        out.extend(infos.into_iter().map(|i| StatementInfo {
            offset: i.offset + c.start,
            end: i.end + c.start,
            ..i
        }));
    }
    let matters = out
        .iter()
        .any(|i| i.tx != TxRequirement::Any || i.transaction_control.is_some());
    if matters {
        for (start, end) in unchecked {
            pg_query::split_with_parser(&sql[start..end]).ok()?;
        }
    }
    Some(out)
}

/// Describe the statements `stmts` the parser found in `piece` (offsets relative to it),
/// `first` being the piece's first non-comment token.
fn parsed_infos(piece: &str, stmts: &[protobuf::RawStmt], first: usize) -> Vec<StatementInfo> {
    let control = |raw: &protobuf::RawStmt| {
        matches!(
            raw.stmt.as_ref().and_then(|n| n.node.as_ref()),
            Some(NodeEnum::TransactionStmt(_))
        )
    };
    // Tokens are needed only to place several statements or to name transaction control.
    let tokens = if stmts.len() > 1 || stmts.iter().any(control) {
        scan_tokens(piece).ok().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(stmts.len());
    for raw in stmts {
        let location = usize::try_from(raw.stmt_location).unwrap_or(0);
        let offset = if stmts.len() == 1 {
            first
        } else {
            tokens
                .iter()
                .filter(|t| !is_comment(t))
                .filter_map(|t| usize::try_from(t.start).ok())
                .find(|&s| s >= location)
                .unwrap_or(location)
        };
        let (tx, why) = raw
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
            .map(classify)
            .unwrap_or((TxRequirement::Any, None));
        let transaction_control = control(raw).then(|| keywords_at(piece, &tokens, offset));
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => piece.len(),
            Ok(len) => (location + len).min(piece.len()),
        };
        out.push(StatementInfo {
            offset,
            tx,
            why,
            transaction_control,
            end,
        });
    }
    out
}

/// Whether `sql` may run inside a transaction block. With several statements the strictest
/// wins; text that does not parse is `Any` (the server decides).
pub fn tx_requirement(sql: &str) -> TxRequirement {
    strictest(analyze(sql).as_deref())
}

/// Whether the statement `node` (one statement) may run inside a transaction block.
pub fn node_tx_requirement(node: &NodeEnum) -> TxRequirement {
    classify(node).0
}

/// The strictest requirement of described statements (`Any` when there are none or the text
/// does not parse).
fn strictest(infos: Option<&[StatementInfo]>) -> TxRequirement {
    infos
        .unwrap_or_default()
        .iter()
        .map(|s| s.tx)
        .max_by_key(|tx| strictness(*tx))
        .unwrap_or(TxRequirement::Any)
}

fn strictness(tx: TxRequirement) -> u8 {
    match tx {
        TxRequirement::Any => 0,
        TxRequirement::MayCommit => 1,
        TxRequirement::NoTransactionBeforePg12 => 2,
        TxRequirement::NoTransaction => 3,
    }
}

/// The transaction-control keyword (`BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`,
/// `ABORT`, `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`, `PREPARE TRANSACTION`, `COMMIT PREPARED`,
/// `ROLLBACK PREPARED`) of the first such statement in `sql`, if any.
pub fn transaction_control(sql: &str) -> Option<String> {
    transaction_control_at(sql).map(|(kw, _)| kw)
}

/// Like [`transaction_control`], with the byte offset of the statement in `sql`.
///
/// Uses the parser; when the text does not parse it falls back to the scanner and looks at the
/// first keywords of each `;`-separated piece, so a stray `COMMIT;` is found even in a file with
/// a syntax error elsewhere.
pub fn transaction_control_at(sql: &str) -> Option<(String, usize)> {
    if let Some(infos) = analyze(sql) {
        return infos
            .into_iter()
            .find_map(|i| i.transaction_control.map(|kw| (kw, i.offset)));
    }
    let tokens = scan_tokens(sql).ok()?;
    let mut at_start = true;
    for (idx, token) in tokens.iter().enumerate() {
        if is_comment(token) {
            continue;
        }
        if token.token == Token::Ascii59 as i32 {
            at_start = true;
            continue;
        }
        if !at_start {
            continue;
        }
        at_start = false;
        let word = token_text(sql, token).to_ascii_uppercase();
        let next = tokens[idx + 1..]
            .iter()
            .find(|t| !is_comment(t))
            .map(|t| token_text(sql, t).to_ascii_uppercase());
        let next = next.as_deref();
        let is_control = match word.as_str() {
            "BEGIN" => next != Some("ATOMIC"),
            "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" => true,
            "START" | "PREPARE" => next == Some("TRANSACTION"),
            _ => false,
        };
        if is_control {
            let offset = usize::try_from(token.start).unwrap_or(0);
            return Some((keywords_at(sql, &tokens, offset), offset));
        }
    }
    None
}

fn token_text<'a>(sql: &'a str, token: &protobuf::ScanToken) -> &'a str {
    let (Ok(s), Ok(e)) = (usize::try_from(token.start), usize::try_from(token.end)) else {
        return "";
    };
    sql.get(s..e).unwrap_or("")
}

/// The keyword(s) naming the transaction-control statement starting at `offset`.
fn keywords_at(sql: &str, tokens: &[protobuf::ScanToken], offset: usize) -> String {
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !is_comment(t) && usize::try_from(t.start).is_ok_and(|s| s >= offset))
        .take(2)
        .map(|t| token_text(sql, t).to_ascii_uppercase())
        .collect();
    let first = words
        .first()
        .cloned()
        .unwrap_or_else(|| "BEGIN".to_string());
    let second = words.get(1).map(String::as_str);
    match (first.as_str(), second) {
        ("START" | "PREPARE", Some("TRANSACTION"))
        | ("COMMIT" | "ROLLBACK", Some("PREPARED"))
        | ("ROLLBACK", Some("TO")) => format!("{first} {}", second.unwrap_or_default()),
        _ => first,
    }
}

/// Cut top-level transaction control out of the units it shares with other statements and mark
/// it. A unit without transaction control, or one that does not parse (the server reports it;
/// PostgreSQL parses a whole query string before running any of it), is kept as it is. Cut
/// pieces keep their text byte for byte; a control piece runs to its `;`.
pub fn separate_control(text: &str, statements: Vec<Statement>) -> Vec<Statement> {
    let units = statements.into_iter().map(|stmt| Unit {
        infos: analyze(&stmt.sql),
        stmt,
    });
    separate_units(text, units)
        .into_iter()
        .map(|u| u.stmt)
        .collect()
}

/// [`separate_control`] on described units: each piece cut out is described anew, the others
/// keep their description.
pub(crate) fn separate_units(text: &str, units: impl IntoIterator<Item = Unit>) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut lines = LineCursor::new(text);
    for unit in units {
        separate_unit(&mut lines, unit, &mut out);
    }
    out
}

/// [`separate_units`] for one unit, `lines` over its file (units in file order).
pub(crate) fn separate_unit(lines: &mut LineCursor<'_>, unit: Unit, out: &mut Vec<Unit>) {
    let controls: Vec<(usize, usize, super::TxControl)> = unit
        .infos
        .iter()
        .flatten()
        .filter_map(|i| {
            let kw = i.transaction_control.as_deref()?;
            let control = super::TxControl::from_keyword(kw)?;
            Some((i.offset, through_semicolon(&unit.stmt.sql, i.end), control))
        })
        .collect();
    if controls.is_empty() {
        out.push(unit);
        return;
    }
    let stmt = &unit.stmt;
    let mut at = 0;
    for (start, end, control) in controls {
        push_piece(lines, stmt, at, start, None, out);
        push_piece(lines, stmt, start, end, Some(control), out);
        at = end;
    }
    push_piece(lines, stmt, at, stmt.sql.len(), None, out);
}

/// `end`, moved past whitespace and one `;` that follow it.
fn through_semicolon(sql: &str, end: usize) -> usize {
    let rest = &sql[end..];
    let trimmed = rest.trim_start();
    if trimmed.starts_with(';') {
        end + (rest.len() - trimmed.len()) + 1
    } else {
        end
    }
}

/// Push `stmt.sql[from..to]` as a statement of its own if it holds SQL (`lines` over the file
/// `stmt` is in).
fn push_piece(
    lines: &mut LineCursor<'_>,
    stmt: &Statement,
    from: usize,
    to: usize,
    control: Option<super::TxControl>,
    out: &mut Vec<Unit>,
) {
    let Some(piece) = stmt.sql.get(from..to) else {
        return;
    };
    let Some(first) = first_token_offset(piece) else {
        return;
    };
    let sql = stmt.sql.slice(from..to);
    let offset = stmt.offset + from;
    let infos = analyze(piece);
    out.push(Unit {
        stmt: Statement {
            sql,
            offset,
            line: lines.line(offset + first),
            tx: if control.is_some() {
                TxRequirement::Any
            } else {
                strictest(infos.as_deref())
            },
            control,
        },
        infos,
    });
}

/// If `sql` holds more than one statement and one of them cannot run inside a transaction block,
/// the offending statement (PostgreSQL runs a multi-statement query string as one implicit
/// transaction, so it would fail).
pub fn no_transaction_in_multi(sql: &str) -> Option<StatementInfo> {
    multi_offender(analyze(sql).as_deref()?)
}

/// [`no_transaction_in_multi`] on a unit's description.
pub(crate) fn multi_offender(infos: &[StatementInfo]) -> Option<StatementInfo> {
    if infos.len() < 2 {
        return None;
    }
    infos
        .iter()
        .find(|i| i.tx == TxRequirement::NoTransaction)
        .cloned()
}

fn classify(node: &NodeEnum) -> (TxRequirement, Option<&'static str>) {
    use TxRequirement::{Any, NoTransaction, NoTransactionBeforePg12};
    let no = |why: &'static str| (NoTransaction, Some(why));
    match node {
        NodeEnum::IndexStmt(s) if s.concurrent => no("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(s) if s.concurrent => no("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(s) => {
            let kind = protobuf::ReindexObjectType::try_from(s.kind).ok();
            if option_true(&s.params, "concurrently") {
                no("REINDEX CONCURRENTLY")
            } else if matches!(
                kind,
                Some(
                    protobuf::ReindexObjectType::ReindexObjectSchema
                        | protobuf::ReindexObjectType::ReindexObjectSystem
                        | protobuf::ReindexObjectType::ReindexObjectDatabase
                )
            ) {
                no("REINDEX SCHEMA/SYSTEM/DATABASE")
            } else {
                (Any, None)
            }
        }
        NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => no("VACUUM"),
        NodeEnum::CreatedbStmt(_) => no("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => no("DROP DATABASE"),
        NodeEnum::CreateTableSpaceStmt(_) => no("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => no("DROP TABLESPACE"),
        NodeEnum::AlterSystemStmt(_) => no("ALTER SYSTEM"),
        NodeEnum::AlterDatabaseStmt(s) if has_option(&s.options, "tablespace") => {
            no("ALTER DATABASE ... SET TABLESPACE")
        }
        NodeEnum::CreateSubscriptionStmt(s) => {
            // Only creating the replication slot is refused in a transaction block.
            let no_slot = option_is_false(&s.options, "create_slot")
                || option_is_false(&s.options, "connect");
            if no_slot {
                (Any, None)
            } else {
                no("CREATE SUBSCRIPTION")
            }
        }
        NodeEnum::DropSubscriptionStmt(_) => no("DROP SUBSCRIPTION"),
        NodeEnum::AlterSubscriptionStmt(s) => {
            use protobuf::AlterSubscriptionType as T;
            match T::try_from(s.kind).ok() {
                Some(T::AlterSubscriptionRefresh) => {
                    no("ALTER SUBSCRIPTION ... REFRESH PUBLICATION")
                }
                Some(
                    T::AlterSubscriptionSetPublication
                    | T::AlterSubscriptionAddPublication
                    | T::AlterSubscriptionDropPublication,
                ) if !option_is_false(&s.options, "refresh") => {
                    no("ALTER SUBSCRIPTION ... PUBLICATION (with refresh)")
                }
                _ => (Any, None),
            }
        }
        NodeEnum::AlterTableStmt(s) => {
            let detach_concurrently = s.cmds.iter().any(|cmd| match cmd.node.as_ref() {
                Some(NodeEnum::AlterTableCmd(c)) => {
                    c.subtype == protobuf::AlterTableType::AtDetachPartition as i32
                        && matches!(
                            c.def.as_ref().and_then(|d| d.node.as_ref()),
                            Some(NodeEnum::PartitionCmd(p)) if p.concurrent
                        )
                }
                _ => false,
            });
            if detach_concurrently {
                no("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY")
            } else {
                (Any, None)
            }
        }
        NodeEnum::ClusterStmt(s) if s.relation.is_none() => no("CLUSTER without a table"),
        NodeEnum::DiscardStmt(s) if s.target == protobuf::DiscardMode::DiscardAll as i32 => {
            no("DISCARD ALL")
        }
        NodeEnum::AlterEnumStmt(s) if !s.new_val.is_empty() && s.old_val.is_empty() => {
            (NoTransactionBeforePg12, Some("ALTER TYPE ... ADD VALUE"))
        }
        NodeEnum::CallStmt(_) => (TxRequirement::MayCommit, Some("CALL")),
        NodeEnum::DoStmt(_) => (TxRequirement::MayCommit, Some("DO")),
        _ => (Any, None),
    }
}

fn def_elems<'a>(
    options: &'a [protobuf::Node],
    name: &'a str,
) -> impl Iterator<Item = &'a protobuf::DefElem> {
    options.iter().filter_map(move |o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name) => Some(d.as_ref()),
        _ => None,
    })
}

fn has_option(options: &[protobuf::Node], name: &str) -> bool {
    def_elems(options, name).next().is_some()
}

/// PostgreSQL's `defGetBoolean`: no argument means true.
fn def_bool(d: &protobuf::DefElem) -> Option<bool> {
    match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
        None => Some(true),
        Some(NodeEnum::Integer(i)) => Some(i.ival != 0),
        Some(NodeEnum::Boolean(b)) => Some(b.boolval),
        Some(NodeEnum::String(s)) => match s.sval.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" | "t" | "y" => Some(true),
            "false" | "off" | "no" | "0" | "f" | "n" => Some(false),
            _ => None,
        },
        Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
            Some(protobuf::a_const::Val::Ival(i)) => Some(i.ival != 0),
            Some(protobuf::a_const::Val::Boolval(b)) => Some(b.boolval),
            _ => None,
        },
        Some(_) => None,
    }
}

fn option_true(options: &[protobuf::Node], name: &str) -> bool {
    def_elems(options, name).any(|d| def_bool(d) != Some(false))
}

fn option_is_false(options: &[protobuf::Node], name: &str) -> bool {
    def_elems(options, name).any(|d| def_bool(d) == Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/drizzle-app");

    fn read(rel: &str) -> String {
        fs_err::read_to_string(format!("{FIXTURE}/{rel}")).expect("fixture readable")
    }

    #[test]
    fn line_at_counts_newlines() {
        assert_eq!(line_at("", 0), 1);
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 4), 3);
        assert_eq!(line_at("a\nb\nc", 999), 3);
    }

    #[test]
    fn drizzle_chunks_rejoin_to_the_file() {
        for tag in [
            "0000_init",
            "0001_add_product_components",
            "0002_rename_full_name",
            "0003_drop_order_total",
        ] {
            let text = read(&format!("drizzle/{tag}.sql"));
            let chunks = drizzle_chunks(&text);
            let joined: Vec<&str> = chunks.iter().map(|c| c.sql.as_str()).collect();
            assert_eq!(joined.join(BREAKPOINT), text, "{tag}");
            for c in &chunks {
                assert_eq!(&text[c.offset..c.offset + c.sql.len()], c.sql);
                assert_eq!(c.tx, TxRequirement::Any);
            }
        }
        // 0000_init: 14 breakpoints, so 15 statements (1 enum, 5 tables, 5 FKs, 4 indexes).
        let init_text = read("drizzle/0000_init.sql");
        assert_eq!(init_text.matches(BREAKPOINT).count(), 14);
        let init = drizzle_chunks(&init_text);
        assert_eq!(init.len(), 15);
        assert_eq!(init[0].line, 1);
        assert!(
            init[1].sql.starts_with('\n'),
            "leading newline kept: {:?}",
            init[1].sql
        );
    }

    #[test]
    fn drizzle_bad_statement_three_is_on_line_12() {
        let text = read("drizzle-bad/0004_broken_custom.sql");
        let chunks = drizzle_chunks(&text);
        assert_eq!(chunks.len(), 4);
        // Line 1 is the custom-file banner, lines 2-3 comments: the first token is on line 4.
        assert_eq!(chunks[0].line, 4);
        assert_eq!(chunks[1].line, 11);
        assert_eq!(chunks[2].line, 12);
        assert!(chunks[2].sql.contains("no_such_table"));
        let nth_line = text.lines().nth(11).expect("line 12 exists");
        assert!(nth_line.contains("no_such_table"));
        assert_eq!(chunks[3].line, 13);
    }

    #[test]
    fn drizzle_drops_only_empty_chunks() {
        let text = "CREATE TABLE a (id int);--> statement-breakpoint\n-- just a comment\n/* and */\n--> statement-breakpoint\n\n  SELECT 1;\n--> statement-breakpoint\n";
        let chunks = drizzle_chunks(text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].offset, 0);
        assert_eq!(chunks[1].sql, "\n\n  SELECT 1;\n");
        assert_eq!(chunks[1].line, 6);
        assert_eq!(
            &text[chunks[1].offset..chunks[1].offset + chunks[1].sql.len()],
            chunks[1].sql
        );
    }

    #[test]
    fn drizzle_chunk_with_broken_quote_is_kept() {
        let text = "SELECT 'abc;--> statement-breakpoint\ndef';";
        let chunks = drizzle_chunks(text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].line, 1);
        assert_eq!(chunks[1].line, 2);
        assert_eq!(chunks[0].tx, TxRequirement::Any);
    }

    #[test]
    fn sql_statements_respect_dollar_quotes_and_comments() {
        let text = "-- header\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  PERFORM 1; RETURN 2;\nEND;\n$$ LANGUAGE plpgsql;\n\n/* c; */ SELECT ';' AS x;\nSELECT $tag$ ; $tag$;\n";
        let stmts = sql_statements(text).expect("splits");
        assert_eq!(stmts.len(), 3, "{stmts:#?}");
        assert!(stmts[0].sql.contains("PERFORM 1; RETURN 2;"));
        assert_eq!(stmts[0].line, 2);
        assert_eq!(stmts[1].line, 8);
        assert!(stmts[1].sql.contains("SELECT ';'"));
        assert_eq!(stmts[2].line, 9);
        for s in &stmts {
            assert_eq!(&text[s.offset..s.offset + s.sql.len()], s.sql);
        }
    }

    #[test]
    fn sql_statements_keep_begin_atomic_bodies_whole() {
        let text = "CREATE FUNCTION g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;\nSELECT g();";
        let stmts = sql_statements(text).expect("splits");
        assert_eq!(stmts.len(), 2, "{stmts:#?}");
        assert!(stmts[0].sql.contains("SELECT 2;"));
        assert_eq!(stmts[1].line, 6);
    }

    #[test]
    fn sql_statements_work_on_invalid_sql_and_keep_skipped_text() {
        let text = "CREATE TABLE a (id int);\nthis is not sql;\nasdf;\nALTER TABLE no_such ADD COLUMN x int;";
        let stmts = sql_statements(text).expect("splits");
        let texts: Vec<&str> = stmts.iter().map(|s| s.sql.trim()).collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert_eq!(texts[0], "CREATE TABLE a (id int)");
        assert_eq!(texts[1], "this is not sql");
        assert_eq!(texts[2], "asdf");
        assert_eq!(stmts[2].line, 3);
        assert_eq!(stmts[3].line, 4);

        // Unbalanced parenthesis: the scanner would swallow everything; nothing may vanish.
        let text = "SELECT (1;\nSELECT 2;";
        let stmts = sql_statements(text).expect("splits");
        assert!(!stmts.is_empty());
        let all: String = stmts.iter().map(|s| s.sql.as_str()).collect();
        assert!(all.contains("SELECT 2"), "{stmts:#?}");
    }

    #[test]
    fn sql_statements_report_scanner_errors() {
        let err = sql_statements("SELECT 1;\nSELECT 'unterminated;\n").expect_err("must fail");
        assert!(err.contains("unterminated"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = sql_statements("SELECT 1;\n/* never closed").expect_err("must fail");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn sql_statements_drop_comment_only_pieces() {
        let stmts = sql_statements("-- nothing\n/* here */\n;\n").expect("splits");
        assert!(stmts.is_empty());
        assert!(sql_statements("").expect("splits").is_empty());
    }

    /// Every SQL file of the fixtures that PostgreSQL's parser accepts is cut exactly where the
    /// parser splits it (the cutter works in bounded memory; the parser holds the whole tree).
    #[test]
    fn sql_statements_agree_with_the_parser() {
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures"
        ))];
        while let Some(dir) = dirs.pop() {
            for e in fs_err::read_dir(&dir).expect("fixtures") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "sql") {
                    files.push(fs_err::read_to_string(&p).expect("utf8"));
                }
            }
        }
        files.push(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE \
             WHEN true THEN 2 END; END;\nCREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a \
             VALUES (1); INSERT INTO b VALUES (2));\n-- c\nCREATE FUNCTION begin() RETURNS int \
             LANGUAGE sql RETURN 1; SELECT 2; SELECT 3"
                .into(),
        );
        let mut compared = 0;
        for text in &files {
            let Ok(expected) = pg_query::split_with_parser(text) else {
                continue;
            };
            let got = sql_statements(text).expect("splits");
            let got: Vec<&str> = got.iter().map(|s| s.sql.as_str()).collect();
            let expected: Vec<&str> = expected
                .into_iter()
                .filter(|p| first_token_offset(p).is_some())
                .collect();
            assert_eq!(got, expected);
            compared += 1;
        }
        assert!(compared > 200, "{compared} files compared");
    }

    #[test]
    fn no_transaction_cases() {
        let no = [
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
            "DROP INDEX CONCURRENTLY i",
            "REINDEX INDEX CONCURRENTLY i",
            "REINDEX (CONCURRENTLY) TABLE t",
            "REINDEX (VERBOSE, CONCURRENTLY true) INDEX i",
            "REINDEX DATABASE d",
            "VACUUM",
            "VACUUM (ANALYZE) t",
            "VACUUM FULL t",
            "CREATE DATABASE d",
            "DROP DATABASE d",
            "CREATE TABLESPACE ts LOCATION '/x'",
            "DROP TABLESPACE ts",
            "ALTER SYSTEM SET work_mem = '64MB'",
            "ALTER DATABASE d SET TABLESPACE ts",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
            "DROP SUBSCRIPTION s",
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "CLUSTER",
            "DISCARD ALL",
        ];
        for sql in no {
            assert_eq!(tx_requirement(sql), TxRequirement::NoTransaction, "{sql}");
        }
        let any = [
            "CREATE INDEX i ON t (a)",
            "DROP INDEX i",
            "REINDEX INDEX i",
            "REINDEX (CONCURRENTLY false) INDEX i",
            "ANALYZE t",
            "ALTER DATABASE d SET work_mem = '1MB'",
            "ALTER DATABASE d RENAME TO e",
            "ALTER TABLE p DETACH PARTITION c",
            "CLUSTER t USING i",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = false)",
            "ALTER TYPE e RENAME VALUE 'a' TO 'b'",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
            "this does not parse",
            "",
        ];
        for sql in any {
            assert_eq!(tx_requirement(sql), TxRequirement::Any, "{sql}");
        }
        assert_eq!(
            tx_requirement("ALTER TYPE e ADD VALUE 'x'"),
            TxRequirement::NoTransactionBeforePg12
        );
        assert_eq!(
            tx_requirement("ALTER TYPE e ADD VALUE IF NOT EXISTS 'x' BEFORE 'y'"),
            TxRequirement::NoTransactionBeforePg12
        );
        // Strictest wins.
        assert_eq!(
            tx_requirement("ALTER TYPE e ADD VALUE 'x'; CREATE INDEX CONCURRENTLY i ON t (a);"),
            TxRequirement::NoTransaction
        );
        assert_eq!(
            tx_requirement("SELECT 1; ALTER TYPE e ADD VALUE 'x';"),
            TxRequirement::NoTransactionBeforePg12
        );
    }

    #[test]
    fn multi_statement_no_transaction_is_found() {
        let sql = "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);";
        let bad = no_transaction_in_multi(sql).expect("found");
        assert_eq!(line_at(sql, bad.offset), 2);
        assert_eq!(bad.why, Some("CREATE INDEX CONCURRENTLY"));
        assert!(no_transaction_in_multi("CREATE INDEX CONCURRENTLY i ON t (a);").is_none());
        assert!(no_transaction_in_multi("SELECT 1; SELECT 2;").is_none());
    }

    #[test]
    fn transaction_control_is_detected() {
        let cases = [
            ("BEGIN;", "BEGIN"),
            ("begin transaction isolation level serializable", "BEGIN"),
            ("START TRANSACTION", "START TRANSACTION"),
            ("COMMIT", "COMMIT"),
            ("END", "END"),
            ("ROLLBACK", "ROLLBACK"),
            ("ABORT", "ABORT"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("RELEASE SAVEPOINT s", "RELEASE"),
            ("ROLLBACK TO SAVEPOINT s", "ROLLBACK TO"),
            ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION"),
            ("COMMIT PREPARED 'x'", "COMMIT PREPARED"),
            ("ROLLBACK PREPARED 'x'", "ROLLBACK PREPARED"),
        ];
        for (sql, kw) in cases {
            assert_eq!(transaction_control(sql).as_deref(), Some(kw), "{sql}");
        }
        let text = "CREATE TABLE a (id int);\n-- done\nCOMMIT;";
        let (kw, off) = transaction_control_at(text).expect("found");
        assert_eq!(kw, "COMMIT");
        assert_eq!(line_at(text, off), 3);
        // Also when another statement does not parse.
        let text = "CREATE TABLE a (id int;\nCOMMIT;";
        let (kw, off) = transaction_control_at(text).expect("found");
        assert_eq!(kw, "COMMIT");
        assert_eq!(line_at(text, off), 2);

        for sql in [
            "SELECT 1",
            "CREATE FUNCTION f() RETURNS void AS $$ BEGIN COMMIT; END $$ LANGUAGE plpgsql",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
            "PREPARE q AS SELECT 1",
            "SELECT 'BEGIN'",
        ] {
            assert_eq!(transaction_control(sql), None, "{sql}");
        }
    }

    #[test]
    fn first_token_skips_comments() {
        assert_eq!(
            first_token_offset("  -- a\n /* b /* nested */ */ SELECT 1"),
            Some(29)
        );
        assert_eq!(first_token_offset("\n\n"), None);
        assert_eq!(first_token_offset("-- only\n"), None);
        // Scanner failure falls back to the manual skip.
        assert_eq!(first_token_offset("-- c\n  'open"), Some(7));
        assert_eq!(first_token_offset("/* open"), Some(0));
    }
}
