//! pgship deploys PostgreSQL schema migrations without a human babysitting them.
//!
//! The pipeline (see `DESIGN.md`): PREFLIGHT reads configuration and the migration source and
//! computes what is pending; SANDBOX_VALIDATION rehearses it on a clone; BACKUP dumps the
//! target; DEPLOY applies under an advisory lock; POST_DEPLOY_VALIDATION proves the result;
//! ROLLBACK undoes a failure. This crate builds the core that every phase stands on:
//!
//! - [`config`]: `pgship.toml`, `.env.local`/`.env` and the process environment, resolved into
//!   typed settings and targets.
//! - [`source`]: migration folders (Drizzle, Drizzle v1, plain SQL) read into one `Migration`
//!   type. No IO beyond reading files.
//! - [`db`]: the only module that opens connections: URLs, TLS, the advisory lock, migration
//!   state, the apply engine, and discovery of `pg_dump`/`pg_restore`.
//! - [`cluster`]: throwaway local PostgreSQL clusters (demo, tests, later the sandbox).
//! - [`journal`]: the JSON-lines deployment log and console output.
//! - [`cli`]: the command line; thin, one file per command.
//!
//! Dependencies run one way: `cli -> {cluster, journal} -> db -> {source, config}`.

pub mod cli;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod db;
pub mod error;
pub mod journal;
pub mod lint;
pub mod rehearse;
pub mod rollback;
pub mod sandbox;
pub mod signals;
pub mod source;
pub mod util;

pub use error::{Error, ExitCode};
