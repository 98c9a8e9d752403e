//! Vercel's JSON, as far as pgship reads it. Every field is optional: an answer without one of
//! them is still usable, and one without an id is a decode error at the call site.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Deployment, ReadyState};

/// A deployment as `GET /v6/deployments` (`uid`, `state`, `created`) or `GET
/// /v13/deployments/{id}` (`id`, `readyState`, `createdAt`) spells it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireDeployment {
    id: Option<String>,
    uid: Option<String>,
    url: Option<String>,
    ready_state: Option<String>,
    state: Option<String>,
    target: Option<String>,
    created_at: Option<i64>,
    created: Option<i64>,
    meta: Option<HashMap<String, Value>>,
}

/// The git providers whose metadata names the commit and the branch.
const PROVIDERS: [&str; 3] = ["github", "gitlab", "bitbucket"];

impl WireDeployment {
    pub(super) fn into_deployment(self) -> Option<Deployment> {
        let meta = |suffix: &str| {
            PROVIDERS.iter().find_map(|p| {
                self.meta
                    .as_ref()?
                    .get(&format!("{p}{suffix}"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
        };
        let commit = meta("CommitSha");
        let branch = meta("CommitRef");
        let state = self.ready_state.or(self.state).unwrap_or_default();
        Some(Deployment {
            id: self.id.or(self.uid).filter(|id| !id.is_empty())?,
            url: self.url.filter(|u| !u.is_empty()),
            state: ReadyState::parse(&state),
            target: self.target,
            commit,
            branch,
            created_ms: self.created_at.or(self.created).unwrap_or(0),
        })
    }
}

#[derive(Deserialize)]
pub(super) struct DeploymentList {
    #[serde(default)]
    pub deployments: Vec<WireDeployment>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Deserialize)]
pub(super) struct Pagination {
    /// The `until` of the next (older) page; absent or null on the last one.
    pub next: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub targets: Option<Targets>,
}

#[derive(Deserialize)]
pub(super) struct Targets {
    pub production: Option<TargetRef>,
}

#[derive(Deserialize)]
pub(super) struct TargetRef {
    pub id: Option<String>,
}

/// Vercel's `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
pub(super) struct ErrorDetail {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// A deploy hook's answer: `{"job": {"id", "state", "createdAt"}}`.
#[derive(Deserialize)]
pub(super) struct HookAnswer {
    pub job: Option<HookJob>,
}

#[derive(Deserialize)]
pub(super) struct HookJob {
    pub id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_a_deployment_are_read() {
        let listed: WireDeployment = serde_json::from_str(
            r#"{"uid":"dpl_1","state":"BUILDING","created":5,"target":null,"url":"a.vercel.app",
                "meta":{"gitlabCommitSha":"abc1234","gitlabCommitRef":"main"}}"#,
        )
        .unwrap();
        let d = listed.into_deployment().unwrap();
        assert_eq!((d.id.as_str(), d.created_ms), ("dpl_1", 5));
        assert_eq!(
            (d.commit.as_deref(), d.branch.as_deref()),
            (Some("abc1234"), Some("main"))
        );
        assert_eq!(d.state, ReadyState::Building);
        let read: WireDeployment = serde_json::from_str(
            r#"{"id":"dpl_2","readyState":"READY","createdAt":7,"meta":null}"#,
        )
        .unwrap();
        let d = read.into_deployment().unwrap();
        assert_eq!(
            (d.state, d.commit, d.target),
            (ReadyState::Ready, None, None)
        );
        let no_id: WireDeployment = serde_json::from_str(r#"{"url":"x"}"#).unwrap();
        assert!(no_id.into_deployment().is_none());
    }
}
