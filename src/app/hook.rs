//! `[app] provider = "hook"`: a deploy hook URL (`VERCEL_DEPLOY_HOOK_URL`: Vercel's, or any
//! platform's URL that a POST starts a deploy with). After the push pgship POSTs the hook. With
//! `VERCEL_TOKEN` (and `VERCEL_PROJECT_ID`) set, it then waits for the deployment of the pushed
//! commit as the `vercel` provider does, and a rollback can be instant; without them the proof
//! that the new code is live is the health check answering the pushed commit, so `<ENV>_URL` is
//! required. The hook URL is a secret: it is never shown, only "the deploy hook".

use super::vercel_api::{Vercel, post_hook};
use super::{AppSettings, CodeState, Events, Host};
use crate::db::url::Secret;

pub const HOOK_VAR: &str = "VERCEL_DEPLOY_HOOK_URL";

pub struct HookHost {
    pub hook: Secret,
    pub api: Option<Vercel>,
}

impl HookHost {
    pub fn from_env(env: &crate::config::Env) -> Result<HookHost, String> {
        let hook = env
            .get(HOOK_VAR)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!("[app] provider = \"hook\" needs {HOOK_VAR} (in the environment, .env.local or .env)")
            })?;
        // Some platforms' hooks carry their key in the query: checked without it.
        super::vercel_api::check_hook_url(hook)?;
        let api = Vercel::from_env(env).map_err(|e| e.to_string())?;
        Ok(HookHost {
            hook: Secret::new(hook),
            api,
        })
    }

    async fn post(&self, ev: &mut dyn Events) -> Result<(), String> {
        let job = post_hook(&self.hook)
            .await
            .map_err(|e| format!("the deploy hook: {e}"))?;
        ev.info(
            format!(
                "the deploy hook accepted the build{}",
                job.as_deref()
                    .map(|j| format!(" (job {j})"))
                    .unwrap_or_default()
            ),
            serde_json::json!({"hook_job": job}),
        );
        Ok(())
    }
}

impl Host for HookHost {
    async fn preflight(&self, s: &AppSettings) -> Result<Option<(String, Option<String>)>, String> {
        match &self.api {
            Some(api) => super::vercel::preflight(api, s).await,
            None if s.app_url.is_none() => Err(format!(
                "[app] provider = \"hook\" without VERCEL_TOKEN needs {} to know when the new code is live",
                s.url_var
            )),
            None => Ok(None),
        }
    }

    async fn deploy(
        &self,
        s: &AppSettings,
        commit: &str,
        ev: &mut dyn Events,
    ) -> Result<Option<String>, String> {
        self.post(ev).await?;
        match &self.api {
            Some(api) => super::vercel::wait(api, s, commit, ev).await,
            None => Ok(None),
        }
    }

    async fn restore(
        &self,
        s: &AppSettings,
        state: &CodeState,
        ev: &mut dyn Events,
    ) -> Result<bool, String> {
        match &self.api {
            Some(api) => super::vercel::instant_rollback(api, s, state, ev).await,
            None => Ok(false),
        }
    }

    async fn after_revert(
        &self,
        s: &AppSettings,
        commit: &str,
        restored: bool,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        self.post(ev).await?;
        match &self.api {
            Some(api) if !restored => super::vercel::wait(api, s, commit, ev).await.map(|_| ()),
            _ => Ok(()),
        }
    }

    async fn current(&self, s: &AppSettings) -> Result<Option<String>, String> {
        match &self.api {
            Some(api) => {
                let d = api
                    .current(&s.branch, s.production)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(d.map(|d| super::vercel::describe(&d)))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_url_may_carry_its_key_in_the_query() {
        // Render's and others' deploy hooks: `https://api.render.com/deploy/srv-1?key=SECRET`.
        let env =
            |url: &str| crate::config::Env::from_pairs([(HOOK_VAR.to_string(), url.to_string())]);
        let h = HookHost::from_env(&env("https://api.render.com/deploy/srv-1?key=KEYcanary"));
        assert!(h.is_ok(), "{:?}", h.err());
        let e = HookHost::from_env(&env(
            "https://u:pw@api.vercel.com/v1/integrations/deploy/p/HOOKcanary",
        ))
        .err()
        .unwrap();
        assert!(e.contains(HOOK_VAR) && !e.contains("HOOKcanary"), "{e}");
    }
}
