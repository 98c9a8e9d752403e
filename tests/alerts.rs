//! Alerts on real protocols: a Slack-shaped HTTP receiver, a webhook receiver that verifies the
//! signature, and an SMTP server with STARTTLS or implicit TLS and AUTH (aiosmtpd), all on
//! loopback; through the library, `pgship alert test`, and `pgship deploy dev` / `rollback`
//! on a fresh database for every outcome. A channel that fails never changes the exit code
//! and ends within the bound; canary secrets appear nowhere.

mod common;
#[path = "common/alerts.rs"]
mod receivers;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::deploy::*;
use common::*;
use pgship::alert::{self, Alert, Channel, Event, State, Status};
use receivers::{Receiver, Reply, Smtp};
use serde_json::Value;

const SLACK_PATH: &str = "/services/T0CANARY/B0CANARY/slackcanarytoken42";
const HOOK_PATH: &str = "/hooks/webhookcanary77";
const HOOK_SECRET: &str = "whsec_canarysecret99";
const SMTP_PASSWORD: &str = "smtp-canary-password-31";
const CANARIES: [&str; 4] = [
    "slackcanarytoken42",
    "webhookcanary77",
    "canarysecret99",
    "smtp-canary-password-31",
];

fn assert_no_canary(what: &str, text: &str) {
    for c in CANARIES {
        assert!(!text.contains(c), "{what} holds the secret {c}:\n{text}");
    }
}

/// A project folder whose `.env` holds `vars` (and `pgship.toml`, if given).
fn settings_dir(vars: &[(String, String)], toml: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let env: String = vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(dir.path().join(".env"), env).unwrap();
    if let Some(t) = toml {
        std::fs::write(dir.path().join("pgship.toml"), t).unwrap();
    }
    dir
}

fn settings(dir: &Path) -> pgship::config::Settings {
    pgship::config::Settings::load(dir, None).unwrap()
}

fn var(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn hostile_alert() -> Alert {
    Alert {
        event: Event::Deployment,
        environment: "dev".into(),
        deployment_id: "deploy-dev-1728149445123".into(),
        rolled_back: None,
        status: Status::RolledBack,
        timestamp: "2026-01-01T00:00:00.000Z".into(),
        duration_ms: 45_000,
        migrations: vec!["0002_<!channel>\r\nX-Injected: yes".into()],
        reasons: vec!["<!everyone> & friends\r\nBcc: evil@x.test".into()],
        failure: None,
        rollback: Some("restore method, undid 0002".into()),
        commit: Some("daa88785c6bb43f9f6b86e3dafb49ecb6cf65918".into()),
        app_url: None,
        logs_command: "pgship logs deploy-dev-1728149445123".into(),
        report: Some(".deployments/deploy-dev-1728149445123/report.md".into()),
    }
}

fn send(dir: &Path, alert: &Alert, channels: &[Channel]) -> Vec<alert::Delivery> {
    let s = settings(dir);
    rt().block_on(alert::send_to(alert, channels, &s, None))
}

#[test]
fn slack_honours_retry_after_on_429_then_delivers() {
    let slack = Receiver::start(SLACK_PATH, vec![Reply::TooMany(1), Reply::Ok], None);
    let dir = settings_dir(&[var("SLACK_WEBHOOK_URL", &slack.url)], None);
    let d = send(dir.path(), &hostile_alert(), &[Channel::Slack]);
    assert_eq!(d[0].state, State::Delivered, "{}", d[0].describe());
    assert_eq!(d[0].attempts, 2);
    let got = slack.received();
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_millis(950));
    let body = got[1].json();
    assert_eq!(body["text"], "🚀 Deployment Failed");
    assert_eq!(body["attachments"][0]["color"], "#f44336");
    let text = got[1].body.clone();
    assert!(
        !text.contains("<!channel>") && !text.contains("<!everyone>"),
        "{text}"
    );
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
}

