//! PostgreSQL connection URLs: parsed by hand, normalised for tokio-postgres, always shown
//! redacted.
//!
//! tokio-postgres refuses parameters libpq accepts (`sslrootcert`, `verify-full`, Neon's
//! extras), so pgship parses `postgres://` URLs itself and builds the driver's `Config` field
//! by field. Unknown parameters are kept aside and never break parsing. The password lives in
//! a [`Secret`] whose `Debug` and `Display` print `***`: the only way out is
//! [`Secret::expose`], used when handing it to the driver or to a private passfile.

use std::fmt;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself. Callers must not print, log or pass it on a command line.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

/// One `host[:port]` of a URL. A host starting with `/` is a Unix socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: Option<u16>,
}

/// A parsed PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub hosts: Vec<HostPort>,
    pub dbname: Option<String>,
    pub sslmode: SslMode,
    /// Whether `sslmode` was given explicitly.
    pub sslmode_explicit: bool,
    pub sslrootcert: Option<String>,
    pub channel_binding: ChannelBinding,
    pub connect_timeout: Option<u64>,
    pub options: Option<String>,
    pub hostaddr: Option<String>,
    pub target_session_attrs: Option<String>,
    /// Parameters the URL carried that pgship does not use (kept for `-v` output).
    pub ignored: Vec<String>,
    /// Known parameters, in order, for rebuilding a redacted URL.
    params: Vec<(String, String)>,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Why a URL could not be parsed. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database URL: {0}")]
pub struct UrlError(pub String);

const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

