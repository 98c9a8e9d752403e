//! A child's stderr: read line by line (long lines cut, never buffered whole), handed to a
//! callback (for `pg_restore --verbose` progress), and kept for error messages: only errors,
//! warnings and the SQL or context lines around them, the first and last few, with passwords
//! replaced and control characters dropped.

use std::collections::VecDeque;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;

use crate::db::child::{MAX_LINE, sanitise};

/// Lines of stderr kept from the start and from the end.
const HEAD_LINES: usize = 10;
const TAIL_LINES: usize = 30;

/// Read a child's stderr: every line goes to `on_line`; errors, warnings and unprefixed lines
/// (SQL, context) are kept, sanitised, the first and last few of them.
pub(crate) async fn read_stderr(
    s: ChildStderr,
    secrets: &[String],
    on_line: &dyn Fn(&str),
) -> String {
    let mut r = BufReader::new(s);
    let mut raw = Vec::new();
    let mut head: Vec<String> = Vec::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut skipped = 0usize;
    while next_line(&mut r, &mut raw).await {
        let line = String::from_utf8_lossy(&raw);
        on_line(&line);
        if is_chatter(&line) {
            continue;
        }
        let clean = sanitise(&line, secrets);
        if head.len() < HEAD_LINES {
            head.push(clean);
        } else {
            tail.push_back(clean);
            if tail.len() > TAIL_LINES {
                tail.pop_front();
                skipped += 1;
            }
        }
    }
    let mut out = head;
    if skipped > 0 {
        out.push(format!("... ({skipped} lines left out)"));
    }
    out.extend(tail);
    out.join("\n")
}

/// One line (without its newline) into `line`, cut at [`MAX_LINE`]; false at the end.
async fn next_line<R: AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) -> bool {
    line.clear();
    let mut any = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => return any,
        };
        any = true;
        let (take, used, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, i + 1, true),
            None => (buf.len(), buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        r.consume(used);
        if end {
            return true;
        }
    }
}

/// `pg_restore: creating TABLE ...` and other `--verbose` lines.
fn is_chatter(line: &str) -> bool {
    let Some(rest) = line
        .strip_prefix("pg_restore: ")
        .or_else(|| line.strip_prefix("pg_dump: "))
    else {
        return false;
    };
    ![
        "error:", "warning:", "detail:", "hint:", "fatal:", "FATAL:", "ERROR:",
    ]
    .iter()
    .any(|p| rest.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatter_and_errors() {
        assert!(is_chatter("pg_restore: creating TABLE \"public.t\""));
        assert!(is_chatter(
            "pg_restore: processing data for table \"public.t\""
        ));
        assert!(!is_chatter(
            "pg_restore: error: could not execute query: ERROR:  role \"x\" does not exist"
        ));
        assert!(!is_chatter("Command was: ALTER TABLE public.t OWNER TO x;"));
        assert!(!is_chatter(
            "pg_dump: detail: Query was: LOCK TABLE public.t"
        ));
    }

    #[test]
    fn sanitising() {
        let s = sanitise(
            "pg_dump: error: connection to server failed: password s3cr3t\u{1b}[31m wrong",
            &["s3cr3t".into()],
        );
        assert_eq!(
            s,
            "pg_dump: error: connection to server failed: password ***[31m wrong"
        );
        let long = "x".repeat(2000);
        assert_eq!(sanitise(&long, &[]).len(), MAX_LINE);
    }

    #[tokio::test]
    async fn long_lines_are_cut_not_buffered() {
        let data = format!("{}\nshort\n", "y".repeat(10_000));
        let mut r = BufReader::new(data.as_bytes());
        let mut line = Vec::new();
        assert!(next_line(&mut r, &mut line).await);
        assert_eq!(line.len(), MAX_LINE);
        assert!(next_line(&mut r, &mut line).await);
        assert_eq!(line, b"short");
        assert!(!next_line(&mut r, &mut line).await);
    }
}
