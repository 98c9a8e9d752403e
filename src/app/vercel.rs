//! `[app] provider = "vercel"`: Vercel's git integration. The push to the environment's branch
//! makes Vercel build; pgship finds the deployment built for the pushed commit and waits until it
//! is `READY`. A rollback first asks Vercel for an instant rollback to the deployment that served
//! the environment before (seconds, no build); the revert commit pushed afterwards is built by
//! the same integration.

use super::vercel_api::{Deployment, Vercel};
use super::{AppSettings, CodeState, Events, Host};

pub struct VercelHost {
    pub api: Vercel,
}

impl VercelHost {
    /// From `VERCEL_TOKEN`, `VERCEL_PROJECT_ID` (and `VERCEL_TEAM_ID`, `VERCEL_API_URL`).
    pub fn from_env(env: &crate::config::Env) -> Result<VercelHost, String> {
        match Vercel::from_env(env) {
            Ok(Some(api)) => Ok(VercelHost { api }),
            Ok(None) => Err(
                "[app] provider = \"vercel\" needs VERCEL_TOKEN and VERCEL_PROJECT_ID (in the environment, .env.local or .env)".into(),
            ),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A deployment as the log shows it.
pub fn describe(d: &Deployment) -> String {
    match &d.url {
        Some(u) => format!("{} ({u})", d.id),
        None => d.id.clone(),
    }
}

/// The project is readable and what serves the environment now.
pub async fn preflight(
    api: &Vercel,
    s: &AppSettings,
) -> Result<Option<(String, Option<String>)>, String> {
    let name = api.project().await.map_err(|e| e.to_string())?;
    let current = api
        .current(&s.branch, s.production)
        .await
        .map_err(|e| format!("Vercel project {name}: {e}"))?;
    Ok(current.map(|d| (d.id, d.url)))
}

/// Wait for the deployment of `commit` to be READY, with progress lines.
pub async fn wait(
    api: &Vercel,
    s: &AppSettings,
    commit: &str,
    ev: &mut dyn Events,
) -> Result<Option<String>, String> {
    let mut progress = |m: &str| ev.progress(m);
    let d = api
        .wait_ready(commit, s.deploy_timeout, &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    ev.info(
        format!("Vercel deployment {} is READY", describe(&d)),
        serde_json::json!({"vercel_deployment": d.id, "commit": commit}),
    );
    if s.production {
        promote_if_pinned(api, &d, ev).await?;
    }
    Ok(Some(d.id))
}

/// After an instant rollback (ours or anybody's) Vercel keeps the production domains on the
/// rolled-back deployment, and a new production build is READY without being served: promote
/// it. A deployment already served needs nothing.
async fn promote_if_pinned(
    api: &Vercel,
    d: &Deployment,
    ev: &mut dyn Events,
) -> Result<(), String> {
    let serving = api
        .current(d.branch.as_deref().unwrap_or_default(), true)
        .await
        .map_err(|e| e.to_string())?;
    match serving {
        Some(cur) if cur.id != d.id => {
            api.promote(&d.id).await.map_err(|e| e.to_string())?;
            ev.info(
                format!(
                    "production was still served by {} (an instant rollback keeps it there until a promotion): promoted {}",
                    cur.id, d.id
                ),
                serde_json::json!({"promoted": d.id, "was_serving": cur.id}),
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The instant rollback to the recorded previous deployment. Vercel's instant rollback points
/// the project's production domains at an earlier production deployment: an environment served
/// by preview deployments (`production = false`) has none, and the revert's build replaces its
/// code.
pub async fn instant_rollback(
    api: &Vercel,
    s: &AppSettings,
    state: &CodeState,
    ev: &mut dyn Events,
) -> Result<bool, String> {
    if !s.production {
        ev.info(
            format!(
                "{} is served by preview deployments of {}: no instant rollback (it is for production), the revert's build replaces the code",
                s.environment, s.branch
            ),
            serde_json::json!({}),
        );
        return Ok(false);
    }
    let Some(previous) = &state.previous_deployment else {
        ev.warn(
            "no earlier Vercel deployment was recorded for this environment: no instant rollback (the revert's build will replace the code)".into(),
            serde_json::json!({}),
        );
        return Ok(false);
    };
    api.instant_rollback(previous)
        .await
        .map_err(|e| format!("Vercel instant rollback to {previous}: {e}"))?;
    ev.info(
        format!("Vercel instant rollback to {previous} requested"),
        serde_json::json!({"vercel_deployment": previous}),
    );
    Ok(true)
}

impl Host for VercelHost {
    async fn preflight(&self, s: &AppSettings) -> Result<Option<(String, Option<String>)>, String> {
        preflight(&self.api, s).await
    }

    async fn deploy(
        &self,
        s: &AppSettings,
        commit: &str,
        ev: &mut dyn Events,
    ) -> Result<Option<String>, String> {
        wait(&self.api, s, commit, ev).await
    }

    async fn restore(
        &self,
        s: &AppSettings,
        state: &CodeState,
        ev: &mut dyn Events,
    ) -> Result<bool, String> {
        instant_rollback(&self.api, s, state, ev).await
    }

    async fn after_revert(
        &self,
        s: &AppSettings,
        commit: &str,
        restored: bool,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        // The git integration builds the pushed revert by itself; wait for it when it is what
        // brings the old code back.
        if restored {
            return Ok(());
        }
        wait(&self.api, s, commit, ev).await.map(|_| ())
    }

    async fn current(&self, s: &AppSettings) -> Result<Option<String>, String> {
        let d = self
            .api
            .current(&s.branch, s.production)
            .await
            .map_err(|e| e.to_string())?;
        Ok(d.map(|d| describe(&d)))
    }
}
