//! `[app]` and the environment, resolved for one deployment: which provider, which branch on
//! which remote, where the app answers its health check, and the timeouts.

use std::time::Duration;

use crate::config::Settings;
use crate::db::url::Secret;

/// `[app] provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Database only.
    None,
    /// Vercel's git integration: the push makes Vercel build.
    Vercel,
    /// A deploy hook URL (`VERCEL_DEPLOY_HOOK_URL`): a POST starts the build.
    Hook,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::None => "none",
            ProviderKind::Vercel => "vercel",
            ProviderKind::Hook => "hook",
        }
    }
}

/// `[app] git_rollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GitRollback {
    /// A revert commit of the merge, pushed (history kept).
    Revert,
    /// The branch reset to its commit before the merge, pushed with a lease on the merge.
    Reset,
}

/// The code half's settings for one environment.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub provider: ProviderKind,
    /// The environment's name (`dev`).
    pub environment: String,
    /// The environment's git branch (`develop`).
    pub branch: String,
    pub remote: String,
    /// Vercel's production target serves this environment.
    pub production: bool,
    /// The variable holding the app's URL (`DEV_URL`), and its value when set.
    pub url_var: String,
    pub app_url: Option<Secret>,
    pub health_path: String,
    pub commit_field: Option<String>,
    pub deploy_timeout: Duration,
    pub health_timeout: Duration,
    pub git_rollback: GitRollback,
}

fn duration(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(v) => crate::util::parse_duration(v).map_err(|e| format!("[app] {key}: {e}")),
    }
}

impl AppSettings {
    /// `[app]` for the environment `env`. A target that is not a named environment (`local`, a
    /// URL) has no branch: its code half is off whatever the provider (`provider` is `None`).
    pub fn resolve(settings: &Settings, env: &str) -> Result<AppSettings, String> {
        let f = &settings.file.app;
        let provider = match f.provider.as_deref() {
            None | Some("none") => ProviderKind::None,
            Some("vercel") => ProviderKind::Vercel,
            Some("hook") => ProviderKind::Hook,
            Some(other) => {
                return Err(format!(
                    "[app] provider = \"{other}\": expected none, vercel or hook"
                ));
            }
        };
        let git_rollback = match f.git_rollback.as_deref() {
            None | Some("revert") => GitRollback::Revert,
            Some("reset") => GitRollback::Reset,
            Some(other) => {
                return Err(format!(
                    "[app] git_rollback = \"{other}\": expected revert or reset"
                ));
            }
        };
        let health_path = f.health_path.clone().unwrap_or("/api/health".into());
        if !health_path.starts_with('/') {
            return Err(format!(
                "[app] health_path = \"{health_path}\": must start with /"
            ));
        }
        let environment = settings.environments.get(env);
        let url_var = environment.map_or_else(
            || format!("{}_URL", crate::config::env_prefix(env)),
            |e| e.app_url_var.clone(),
        );
        let app_url = settings
            .env
            .get(&url_var)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| Secret::new(v.trim_end_matches('/')));
        Ok(AppSettings {
            provider: if environment.is_some() {
                provider
            } else {
                ProviderKind::None
            },
            environment: env.to_string(),
            branch: environment.map_or_else(String::new, |e| e.branch.clone()),
            remote: f.remote.clone().unwrap_or("origin".into()),
            production: environment.is_some_and(|e| e.production),
            url_var,
            app_url,
            health_path,
            commit_field: f.commit_field.clone(),
            deploy_timeout: duration(
                "deploy_timeout",
                f.deploy_timeout.as_deref(),
                Duration::from_secs(600),
            )?,
            health_timeout: duration(
                "health_timeout",
                f.health_timeout.as_deref(),
                Duration::from_secs(60),
            )?,
            git_rollback,
        })
    }

    /// `<ENV>_URL` + the health path, when `<ENV>_URL` is set. A query on `<ENV>_URL` (Vercel's
    /// protection-bypass token) stays a query: the path goes before it.
    pub fn health_url(&self) -> Option<Secret> {
        self.app_url.as_ref().map(|u| {
            let u = u.expose();
            let (base, query) = u.split_at(u.find(['?', '#']).unwrap_or(u.len()));
            Secret::new(format!(
                "{}{}{query}",
                base.trim_end_matches('/'),
                self.health_path
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, dotenv: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pgship.toml"), toml).unwrap();
        std::fs::write(dir.path().join(".env"), dotenv).unwrap();
        let s = Settings::load(dir.path(), None).unwrap();
        (dir, s)
    }

    #[test]
    fn defaults_and_environment() {
        let (_d, s) = load(
            "[app]\nprovider = \"vercel\"\n",
            "DEV_URL=https://dev.example.com/\n",
        );
        let a = AppSettings::resolve(&s, "dev").unwrap();
        assert_eq!(a.provider, ProviderKind::Vercel);
        assert_eq!(
            (a.branch.as_str(), a.remote.as_str()),
            ("develop", "origin")
        );
        assert!(!a.production);
        assert_eq!(
            a.health_url().unwrap().expose(),
            "https://dev.example.com/api/health"
        );
        assert_eq!(a.deploy_timeout, Duration::from_secs(600));
        assert_eq!(a.git_rollback, GitRollback::Revert);
        let p = AppSettings::resolve(&s, "prod").unwrap();
        assert!(p.production && p.branch == "main" && p.health_url().is_none());
        // A URL target has no branch: no code half.
        let u = AppSettings::resolve(&s, "url").unwrap();
        assert_eq!(u.provider, ProviderKind::None);
    }

    #[test]
    fn the_health_path_goes_before_the_app_urls_query() {
        // A protection-bypass token lives in the query: the path must not land inside it.
        let (_d, s) = load(
            "",
            "DEV_URL=https://dev.example.com/?x-vercel-protection-bypass=BYPASS\n",
        );
        let a = AppSettings::resolve(&s, "dev").unwrap();
        assert_eq!(
            a.health_url().unwrap().expose(),
            "https://dev.example.com/api/health?x-vercel-protection-bypass=BYPASS"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (toml, key) in [
            ("[app]\nprovider = \"netlify\"\n", "provider"),
            ("[app]\ngit_rollback = \"force\"\n", "git_rollback"),
            ("[app]\nhealth_timeout = \"soon\"\n", "health_timeout"),
            ("[app]\nhealth_path = \"api/health\"\n", "health_path"),
        ] {
            let (_d, s) = load(toml, "");
            let e = AppSettings::resolve(&s, "dev").unwrap_err();
            assert!(e.contains(&format!("[app] {key}")), "{e}");
        }
    }
}
