//! Neon's JSON: only the fields pgship reads, all others ignored, so that new fields in Neon's
//! answers never break parsing. Shapes as in the API reference cited by the parent module.

use serde::Deserialize;

#[derive(Deserialize, Clone, Debug)]
pub(super) struct Operation {
    pub(super) id: String,
    #[serde(default)]
    pub(super) branch_id: Option<String>,
    #[serde(default)]
    pub(super) action: String,
    pub(super) status: String,
    #[serde(default)]
    pub(super) failures_count: Option<u32>,
    #[serde(default)]
    pub(super) error: Option<String>,
}

pub(super) enum OpState {
    Done,
    Pending,
    /// `failed`: Neon may still retry it.
    Failed,
    /// Ended without finishing.
    Ended,
}

impl Operation {
    pub(super) fn state(&self) -> OpState {
        match self.status.as_str() {
            "finished" | "skipped" => OpState::Done,
            "failed" => OpState::Failed,
            // `error` is what the console shows; accept it should the API ever say so.
            "cancelled" | "error" => OpState::Ended,
            // scheduling, running, cancelling, and anything new.
            _ => OpState::Pending,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct OperationEnvelope {
    pub(super) operation: Operation,
}

#[derive(Deserialize)]
pub(super) struct OperationList {
    #[serde(default)]
    pub(super) operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(super) struct BranchInfo {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) created_at: Option<String>,
    #[serde(default)]
    pub(super) default: bool,
    #[serde(default)]
    pub(super) protected: bool,
}

#[derive(Deserialize)]
pub(super) struct CreatedBranch {
    pub(super) branch: BranchInfo,
    #[serde(default)]
    pub(super) endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub(super) operations: Vec<Operation>,
    /// `ConnectionURIsOptionalResponse`: `[{connection_uri, connection_parameters}]`. Kept as
    /// raw values so that an entry of an unexpected shape is skipped instead of failing the
    /// whole answer (and so that serde never quotes a password in an error).
    #[serde(default)]
    pub(super) connection_uris: Option<Vec<serde_json::Value>>,
}

impl CreatedBranch {
    /// The `connection_uri` strings of the answer.
    pub(super) fn connection_uris(&self) -> Vec<String> {
        self.connection_uris
            .iter()
            .flatten()
            .filter_map(|c| c.get("connection_uri")?.as_str().map(str::to_string))
            .collect()
    }
}

#[derive(Deserialize)]
pub(super) struct BranchList {
    pub(super) branches: Vec<BranchInfo>,
    #[serde(default)]
    pub(super) pagination: Option<Pagination>,
}

#[derive(Deserialize)]
pub(super) struct Pagination {
    #[serde(default)]
    pub(super) next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Endpoint {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) host: String,
    pub(super) branch_id: String,
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) hosts: Option<EndpointHosts>,
}

impl Endpoint {
    pub(super) fn pooled_host(&self) -> Option<&str> {
        self.hosts.as_ref()?.read_write_pooled_host.as_deref()
    }
}

#[derive(Deserialize)]
pub(super) struct EndpointHosts {
    #[serde(default)]
    pub(super) read_write_pooled_host: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EndpointList {
    pub(super) endpoints: Vec<Endpoint>,
}

impl EndpointList {
    pub(super) fn read_write(&self, branch_id: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.branch_id == branch_id && e.kind == "read_write")
    }
}
