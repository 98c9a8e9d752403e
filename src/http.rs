//! HTTP for the APIs pgship talks to (Neon, Vercel, alert channels): one blocking ureq
//! exchange per attempt (run it on tokio's blocking pool), the retry policy with jittered
//! backoff and `Retry-After`, base-URL rules, and the scrubbing of everything an answer can put
//! into an error. No API's semantics live here.
//!
//! Redirects are never followed, so an `Authorization` header cannot be carried to another
//! host; plain http is accepted only to a loopback address (tests).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use serde_json::Value;

/// Longest message taken from a response.
pub const MESSAGE_CAP: usize = 300;
/// Largest response body read.
const BODY_LIMIT: u64 = 8 * 1024 * 1024;

/// How requests are retried. Each request sleeps at most `budget` in total.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff; it doubles with each retry, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the retries at once.
    pub max_retry_after: Duration,
    /// Total sleep allowed between the attempts of one request.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            budget: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The sleep before retry number `retry` (1-based): exponential, equal jitter, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in `[0, 1)`, different on every call (std's per-instance random hash keys).
fn jitter() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// May a failure with an unknown outcome be repeated? GET is idempotent; DELETE is in
    /// effect, since deleting a deleted branch is a 404 that counts as done.
    pub fn retry_unknown_outcome(self) -> bool {
        self != Method::Post
    }
}

/// One HTTP answer.
pub struct Raw {
    pub status: u16,
    /// The `Retry-After` header, parsed.
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// An agent bounded by `timeout` (connection and body included), no redirects, no proxy for a
/// loopback base URL.
pub fn agent(base_url: &str, timeout: Duration) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
        .accept("application/json")
        .user_agent(concat!("pgship/", env!("CARGO_PKG_VERSION")));
    if url_host(base_url).is_some_and(is_loopback) {
        config = config.proxy(None);
    }
    config.build().new_agent()
}

/// One HTTP exchange, on a blocking thread, with `headers` (secrets among them go nowhere
/// else). The error is ureq's message: scrub it before showing it.
pub fn exchange(
    agent: &ureq::Agent,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Raw, String> {
    let response = match method {
        Method::Get => with_headers(agent.get(url), headers).call(),
        Method::Delete => with_headers(agent.delete(url), headers).call(),
        Method::Post => {
            with_headers(agent.post(url), headers).send_json(body.unwrap_or(&Value::Null))
        }
    };
    let response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response
        .into_body()
        .into_with_config()
        .limit(BODY_LIMIT)
        .read_to_string()
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(Raw {
        status,
        retry_after,
        body,
    })
}

fn with_headers<B>(
    mut r: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?;
    let delta = when.timestamp().duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// `url` checked as an API base URL read from `var`: https, or http to a loopback address; no
/// credentials, query or fragment. Returned without a trailing slash.
pub fn check_base_url(url: &str, var: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let bad = |why: &str| format!("{var} {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("must start with https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("must not contain credentials"));
    }
    if url.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    let host = url_host(url).ok_or_else(|| bad("has no host"))?;
    match scheme {
        "https" => Ok(url.to_string()),
        "http" if is_loopback(host) => Ok(url.to_string()),
        "http" => Err(bad(
            "must use https (plain http is allowed only to a loopback address)",
        )),
        _ => Err(bad("must start with https://")),
    }
}

/// The host of an `http(s)://host[:port]/…` URL.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A message from outside, safe to show: no API key, no bearer token, no URL password, no
/// control characters, at most [`MESSAGE_CAP`] characters.
pub fn sanitize(message: &str, key: &str) -> String {
    let mut s = message.to_string();
    if !key.is_empty() {
        s = s.replace(key, "***");
    }
    s = redact_after(&s, "Bearer ", |c: char| {
        c.is_whitespace() || "\"',;".contains(c)
    });
    s = redact_url_passwords(&s);
    let mut out = String::new();
    let mut last_space = false;
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    let out = out.trim();
    if out.chars().count() > MESSAGE_CAP {
        let cut: String = out.chars().take(MESSAGE_CAP).collect();
        format!("{cut}…")
    } else {
        out.to_string()
    }
}

/// Replace what follows each `marker` up to `end` with `***`.
fn redact_after(s: &str, marker: &str, end: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        let after = &rest[i + marker.len()..];
        let stop = after.find(&end).unwrap_or(after.len());
        if stop > 0 {
            out.push_str("***");
        }
        rest = &after[stop..];
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub fn redact_url_passwords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || "/?#\"'<>".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let d = parse_retry_after(&header).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for retry in 1..=10 {
            let exp = (100u64 << (retry - 1)).min(1000);
            let d = p.backoff(retry).as_millis() as u64;
            assert!(d >= exp / 2 && d <= exp, "retry {retry}: {d} ms");
        }
        let many: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(4)).collect();
        assert!(many.len() > 1, "no jitter");
    }

    #[test]
    fn sanitize_scrubs_secrets_and_caps() {
        let key = "napi_k3y";
        let s = sanitize(
            "bad key napi_k3y; header Bearer abc.def\nurl postgres://u:pw@h/db\x07 end",
            key,
        );
        assert!(
            !s.contains("napi_k3y") && !s.contains("abc.def") && !s.contains("pw@"),
            "{s}"
        );
        assert!(s.contains("postgres://u:***@h/db"), "{s}");
        assert!(!s.contains('\n') && !s.contains('\x07'), "{s}");
        let long = sanitize(&"x".repeat(1000), key);
        assert_eq!(long.chars().count(), MESSAGE_CAP + 1);
    }

    #[test]
    fn base_url_rules() {
        assert!(
            check_base_url("https://console.neon.tech/api/v2/", "NEON_API_URL")
                .unwrap()
                .ends_with("/v2")
        );
        assert!(check_base_url("http://127.0.0.1:8080/api/v2", "NEON_API_URL").is_ok());
        assert!(check_base_url("http://[::1]:8080", "NEON_API_URL").is_ok());
        assert!(check_base_url("http://console.neon.tech/api/v2", "NEON_API_URL").is_err());
        assert!(check_base_url("https://u:p@console.neon.tech", "NEON_API_URL").is_err());
        assert!(check_base_url("ftp://x", "NEON_API_URL").is_err());
        assert!(check_base_url("console.neon.tech", "NEON_API_URL").is_err());
    }
}
