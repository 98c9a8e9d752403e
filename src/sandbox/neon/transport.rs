//! HTTP to the Neon API: retries with Neon's semantics over [`crate::http`]'s exchange, and
//! Neon's error bodies made into scrubbed errors.
//!
//! The API key goes only into the `Authorization` header. Which failures are retried follows
//! Neon's "General Error" guidance, summed up in the parent module's documentation.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::NeonError;
use crate::db::url::Secret;
pub use crate::http::RetryPolicy;
pub(super) use crate::http::{Method, Raw, sanitize};

/// The way to one Neon API.
#[derive(Clone)]
pub(super) struct Transport {
    base_url: String,
    api_key: Secret,
    agent: ureq::Agent,
    pub(super) retry: RetryPolicy,
}

impl Transport {
    /// `base_url` must be https, or http to a loopback address (tests).
    pub(super) fn new(base_url: &str, api_key: Secret) -> Result<Transport, NeonError> {
        let base_url =
            crate::http::check_base_url(base_url, "NEON_API_URL").map_err(NeonError::Config)?;
        if api_key.expose().is_empty() || api_key.expose().chars().any(char::is_control) {
            return Err(NeonError::Config(
                "NEON_API_KEY is not a valid API key".into(),
            ));
        }
        Ok(Transport {
            agent: crate::http::agent(&base_url, Duration::from_secs(30)),
            base_url,
            api_key,
            retry: RetryPolicy::default(),
        })
    }

    /// Bound every HTTP exchange, connection and body included, by `timeout`.
    pub(super) fn set_timeout(&mut self, timeout: Duration) {
        self.agent = crate::http::agent(&self.base_url, timeout);
    }

    pub(super) fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(super) fn api_key(&self) -> &Secret {
        &self.api_key
    }

    /// `message` made safe to show (see [`sanitize`]), with this client's key scrubbed.
    pub(super) fn scrub(&self, message: &str) -> String {
        sanitize(message, self.api_key.expose())
    }

    /// One request with retries; answers 2xx, and 404 when `allow_404`.
    pub(super) async fn send(
        &self,
        action: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        allow_404: bool,
    ) -> Result<Raw, NeonError> {
        let request = format!("{} {path}", method.as_str());
        let mut slept = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let agent = self.agent.clone();
            let url = format!("{}{path}", self.base_url);
            let auth = format!("Bearer {}", self.api_key.expose());
            let payload = body.cloned();
            let result = tokio::task::spawn_blocking(move || {
                let headers = [("Authorization", auth.as_str())];
                crate::http::exchange(&agent, method, &url, &headers, payload.as_ref())
            })
            .await
            .unwrap_or_else(|_| Err("the HTTP worker thread panicked".into()));
            let (error, retry, retry_after) = match result {
                Ok(raw) if (200..300).contains(&raw.status) || (allow_404 && raw.status == 404) => {
                    return Ok(raw);
                }
                Ok(raw) => {
                    let retry = match raw.status {
                        429 | 423 | 503 => true,
                        500..=599 => method.retry_unknown_outcome(),
                        _ => false,
                    };
                    let after = raw.retry_after;
                    (
                        self.api_error(action, &request, &raw, attempt),
                        retry,
                        after,
                    )
                }
                Err(message) => {
                    let e = NeonError::Transport {
                        action: action.to_string(),
                        request: request.clone(),
                        message: self.scrub(&message),
                        attempts: attempt,
                    };
                    (e, method.retry_unknown_outcome(), None)
                }
            };
            if !retry || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let delay = match retry_after {
                Some(d) if d > self.retry.max_retry_after => {
                    return Err(with_detail(
                        error,
                        &format!(" (Retry-After {}s)", d.as_secs()),
                    ));
                }
                Some(d) => d,
                None => self.retry.backoff(attempt),
            };
            if slept + delay > self.retry.budget {
                return Err(error);
            }
            tokio::time::sleep(delay).await;
            slept += delay;
            attempt += 1;
        }
    }

    /// Neon's `{"code", "message", "request_id"}`, or the raw body, scrubbed.
    fn api_error(&self, action: &str, request: &str, raw: &Raw, attempts: u32) -> NeonError {
        let parsed: Option<ApiErrorBody> = serde_json::from_str(&raw.body).ok();
        let (code, message, request_id) = match parsed {
            Some(b) if b.message.is_some() || b.code.is_some() => (
                b.code.map(|c| match c {
                    Value::String(s) => s,
                    other => other.to_string(),
                }),
                b.message.unwrap_or_default(),
                b.request_id,
            ),
            _ => (None, raw.body.clone(), None),
        };
        let message = if message.trim().is_empty() {
            http_reason(raw.status).to_string()
        } else {
            message
        };
        let mut detail = String::new();
        if let Some(c) = code.filter(|c| !c.is_empty()) {
            detail.push_str(&format!(" ({})", self.scrub(&c)));
        }
        detail.push_str(": ");
        detail.push_str(&self.scrub(&message));
        if let Some(r) = request_id.filter(|r| !r.is_empty()) {
            detail.push_str(&format!(" [request id {}]", self.scrub(&r)));
        }
        NeonError::Api {
            action: action.to_string(),
            request: request.to_string(),
            status: raw.status,
            detail,
            attempts,
        }
    }
}

fn with_detail(mut e: NeonError, more: &str) -> NeonError {
    if let NeonError::Api { detail, .. } = &mut e {
        detail.push_str(more);
    }
    e
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "unauthorized: check NEON_API_KEY",
        403 => "forbidden: the API key has no access to this project",
        404 => "not found",
        423 => "locked: another operation is running in the project",
        429 => "too many requests",
        500..=599 => "Neon server error",
        _ => "no message",
    }
}

pub(super) use crate::db::url::percent_encode as enc;

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}
