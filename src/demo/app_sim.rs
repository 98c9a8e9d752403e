//! The demo's simulated app: a loopback server answering `GET /api/health` the way the
//! deployed app would, by default with the commit the simulated Vercel serves
//! ([`Health::Follow`]). Only `pgship demo` and the tests start it; `deploy` only ever asks the
//! URL `<ENV>_URL` names.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::loopback::{self, Reply, Request, Server};
use super::vercel_sim::FakeVercel;

/// What the app's health endpoint answers.
#[derive(Clone)]
pub enum Health {
    /// `{"status":"ok","commit":old}` for the first `after` requests, then `new`.
    Commits {
        old: String,
        new: String,
        after: u32,
    },
    /// This body, 200.
    Body(Value),
    /// This status, with `{"status":"error"}`.
    Status(u16),
    /// Accept the connection and never answer.
    Hang,
    /// The commit the fake Vercel's production domains serve now.
    Follow(FakeVercel),
    /// As [`Health::Follow`], but the app crashes (500) while the commit served holds `file`
    /// in the repository the fake Vercel watches: code that fails when it starts.
    CrashesWith { vercel: FakeVercel, file: String },
}

pub struct AppState {
    pub requests: Vec<Request>,
    pub health: Health,
}

pub struct FakeApp {
    pub port: u16,
    state: Arc<Mutex<AppState>>,
    _server: Server,
}

fn lock(state: &Mutex<AppState>) -> MutexGuard<'_, AppState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeApp {
    /// Listens on a loopback port until dropped.
    pub fn start(health: Health) -> std::io::Result<FakeApp> {
        let state = Arc::new(Mutex::new(AppState {
            requests: Vec::new(),
            health,
        }));
        let shared = state.clone();
        let server = loopback::serve(Arc::new(move |req| answer(&mut lock(&shared), req)))?;
        Ok(FakeApp {
            port: server.port(),
            state,
            _server: server,
        })
    }

    /// The environment's URL (`<ENV>_URL`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn health_url(&self) -> String {
        format!("{}/api/health", self.url())
    }

    pub fn set(&self, health: Health) {
        lock(&self.state).health = health;
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }
}

fn answer(st: &mut AppState, req: Request) -> Reply {
    st.requests.push(req.clone());
    if req.method != "GET" || req.path != "/api/health" {
        return Reply::json(404, &json!({"error": "not found"}));
    }
    let n = st.requests.len() as u32;
    match &st.health {
        Health::Commits { old, new, after } => {
            let commit = if n <= *after { old } else { new };
            Reply::json(200, &json!({"status": "ok", "commit": commit}))
        }
        Health::Body(body) => Reply::json(200, body),
        Health::Status(status) => Reply::json(*status, &json!({"status": "error"})),
        Health::Hang => Reply::Hold,
        Health::Follow(vercel) => follow(vercel, None),
        Health::CrashesWith { vercel, file } => follow(vercel, Some(file)),
    }
}

/// The answer of the code the fake Vercel serves now.
fn follow(vercel: &FakeVercel, crash_with: Option<&str>) -> Reply {
    let Some(commit) = vercel.serving_commit() else {
        return Reply::json(404, &json!({"error": "DEPLOYMENT_NOT_FOUND"}));
    };
    if let (Some(file), Some(repo)) = (crash_with, vercel.watched_repo())
        && has_file(&repo, &commit, file)
    {
        return Reply::json(
            500,
            &json!({"status": "error", "error": format!("{file} failed on start")}),
        );
    }
    Reply::json(200, &json!({"status": "ok", "commit": commit}))
}

/// Whether `commit`'s tree in `repo` holds `file`.
fn has_file(repo: &Path, commit: &str, file: &str) -> bool {
    super::git::read(repo, &["cat-file", "-e", &format!("{commit}:{file}")]).is_some()
}