impl DbUrl {
    /// Parse a `postgres://` or `postgresql://` URL.
    pub fn parse(url: &str) -> Result<DbUrl, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| *s == "postgres" || *s == "postgresql")
            .ok_or_else(|| {
                UrlError("expected a URL starting with postgres:// or postgresql://".into())
            })?;
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let before_query = before_query.split('#').next().unwrap_or_default();
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
            None => (before_query, None),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let mut out = DbUrl {
            scheme: scheme.to_string(),
            user: None,
            password: None,
            hosts: Vec::new(),
            dbname: None,
            sslmode: SslMode::Prefer,
            sslmode_explicit: false,
            sslrootcert: None,
            channel_binding: ChannelBinding::Prefer,
            connect_timeout: None,
            options: None,
            hostaddr: None,
            target_session_attrs: None,
            ignored: Vec::new(),
            params: Vec::new(),
        };
        if let Some(info) = userinfo {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !user.is_empty() {
                out.user = Some(decode(user, "user name")?);
            }
            if let Some(p) = password {
                out.password = Some(Secret(decode(p, "password").map_err(|_| {
                    UrlError("the password is not valid percent-encoding".into())
                })?));
            }
        }
        for part in hostlist.split(',').filter(|p| !p.is_empty()) {
            out.hosts.push(parse_host_port(part)?);
        }
        if let Some(p) = path.filter(|p| !p.is_empty()) {
            out.dbname = Some(decode(p, "database name")?);
        }
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let key = decode(k, "parameter name")?;
                let value = decode(v, "parameter value").map_err(|_| {
                    UrlError(format!("parameter `{key}` is not valid percent-encoding"))
                })?;
                out.apply_param(&key, value)?;
            }
        }
        Ok(out)
    }

    fn apply_param(&mut self, key: &str, value: String) -> Result<(), UrlError> {
        let mut keep = true;
        match key {
            "sslmode" => {
                self.sslmode = SslMode::parse(&value)
                    .ok_or_else(|| UrlError(format!("unknown sslmode `{value}`")))?;
                self.sslmode_explicit = true;
            }
            "sslrootcert" => self.sslrootcert = Some(value.clone()),
            "channel_binding" => {
                self.channel_binding = match value.as_str() {
                    "disable" => ChannelBinding::Disable,
                    "prefer" => ChannelBinding::Prefer,
                    "require" => ChannelBinding::Require,
                    other => return Err(UrlError(format!("unknown channel_binding `{other}`"))),
                }
            }
            "connect_timeout" => {
                self.connect_timeout = Some(value.trim().parse().map_err(|_| {
                    UrlError(format!(
                        "connect_timeout `{value}` is not a number of seconds"
                    ))
                })?)
            }
            "options" => self.options = Some(value.clone()),
            "host" => {
                self.hosts = value
                    .split(',')
                    .map(|h| HostPort {
                        host: h.to_string(),
                        port: None,
                    })
                    .collect();
            }
            "port" => {
                let port: u16 = value
                    .parse()
                    .map_err(|_| UrlError(format!("port `{value}` is not a number")))?;
                if self.hosts.is_empty() {
                    self.hosts.push(HostPort {
                        host: "localhost".into(),
                        port: None,
                    });
                }
                for h in &mut self.hosts {
                    h.port = Some(port);
                }
            }
            "user" => self.user = Some(value.clone()),
            "password" => {
                self.password = Some(Secret(value));
                return Ok(());
            }
            "dbname" => self.dbname = Some(value.clone()),
            "hostaddr" => self.hostaddr = Some(value.clone()),
            "target_session_attrs" => self.target_session_attrs = Some(value.clone()),
            "application_name" | "fallback_application_name" => {
                // pgship always names its sessions `pgship` so lock holders can be found.
                self.ignored.push(key.to_string());
                keep = false;
            }
            _ => {
                self.ignored.push(key.to_string());
                keep = !SECRET_PARAMS.contains(&key);
                if keep {
                    self.params.push((key.to_string(), value));
                }
                return Ok(());
            }
        }
        if keep {
            self.params.push((key.to_string(), value));
        }
        Ok(())
    }

    /// The URL with its password replaced by `***`: the only form pgship ever shows.
    pub fn redacted(&self) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(&percent_encode(u));
            if self.password.is_some() {
                s.push_str(":***");
            }
            s.push('@');
        }
        let host_param = self.params.iter().any(|(k, _)| k == "host");
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .filter(|_| !host_param)
            .map(|h| {
                let host = if h.host.contains(':') {
                    format!("[{}]", h.host)
                } else {
                    h.host.clone()
                };
                match h.port {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                }
            })
            .collect();
        s.push_str(&hosts.join(","));
        if let Some(db) = &self.dbname {
            s.push('/');
            s.push_str(&percent_encode(db));
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        if !params.is_empty() {
            s.push('?');
            s.push_str(&params.join("&"));
        }
        s
    }

    /// The first host, or `localhost`.
    pub fn host(&self) -> &str {
        self.hosts.first().map_or("localhost", |h| h.host.as_str())
    }

    pub fn port(&self) -> u16 {
        self.hosts.first().and_then(|h| h.port).unwrap_or(5432)
    }

    /// Is this a transaction-mode pooler (Neon's `-pooler` hosts)? Session advisory locks do
    /// not survive one, so pgship refuses it.
    pub fn pooler_host(&self) -> Option<&str> {
        self.hosts.iter().map(|h| h.host.as_str()).find(|h| {
            h.split('.')
                .next()
                .is_some_and(|label| label.contains("-pooler"))
        })
    }

    /// The same URL pointing at another database.
    pub fn with_dbname(&self, dbname: &str) -> DbUrl {
        let mut u = self.clone();
        u.dbname = Some(dbname.to_string());
        u.params.retain(|(k, _)| k != "dbname");
        u
    }

    /// The URL as a string including the password, for handing to a child process through
    /// its environment (never its arguments).
    pub fn expose(&self) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(&percent_encode(u));
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(&percent_encode(p.expose()));
            }
            s.push('@');
        }
        let redacted = self.redacted();
        let after = redacted.split_once('@').map_or_else(
            || {
                redacted
                    .split_once("://")
                    .map_or("", |(_, r)| r)
                    .to_string()
            },
            |(_, r)| r.to_string(),
        );
        s.push_str(&after);
        s
    }
}

