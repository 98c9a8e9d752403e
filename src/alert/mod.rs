//! Alerts: the team hears about every deployment and rollback without watching it.
//!
//! One [`Alert`] is built once from a run's outcome (by `deploy::alerts`, the only caller that
//! knows a run); [`send`] routes it by `[alerts]` (see [`route`]) and sends it to every
//! configured channel at once ([`slack`], [`email`], [`webhook`]), each bounded by [`BOUND`]
//! (at most [`MAX_TRIES`] tries, `Retry-After` honoured on 429, backoff on 5xx and transport
//! errors). A channel that fails is a [`Delivery`] that says why, scrubbed of its URL, token and
//! password: sending never fails and never changes a run's outcome. [`write_artifact`] keeps
//! what was sent in the run's folder (`alerts.json`, without secrets).
//!
//! This module sits below `deploy` and `cli`: it reads configuration and talks HTTP and SMTP,
//! nothing else.

pub mod command;
pub mod email;
pub mod route;
pub mod slack;
pub mod webhook;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::config::Settings;
use crate::http::{self, Method, RetryPolicy};

/// The longest a channel may take, all its tries included.
pub const BOUND: Duration = Duration::from_secs(10);
/// Tries per channel, the first included.
pub const MAX_TRIES: u32 = 3;

/// How a run ended, in the alert's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Succeeded,
    Aborted,
    RolledBack,
    NeedsHuman,
}

impl Status {
    /// The word `[alerts]` routes by (`succeeded`, `aborted`, `rolled-back`, `needs-human`).
    pub fn key(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Aborted => "aborted",
            Status::RolledBack => "rolled-back",
            Status::NeedsHuman => "needs-human",
        }
    }

    /// The words a person reads.
    pub fn words(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Aborted => "aborted",
            Status::RolledBack => "rolled back",
            Status::NeedsHuman => "needs a human",
        }
    }
}

/// What the alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// `pgship deploy`.
    Deployment,
    /// `pgship rollback <id>`.
    Rollback,
    /// `pgship alert test`.
    Test,
}

/// The failing statement of a failed apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub migration: String,
    pub file: String,
    pub line: u32,
    /// 1-based statement number in the migration.
    pub statement: usize,
    pub error: String,
    /// The statement's text, cut to [`http::MESSAGE_CAP`] characters.
    pub sql: String,
}

/// One alert, built once from a run's outcome; every channel renders this.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub event: Event,
    pub environment: String,
    /// The run's id (`deploy-<env>-<ms>`, `rollback-<env>-<ms>`).
    pub deployment_id: String,
    /// For a rollback: the deployment it undid.
    pub rolled_back: Option<String>,
    pub status: Status,
    /// When the alert was built (ISO 8601, milliseconds, `Z`).
    pub timestamp: String,
    pub duration_ms: u64,
    /// The migrations the run was about (applied, pending or undone).
    pub migrations: Vec<String>,
    /// The decision's reasons (why it stopped, failed or needs a person).
    pub reasons: Vec<String>,
    pub failure: Option<Failure>,
    /// What the rollback did, when one ran.
    pub rollback: Option<String>,
    pub commit: Option<String>,
    pub app_url: Option<String>,
    /// Where to read more: the command and the report's path.
    pub logs_command: String,
    pub report: Option<String>,
}

impl Alert {
    /// `deploy-prod-1: needs a human`, with the event's noun.
    pub fn headline(&self) -> String {
        let what = match self.event {
            Event::Deployment => "deployment",
            Event::Rollback => "rollback",
            Event::Test => "test alert",
        };
        format!(
            "{what} {} to {}: {}",
            self.deployment_id,
            self.environment,
            self.status.words()
        )
    }

    /// The duration as the seed shows it: `45s`, `3.2s`, `2m 05s`.
    pub fn duration_text(&self) -> String {
        let ms = self.duration_ms;
        match ms {
            0..10_000 => format!("{:.1}s", ms as f64 / 1000.0),
            10_000..60_000 => format!("{}s", ms / 1000),
            _ => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        }
    }

    /// Whether this is bad news: a deployment that did not succeed, a rollback that did not
    /// roll back.
    pub fn failed(&self) -> bool {
        match self.event {
            Event::Rollback => self.status != Status::RolledBack,
            Event::Deployment | Event::Test => self.status != Status::Succeeded,
        }
    }
}

/// The alert channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Slack,
    Email,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Slack, Channel::Email, Channel::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// A channel's configuration read from the environment.
pub enum Setup<T> {
    /// Not configured: the channel is off (the text says which variable is missing).
    Off(String),
    /// Configured wrongly: every send fails with this text (it names the variable).
    Bad(String),
    Ready(T),
}

/// What became of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Delivered,
    Failed,
    NotConfigured,
    /// `[alerts]` does not send this event to this channel.
    NotRouted,
}

/// One channel's delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: Channel,
    pub state: State,
    /// Why it failed or is off (scrubbed), empty when delivered.
    pub detail: String,
    pub attempts: u32,
    pub elapsed_ms: u64,
    /// What was sent (no URL, token, password or signature).
    pub payload: Option<Value>,
}

