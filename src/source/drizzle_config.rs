//! Read the few settings pgship needs from a drizzle-kit config file (`drizzle.config.ts`,
//! `.js`, `.mjs`, `.cjs`, `.mts`, `.cts` or `.json`) without running Node.
//!
//! drizzle-kit `require()`s the config through esbuild-register, so a Rust tool cannot evaluate
//! it. Instead a small tokenizer (strings, template literals, `//` and `/* */` comments) finds
//! the config object literal (the first one with a `dialect` key, else one with `out` or
//! `migrations`) and takes `dialect`, `out` and `migrations: { table, schema, prefix }` when
//! their values are plain string literals (`'..'`, `".."`, or `` `..` `` without `${`).
//! Keys whose value is anything else (`out: process.env.OUT`, a variable, a spread that could
//! supply them) are reported in `non_literal` so the caller can ask for `--migrations`.
//!
//! It must never execute or import anything, never guess a value it cannot read as a literal,
//! and never write files. Missing values take drizzle's defaults (`__drizzle_migrations` in
//! schema `drizzle`; `out` defaults to `drizzle`, see [`DrizzleConfig::out_dir`]). A dialect
//! that clearly names another database (`mysql`, `sqlite`, ...) is an error: pgship supports only PostgreSQL.

use std::path::{Path, PathBuf};

use super::{DrizzleTable, SourceError, read_bytes, utf8_text};

/// Config file names drizzle-kit looks for, in the order pgship tries them.
pub const CONFIG_FILE_NAMES: [&str; 7] = [
    "drizzle.config.ts",
    "drizzle.config.js",
    "drizzle.config.mjs",
    "drizzle.config.cjs",
    "drizzle.config.mts",
    "drizzle.config.cts",
    "drizzle.config.json",
];

/// What pgship could read from a drizzle-kit config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrizzleConfig {
    /// The config file.
    pub path: PathBuf,
    /// `dialect`, if a literal (always `postgresql` when set: anything else is an error).
    pub dialect: Option<String>,
    /// `out` as written (relative to the config's folder), if a literal.
    pub out: Option<String>,
    /// `migrations.table` / `migrations.schema`, with drizzle's defaults for what is absent or
    /// not a literal.
    pub table: DrizzleTable,
    /// `migrations.prefix` (`index`, `timestamp`, `supabase`, `unix`, `none`), if a literal.
    pub prefix: Option<String>,
    /// Keys present with a value that is not a string literal, e.g. `out` for
    /// `out: process.env.OUT`, or `migrations.table`. The caller should ask for explicit flags.
    pub non_literal: Vec<String>,
}

impl DrizzleConfig {
    /// The migrations folder: `out` (default `drizzle`) resolved against the config's folder.
    pub fn out_dir(&self) -> PathBuf {
        let base = self.path.parent().unwrap_or_else(|| Path::new("."));
        base.join(self.out.as_deref().unwrap_or("drizzle"))
    }

    /// Whether `key` (`out`, `dialect`, `migrations.table`, ...) was present but not a literal.
    pub fn is_non_literal(&self, key: &str) -> bool {
        self.non_literal.iter().any(|k| k == key)
    }
}

/// Find and read the drizzle-kit config in `project_dir` (first of [`CONFIG_FILE_NAMES`] that
/// exists). `Ok(None)` when there is none.
pub fn find(project_dir: &Path) -> Result<Option<DrizzleConfig>, SourceError> {
    for name in CONFIG_FILE_NAMES {
        let path = project_dir.join(name);
        if path.is_file() {
            let bytes = read_bytes(&path)?;
            let text = utf8_text(&path, &bytes)?;
            return parse(&path, text).map(Some);
        }
    }
    Ok(None)
}