fn parse_host_port(part: &str) -> Result<HostPort, UrlError> {
    if let Some(rest) = part.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| UrlError("unterminated [ in host".into()))?;
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => Some(parse_port(p)?),
            _ => None,
        };
        return Ok(HostPort {
            host: host.to_string(),
            port,
        });
    }
    match part.rsplit_once(':') {
        Some((h, p)) => Ok(HostPort {
            host: decode(h, "host")?,
            port: if p.is_empty() {
                None
            } else {
                Some(parse_port(p)?)
            },
        }),
        None => Ok(HostPort {
            host: decode(part, "host")?,
            port: None,
        }),
    }
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    p.parse()
        .map_err(|_| UrlError(format!("port `{p}` is not a number")))
}

fn decode(s: &str, what: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UrlError(format!("{what} is not valid percent-encoding")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError(format!("{what} is not valid UTF-8")))
}

/// Percent-encode all but RFC 3986 unreserved characters (URL parts, query values).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neon_url() {
        let u = DbUrl::parse(
            "postgresql://neondb_owner:npg_s3cr%40t@ep-cool-123.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
        )
        .unwrap();
        assert_eq!(u.user.as_deref(), Some("neondb_owner"));
        assert_eq!(u.password.as_ref().unwrap().expose(), "npg_s3cr@t");
        assert_eq!(u.host(), "ep-cool-123.us-east-2.aws.neon.tech");
        assert_eq!(u.sslmode, SslMode::Require);
        assert_eq!(u.channel_binding, ChannelBinding::Require);
        let shown = u.redacted();
        assert_eq!(
            shown,
            "postgresql://neondb_owner:***@ep-cool-123.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require"
        );
        assert!(!format!("{u:?} {u}").contains("s3cr"));
        assert!(u.pooler_host().is_none());
        assert!(u.expose().contains("npg_s3cr%40t@ep-cool"));
    }

    #[test]
    fn pooler_detected() {
        let u =
            DbUrl::parse("postgres://u:p@ep-cool-123-pooler.us-east-2.aws.neon.tech/db").unwrap();
        assert_eq!(
            u.pooler_host(),
            Some("ep-cool-123-pooler.us-east-2.aws.neon.tech")
        );
    }

    #[test]
    fn unknown_params_do_not_break_parsing() {
        let u = DbUrl::parse(
            "postgres://u@h:6543/d?sslmode=verify-full&sslrootcert=/tmp/ca.pem&pgbouncer=true&sslcert=x&password=leak&gssencmode=disable",
        )
        .unwrap();
        assert_eq!(u.sslmode, SslMode::VerifyFull);
        assert_eq!(u.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(u.port(), 6543);
        assert!(u.ignored.contains(&"pgbouncer".to_string()));
        assert_eq!(u.password.as_ref().unwrap().expose(), "leak");
        assert!(!u.redacted().contains("leak"));
    }

    #[test]
    fn ipv6_socket_and_multi_host() {
        let u = DbUrl::parse("postgres://[::1]:5433/db").unwrap();
        assert_eq!(u.host(), "::1");
        assert_eq!(u.port(), 5433);
        assert_eq!(u.redacted(), "postgres://[::1]:5433/db");
        let u = DbUrl::parse("postgres:///db?host=/var/run/postgresql&port=5439").unwrap();
        assert_eq!(u.host(), "/var/run/postgresql");
        assert_eq!(u.port(), 5439);
        let u = DbUrl::parse("postgres://a:1,b:2/db").unwrap();
        assert_eq!(u.hosts.len(), 2);
    }

    #[test]
    fn errors_never_show_password() {
        let err = DbUrl::parse("postgres://u:bad%zzpass@h/d")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("bad"), "{err}");
        assert!(DbUrl::parse("mysql://u@h/d").is_err());
        assert!(DbUrl::parse("postgres://u@h/d?sslmode=sometimes").is_err());
    }

    #[test]
    fn special_characters_round_trip() {
        let pw = "p@ss:w/o?r#d% '\"\\";
        let url = format!("postgres://user:{}@host/db", percent_encode(pw));
        let u = DbUrl::parse(&url).unwrap();
        assert_eq!(u.password.as_ref().unwrap().expose(), pw);
        assert_eq!(DbUrl::parse(&u.expose()).unwrap(), u);
    }
}
