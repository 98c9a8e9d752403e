//! The sandbox's connection URL: the target's URL pointing at the branch's endpoint.
//!
//! A Neon branch starts with its parent's roles and their passwords (a password reset on the
//! parent "applies to that branch only", <https://neon.com/faqs/reset-database-password>), so
//! the target's role, database and parameters stay and only where to connect changes:
//!
//! - Neon's create-branch answer may carry `connection_uris` (`ConnectionURIsOptionalResponse`:
//!   `[{connection_uri, connection_parameters: {database, role, password, host, pooler_host}}]`,
//!   <https://neon.com/docs/reference/api/branches/create-project-branch>), each "a ready to use"
//!   URI of the new branch for one role and database. When one is for the target's own role and
//!   database, its host, port and password are used: Neon's word on where that role reaches
//!   the branch, which also works when the target URL has no password of its own. The target's
//!   parameters (TLS settings, options, timeouts) are kept; Neon's `sslmode` and
//!   `channel_binding` are added only where the target sets none.
//! - Otherwise (no such entry, or a branch adopted after a lost answer, which has none) the
//!   target's host is replaced by the host of the branch's read-write endpoint.
//!
//! This must never produce a URL that can still reach the target: the `host`, `hostaddr` and
//! `port` parameters are dropped, Neon's `options=endpoint=<id>` routing hint (used when the
//! client sends no SNI) is pointed at the branch's endpoint, and a result that names the
//! target's own host and port is refused. `db::url` keeps its parameter list private, so the
//! URL is rebuilt from [`DbUrl::expose`] and parsed again.

use super::transport::{enc, sanitize};
use super::{NeonBranch, NeonError, direct_host};
use crate::db::url::{ChannelBinding, DbUrl};

/// The sandbox URL of `branch`, a branch of `target`'s branch (see the module documentation).
pub fn branch_url(target: &DbUrl, branch: &NeonBranch) -> Result<DbUrl, NeonError> {
    let url = match matching_uri(target, &branch.connection_uris) {
        Some(uri) => from_connection_uri(target, uri, branch.endpoint_id.as_deref())?,
        None => {
            let host = branch
                .host
                .as_deref()
                .ok_or_else(|| NeonError::NoEndpoint {
                    branch_id: branch.id.clone(),
                })?;
            sandbox_url(target, host)?
        }
    };
    let same = target
        .hosts
        .iter()
        .any(|h| h.host.eq_ignore_ascii_case(url.host()) && h.port.unwrap_or(5432) == url.port());
    if same || (target.hostaddr.is_some() && target.hostaddr == url.hostaddr) {
        return Err(NeonError::InvalidArgument(format!(
            "Neon branch {} would be reached at {}:{}, which is the target itself",
            branch.id,
            url.host(),
            url.port()
        )));
    }
    Ok(url)
}

/// The entry of `uris` for the target's role and database (libpq's default database is the
/// role's name).
fn matching_uri<'a>(target: &DbUrl, uris: &'a [DbUrl]) -> Option<&'a DbUrl> {
    let role = target.user.as_deref()?;
    let db = target.dbname.as_deref().unwrap_or(role);
    uris.iter().find(|u| {
        u.user.as_deref() == Some(role)
            && u.dbname.as_deref().or(u.user.as_deref()) == Some(db)
            && u.hosts.len() == 1
    })
}

/// `target` pointed at the host and port of Neon's URI `uri`, with its password.
fn from_connection_uri(
    target: &DbUrl,
    uri: &DbUrl,
    endpoint_id: Option<&str>,
) -> Result<DbUrl, NeonError> {
    let host = uri.host();
    check_host(host)?;
    let mut extra = Vec::new();
    if uri.sslmode_explicit {
        extra.push(("sslmode", uri.sslmode.as_str()));
    }
    match uri.channel_binding {
        ChannelBinding::Require => extra.push(("channel_binding", "require")),
        ChannelBinding::Disable => extra.push(("channel_binding", "disable")),
        ChannelBinding::Prefer => {}
    }
    let port = uri.hosts.first().and_then(|h| h.port);
    let rebuilt = rebuild_url(&target.expose(), host, port, endpoint_id, &extra);
    let mut url = DbUrl::parse(&rebuilt).map_err(|e| NeonError::InvalidArgument(e.to_string()))?;
    if uri.password.is_some() {
        url.password = uri.password.clone();
    }
    if url.hosts.len() != 1 || url.host() != host || url.hostaddr.is_some() {
        return Err(NeonError::InvalidArgument(format!(
            "cannot point {} at {host}",
            target.redacted()
        )));
    }
    Ok(url)
}

fn check_host(host: &str) -> Result<(), NeonError> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(NeonError::InvalidArgument(format!(
            "`{}` is not a host name",
            sanitize(host, "")
        )))
    }
}

