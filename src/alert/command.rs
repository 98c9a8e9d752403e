//! `pgship alert test [--channel slack|email|webhook]`: a test alert to every configured
//! channel (or the one asked for), routing aside, and what became of it on each.

use super::{Alert, Channel, Delivery, Event, State, Status};
use crate::config::Settings;
use crate::error::{Error, ExitCode, Result};

/// The test alert.
pub fn test_alert() -> Alert {
    let now = jiff::Timestamp::now();
    let id = format!("test-alert-{}", now.as_millisecond());
    Alert {
        event: Event::Test,
        environment: "test".into(),
        deployment_id: id,
        rolled_back: None,
        status: Status::Succeeded,
        timestamp: crate::journal::format_timestamp(now),
        duration_ms: 0,
        migrations: Vec::new(),
        reasons: vec!["a test alert sent by `pgship alert test`: nothing was deployed".into()],
        failure: None,
        rollback: None,
        commit: None,
        app_url: None,
        logs_command: "pgship alert test".into(),
        report: None,
    }
}

/// Send the test alert. Exit 0 when every configured channel delivered it, 1 when one failed;
/// an error (exit 2) when no channel asked for is configured.
pub async fn test(settings: &Settings, only: Option<Channel>) -> Result<(ExitCode, Vec<Delivery>)> {
    let channels: Vec<Channel> = match only {
        Some(c) => vec![c],
        None => Channel::ALL.to_vec(),
    };
    let deliveries = super::send_to(&test_alert(), &channels, settings, None).await;
    if deliveries.iter().all(|d| d.state == State::NotConfigured) {
        let why: Vec<String> = deliveries.iter().map(Delivery::describe).collect();
        return Err(Error::usage(format!(
            "no alert channel is configured: {}",
            why.join("; ")
        ))
        .with_hint("set SLACK_WEBHOOK_URL, SMTP_HOST and ALERT_EMAIL, or ALERT_WEBHOOK_URL and ALERT_WEBHOOK_SECRET (see docs/alerts.md)"));
    }
    let failed = deliveries.iter().any(|d| d.state == State::Failed);
    let code = if failed {
        ExitCode::Refused
    } else {
        ExitCode::Ok
    };
    Ok((code, deliveries))
}
