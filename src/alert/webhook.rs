//! A generic webhook (`ALERT_WEBHOOK_URL`): the alert as one JSON document, signed the way
//! Stripe signs its events. The header `pgship-signature: t=<unix>,v1=<hex>` carries the time
//! of the try and HMAC-SHA256 over `<t>.<body>` keyed with `ALERT_WEBHOOK_SECRET`; a receiver
//! recomputes it over the raw body, compares in constant time and rejects an old `t` (a
//! replay). See docs/alerts.md.

use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{Alert, Sent, Setup};
use crate::config::Env;

pub const URL_VAR: &str = "ALERT_WEBHOOK_URL";
pub const SECRET_VAR: &str = "ALERT_WEBHOOK_SECRET";
pub const HEADER: &str = "pgship-signature";

pub struct Config {
    url: String,
    secret: String,
}

pub fn setup(env: &Env) -> Setup<Config> {
    let get = |v| env.get(v).map(str::trim).filter(|v| !v.is_empty());
    let Some(url) = get(URL_VAR) else {
        return Setup::Off(format!("{URL_VAR} is not set"));
    };
    let url = match crate::http::check_base_url(url, URL_VAR) {
        Ok(u) => u,
        Err(why) => return Setup::Bad(why),
    };
    match get(SECRET_VAR) {
        None => Setup::Bad(format!(
            "{SECRET_VAR} is not set: the webhook's body is signed with it"
        )),
        Some(secret) => Setup::Ready(Config {
            url,
            secret: secret.to_string(),
        }),
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">`.
pub fn signature(secret: &str, unix: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix},v1={hex}")
}

/// The body as sent: `http::exchange` posts a JSON value as ureq prints it (pretty), and the
/// signature must cover exactly those bytes.
pub fn body_text(body: &Value) -> String {
    serde_json::to_string_pretty(body).unwrap_or_default()
}

pub async fn send(config: Config, alert: &Alert) -> Sent {
    let body = serde_json::to_value(alert).unwrap_or_default();
    let text = body_text(&body);
    let mut secrets = super::url_secrets(&config.url);
    secrets.push(config.secret.clone());
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let deadline = Instant::now() + super::BOUND;
    let (result, attempts) = super::post_json(&config.url, &refs, deadline, || {
        let unix = jiff::Timestamp::now().as_second();
        let sig = signature(&config.secret, unix, &text);
        (body.clone(), vec![(HEADER.to_string(), sig)])
    })
    .await;
    Sent {
        result,
        attempts,
        payload: body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_style_signature_of_a_known_vector() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently (python3 hmac).
        assert_eq!(
            signature("key", 1_700_000_000, "{}"),
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
