//! What pgship's PostgreSQL client-tool children (`pg_dump`, `pg_restore`, `psql`) share,
//! whichever module runs them: the password never reaches their arguments (it goes into a
//! private passfile; the URL they get has none), their environment is cleared but for what
//! they need, and what they print is scrubbed of passwords before pgship shows it.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::DbUrl;
use super::url::SslMode;

/// The user pgship connects as when `url` names none (as [`super::connect`] does):
/// `PGUSER`, else `USER`, else `postgres`.
pub fn user_of(url: &DbUrl) -> String {
    url.user
        .clone()
        .unwrap_or_else(super::connect::default_user)
}

/// The URL a child connects with: no password, an explicit user, and with `verify-*` but no
/// `sslrootcert` the system's roots (libpq 16+), as pgship's own connections verify.
pub fn child_url(url: &DbUrl, tools_major: u32) -> String {
    let mut u = url.clone();
    u.password = None;
    u.user = Some(user_of(url));
    let mut s = u.expose();
    let verify = matches!(url.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    if verify && url.sslrootcert.is_none() && tools_major >= 16 {
        s.push(if s.contains('?') { '&' } else { '?' });
        s.push_str("sslrootcert=system");
    }
    s
}

/// A libpq passfile with the passwords of `urls` (one line per host; a Unix socket matches as
/// `localhost`), followed by the user's own passfile when a URL carries no password, so that
/// such a URL still finds its password there.
pub fn passfile(urls: &[&DbUrl]) -> String {
    let mut out = String::new();
    for url in urls {
        let Some(password) = &url.password else {
            continue;
        };
        let user = user_of(url);
        let hosts: Vec<(String, String)> = if url.hosts.is_empty() {
            vec![("localhost".into(), "*".into())]
        } else {
            url.hosts
                .iter()
                .map(|h| {
                    let host = if h.host.starts_with('/') || h.host.is_empty() {
                        "localhost".to_string()
                    } else {
                        h.host.clone()
                    };
                    (host, h.port.map_or("*".into(), |p| p.to_string()))
                })
                .collect()
        };
        for (host, port) in hosts {
            out.push_str(&format!(
                "{}:{port}:*:{}:{}\n",
                escape(&host),
                escape(&user),
                escape(password.expose())
            ));
        }
    }
    if urls.iter().any(|u| u.password.is_none()) {
        let own = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")));
        if let Some(text) = own.and_then(|p| std::fs::read_to_string(p).ok()) {
            out.push_str(&text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// Passfile fields escape `\` and `:` with a backslash.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

/// The passwords of `urls`, to be scrubbed from what children print.
pub fn secrets_of(urls: &[&DbUrl]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A child's environment besides its passfile: nothing of the caller's but `HOME`, `PATH` and
/// `TMPDIR` (so that no `PG*` variable changes where or how it connects), messages in English,
/// pgship's application name and the URL's connect timeout (10 s by default).
pub fn base_env(url: &DbUrl) -> Vec<(String, String)> {
    let mut env = vec![
        ("LC_ALL".into(), "C".into()),
        ("PGAPPNAME".into(), super::connect::APPLICATION_NAME.into()),
        (
            "PGCONNECT_TIMEOUT".into(),
            url.connect_timeout.unwrap_or(10).to_string(),
        ),
    ];
    for keep in ["HOME", "PATH", "TMPDIR"] {
        if let Ok(v) = std::env::var(keep) {
            env.push((keep.into(), v));
        }
    }
    env
}

/// Longest line kept of what a child prints.
pub const MAX_LINE: usize = 500;

/// Passwords replaced by `***`, control characters but tabs and newlines dropped, each line cut
/// at [`MAX_LINE`] characters.
pub fn sanitise(text: &str, secrets: &[String]) -> String {
    let mut s = text.to_string();
    for secret in secrets {
        s = s.replace(secret.as_str(), "***");
    }
    s.lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .take(MAX_LINE)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Create `path` for writing: mode 0600, failing if it exists or is a symlink.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passfile_lines_escape_and_cover_every_host() {
        let a = DbUrl::parse("postgres://app:p%3Aw%5Cd@db.example.com:6543/x").unwrap();
        let b = DbUrl::parse("postgres://v:pw@h1:5432,h2/y").unwrap();
        assert_eq!(
            passfile(&[&a, &b]),
            "db.example.com:6543:*:app:p\\:w\\\\d\nh1:5432:*:v:pw\nh2:*:*:v:pw\n"
        );
        let socket = DbUrl::parse("postgresql://v:pw@%2Ftmp%2Fsock:5433/db").unwrap();
        assert_eq!(passfile(&[&socket]), "localhost:5433:*:v:pw\n");
    }

    #[test]
    fn child_urls_carry_no_password() {
        let u =
            DbUrl::parse("postgres://app:p%3Aw%5Cd@db.example.com:6543/x?sslmode=require").unwrap();
        assert_eq!(
            child_url(&u, 15),
            "postgres://app@db.example.com:6543/x?sslmode=require"
        );
        let v = DbUrl::parse("postgres://app:hunter2@db/x?sslmode=verify-full").unwrap();
        assert!(child_url(&v, 16).ends_with("sslrootcert=system"));
        assert!(!child_url(&v, 15).contains("sslrootcert"));
        assert!(!child_url(&v, 16).contains("hunter2"));
        assert_eq!(secrets_of(&[&u, &v]), ["p:w\\d", "hunter2"]);
    }

    #[test]
    fn sanitising_replaces_secrets_and_drops_control_characters() {
        let text = (0..100)
            .map(|i| format!("line {i} s3cret\u{1b}\tend"))
            .collect::<Vec<_>>()
            .join("\n");
        let s = sanitise(&text, &["s3cret".into()]);
        assert_eq!(s.lines().count(), 100);
        assert!(!s.contains("s3cret") && !s.contains('\u{1b}'));
        let tail = last_lines(&s, 40);
        assert_eq!(tail.lines().count(), 40);
        assert!(tail.ends_with("line 99 ***\tend"));
        assert_eq!(sanitise(&"x".repeat(2000), &[]).len(), MAX_LINE);
    }

    #[test]
    fn private_files_are_0600_new_and_never_follow_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        create_private(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(create_private(&p).is_err(), "never overwrites");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(create_private(&link).is_err(), "never follows a symlink");
        assert!(!dir.path().join("elsewhere").exists());
    }
}
