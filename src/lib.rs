//! pgship deploys PostgreSQL schema migrations without a human babysitting them.
//!
//! The pipeline (see `DESIGN.md`): PREFLIGHT reads configuration and the migration source and
//! computes what is pending; SANDBOX_VALIDATION rehearses it on a clone; BACKUP dumps the
//! target; DEPLOY applies under an advisory lock; POST_DEPLOY_VALIDATION proves the result;
//! ROLLBACK undoes a failure. [`deploy`] drives it; the modules below are what it stands on:
//!
//! - [`deploy`]: the orchestrator (`pipeline`), one file per phase (`preflight`,
//!   `sandbox_validation`, `backup`, `apply`, `post_deploy`, `rollback`), the pure decision core
//!   (`decide`), `rollback <id>` (`manual`), the data-loss guard's schedule (`guard`),
//!   `rollback-state.json` (`state_file`), reports; and `migrate`, the engine's direct face.
//! - [`app`]: the code half: git in temporary worktrees, Vercel's API and deploy hooks, the
//!   app's health check (providers `none`, `vercel`, `hook`).
//! - [`project`]: the project folder resolved: settings, migrations folder and kind, state table.
//! - [`config`]: `pgship.toml`, `.env.local`/`.env` and the process environment, resolved into
//!   typed settings and targets.
//! - [`source`]: migration folders (Drizzle, Drizzle v1, plain SQL) read into one `Migration`
//!   type, top-level transaction control marked with its meaning; a file's text is held once
//!   and its statements are pieces of it (`source::SqlText`). No IO beyond reading files.
//! - [`lint`]: static rules over migration SQL, optionally sharpened by a target's catalog;
//!   `lint::command` is `pgship lint` (rule selection, what to lint, the pending ones on a
//!   target, the verdict).
//! - [`db`]: the only module that opens connections: URLs, TLS, the advisory lock, migration
//!   state (records, intents, runs), preflight checks, the apply engine (`db::apply`: steps,
//!   settling an interrupted statement), lock measurement, blockers, timeouts, and discovery of
//!   `pg_dump`/`pg_restore`.
//! - [`compare`]: catalog models of two databases, their differences (renames included),
//!   fingerprints, and data comparison; `compare::command` is `pgship compare`.
//! - [`cluster`]: throwaway local PostgreSQL clusters (demo, tests, sandboxes).
//! - [`sandbox`]: throwaway copies of a target (local cluster, server database, template, Neon);
//!   `sandbox::command` is `pgship sandbox create` and `gc`.
//! - [`rehearse`]: applying the pending migrations on a sandbox, measuring, deciding by policy.
//! - [`rollback`]: how a deployment is undone, and the proof that it works.
//! - [`backup`]: the BACKUP phase's dumps (full, touched), their verification and sealed
//!   manifest, the trial restore, and Neon backup branches.
//! - [`journal`]: the JSON-lines deployment log in the seed's format, console output, and
//!   reading runs back (`history`, `logs`).
//! - [`alert`]: the alert of a finished deployment or rollback (one `Alert`), routed by
//!   `[alerts]` and sent at once to Slack, email (SMTP) and a signed webhook, each bounded;
//!   `alert::command` is `pgship alert test`. `deploy::alerts` builds the alert from a run.
//! - [`http`]: one HTTP exchange for the APIs pgship calls (Neon, Vercel, alert channels),
//!   the retry policy, base-URL rules and the scrubbing of answers into safe messages.
//! - [`signals`]: SIGINT/SIGTERM for long commands.
//! - [`status`]: a target's migration state, read and rendered (`pgship status`).
//! - [`demo`]: the whole story, database and code, on a throwaway local cluster, a git
//!   repository with a bare `origin`, and a simulated Vercel and app (`pgship demo`);
//!   `demo::{loopback, vercel_sim, app_sim}` are those simulated services (the tests use them
//!   too; `deploy` never does).
//! - [`cli`]: the command line; one file per command, each parsing its arguments, calling one
//!   function and printing.
//!
//! Dependencies run one way: `cli -> deploy -> {rehearse, sandbox, rollback, backup, compare,
//! cluster, journal, app, alert} -> db -> {source, lint, config}`; `app` (git, Vercel, health)
//! uses `http`, `config`, `signals`, `db::url` (`Secret`, percent-encoding) and
//! `cluster::process_alive`, and never a connection; `alert` uses `http`, `config`, `journal`'s
//! time format and `db::child`'s private files; `http` and `signals` are leaves; `project` sits
//! beside `config`; `status` and `demo` use `deploy` (its refusals, its pipeline) and sit
//! beside it; `demo` also uses `app::git`'s list of git's location variables, and nothing below
//! it uses `demo`.
//! `lint::command` alone in `lint` reads the project and connects (through `db`): the rules
//! do no IO.

pub mod alert;
pub mod app;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod db;
pub mod demo;
pub mod deploy;
pub mod error;
pub mod http;
pub mod journal;
pub mod lint;
pub mod project;
pub mod rehearse;
pub mod rollback;
pub mod sandbox;
pub mod signals;
pub mod source;
pub mod status;
pub mod util;

pub use error::{Error, ExitCode};
