//! The sandbox's connection URL: the target's URL pointing at the branch's endpoint.
//!
//! A Neon branch starts with its parent's roles and their passwords (a password reset on the
//! parent "applies to that branch only", <https://neon.com/faqs/reset-database-password>), so
//! only the host changes. This must never produce a URL that can still reach the target: the
//! `host` and `hostaddr` parameters are dropped and Neon's `options=endpoint=<id>` routing hint
//! (used when the client sends no SNI) is pointed at the branch's endpoint. `db::url` keeps its
//! parameter list private, so the URL is rebuilt from [`DbUrl::expose`] and parsed again.

use super::transport::{enc, sanitize};
use super::{NeonError, direct_host};
use crate::db::url::DbUrl;

/// The sandbox URL: `target` with its host replaced by the branch endpoint `endpoint_host`.
pub fn sandbox_url(target: &DbUrl, endpoint_host: &str) -> Result<DbUrl, NeonError> {
    let valid = !endpoint_host.is_empty()
        && endpoint_host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(NeonError::InvalidArgument(format!(
            "`{}` is not a host name",
            sanitize(endpoint_host, "")
        )));
    }
    let port = target.hosts.first().and_then(|h| h.port);
    let rebuilt = rebuild_url(&target.expose(), endpoint_host, port);
    let url = DbUrl::parse(&rebuilt).map_err(|e| NeonError::InvalidArgument(e.to_string()))?;
    // Never hand out a sandbox URL that could still reach the target.
    if url.hosts.len() != 1 || url.host() != endpoint_host || url.hostaddr.is_some() {
        return Err(NeonError::InvalidArgument(format!(
            "cannot point {} at {endpoint_host}",
            target.redacted()
        )));
    }
    Ok(url)
}

/// `scheme://[userinfo@]hosts[/db][?query]` with the hosts replaced.
fn rebuild_url(exposed: &str, host: &str, port: Option<u16>) -> String {
    let (scheme, rest) = exposed.split_once("://").unwrap_or(("postgresql", exposed));
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let userinfo = authority.rfind('@').map(|i| &authority[..=i]).unwrap_or("");
    let mut out = format!("{scheme}://{userinfo}{host}");
    if let Some(p) = port {
        out.push_str(&format!(":{p}"));
    }
    out.push_str(path);
    let endpoint_id = direct_host(host)
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let params: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "host" | "hostaddr" => None,
                "options" => Some(format!(
                    "options={}",
                    enc(&rewrite_options(&dec(v), &endpoint_id))
                )),
                _ => Some(pair.to_string()),
            }
        })
        .collect();
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Point Neon's `endpoint=<id>` option (its routing hint when SNI is missing) at `endpoint_id`.
fn rewrite_options(options: &str, endpoint_id: &str) -> String {
    options
        .split(' ')
        .map(|token| {
            if token.starts_with("endpoint=") {
                format!("endpoint={endpoint_id}")
            } else {
                token.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Percent-decode, leaving invalid escapes as they are.
fn dec(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_url_points_at_the_branch_only() {
        let target = DbUrl::parse(
            "postgresql://neondb_owner:p%40ss%3Aw@ep-main-1-pooler.c-3.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
        )
        .unwrap();
        let url = sandbox_url(&target, "ep-sbx-9.c-3.us-east-2.aws.neon.tech").unwrap();
        assert_eq!(url.host(), "ep-sbx-9.c-3.us-east-2.aws.neon.tech");
        assert_eq!(url.password.as_ref().unwrap().expose(), "p@ss:w");
        assert_eq!(url.user.as_deref(), Some("neondb_owner"));
        assert_eq!(url.dbname.as_deref(), Some("neondb"));
        assert_eq!(
            url.redacted(),
            "postgresql://neondb_owner:***@ep-sbx-9.c-3.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require"
        );
    }

    #[test]
    fn sandbox_url_drops_host_params_and_rewrites_the_endpoint_option() {
        let target = DbUrl::parse(
            "postgres://u:pw@ignored:5433/db?host=ep-main-1.aws.neon.tech&hostaddr=10.0.0.1&options=endpoint%3Dep-main-1%20-c%20search_path%3Dapp&sslmode=require",
        )
        .unwrap();
        let url = sandbox_url(&target, "ep-sbx-2.aws.neon.tech").unwrap();
        assert_eq!(url.host(), "ep-sbx-2.aws.neon.tech");
        assert_eq!(url.hosts.len(), 1);
        assert!(url.hostaddr.is_none());
        assert_eq!(
            url.options.as_deref(),
            Some("endpoint=ep-sbx-2 -c search_path=app")
        );
        assert!(!url.expose().contains("ep-main-1"), "{}", url.redacted());
        assert!(sandbox_url(&target, "bad host/").is_err());
        assert!(sandbox_url(&target, "").is_err());
    }
}