#[test]
fn slack_5xx_is_tried_three_times_and_a_silent_one_ends_within_the_bound() {
    let failing = Receiver::start(SLACK_PATH, vec![Reply::ServerError], None);
    let dir = settings_dir(&[var("SLACK_WEBHOOK_URL", &failing.url)], None);
    let d = send(dir.path(), &hostile_alert(), &[Channel::Slack]);
    assert_eq!(d[0].state, State::Failed);
    assert_eq!((d[0].attempts, failing.received().len()), (3, 3));
    assert!(d[0].detail.contains("HTTP 500"), "{}", d[0].detail);
    assert_no_canary("the failure", &d[0].detail);

    let silent = Receiver::start(SLACK_PATH, vec![Reply::Hang], None);
    let dir = settings_dir(&[var("SLACK_WEBHOOK_URL", &silent.url)], None);
    let started = Instant::now();
    let d = send(dir.path(), &hostile_alert(), &[Channel::Slack]);
    let took = started.elapsed();
    assert_eq!(d[0].state, State::Failed);
    assert!(took <= Duration::from_millis(10_500), "{took:?}");
    assert!(!silent.received().is_empty() && silent.received().len() <= 3);
    assert_no_canary("the failure", &d[0].describe());
}

#[test]
fn the_webhook_is_signed_and_a_wrong_or_stale_signature_is_rejected() {
    let hook = Receiver::start(HOOK_PATH, vec![Reply::Ok], Some(HOOK_SECRET));
    let dir = settings_dir(
        &[
            var("ALERT_WEBHOOK_URL", &hook.url),
            var("ALERT_WEBHOOK_SECRET", HOOK_SECRET),
        ],
        None,
    );
    let d = send(dir.path(), &hostile_alert(), &[Channel::Webhook]);
    assert_eq!(d[0].state, State::Delivered, "{}", d[0].describe());
    let got = hook.received();
    let r = &got[0];
    assert_eq!(r.status, 200);
    let sig = r.header("pgship-signature").unwrap();
    assert!(receivers::verify(HOOK_SECRET, Some(sig), &r.body, 300).is_ok());
    assert!(receivers::verify("whsec_other", Some(sig), &r.body, 300).is_err());
    let tampered = r.body.replace("rolled-back", "succeeded");
    assert!(receivers::verify(HOOK_SECRET, Some(sig), &tampered, 300).is_err());
    // A replay of an old, correctly signed body.
    let old = jiff::Timestamp::now().as_second() - 3600;
    let stale = alert::webhook::signature(HOOK_SECRET, old, &r.body);
    assert_eq!(
        receivers::verify(HOOK_SECRET, Some(&stale), &r.body, 300),
        Err("stale signature".to_string())
    );
    let body = r.json();
    assert_eq!(body["status"], "rolled-back");
    assert_eq!(body["deployment_id"], "deploy-dev-1728149445123");
    assert_eq!(body["migrations"][0], "0002_<!channel>\r\nX-Injected: yes");
    assert_no_canary("the webhook's body", &r.body);

    // pgship signing with another secret: the receiver refuses, pgship says so.
    let dir = settings_dir(
        &[
            var("ALERT_WEBHOOK_URL", &hook.url),
            var("ALERT_WEBHOOK_SECRET", "whsec_wrong"),
        ],
        None,
    );
    let d = send(dir.path(), &hostile_alert(), &[Channel::Webhook]);
    assert_eq!(d[0].state, State::Failed);
    assert!(d[0].detail.contains("HTTP 400") && d[0].detail.contains("bad signature"));
    assert_no_canary("the failure", &d[0].describe());
}

