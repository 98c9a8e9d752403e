//! The command line: clap definitions and one file per command. Thin: each command resolves
//! its inputs, calls the library, and renders the result.

mod alert;
mod compare;
mod demo;
mod deploy;
mod history;
mod lint;
mod logs;
mod migrate;
mod plan;
mod rollback;
mod sandbox;
mod status;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::{ExitCode, Result};
use crate::journal::Console;
use crate::journal::console::Format;

const AFTER_HELP: &str = "\
Targets: an environment name (dev, uat, prod, or one declared in pgship.toml; its URL comes from
<ENV>_POSTGRES_URL), `local` (LOCAL_POSTGRES_URL, else DATABASE_URL), or a postgres:// URL.
Variables are read from the environment, .env.local and .env in the project folder.

Exit codes: 0 success or nothing to do; 1 refused or failed before the target changed (a failed
migration is rolled back), `plan` decided a deploy would abort, `compare --exit-code` found
differences, `status --exit-code` found edited, skipped, missing or partial migrations,
interrupted runs or a state problem, or `lint` found something at or above --fail-on; 2 usage,
configuration or connection error (also `logs` for an unknown or malformed id); 3 `deploy`
failed and the target was rolled back; 4 `deploy` failed and the target is not back to its state
before (a person must act); 130/143 `migrate` interrupted by SIGINT/SIGTERM (what was committed
is recorded and said), or `logs --follow` ended by one. An alert that fails never changes an exit
code; `alert test` exits 1 when a configured channel failed, 2 when none is configured.";

/// Deploy PostgreSQL schema migrations safely.
#[derive(Debug, Parser)]
#[command(name = "pgship", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Project folder: where pgship.toml, .env.local, .env and drizzle.config.ts are looked up.
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub project: PathBuf,
    /// Configuration file (default: pgship.toml in the project folder, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Migrations folder (overrides pgship.toml and drizzle.config.ts); a relative path is taken
    /// from the current folder, not from --project.
    #[arg(long, global = true, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: Format,
    /// Answer yes to confirmations (required for protected environments when not on a terminal).
    #[arg(long, global = true)]
    pub yes: bool,
    /// More detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations directly to a target (no rehearsal), under an advisory lock.
    ///
    /// Reads the migration source, takes pgship's advisory lock on the target, refuses edited,
    /// missing or skipped migrations, and applies what is pending: all in one transaction by
    /// default, statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, ...) on
    /// their own between committed segments. Every statement runs with lock_timeout and is
    /// retried with backoff when it times out waiting for a lock; a lock timeout names the
    /// sessions holding the lock. The statement_timeout is pgship's or, when lower, the one set
    /// on the database or role, and pgship says which applies.
    Migrate(migrate::Args),
    /// Show applied, pending, edited, missing and skipped migrations of a target.
    ///
    /// Also reports the server version, the pg_dump that later phases would use, and who holds
    /// the migration lock. Read-only: creates nothing.
    Status(status::Args),
    /// Run pgship on a throwaway local PostgreSQL cluster with an example shop project.
    ///
    /// Starts a cluster from the local PostgreSQL binaries (initdb, pg_ctl) on a free port, makes
    /// the project a git repository with a bare `origin` beside it, starts a simulated Vercel
    /// and app on loopback ports, and tells the deploy story of a "dev" database and its app: a
    /// successful deploy of database and code (merged, pushed, built, healthy), a broken
    /// migration the rehearsal catches, a deploy that fails on dev after its rehearsal passed
    /// and rolls itself back, a deploy whose code crashes the app (code rolled back first, then
    /// the database), history, and `rollback <id>` of the first deployment (the data-loss guard
    /// first refusing, then allowed: code and database). Talks to nothing outside: DEV_URL and
    /// VERCEL_* from the environment are refused. Removes everything at the end, also on
    /// Ctrl-C.
    Demo(demo::Args),
    /// Compare the schemas (and with --data, the data) of two databases.
    ///
    /// Lists what would change in TARGET if SOURCE's schema were deployed onto it, in the
    /// vocabulary of docs/compare.md (`table-added` is a table SOURCE has and TARGET lacks),
    /// marks breaking changes with the [policy.breaking] action, and prints both schema
    /// fingerprints. Compares every schema but system schemas, pgship's own and the
    /// migration-state schema. Read-only on both databases.
    Compare(compare::Args),
    /// Lint migrations: locks, rewrites, data loss, changes that break running code,
    /// transaction problems, on PostgreSQL's own parser.
    ///
    /// Without paths, lints the project's migrations as pgship's engine applies them (Drizzle
    /// breakpoints respected), and so it lints a migrations folder given as a path (only what
    /// its journal lists, in order); --pending lints only what a target has not applied; --database
    /// sharpens findings with a live catalog. Rules are listed by --list and documented in
    /// docs/rules/. Exit 1 when a finding at or above --fail-on exists.
    Lint(lint::Args),
    /// Throwaway copies of a target: create (and keep), drop, list, gc.
    ///
    /// Strategies: local (a throwaway cluster from local binaries, filled by a streaming
    /// pg_dump | pg_restore), server (a database on SANDBOX_POSTGRES_URL), template (CREATE
    /// DATABASE ... TEMPLATE on the target's server, when allowed and nobody is connected),
    /// neon (a Neon branch of the target's branch). Reads the target only.
    Sandbox(sandbox::Args),
    /// Rehearse the pending migrations on a sandbox of a target and decide (PREFLIGHT and
    /// SANDBOX_VALIDATION; the target is only read).
    ///
    /// Makes a sandbox (see `sandbox`), applies the pending migrations there with the deploy's
    /// engine and settings while measuring each statement (duration, locks from pg_locks,
    /// rewrites, rows), checks the data (row counts, rows new constraints reject, the check
    /// queries in pgship/checks, --test-cmd), compares the schema before and after, lints the
    /// SQL, rehearses the rollback and proves it, then decides by [policy]. Writes report.md,
    /// report.json and schema-comparison.json to .deployments/<id>/. Exit 0: a deploy would
    /// proceed; 1: it would abort.
    Plan(plan::Args),
    /// Deploy the pending migrations to an environment: the whole pipeline.
    ///
    /// PREFLIGHT (state, git, lint) -> SANDBOX_VALIDATION (the rehearsal of `plan`) -> BACKUP
    /// (verified dump or Neon branch, rollback-state.json) -> DEPLOY (under the migration lock,
    /// after proving the target is what was rehearsed) -> POST_DEPLOY_VALIDATION (the target's
    /// schema is the rehearsed one; smoke queries in pgship/smoke return no rows) -> SUCCESS, or
    /// ROLLBACK (the proven method, behind the data-loss guard). Exit 0 deployed or nothing
    /// pending; 1 aborted before the target changed; 3 failed and rolled back; 4 failed and not
    /// rolled back (a person must act). Database only: `[app] provider = "none"`.
    Deploy(deploy::Args),
    /// Roll back a finished deployment: its migrations undone with the method its rehearsal
    /// proved, behind the data-loss guard, and proven.
    ///
    /// The deployment's state comes from .deployments/<id>/rollback-state.json or, when that
    /// folder is gone, from pgship.deployments on the target; a state file or backup whose
    /// sha256 differs from the recorded one is refused, and so is a deployment with later ones
    /// on top. Exit 0 rolled back; 1 refused; 2 unknown id; 4 not rolled back (a person must act).
    Rollback(rollback::Args),
    /// Past runs of an environment (or of every environment whose URL is set), newest first.
    ///
    /// Reads the target's pgship.deployments and merges the local .deployments/ folders (a
    /// folder whose run never reached the table is shown as local only): id, environment,
    /// status, start, duration, migrations and commit. `--format json` prints an array.
    /// Read-only; a target where pgship never ran has no history (exit 0).
    History(history::Args),
    /// The log of one run: from .deployments/<id>/deployment.log when here, else from the
    /// target's pgship.deployment_logs.
    ///
    /// Text lines are `HH:MM:SS.mmm PHASE LEVEL message` (local time); `--format json` prints
    /// each log line as written. `--follow` keeps printing until the run ends. Exit 2 for an
    /// unknown or malformed id.
    Logs(logs::Args),
    /// Alerts (Slack, email, signed webhook): `alert test` sends a test alert.
    ///
    /// Channels are configured by SLACK_WEBHOOK_URL; SMTP_HOST, SMTP_PORT, SMTP_USER,
    /// SMTP_PASSWORD, ALERT_EMAIL, ALERT_EMAIL_FROM; ALERT_WEBHOOK_URL and ALERT_WEBHOOK_SECRET
    /// (see docs/alerts.md). Deployments and rollbacks send alerts by themselves.
    Alert(alert::Args),
}