/// The sandbox URL: `target` with its host replaced by the branch endpoint `endpoint_host`.
pub fn sandbox_url(target: &DbUrl, endpoint_host: &str) -> Result<DbUrl, NeonError> {
    check_host(endpoint_host)?;
    let port = target.hosts.first().and_then(|h| h.port);
    let rebuilt = rebuild_url(&target.expose(), endpoint_host, port, None, &[]);
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

/// `scheme://[userinfo@]hosts[/db][?query]` with the hosts replaced, the `endpoint=` option
/// pointed at `endpoint_id` (default: the first label of `host`), and `extra` parameters added
/// where the query has none of that name.
fn rebuild_url(
    exposed: &str,
    host: &str,
    port: Option<u16>,
    endpoint_id: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
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
    let endpoint_id = match endpoint_id {
        Some(id) => id.to_string(),
        None => direct_host(host)
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let pairs: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    let mut params: Vec<String> = pairs
        .iter()
        .filter_map(|&(k, v)| match dec(k).as_str() {
            "host" | "hostaddr" | "port" => None,
            "options" => Some(format!(
                "options={}",
                enc(&rewrite_options(&dec(v), &endpoint_id))
            )),
            _ => Some(format!("{k}={v}")),
        })
        .collect();
    for (k, v) in extra {
        if !pairs.iter().any(|(name, _)| dec(name) == *k) {
            params.push(format!("{k}={}", enc(v)));
        }
    }
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

    fn branch(host: Option<&str>, uris: &[&str]) -> NeonBranch {
        NeonBranch {
            id: "br-sbx-1".into(),
            name: "pgship-sandbox-1".into(),
            host: host.map(str::to_string),
            endpoint_id: Some("ep-sbx-1".into()),
            created_at: None,
            connection_uris: uris.iter().map(|u| DbUrl::parse(u).unwrap()).collect(),
        }
    }

    #[test]
    fn neons_uri_for_the_targets_role_and_database_wins() {
        let target = DbUrl::parse(
            "postgresql://app:old@ep-main-1.aws.neon.tech/shop?sslmode=verify-full&sslrootcert=system&options=endpoint%3Dep-main-1&connect_timeout=7",
        )
        .unwrap();
        let b = branch(
            Some("ep-sbx-1.aws.neon.tech"),
            &[
                "postgresql://neondb_owner:x1@ep-other.aws.neon.tech/neondb?sslmode=require",
                "postgresql://app:n3w@ep-sbx-1.c-2.aws.neon.tech:6543/shop?sslmode=require&channel_binding=require",
            ],
        );
        let url = branch_url(&target, &b).unwrap();
        assert_eq!(url.host(), "ep-sbx-1.c-2.aws.neon.tech");
        assert_eq!(url.port(), 6543);
        assert_eq!(url.password.as_ref().unwrap().expose(), "n3w");
        assert_eq!(
            (url.user.as_deref(), url.dbname.as_deref()),
            (Some("app"), Some("shop"))
        );
        // The target's TLS settings stay (stricter than Neon's), Neon's channel binding is added.
        assert_eq!(
            url.redacted(),
            "postgresql://app:***@ep-sbx-1.c-2.aws.neon.tech:6543/shop?sslmode=verify-full&sslrootcert=system&options=endpoint%3Dep-sbx-1&connect_timeout=7&channel_binding=require"
        );
    }

    #[test]
    fn without_a_matching_uri_the_host_is_swapped() {
        let target =
            DbUrl::parse("postgresql://app:pw@ep-main-1.aws.neon.tech/shop?sslmode=require")
                .unwrap();
        // Another database, another role: not the target's.
        let b = branch(
            Some("ep-sbx-1.aws.neon.tech"),
            &[
                "postgresql://app:x@ep-sbx-1.aws.neon.tech/neondb",
                "postgresql://owner:x@ep-sbx-1.aws.neon.tech/shop",
            ],
        );
        let url = branch_url(&target, &b).unwrap();
        assert_eq!(
            url.redacted(),
            "postgresql://app:***@ep-sbx-1.aws.neon.tech/shop?sslmode=require"
        );
        assert_eq!(url.password.as_ref().unwrap().expose(), "pw");
        let e = branch_url(&target, &branch(None, &[])).unwrap_err();
        assert!(matches!(e, NeonError::NoEndpoint { .. }), "{e}");
    }

    #[test]
    fn a_url_that_reaches_the_target_is_refused() {
        let target = DbUrl::parse("postgresql://app:pw@db.internal:5432/shop").unwrap();
        let e = branch_url(
            &target,
            &branch(None, &["postgresql://app:pw@DB.internal/shop"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("the target itself"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        let e = branch_url(&target, &branch(Some("db.internal"), &[])).unwrap_err();
        assert!(e.to_string().contains("the target itself"), "{e}");
        // Another port of the same host is another server.
        let url = branch_url(
            &target,
            &branch(None, &["postgresql://app:pw@db.internal:5433/shop"]),
        )
        .unwrap();
        assert_eq!(url.port(), 5433);
    }
}