impl Delivery {
    fn idle(channel: Channel, state: State, detail: String) -> Delivery {
        Delivery {
            channel,
            state,
            detail,
            attempts: 0,
            elapsed_ms: 0,
            payload: None,
        }
    }

    /// `slack: delivered (1 try, 120 ms)`.
    pub fn describe(&self) -> String {
        let c = self.channel.as_str();
        let tries = match self.attempts {
            1 => "1 try".to_string(),
            n => format!("{n} tries"),
        };
        match self.state {
            State::Delivered => format!("{c}: delivered ({tries}, {} ms)", self.elapsed_ms),
            State::Failed if self.attempts == 0 => format!("{c}: failed: {}", self.detail),
            State::Failed => format!(
                "{c}: failed after {tries} in {} ms: {}",
                self.elapsed_ms, self.detail
            ),
            State::NotConfigured => format!("{c}: not configured ({})", self.detail),
            State::NotRouted => format!("{c}: not sent ({})", self.detail),
        }
    }
}

/// What a channel's send came to.
pub struct Sent {
    pub result: Result<(), String>,
    pub attempts: u32,
    pub payload: Value,
}

/// Route `alert` by `[alerts]` and send it to the channels that take it, all at once.
pub async fn send(alert: &Alert, settings: &Settings) -> Vec<Delivery> {
    let routes = route::Routes::new(&settings.file.alerts, &alert.environment);
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for c in Channel::ALL {
        if routes.takes(c, alert.status) {
            chosen.push(c);
        } else {
            let why = format!("[alerts] does not send {} here", alert.status.key());
            skipped.push(Delivery::idle(c, State::NotRouted, why));
        }
    }
    let mut out = send_to(alert, &chosen, settings, routes.mention(alert)).await;
    out.extend(skipped);
    out.sort_by_key(|d| d.channel as u8);
    out
}

/// Send `alert` to `channels` concurrently, each within [`BOUND`]; `mention` goes on Slack.
pub async fn send_to(
    alert: &Alert,
    channels: &[Channel],
    settings: &Settings,
    mention: Option<&str>,
) -> Vec<Delivery> {
    let env = &settings.env;
    let tls = settings.file.alerts.smtp_tls.as_deref();
    let on = |c| channels.contains(&c);
    let (s, e, w) = tokio::join!(
        one(on(Channel::Slack), Channel::Slack, slack::setup(env), |c| {
            slack::send(c, alert, mention)
        }),
        one(
            on(Channel::Email),
            Channel::Email,
            email::setup(env, tls),
            |c| { email::send(c, alert) }
        ),
        one(
            on(Channel::Webhook),
            Channel::Webhook,
            webhook::setup(env),
            |c| { webhook::send(c, alert) }
        ),
    );
    [s, e, w].into_iter().flatten().collect()
}

/// One channel: off, misconfigured, or sent within [`BOUND`].
async fn one<T, F, Fut>(wanted: bool, channel: Channel, setup: Setup<T>, f: F) -> Option<Delivery>
where
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = Sent>,
{
    if !wanted {
        return None;
    }
    let config = match setup {
        Setup::Off(why) => return Some(Delivery::idle(channel, State::NotConfigured, why)),
        Setup::Bad(why) => return Some(Delivery::idle(channel, State::Failed, why)),
        Setup::Ready(c) => c,
    };
    let started = Instant::now();
    let sent = tokio::time::timeout(BOUND, f(config)).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (state, detail, attempts, payload) = match sent {
        Ok(Sent {
            result: Ok(()),
            attempts,
            payload,
        }) => (State::Delivered, String::new(), attempts, Some(payload)),
        Ok(Sent {
            result: Err(why),
            attempts,
            payload,
        }) => (State::Failed, why, attempts, Some(payload)),
        Err(_) => (
            State::Failed,
            format!("no answer within {} s", BOUND.as_secs()),
            MAX_TRIES,
            None,
        ),
    };
    Some(Delivery {
        channel,
        state,
        detail,
        attempts,
        elapsed_ms,
        payload,
    })
}

/// The retry policy of every channel: [`MAX_TRIES`] tries within [`BOUND`].
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: MAX_TRIES,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(4),
        max_retry_after: Duration::from_secs(8),
        budget: BOUND,
    }
}

/// `message` without any of `secrets` (URLs, their paths, tokens), made safe to show.
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut s = message.to_string();
    for k in secrets.iter().filter(|k| k.len() > 1) {
        s = s.replace(*k, "***");
    }
    http::sanitize(&s, "")
}

/// The secrets of a URL: itself and its path (an incoming webhook's token is its path).
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    if let Some(rest) = url.split_once("://").map(|(_, r)| r)
        && let Some(i) = rest.find('/')
        && rest.len() > i + 1
    {
        out.push(rest[i..].to_string());
    }
    out
}

