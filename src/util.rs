//! Small helpers shared by several modules: durations as people write them, hashing,
//! random tokens.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// Parse `2s`, `500ms`, `1m`, `1h`, `1.5s` or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: expected e.g. 500ms, 2s, 1m"))?;
    let factor_ms = match unit.trim() {
        "" | "ms" => 1.0,
        "s" | "sec" | "secs" => 1_000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" => 3_600_000.0,
        other => return Err(format!("invalid duration `{text}`: unknown unit `{other}`")),
    };
    let ms = value * factor_ms;
    if !ms.is_finite() || !(0.0..=1e12).contains(&ms) {
        return Err(format!("invalid duration `{text}`"));
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

/// Parse a size: `512`, `64kB`, `256MB`, `2GB` (powers of 1024, as PostgreSQL reads them).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("invalid size `{text}`: expected e.g. 64MB, 1GB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        other => return Err(format!("invalid size `{text}`: unknown unit `{other}`")),
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size `{text}`: too large"))
}

/// Render a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `items` joined with ", ", folded when long: the first `head` and the last `tail` items around
/// a count of those left out ("a, b, ... 1996 more ..., y, z").
pub fn fold_list<T: AsRef<str>>(items: &[T], head: usize, tail: usize) -> String {
    fold_items(items, head, tail)
        .into_iter()
        .map(|i| match i {
            Ok(s) => s.as_ref().to_string(),
            Err(n) => format!("... {n} more ..."),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to show of a long list: every item when there are at most `head + tail + 1`, else the
/// first `head` and the last `tail`, with `Err(n)` between them for the `n` left out.
pub fn fold_items<T>(items: &[T], head: usize, tail: usize) -> Vec<Result<&T, usize>> {
    if items.len() <= head + tail + 1 {
        return items.iter().map(Ok).collect();
    }
    let left_out = items.len() - head - tail;
    let mut out: Vec<Result<&T, usize>> = items[..head].iter().map(Ok).collect();
    out.push(Err(left_out));
    out.extend(items[items.len() - tail..].iter().map(Ok));
    out
}

/// This machine's host name, or "unknown".
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Lowercase sha256 hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` random bytes as lowercase hex, from the kernel's generator.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    if !filled {
        // Never used for secrets when /dev/urandom is missing: fall back to time and pid so
        // names stay unique.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `2025-10-05T16:30:45.123Z`: UTC, milliseconds, as the seed's log and state files write it.
pub fn iso_millis(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The size and lowercase sha256 hex of a file, read in 1 MiB pieces (a dump can be large).
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((
        total,
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_fold() {
        let few = ["a", "b", "c"];
        assert_eq!(fold_list(&few, 1, 1), "a, b, c");
        let many: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
        assert_eq!(
            fold_list(&many, 3, 2),
            "m0, m1, m2, ... 1995 more ..., m1998, m1999"
        );
        assert_eq!(fold_list(&many, 2, 0), "m0, m1, ... 1998 more ...");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64kB"), Ok(64 << 10));
        assert_eq!(parse_size("256MB"), Ok(256 << 20));
        assert_eq!(parse_size(" 2 GB"), Ok(2 << 30));
        assert!(parse_size("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn random_hex_is_random() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }
}
