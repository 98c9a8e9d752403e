//! Deploy hooks: a POST to a secret URL starts a deployment (Vercel's
//! `https://api.vercel.com/v1/integrations/deploy/<project>/<hook>`, or any platform's hook).
//!
//! The URL is the credential: it is never shown, only "the deploy hook", and every message an
//! answer or a failure carries is scrubbed of it (whole, and its path and query).

use std::time::Duration;

use serde_json::json;

use super::attempts_suffix;
use super::send::{Failure, send};
use super::wire::HookAnswer;
use crate::db::url::Secret;
use crate::http::{Method, RetryPolicy, sanitize};

/// POST the deploy hook: `Ok(Some(job id))` for Vercel's `{"job": {"id"}}` answer, `Ok(None)`
/// for any other 2xx. Retried only on 429 and 503 (a POST Vercel may have carried out is never
/// repeated).
pub async fn post_hook(url: &Secret) -> Result<Option<String>, String> {
    post_hook_with(url, &RetryPolicy::default()).await
}

/// [`post_hook`] with its retries set by `retry`.
pub async fn post_hook_with(url: &Secret, retry: &RetryPolicy) -> Result<Option<String>, String> {
    let target = url.expose().trim();
    check_hook_url(target)?;
    let agent = crate::http::agent(target, Duration::from_secs(30));
    let body = json!({});
    let scrub = |m: &str| scrub_hook(m, target);
    match send(&agent, Method::Post, target, None, Some(&body), retry).await {
        Ok(raw) => Ok(serde_json::from_str::<HookAnswer>(&raw.body)
            .ok()
            .and_then(|a| a.job)
            .and_then(|j| j.id)
            .map(|id| scrub(&id))),
        Err(Failure::Status { raw, attempts, .. }) => Err(format!(
            "the deploy hook answered HTTP {}{}{}",
            raw.status,
            body_excerpt(&scrub(&raw.body)),
            attempts_suffix(attempts)
        )),
        Err(Failure::Transport { message, attempts }) => Err(format!(
            "the deploy hook could not be reached: {}{}",
            scrub(&message),
            attempts_suffix(attempts)
        )),
    }
}

/// https, or http to a loopback address; no credentials ([`crate::http::check_base_url`] on
/// the URL without its query, which some platforms' hooks carry). Errors never quote the URL.
pub fn check_hook_url(url: &str) -> Result<(), String> {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    crate::http::check_base_url(without_query, "VERCEL_DEPLOY_HOOK_URL")
        .map(drop)
        .map_err(|e| format!("{e} (the value is not shown)"))
}

/// `message` with the hook URL, and its path and query (the secret part), replaced.
fn scrub_hook(message: &str, url: &str) -> String {
    let mut s = sanitize(message, url);
    if let Some((_, rest)) = url.split_once("://")
        && let Some(i) = rest.find(['/', '?'])
        && rest.len() - i > 1
    {
        s = sanitize(&s, &rest[i..]);
    }
    s
}

fn body_excerpt(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls_are_checked_without_being_quoted() {
        let secret = "https://u:pw@api.vercel.com/v1/integrations/deploy/prj_1/SECRETHOOK";
        let e = check_hook_url(secret).unwrap_err();
        assert!(
            !e.contains("SECRETHOOK") && e.contains("credentials"),
            "{e}"
        );
        assert!(check_hook_url("http://example.com/hook/SECRETHOOK").is_err());
        assert!(check_hook_url("http://127.0.0.1:9/hook").is_ok());
        assert!(check_hook_url("https://api.render.com/deploy/srv-1?key=k").is_ok());
    }

    #[test]
    fn scrubbing_removes_the_secret_path() {
        let url = "https://api.vercel.com/v1/integrations/deploy/prj_1/SECRETHOOK";
        let s = scrub_hook(
            "error for /v1/integrations/deploy/prj_1/SECRETHOOK at api.vercel.com",
            url,
        );
        assert!(!s.contains("SECRETHOOK"), "{s}");
        assert!(!scrub_hook(url, url).contains("SECRETHOOK"));
    }
}
