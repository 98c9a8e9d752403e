//! Configuration: `pgship.toml`, `.env.local`, `.env` and the process environment, resolved
//! into typed settings and targets.
//!
//! Precedence, lowest first: built-in defaults, `pgship.toml`, the environment (`.env`, then
//! `.env.local`, then the process environment, which wins), then command-line flags (applied
//! by the caller). Nothing here opens a connection, and nothing here prints a URL: target URLs
//! are secrets until `db::url` has parsed and redacted them.

mod env;
mod file;

pub use env::Env;
pub use file::{
    ALERT_EVENTS, AlertRouteFile, AlertsFile, ApplyFile, CompareFile, ConfigFile, EnvironmentFile,
    LintFile, MigrationsFile, PolicyFile, RehearsalFile, SandboxFile,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A configuration problem. Every variant names the file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Target(String),
}

/// One named environment (`dev`, `uat`, `prod`, or declared in `pgship.toml`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Environment {
    pub name: String,
    /// The git branch the environment deploys from.
    pub branch: String,
    /// The variable holding its database URL (`<ENV>_POSTGRES_URL`).
    pub url_var: String,
    /// The variable holding its app URL (`<ENV>_URL`).
    pub app_url_var: String,
    /// Protected environments ask for confirmation on a terminal and need `--yes` otherwise.
    pub protected: bool,
    /// The app's production is served from this environment (Vercel's `production` target).
    pub production: bool,
}

/// Everything resolved from the project folder.
#[derive(Debug)]
pub struct Settings {
    pub project_dir: PathBuf,
    /// The `pgship.toml` that was read, if any.
    pub config_path: Option<PathBuf>,
    pub file: ConfigFile,
    pub env: Env,
    pub environments: BTreeMap<String, Environment>,
}

/// Where a target's URL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOrigin {
    Environment(String),
    Local,
    Url,
}

/// A resolved `<target>` argument. `url` is a secret: parse it with `db::url::DbUrl` and
/// show only the redacted form.
#[derive(Clone)]
pub struct Target {
    /// `dev`, `local`, or `url` for a literal URL.
    pub name: String,
    pub origin: TargetOrigin,
    pub url: String,
    pub protected: bool,
    /// The variable the URL was read from, for error messages.
    pub var: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("url", &"<secret>")
            .field("protected", &self.protected)
            .finish()
    }
}

impl Settings {
    /// Load configuration for `project_dir`. `config` overrides the `pgship.toml` location
    /// (and must then exist).
    pub fn load(project_dir: &Path, config: Option<&Path>) -> Result<Settings, ConfigError> {
        let (config_path, file) = match config {
            Some(path) => {
                let path = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    project_dir.join(path)
                };
                let file = file::read(&path)?;
                (Some(path), file)
            }
            None => {
                let path = project_dir.join("pgship.toml");
                if path.exists() {
                    let file = file::read(&path)?;
                    (Some(path), file)
                } else {
                    (None, ConfigFile::default())
                }
            }
        };
        let env = Env::load(project_dir)?;
        let environments = resolve_environments(&file);
        Ok(Settings {
            project_dir: project_dir.to_path_buf(),
            config_path,
            file,
            env,
            environments,
        })
    }

    /// Resolve a `<target>` argument: an environment name, `local`, or a URL.
    pub fn target(&self, arg: &str) -> Result<Target, ConfigError> {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            return Ok(Target {
                name: "url".into(),
                origin: TargetOrigin::Url,
                url: arg.to_string(),
                protected: false,
                var: None,
            });
        }
        if arg == "local" {
            for var in ["LOCAL_POSTGRES_URL", "DATABASE_URL"] {
                if let Some(url) = self.env.get(var).filter(|v| !v.trim().is_empty()) {
                    return Ok(Target {
                        name: "local".into(),
                        origin: TargetOrigin::Local,
                        url: url.to_string(),
                        protected: false,
                        var: Some(var.into()),
                    });
                }
            }
            return Err(ConfigError::Target(
                "target `local`: neither LOCAL_POSTGRES_URL nor DATABASE_URL is set (in the environment, .env.local or .env)".into(),
            ));
        }
        let Some(env) = self.environments.get(arg) else {
            let names: Vec<&str> = self.environments.keys().map(String::as_str).collect();
            return Err(ConfigError::Target(format!(
                "unknown target `{arg}`: expected an environment ({}), `local`, or a postgres:// URL",
                names.join(", ")
            )));
        };
        let url = self
            .env
            .get(&env.url_var)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                ConfigError::Target(format!(
                    "environment `{}`: {} is not set (in the environment, .env.local or .env)",
                    env.name, env.url_var
                ))
            })?;
        Ok(Target {
            name: env.name.clone(),
            origin: TargetOrigin::Environment(env.name.clone()),
            url: url.to_string(),
            protected: env.protected,
            var: Some(env.url_var.clone()),
        })
    }
}

