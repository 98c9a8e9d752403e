//! One request to Vercel (its REST API or a deploy hook) with retries, over
//! [`crate::http`]'s exchange.
//!
//! Retried: 429 and 503 for every method, honouring `Retry-After` (a longer wait than
//! [`RetryPolicy::max_retry_after`] ends the retries at once); other 5xx and broken connections
//! only when the method may be repeated ([`Method::retry_unknown_outcome`]: not a POST, which
//! Vercel may already have carried out). Nothing here scrubs: the caller knows the secret.

use std::time::Duration;

use serde_json::Value;

use crate::http::{Method, Raw, RetryPolicy};

/// Why a request failed after its last attempt. Messages are not scrubbed yet.
pub(super) enum Failure {
    /// A non-2xx answer; `retry_after` when a `Retry-After` longer than allowed ended it.
    Status {
        raw: Raw,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// No answer (connection, TLS, timeout, body).
    Transport { message: String, attempts: u32 },
}

/// `method url` with `Authorization: Bearer <bearer>` when given (the only place the token
/// goes), retried per `retry`.
pub(super) async fn send(
    agent: &ureq::Agent,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    retry: &RetryPolicy,
) -> Result<Raw, Failure> {
    let mut slept = Duration::ZERO;
    let mut attempt = 1;
    loop {
        let failure = match once(agent, method, url, bearer, body).await {
            Ok(raw) if (200..300).contains(&raw.status) => return Ok(raw),
            Ok(raw) => Failure::Status {
                raw,
                attempts: attempt,
                retry_after: None,
            },
            Err(message) => Failure::Transport {
                message,
                attempts: attempt,
            },
        };
        let delay = match next_delay(&failure, method, retry, attempt) {
            Ok(Some(delay)) if slept + delay <= retry.budget => delay,
            Ok(_) => return Err(failure),
            Err(too_long) => return Err(with_retry_after(failure, too_long)),
        };
        tokio::time::sleep(delay).await;
        slept += delay;
        attempt += 1;
    }
}

async fn once(
    agent: &ureq::Agent,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<Raw, String> {
    let agent = agent.clone();
    let url = url.to_string();
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let payload = body.cloned();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        crate::http::exchange(&agent, method, &url, &headers, payload.as_ref())
    })
    .await
    .unwrap_or_else(|_| Err("the HTTP worker thread panicked".into()))
}

/// `Ok(Some(delay))` to retry, `Ok(None)` to stop, `Err(wait)` when the server asked for a
/// longer wait than allowed.
fn next_delay(
    failure: &Failure,
    method: Method,
    retry: &RetryPolicy,
    attempt: u32,
) -> Result<Option<Duration>, Duration> {
    if attempt >= retry.max_attempts {
        return Ok(None);
    }
    let (retryable, asked) = match failure {
        Failure::Status { raw, .. } => {
            let retryable = match raw.status {
                429 | 503 => true,
                500..=599 => method.retry_unknown_outcome(),
                _ => false,
            };
            (retryable, raw.retry_after)
        }
        Failure::Transport { .. } => (method.retry_unknown_outcome(), None),
    };
    match asked {
        _ if !retryable => Ok(None),
        Some(d) if d > retry.max_retry_after => Err(d),
        Some(d) => Ok(Some(d)),
        None => Ok(Some(retry.backoff(attempt))),
    }
}

fn with_retry_after(failure: Failure, wait: Duration) -> Failure {
    match failure {
        Failure::Status { raw, attempts, .. } => Failure::Status {
            raw,
            attempts,
            retry_after: Some(wait),
        },
        other => other,
    }
}