/// Read the settings from config text `text` that came from `path`.
pub fn parse(path: &Path, text: &str) -> Result<DrizzleConfig, SourceError> {
    let tokens = tokenize(text).map_err(|(msg, at)| {
        SourceError::invalid(
            path,
            format!(
                "line {}: {msg}; cannot read the config",
                super::split::line_at(text, at)
            ),
        )
    })?;

    let mut candidates: Vec<Object> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind == Kind::Punct('{') {
            candidates.push(parse_object(&tokens, i).0);
        }
    }
    let chosen = candidates
        .iter()
        .position(|o| o.get("dialect").is_some())
        .or_else(|| {
            candidates
                .iter()
                .position(|o| o.get("out").is_some() || o.get("migrations").is_some())
        });

    let mut config = DrizzleConfig {
        path: path.to_path_buf(),
        dialect: None,
        out: None,
        table: DrizzleTable::default(),
        prefix: None,
        non_literal: Vec::new(),
    };
    let Some(chosen) = chosen else {
        return Ok(config);
    };
    let obj = &candidates[chosen];
    let mut non_literal = Vec::new();

    let mut literal = |value: Option<&Value>, key: &str| -> Option<String> {
        match value {
            Some(Value::Literal(s)) => Some(s.clone()),
            Some(_) => {
                non_literal.push(key.to_string());
                None
            }
            None => {
                if obj.has_spread {
                    non_literal.push(key.to_string());
                }
                None
            }
        }
    };
    config.dialect = literal(obj.get("dialect"), "dialect");
    config.out = literal(obj.get("out"), "out");
    match obj.get("migrations") {
        Some(Value::Object(m)) => {
            let mut sub = |key: &str| match m.get(key) {
                Some(Value::Literal(s)) => Some(s.clone()),
                Some(_) => {
                    non_literal.push(format!("migrations.{key}"));
                    None
                }
                None => {
                    if m.has_spread {
                        non_literal.push(format!("migrations.{key}"));
                    }
                    None
                }
            };
            if let Some(table) = sub("table") {
                config.table.table = table;
            }
            if let Some(schema) = sub("schema") {
                config.table.schema = schema;
            }
            config.prefix = sub("prefix");
        }
        Some(_) => non_literal.push("migrations".to_string()),
        None if obj.has_spread => non_literal.push("migrations".to_string()),
        None => {}
    }

    // Several config-like objects (e.g. `cond ? {..} : {..}`) that disagree: not knowable.
    for other in candidates
        .iter()
        .skip(chosen + 1)
        .filter(|o| o.get("dialect").is_some())
    {
        for key in ["out", "dialect"] {
            if other.get(key) != obj.get(key) && !non_literal.iter().any(|k| k == key) {
                non_literal.push(key.to_string());
            }
        }
    }
    config.non_literal = non_literal;

    if let Some(dialect) = &config.dialect
        && let Some(db) = super::other_database_dialect(dialect)
    {
        return Err(SourceError::invalid(
            path,
            format!(
                "dialect \"{dialect}\" ({db}): pgship supports only PostgreSQL (dialect \"postgresql\")"
            ),
        ));
    }
    if config.is_non_literal("dialect") {
        config.dialect = None;
    }
    if config.is_non_literal("out") {
        config.out = None;
    }
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A string literal or a template literal without substitutions, decoded.
    Str(String),
    /// A template literal with `${...}`.
    Template,
    Ident(String),
    Punct(char),
    /// Numbers, regex bodies, anything else.
    Other,
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
}

type TokError = (String, usize);

fn tokenize(text: &str) -> Result<Vec<Tok>, TokError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let next = chars.get(i + 1).map(|&(_, c)| c);
        if c.is_whitespace() || c == '\u{feff}' {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i)
                .ok_or(("unterminated /* comment".to_string(), pos))?;
        } else if c == '\'' || c == '"' {
            let (value, end) = read_string(&chars, i)?;
            out.push(Tok {
                kind: Kind::Str(value),
            });
            i = end;
        } else if c == '`' {
            let (value, end) = read_template(&chars, i)?;
            out.push(Tok {
                kind: value.map_or(Kind::Template, Kind::Str),
            });
            i = end;
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].1.is_alphanumeric() || chars[i].1 == '_' || chars[i].1 == '$')
            {
                i += 1;
            }
            let ident: String = chars[start..i].iter().map(|&(_, c)| c).collect();
            out.push(Tok {
                kind: Kind::Ident(ident),
            });
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (chars[i].1.is_alphanumeric() || matches!(chars[i].1, '.' | '_'))
            {
                i += 1;
            }
            out.push(Tok { kind: Kind::Other });
        } else {
            out.push(Tok {
                kind: Kind::Punct(c),
            });
            i += 1;
        }
    }
    Ok(out)
}

/// Index just past the `*/` closing the comment opened at `i`.
fn skip_block_comment(chars: &[(usize, char)], i: usize) -> Option<usize> {
    let mut j = i + 2;
    while j + 1 < chars.len() {
        if chars[j].1 == '*' && chars[j + 1].1 == '/' {
            return Some(j + 2);
        }
        j += 1;
    }
    None
}

