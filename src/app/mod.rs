//! The code half of a deployment: the app's git branch and its host.
//!
//! - [`git`]: the real `git` binary, in temporary worktrees: fetch, trial merge, merge and push,
//!   revert or reset; never the user's checkout.
//! - [`vercel_api`]: Vercel's REST API (deployments by commit, readiness, instant rollback) and
//!   deploy hooks.
//! - [`health`]: the app's health endpoint, and which commit it says it runs.
//!
//! Nothing here knows the pipeline: `deploy` calls it.

pub mod health;
pub mod vercel_api;
