//! The `pgship.toml` file: every key optional, unknown keys refused with the key's name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub migrations: MigrationsFile,
    #[serde(default)]
    pub apply: ApplyFile,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentFile>,
    #[serde(default)]
    pub policy: PolicyFile,
    #[serde(default)]
    pub compare: CompareFile,
    #[serde(default)]
    pub lint: LintFile,
    #[serde(default)]
    pub sandbox: SandboxFile,
    #[serde(default)]
    pub rehearsal: RehearsalFile,
    #[serde(default)]
    pub backup: BackupFile,
    #[serde(default)]
    pub deploy: DeployFile,
    #[serde(default)]
    pub app: AppFile,
    #[serde(default)]
    pub alerts: AlertsFile,
}

/// The events `[alerts]` routes: the four outcomes, `failures` (every one but `succeeded`) and
/// `all`.
pub const ALERT_EVENTS: [&str; 6] = [
    "all",
    "failures",
    "succeeded",
    "aborted",
    "rolled-back",
    "needs-human",
];

/// `[alerts]`: which events go to which channels. With no section every event goes to every
/// configured channel. `[alerts.environments.<env>]` overrides the keys for one environment.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    /// Events sent to every channel (default `["all"]`); words of [`ALERT_EVENTS`].
    pub events: Option<Vec<String>>,
    /// Per channel, overriding `events`.
    pub slack: Option<Vec<String>>,
    pub email: Option<Vec<String>>,
    pub webhook: Option<Vec<String>>,
    /// A Slack mention put on failures.
    pub mention: Option<String>,
    /// `auto` (default: implicit TLS on port 465, STARTTLS otherwise), `starttls` or
    /// `implicit`.
    pub smtp_tls: Option<String>,
    #[serde(default)]
    pub environments: BTreeMap<String, AlertRouteFile>,
}

/// The routing keys of `[alerts]` and `[alerts.environments.<env>]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRouteFile {
    /// Events sent to every channel (default `["all"]`); words of [`ALERT_EVENTS`].
    pub events: Option<Vec<String>>,
    /// Per channel, overriding `events`.
    pub slack: Option<Vec<String>>,
    pub email: Option<Vec<String>>,
    pub webhook: Option<Vec<String>>,
    /// A Slack mention put on failures (`<!here>`, `<!channel>`, `<@U123>`,
    /// `<!subteam^S123>`).
    pub mention: Option<String>,
}

impl AlertsFile {
    /// The section's own routing keys (the defaults of every environment).
    pub fn route(&self) -> AlertRouteFile {
        AlertRouteFile {
            events: self.events.clone(),
            slack: self.slack.clone(),
            email: self.email.clone(),
            webhook: self.webhook.clone(),
            mention: self.mention.clone(),
        }
    }

    /// Every event word and mention known; `smtp_tls` one of its three values.
    pub fn validate(&self) -> Result<(), String> {
        self.route().validate("[alerts]")?;
        for (env, r) in &self.environments {
            r.validate(&format!("[alerts.environments.{env}]"))?;
        }
        match self.smtp_tls.as_deref() {
            None | Some("auto" | "starttls" | "implicit") => Ok(()),
            Some(other) => Err(format!(
                "[alerts] smtp_tls = \"{other}\": expected auto, starttls or implicit"
            )),
        }
    }
}

impl AlertRouteFile {
    fn validate(&self, table: &str) -> Result<(), String> {
        let lists = [
            ("events", &self.events),
            ("slack", &self.slack),
            ("email", &self.email),
            ("webhook", &self.webhook),
        ];
        for (key, list) in lists {
            for word in list.iter().flatten() {
                if !ALERT_EVENTS.contains(&word.as_str()) {
                    return Err(format!(
                        "{table} {key}: unknown event `{word}` (expected {})",
                        ALERT_EVENTS.join(", ")
                    ));
                }
            }
        }
        match &self.mention {
            Some(m) if !valid_mention(m) => Err(format!(
                "{table} mention = \"{m}\": expected a Slack mention such as <!here>, <!channel>, <@U123> or <!subteam^S123>"
            )),
            _ => Ok(()),
        }
    }
}

fn valid_mention(m: &str) -> bool {
    let Some(inner) = m.strip_prefix('<').and_then(|m| m.strip_suffix('>')) else {
        return false;
    };
    let id = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    match inner {
        "!here" | "!channel" | "!everyone" => true,
        _ => {
            inner.strip_prefix('@').is_some_and(id)
                || inner.strip_prefix("!subteam^").is_some_and(id)
        }
    }
}

/// `[backup]`: how `deploy` backs the target up before it changes it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// `auto` (default), `full`, `touched` or `neon`.
    pub strategy: Option<String>,
    /// Also restore the dump into a throwaway local cluster before DEPLOY may start.
    pub trial_restore: Option<bool>,
    /// How long pg_dump waits for a lock on the target before the backup gives up (`5s`).
    pub lock_wait_timeout: Option<String>,
}

/// `[deploy]`: the pipeline around the apply.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployFile {
    /// Folder of smoke queries run on the target after the apply, each must return no rows
    /// (default `pgship/smoke`).
    pub smoke_dir: Option<String>,
}