/// The variable prefix for an environment name: `dev` -> `DEV`, `pre-prod` -> `PRE_PROD`.
pub fn env_prefix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn resolve_environments(file: &ConfigFile) -> BTreeMap<String, Environment> {
    let defaults = [
        ("dev", "develop", false),
        ("uat", "uat", false),
        ("prod", "main", true),
    ];
    let mut out = BTreeMap::new();
    for (name, branch, protected) in defaults {
        out.insert(
            name.to_string(),
            default_environment(name, branch, protected),
        );
    }
    for (name, decl) in &file.environments {
        let base = out
            .remove(name)
            .unwrap_or_else(|| default_environment(name, name, false));
        out.insert(
            name.clone(),
            Environment {
                name: name.clone(),
                branch: decl.branch.clone().unwrap_or(base.branch),
                url_var: decl.url_env.clone().unwrap_or(base.url_var),
                app_url_var: decl.app_url_env.clone().unwrap_or(base.app_url_var),
                protected: decl.protected.unwrap_or(base.protected),
                production: decl.production.unwrap_or(base.production),
            },
        );
    }
    out
}

fn default_environment(name: &str, branch: &str, protected: bool) -> Environment {
    let prefix = env_prefix(name);
    Environment {
        name: name.to_string(),
        branch: branch.to_string(),
        url_var: format!("{prefix}_POSTGRES_URL"),
        app_url_var: format!("{prefix}_URL"),
        protected,
        production: name == "prod",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str, dotenv: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        if !toml.is_empty() {
            std::fs::write(dir.path().join("pgship.toml"), toml).unwrap();
        }
        if !dotenv.is_empty() {
            std::fs::write(dir.path().join(".env"), dotenv).unwrap();
        }
        let s = Settings::load(dir.path(), None).unwrap();
        (dir, s)
    }

    #[test]
    fn default_environments() {
        let (_d, s) = settings("", "");
        let prod = &s.environments["prod"];
        assert_eq!(prod.branch, "main");
        assert!(prod.protected);
        assert_eq!(prod.url_var, "PROD_POSTGRES_URL");
        assert_eq!(s.environments["dev"].branch, "develop");
        assert_eq!(s.environments["uat"].app_url_var, "UAT_URL");
        assert!(!s.environments["dev"].protected);
    }

    #[test]
    fn declared_environment_and_override() {
        let toml = "[environments.pre-prod]\nbranch = \"release\"\nprotected = true\n\n[environments.dev]\nprotected = true\n";
        let (_d, s) = settings(toml, "PRE_PROD_POSTGRES_URL=postgres://u@h/db\n");
        let e = &s.environments["pre-prod"];
        assert_eq!(e.url_var, "PRE_PROD_POSTGRES_URL");
        assert_eq!(e.branch, "release");
        assert!(s.environments["dev"].protected);
        let t = s.target("pre-prod").unwrap();
        assert_eq!(t.url, "postgres://u@h/db");
        assert!(t.protected);
        assert!(!format!("{t:?}").contains("postgres://"));
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pgship.toml"),
            "[apply]\nlock_timeot = \"2s\"\n",
        )
        .unwrap();
        let err = Settings::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("pgship.toml"), "{err}");
        assert!(err.contains("lock_timeot"), "{err}");
    }

    #[test]
    fn targets() {
        let (_d, s) = settings("", "DATABASE_URL=postgres://a@b/c\n");
        assert_eq!(s.target("local").unwrap().url, "postgres://a@b/c");
        assert_eq!(
            s.target("postgresql://x@y/z").unwrap().origin,
            TargetOrigin::Url
        );
        let err = s.target("staging").unwrap_err().to_string();
        assert!(
            err.contains("staging") && err.contains("dev, prod, uat"),
            "{err}"
        );
        let err = s.target("uat").unwrap_err().to_string();
        assert!(err.contains("UAT_POSTGRES_URL"), "{err}");
    }
}