/// POST a JSON body built by `build` (fresh for each try: a signature carries its time) to
/// `url` until a 2xx, at most [`MAX_TRIES`] tries before `deadline`; 429 waits `Retry-After`,
/// 5xx and transport errors back off, other answers end at once. Returns the tries made.
pub async fn post_json<B>(
    url: &str,
    secrets: &[&str],
    deadline: Instant,
    build: B,
) -> (Result<(), String>, u32)
where
    B: Fn() -> (Value, Vec<(String, String)>),
{
    let policy = retry_policy();
    let mut tries = 0;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let (body, headers) = build();
        let agent = http::agent(url, left.min(Duration::from_secs(5)));
        let target = url.to_string();
        let answer = tokio::task::spawn_blocking(move || {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            http::exchange(&agent, Method::Post, &target, &h, Some(&body))
        })
        .await;
        let (retry, wait, why) = match answer {
            Ok(Ok(raw)) if (200..300).contains(&raw.status) => return (Ok(()), tries),
            Ok(Ok(raw)) => (
                raw.status == 429 || raw.status >= 500,
                raw.retry_after.filter(|_| raw.status == 429),
                format!("HTTP {}: {}", raw.status, raw.body),
            ),
            Ok(Err(e)) => (true, None, e),
            Err(e) => (false, None, e.to_string()),
        };
        let why = scrub(&why, secrets);
        if !retry || tries >= policy.max_attempts {
            return (Err(why), tries);
        }
        let wait = match wait {
            Some(w) if w > policy.max_retry_after => {
                return (
                    Err(format!(
                        "{why} (Retry-After {} s is beyond the bound)",
                        w.as_secs()
                    )),
                    tries,
                );
            }
            Some(w) => w,
            None => policy.backoff(tries),
        };
        if Instant::now() + wait >= deadline {
            return (Err(format!("{why} (no time left for another try)")), tries);
        }
        tokio::time::sleep(wait).await;
    }
}

/// The alert and what became of it on each channel, as `alerts.json` in `dir` (0600).
pub fn write_artifact(
    dir: &Path,
    alert: &Alert,
    deliveries: &[Delivery],
) -> std::io::Result<PathBuf> {
    let path = dir.join("alerts.json");
    let doc = serde_json::json!({"alert": alert, "deliveries": deliveries});
    let mut f = crate::db::child::create_private(&path)?;
    f.write_all(
        serde_json::to_string_pretty(&doc)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(path)
}

/// Text for HTML: `<`, `>`, `&`, `"` and `'` escaped.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The lines every channel shows under the headline: reasons, the failing statement, the
/// rollback, the commit, the app and where to read more.
pub fn detail_lines(alert: &Alert) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(id) = &alert.rolled_back {
        out.push(("Rolled back", id.clone()));
    }
    if !alert.migrations.is_empty() {
        out.push(("Migrations", alert.migrations.join(", ")));
    }
    for r in &alert.reasons {
        out.push(("Reason", r.clone()));
    }
    if let Some(f) = &alert.failure {
        out.push((
            "Failing statement",
            format!(
                "{} statement {} ({}:{}): {}\n{}",
                f.migration, f.statement, f.file, f.line, f.error, f.sql
            ),
        ));
    }
    if let Some(r) = &alert.rollback {
        out.push(("Rollback", r.clone()));
    }
    if let Some(c) = &alert.commit {
        out.push(("Commit", c.clone()));
    }
    if let Some(u) = &alert.app_url {
        out.push(("App", u.clone()));
    }
    let mut more = alert.logs_command.clone();
    if let Some(r) = &alert.report {
        more.push_str(&format!(", {r}"));
    }
    out.push(("More", more));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(status: Status) -> Alert {
        Alert {
            event: Event::Deployment,
            environment: "prod".into(),
            deployment_id: "deploy-prod-1728149445123".into(),
            rolled_back: None,
            status,
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            duration_ms: 45_200,
            migrations: vec!["0001_<!channel>".into()],
            reasons: vec!["a <b> & c".into()],
            failure: None,
            rollback: None,
            commit: Some("daa8878".into()),
            app_url: None,
            logs_command: "pgship logs deploy-prod-1728149445123".into(),
            report: Some(".deployments/deploy-prod-1728149445123/report.md".into()),
        }
    }

    #[test]
    fn durations_read_like_the_seed() {
        let mut a = sample(Status::Succeeded);
        for (ms, text) in [(3_240, "3.2s"), (45_200, "45s"), (125_000, "2m 05s")] {
            a.duration_ms = ms;
            assert_eq!(a.duration_text(), text);
        }
    }

    #[test]
    fn scrubbing_takes_out_urls_paths_and_tokens() {
        let url = "https://hooks.slack.com/services/T0/B0/s3cr3t";
        let secrets = url_secrets(url);
        assert_eq!(secrets[1], "/services/T0/B0/s3cr3t");
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let s = scrub(
            &format!("POST {url} failed; path /services/T0/B0/s3cr3t\nagain"),
            &refs,
        );
        assert!(!s.contains("s3cr3t") && !s.contains('\n'), "{s}");
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