/// Decode a `'..'` or `".."` literal starting at `i`; returns the value and the index after it.
fn read_string(chars: &[(usize, char)], i: usize) -> Result<(String, usize), TokError> {
    let (pos, quote) = chars[i];
    let mut value = String::new();
    let mut j = i + 1;
    loop {
        let Some(&(_, c)) = chars.get(j) else {
            return Err(("unterminated string".to_string(), pos));
        };
        match c {
            _ if c == quote => return Ok((value, j + 1)),
            '\n' => return Err(("unterminated string".to_string(), pos)),
            '\\' => j = read_escape(chars, j, &mut value),
            _ => {
                value.push(c);
                j += 1;
            }
        }
    }
}

/// Decode a template literal starting at `i`. The value is `None` when it has `${...}`.
fn read_template(chars: &[(usize, char)], i: usize) -> Result<(Option<String>, usize), TokError> {
    let pos = chars[i].0;
    let mut value = String::new();
    let mut substituted = false;
    let mut j = i + 1;
    loop {
        let Some(&(_, c)) = chars.get(j) else {
            return Err(("unterminated template literal".to_string(), pos));
        };
        match c {
            '`' => return Ok(((!substituted).then_some(value), j + 1)),
            '\\' => j = read_escape(chars, j, &mut value),
            '$' if chars.get(j + 1).map(|&(_, c)| c) == Some('{') => {
                substituted = true;
                j = skip_substitution(chars, j + 2)?;
            }
            _ => {
                value.push(c);
                j += 1;
            }
        }
    }
}

