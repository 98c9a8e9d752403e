//! The demo's simulated Vercel and app, started on loopback ports for the length of the demo,
//! and the rule that keeps the demo on them: the variables that point `deploy` at Vercel and at
//! the app are written only into the demo project's `.env`, and a different value from the
//! process environment (which wins over `.env`) is refused, as [`super::DEV_VAR`] is: the
//! demo never talks to a real Vercel project or app.

use super::app_sim::{FakeApp, Health};
use super::project::DemoRepo;
use super::vercel_sim::{FakeVercel, PROJECT_ID, Script, TOKEN};
use crate::config::Settings;
use crate::error::{Error, Result};

/// The file in the app whose code fails when it starts (step 5's feature adds it): while the
/// simulated Vercel serves a commit holding it, the app's health check answers 500.
pub const CRASHING_FILE: &str = "src/app/products/[sku]/helpful-votes.tsx";

/// Variables that would send the deploy elsewhere and that the demo does not set.
const FOREIGN: [&str; 2] = ["VERCEL_TEAM_ID", "VERCEL_DEPLOY_HOOK_URL"];

pub struct Services {
    pub vercel: FakeVercel,
    pub app: FakeApp,
    /// The deployment serving `develop` before the story starts.
    pub initial_deployment: String,
}

impl Services {
    /// Vercel's git integration on the demo's `origin` (pushes to `develop` are production
    /// deployments, built at once), a READY deployment of `develop` as it is, and the app
    /// answering from whatever Vercel serves.
    pub fn start(repo: &DemoRepo) -> Result<Services> {
        let failed =
            |e: std::io::Error| Error::usage(format!("starting the simulated Vercel: {e}"));
        let vercel = FakeVercel::start().map_err(failed)?;
        vercel.with_production_branch("develop");
        vercel.script(Script {
            appear_after_lists: 0,
            polls: 0,
            end: "READY",
        });
        let initial_deployment = vercel.add_ready(&repo.tip("develop")?, "develop", true);
        vercel.watch(&repo.origin, true);
        let app = FakeApp::start(Health::CrashesWith {
            vercel: vercel.clone(),
            file: CRASHING_FILE.into(),
        })
        .map_err(failed)?;
        Ok(Services {
            vercel,
            app,
            initial_deployment,
        })
    }

    /// The variables `deploy dev` reads for the code half, all pointing here.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DEV_URL", self.app.url()),
            ("VERCEL_API_URL", self.vercel.api_url()),
            ("VERCEL_TOKEN", TOKEN.to_string()),
            ("VERCEL_PROJECT_ID", PROJECT_ID.to_string()),
        ]
    }

    /// The `.env` lines for [`Services::vars`].
    pub fn dotenv(&self) -> String {
        self.vars()
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }

    /// Refused unless every variable resolves to the demo's own value and none of
    /// [`FOREIGN`] is set. No value is shown (the token is one).
    pub fn check(&self, settings: &Settings) -> Result<()> {
        let refuse = |name: &str, why: &str| {
            Err(Error::usage(format!(
                "{name} is {why} in the environment: the demo only talks to its own simulated Vercel and app"
            ))
            .with_hint(format!("unset {name} and run the demo again")))
        };
        for (name, value) in self.vars() {
            if settings.env.get(name) != Some(value.as_str()) {
                return refuse(name, "set to another value");
            }
        }
        for name in FOREIGN {
            if settings.env.get(name).is_some() {
                return refuse(name, "set");
            }
        }
        Ok(())
    }
}
