//! `[alerts]` routing: which events go to which channel, per environment, and the Slack
//! mention on failures. For a channel in an environment the first of these that is set wins:
//! `[alerts.environments.<env>] <channel>`, its `events`, `[alerts] <channel>`, its `events`;
//! with none set, every event goes (so no `[alerts]` section sends everything everywhere).
//! Event words: `all`, `failures` (everything but `succeeded`), `succeeded`, `aborted`,
//! `rolled-back`, `needs-human`.

use super::{Alert, Channel, Status};
use crate::config::{AlertRouteFile, AlertsFile};

/// The routing of one environment.
pub struct Routes {
    env: Option<AlertRouteFile>,
    base: AlertRouteFile,
}

impl Routes {
    pub fn new(file: &AlertsFile, environment: &str) -> Routes {
        Routes {
            env: file.environments.get(environment).cloned(),
            base: file.route(),
        }
    }

    /// Whether `channel` gets an alert of `status`.
    pub fn takes(&self, channel: Channel, status: Status) -> bool {
        let pick = |r: &AlertRouteFile| -> Option<Vec<String>> {
            let own = match channel {
                Channel::Slack => &r.slack,
                Channel::Email => &r.email,
                Channel::Webhook => &r.webhook,
            };
            own.clone().or_else(|| r.events.clone())
        };
        let words = self
            .env
            .as_ref()
            .and_then(pick)
            .or_else(|| pick(&self.base));
        match words {
            None => true,
            Some(words) => words.iter().any(|w| matches(w, status)),
        }
    }

    /// The mention for `alert`: only on a failure.
    pub fn mention(&self, alert: &Alert) -> Option<&str> {
        if !alert.failed() {
            return None;
        }
        self.env
            .as_ref()
            .and_then(|e| e.mention.as_deref())
            .or(self.base.mention.as_deref())
    }
}

fn matches(word: &str, status: Status) -> bool {
    match word {
        "all" => true,
        "failures" => status != Status::Succeeded,
        w => w == status.key(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> AlertsFile {
        #[derive(serde::Deserialize)]
        struct F {
            alerts: AlertsFile,
        }
        let f: F = toml::from_str(toml_text).unwrap();
        f.alerts.validate().unwrap();
        f.alerts
    }

    #[test]
    fn no_section_sends_everything_everywhere() {
        let r = Routes::new(&AlertsFile::default(), "dev");
        for c in Channel::ALL {
            for s in [Status::Succeeded, Status::NeedsHuman] {
                assert!(r.takes(c, s));
            }
        }
    }

    #[test]
    fn failures_only_for_dev_everything_for_prod_with_a_mention() {
        let f = file(
            "[alerts]\nevents = [\"failures\"]\nwebhook = [\"needs-human\"]\n\
             [alerts.environments.prod]\nevents = [\"all\"]\nmention = \"<!here>\"\n",
        );
        let dev = Routes::new(&f, "dev");
        assert!(!dev.takes(Channel::Slack, Status::Succeeded));
        assert!(dev.takes(Channel::Email, Status::Aborted));
        assert!(!dev.takes(Channel::Webhook, Status::RolledBack));
        assert!(dev.takes(Channel::Webhook, Status::NeedsHuman));
        let prod = Routes::new(&f, "prod");
        assert!(prod.takes(Channel::Slack, Status::Succeeded));
        assert!(prod.takes(Channel::Webhook, Status::Succeeded));
        let mut a = crate::alert::tests::sample(Status::NeedsHuman);
        assert_eq!(prod.mention(&a), Some("<!here>"));
        assert_eq!(dev.mention(&a), None);
        a.status = Status::Succeeded;
        assert_eq!(prod.mention(&a), None);
    }

    #[test]
    fn unknown_words_and_mentions_are_refused_by_name() {
        #[derive(Debug, serde::Deserialize)]
        struct F {
            alerts: AlertsFile,
        }
        let bad = |t: &str| {
            let f: F = toml::from_str(t).unwrap();
            f.alerts.validate().unwrap_err()
        };
        let e = bad("[alerts.environments.dev]\nslack = [\"failure\"]\n");
        assert!(
            e.contains("[alerts.environments.dev] slack") && e.contains("`failure`"),
            "{e}"
        );
        let e = bad("[alerts]\nmention = \"@here\"\n");
        assert!(e.contains("mention"), "{e}");
        let e = bad("[alerts]\nsmtp_tls = \"ssl\"\n");
        assert!(e.contains("smtp_tls"), "{e}");
        let unknown: Result<F, _> = toml::from_str("[alerts]\nchannel = [\"x\"]\n");
        assert!(unknown.unwrap_err().to_string().contains("channel"));
    }
}