/// Skip a `${ ... }` body starting just after `${`; returns the index after the closing `}`.
fn skip_substitution(chars: &[(usize, char)], start: usize) -> Result<usize, TokError> {
    let mut depth = 1usize;
    let mut j = start;
    while let Some(&(pos, c)) = chars.get(j) {
        let next = chars.get(j + 1).map(|&(_, c)| c);
        match c {
            '{' => {
                depth += 1;
                j += 1;
            }
            '}' => {
                depth -= 1;
                j += 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            '\'' | '"' => j = read_string(chars, j)?.1,
            '`' => j = read_template(chars, j)?.1,
            '/' if next == Some('/') => {
                while j < chars.len() && chars[j].1 != '\n' {
                    j += 1;
                }
            }
            '/' if next == Some('*') => {
                j = skip_block_comment(chars, j)
                    .ok_or(("unterminated /* comment".to_string(), pos))?;
            }
            _ => j += 1,
        }
    }
    Err((
        "unterminated ${...} in a template literal".to_string(),
        chars.get(start).map_or(0, |c| c.0),
    ))
}

/// Decode the escape at `j` (a backslash) into `value`; returns the index after it.
fn read_escape(chars: &[(usize, char)], j: usize, value: &mut String) -> usize {
    let Some(&(_, e)) = chars.get(j + 1) else {
        return j + 1;
    };
    let hex = |from: usize, len: usize| -> Option<char> {
        let s: String = chars
            .get(from..from + len)?
            .iter()
            .map(|&(_, c)| c)
            .collect();
        char::from_u32(u32::from_str_radix(&s, 16).ok()?)
    };
    match e {
        'n' => value.push('\n'),
        't' => value.push('\t'),
        'r' => value.push('\r'),
        'b' => value.push('\u{8}'),
        'f' => value.push('\u{c}'),
        'v' => value.push('\u{b}'),
        '0' => value.push('\0'),
        '\n' => {}
        '\r' => {
            if chars.get(j + 2).map(|&(_, c)| c) == Some('\n') {
                return j + 3;
            }
        }
        'x' => {
            if let Some(c) = hex(j + 2, 2) {
                value.push(c);
                return j + 4;
            }
            value.push('x');
        }
        'u' if chars.get(j + 2).map(|&(_, c)| c) == Some('{') => {
            let close = chars[j + 2..].iter().position(|&(_, c)| c == '}');
            if let Some(close) = close
                && let Some(c) = hex(j + 3, close.saturating_sub(1))
            {
                value.push(c);
                return j + 3 + close;
            }
            value.push('u');
        }
        'u' => {
            if let Some(c) = hex(j + 2, 4) {
                value.push(c);
                return j + 6;
            }
            value.push('u');
        }
        other => value.push(other),
    }
    j + 2
}

// ---------------------------------------------------------------------------------------------
// Object literals

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Literal(String),
    Object(Object),
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Object {
    keys: Vec<(String, Value)>,
    has_spread: bool,
}

impl Object {
    /// The value of direct key `key` (the last one wins, as in JavaScript).
    fn get(&self, key: &str) -> Option<&Value> {
        self.keys
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Parse the object literal whose `{` is at `open`; returns it and the index after its `}`.
/// Anything that is not `key: value` is skipped up to the next `,` or `}` at this level.
fn parse_object(tokens: &[Tok], open: usize) -> (Object, usize) {
    let mut obj = Object::default();
    let mut i = open + 1;
    while let Some(tok) = tokens.get(i) {
        match &tok.kind {
            Kind::Punct('}') => return (obj, i + 1),
            Kind::Punct(',') => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let key = match &tok.kind {
            Kind::Ident(k) | Kind::Str(k) => Some(k.clone()),
            _ => None,
        };
        let next = tokens.get(i + 1).map(|t| &t.kind);
        match (key, next) {
            (Some(key), Some(Kind::Punct(':'))) => {
                let (value, end) = parse_value(tokens, i + 2);
                obj.keys.push((key, value));
                i = end;
            }
            (Some(key), Some(Kind::Punct(',' | '}'))) if matches!(tok.kind, Kind::Ident(_)) => {
                // Shorthand `{ out }`: a variable.
                obj.keys.push((key, Value::Other));
                i += 1;
            }
            _ => {
                if tok.kind == Kind::Punct('.') {
                    obj.has_spread = true;
                }
                i = skip_to_separator(tokens, i);
            }
        }
    }
    (obj, tokens.len())
}

/// Parse a property value starting at `i`; returns it and the index of the `,`/`}` after it.
fn parse_value(tokens: &[Tok], i: usize) -> (Value, usize) {
    let end = skip_to_separator(tokens, i);
    let Some(first) = tokens.get(i) else {
        return (Value::Other, end);
    };
    let rest = tokens.get(i + 1..end).unwrap_or_default();
    // `"x"`, `"x" as const`, `"x" satisfies T`.
    let plain_suffix = rest.is_empty()
        || matches!(rest.first().map(|t| &t.kind), Some(Kind::Ident(w)) if w == "as" || w == "satisfies")
            && rest.len() == 2;
    match &first.kind {
        Kind::Str(s) if plain_suffix => (Value::Literal(s.clone()), end),
        Kind::Punct('{') => {
            let (obj, after) = parse_object(tokens, i);
            if after == end {
                (Value::Object(obj), end)
            } else {
                (Value::Other, end)
            }
        }
        _ => (Value::Other, end),
    }
}

/// Index of the next `,` or `}` at the current nesting level (or of the closing bracket that
/// ends the enclosing level, or the end).
fn skip_to_separator(tokens: &[Tok], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(tok) = tokens.get(i) {
        match tok.kind {
            Kind::Punct('(' | '[' | '{') => depth += 1,
            Kind::Punct(')' | ']') | Kind::Punct('}') if depth > 0 => depth -= 1,
            Kind::Punct(',' | '}') if depth == 0 => return i,
            Kind::Punct(')' | ']') => return i,
            _ => {}
        }
        i += 1;
    }
    tokens.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> DrizzleConfig {
        parse(Path::new("/app/drizzle.config.ts"), text).expect("parses")
    }

    #[test]
    fn reads_the_fixture_config() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/drizzle-app"
        ));
        let c = find(dir).expect("reads").expect("found");
        assert_eq!(c.path, dir.join("drizzle.config.ts"));
        assert_eq!(c.dialect.as_deref(), Some("postgresql"));
        assert_eq!(c.out.as_deref(), Some("./drizzle"));
        assert_eq!(c.table, DrizzleTable::default());
        assert_eq!(c.prefix, None);
        assert!(c.non_literal.is_empty(), "{:?}", c.non_literal);
        assert_eq!(c.out_dir(), dir.join("./drizzle"));
    }

    #[test]
    fn comments_quotes_and_templates() {
        let c = p(r#"
            import { defineConfig } from 'drizzle-kit';
            // out: "wrong",
            /* dialect: 'mysql', { out: "nope" } */
            export default defineConfig({
              schema: './src/schema.ts', // a "quoted" comment with a brace {
              dialect: 'postgresql',
              out: `./db/migrations`,
              dbCredentials: { url: process.env.DATABASE_URL!, note: "}, out: 'x'" },
              migrations: {
                table: 'my_migrations', /* the table */
                schema: "ops",
                prefix: 'timestamp',
              },
            });
        "#);
        assert_eq!(c.dialect.as_deref(), Some("postgresql"));
        assert_eq!(c.out.as_deref(), Some("./db/migrations"));
        assert_eq!(
            c.table,
            DrizzleTable {
                schema: "ops".into(),
                table: "my_migrations".into()
            }
        );
        assert_eq!(c.prefix.as_deref(), Some("timestamp"));
        assert!(c.non_literal.is_empty(), "{:?}", c.non_literal);
    }

    #[test]
    fn escapes_are_decoded() {
        let c = p(
            r#"export default { dialect: "postgresql", out: 'it\'s\u0020here', migrations: { table: "a\"b" } }"#,
        );
        assert_eq!(c.out.as_deref(), Some("it's here"));
        assert_eq!(c.table.table, "a\"b");
    }

    #[test]
    fn non_literal_values_are_reported() {
        let c = p(r#"
            const dir = "./x";
            export default defineConfig({
              dialect: "postgresql",
              out: process.env.OUT ?? "./drizzle",
              migrations: { table: `${prefix}_migrations`, schema: "s" },
            });
        "#);
        assert_eq!(c.out, None);
        assert!(c.is_non_literal("out"), "{:?}", c.non_literal);
        assert!(c.is_non_literal("migrations.table"), "{:?}", c.non_literal);
        assert_eq!(c.table.table, "__drizzle_migrations");
        assert_eq!(c.table.schema, "s");

        let c = p("const out = 'x'; export default { dialect: 'postgresql', out, migrations };");
        assert!(
            c.is_non_literal("out") && c.is_non_literal("migrations"),
            "{:?}",
            c.non_literal
        );

        let c = p("export default { ...base, dialect: 'postgresql' };");
        assert!(
            c.is_non_literal("out") && c.is_non_literal("migrations"),
            "{:?}",
            c.non_literal
        );
    }

    #[test]
    fn defaults_when_absent() {
        let c = p("export default { dialect: 'postgresql', schema: './s.ts' } satisfies Config;");
        assert_eq!(c.out, None);
        assert_eq!(c.table, DrizzleTable::default());
        assert!(c.non_literal.is_empty());
        assert_eq!(c.out_dir(), Path::new("/app/drizzle"));
        let c = p("module.exports = {};");
        assert_eq!(c.dialect, None);
    }

    #[test]
    fn json_config() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs_err::write(
            tmp.path().join("drizzle.config.json"),
            r#"{"dialect": "postgresql", "out": "migrations", "migrations": {"schema": "meta"}}"#,
        )
        .expect("write");
        let c = find(tmp.path()).expect("reads").expect("found");
        assert_eq!(c.out.as_deref(), Some("migrations"));
        assert_eq!(c.table.schema, "meta");
        assert_eq!(c.table.table, "__drizzle_migrations");

        // .ts wins over .json.
        fs_err::write(
            tmp.path().join("drizzle.config.ts"),
            "export default { dialect: 'postgresql', out: 'ts' }",
        )
        .expect("write");
        let c = find(tmp.path()).expect("reads").expect("found");
        assert_eq!(c.out.as_deref(), Some("ts"));

        let empty = tempfile::tempdir().expect("tempdir");
        assert!(find(empty.path()).expect("no error").is_none());
    }

    #[test]
    fn other_dialects_are_refused() {
        let err = parse(
            Path::new("/app/drizzle.config.ts"),
            "export default defineConfig({ dialect: 'mysql', out: './drizzle' })",
        )
        .expect_err("must fail")
        .to_string();
        assert!(err.contains("/app/drizzle.config.ts"), "{err}");
        assert!(
            err.contains("\"mysql\"") && err.contains("only PostgreSQL"),
            "{err}"
        );
    }

    #[test]
    fn as_const_is_a_literal() {
        let c = p("export default { dialect: 'postgresql' as const, out: \"./d\" };");
        assert_eq!(c.dialect.as_deref(), Some("postgresql"));
        assert_eq!(c.out.as_deref(), Some("./d"));
    }

    #[test]
    fn unterminated_string_names_the_file_and_line() {
        let err = parse(
            Path::new("/app/drizzle.config.ts"),
            "export default {\n out: 'oops\n}",
        )
        .expect_err("must fail")
        .to_string();
        assert!(
            err.contains("/app/drizzle.config.ts") && err.contains("line 2"),
            "{err}"
        );
    }
}
