//! The environment as pgship sees it: the process environment over `.env.local` over `.env`.
//!
//! The files are read without touching the process environment (no `set_var`), so child
//! processes get only what pgship passes them explicitly.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// Variables from the process environment, `.env.local` and `.env`.
#[derive(Clone, Default)]
pub struct Env {
    files: HashMap<String, String>,
    process: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are secrets: show names only.
        let mut names: Vec<&String> = self.files.keys().chain(self.process.keys()).collect();
        names.sort();
        names.dedup();
        f.debug_struct("Env").field("names", &names.len()).finish()
    }
}

impl Env {
    /// Read `.env` and `.env.local` from `dir` and snapshot the process environment.
    pub fn load(dir: &Path) -> Result<Env, ConfigError> {
        let mut files = HashMap::new();
        for name in [".env", ".env.local"] {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| ConfigError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
            files.extend(parse(&text).map_err(|message| ConfigError::File {
                path: path.clone(),
                message,
            })?);
        }
        let process = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Ok(Env { files, process })
    }

    /// An environment built from pairs, for tests and embedded projects.
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Env {
        Env {
            files: pairs.into_iter().collect(),
            process: HashMap::new(),
        }
    }

    /// The value of `name`: the process environment wins over the files.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.process
            .get(name)
            .or_else(|| self.files.get(name))
            .map(String::as_str)
    }
}

/// The variables of a dotenv file, in order; an error says on which line the file cannot be
/// parsed (and the variable, when the line names one), never what the line holds: a value may be
/// a secret.
fn parse(text: &[u8]) -> Result<Vec<(String, String)>, String> {
    let served = std::cell::Cell::new(0);
    let mut parsed_to = 0;
    let mut out = Vec::new();
    // dotenvy's own loader skips a byte-order mark; its iterator does not.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    for item in dotenvy::from_read_iter(LineReader {
        rest: text,
        lines: &served,
        mid_line: false,
    }) {
        match item {
            Ok(pair) => {
                out.push(pair);
                parsed_to = served.get();
            }
            Err(dotenvy::Error::LineParse(..)) => {
                return Err(where_parsing_failed(text, parsed_to, served.get()));
            }
            Err(dotenvy::Error::Io(e)) => return Err(e.to_string()),
            Err(_) => return Err("cannot read the file".into()),
        }
    }
    Ok(out)
}

/// The line a parse error is on: dotenvy read lines `parsed_to + 1 ..= end` (1-based) since
/// its last variable, the blank and comment lines among them first, so the failing entry
/// starts at the first line that is neither.
fn where_parsing_failed(text: &[u8], parsed_to: usize, end: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let start = (parsed_to + 1..=end)
        .find(|n| {
            let l = lines.get(n - 1).map_or("", |l| l.trim_start());
            !l.is_empty() && !l.starts_with('#')
        })
        .unwrap_or(end.max(1));
    let key = lines.get(start - 1).and_then(|l| key_of(l));
    let place = if end > start {
        format!("lines {start}-{end}")
    } else {
        format!("line {start}")
    };
    match key {
        Some(k) => format!(
            "{place} ({k}): cannot parse the value (quote a value holding spaces, `#` or quotes, and close every quote)"
        ),
        None => format!("{place}: cannot parse it (expected NAME=value)"),
    }
}

/// The variable a dotenv line sets, if it starts like `[export ]NAME=`.
fn key_of(line: &str) -> Option<&str> {
    let l = line.trim_start();
    let l = l.strip_prefix("export ").map_or(l, str::trim_start);
    let end = l
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(l.len());
    let key = &l[..end];
    let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    (valid && l[end..].trim_start().starts_with('=')).then_some(key)
}

/// A reader that hands out at most one line per read and counts the lines it handed out:
/// dotenvy reads through a `BufReader`, which asks for more only once it has used up what it
/// has, so after each entry the count is the last line dotenvy read.
struct LineReader<'a> {
    rest: &'a [u8],
    lines: &'a std::cell::Cell<usize>,
    mid_line: bool,
}

impl std::io::Read for LineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        let line_end = self
            .rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(self.rest.len(), |i| i + 1);
        let n = line_end.min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        // A line counts once, when its first byte is handed out.
        if !self.mid_line {
            self.lines.set(self.lines.get() + 1);
        }
        self.mid_line = buf[n - 1] != b'\n';
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_overrides_dotenv_and_process_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "A=from-env\nB=from-env\nPATH=nope\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".env.local"), "B=from-local\n").unwrap();
        let env = Env::load(dir.path()).unwrap();
        assert_eq!(env.get("A"), Some("from-env"));
        assert_eq!(env.get("B"), Some("from-local"));
        assert_ne!(env.get("PATH"), Some("nope"));
    }

    #[test]
    fn bad_line_does_not_echo_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "GOOD=1\nBAD LINE s3cret\n").unwrap();
        let err = Env::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(".env"), "{err}");
        assert!(err.contains("line 2: cannot parse it"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    fn parse_error(text: &str) -> String {
        parse(text.as_bytes()).expect_err("must fail")
    }

    #[test]
    fn parse_errors_give_the_line_and_the_variable() {
        let text = "A=1\n# the database\n\n  DATABASE_URL=postgres://u:s3cret@h/db extra\nB=2\n";
        let err = parse_error(text);
        assert!(err.starts_with("line 4 (DATABASE_URL): "), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("extra"), "{err}");
        // After a quoted value over several lines, the count goes on from its last line.
        let err = parse_error("A=\"x\ny\"\nexport B=it's\n");
        assert!(err.starts_with("line 3 (B): "), "{err}");
        // A quote never closed runs to the end of the file.
        let err = parse_error("A=1\r\nTOKEN=\"abc\r\nC=2\r\n");
        assert!(err.starts_with("lines 2-3 (TOKEN): "), "{err}");
        assert!(err.contains("close every quote"), "{err}");
        let err = parse_error("A=1\n\n=nothing\n");
        assert!(err.starts_with("line 3: cannot parse it"), "{err}");
        // A line longer than dotenvy's buffer is still one line.
        let long = format!("A=1\nB={}\nC=x y\n", "v".repeat(20_000));
        assert!(parse_error(&long).starts_with("line 3 (C): "));
    }

    #[test]
    fn parse_reads_what_dotenvy_reads() {
        let pairs =
            parse(b"\xEF\xBB\xBFA=1\nexport B='two words'\n# c\nC=\"x\ny\" # note\nD=\n").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".into(), "two words".into()),
                ("C".into(), "x\ny".into()),
                ("D".into(), String::new()),
            ]
        );
    }
}