#[test]
fn email_over_starttls_and_implicit_tls_with_auth_and_no_injected_header() {
    let Some(smtp) = Smtp::start(SMTP_PASSWORD, false) else {
        return;
    };
    let dir = settings_dir(&smtp.env("ops@x.test, dba@x.test"), None);
    let d = send(dir.path(), &hostile_alert(), &[Channel::Email]);
    assert_eq!(d[0].state, State::Delivered, "{}", d[0].describe());
    let m = &smtp.messages()[0];
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@x.test", "dba@x.test"])
    );
    assert_eq!(m["mail_from"], "pgship@x.test");
    assert_eq!(m["tls"], true);
    assert_eq!(
        m["subject"],
        "[pgship] deployment deploy-dev-1728149445123 to dev: rolled back"
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    let names: Vec<String> = m["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        !names.iter().any(|n| n == "x-injected" || n == "bcc"),
        "{names:?}"
    );
    let text = m["text"].as_str().unwrap();
    assert!(
        text.contains("Status: rolled back")
            && text.contains("Deployment ID: deploy-dev-1728149445123")
    );
    assert!(text.contains("0002_<!channel>"), "{text}");
    let html = m["html"].as_str().unwrap();
    assert!(
        html.contains("0002_&lt;!channel&gt;") && !html.contains("<!channel>"),
        "{html}"
    );
    assert_no_canary("the message", &m.to_string());

    // A wrong password: refused by the server, said without the password.
    let mut vars = smtp.env("ops@x.test");
    vars.retain(|(k, _)| k != "SMTP_PASSWORD");
    vars.push(var("SMTP_PASSWORD", "smtp-canary-password-31-wrong"));
    let wrong = settings_dir(&vars, None);
    let d = send(wrong.path(), &hostile_alert(), &[Channel::Email]);
    assert_eq!(d[0].state, State::Failed, "{}", d[0].describe());
    assert!(d[0].detail.contains("535"), "{}", d[0].detail);
    assert_no_canary("the failure", &d[0].describe());
    // A certificate pgship does not trust: no mail, and why.
    let mut vars = smtp.env("ops@x.test");
    vars.retain(|(k, _)| k != "PGSHIP_SMTP_CA_FILE");
    let untrusted = settings_dir(&vars, None);
    let d = send(untrusted.path(), &hostile_alert(), &[Channel::Email]);
    assert_eq!(
        (d[0].state, d[0].attempts),
        (State::Failed, 1),
        "{}",
        d[0].describe()
    );
    assert!(
        d[0].detail.to_lowercase().contains("certificate"),
        "{}",
        d[0].detail
    );
    assert_eq!(smtp.messages().len(), 1);

    // Implicit TLS (465's rule, on a test port through [alerts] smtp_tls).
    let Some(smtps) = Smtp::start(SMTP_PASSWORD, true) else {
        return;
    };
    let dir = settings_dir(
        &smtps.env("ops@x.test"),
        Some("[alerts]\nsmtp_tls = \"implicit\"\n"),
    );
    let d = send(dir.path(), &hostile_alert(), &[Channel::Email]);
    assert_eq!(d[0].state, State::Delivered, "{}", d[0].describe());
    assert_eq!(smtps.messages()[0]["tls"], true);
}

