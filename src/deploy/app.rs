//! The code half's seam in the pipeline (see [`crate::app`]): `[app]` resolved for the target,
//! and its reports written to the deployment's log under the phase that runs it. With
//! `[app] provider = "none"` (the default) pgship deploys the database only and the code steps
//! say so and do nothing.

use serde_json::Value;

use super::decide::Phase;
use super::log::Log;
use crate::app::App;
use crate::config::Target;
use crate::error::{Error, Result};
use crate::journal::Level;
use crate::project::Project;

/// `[app]` for `target` (a target that is not a named environment has no code half).
pub fn resolve(project: &Project, target: &Target) -> Result<App> {
    App::resolve(&project.settings, &target.name).map_err(Error::usage)
}

/// The code half's events as lines of the deployment's log under `phase`.
pub struct PhaseEvents<'a> {
    pub log: &'a mut Log,
    pub phase: Phase,
}

impl<'a> PhaseEvents<'a> {
    pub fn new(log: &'a mut Log, phase: Phase) -> Self {
        PhaseEvents { log, phase }
    }
}

impl crate::app::Events for PhaseEvents<'_> {
    fn info(&mut self, message: String, data: Value) {
        self.log.info(self.phase, message, data);
    }

    fn warn(&mut self, message: String, data: Value) {
        self.log.warn(self.phase, message, data);
    }

    fn progress(&mut self, message: &str) {
        self.log.console.step(message);
        self.log.journal.log(
            self.phase.as_str(),
            Level::Debug,
            message.to_string(),
            Value::Object(Default::default()),
        );
    }
}
