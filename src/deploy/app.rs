//! The code side of a deployment, behind one seam: after the database is applied the app is
//! deployed, POST_DEPLOY_VALIDATION asks it for its health, and a rollback undoes it first (so
//! the app stops running code that needs the new schema before the schema goes back).
//!
//! `[app] provider = "none"` (the default) is database-only: teams whose CI deploys the app run
//! pgship for the database alone, and every step here is empty by design. Other providers
//! (git merge and push, Vercel, deploy hooks) are refused by name until they exist.

use crate::error::{Error, Result};
use crate::project::Project;

use super::log::Log;

/// The app provider of `[app] provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Database only.
    None,
}

impl App {
    pub fn from_project(project: &Project) -> Result<App> {
        match project.settings.file.app.provider.as_deref() {
            None | Some("none") => Ok(App::None),
            Some(p @ ("vercel" | "hook")) => Err(Error::usage(format!(
                "[app] provider = \"{p}\": this version of pgship deploys the database only"
            ))
            .with_hint("set [app] provider = \"none\" and let your CI deploy the app")),
            Some(other) => Err(Error::usage(format!(
                "[app] provider = \"{other}\": expected none, vercel or hook"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            App::None => "none",
        }
    }

    /// Deploy the code after the database. Returns what was deployed (a commit), if anything.
    pub async fn deploy(&self, _log: &mut Log) -> std::result::Result<Option<String>, String> {
        match self {
            App::None => Ok(None),
        }
    }

    /// The app's health after the deploy.
    pub async fn check(&self, _log: &mut Log) -> std::result::Result<(), String> {
        match self {
            App::None => Ok(()),
        }
    }

    /// Put the code back as it was, before the database is rolled back.
    pub async fn roll_back(&self, _log: &mut Log) -> std::result::Result<(), String> {
        match self {
            App::None => Ok(()),
        }
    }
}
