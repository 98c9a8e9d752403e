//! Loopback fakes of Vercel and of a deployed app, speaking the real shapes: the demo's
//! simulated Vercel and app from the library (one implementation; see
//! `pgship::demo::vercel_sim` for the API calls it answers and the knobs tests use).
#![allow(unused_imports)]

pub use pgship::demo::app_sim::{AppState, FakeApp, Health};
pub use pgship::demo::vercel_sim::{
    Dep, FakeVercel, HOOK_ID, PROJECT_ID, PROJECT_NAME, Script, TEAM_ID, TOKEN,
};
