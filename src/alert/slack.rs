//! Slack through an incoming webhook (`SLACK_WEBHOOK_URL`, a secret: its path is the token).
//! The payload is the seed's (a `text` line with the status and an attachment coloured
//! `#36a64f` or `#f44336` with the fields Environment, Duration and Deployment ID), with a
//! Status field beside them and blocks carrying the headline, the mention and the details.
//! Everything taken from migrations, SQL or errors is escaped for Slack's markup, so a
//! migration named `<!channel>` pings no one.

use std::time::Instant;

use serde_json::{Value, json};

use super::{Alert, Event, Sent, Setup};
use crate::config::Env;

pub const VAR: &str = "SLACK_WEBHOOK_URL";
const GREEN: &str = "#36a64f";
const RED: &str = "#f44336";
/// Slack's limit for a section's text is 3000 characters.
const SECTION_CAP: usize = 2900;

pub struct Config {
    url: String,
}

pub fn setup(env: &Env) -> Setup<Config> {
    match env.get(VAR).map(str::trim).filter(|v| !v.is_empty()) {
        None => Setup::Off(format!("{VAR} is not set")),
        Some(url) => match crate::http::check_base_url(url, VAR) {
            Ok(url) => Setup::Ready(Config { url }),
            Err(why) => Setup::Bad(why),
        },
    }
}

pub async fn send(config: Config, alert: &Alert, mention: Option<&str>) -> Sent {
    let payload = payload(alert, mention);
    let secrets = super::url_secrets(&config.url);
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let deadline = Instant::now() + super::BOUND;
    let (result, attempts) = super::post_json(&config.url, &refs, deadline, || {
        (payload.clone(), Vec::new())
    })
    .await;
    Sent {
        result,
        attempts,
        payload,
    }
}

/// `<`, `>` and `&` as Slack's markup wants them in text it must not interpret.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The seed's text line.
pub fn text(alert: &Alert) -> &'static str {
    match (alert.event, alert.failed()) {
        (Event::Deployment, false) => "🚀 Deployment Success",
        (Event::Deployment, true) => "🚀 Deployment Failed",
        (Event::Rollback, false) => "⏪ Rollback Success",
        (Event::Rollback, true) => "⏪ Rollback Failed",
        (Event::Test, _) => "🧪 pgship test alert",
    }
}

/// The message. `mention` comes from `[alerts]` (checked there) and is the only markup kept.
pub fn payload(alert: &Alert, mention: Option<&str>) -> Value {
    let color = if alert.failed() { RED } else { GREEN };
    let fields = json!([
        {"title": "Environment", "value": escape(&alert.environment), "short": true},
        {"title": "Duration", "value": alert.duration_text(), "short": true},
        {"title": "Deployment ID", "value": escape(&alert.deployment_id)},
        {"title": "Status", "value": alert.status.words(), "short": true},
    ]);
    let mut head = format!("*{}* {}", text(alert), escape(&alert.headline()));
    if let Some(m) = mention {
        head = format!("{m} {head}");
    }
    let mut blocks = vec![section(&head)];
    for (label, value) in super::detail_lines(alert) {
        let value = escape(&value);
        let value = if value.contains('\n') {
            format!("```{value}```")
        } else {
            value
        };
        blocks.push(section(&format!("*{label}:* {value}")));
    }
    json!({
        "text": text(alert),
        "attachments": [{"color": color, "fields": fields}],
        "blocks": blocks,
    })
}

fn section(text: &str) -> Value {
    let text: String = if text.chars().count() > SECTION_CAP {
        let cut: String = text.chars().take(SECTION_CAP).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    };
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::alert::tests::sample;

    #[test]
    fn the_seeds_payload_with_blocks_beside_it() {
        let p = payload(&sample(Status::Succeeded), None);
        assert_eq!(p["text"], "🚀 Deployment Success");
        let a = &p["attachments"][0];
        assert_eq!(a["color"], GREEN);
        assert_eq!(
            a["fields"][0],
            json!({"title": "Environment", "value": "prod", "short": true})
        );
        assert_eq!(
            a["fields"][1],
            json!({"title": "Duration", "value": "45s", "short": true})
        );
        assert_eq!(
            a["fields"][2],
            json!({"title": "Deployment ID", "value": "deploy-prod-1728149445123"})
        );
        let p = payload(&sample(Status::RolledBack), Some("<!here>"));
        assert_eq!(p["text"], "🚀 Deployment Failed");
        assert_eq!(p["attachments"][0]["color"], RED);
        assert!(
            p["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("<!here> ")
        );
    }

    #[test]
    fn names_from_migrations_are_escaped() {
        let p = payload(&sample(Status::Aborted), None).to_string();
        assert!(
            !p.contains("<!channel>") && p.contains("&lt;!channel&gt;"),
            "{p}"
        );
        assert!(p.contains("a &lt;b&gt; &amp; c"), "{p}");
    }
}