#[test]
fn alert_test_reports_each_channel_and_exits_by_what_was_delivered() {
    let slack = Receiver::start(SLACK_PATH, vec![Reply::Ok], None);
    let hook = Receiver::start(HOOK_PATH, vec![Reply::Ok], Some(HOOK_SECRET));
    let dir = tempfile::tempdir().unwrap();
    let alert_test = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut c = pgship(dir.path());
        c.args(["alert", "test"]).args(extra);
        for k in [
            "SLACK_WEBHOOK_URL",
            "ALERT_WEBHOOK_URL",
            "SMTP_HOST",
            "ALERT_EMAIL",
        ] {
            c.env_remove(k);
        }
        for (k, v) in vars {
            c.env(k, v);
        }
        run(&mut c)
    };
    let both = [
        ("SLACK_WEBHOOK_URL", slack.url.as_str()),
        ("ALERT_WEBHOOK_URL", hook.url.as_str()),
        ("ALERT_WEBHOOK_SECRET", HOOK_SECRET),
    ];
    let out = alert_test(&both, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("slack: delivered") && out.stdout.contains("webhook: delivered"));
    assert!(
        out.stdout.contains("email: not configured"),
        "{}",
        out.stdout
    );
    assert_eq!(slack.received()[0].json()["text"], "🧪 pgship test alert");
    assert_eq!(hook.received()[0].json()["event"], "test");
    assert_no_canary(
        "alert test's output",
        &format!("{}{}", out.stdout, out.stderr),
    );

    let json = alert_test(&both, &["--channel", "slack", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["state"], "delivered");

    let failing = Receiver::start(SLACK_PATH, vec![Reply::ServerError], None);
    let out = alert_test(&[("SLACK_WEBHOOK_URL", failing.url.as_str())], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("slack: failed after 3 tries"),
        "{}",
        out.stdout
    );
    assert_no_canary(
        "alert test's output",
        &format!("{}{}", out.stdout, out.stderr),
    );

    let none = alert_test(&[], &[]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(
        none.stderr.contains("SLACK_WEBHOOK_URL is not set"),
        "{}",
        none.stderr
    );
    let off = alert_test(&both, &["--channel", "email"]);
    assert_eq!(off.code, 2, "{}", off.stderr);
    let bad = alert_test(&both, &["--channel", "pager"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let plain = alert_test(
        &[("SLACK_WEBHOOK_URL", "http://hooks.example.com/services/x")],
        &[],
    );
    assert_eq!(plain.code, 1, "{}", plain.stdout);
    assert!(
        plain.stdout.contains("SLACK_WEBHOOK_URL must use https"),
        "{}",
        plain.stdout
    );
}

/// The three channels' receivers and the variables pointing pgship at them.
struct Channels {
    slack: Receiver,
    hook: Receiver,
    smtp: Smtp,
    /// pgship gets a password the SMTP server refuses.
    wrong_password: bool,
}

impl Channels {
    fn start(slack: Vec<Reply>, hook: Vec<Reply>, smtp_ok: bool) -> Option<Channels> {
        Some(Channels {
            slack: Receiver::start(SLACK_PATH, slack, None),
            hook: Receiver::start(HOOK_PATH, hook, Some(HOOK_SECRET)),
            smtp: Smtp::start(SMTP_PASSWORD, false)?,
            wrong_password: !smtp_ok,
        })
    }

    fn env(&self, c: &mut std::process::Command) {
        c.env("SLACK_WEBHOOK_URL", &self.slack.url)
            .env("ALERT_WEBHOOK_URL", &self.hook.url)
            .env("ALERT_WEBHOOK_SECRET", HOOK_SECRET);
        for (k, v) in self.smtp.env("ops@x.test") {
            c.env(k, v);
        }
        if self.wrong_password {
            c.env("SMTP_PASSWORD", "smtp-canary-password-31-wrong");
        }
    }
}

/// Run a pgship command with the channels set, watching every process's arguments for the
/// canaries while it runs.
fn run_watched(mut c: std::process::Command, ch: &Channels) -> Out {
    ch.env(&mut c);
    let done = Arc::new(AtomicBool::new(false));
    let seen = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut hits = Vec::new();
            while !done.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    if let Ok(args) = std::fs::read(e.path().join("cmdline")) {
                        let args = String::from_utf8_lossy(&args).replace('\0', " ");
                        if CANARIES.iter().any(|k| args.contains(k)) && !hits.contains(&args) {
                            hits.push(args);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            hits
        })
    };
    let out = run(&mut c);
    done.store(true, Ordering::Relaxed);
    let hits = seen.join().unwrap();
    assert!(
        hits.is_empty(),
        "a process's arguments held a secret: {hits:?}"
    );
    assert_no_canary("pgship's output", &format!("{}{}", out.stdout, out.stderr));
    out
}

fn deploy_cmd(p: &Path, db: &TestDb, tmp: &Path, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["deploy", "dev", "--sandbox", "local"];
    args.extend(extra);
    cmd(p, &db.url, tmp, &args)
}

/// Every artifact of the project and every log row of the target, free of secrets; the
/// deployment's `alerts.json`.
fn artifacts_clean(p: &Path, db: &TestDb, dir: &Path) -> Value {
    for run in runs(p, "") {
        for f in files_under(&run) {
            if let Ok(text) = std::fs::read_to_string(&f) {
                assert_no_canary(&f.display().to_string(), &text);
            }
        }
    }
    let rows = db.scalar(
        "SELECT string_agg(message || metadata::text || coalesce(stack_trace, ''), ' ') FROM pgship.deployment_logs",
    );
    assert_no_canary("pgship.deployment_logs", &rows.unwrap_or_default());
    serde_json::from_str(&std::fs::read_to_string(dir.join("alerts.json")).unwrap()).unwrap()
}

/// The delivery states of an `alerts.json`, in channel order (slack, email, webhook).
fn states(alerts: &Value) -> Vec<String> {
    alerts["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap().to_string())
        .collect()
}

fn webhook_alert(ch: &Channels, n: usize) -> Value {
    let got = ch.hook.received();
    let r = &got[n];
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A fresh database and channels that all deliver.
fn db_and_channels() -> Option<(TestDb, Channels)> {
    let db = TestDb::new()?;
    let ch = Channels::start(vec![Reply::Ok], vec![Reply::Ok], true)?;
    Some((db, ch))
}

#[test]
fn a_successful_deploy_and_its_rollback_reach_every_channel_with_names_escaped() {
    let Some((db, ch)) = db_and_channels() else {
        return;
    };
    let p = applied_project(
        &db,
        &[("002_<!channel>.sql", "CREATE TABLE audit (id int);")],
    );
    let tmp = private_tmp();
    let out = run_watched(deploy_cmd(p.path(), &db, tmp.path(), &[]), &ch);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    let id = id_of(&dir);
    let slack = ch.slack.received()[0].json();
    assert_eq!(slack["text"], "🚀 Deployment Success");
    let fields = &slack["attachments"][0]["fields"];
    assert_eq!(slack["attachments"][0]["color"], "#36a64f");
    assert_eq!(fields[0]["value"], "dev");
    assert_eq!(
        fields[2],
        serde_json::json!({"title": "Deployment ID", "value": id})
    );
    let raw = &ch.slack.received()[0].body;
    assert!(
        raw.contains("002_&lt;!channel&gt;") && !raw.contains("<!channel>"),
        "{raw}"
    );
    let hook = webhook_alert(&ch, 0);
    assert_eq!(
        (hook["event"].as_str(), hook["status"].as_str()),
        (Some("deployment"), Some("succeeded"))
    );
    assert_eq!(hook["migrations"], serde_json::json!(["002_<!channel>"]));
    assert_eq!(hook["logs_command"], format!("pgship logs {id}"));
    let mail = &ch.smtp.messages()[0];
    assert_eq!(
        mail["subject"],
        format!("[pgship] deployment {id} to dev: succeeded")
    );
    let alerts = artifacts_clean(p.path(), &db, &dir);
    let states = states(&alerts);
    assert_eq!(states, ["delivered"; 3]);
    let logged = db.scalar(&format!(
        "SELECT count(*) FROM pgship.deployment_logs WHERE deployment_id = '{id}' AND message LIKE 'alert: %delivered%'"
    ));
    assert_eq!(logged.as_deref(), Some("3"));

    let mut rb = cmd(p.path(), &db.url, tmp.path(), &["rollback", &id]);
    rb.arg("--yes");
    let out = run_watched(rb, &ch);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let slack = ch.slack.received()[1].json();
    assert_eq!(slack["text"], "⏪ Rollback Success");
    let hook = webhook_alert(&ch, 1);
    assert_eq!(hook["event"], "rollback");
    assert_eq!(hook["status"], "rolled-back");
    assert_eq!(hook["rolled_back"], id.as_str());
    let rdir = runs(p.path(), "rollback-").pop().unwrap();
    artifacts_clean(p.path(), &db, &rdir);
    assert_eq!(ch.smtp.messages().len(), 2);
}

#[test]
fn an_aborted_deploy_alerts_by_the_routing_and_failing_channels_change_nothing() {
    let Some(db) = TestDb::new() else { return };
    // Slack never answers, the SMTP password is wrong, the webhook answers 500.
    let Some(ch) = Channels::start(vec![Reply::Hang], vec![Reply::ServerError], false) else {
        return;
    };
    let p = applied_project(&db, &[("002_drop.sql", "DROP TABLE notes;")]);
    let tmp = private_tmp();
    let out = run_watched(deploy_cmd(p.path(), &db, tmp.path(), &[]), &ch);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    let alerts = artifacts_clean(p.path(), &db, &dir);
    assert_eq!(alerts["alert"]["status"], "aborted");
    assert!(!alerts["alert"]["reasons"].as_array().unwrap().is_empty());
    for d in alerts["deliveries"].as_array().unwrap() {
        assert_eq!(d["state"], "failed", "{d}");
        assert!(d["elapsed_ms"].as_u64().unwrap() <= 10_500, "{d}");
    }
    assert!(
        out.stderr.contains("alert: slack: failed"),
        "{}",
        out.stderr
    );
    assert_eq!(
        ch.slack.received()[0].json()["text"],
        "🚀 Deployment Failed"
    );
    assert_eq!(ch.hook.received().len(), 3);
    assert!(ch.smtp.messages().is_empty());

    // [alerts]: dev hears only of what needs a human by email, and nothing by Slack.
    std::fs::write(
        p.path().join("pgship.toml"),
        "[alerts.environments.dev]\nemail = [\"needs-human\"]\nslack = []\n",
    )
    .unwrap();
    let ok = Channels::start(vec![Reply::Ok], vec![Reply::Ok], true).unwrap();
    let out = run_watched(deploy_cmd(p.path(), &db, tmp.path(), &[]), &ok);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    let alerts = artifacts_clean(p.path(), &db, &dir);
    let states = states(&alerts);
    assert_eq!(states, ["not-routed", "not-routed", "delivered"]);
    assert!(ok.slack.received().is_empty() && ok.smtp.messages().is_empty());
    assert_eq!(webhook_alert(&ok, 0)["status"], "aborted");
}

#[test]
fn a_deploy_failing_on_the_target_rolls_back_and_says_which_statement() {
    let Some((db, ch)) = db_and_channels() else {
        return;
    };
    let p = check_project(&db);
    let tmp = private_tmp();
    // After the clone, a row the new constraint rejects reaches the target only.
    let mut c = deploy_cmd(p.path(), &db, tmp.path(), &["--test-cmd", BREAK_CHECK]);
    c.env("TARGET_FOR_TEST", &db.url);
    let out = run_watched(c, &ch);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let hook = webhook_alert(&ch, 0);
    assert_eq!(hook["status"], "rolled-back");
    assert_eq!(hook["failure"]["migration"], "002_check");
    assert_eq!(hook["failure"]["line"], 2);
    assert!(
        hook["failure"]["error"]
            .as_str()
            .unwrap()
            .contains("email_at"),
        "{hook}"
    );
    assert!(hook["rollback"].as_str().is_some(), "{hook}");
    let slack = ch.slack.received()[0].body.clone();
    assert!(
        slack.contains("Failing statement") && slack.contains("#f44336"),
        "{slack}"
    );
    let mail = &ch.smtp.messages()[0];
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("Failing statement: 002_check"),
        "{mail}"
    );
    let dir = runs(p.path(), "deploy-").pop().unwrap();
    artifacts_clean(p.path(), &db, &dir);
}

#[test]
fn a_deploy_the_guard_will_not_undo_needs_a_human_with_the_mention() {
    let Some((db, ch)) = db_and_channels() else {
        return;
    };
    let p = guarded_project(&db);
    std::fs::write(
        p.path().join("pgship.toml"),
        "[alerts.environments.dev]\nmention = \"<!here>\"\n",
    )
    .unwrap();
    // A write lands on the target between the apply and the rollback.
    let writer = write_after_apply(db.url.clone());
    let tmp = private_tmp();
    let out = run_watched(deploy_cmd(p.path(), &db, tmp.path(), &[]), &ch);
    assert!(writer.join().unwrap());
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let hook = webhook_alert(&ch, 0);
    assert_eq!(hook["status"], "needs-human");
    assert!(
        hook["rollback"]
            .as_str()
            .unwrap()
            .contains("data-loss guard"),
        "{hook}"
    );
    let slack = ch.slack.received()[0].json();
    let head = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        head.starts_with("<!here> ") && head.contains("needs a human"),
        "{head}"
    );
    let mail = &ch.smtp.messages()[0];
    assert!(mail["subject"].as_str().unwrap().ends_with("needs a human"));
}

#[test]
fn email_to_a_closed_port_or_a_silent_server_fails_within_the_bound() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = receivers::free_port();
    for port in [closed, silent.local_addr().unwrap().port()] {
        let dir = settings_dir(
            &[
                var("SMTP_HOST", "127.0.0.1"),
                var("SMTP_PORT", &port.to_string()),
                var("ALERT_EMAIL", "ops@x.test"),
                var("ALERT_EMAIL_FROM", "pgship@x.test"),
                var("SMTP_USER", "alerts@x.test"),
                var("SMTP_PASSWORD", SMTP_PASSWORD),
            ],
            None,
        );
        let started = Instant::now();
        let d = send(dir.path(), &hostile_alert(), &[Channel::Email]);
        let took = started.elapsed();
        assert_eq!(d[0].state, State::Failed, "{}", d[0].describe());
        assert!(took <= Duration::from_millis(10_500), "{took:?}");
        assert!(d[0].attempts >= 2, "{}", d[0].describe());
        assert_no_canary("the failure", &d[0].describe());
    }
}
