//! Email over SMTP with lettre: `ALERT_EMAIL` (comma-separated) from `ALERT_EMAIL_FROM`
//! through `SMTP_HOST`:`SMTP_PORT` (587 by default), authenticated with `SMTP_USER` and
//! `SMTP_PASSWORD` when set. Never in clear text: implicit TLS on port 465, STARTTLS (required)
//! on any other (`[alerts] smtp_tls` overrides the rule). The server's certificate is checked
//! against the Mozilla roots plus the PEM file in `PGSHIP_SMTP_CA_FILE`, if set. A plain-text
//! and an HTML part; headers built by lettre from text without line breaks.

use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::{Alert, Sent, Setup, html_escape};
use crate::config::Env;

pub const CA_VAR: &str = "PGSHIP_SMTP_CA_FILE";

pub struct Config {
    host: String,
    port: u16,
    implicit_tls: bool,
    credentials: Option<(String, String)>,
    from: Mailbox,
    to: Vec<Mailbox>,
    roots: Option<Certificate>,
}

/// The email channel from the environment; `tls` is `[alerts] smtp_tls`.
pub fn setup(env: &Env, tls: Option<&str>) -> Setup<Config> {
    match read(env, tls) {
        Ok(Some(c)) => Setup::Ready(c),
        Ok(None) => Setup::Off("SMTP_HOST and ALERT_EMAIL are not set".into()),
        Err(why) => Setup::Bad(why),
    }
}

fn read(env: &Env, tls: Option<&str>) -> Result<Option<Config>, String> {
    let get = |v| env.get(v).map(str::trim).filter(|v| !v.is_empty());
    let (host, to) = match (get("SMTP_HOST"), get("ALERT_EMAIL")) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err("SMTP_HOST is not set (ALERT_EMAIL is)".into()),
        (Some(_), None) => return Err("ALERT_EMAIL is not set (SMTP_HOST is)".into()),
        (Some(h), Some(t)) => (h, t),
    };
    let port = match get("SMTP_PORT") {
        None => 587,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("SMTP_PORT: `{p}` is not a port number"))?,
    };
    let to = to
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| address(a, "ALERT_EMAIL"))
        .collect::<Result<Vec<_>, _>>()?;
    let credentials = match (get("SMTP_USER"), env.get("SMTP_PASSWORD")) {
        (Some(u), Some(p)) if !p.is_empty() => Some((u.to_string(), p.to_string())),
        (Some(_), _) => return Err("SMTP_PASSWORD is not set (SMTP_USER is)".into()),
        (None, Some(p)) if !p.is_empty() => {
            return Err("SMTP_USER is not set (SMTP_PASSWORD is)".into());
        }
        (None, _) => None,
    };
    let from = match (get("ALERT_EMAIL_FROM"), get("SMTP_USER")) {
        (Some(f), _) => address(f, "ALERT_EMAIL_FROM")?,
        (None, Some(u)) => address(u, "SMTP_USER")
            .map_err(|_| "ALERT_EMAIL_FROM is not set (and SMTP_USER is no address)".to_string())?,
        (None, None) => return Err("ALERT_EMAIL_FROM is not set".into()),
    };
    let roots = match get(CA_VAR) {
        None => None,
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{CA_VAR}: {path}: {e}"))?;
            Some(
                Certificate::from_pem(&pem)
                    .map_err(|e| format!("{CA_VAR}: {path}: not PEM certificates: {e}"))?,
            )
        }
    };
    let implicit_tls = match tls {
        Some("implicit") => true,
        Some("starttls") => false,
        _ => port == 465,
    };
    Ok(Some(Config {
        host: host.to_string(),
        port,
        implicit_tls,
        credentials,
        from,
        to,
        roots,
    }))
}

fn address(text: &str, var: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>()
        .map_err(|_| format!("{var}: `{}` is not an email address", one_line(text)))
}

/// Text for a header: control characters (line breaks among them) become spaces.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn subject(alert: &Alert) -> String {
    one_line(&format!("[pgship] {}", alert.headline()))
}

/// The plain-text part.
pub fn text_body(alert: &Alert) -> String {
    let mut o = format!("{}\n\n", alert.headline());
    for (k, v) in fields(alert) {
        o.push_str(&format!("{k}: {v}\n"));
    }
    for (k, v) in super::detail_lines(alert) {
        o.push_str(&format!("{k}: {v}\n"));
    }
    o
}

/// The HTML part: every value escaped.
pub fn html_body(alert: &Alert) -> String {
    let color = if alert.failed() { "#f44336" } else { "#36a64f" };
    let mut o = format!(
        "<!doctype html>\n<html><body>\n<h2 style=\"color:{color}\">{}</h2>\n<table>\n",
        html_escape(&alert.headline())
    );
    let rows = fields(alert).into_iter().chain(super::detail_lines(alert));
    for (k, v) in rows {
        o.push_str(&format!(
            "<tr><th align=\"left\" valign=\"top\">{k}</th><td><pre style=\"margin:0;white-space:pre-wrap\">{}</pre></td></tr>\n",
            html_escape(&v)
        ));
    }
    o.push_str("</table>\n</body></html>\n");
    o
}