/// Options every command shares.
pub struct Globals {
    pub project: PathBuf,
    pub config: Option<PathBuf>,
    pub migrations: Option<PathBuf>,
    pub yes: bool,
    pub console: Console,
}

/// Parse arguments, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let console = Console {
        format: cli.format,
        verbose: cli.verbose,
        quiet: cli.quiet,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            console.error(&format!("cannot start the async runtime: {e}"), None);
            return ExitCode::Usage as i32;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let globals = Globals {
        project: cli.project.clone(),
        config: cli.config.clone(),
        migrations: cli.migrations.clone(),
        yes: cli.yes,
        console,
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Migrate(a) => migrate::run(&globals, a).await,
            Command::Status(a) => status::run(&globals, a).await,
            Command::Demo(a) => demo::run(&globals, a).await,
            Command::Compare(a) => compare::run(&globals, a).await,
            Command::Lint(a) => lint::run(&globals, a).await,
            Command::Sandbox(a) => sandbox::run(&globals, a).await,
            Command::Plan(a) => plan::run(&globals, a).await,
            Command::Deploy(a) => deploy::run(&globals, a).await,
            Command::Rollback(a) => rollback::run(&globals, a).await,
            Command::History(a) => history::run(&globals, a).await,
            Command::Logs(a) => logs::run(&globals, a).await,
            Command::Alert(a) => alert::run(&globals, a).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => code as i32,
        Err(e) => {
            console.error(&e.message, e.hint.as_deref());
            e.code as i32
        }
    }
}

impl Globals {
    /// What the library needs to talk to the user.
    pub fn ui(&self) -> crate::deploy::Ui {
        crate::deploy::Ui {
            console: self.console,
            yes: self.yes,
        }
    }

    /// Load the project and resolve a `<target>` argument against it.
    pub fn project_with_target(
        &self,
        arg: &str,
    ) -> Result<(
        crate::project::Project,
        crate::config::Target,
        crate::db::DbUrl,
    )> {
        crate::project::Project::with_target(
            &self.project,
            self.config.as_deref(),
            self.migrations.as_deref(),
            arg,
        )
    }
}

/// Parse a duration flag.
pub fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    crate::util::parse_duration(s)
}
