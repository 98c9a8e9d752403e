//! The code half of a deployment: the feature branch merged into the environment's branch and
//! pushed, the app's host building and serving it, its health checked, and all of it undone
//! first when the deployment rolls back (the app must stop running the new code before its
//! schema goes away).
//!
//! - [`settings`]: `[app]` and the environment, resolved.
//! - [`git`]: the real `git` binary, in temporary worktrees: fetch, trial merge, merge and push,
//!   revert or reset; never the user's checkout.
//! - [`Host`]: what differs between providers, one file each: [`none`] (database only),
//!   [`vercel`] (git integration), [`hook`] (a deploy hook URL).
//! - [`vercel_api`]: Vercel's REST API and deploy hooks; [`health`]: the app's health endpoint
//!   and the commit it says it runs.
//! - [`code`]: the steps every provider shares (git, health), driven by `deploy`.
//!
//! Nothing here knows the pipeline or its log: `deploy` calls in and hears back through
//! [`Events`].

pub mod code;
pub mod git;
pub mod health;
pub mod hook;
pub mod none;
pub mod settings;
pub mod vercel;
pub mod vercel_api;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use code::App;
pub use settings::{AppSettings, GitRollback, ProviderKind};

/// Where the code half reports what it does (the deployment's log, under the current phase).
pub trait Events: Send {
    fn info(&mut self, message: String, data: Value);
    fn warn(&mut self, message: String, data: Value);
    /// A progress line while something is awaited (console only).
    fn progress(&mut self, message: &str);
}

/// What the code half recorded: PREFLIGHT's plan, then what DEPLOY and ROLLBACK did. Written into
/// `rollback-state.json` (key `code`) and its copy on the target, so `rollback <id>` can undo
/// it later. Holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeState {
    pub provider: String,
    pub remote: String,
    /// The environment's branch (`gitBranch`).
    pub branch: String,
    /// The feature branch (or `--from` ref) and its commit.
    pub feature: String,
    pub feature_commit: String,
    /// The environment branch's commit before the merge (`gitCommit`).
    pub before: String,
    /// The feature was already in the branch: no code step.
    #[serde(default)]
    pub already_merged: bool,
    /// The host's deployment serving the environment before (what an instant rollback returns
    /// to), and its URL.
    pub previous_deployment: Option<String>,
    pub previous_url: Option<String>,
    /// The merge commit pushed, once DEPLOY pushed it.
    pub merge_commit: Option<String>,
    /// The host's deployment of the merge commit, once known.
    pub new_deployment: Option<String>,
    /// What ROLLBACK did: the revert commit pushed (revert mode) or the reset's target.
    pub revert_commit: Option<String>,
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub instant_rollback: bool,
}

impl CodeState {
    /// Whether the code changed on the remote (a rollback has something to undo).
    pub fn pushed(&self) -> bool {
        self.merge_commit.is_some()
    }

    /// Whether a rollback already undid it.
    pub fn undone(&self) -> bool {
        self.revert_commit.is_some() || self.reset
    }
}

/// What a host does beyond git, behind one small trait. Each provider is one file.
#[allow(async_fn_in_trait)]
pub trait Host {
    /// PREFLIGHT: the host can be reached with the configuration given; the deployment serving
    /// the environment now, when the host knows it (`(id, url)`). An error is a refusal.
    async fn preflight(&self, s: &AppSettings) -> Result<Option<(String, Option<String>)>, String>;

    /// DEPLOY, after the push: start the build if the host must be told, and wait until the
    /// deployment of `commit` is live (its id when known). Hosts that cannot tell leave the
    /// proof to the health check.
    async fn deploy(
        &self,
        s: &AppSettings,
        commit: &str,
        ev: &mut dyn Events,
    ) -> Result<Option<String>, String>;

    /// ROLLBACK, first step: serve `state.previous_deployment` again without a build (an
    /// instant rollback). `Ok(false)`: the host cannot, the revert's build will.
    async fn restore(
        &self,
        s: &AppSettings,
        state: &CodeState,
        ev: &mut dyn Events,
    ) -> Result<bool, String>;

    /// ROLLBACK, after the revert (or reset) was pushed as `commit`: start its build if the
    /// host must be told, and wait for it when no instant rollback `restored` the old code.
    async fn after_revert(
        &self,
        s: &AppSettings,
        commit: &str,
        restored: bool,
        ev: &mut dyn Events,
    ) -> Result<(), String>;

    /// `status <env>`: the deployment serving the environment now, described.
    async fn current(&self, s: &AppSettings) -> Result<Option<String>, String>;
}

/// An app URL as it may be shown: no password, no query (protection-bypass tokens live there).
pub fn shown_url(url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or_default();
    crate::http::sanitize(base, "")
}