fn fields(alert: &Alert) -> Vec<(&'static str, String)> {
    vec![
        ("Environment", alert.environment.clone()),
        ("Duration", alert.duration_text()),
        ("Deployment ID", alert.deployment_id.clone()),
        ("Status", alert.status.words().to_string()),
    ]
}

pub async fn send(config: Config, alert: &Alert) -> Sent {
    let payload = json!({
        "from": config.from.to_string(),
        "to": config.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "subject": subject(alert),
        "text": text_body(alert),
        "html": html_body(alert),
    });
    let (result, attempts) = match message(&config, &payload) {
        Ok(m) => deliver(&config, &m).await,
        Err(why) => (Err(why), 0),
    };
    Sent {
        result,
        attempts,
        payload,
    }
}

fn message(config: &Config, p: &Value) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(config.from.clone())
        .subject(p["subject"].as_str().unwrap_or_default());
    for to in &config.to {
        b = b.to(to.clone());
    }
    let text = p["text"].as_str().unwrap_or_default().to_string();
    let html = p["html"].as_str().unwrap_or_default().to_string();
    b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
    )
    .map_err(|e| format!("building the message: {e}"))
}

/// Up to [`super::MAX_TRIES`] tries within [`super::BOUND`]: a transient answer (4xx) or a
/// lost connection backs off and tries again; a permanent answer or a TLS failure ends.
async fn deliver(config: &Config, m: &Message) -> (Result<(), String>, u32) {
    let deadline = Instant::now() + super::BOUND;
    let policy = super::retry_policy();
    let mut secrets: Vec<&str> = Vec::new();
    if let Some((u, p)) = &config.credentials {
        secrets.extend([p.as_str(), u.as_str()]);
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let result = match transport(config, left.min(Duration::from_secs(5))) {
            Ok(t) => t.send(m.clone()).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let e = match result {
            Ok(()) => return (Ok(()), tries),
            Err(e) => e,
        };
        let text = describe(&e);
        let why = super::scrub(&text, &secrets);
        // A certificate refused is as final as a permanent answer (with implicit TLS, lettre
        // reports it as a connection error).
        let untrusted = text.contains("certificate");
        if e.is_permanent() || e.is_tls() || untrusted || tries >= policy.max_attempts {
            return (Err(why), tries);
        }
        let wait = policy.backoff(tries);
        if Instant::now() + wait >= deadline {
            return (Err(format!("{why} (no time left for another try)")), tries);
        }
        tokio::time::sleep(wait).await;
    }
}

/// lettre's error with the causes its message does not already say (a TLS failure says why
/// only in its source).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn transport(
    config: &Config,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    let mut tls = TlsParameters::builder(config.host.clone());
    if let Some(roots) = &config.roots {
        tls = tls.add_root_certificate(roots.clone());
    }
    let tls = tls.build_rustls()?;
    let tls = if config.implicit_tls {
        Tls::Wrapper(tls)
    } else {
        Tls::Required(tls)
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
        .port(config.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((u, p)) = &config.credentials {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::alert::tests::sample;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn configuration_is_read_and_refused_by_name() {
        assert!(matches!(setup(&env(&[]), None), Setup::Off(_)));
        let bad = |pairs: &[(&str, &str)], needle: &str| match setup(&env(pairs), None) {
            Setup::Bad(why) => assert!(why.contains(needle), "{why}"),
            _ => panic!("{pairs:?} accepted"),
        };
        bad(&[("ALERT_EMAIL", "a@x.test")], "SMTP_HOST");
        bad(
            &[("SMTP_HOST", "h"), ("ALERT_EMAIL", "a@x.test, nope")],
            "ALERT_EMAIL: `nope`",
        );
        bad(
            &[
                ("SMTP_HOST", "h"),
                ("ALERT_EMAIL", "a@x.test"),
                ("SMTP_PORT", "x"),
            ],
            "SMTP_PORT",
        );
        bad(
            &[
                ("SMTP_HOST", "h"),
                ("ALERT_EMAIL", "a@x.test"),
                ("SMTP_USER", "u@x.test"),
            ],
            "SMTP_PASSWORD",
        );
        bad(
            &[("SMTP_HOST", "h"), ("ALERT_EMAIL", "a@x.test")],
            "ALERT_EMAIL_FROM",
        );
        let ok = env(&[
            ("SMTP_HOST", "h"),
            ("SMTP_PORT", "465"),
            ("ALERT_EMAIL", "a@x.test,b@x.test"),
            ("SMTP_USER", "bot@x.test"),
            ("SMTP_PASSWORD", "pw"),
        ]);
        let Setup::Ready(c) = setup(&ok, None) else {
            panic!()
        };
        assert!(c.implicit_tls && c.to.len() == 2 && c.from.to_string() == "bot@x.test");
        let Setup::Ready(c) = setup(&ok, Some("starttls")) else {
            panic!()
        };
        assert!(!c.implicit_tls);
    }

    #[test]
    fn subject_has_no_line_break_and_html_is_escaped() {
        let mut a = sample(Status::NeedsHuman);
        a.environment = "prod\r\nBcc: evil@x.test".into();
        assert!(!subject(&a).contains(['\r', '\n']));
        let h = html_body(&a);
        assert!(h.contains("0001_&lt;!channel&gt;") && !h.contains("<!channel>"));
    }
}