/// `[app]`: the application half of a deploy.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    /// `none` (default: pgship deploys the database only), `vercel` (the push makes Vercel
    /// build) or `hook` (a POST to a deploy hook starts the build).
    pub provider: Option<String>,
    /// The git remote the environment branches live on (`origin`).
    pub remote: Option<String>,
    /// Appended to `<ENV>_URL` for the health check (`/api/health`).
    pub health_path: Option<String>,
    /// The JSON field of the health answer naming the commit it runs (default: `commit`,
    /// `sha` or `gitCommit`).
    pub commit_field: Option<String>,
    /// How long the app's new deployment may take to be ready (`10m`).
    pub deploy_timeout: Option<String>,
    /// How long the health check may take to answer 2xx from the new code (`60s`).
    pub health_timeout: Option<String>,
    /// How a code rollback undoes the merge: `revert` (default: a revert commit, history kept)
    /// or `reset` (the branch reset to its commit before, pushed with a lease).
    pub git_rollback: Option<String>,
}

/// `[sandbox]`: how sandboxes are made.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    /// `auto` (default), `local`, `server`, `template` or `neon`.
    pub strategy: Option<String>,
    /// Allow `template` (CREATE DATABASE ... TEMPLATE on the target's own server).
    pub allow_template: Option<bool>,
    /// How long pg_dump waits for a lock on the target before the clone gives up (`5s`).
    pub lock_wait_timeout: Option<String>,
    /// `sandbox gc` removes the Neon branches pgship created that are older than this (`6h`),
    /// unless this machine's registry keeps them or ties them to a live run.
    pub neon_gc_age: Option<String>,
}

/// `[lint]`: which rules run and what fails the lint.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintFile {
    /// Rules (IDs or names) to turn on in addition to the defaults (opt-in rules).
    #[serde(default)]
    pub enable: Vec<String>,
    /// Rules to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// `error` (default), `warning` or `info`.
    pub fail_on: Option<String>,
    /// The PostgreSQL major version to lint for when not linting against a database.
    pub pg_version: Option<u32>,
}

/// `[policy]`: what each kind of finding or breaking change does.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `[policy.breaking]`: breaking-change kind (`table-removed`, `column-removed`,
    /// `column-type-changed`, `enum-value-removed`, `column-nullability-changed`,
    /// `table-renamed`, `column-renamed`) -> `abort`, `warn` or `allow`.
    #[serde(default)]
    pub breaking: BTreeMap<String, String>,
    /// A statement holding ACCESS EXCLUSIVE on a non-empty table longer than this in
    /// rehearsal triggers `long_lock` (default 1000).
    pub max_exclusive_lock_ms: Option<u64>,
    /// `abort` (default), `warn` or `allow`, for each kind of rehearsal finding.
    pub long_lock: Option<String>,
    pub lint_error: Option<String>,
    /// Default `warn`.
    pub lint_warning: Option<String>,
    /// A table lost rows and no DELETE or TRUNCATE in the migrations explains it.
    pub rows_lost: Option<String>,
    /// Existing rows that a new or NOT VALID constraint rejects (default `warn`).
    pub violations: Option<String>,
    pub rollback_unproven: Option<String>,
}

/// `[rehearsal]`: what `plan` (and `deploy`) check on the sandbox.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RehearsalFile {
    /// Folder of check queries, each must return no rows (default `pgship/checks`).
    pub checks_dir: Option<String>,
    /// The app's tests, run with DATABASE_URL pointing at the sandbox (`--test-cmd`).
    pub test_cmd: Option<String>,
    /// How long the tests may run (default: no limit).
    pub test_timeout: Option<String>,
}

/// `[compare]`: defaults of `pgship compare`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareFile {
    /// Tables larger than this get no content hash with `--data` (e.g. `256MB`).
    pub data_max_size: Option<String>,
    /// `--data` gives up on a locked table after this (default `5s`).
    pub lock_wait_timeout: Option<String>,
}

/// `[migrations]`: where the migrations are and how their state is kept.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsFile {
    /// The folder, relative to the project. Default: drizzle.config.ts's `out`, else
    /// `drizzle`, else `migrations`.
    pub dir: Option<String>,
    /// `auto` (default), `drizzle`, `drizzle-v1` or `sql`.
    pub kind: Option<String>,
    /// Drizzle's state schema and table (default: from drizzle.config.ts, else drizzle's).
    pub drizzle_schema: Option<String>,
    pub drizzle_table: Option<String>,
}

/// `[apply]`: how migrations are applied.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyFile {
    /// `all` (default) or `per-migration`.
    pub tx_mode: Option<String>,
    /// At least 1ms (0 would wait forever); above 60s needs `allow_long_lock_timeout`.
    pub lock_timeout: Option<String>,
    /// Accept a `lock_timeout` above 60s.
    pub allow_long_lock_timeout: Option<bool>,
    pub statement_timeout: Option<String>,
    pub lock_retries: Option<u32>,
    pub lock_wait: Option<String>,
    pub connect_timeout: Option<String>,
}

/// `[environments.<name>]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    pub branch: Option<String>,
    pub url_env: Option<String>,
    pub app_url_env: Option<String>,
    pub protected: Option<bool>,
    /// The app's production (Vercel's `production` target) is served from this environment
    /// (default: true for `prod`).
    pub production: Option<bool>,
}

pub(super) fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = fs_err::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })?;
    file.alerts
        .validate()
        .map_err(|message| ConfigError::File {
            path: path.to_path_buf(),
            message,
        })?;
    Ok(file)
}
